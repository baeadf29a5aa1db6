package authz

import (
	"strings"

	"github.com/mcpgateway/mcp-gateway/internal/resource"
)

// maxPathLen bounds the request target (path + query) we look at; longer
// ones are refused as not-an-MCP-endpoint rather than parsed.
const maxPathLen = 8192

// AgentFromPath returns the agent id of a request target of the form
// /<agent>/mcp or /<agent>/mcp/, optionally followed by ?query. It works on
// the raw target, before any decoding or normalisation, and accepts nothing
// else: percent-encoding anywhere in the path (%2F, %2e…), dot segments,
// empty segments, backslashes, control bytes, spaces, non-ASCII bytes and
// fragments are all refused, so the upstream router can never see a
// different path than the one that was authorised.
func AgentFromPath(target string) (string, bool) {
	if len(target) < len("/a/mcp") || len(target) > maxPathLen || target[0] != '/' {
		return "", false
	}
	for i := 0; i < len(target); i++ {
		if c := target[i]; c <= ' ' || c >= 0x7f || c == '#' {
			return "", false
		}
	}
	p := target[1:]
	if i := strings.IndexByte(p, '?'); i >= 0 {
		p = p[:i]
	}
	// The agent-id alphabet has no '/', '%' or '\', and "." / ".." are
	// refused (ParsePath validates the id), so this rules out every path trick.
	agent, _, ok := resource.ParsePath(p)
	if !ok {
		return "", false
	}
	return agent, true
}
