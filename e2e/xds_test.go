//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// adsClient is a raw AggregatedDiscoveryService stream that behaves like
// Envoy: it subscribes, and ACKs (version + nonce) or NACKs (error_detail).
type adsClient struct {
	t      *testing.T
	node   *corev3.Node
	stream discovery.AggregatedDiscoveryService_StreamAggregatedResourcesClient

	mu     sync.Mutex
	queued map[string][]*discovery.DiscoveryResponse
	err    error
	wake   chan struct{}
}

func dialADS(t *testing.T, addr, nodeID string) *adsClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); conn.Close() })
	st, err := discovery.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := &adsClient{t: t, stream: st, node: &corev3.Node{Id: nodeID, Cluster: "mcp-gateway"},
		queued: map[string][]*discovery.DiscoveryResponse{}, wake: make(chan struct{}, 1)}
	go func() {
		for {
			r, err := st.Recv()
			c.mu.Lock()
			if err != nil {
				c.err = err
			} else {
				c.queued[r.GetTypeUrl()] = append(c.queued[r.GetTypeUrl()], r)
			}
			c.mu.Unlock()
			select {
			case c.wake <- struct{}{}:
			default:
			}
			if err != nil {
				return
			}
		}
	}()
	return c
}

func (c *adsClient) send(typ, version, nonce string, names []string, nack string) {
	c.t.Helper()
	req := &discovery.DiscoveryRequest{Node: c.node, TypeUrl: typ, VersionInfo: version, ResponseNonce: nonce, ResourceNames: names}
	if nack != "" {
		req.ErrorDetail = &rpcstatus.Status{Code: 3, Message: nack}
	}
	if err := c.stream.Send(req); err != nil {
		c.t.Fatalf("ADS send: %v", err)
	}
}

// next waits up to d for a response of type typ; nil when none came.
func (c *adsClient) next(typ string, d time.Duration) *discovery.DiscoveryResponse {
	c.t.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		if q := c.queued[typ]; len(q) > 0 {
			c.queued[typ] = q[1:]
			c.mu.Unlock()
			return q[0]
		}
		err := c.err
		c.mu.Unlock()
		if err != nil {
			c.t.Fatalf("ADS stream ended: %v", err)
		}
		select {
		case <-c.wake:
		case <-deadline.C:
			return nil
		}
	}
}

func (c *adsClient) must(typ string) *discovery.DiscoveryResponse {
	c.t.Helper()
	r := c.next(typ, 10*time.Second)
	if r == nil {
		c.t.Fatalf("no %s response", typ)
	}
	return r
}

func (c *adsClient) ack(r *discovery.DiscoveryResponse, names []string) {
	c.send(r.GetTypeUrl(), r.GetVersionInfo(), r.GetNonce(), names, "")
}

func clusterNames(t *testing.T, r *discovery.DiscoveryResponse) []string {
	t.Helper()
	var out []string
	for _, a := range r.GetResources() {
		c := &clusterv3.Cluster{}
		if err := a.UnmarshalTo(c); err != nil {
			t.Fatal(err)
		}
		out = append(out, c.GetName())
	}
	return out
}

// routeKeys are the path keys of the public route table's matcher.
func routeKeys(t *testing.T, r *discovery.DiscoveryResponse) []string {
	t.Helper()
	var out []string
	for _, a := range r.GetResources() {
		rc := &routev3.RouteConfiguration{}
		if err := a.UnmarshalTo(rc); err != nil {
			t.Fatal(err)
		}
		for k := range rc.GetVirtualHosts()[0].GetMatcher().GetMatcherTree().GetPrefixMatchMap().GetMap() {
			out = append(out, k)
		}
	}
	return out
}

// waitPush waits (deadline d) for a push of typ satisfying ok, ACKing every
// response on the way as Envoy would; it returns the response and how long
// it took.
func (c *adsClient) waitPush(typ string, names []string, d time.Duration, ok func(*discovery.DiscoveryResponse) bool) (*discovery.DiscoveryResponse, time.Duration) {
	c.t.Helper()
	start := time.Now()
	for {
		left := d - time.Since(start)
		if left <= 0 {
			c.t.Fatalf("no matching %s push within %v", typ, d)
		}
		r := c.next(typ, left)
		if r == nil {
			continue
		}
		c.ack(r, names)
		if ok(r) {
			return r, time.Since(start)
		}
	}
}

