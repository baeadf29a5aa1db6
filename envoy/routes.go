package envoy

import (
	"cmp"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"

	"github.com/mcpgateway/mcp-gateway/config"
	"github.com/mcpgateway/mcp-gateway/store"
)

// AgentRoute is where one agent's /<id>/mcp goes, read from its upstream
// URL. Every field is safe to paste into nginx and YAML syntax.
type AgentRoute struct {
	ID     string
	Scheme string // "http" or "https"
	Host   string // host name or IP, without brackets
	Port   string // the URL's port, or the scheme's default
	Path   string // the escaped path, "/" when the URL has none
	// HostHeader is the URL's host as written (port included when given):
	// the Host the agent expects, which its DNS-rebinding guard checks.
	HostHeader string
	// UpstreamHeader is the header the agent's upstream_auth declares
	// (lower-case; "" for none or an invalid one): the Check sets it on
	// allow, so the proxy must pass it on rather than strip it.
	UpstreamHeader string
}

// Authority is host:port, IPv6 addresses in brackets.
func (r AgentRoute) Authority() string { return net.JoinHostPort(r.Host, r.Port) }

// AgentRoutes turns the agent registry into routes, sorted by id. An agent
// without an upstream gets no route. An agent whose id or upstream cannot be
// routed safely (not http/https, userinfo, a query or fragment, characters
// a proxy config cannot carry) gets none either, and an error naming it:
// the caller reports it and routes the rest.
func AgentRoutes(agents []store.Agent) ([]AgentRoute, []error) {
	var out []AgentRoute
	var errs []error
	seen := map[string]bool{}
	for _, a := range agents {
		if a.Upstream == "" || seen[a.ID] {
			continue
		}
		seen[a.ID] = true
		r, err := agentRoute(a.ID, a.Upstream)
		if err != nil {
			errs = append(errs, fmt.Errorf("agent %q not routed: %w", a.ID, err))
			continue
		}
		r.UpstreamHeader = a.DeclaredHeader()
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b AgentRoute) int { return cmp.Compare(a.ID, b.ID) })
	return out, errs
}

func agentRoute(id, upstream string) (AgentRoute, error) {
	if !config.ValidAgentID(id) {
		return AgentRoute{}, fmt.Errorf("invalid agent id")
	}
	u, err := url.Parse(upstream)
	if err != nil {
		return AgentRoute{}, fmt.Errorf("upstream: %w", err)
	}
	r := AgentRoute{ID: id, Scheme: u.Scheme, Host: u.Hostname(), Port: u.Port(), Path: u.EscapedPath(), HostHeader: u.Host}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return AgentRoute{}, fmt.Errorf("upstream %s: scheme must be http or https", u.Redacted())
	case u.User != nil:
		return AgentRoute{}, fmt.Errorf("upstream %s: userinfo is not allowed", u.Redacted())
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return AgentRoute{}, fmt.Errorf("upstream %s: a query or fragment is not allowed", u.Redacted())
	case u.Opaque != "" || r.Host == "":
		return AgentRoute{}, fmt.Errorf("upstream %s: no host", u.Redacted())
	case !plain(r.Host, hostChars) || !plain(r.Port, "0123456789") || !plain(r.Path, pathChars):
		return AgentRoute{}, fmt.Errorf("upstream %s: characters a proxy config cannot carry", u.Redacted())
	}
	if r.Port == "" {
		r.Port = map[string]string{"http": "80", "https": "443"}[r.Scheme]
	}
	if r.Path == "" {
		r.Path = "/"
	}
	return r, nil
}

const (
	alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	// hostChars: DNS names, IPv4 and (unbracketed) IPv6 addresses.
	hostChars = alnum + ".-:"
	// pathChars: RFC 3986 pchar and "/", without the sub-delims that mean
	// something to nginx or YAML (; $ ' " { } # and space).
	pathChars = alnum + "-._~%!*()+,=:@/"
)

// plain: every byte of s is in set.
func plain(s, set string) bool {
	for i := 0; i < len(s); i++ {
		if !strings.ContainsRune(set, rune(s[i])) {
			return false
		}
	}
	return true
}
