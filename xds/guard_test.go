package xds

import (
	"strings"
	"testing"

	"github.com/mcpgateway/mcp-gateway/store"
)

func TestGuardRefusesInternalUpstreams(t *testing.T) {
	g, err := NewGuard(nil)
	if err != nil {
		t.Fatal(err)
	}
	for raw, want := range map[string]string{
		"http://127.0.0.1:3000/mcp":                           "loopback",
		"http://[::1]/mcp":                                    "loopback",
		"http://localhost:8080/mcp":                           "loopback",
		"http://app.localhost/mcp":                            "loopback",
		"http://0.0.0.0/mcp":                                  "loopback",
		"http://169.254.169.254/latest/meta-data/":            "link-local",
		"http://[fe80::1]/mcp":                                "link-local",
		"http://[fd00:ec2::254]/":                             "metadata",
		"http://metadata.google.internal/":                    "metadata",
		"http://[::ffff:127.0.0.1]/mcp":                       "loopback",
		"ftp://agent/mcp":                                     "scheme",
		"http://user:pw@agent/mcp":                            "userinfo",
		"http:///mcp":                                         "no host",
		"https://agent/mcp#x":                                 "fragment",
		"http://agent/" + strings.Repeat("a", MaxUpstreamLen): "longer",
	} {
		err := g.Check(raw)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%.60s: %v, want an error about %s", raw, err, want)
		}
	}
	for _, ok := range []string{"http://agent:3000/mcp", "https://mcp.example.com/v1", "http://10.0.0.7:8080/mcp", "http://[2001:db8::1]/mcp"} {
		if err := g.Check(ok); err != nil {
			t.Errorf("%s refused: %v", ok, err)
		}
	}
	allow, err := NewGuard([]string{"127.0.0.1", "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	for _, ok := range []string{"http://127.0.0.1:3000/mcp", "http://localhost/mcp"} {
		if err := allow.Check(ok); err != nil {
			t.Errorf("%s refused although allowed: %v", ok, err)
		}
	}
	if allow.Check("http://169.254.169.254/") == nil {
		t.Error("the allow-list for loopback let metadata through")
	}
	if _, err := NewGuard([]string{"http://x"}); err == nil {
		t.Error("a URL accepted as an allowed host")
	}
}

// An agent refused by the guard, or without an upstream, gets no route and a reason.
func TestBuildSkipsUnroutableAgents(t *testing.T) {
	res, err := Build(testOpts, []store.Agent{
		{AgentSpec: store.AgentSpec{ID: "ok", Upstream: "http://agent:3000/mcp"}},
		{AgentSpec: store.AgentSpec{ID: "bare"}},
		{AgentSpec: store.AgentSpec{ID: "local", Upstream: "http://127.0.0.1:3000/mcp"}},
		{AgentSpec: store.AgentSpec{ID: "query", Upstream: "http://agent:3000/mcp?key=1"}},
	}, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Routed) != 1 || res.Routed[0] != "ok" {
		t.Errorf("routed %v, want [ok]", res.Routed)
	}
	for id, want := range map[string]string{"bare": "no upstream", "local": "loopback", "query": "query"} {
		if !strings.Contains(res.Unrouted[id], want) {
			t.Errorf("%s: reason %q, want %q", id, res.Unrouted[id], want)
		}
	}
	for _, c := range res.Clusters {
		if c.GetName() == AgentCluster("local") || c.GetName() == AgentCluster("bare") {
			t.Errorf("cluster %s built for an unroutable agent", c.GetName())
		}
	}
}
