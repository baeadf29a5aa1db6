package authz

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/mcpgateway/mcp-gateway/agentauth"
	"github.com/mcpgateway/mcp-gateway/assertion"
	"github.com/mcpgateway/mcp-gateway/store"
	"github.com/mcpgateway/mcp-gateway/token"
)

// parseAssertion verifies raw with the test assertion key (ES256 only).
func parseAssertion(t *testing.T, raw string) (*jwt.Token, *agentauth.Claims) {
	t.Helper()
	return parseAssertionAt(t, raw, time.Now())
}

func parseAssertionAt(t *testing.T, raw string, at time.Time) (*jwt.Token, *agentauth.Claims) {
	t.Helper()
	var c agentauth.Claims
	tok, err := jwt.ParseWithClaims(raw, &c, func(*jwt.Token) (any, error) { return &assertionKey().PublicKey, nil },
		jwt.WithValidMethods([]string{"ES256"}), jwt.WithExpirationRequired(), jwt.WithIssuedAt(),
		jwt.WithTimeFunc(func() time.Time { return at }))
	if err != nil {
		t.Fatalf("assertion %q does not verify: %v", raw, err)
	}
	return tok, &c
}

// checkAssertion: the assertion verifies and states what the plain
// identity headers say, for the agent's resource URL.
func checkAssertion(t *testing.T, raw string, ident map[string]string) {
	t.Helper()
	if raw == "" {
		t.Fatal("an allowed request carries no x-mcp-identity")
	}
	tok, c := parseAssertion(t, raw)
	if tok.Header["kid"] != "a1" || tok.Header["typ"] != agentauth.Type {
		t.Errorf("header %v", tok.Header)
	}
	wantAud := pub + "/" + ident[HeaderAgent] + "/mcp"
	if c.Issuer != pub || len(c.Audience) != 1 || c.Audience[0] != wantAud {
		t.Errorf("iss %q aud %v, want %q %q", c.Issuer, c.Audience, pub, wantAud)
	}
	if c.Subject != ident[HeaderUser] || c.ClientID != ident[HeaderClientID] || c.Scope != ident[HeaderScope] || c.Credential != ident[HeaderCredential] {
		t.Errorf("claims sub %q client_id %q scope %q credential %q, headers %v", c.Subject, c.ClientID, c.Scope, c.Credential, ident)
	}
	if life := c.ExpiresAt.Sub(c.IssuedAt.Time); life != assertion.TTL || c.ID == "" {
		t.Errorf("exp-iat %v (want %v), jti %q", life, assertion.TTL, c.ID)
	}
}

// TestAssertionSpoofAndRefusals: a client-sent x-mcp-identity never
// reaches the agent — overwritten on allow — and no refused request
// carries one, in any adapter's answer.
func TestAssertionSpoofAndRefusals(t *testing.T) {
	e := newEnv(t)
	forged := "eyJhbGciOiJub25lIn0.eyJzdWIiOiJyb290In0."
	good := e.mint("", "alice")
	for _, tc := range []struct {
		name, path, auth string
		status           int
	}{
		{"allowed", "/alpha/mcp", "Bearer " + good, 200},
		{"no credential", "/alpha/mcp", "", 401},
		{"bad token", "/alpha/mcp", "Bearer " + good + "x", 401},
		{"forbidden user", "/scoped/mcp", "Bearer " + e.mint("", "mallory"), 403},
		{"unknown agent", "/nope/mcp", "Bearer " + good, 404},
		{"bad path", "/alpha/other", "Bearer " + good, 404},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := map[string]string{"x-mcp-identity": forged}
			if tc.auth != "" {
				h["authorization"] = tc.auth
			}
			d := decideDirect(e.a, "POST", tc.path, h)
			if d.Status != tc.status {
				t.Fatalf("got %d %s, want %d", d.Status, d.Reason, tc.status)
			}
			all := append(append([]HeaderValue(nil), d.UpstreamHeaders...), d.Headers...)
			var got string
			for _, hv := range all {
				if strings.EqualFold(hv.Key, HeaderIdentity) {
					got = hv.Value
				}
			}
			if !d.Allow {
				if got != "" || len(d.UpstreamHeaders) != 0 {
					t.Fatalf("refused request carries %q / upstream headers %v", got, d.UpstreamHeaders)
				}
				return
			}
			if got == "" || got == forged {
				t.Fatalf("x-mcp-identity upstream %q", got)
			}
			applied := applyEnvoy(t, h, d.UpstreamHeaders, d.RemoveHeaders)
			if applied[HeaderIdentity] != got {
				t.Fatalf("upstream sees %q", applied[HeaderIdentity])
			}
		})
	}
}