// TestXDSFollowsTheRegistry: an Envoy-like ADS client against the real
// serve binary on real Redis gets the static agents, sees an agent created
// through the admin API routed within a second and a deleted one removed,
// survives its own NACK, and gets no new push from a second replica when it
// reconnects there with the version and nonce it has.
func TestXDSFollowsTheRegistry(t *testing.T) {
	gw := startServe(t, nil)
	if gw.StoreURL == "memory" {
		missing(t, "two replicas must share the registry: MCPGW_TEST_REDIS_URL is not set")
	}
	c := dialADS(t, gw.XDSAddr, "envoy-1")
	rds := []string{"mcp"}
	c.send(resourcev3.ClusterType, "", "", nil, "")
	c.send(resourcev3.ListenerType, "", "", nil, "")
	c.send(resourcev3.RouteType, "", "", rds, "")

	cds := c.must(resourcev3.ClusterType)
	if names := clusterNames(t, cds); !slices.Contains(names, "agent_demo") || !slices.Contains(names, "mcp_gateway_authz") {
		t.Fatalf("CDS lacks the static agent or the Check: %v", names)
	}
	c.ack(cds, nil)
	lds := c.must(resourcev3.ListenerType)
	if len(lds.GetResources()) != 2 {
		t.Fatalf("LDS: %d listeners, want mcp_ingress and envoy_stats", len(lds.GetResources()))
	}
	c.ack(lds, nil)
	rdsResp := c.must(resourcev3.RouteType)
	if keys := routeKeys(t, rdsResp); !slices.Contains(keys, "/demo/mcp") || !slices.Contains(keys, "/oauth/") {
		t.Fatalf("RDS lacks /demo/mcp or /oauth/: %v", keys)
	}
	c.ack(rdsResp, rds)

	// Create through the admin API (the CLI): routed within a second.
	upstream := "http://" + gw.AgentAddr + "/mcp"
	created := time.Now()
	out := string(gw.CLI(t, "agents", "create", "--id", "xds-new", "--owner", "alice", "--upstream", upstream))
	if !strings.Contains(out, "Envoy routes /xds-new/mcp") {
		t.Errorf("the CLI does not say the agent is routed:\n%s", out)
	}
	_, cdsLatency := c.waitPush(resourcev3.ClusterType, nil, time.Second, func(r *discovery.DiscoveryResponse) bool {
		return slices.Contains(clusterNames(t, r), "agent_xds-new")
	})
	c.waitPush(resourcev3.RouteType, rds, time.Second, func(r *discovery.DiscoveryResponse) bool {
		return slices.Contains(routeKeys(t, r), "/xds-new/mcp")
	})
	t.Logf("push latency after create (admin answer → CDS push received): %v; RDS after %v", cdsLatency, time.Since(created))

	// The static bootstrap for the current registry has it too (store read).
	ec := exec.Command(gatewayBin(), "envoy-config", "--config", gw.ConfigPath)
	ec.Env = childEnv(nil)
	static, err := ec.Output()
	if err != nil || !strings.Contains(string(static), "cluster_name: agent_xds-new") || !strings.Contains(string(static), "/xds-new/mcp") {
		t.Errorf("envoy-config lacks the new agent (%v):\n%.2000s", err, static)
	}

	// An agent without an upstream: created, and the answer says why it has no route.
	raw := gw.CLI(t, "agents", "create", "--id", "xds-bare", "--owner", "alice", "--json")
	var ans struct {
		Route struct {
			Routed bool   `json:"routed"`
			Note   string `json:"note"`
		} `json:"route"`
	}
	if err := json.Unmarshal(raw, &ans); err != nil || ans.Route.Routed || !strings.Contains(ans.Route.Note, "no upstream") {
		t.Errorf("agent without upstream: answer %s", raw)
	}

	// Delete: gone within a second.
	gw.CLI(t, "agents", "delete", "xds-new")
	_, delLatency := c.waitPush(resourcev3.ClusterType, nil, time.Second, func(r *discovery.DiscoveryResponse) bool {
		return !slices.Contains(clusterNames(t, r), "agent_xds-new")
	})
	last, _ := c.waitPush(resourcev3.RouteType, rds, time.Second, func(r *discovery.DiscoveryResponse) bool {
		return !slices.Contains(routeKeys(t, r), "/xds-new/mcp")
	})
	t.Logf("push latency after delete: %v", delLatency)

	// NACK the next cluster push: the stream goes on and later changes arrive.
	gw.CLI(t, "agents", "create", "--id", "xds-nack", "--owner", "alice", "--upstream", upstream)
	for {
		r := c.must(resourcev3.ClusterType)
		if slices.Contains(clusterNames(t, r), "agent_xds-nack") {
			c.send(resourcev3.ClusterType, "", r.GetNonce(), nil, "test: cluster agent_xds-nack rejected")
			break
		}
		c.ack(r, nil)
	}
	gw.CLI(t, "agents", "create", "--id", "xds-after", "--owner", "alice", "--upstream", upstream)
	after, _ := c.waitPush(resourcev3.ClusterType, nil, 5*time.Second, func(r *discovery.DiscoveryResponse) bool {
		return slices.Contains(clusterNames(t, r), "agent_xds-after")
	})
	c.waitPush(resourcev3.RouteType, rds, 5*time.Second, func(r *discovery.DiscoveryResponse) bool {
		last = r
		return slices.Contains(routeKeys(t, r), "/xds-after/mcp")
	})

	// The admin view shows the node, what it ACKed, and the NACK's error.
	var view struct {
		Versions map[string]string `json:"versions"`
		Nodes    []struct {
			Node    string `json:"node"`
			Cluster string `json:"cluster"`
			Types   map[string]struct {
				Acked     string `json:"acked"`
				NackError string `json:"nack_error"`
				UpToDate  bool   `json:"up_to_date"`
			} `json:"types"`
		} `json:"nodes"`
	}
	adminGet(t, gw, "/admin/v1/xds", &view)
	if len(view.Nodes) != 1 || view.Nodes[0].Node != "envoy-1" || view.Nodes[0].Cluster != "mcp-gateway" {
		t.Fatalf("/admin/v1/xds nodes: %+v", view.Nodes)
	}
	if ct := view.Nodes[0].Types["cluster"]; ct.Acked != after.GetVersionInfo() || !ct.UpToDate || ct.Acked != view.Versions["cluster"] {
		t.Errorf("/admin/v1/xds cluster: %+v, want acked %s (current %s)", ct, after.GetVersionInfo(), view.Versions["cluster"])
	}
	metricsBody := adminText(t, gw, "/metrics")
	if !strings.Contains(metricsBody, `mcp_gateway_xds_nacks_total{type="cluster"} 1`) {
		t.Errorf("metrics lack the NACK:\n%s", grepLines(metricsBody, "mcp_gateway_xds"))
	}

	// A second replica on the same Redis: a fresh stream gets the very same
	// versions; a client that reconnects there with the first replica's
	// version and nonce gets no new push. Replicas of one deployment name
	// the same gateway addresses for Envoy (a service name in production;
	// here replica 1's listeners, which replica 1 defaults to).
	xds2 := freeAddr(t)
	env := map[string]string{
		"MCPGW_LISTEN_HTTP": freeAddr(t), "MCPGW_LISTEN_GRPC": freeAddr(t), "MCPGW_LISTEN_ADMIN": freeAddr(t), "MCPGW_XDS_LISTEN": xds2,
		"MCPGW_XDS_GATEWAY_HTTP": strings.TrimPrefix(gw.HTTPURL, "http://"), "MCPGW_XDS_GATEWAY_GRPC": gw.GRPCAddr,
	}
	p := startProc(t, "serve-2", filepath.Join(gw.Dir, "serve-2.log"), childEnv(env), gatewayBin(),
		"serve", "--config", gw.ConfigPath, "--drain-delay", "0s", "--shutdown-timeout", "3s")
	waitReady(t, p, "/readyz", httpOK("http://"+env["MCPGW_LISTEN_ADMIN"]+"/readyz"))

	fresh := dialADS(t, xds2, "envoy-2")
	fresh.send(resourcev3.ClusterType, "", "", nil, "")
	fresh.send(resourcev3.RouteType, "", "", rds, "")
	if r := fresh.must(resourcev3.ClusterType); r.GetVersionInfo() != after.GetVersionInfo() {
		t.Errorf("replica 2 serves clusters version %s, replica 1 %s", r.GetVersionInfo(), after.GetVersionInfo())
	}
	if r := fresh.must(resourcev3.RouteType); r.GetVersionInfo() != last.GetVersionInfo() {
		t.Errorf("replica 2 serves routes version %s, replica 1 %s", r.GetVersionInfo(), last.GetVersionInfo())
	}

	back := dialADS(t, xds2, "envoy-1")
	back.send(resourcev3.ClusterType, after.GetVersionInfo(), after.GetNonce(), nil, "")
	back.send(resourcev3.RouteType, last.GetVersionInfo(), last.GetNonce(), rds, "")
	// A negative check needs a wait: a push would come at once.
	if r := back.next(resourcev3.ClusterType, 700*time.Millisecond); r != nil {
		t.Errorf("reconnect with the current cluster version got a push (version %s)", r.GetVersionInfo())
	}
	if r := back.next(resourcev3.RouteType, 100*time.Millisecond); r != nil {
		t.Errorf("reconnect with the current route version got a push (version %s)", r.GetVersionInfo())
	}
	// …but it still follows changes, made on the other replica, within a second.
	gw.CLI(t, "agents", "create", "--id", "xds-late", "--owner", "alice", "--upstream", upstream)
	_, crossLatency := back.waitPush(resourcev3.ClusterType, nil, time.Second, func(r *discovery.DiscoveryResponse) bool {
		return slices.Contains(clusterNames(t, r), "agent_xds-late")
	})
	t.Logf("push latency on the other replica (admin answer on replica 1 → push from replica 2): %v", crossLatency)
}

func adminReq(t *testing.T, gw *Gateway, path string) []byte {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, gw.AdminURL+path, nil)
	req.Header.Set("Authorization", "Bearer "+gw.AdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
	}
	return b
}

func adminGet(t *testing.T, gw *Gateway, path string, v any) {
	t.Helper()
	if err := json.Unmarshal(adminReq(t, gw, path), v); err != nil {
		t.Fatal(err)
	}
}

func adminText(t *testing.T, gw *Gateway, path string) string {
	t.Helper()
	return string(adminReq(t, gw, path))
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
