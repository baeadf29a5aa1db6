package authz

import (
	"context"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpgateway/mcp-gateway/store"
	"github.com/mcpgateway/mcp-gateway/store/memstore"
	"github.com/mcpgateway/mcp-gateway/store/redistest"
	"github.com/mcpgateway/mcp-gateway/token"
)

// countingLimiter counts the store calls the limits make.
type countingLimiter struct {
	Limiter
	calls atomic.Int64
}

func (c *countingLimiter) Allow(ctx context.Context, key string, limit int, window time.Duration) (bool, time.Duration, error) {
	c.calls.Add(1)
	return c.Limiter.Allow(ctx, key, limit, window)
}

var limitedAgent = &store.Agent{AgentSpec: store.AgentSpec{ID: "limited", Owner: "alice", Users: []string{"bob"}, Limits: &store.Limits{PerUser: 3, PerTool: 2}}}

// TestLimitsAcrossReplicas: per-user and per-tool limits are counted in the
// store, so two gateways on one store (real Redis, and memory) share them;
// the refusal is 429 with Retry-After, another user is not affected.
func TestLimitsAcrossReplicas(t *testing.T) {
	t.Run("memstore", func(t *testing.T) {
		st := memstore.New()
		t.Cleanup(func() { _ = st.Close() })
		limitsScenario(t, st)
	})
	t.Run("redis", func(t *testing.T) { limitsScenario(t, redistest.Open(t, "authzlimits")) })
}

func limitsScenario(t *testing.T, st store.Store) {
	seedAgents(t, st)
	if err := st.PutAgent(context.Background(), limitedAgent); err != nil {
		t.Fatal(err)
	}
	a, b := newEnvOn(t, st), newEnvOn(t, st)
	alice, bob := a.mint("", "alice"), a.mint("", "bob")
	call := func(e *env, tok, method, tool string) *Decision {
		h := auth(tok)
		h["mcp-protocol-version"], h["mcp-method"] = "2026-07-28", method
		if tool != "" {
			h["mcp-name"] = tool
		}
		return decideDirect(e.a, "POST", "/limited/mcp", h)
	}
	for i, e := range []*env{a, b} { // two calls of echo, one per replica
		if d := call(e, alice, "tools/call", "echo"); !d.Allow {
			t.Fatalf("call %d: %d %s", i+1, d.Status, d.Reason)
		}
	}
	d := call(a, alice, "tools/call", "echo") // third echo: over the per-tool limit (2)
	if d.Status != 429 || d.Reason != ReasonRateLimited {
		t.Fatalf("third echo: %d %s, want 429 rate_limited", d.Status, d.Reason)
	}
	if s := header(d, "retry-after"); s == "" || s == "0" {
		t.Fatalf("429 without Retry-After: %v", d.Headers)
	} else if n, _ := strconv.Atoi(s); n < 1 || n > 60 {
		t.Fatalf("Retry-After %q", s)
	}
	d = call(b, alice, "tools/list", "") // fourth request: over the per-user limit (3)
	if d.Status != 429 {
		t.Fatalf("fourth request on replica B: %d %s, want 429", d.Status, d.Reason)
	}
	if d := call(b, bob, "tools/call", "echo"); !d.Allow {
		t.Fatalf("bob is limited by alice's count: %d %s", d.Status, d.Reason)
	}
}

func header(d *Decision, name string) string {
	for _, h := range d.Headers {
		if h.Key == name {
			return h.Value
		}
	}
	return ""
}

// TestNoLimitsNoStoreCalls: an agent without limits never reaches the
// counter (the JWT hot path stays free of store calls); one with limits does.
func TestNoLimitsNoStoreCalls(t *testing.T) {
	st := memstore.New()
	t.Cleanup(func() { _ = st.Close() })
	seedAgents(t, st)
	if err := st.PutAgent(context.Background(), limitedAgent); err != nil {
		t.Fatal(err)
	}
	cl := &countingLimiter{Limiter: st}
	e := newEnvOn(t, st, func(o *Options) { o.Limiter = cl })
	alice := e.mint("", "alice")
	for range 5 {
		if d := decideDirect(e.a, "POST", "/alpha/mcp", auth(alice)); !d.Allow {
			t.Fatalf("%d %s", d.Status, d.Reason)
		}
	}
	if n := cl.calls.Load(); n != 0 {
		t.Fatalf("%d counter calls for an agent without limits", n)
	}
	if d := decideDirect(e.a, "GET", "/limited/mcp", auth(alice)); !d.Allow || cl.calls.Load() != 1 {
		t.Fatalf("limited agent: %d %s, %d counter calls", d.Status, d.Reason, cl.calls.Load())
	}
}

