package envoy

import (
	"fmt"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	"google.golang.org/protobuf/proto"

	"github.com/mcpgateway/mcp-gateway/envoy/envoytest"
	"github.com/mcpgateway/mcp-gateway/internal/routes"
	"github.com/mcpgateway/mcp-gateway/store"
	"github.com/mcpgateway/mcp-gateway/xds"
)

var xdsModes = []xds.Mode{xds.ModeGRPC, xds.ModeHTTPService}

func xdsOptions(mode xds.Mode) xds.Options {
	g, _ := xds.NewGuard([]string{"10.9.0.0/16"})
	return xds.Options{Mode: mode, GatewayHTTP: "gateway:8080", GatewayGRPC: "gateway:9191", CheckUpstream: g.Check}
}

// mixedAgents: http and https, names and IPs, ports and none, paths and
// none, one without upstream and one refused (loopback).
func mixedAgents(n int) []store.Agent {
	var out []store.Agent
	for i := range n {
		up := ""
		switch i % 5 {
		case 0:
			up = fmt.Sprintf("http://agent-%d:3000/mcp", i)
		case 1:
			up = fmt.Sprintf("https://agent-%d.example.com/v1/mcp", i)
		case 2:
			up = fmt.Sprintf("https://10.9.%d.%d:8443", i/250%250, i%250+1)
		case 3:
			up = fmt.Sprintf("http://agent-%d.ns.svc.cluster.local", i)
		case 4:
			up = fmt.Sprintf("https://[2001:db8::%x]:443/mcp/", i)
		}
		a := store.Agent{AgentSpec: store.AgentSpec{ID: fmt.Sprintf("a%d.x_y-%d", i, i), Owner: "o", Upstream: up}}
		if i%3 == 0 { // a tool policy: the route sends the Check the body
			a.Rules = []store.Rule{{Method: "tools/call", Target: "admin_*", Scopes: []string{"mcp:admin"}}}
		}
		switch i % 4 { // an upstream credential: http_service passes it, the route keeps Authorization
		case 1:
			a.UpstreamAuth = &store.UpstreamAuth{Header: "authorization", Prefix: "Bearer ", SecretFile: fmt.Sprintf("a%d.token", i)}
		case 2:
			a.UpstreamAuth = &store.UpstreamAuth{Header: "x-api-key", SecretEnv: "MCPGW_UPSTREAM_SECRET_A"}
		}
		out = append(out, a)
	}
	return append(out,
		store.Agent{AgentSpec: store.AgentSpec{ID: "no-upstream", Owner: "o"}},
		store.Agent{AgentSpec: store.AgentSpec{ID: "loopback", Owner: "o", Upstream: "http://127.0.0.1:3000/mcp"}},
		store.Agent{AgentSpec: store.AgentSpec{ID: "metadata", Owner: "o", Upstream: "http://169.254.169.254/latest"}})
}

