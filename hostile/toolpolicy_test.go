package hostile

import (
	"context"
	"maps"
	"strings"
	"testing"

	"github.com/mcpgateway/mcp-gateway/store"
)

// Issue 13: attempts to get a tool call past an agent's tool policy through
// the dev proxy, which reads the JSON-RPC body: headers that lie about the
// body, keys only some decoders read, batches, bodies too large to read, and
// malformed Base64 names. None may reach the agent.

// ruledAgent guards admin_* with mcp:admin, which the cases' tokens lack.
func ruledAgent(upstreamURL string) *store.Agent {
	return &store.Agent{AgentSpec: store.AgentSpec{
		ID: "ruled", Owner: "alice", Upstream: upstreamURL,
		Rules: []store.Rule{{Name: "admin", Method: "tools/call", Target: "admin_*", Scopes: []string{"mcp:admin"}}},
	}}
}

func policyCase(name string, status int, errCode string, hdr [][2]string, body string) attack {
	return attack{name: "policy/" + name, want: want{status, errCode, kJSON, nil},
		run: func(t *testing.T, g *gw) *reply {
			if err := g.st.Store.PutAgent(context.Background(), ruledAgent(g.up.ts.URL)); err != nil {
				t.Fatal(err)
			}
			tok := g.good(nil)
			g.begin()
			h := append([][2]string{{"Authorization", "Bearer " + tok}, {"Content-Type", "application/json"}}, hdr...)
			return g.raw("POST", "/ruled/mcp", h, body)
		},
		then: upstreamUntouched}
}

func adminCall(extra string) string {
	return `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"admin_echo","arguments":{}}` + extra + `}`
}

var modernEcho = [][2]string{{"MCP-Protocol-Version", "2026-07-28"}, {"Mcp-Method", "tools/call"}, {"Mcp-Name", "echo"}}

func policyCases() []attack {
	return []attack{
		policyCase("headers_name_echo_body_calls_admin", 400, "invalid_request", modernEcho, adminCall("")),
		policyCase("old_version_headers_lie", 400, "invalid_request", [][2]string{{"Mcp-Method", "tools/call"}, {"Mcp-Name", "echo"}}, adminCall("")),
		policyCase("method_key_case_variant", 400, "invalid_request", nil, `{"jsonrpc":"2.0","id":1,"method":"tools/list","METHOD":"tools/call","params":{"name":"admin_echo"}}`),
		policyCase("name_key_case_variant", 400, "invalid_request", nil, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","Name":"admin_echo"}}`),
		policyCase("escaped_duplicate_method", 403, "insufficient_scope", nil, `{"jsonrpc":"2.0","id":1,"method":"tools/list","\u006dethod":"tools/call","params":{"name":"admin_echo"}}`),
		policyCase("escaped_name", 403, "insufficient_scope", nil, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"\u0061dmin_echo"}}`),
		policyCase("batch", 400, "invalid_request", nil, "["+adminCall("")+"]"),
		policyCase("oversized_body", 413, "invalid_request", nil, adminCall(`,"pad":"`+strings.Repeat("x", 70<<10)+`"`)),
		policyCase("base64_name_malformed", 400, "invalid_request", [][2]string{{"MCP-Protocol-Version", "2026-07-28"}, {"Mcp-Method", "tools/call"}, {"Mcp-Name", "=?base64?YWRtaW5fZWNobw?=="}}, ""),
		policyCase("base64_name_hides_admin", 403, "insufficient_scope", [][2]string{{"MCP-Protocol-Version", "2026-07-28"}, {"Mcp-Method", "tools/call"}, {"Mcp-Name", "=?base64?YWRtaW5fZWNobw==?="}}, adminCall("")),
		policyCase("no_method_header_body_decides", 403, "insufficient_scope", [][2]string{{"MCP-Protocol-Version", "2026-07-28"}}, adminCall("")),
	}
}

func TestHostileToolPolicy(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			for _, c := range policyCases() {
				t.Run(c.name, func(t *testing.T) {
					t.Parallel()
					g := newGW(t, b, c.tweak)
					r := c.run(t, g)
					writes := g.end()
					c.want.verify(t, g, r)
					if len(writes) > 0 && !maps.Equal(writes, c.want.writes) {
						t.Errorf("store writes during the attack: %v", writes)
					}
					if c.then != nil && !t.Failed() {
						c.then(t, g, r)
					}
					g.assertNoSecretsLogged(t)
				})
			}
		})
	}
}
