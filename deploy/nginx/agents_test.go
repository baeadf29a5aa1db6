package nginx

import (
	"strings"
	"testing"

	"github.com/mcpgateway/mcp-gateway/envoy"
	"github.com/mcpgateway/mcp-gateway/store"
)

// browserClientHeaders must be in every front's Access-Control-Allow-Headers
// for agents (issue 16 item 7); the same list as envoy/validate_test.go's,
// which checks the Envoy and Istio fronts.
var browserClientHeaders = []string{"authorization", "content-type", "mcp-protocol-version", "mcp-session-id", "mcp-method", "mcp-name", "last-event-id", "*"}

func TestNginxAgents(t *testing.T) {
	routes, _ := envoy.AgentRoutes([]store.Agent{
		{AgentSpec: store.AgentSpec{ID: "b", Upstream: "http://10.0.0.2:3000/mcp"}},
		{AgentSpec: store.AgentSpec{ID: "a", Upstream: "http://10.0.0.2:3000/other"}},
		{AgentSpec: store.AgentSpec{ID: "A.b", Upstream: "https://secure.example/mcp"}},
		{AgentSpec: store.AgentSpec{ID: "a.b", Upstream: "http://10.0.0.3/mcp"}},
	})
	out, err := NginxAgents(routes, NginxAgentsOptions{})
	if err != nil {
		t.Fatal(err)
	}
	again, _ := NginxAgents(routes, NginxAgentsOptions{})
	if out != again {
		t.Fatal("two renderings of one registry differ")
	}
	for _, want := range []string{
		"upstream mcp_agent_1 {\n    server 10.0.0.2:3000;", // one upstream per server, sorted
		"upstream mcp_agent_2 {\n    server 10.0.0.3:80;",
		"upstream mcp_agent_3 {\n    server secure.example:443;",
		"    a http://mcp_agent_1/other;", "    b http://mcp_agent_1/mcp;",
		`    "~^A[.]b$" https://mcp_agent_3/mcp;`, `    "~^a[.]b$" http://mcp_agent_2/mcp;`, // equal but for case: regexes
		`    "~^A[.]b$" A.b;`, "    a a;",
		`    "~^A[.]b$" secure.example;`, // Host and SNI
		"proxy_ssl_verify on;", "proxy_ssl_trusted_certificate " + DefaultCAFile + ";",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("agents include lacks %q:\n%s", want, out)
		}
	}
	if strings.Count(out, "upstream ") != 3 {
		t.Errorf("want 3 upstream blocks:\n%s", out)
	}
	plainOnly, _ := NginxAgents(routes[1:2], NginxAgentsOptions{})
	if strings.Contains(plainOnly, "proxy_ssl") {
		t.Errorf("TLS settings without an https agent:\n%s", plainOnly)
	}
	for _, ca := range []string{"relative.pem", "/a b.pem", "/x;y"} {
		if _, err := NginxAgents(routes, NginxAgentsOptions{CAFile: ca}); err == nil {
			t.Errorf("CA file %q accepted", ca)
		}
	}
}