// TestXDSResourcesValidate: every resource the ADS server sends passes
// ValidateAll with each nested Any unpacked and validated (the walker of
// envoytest), names only clusters that exist, uses no deprecated
// field; the snapshot is Consistent (xds.Snapshot checks it).
func TestXDSResourcesValidate(t *testing.T) {
	for _, mode := range xdsModes {
		t.Run(string(mode), func(t *testing.T) {
			opts := xdsOptions(mode)
			opts.UpstreamCAFile = "/etc/mcp-gateway/agents-ca.pem"
			_, res, err := xds.Snapshot(opts, mixedAgents(60))
			if err != nil {
				t.Fatal(err)
			}
			for _, id := range []string{"no-upstream", "loopback", "metadata"} {
				if res.Unrouted[id] == "" {
					t.Errorf("agent %s routed, want refused", id)
				}
			}
			if len(res.Routed) != 60 {
				t.Errorf("%d agents routed, want 60 (%v)", len(res.Routed), res.Unrouted)
			}
			var msgs []proto.Message
			for _, c := range res.Clusters {
				msgs = append(msgs, c)
			}
			for _, l := range res.Listeners {
				msgs = append(msgs, l)
			}
			for _, r := range res.Routes {
				msgs = append(msgs, r)
			}
			if err := envoytest.CheckResources(msgs...); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestXDSRoutesTheContract: the builder's output routes every path of the
// shared contract (internal/routes, also asserted against dev mode) and
// passes the shipped-bootstrap checks, in both modes.
func TestXDSRoutesTheContract(t *testing.T) {
	var agents []store.Agent
	for _, id := range routes.ContractAgents {
		agents = append(agents, store.Agent{AgentSpec: store.AgentSpec{ID: id, Owner: "o", Upstream: "http://" + id + "-svc:3000/mcp"}})
	}
	for _, mode := range xdsModes {
		t.Run(string(mode), func(t *testing.T) {
			b, _, err := xds.StaticBootstrap(xdsOptions(mode), agents)
			if err != nil {
				t.Fatal(err)
			}
			if err := checkShipped(b); err != nil {
				t.Fatal(err)
			}
			public := publicOf(t, b)
			for _, e := range routes.Contract {
				got, err := envoytest.Route(public, "localhost:8000", e.Path)
				if err != nil {
					t.Errorf("%s: %v", e.Path, err)
					continue
				}
				switch {
				case e.NoContent:
					if got.Cluster != "" || got.Status != 204 || got.Authz {
						t.Errorf("%s: cluster %q status %d authz %v, want 204 without a check", e.Path, got.Cluster, got.Status, got.Authz)
					}
				case e.Gateway != "":
					if got.Cluster != xds.ClusterHTTP || got.Route.GetName() != e.Gateway || got.Authz {
						t.Errorf("%s: route %q cluster %q authz %v, want gateway route %s without a check", e.Path, got.Route.GetName(), got.Cluster, got.Authz, e.Gateway)
					}
				case e.Agent != "":
					if got.Cluster != xds.AgentCluster(e.Agent) || !got.Authz || got.Path != "/mcp" {
						t.Errorf("%s: cluster %q authz %v upstream path %q, want %s, checked, /mcp", e.Path, got.Cluster, got.Authz, got.Path, xds.AgentCluster(e.Agent))
					}
				default:
					if got.Cluster != "" || got.Status != 404 {
						t.Errorf("%s: cluster %q status %d, want 404", e.Path, got.Cluster, got.Status)
					}
				}
			}
		})
	}
}

// TestXDSScaleRoutes: at 2,000 agents each agent's paths still reach it (the
// prefix map), and neighbours' paths do not cross.
func TestXDSScaleRoutes(t *testing.T) {
	var agents []store.Agent
	for i := range 2000 {
		agents = append(agents, store.Agent{AgentSpec: store.AgentSpec{ID: fmt.Sprintf("agent-%d", i), Owner: "o", Upstream: fmt.Sprintf("http://svc-%d:80/p%d", i, i)}})
	}
	b, _, err := xds.StaticBootstrap(xdsOptions(xds.ModeGRPC), agents)
	if err != nil {
		t.Fatal(err)
	}
	public := publicOf(t, b)
	for _, i := range []int{0, 1, 10, 19, 100, 1999} {
		for _, p := range []string{fmt.Sprintf("/agent-%d/mcp", i), fmt.Sprintf("/agent-%d/mcp/?x=1", i)} {
			got, err := envoytest.Route(public, "h", p)
			if err != nil || got.Cluster != fmt.Sprintf("agent_agent-%d", i) || got.Path != fmt.Sprintf("/p%d", i) {
				t.Errorf("%s: %+v %v", p, got, err)
			}
		}
	}
	if got, err := envoytest.Route(public, "h", "/agent-1/mcp0"); err != nil || got.Status != 404 {
		t.Errorf("/agent-1/mcp0: %+v %v", got, err)
	}
}

func publicOf(t *testing.T, b *bootstrapv3.Bootstrap) *envoytest.ConnectionManager {
	t.Helper()
	hcms, err := envoytest.ConnectionManagers(b)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hcms {
		if h.Listener == xds.ListenerPublic {
			return h
		}
	}
	t.Fatal("no public listener")
	return nil
}

// Every ADS bootstrap variant envoy-config --ads can print validates.
func TestADSBootstrapVariants(t *testing.T) {
	for name, o := range map[string]xds.ADSBootstrapOptions{
		"plain": {NodeID: "envoy", NodeCluster: "mcp-gateway", Server: "gateway:18000"},
		"delta": {NodeID: "envoy", NodeCluster: "mcp-gateway", Server: "gateway:18000", Delta: true},
		"tls":   {NodeID: "envoy", NodeCluster: "mcp-gateway", Server: "cp.example.com:18000", TLS: true},
		"mtls": {NodeID: "envoy", NodeCluster: "mcp-gateway", Server: "10.0.0.5:18000", TLS: true,
			CAFile: "/etc/envoy/ca.pem", CertFile: "/etc/envoy/client.pem", KeyFile: "/etc/envoy/client-key.pem"},
	} {
		t.Run(name, func(t *testing.T) {
			y, err := xds.RenderADS(o, "test")
			if err != nil {
				t.Fatal(err)
			}
			b, err := envoytest.DecodeBootstrap(y)
			if err != nil {
				t.Fatal(err)
			}
			if err := envoytest.ValidateBootstrap(b); err != nil {
				t.Fatal(err)
			}
			if b.GetNode().GetCluster() != "mcp-gateway" || len(b.GetStaticResources().GetClusters()) != 1 {
				t.Fatalf("node %v, %d static clusters", b.GetNode(), len(b.GetStaticResources().GetClusters()))
			}
		})
	}
}
