package authz

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/test/bufconn"

	"github.com/mcpgateway/mcp-gateway/internal/metrics"
	"github.com/mcpgateway/mcp-gateway/store"
	"github.com/mcpgateway/mcp-gateway/store/memstore"
	"github.com/mcpgateway/mcp-gateway/token"
)

func TestAgentFromPath(t *testing.T) {
	for path, want := range map[string]string{
		"/demo/mcp":                             "demo",
		"/demo/mcp/":                            "demo",
		"/demo/mcp?":                            "demo",
		"/demo/mcp?a=b&c=%2F..":                 "demo",
		"/a.b_c-D9/mcp":                         "a.b_c-D9",
		"/.../mcp":                              "...", // not a dot segment
		"/" + strings.Repeat("x", 128) + "/mcp": strings.Repeat("x", 128),
	} {
		if got, ok := AgentFromPath(path); !ok || got != want {
			t.Errorf("%q: got %q %v, want %q", path, got, ok, want)
		}
	}
	for _, path := range []string{
		"", "/", "/mcp", "//mcp", "/./mcp", "/../mcp", "demo/mcp", "/demo/mcp//",
		"/demo/mcp/x", "/demo/mcp/?x#", "/demo/MCP", "/demo/mcp ", "/de mo/mcp", "/demo%2Fmcp", "/de%6Do/mcp",
		"/demo/mcp\x00", "/demo/mcp\r\n", "/demo\\mcp", "/demo/mcp#", "/d\x7fmo/mcp", "/dé/mcp",
		"/" + strings.Repeat("x", 129) + "/mcp", "/a/b/mcp", "*", "http://x/demo/mcp",
	} {
		if got, ok := AgentFromPath(path); ok {
			t.Errorf("%q accepted as agent %q", path, got)
		}
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	ring := newRing(t)
	st := memstore.New()
	defer st.Close()
	good := Options{PublicURL: pub, Scopes: []string{"mcp"}, Ring: ring, Store: st}
	for name, mod := range map[string]func(*Options){
		"relative url":   func(o *Options) { o.PublicURL = "/x" },
		"ftp url":        func(o *Options) { o.PublicURL = "ftp://x" },
		"url with query": func(o *Options) { o.PublicURL = pub + "?a=1" },
		"no ring":        func(o *Options) { o.Ring = nil },
		"no store":       func(o *Options) { o.Store = nil },
		"no scopes":      func(o *Options) { o.Scopes = nil },
		"quoted scope":   func(o *Options) { o.Scopes = []string{`a"b`} },
		"bad static id":  func(o *Options) { o.StaticAgents = []store.Agent{{AgentSpec: store.AgentSpec{ID: "a/b", Owner: "x"}}} },
		"dup static agent": func(o *Options) {
			o.StaticAgents = []store.Agent{{AgentSpec: store.AgentSpec{ID: "a", Owner: "x"}}, {AgentSpec: store.AgentSpec{ID: "a", Owner: "y"}}}
		},
	} {
		o := good
		mod(&o)
		if _, err := New(o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := New(good); err != nil {
		t.Fatal(err)
	}
}

func TestNegativeCacheAndTTL(t *testing.T) {
	e, f, clock := flakyEnv(t, func(o *Options) { o.NegativeCacheTTL = 5 * time.Second })
	raw, hash := token.NewAPIKey(token.PrefixUserKey)
	for range 3 {
		if d := decideDirect(e.a, "GET", "/alpha/mcp", auth(raw)); d.Reason != ReasonInvalidToken {
			t.Fatalf("unknown key: %s", d.Reason)
		}
	}
	if n := f.gets.Load(); n != 1 {
		t.Fatalf("unknown key looked up %d times, want 1 (negative cache)", n)
	}
	// The key appears (no event for creation): still unknown until the
	// negative entry expires.
	if err := e.st.CreateKey(context.Background(), &store.APIKey{ID: "late", Hash: hash, Kind: store.KeyUser, User: "alice", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if d := decideDirect(e.a, "GET", "/alpha/mcp", auth(raw)); d.Allow {
		t.Fatal("negative entry ignored")
	}
	clock.Add(6 * time.Second)
	if d := decideDirect(e.a, "GET", "/alpha/mcp", auth(raw)); !d.Allow {
		t.Fatalf("after the negative TTL: %d %s", d.Status, d.Reason)
	}
}

func TestKeyExpiryJudgedLocally(t *testing.T) {
	e, _, clock := flakyEnv(t)
	k := e.addKey("k", token.PrefixAgentKey, store.APIKey{Kind: store.KeyAgent, Agent: "alpha", ExpiresAt: time.Now().Add(30 * time.Second)})
	if d := decideDirect(e.a, "GET", "/alpha/mcp", auth(k)); !d.Allow {
		t.Fatalf("fresh key: %s", d.Reason)
	}
	clock.Add(31 * time.Second) // the cached record (TTL 1m) is still live; the key is not
	if d := decideDirect(e.a, "GET", "/alpha/mcp", auth(k)); d.Allow || d.Reason != ReasonExpired || d.Status != 401 {
		t.Fatalf("expired key: %d %s", d.Status, d.Reason)
	}
}

func TestCacheIsBounded(t *testing.T) {
	e, f, _ := flakyEnv(t, func(o *Options) { o.CacheSize = 4 })
	for range 20 {
		raw, _ := token.NewAPIKey(token.PrefixAgentKey)
		decideDirect(e.a, "GET", "/alpha/mcp", auth(raw))
	}
	if n := e.a.keys.Len(); n > 2 {
		t.Fatalf("key cache holds %d unknown keys, bound 4/2", n)
	}
	// Known keys fill the rest and survive a flood of unknown ones.
	var known []string
	for i := range 2 {
		k := e.addKey(fmt.Sprint("k", i), token.PrefixAgentKey, store.APIKey{Kind: store.KeyAgent, Agent: "alpha"})
		known = append(known, k)
		if d := decideDirect(e.a, "GET", "/alpha/mcp", auth(k)); !d.Allow {
			t.Fatal(d.Reason)
		}
	}
	gets := f.gets.Load()
	for range 50 {
		raw, _ := token.NewAPIKey(token.PrefixAgentKey)
		decideDirect(e.a, "GET", "/alpha/mcp", auth(raw))
	}
	if n := e.a.keys.Len(); n > 4 {
		t.Fatalf("key cache holds %d entries, bound 4", n)
	}
	for _, k := range known {
		if d := decideDirect(e.a, "GET", "/alpha/mcp", auth(k)); !d.Allow {
			t.Fatal(d.Reason)
		}
	}
	if extra := f.gets.Load() - gets; extra != 50 {
		t.Errorf("%d store lookups: known keys were evicted by unknown ones", extra)
	}
}

func TestLastUsedBatchedOffThePath(t *testing.T) {
	e, f, _ := flakyEnv(t, func(o *Options) { o.TouchInterval = time.Hour })
	ctx, cancel := context.WithCancel(context.Background())
	// A second authorizer whose lifetime this test controls.
	a, err := New(Options{PublicURL: pub, Scopes: []string{"mcp"}, Ring: e.ring, Store: f, TouchInterval: time.Hour, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	k1 := e.addKey("k1", token.PrefixAgentKey, store.APIKey{Kind: store.KeyAgent, Agent: "alpha"})
	k2 := e.addKey("k2", token.PrefixUserKey, store.APIKey{Kind: store.KeyUser, User: "alice"})
	for range 50 {
		for _, k := range []string{k1, k2} {
			if d := decideDirect(a, "GET", "/alpha/mcp", auth(k)); !d.Allow {
				t.Fatalf("%d %s", d.Status, d.Reason)
			}
		}
	}
	if n := len(f.touchBatches()); n != 0 {
		t.Fatalf("%d TouchKeys calls during decisions", n)
	}
	cancel() // stopping flushes the pending batch
	eventually(t, "the final last-used batch", func() bool { return len(f.touchBatches()) == 1 })
	b := f.touchBatches()[0]
	if len(b) != 2 || b[token.Hash(k1)].IsZero() || b[token.Hash(k2)].IsZero() {
		t.Fatalf("batch %v", b)
	}
	keys, err := e.st.ListKeys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if k.LastUsed.IsZero() {
			t.Errorf("key %s: last used not recorded", k.ID)
		}
	}
	if a.Ready() {
		t.Error("still ready after its context ended")
	}
}

func TestAuditAndMetrics(t *testing.T) {
	e := newEnv(t)
	bak := e.addKey("bak", token.PrefixAgentKey, store.APIKey{Kind: store.KeyAgent, Agent: "alpha", User: "alice"})
	tok := e.mint("", "carol")

	deny0 := counterValue(t, metrics.Decisions.WithLabelValues("deny", ReasonForbidden, CredAgent))
	allow0 := counterValue(t, metrics.Decisions.WithLabelValues("allow", ReasonOK, CredOAuth))
	miss0 := counterValue(t, metrics.Decisions.WithLabelValues("deny", ReasonMissingCredential, CredNone))
	hist0 := histCount(t, metrics.DecisionSeconds.WithLabelValues("direct"))

	if d := decideDirect(e.a, "GET", "/scoped/mcp", auth(bak)); d.Reason != ReasonForbidden {
		t.Fatal(d.Reason)
	}
	decideDirect(e.a, "GET", "/alpha/mcp", nil)
	decideDirect(e.a, "GET", "/alpha/mcp", auth(tok))                 // carol: forbidden, oauth
	decideDirect(e.a, "GET", "/demo/mcp", auth(e.mint("", "demo")))   // allow
	decideDirect(e.a, "GET", "/x/../demo/mcp", auth(e.mint("", "d"))) // bad path

	if d := counterValue(t, metrics.Decisions.WithLabelValues("deny", ReasonForbidden, CredAgent)) - deny0; d != 1 {
		t.Errorf("forbidden agent_key counter moved by %v", d)
	}
	if d := counterValue(t, metrics.Decisions.WithLabelValues("allow", ReasonOK, CredOAuth)) - allow0; d != 1 {
		t.Errorf("allow counter moved by %v", d)
	}
	if d := counterValue(t, metrics.Decisions.WithLabelValues("deny", ReasonMissingCredential, CredNone)) - miss0; d != 1 {
		t.Errorf("missing counter moved by %v", d)
	}
	if d := histCount(t, metrics.DecisionSeconds.WithLabelValues("direct")) - hist0; d != 5 {
		t.Errorf("latency histogram got %d samples, want 5", d)
	}

	var audits []map[string]any
	for _, l := range e.logs.Records(t) {
		if l["msg"] == "audit" {
			audits = append(audits, l)
		}
	}
	if len(audits) != 4 {
		t.Fatalf("%d audit lines for 4 denials: %v", len(audits), audits)
	}
	first := audits[0]
	for k, v := range map[string]any{"event": "deny", "reason": ReasonForbidden, "agent": "scoped", "user": "alice", "credential": CredAgent, "key_id": "key-bak", "status": float64(403)} {
		if first[k] != v {
			t.Errorf("audit %s=%v, want %v (%v)", k, first[k], v, first)
		}
	}
	if audits[2]["user"] != "carol" || audits[2]["reason"] != ReasonForbidden {
		t.Errorf("jwt audit: %v", audits[2])
	}
	if audits[3]["reason"] != ReasonBadPath || audits[3]["path"] != "/x/../demo/mcp" {
		t.Errorf("bad path audit: %v", audits[3])
	}
	if s := e.logs.String(); strings.Contains(s, bak) || strings.Contains(s, tok) {
		t.Error("a credential reached the log")
	}
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func histCount(t *testing.T, o prometheus.Observer) uint64 {
	t.Helper()
	var m dto.Metric
	if err := o.(prometheus.Histogram).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount()
}

func TestGRPCHealthReflectionAndShapes(t *testing.T) {
	st := memstore.New()
	defer st.Close()
	seedAgents(t, st)
	ring := newRing(t)
	a, err := New(Options{PublicURL: pub, Scopes: []string{"mcp"}, Ring: ring, Store: st, StaticAgents: staticAgents, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	lis := bufconn.Listen(1 << 20)
	s := NewGRPCServer(a)
	go func() { _ = s.Serve(lis) }()
	defer s.Stop()
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx := context.Background()
	hc := healthpb.NewHealthClient(conn)
	status := func(svc string) healthpb.HealthCheckResponse_ServingStatus {
		r, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
		if err != nil {
			t.Fatal(err)
		}
		return r.GetStatus()
	}
	if st := status(""); st != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("before Start: %v", st)
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := a.Start(sctx); err != nil {
		t.Fatal(err)
	}
	if st := status("envoy.service.auth.v3.Authorization"); st != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("after Start: %v", st)
	}
	if _, ok := s.GetServiceInfo()["grpc.reflection.v1.ServerReflection"]; !ok {
		t.Error("reflection not registered")
	}

	e := &env{t: t, ring: ring}
	tok := e.mint("", "demo")
	c := authv3.NewAuthorizationClient(conn)

	// Path only in the :path pseudo-header (no parsed path field).
	req := envoyCheckRequest("GET", "/demo/mcp?x=1", "127.0.0.1:8000", auth(tok))
	req.Attributes.Request.Http.Path = ""
	if r, err := c.Check(ctx, req); err != nil || r.GetOkResponse() == nil {
		t.Fatalf(":path fallback: %v %v", r, err)
	}
	// encode_raw_headers: header_map with raw values instead of headers.
	req = envoyCheckRequest("GET", "/demo/mcp", "127.0.0.1:8000", nil)
	req.Attributes.Request.Http.Headers = nil
	req.Attributes.Request.Http.HeaderMap = &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
		{Key: ":path", RawValue: []byte("/demo/mcp")},
		{Key: "Authorization", RawValue: []byte("Bearer " + tok)},
		{Key: "x-mcp-user", RawValue: []byte("root")},
		{Key: "x-mcp-other", RawValue: []byte("1")},
	}}
	r, err := c.Check(ctx, req)
	if err != nil || r.GetOkResponse() == nil {
		t.Fatalf("header_map: %v %v", r, err)
	}
	// No assertion signer here: a client's x-mcp-identity is removed.
	if rm := fmt.Sprint(r.GetOkResponse().GetHeadersToRemove()); rm != "[authorization x-mcp-identity x-mcp-other]" {
		t.Errorf("headers_to_remove %s", rm)
	}
	// Repeated Authorization headers join into an invalid credential.
	req.Attributes.Request.Http.HeaderMap.Headers = append(req.Attributes.Request.Http.HeaderMap.Headers,
		&corev3.HeaderValue{Key: "authorization", Value: "Bearer " + tok})
	if r, err := c.Check(ctx, req); err != nil || r.GetDeniedResponse().GetStatus().GetCode() != 401 {
		t.Fatalf("two authorization headers: %v %v", r, err)
	}
	// An empty CheckRequest is a denial, not an RPC error.
	r, err = c.Check(ctx, &authv3.CheckRequest{})
	if err != nil || codes.Code(r.GetStatus().GetCode()) != codes.NotFound || r.GetDeniedResponse() == nil {
		t.Fatalf("empty request: %v %v", r, err)
	}

	a.Drain()
	if st := status(""); st != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("after Drain: %v", st)
	}
}

// TestDecisionsByAgent: every decision is counted under its agent when the
// agent is registered (config or store, looked up or not), and under
// OtherAgentLabel otherwise, so clients cannot grow the label set.
func TestDecisionsByAgent(t *testing.T) {
	e := newEnv(t)
	v := func(agent, decision string) float64 {
		return counterValue(t, metrics.AgentDecisions.WithLabelValues(agent, decision))
	}
	demoAllow, demoDeny, alphaDeny, otherDeny := v("demo", "allow"), v("demo", "deny"), v("alpha", "deny"), v(OtherAgentLabel, "deny")

	decideDirect(e.a, "GET", "/demo/mcp", auth(e.mint("", "demo")))            // allow: a config agent
	decideDirect(e.a, "GET", "/demo/mcp", nil)                                 // deny before any lookup
	decideDirect(e.a, "GET", "/alpha/mcp", auth(e.mint("", "carol")))          // deny: a store agent, not hers
	decideDirect(e.a, "GET", "/alpha/mcp", nil)                                // deny, alpha now cached
	decideDirect(e.a, "GET", "/nosuch-agent-1/mcp", auth(e.mint("", "alice"))) // unknown agent
	decideDirect(e.a, "GET", "/nosuch-agent-2/mcp", nil)                       // unknown, no credential
	decideDirect(e.a, "GET", "/x/../demo/mcp", nil)                            // not an agent path

	for _, c := range []struct {
		agent, decision string
		was, want       float64
	}{
		{"demo", "allow", demoAllow, 1}, {"demo", "deny", demoDeny, 1},
		{"alpha", "deny", alphaDeny, 2}, {OtherAgentLabel, "deny", otherDeny, 3},
	} {
		if d := v(c.agent, c.decision) - c.was; d != c.want {
			t.Errorf("%s/%s moved by %v, want %v", c.agent, c.decision, d, c.want)
		}
	}
	for _, id := range []string{"nosuch-agent-1", "nosuch-agent-2"} {
		if d := v(id, "deny"); d != 0 {
			t.Errorf("an unregistered agent got its own label: %s = %v", id, d)
		}
	}
}
