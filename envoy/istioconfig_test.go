package envoy

import (
	"bytes"
	"slices"
	"strconv"
	"testing"

	"google.golang.org/protobuf/proto"
	corev1 "k8s.io/api/core/v1"

	"github.com/mcpgateway/mcp-gateway/config"
	"github.com/mcpgateway/mcp-gateway/store"
)

// shippedRegistry is the agent registry of the shipped Kubernetes config
// (the mcp-gateway ConfigMap in istio/mcp-gateway.yaml).
func shippedRegistry(t *testing.T, o *istioObjects) []store.Agent {
	t.Helper()
	var cm *corev1.ConfigMap
	for _, c := range o.configMaps {
		if c.Name == "mcp-gateway-config" {
			cm = c
		}
	}
	if cm == nil {
		t.Fatal("no mcp-gateway-config ConfigMap")
	}
	cfg, err := config.Parse("config.yaml", []byte(cm.Data["config.yaml"]), mapLookup(map[string]string{
		"MCPGW_STORE_URL": "redis://redis.test:6379/0", "MCPGW_ADMIN_TOKEN": "stand-in-admin-token-of-32-bytes-or-more",
		"MCPGW_LOGIN_USERS": `[{"username":"alice","password_hash":"$2a$10$XyvXEsZur2cBHpHkjBJFIOpmGzhcV35iXOjC/IKwnyS5jfXMJSlmm"}]`,
	}), false)
	if err != nil {
		t.Fatal(err)
	}
	var agents []store.Agent
	for _, a := range cfg.Agents {
		agents = append(agents, store.Agent{AgentSpec: a.AgentSpec, Static: true})
	}
	return agents
}

// The shipped VirtualService is istio-config's output for the shipped
// registry: one source, no drift.
func TestIstioConfigIsShipped(t *testing.T) {
	o, err := loadIstio(t, readIstioFiles(t))
	if err != nil {
		t.Fatal(err)
	}
	routes, errs := AgentRoutes(shippedRegistry(t, o))
	if len(errs) > 0 || len(routes) == 0 {
		t.Fatalf("routes %v, errors %v", routes, errs)
	}
	if len(o.virtuals) != 1 {
		t.Fatalf("%d VirtualServices shipped, want 1", len(o.virtuals))
	}
	if want := IstioVirtualService(routes, IstioOptions{}); !proto.Equal(o.virtuals[0], want) {
		y, _ := IstioConfig(routes, IstioOptions{})
		t.Fatalf("istio/ingress.yaml's VirtualService is not istio-config's output; replace it with:\n%s", y)
	}
}

