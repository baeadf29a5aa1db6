package config

import (
	"fmt"
	"net/url"
	"strings"
)

// DevAgentOrigins are admitted on /<agent>/mcp in dev mode besides the
// public URL's origin: MCP Inspector's web UI, a browser client a newcomer
// tries first.
var DevAgentOrigins = []string{"http://localhost:6274", "http://127.0.0.1:6274"}

// OriginOf returns the Origin a browser sends for pages of the absolute URL
// u (scheme://host[:port], lower case, default port dropped), or "" when u
// is not an absolute http(s) URL.
func OriginOf(u string) string {
	p, err := url.Parse(u)
	if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
		return ""
	}
	host := strings.ToLower(p.Host)
	if port := p.Port(); (p.Scheme == "http" && port == "80") || (p.Scheme == "https" && port == "443") {
		host = strings.TrimSuffix(host, ":"+port)
	}
	return p.Scheme + "://" + host
}

// validateAgentOrigins: each entry is "*" or an origin written exactly as a
// browser sends it, since the gateway compares Origin headers byte for byte.
func validateAgentOrigins(origins []string, bad func(field, format string, a ...any)) {
	for i, o := range origins {
		if o == "*" {
			continue
		}
		if p, err := url.Parse(o); err != nil || p.User != nil || p.Path != "" || p.RawQuery != "" || p.Fragment != "" || OriginOf(o) != o {
			bad(fmt.Sprintf("agent_origins[%d]", i), "%q is not an origin as browsers send it: scheme://host[:port], lower case, no path, no default port (or \"*\")", o)
		}
	}
}
