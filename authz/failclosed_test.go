package authz

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/mcpgateway/mcp-gateway/store"
	"github.com/mcpgateway/mcp-gateway/store/memstore"
	"github.com/mcpgateway/mcp-gateway/token"
)

// flakyEnv: an Authorizer whose store can be broken, on a fake clock.
func flakyEnv(t *testing.T, tweak ...func(*Options)) (*env, *flakyStore, *fakeClock) {
	t.Helper()
	st := memstore.New()
	t.Cleanup(func() { _ = st.Close() })
	seedAgents(t, st)
	f := &flakyStore{Store: st}
	clock := newClock()
	e := newEnvOn(t, st, append([]func(*Options){func(o *Options) {
		o.Store = f
		o.Now = clock.Now
		o.CacheTTL = time.Minute
		o.StoreTimeout = 200 * time.Millisecond
	}}, tweak...)...)
	return e, f, clock
}

func auth(tok string) map[string]string { return map[string]string{"authorization": "Bearer " + tok} }

func TestStoreDownFailsClosed(t *testing.T) {
	e, f, clock := flakyEnv(t)
	bak := e.addKey("bak", token.PrefixAgentKey, store.APIKey{Kind: store.KeyAgent, Agent: "alpha"})
	oag := e.addKey("oag", token.PrefixUserKey, store.APIKey{Kind: store.KeyUser, User: "alice"})
	jwtAlice := e.mint("", "alice")
	jwtDemo := e.mint("", "demo")

	expect := func(what, path, tok string, status int) {
		t.Helper()
		d := decideDirect(e.a, "POST", path, auth(tok))
		if d.Status != status || d.Allow != (status == 200) {
			t.Fatalf("%s: got %d %s (allow=%v), want %d", what, d.Status, d.Reason, d.Allow, status)
		}
	}
	// Warm the caches for bak_ and agent alpha.
	expect("warm key", "/alpha/mcp", bak, 200)
	expect("warm jwt", "/alpha/mcp", jwtAlice, 200)

	f.down.Store(true)
	expect("cached key while down", "/alpha/mcp", bak, 200)
	expect("jwt, cached agent, while down", "/alpha/mcp", jwtAlice, 200)
	expect("jwt, static agent, while down", "/demo/mcp", jwtDemo, 200)
	expect("uncached key while down", "/alpha/mcp", oag, 503)
	expect("jwt, uncached agent, while down", "/scoped/mcp", jwtAlice, 503)

	// Through both adapters: a 503 is a refusal, never an allow.
	c := startGRPC(t, e.a)
	resp, err := c.Check(context.Background(), envoyCheckRequest("POST", "/alpha/mcp", "127.0.0.1:8000", auth(oag)))
	if err != nil {
		t.Fatal(err)
	}
	if codes.Code(resp.GetStatus().GetCode()) != codes.Unavailable || resp.GetDeniedResponse().GetStatus().GetCode() != 503 || resp.GetOkResponse() != nil {
		t.Fatalf("grpc while down: %v", resp)
	}
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", CheckPath, nil)
	req.Header.Set("X-Original-URI", "/alpha/mcp")
	req.Header.Set("Authorization", "Bearer "+oag)
	HTTPCheckHandler(e.a).ServeHTTP(rec, req)
	if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "temporarily_unavailable") || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("http while down: %d %v %s", rec.Code, rec.Header(), rec.Body)
	}

	// Once the cache entries expire the store must answer again: fail closed.
	clock.Add(2 * time.Minute)
	expect("expired cache entry while down", "/alpha/mcp", bak, 503)
	expect("jwt, expired agent entry, while down", "/alpha/mcp", jwtAlice, 503)
	expect("jwt, static agent, still fine", "/demo/mcp", jwtDemo, 200)

	// Recovery needs no restart.
	f.down.Store(false)
	expect("key after recovery", "/alpha/mcp", bak, 200)
	expect("uncached key after recovery", "/alpha/mcp", oag, 200)
	expect("jwt after recovery", "/scoped/mcp", jwtAlice, 403) // scoped needs mcp:admin
}

