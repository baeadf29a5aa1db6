// Package routes is the one table of public paths the gateway serves itself
// (authorization server, login, consent, account) and the shape of an agent's
// path. The dev-mode front (cmd/mcp-gateway) and the Envoy configuration
// builder (xds) both route from it, so dev mode and Envoy cannot drift apart.
package routes

import (
	"strings"

	"github.com/mcpgateway/mcp-gateway/internal/resource"
)

// Match is how a Route's Path is compared with a request path.
type Match int

const (
	// Prefix matches any path that starts with Path (Path ends in "/").
	Prefix Match = iota
	// Segment matches Path itself and anything below it ("/login",
	// "/login/callback"), never "/loginx": a whole path segment.
	Segment
)

// Route is one path family the gateway answers without an authorization check.
type Route struct {
	Name  string // also the Envoy route name
	Match Match
	Path  string
	// CORS: called cross-origin by browser-based MCP clients (the OAuth
	// endpoints and metadata); the browser pages are same-origin only.
	CORS bool
	// DevOnly: served on dev mode's single port only. The HTTP check
	// adapter is for a proxy's auth_request, never routed to clients.
	DevOnly bool
}

// Gateway lists the gateway's own public routes, in the order Envoy lists them.
var Gateway = []Route{
	{Name: "oauth", Match: Prefix, Path: "/oauth/", CORS: true},
	{Name: "well_known", Match: Prefix, Path: "/.well-known/", CORS: true},
	{Name: "login", Match: Segment, Path: "/login"},
	{Name: "consent", Match: Segment, Path: "/consent"},
	{Name: "account", Match: Segment, Path: "/account"},
	{Name: "authz_check", Match: Segment, Path: "/authz/check", DevOnly: true},
}

// Matches reports whether path (without query) falls under r.
func (r Route) Matches(path string) bool {
	if r.Match == Prefix {
		return strings.HasPrefix(path, r.Path)
	}
	return path == r.Path || strings.HasPrefix(path, r.Path+"/")
}

// GatewayRoute returns the gateway route serving path; dev includes the
// DevOnly routes.
func GatewayRoute(path string, dev bool) (Route, bool) {
	for _, r := range Gateway {
		if (dev || !r.DevOnly) && r.Matches(path) {
			return r, true
		}
	}
	return Route{}, false
}

// CORS on the agents' MCP endpoints, the same in every front (dev proxy,
// Envoy builder, nginx template, Istio). A header list cannot name a prefix,
// so "*" admits the Mcp-Param-<Name> headers (SEP-2243) and whatever later
// clients send; Authorization is never covered by "*" and is named.
const (
	AgentCORSMethods       = "GET, POST, DELETE, OPTIONS"
	AgentCORSAllowHeaders  = "authorization, content-type, mcp-protocol-version, mcp-session-id, mcp-method, mcp-name, last-event-id, *"
	AgentCORSExposeHeaders = "mcp-session-id, www-authenticate"
	AgentCORSMaxAge        = "86400"
)

// Favicon is fetched by every browser on its own. Each front answers it
// 204 itself: it is no agent request, so no decision and no audited denial.
const Favicon = "/favicon.ico"

// AgentPaths are the two exact paths of an agent's MCP endpoint.
func AgentPaths(id string) [2]string {
	p := resource.Path(id)
	return [2]string{p, p + "/"}
}

// Agent returns the agent id of an exact agent path, /<id>/mcp or
// /<id>/mcp/. The id is not validated here.
func Agent(path string) (string, bool) {
	rest, ok := strings.CutPrefix(path, "/")
	if !ok {
		return "", false
	}
	rest = strings.TrimSuffix(rest, "/")
	id, ok := strings.CutSuffix(rest, "/mcp")
	if !ok || id == "" || strings.Contains(id, "/") {
		return "", false
	}
	return id, true
}

// Example is one request path and where it must go.
type Example struct {
	Path    string
	Gateway string // name of the gateway route serving it, "" if none
	Agent   string // agent id of an agent path, "" if none
	// NoContent: the front itself answers 204, with no check (Favicon).
	NoContent bool
}

// Contract is the routing every front must implement, asserted against
// dev mode (cmd/mcp-gateway) and the Envoy builder's output (envoy tests),
// for registries holding the agents it names. Agents whose ids start like
// a gateway path (accounting, loginx) are the point: a plain prefix match
// would send them to the authorization server.
var Contract = []Example{
	{Path: "/oauth/token", Gateway: "oauth"},
	{Path: "/oauth/authorize", Gateway: "oauth"},
	{Path: "/.well-known/oauth-authorization-server", Gateway: "well_known"},
	{Path: "/.well-known/oauth-protected-resource/accounting/mcp", Gateway: "well_known"},
	// A public_url with a path (/gw) puts it after the well-known suffix
	// (RFC 9728 §3.1, RFC 8414 §3.1): still the gateway's, and the
	// metadata of /gw/demo/mcp ends in /mcp like an agent path.
	{Path: "/.well-known/oauth-protected-resource/gw/demo/mcp", Gateway: "well_known"},
	{Path: "/.well-known/oauth-authorization-server/gw", Gateway: "well_known"},
	{Path: "/login", Gateway: "login"},
	{Path: "/login/callback", Gateway: "login"},
	{Path: "/consent", Gateway: "consent"},
	{Path: "/account", Gateway: "account"},
	{Path: "/account/keys", Gateway: "account"},
	{Path: "/demo/mcp", Agent: "demo"},
	{Path: "/demo/mcp/", Agent: "demo"},
	{Path: "/accounting/mcp", Agent: "accounting"},
	{Path: "/accounting/mcp/", Agent: "accounting"},
	{Path: "/loginx/mcp", Agent: "loginx"},
	{Path: "/consents/mcp", Agent: "consents"},
	{Path: "/oauthx/mcp", Agent: "oauthx"},
	{Path: "/loginx"},
	{Path: "/accounting"},
	{Path: "/oauth"},
	{Path: "/"},
	{Path: "/demo/mcpx"},
	{Path: "/demo/mcp/extra"},
	{Path: Favicon, NoContent: true},
	{Path: Favicon + "?v=2", NoContent: true},
	{Path: Favicon + "x"},
}

// ContractAgents are the agents Contract assumes exist.
var ContractAgents = []string{"demo", "accounting", "loginx", "consents", "oauthx"}