// TestAuditNamesOperation: a denial's audit line names the MCP method and
// tool, and the rule that decided.
func TestAuditNamesOperation(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.ScopeImplies = nil })
	if err := e.st.PutAgent(context.Background(), toolsAgent); err != nil {
		t.Fatal(err)
	}
	h := auth(e.mint("", "alice"))
	h["mcp-protocol-version"], h["mcp-method"], h["mcp-name"] = "2026-07-28", "tools/call", "admin_echo"
	if d := decideDirect(e.a, "POST", "/tools/mcp", h); d.Status != 403 {
		t.Fatalf("%d %s", d.Status, d.Reason)
	}
	h = auth(e.mint("", "carol")) // not alpha's user: no rules there, headers still named
	h["mcp-method"], h["mcp-name"] = "tools/call", "whoami"
	decideDirect(e.a, "POST", "/alpha/mcp", h)
	logs := e.logs.String()
	for _, want := range []string{`"mcp_method":"tools/call","mcp_name":"admin_echo","rule":"admin"`, `"mcp_method":"tools/call","mcp_name":"whoami","rule":""`} {
		if !strings.Contains(logs, want) {
			t.Errorf("audit lacks %s:\n%s", want, logs)
		}
	}
}

// TestRuleScopesNotInOtherAgentsBase: a scope that a static agent's rule
// requires is not part of other agents' base scopes, so an unrestricted key
// elsewhere does not hold it (dev mode's mcp:admin).
func TestRuleScopesNotInOtherAgentsBase(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		o.Scopes = []string{"mcp", "mcp:admin"}
		o.StaticAgents = []store.Agent{{AgentSpec: store.AgentSpec{ID: "demo", Owner: "demo", Rules: []store.Rule{{Method: "tools/call", Target: "admin_*", Scopes: []string{"mcp:admin"}}}}}}
	})
	bak := e.addKey("bakAlphaBase", token.PrefixAgentKey, store.APIKey{Kind: store.KeyAgent, Agent: "alpha", User: "alice"})
	d := decideDirect(e.a, "POST", "/alpha/mcp", auth(bak))
	if !d.Allow || d.Identity.Scope != "mcp" {
		t.Fatalf("unrestricted key on alpha: %v scope %q, want mcp", d.Allow, d.Identity.Scope)
	}
	d = decideDirect(e.a, "POST", "/alpha/mcp", nil)
	if ch := header(d, "www-authenticate"); !strings.Contains(ch, `scope="mcp"`) {
		t.Fatalf("401 challenge %q", ch)
	}
}

// TestInvalidStoredPolicyFailsClosed: a rule record the admin API would
// refuse (written to the store by other means) refuses every operation on
// the agent instead of never matching.
func TestInvalidStoredPolicyFailsClosed(t *testing.T) {
	e := newEnv(t)
	bad := &store.Agent{AgentSpec: store.AgentSpec{ID: "badrules", Owner: "alice", Rules: []store.Rule{{Method: "tools/call", Target: "admin_[", Scopes: []string{"mcp:admin"}}}}}
	if err := e.st.PutAgent(context.Background(), bad); err != nil {
		t.Fatal(err)
	}
	h := auth(e.mint("", "alice"))
	h["mcp-protocol-version"], h["mcp-method"], h["mcp-name"] = "2026-07-28", "tools/call", "admin_x"
	if d := decideDirect(e.a, "POST", "/badrules/mcp", h); d.Allow || d.Status != 503 {
		t.Fatalf("invalid stored policy: %v %d %s, want 503", d.Allow, d.Status, d.Reason)
	}
}