func TestStoreHangingTimesOut(t *testing.T) {
	e, f, _ := flakyEnv(t, func(o *Options) { o.StoreTimeout = 50 * time.Millisecond })
	oag := e.addKey("oag", token.PrefixUserKey, store.APIKey{Kind: store.KeyUser, User: "alice"})
	f.hang.Store(true)
	if d := decideDirect(e.a, "GET", "/alpha/mcp", auth(oag)); d.Status != 503 || d.Allow {
		t.Fatalf("got %d %s", d.Status, d.Reason)
	}
	// A caller that gives up gets a refusal too.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	d := e.a.Decide(ctx, &Request{Path: "/scoped/mcp", Header: func(n string) string { return auth(oag)[n] }})
	if d.Status != 503 || d.Allow {
		t.Fatalf("canceled caller: got %d %s", d.Status, d.Reason)
	}
}

func TestStartFailsClosed(t *testing.T) {
	st := memstore.New()
	t.Cleanup(func() { _ = st.Close() })
	seedAgents(t, st)
	f := &flakyStore{Store: st}
	f.down.Store(true)
	ring := newRing(t)
	a, err := New(Options{PublicURL: pub, Scopes: []string{"mcp"}, Ring: ring, Store: f, StaticAgents: staticAgents, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := a.Start(ctx); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Start with the store down: %v", err)
	}
	if a.Ready() {
		t.Fatal("ready after a failed Start")
	}
	e := &env{t: t, ring: ring}
	tok := e.mint("", "demo")
	// No denylist mirror: even a valid token for a static agent is refused.
	if d := decideDirect(a, "GET", "/demo/mcp", auth(tok)); d.Status != 503 || d.Allow {
		t.Fatalf("before Start: %d %s", d.Status, d.Reason)
	}
	f.down.Store(false)
	if err := a.Start(ctx); err != nil {
		t.Fatalf("second Start: %v", err)
	}
	if !a.Ready() {
		t.Fatal("not ready after Start")
	}
	if d := decideDirect(a, "GET", "/demo/mcp", auth(tok)); !d.Allow {
		t.Fatalf("after Start: %d %s", d.Status, d.Reason)
	}
	if err := a.Start(ctx); err == nil {
		t.Fatal("Start twice succeeded")
	}
	a.Drain()
	if a.Ready() {
		t.Fatal("ready after Drain")
	}
	if d := decideDirect(a, "GET", "/demo/mcp", auth(tok)); !d.Allow {
		t.Fatalf("draining must keep answering: %d %s", d.Status, d.Reason)
	}
}

func TestConcurrentMissesShareOneLookup(t *testing.T) {
	e, f, _ := flakyEnv(t)
	oag := e.addKey("oag", token.PrefixUserKey, store.APIKey{Kind: store.KeyUser, User: "alice"})
	decideDirect(e.a, "GET", "/alpha/mcp", auth(e.mint("", "alice"))) // warm agent alpha
	f.gate = make(chan struct{})
	const n = 8
	var wg sync.WaitGroup
	results := make([]*Decision, n)
	for i := range n {
		wg.Go(func() { results[i] = decideDirect(e.a, "GET", "/alpha/mcp", auth(oag)) })
	}
	eventually(t, "the first lookup to reach the store", func() bool { return f.gets.Load() >= 1 })
	close(f.gate)
	wg.Wait()
	for i, d := range results {
		if !d.Allow {
			t.Fatalf("decision %d: %d %s", i, d.Status, d.Reason)
		}
	}
	// Decisions that arrived while the first lookup was in flight joined it;
	// any later one hit the cache.
	if got := f.gets.Load(); got != 1 {
		t.Fatalf("%d store lookups for one key", got)
	}
}

// A lookup that read the record before a revocation event must not cache it.
func TestInvalidationDuringLoadIsNotCached(t *testing.T) {
	e, f, _ := flakyEnv(t)
	oag := e.addKey("oag", token.PrefixUserKey, store.APIKey{Kind: store.KeyUser, User: "alice"})
	decideDirect(e.a, "GET", "/alpha/mcp", auth(e.mint("", "alice"))) // warm agent alpha
	f.gate = make(chan struct{})
	done := make(chan *Decision)
	go func() { done <- decideDirect(e.a, "GET", "/alpha/mcp", auth(oag)) }()
	eventually(t, "the lookup to read the record", func() bool { return f.gets.Load() == 1 })
	gen := e.a.keys.Gen()
	if _, err := e.st.RevokeKey(context.Background(), "key-oag"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the revocation event", func() bool { return e.a.keys.Gen() != gen })
	close(f.gate)
	<-done // raced with the revocation: either answer is acceptable here
	if d := decideDirect(e.a, "GET", "/alpha/mcp", auth(oag)); d.Allow || d.Reason != ReasonRevoked {
		t.Fatalf("after revocation: %d %s", d.Status, d.Reason)
	}
}
