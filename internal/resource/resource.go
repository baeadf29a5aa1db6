// Package resource owns the shape of an agent's resource URL,
// <public>/<agent>/mcp, and its slash form <public>/<agent>/mcp/ (the
// endpoint answers at both paths and each is a resource of its own, RFC
// 9728 §3.3). The authorization server builds the audience it issues with
// it and the Check parses the audience it accepts with it, so the two
// agree by construction rather than by coincidence. It also owns where a
// resource's and the issuer's metadata live (RFC 9728 §3.1, RFC 8414
// §3.1): the Check names that URL in its 401 and the authorization server
// serves it.
package resource

import (
	"strings"

	"github.com/mcpgateway/mcp-gateway/config"
)

const (
	suffix      = "/mcp"
	slashSuffix = "/mcp/"
)

// Well-known URI suffixes (RFC 8615) of the metadata documents.
const (
	// ProtectedResource names RFC 9728 protected resource metadata.
	ProtectedResource = "oauth-protected-resource"
	// AuthorizationServer names RFC 8414 authorization server metadata.
	AuthorizationServer = "oauth-authorization-server"
)

// Base is the gateway's public URL without a trailing slash: the resource
// naming the whole gateway and the prefix of every agent's resource.
type Base string

// New returns the Base of the public URL, dropping trailing slashes.
func New(public string) Base { return Base(strings.TrimRight(public, "/")) }

// String returns the public URL, the gateway-wide resource.
func (b Base) String() string { return string(b) }

// For returns agent's resource URL, <public>/<agent>/mcp.
func (b Base) For(agent string) string { return string(b) + Path(agent) }

// Slash returns the slash form of agent's resource URL, <public>/<agent>/mcp/.
func (b Base) Slash(agent string) string { return string(b) + Path(agent) + "/" }

// Form returns For(agent), or Slash(agent) when slash is set.
func (b Base) Form(agent string, slash bool) string {
	if slash {
		return b.Slash(agent)
	}
	return b.For(agent)
}

// split returns b's origin (scheme://host[:port]) and its path ("" at the
// root, else "/gw" without a trailing slash).
func (b Base) split() (origin, path string) {
	s := string(b)
	i := strings.Index(s, "://")
	if i < 0 {
		return s, ""
	}
	if j := strings.IndexByte(s[i+3:], '/'); j >= 0 {
		return s[:i+3+j], s[i+3+j:]
	}
	return s, ""
}

// WellKnown returns the URL of the well-known document name about b itself,
// as resource or as issuer: /.well-known/<name> goes between the host and
// b's path, never after it (RFC 9728 §3.1, RFC 8414 §3.1), so
// https://h/gw has its metadata at https://h/.well-known/<name>/gw.
func (b Base) WellKnown(name string) string {
	origin, path := b.split()
	return origin + WellKnownPath(name) + path
}

// MetadataPrefix returns what the protected resource metadata URL of every
// agent's resource starts with,
// <origin>/.well-known/oauth-protected-resource<path>/, followed by
// Rel(agent, slash): https://h/gw/demo/mcp has it at
// https://h/.well-known/oauth-protected-resource/gw/demo/mcp. The Check
// builds its challenges from it once.
func (b Base) MetadataPrefix() string { return b.WellKnown(ProtectedResource) + "/" }

// ParseMetadata parses the path of a request for protected resource
// metadata (the decoded path; the metadata paths sit at the host's root, so
// no proxy strips b's path from them). It returns the agent and form of the
// resource it is about, or agent "" for b itself, the gateway-wide
// resource. At the root the lone "/" form is b too (https://h/ is https://h).
func (b Base) ParseMetadata(p string) (agent string, slash, ok bool) {
	_, path := b.split()
	rest, found := strings.CutPrefix(p, WellKnownPath(ProtectedResource)+path)
	switch {
	case !found:
		return "", false, false
	case rest == "" || (path == "" && rest == "/"):
		return "", false, true
	case rest[0] != '/':
		return "", false, false
	}
	return ParsePath(rest[1:])
}

// WellKnownPath returns the path of the well-known document name at a
// host's root, /.well-known/<name>.
func WellKnownPath(name string) string { return "/.well-known/" + name }

// Parse returns the agent of an agent resource URL in either form, byte for
// byte under this Base, and whether it was the slash form. The agent id is
// validated (config.ValidAgentID).
func (b Base) Parse(u string) (agent string, slash, ok bool) {
	p := string(b)
	if len(u) <= len(p) || u[:len(p)] != p || u[len(p)] != '/' {
		return "", false, false
	}
	return ParsePath(u[len(p)+1:])
}

// Names reports whether u is agent's resource URL in either form. It does
// not allocate: the Check calls it on every token's audience.
func (b Base) Names(u, agent string) bool {
	p := string(b)
	if strings.HasSuffix(u, slashSuffix) {
		u = u[:len(u)-1]
	}
	return len(u) == len(p)+1+len(agent)+len(suffix) && u[:len(p)] == p && u[len(p)] == '/' &&
		u[len(p)+1:len(p)+1+len(agent)] == agent && strings.HasSuffix(u, suffix)
}

// Path returns the path of agent's endpoint relative to the public URL,
// /<agent>/mcp.
func Path(agent string) string { return "/" + agent + suffix }

// Rel returns agent's endpoint path without its leading slash,
// "<agent>/mcp" or (slash) "<agent>/mcp/": what follows the public URL, or
// the well-known metadata prefix (RFC 9728 §3.1), with a "/".
func Rel(agent string, slash bool) string {
	if slash {
		return agent + slashSuffix
	}
	return agent + suffix
}

// ParsePath parses "<agent>/mcp" or "<agent>/mcp/" (a path below the public
// URL, without its leading slash) and validates the agent id.
func ParsePath(rest string) (agent string, slash, ok bool) {
	if id, found := strings.CutSuffix(rest, suffix); found && config.ValidAgentID(id) {
		return id, false, true
	}
	if id, found := strings.CutSuffix(rest, slashSuffix); found && config.ValidAgentID(id) {
		return id, true, true
	}
	return "", false, false
}

// SlashForm reports whether path (without query) ends in the slash form.
func SlashForm(path string) bool { return strings.HasSuffix(path, slashSuffix) }
