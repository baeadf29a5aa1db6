package envoy

import (
	"strings"
	"testing"

	"github.com/mcpgateway/mcp-gateway/store"
)

func TestAgentRoutes(t *testing.T) {
	routes, errs := AgentRoutes([]store.Agent{
		{AgentSpec: store.AgentSpec{ID: "zeta", Upstream: "https://z.example:8443/a/mcp"}},
		{AgentSpec: store.AgentSpec{ID: "alpha", Upstream: "http://10.0.0.1"}},
		{AgentSpec: store.AgentSpec{ID: "v6", Upstream: "http://[fd00::1]:3000/mcp"}},
		{AgentSpec: store.AgentSpec{ID: "none"}},
		{AgentSpec: store.AgentSpec{ID: "alpha", Upstream: "http://shadowed.example/mcp"}}, // the first of an id wins (static before store)
	})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	want := []AgentRoute{
		{ID: "alpha", Scheme: "http", Host: "10.0.0.1", Port: "80", Path: "/", HostHeader: "10.0.0.1"},
		{ID: "v6", Scheme: "http", Host: "fd00::1", Port: "3000", Path: "/mcp", HostHeader: "[fd00::1]:3000"},
		{ID: "zeta", Scheme: "https", Host: "z.example", Port: "8443", Path: "/a/mcp", HostHeader: "z.example:8443"},
	}
	if len(routes) != len(want) {
		t.Fatalf("routes %+v", routes)
	}
	for i := range want {
		if routes[i] != want[i] {
			t.Errorf("route %d = %+v, want %+v", i, routes[i], want[i])
		}
	}
	if routes[1].Authority() != "[fd00::1]:3000" {
		t.Errorf("authority %q", routes[1].Authority())
	}

	// Each refused upstream costs its agent the route, never the others'.
	bad := map[string]string{
		"ftp://h/mcp":                      "scheme",
		"http://user:pw@h/mcp":             "userinfo",
		"http://h/mcp?x=1":                 "query",
		"http://h/mcp?":                    "query",
		"http://h/mcp#f":                   "fragment",
		"http:///mcp":                      "no host",
		"http:opaque":                      "no host",
		"http://h/mc'p":                    "characters",
		"http://h/a;include /etc/passwd;b": "characters",
		"http://h/$host":                   "characters",
		"http://h/%7B%7D":                  "",
	}
	for up, why := range bad {
		routes, errs := AgentRoutes([]store.Agent{{AgentSpec: store.AgentSpec{ID: "x", Upstream: up}}, {AgentSpec: store.AgentSpec{ID: "ok", Upstream: "http://h/mcp"}}})
		if why == "" { // escaped: fine
			if len(errs) != 0 || len(routes) != 2 {
				t.Errorf("%s: %v %v", up, routes, errs)
			}
			continue
		}
		if len(errs) != 1 || !strings.Contains(errs[0].Error(), why) || !strings.Contains(errs[0].Error(), `"x"`) || len(routes) != 1 || routes[0].ID != "ok" {
			t.Errorf("%s: routes %v, errors %v; want only ok routed and an error about %s", up, routes, errs, why)
		}
		if strings.Contains(up, "pw") && strings.Contains(errs[0].Error(), "pw") {
			t.Errorf("the error shows the password: %v", errs[0])
		}
	}
	if _, errs := AgentRoutes([]store.Agent{{AgentSpec: store.AgentSpec{ID: "oauth", Upstream: "http://h/mcp"}}, {AgentSpec: store.AgentSpec{ID: "a b", Upstream: "http://h/mcp"}}}); len(errs) != 2 {
		t.Errorf("reserved or invalid ids routed: %v", errs)
	}
}