// istio-config's output for a registry decodes strictly into Istio's API
// types, routes every agent to its server and nothing else, and passes the
// same cross-checks as the shipped manifests when it replaces their
// VirtualService.
func TestIstioConfigRegistry(t *testing.T) {
	registry := []store.Agent{
		{AgentSpec: store.AgentSpec{ID: "demo", Upstream: "http://demo-agent.mcp-gateway.svc.cluster.local:3000/mcp"}},
		{AgentSpec: store.AgentSpec{ID: "reports.v2", Upstream: "http://reports.tools.svc.cluster.local:8080/api/mcp"}},
		{AgentSpec: store.AgentSpec{ID: "Case_x", Upstream: "http://upper.tools.svc.cluster.local:80/"}},
		{AgentSpec: store.AgentSpec{ID: "saas", Upstream: "https://mcp.saas.example/v1/mcp"}},
		{AgentSpec: store.AgentSpec{ID: "saas2", Upstream: "https://mcp.saas.example/v2/mcp"}},
		{AgentSpec: store.AgentSpec{ID: "no-upstream"}},
	}
	routes, errs := AgentRoutes(registry)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	y, err := IstioConfig(routes, IstioOptions{})
	if err != nil {
		t.Fatal(err)
	}
	again, _ := IstioConfig(routes, IstioOptions{})
	if y != again {
		t.Fatal("two renderings of one registry differ")
	}
	files := readIstioFiles(t)
	ingress := files["istio/ingress.yaml"]
	files["istio/ingress.yaml"] = ingress[:bytes.Index(ingress, []byte("---\napiVersion: networking.istio.io/v1\nkind: VirtualService"))]
	files["generated.yaml"] = []byte(y)
	o, err := loadIstio(t, files)
	if err != nil {
		t.Fatalf("generated manifests do not decode: %v\n%s", err, y)
	}
	if len(o.virtuals) != 1 || len(o.destRules) != 1 {
		t.Fatalf("%d VirtualServices, %d DestinationRules; want 1 and 1 (one https server)", len(o.virtuals), len(o.destRules))
	}
	// The extra agents' Services, so the cross-checks can find them.
	for _, s := range []struct {
		name string
		port int32
	}{{"reports", 8080}, {"upper", 80}} {
		svc := &corev1.Service{Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: s.port}}}}
		svc.Name, svc.Namespace = s.name, "tools"
		o.services = append(o.services, svc)
	}
	if err := checkIstio(o); err != nil {
		t.Fatal(err)
	}
	vs := o.virtuals[0]
	custom := o.policies["istio-system/mcp-gateway-ext-authz"]
	for path, want := range map[string]string{
		"/demo/mcp": "demo-agent.mcp-gateway.svc.cluster.local:3000 /mcp", "/demo/mcp/": "demo-agent.mcp-gateway.svc.cluster.local:3000 /mcp",
		"/reports.v2/mcp": "reports.tools.svc.cluster.local:8080 /api/mcp", "/Case_x/mcp/": "upper.tools.svc.cluster.local:80 /",
		"/saas/mcp": "mcp.saas.example:443 /v1/mcp", "/saas2/mcp": "mcp.saas.example:443 /v2/mcp",
		"/no-upstream/mcp": "", "/case_x/mcp": "", "/reportsXv2/mcp": "", "/demo/mcp/x": "", "/x/demo/mcp": "", "/demo": "",
	} {
		host, port, name, err := vsRoute(vs, path)
		if err != nil {
			t.Fatal(err)
		}
		got := ""
		if host != "" {
			var rw string
			for _, r := range vs.GetHttp() {
				if r.GetName() == name {
					rw = r.GetRewrite().GetUri()
					if r.GetTimeout().AsDuration() != 0 || r.GetTimeout() == nil {
						t.Errorf("%s: route timeout %v, want 0s (SSE)", path, r.GetTimeout())
					}
				}
			}
			got = host + ":" + strconv.Itoa(int(port)) + " " + rw
			if !checkedByCustom(custom, path) {
				t.Errorf("%s is routed but the CUSTOM policy does not check it", path)
			}
		}
		if got != want {
			t.Errorf("%s routes to %q, want %q", path, got, want)
		}
	}
	dr := o.destRules[0]
	if dr.GetHost() != "mcp.saas.example" || len(dr.GetTrafficPolicy().GetPortLevelSettings()) != 1 {
		t.Fatalf("DestinationRule %v", dr)
	}
	tls := dr.GetTrafficPolicy().GetPortLevelSettings()[0]
	if tls.GetPort().GetNumber() != 443 || tls.GetTls().GetMode().String() != "SIMPLE" || tls.GetTls().GetSni() != "mcp.saas.example" {
		t.Errorf("TLS origination %v", tls)
	}
}

// An agent whose upstream_auth is Authorization keeps the Check's value:
// its route removes nothing (the route's removal would run after ext_authz);
// every other agent's route still removes the client's token, as does an
// agent whose declaration is invalid (the Check refuses it anyway).
func TestIstioKeepsUpstreamAuthorization(t *testing.T) {
	routes, errs := AgentRoutes([]store.Agent{
		{AgentSpec: store.AgentSpec{ID: "plain", Upstream: "http://plain:3000/mcp"}},
		{AgentSpec: store.AgentSpec{ID: "bearer", Upstream: "http://bearer:3000/mcp", UpstreamAuth: &store.UpstreamAuth{Header: "Authorization", Prefix: "Bearer ", SecretFile: "b.token"}}},
		{AgentSpec: store.AgentSpec{ID: "keyed", Upstream: "http://keyed:3000/mcp", UpstreamAuth: &store.UpstreamAuth{Header: "x-api-key", SecretEnv: "MCPGW_UPSTREAM_SECRET_K"}}},
		{AgentSpec: store.AgentSpec{ID: "bad", Upstream: "http://bad:3000/mcp", UpstreamAuth: &store.UpstreamAuth{Header: "authorization", SecretFile: "../x"}}},
	})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	want := map[string][]string{"agent-plain": {"authorization"}, "agent-bearer": nil, "agent-keyed": {"authorization"}, "agent-bad": {"authorization"}}
	vs := IstioVirtualService(routes, IstioOptions{})
	seen := 0
	for _, r := range vs.GetHttp() {
		w, ok := want[r.GetName()]
		if !ok {
			continue
		}
		seen++
		if got := r.GetHeaders().GetRequest().GetRemove(); !slices.Equal(got, w) {
			t.Errorf("route %s removes %v, want %v", r.GetName(), got, w)
		}
	}
	if seen != len(want) {
		t.Fatalf("%d agent routes, want %d", seen, len(want))
	}
}