// TestAssertionCache: one credential on one agent reuses its assertion
// until Margin before exp; another agent, another credential or a changed
// identity gets a fresh one.
func TestAssertionCache(t *testing.T) {
	now := time.Now()
	clock := func() time.Time { return now }
	sg := newSigner(t)
	e := newEnv(t, func(o *Options) { o.Assertions = sg; o.Now = clock })
	if err := e.st.PutAgent(context.Background(), &store.Agent{AgentSpec: store.AgentSpec{ID: "beta", Owner: "alice"}}); err != nil {
		t.Fatal(err)
	}
	tok := e.mint("", "alice")
	key := e.addKey("bak", token.PrefixAgentKey, store.APIKey{Kind: store.KeyAgent, Agent: "alpha", User: "alice"})
	get := func(path, cred string) string {
		t.Helper()
		d := decideDirect(e.a, "POST", path, map[string]string{"authorization": "Bearer " + cred})
		if !d.Allow {
			t.Fatalf("%s: %d %s", path, d.Status, d.Reason)
		}
		for _, h := range d.UpstreamHeaders {
			if h.Key == HeaderIdentity {
				return h.Value
			}
		}
		t.Fatal("no assertion")
		return ""
	}
	first := get("/alpha/mcp", tok)
	if again := get("/alpha/mcp", tok); again != first {
		t.Error("same credential and agent: the assertion was signed again")
	}
	if other := get("/beta/mcp", tok); other == first {
		t.Error("another agent got the same assertion")
	}
	if k := get("/alpha/mcp", key); k == first {
		t.Error("another credential got the same assertion")
	}
	if sg.Len() != 3 {
		t.Errorf("cache holds %d, want 3", sg.Len())
	}
	now = now.Add(assertion.TTL - assertion.Margin - time.Second)
	if again := get("/alpha/mcp", tok); again != first {
		t.Error("reissued before the margin")
	}
	now = now.Add(time.Second)
	renewed := get("/alpha/mcp", tok)
	if renewed == first {
		t.Fatal("still served within Margin of its exp")
	}
	_, c := parseAssertionAt(t, renewed, now)
	if !c.IssuedAt.Time.Equal(now.Truncate(time.Second)) {
		t.Errorf("renewed iat %v, want %v", c.IssuedAt.Time, now)
	}
}

// TestAssertionCacheBounded: the cache never holds more than its size.
func TestAssertionCacheBounded(t *testing.T) {
	sg := newSigner(t, func(o *assertion.Options) { o.CacheSize = 8 })
	now := time.Now()
	for i := range 50 {
		if _, err := sg.Get("cred"+string(rune('a'+i)), "alpha", pub+"/alpha/mcp", assertion.Identity{Subject: "alice"}, now); err != nil {
			t.Fatal(err)
		}
	}
	if n := sg.Len(); n > 8 {
		t.Fatalf("cache holds %d entries, bound 8", n)
	}
}

// TestAssertionFollowsIdentity: a cached assertion is not reused once the
// identity it states is no longer what the Check decides (here the key's
// agent's scopes, which a key without its own stands for, changed).
func TestAssertionFollowsIdentity(t *testing.T) {
	e := newEnv(t)
	key := e.addKey("bak", token.PrefixAgentKey, store.APIKey{Kind: store.KeyAgent, Agent: "alpha"})
	d := decideDirect(e.a, "POST", "/alpha/mcp", map[string]string{"authorization": "Bearer " + key})
	first := upstream(d)[HeaderIdentity]
	if err := e.st.PutAgent(context.Background(), &store.Agent{AgentSpec: store.AgentSpec{ID: "alpha", Owner: "alice", Scopes: []string{"mcp", "extra"}}}); err != nil {
		t.Fatal(err)
	}
	e.a.onEvent(store.Event{Kind: store.EventAgent, ID: "alpha"})
	d = decideDirect(e.a, "POST", "/alpha/mcp", map[string]string{"authorization": "Bearer " + key})
	second := upstream(d)[HeaderIdentity]
	if second == "" || second == first {
		t.Fatal("the old assertion was reused for a changed identity")
	}
	if _, c := parseAssertion(t, second); c.Scope != "mcp extra" {
		t.Fatalf("scope %q", c.Scope)
	}
}

func upstream(d *Decision) map[string]string {
	m := map[string]string{}
	for _, h := range d.UpstreamHeaders {
		m[h.Key] = h.Value
	}
	return m
}
