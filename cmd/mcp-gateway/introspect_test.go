package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/mcpgateway/mcp-gateway/config"
	"github.com/mcpgateway/mcp-gateway/store"
	"github.com/mcpgateway/mcp-gateway/token"
)

// introspectEnv is a whole gateway (memory store, authorizer started) with
// agents demo (alice) and other (bob).
type introspectEnv struct {
	g   *gateway
	h   http.Handler
	pub string
}

func newIntrospectEnv(t *testing.T, tweak func(*config.Config)) *introspectEnv {
	t.Helper()
	cfg := config.Default()
	cfg.SigningKeys = []config.SigningKey{{ID: "k1", Secret: "0123456789abcdef0123456789abcdef"}}
	cfg.AdminToken = "admin-token-0123456789abcdef"
	cfg.Agents = []config.StaticAgent{{AgentSpec: store.AgentSpec{ID: "demo", Owner: "alice"}}, {AgentSpec: store.AgentSpec{ID: "other", Owner: "bob"}}}
	if tweak != nil {
		tweak(cfg)
	}
	g, err := newGateway(t.Context(), cfg, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := g.authz.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); g.authz.Wait(); g.store.Close() })
	return &introspectEnv{g: g, h: g.httpHandler(), pub: cfg.PublicURL}
}

func (e *introspectEnv) mint(t *testing.T, sub, aud string, exp time.Duration) (string, *token.Claims) {
	t.Helper()
	now := time.Now()
	c := &token.Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Subject: sub, Audience: jwt.ClaimStrings{aud}, ID: token.Random(12),
			IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(exp)),
		},
		ClientID: "client-" + sub, Scope: "mcp",
	}
	raw, err := e.g.ring.Mint(c)
	if err != nil {
		t.Fatal(err)
	}
	return raw, c
}

func (e *introspectEnv) key(t *testing.T, k store.APIKey) string {
	t.Helper()
	raw, hash := token.NewAPIKey(token.PrefixAgentKey)
	if k.Kind == store.KeyUser {
		raw, hash = token.NewAPIKey(token.PrefixUserKey)
	}
	k.ID, k.Hash, k.CreatedAt = "key-"+token.Random(4), hash, time.Now()
	if err := e.g.store.CreateKey(t.Context(), &k); err != nil {
		t.Fatal(err)
	}
	return raw
}

// post introspects tok with the Bearer credential caller.
func (e *introspectEnv) post(caller, tok string) (int, map[string]any) {
	req := httptest.NewRequest("POST", "/oauth/introspect", strings.NewReader(url.Values{"token": {tok}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if caller != "" {
		req.Header.Set("Authorization", "Bearer "+caller)
	}
	req.RemoteAddr = "192.0.2.1:1234"
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	var m map[string]any
	_ = json.Unmarshal(rec.Body.Bytes(), &m)
	return rec.Code, m
}

func TestIntrospection(t *testing.T) {
	e := newIntrospectEnv(t, nil)
	demoKey := e.key(t, store.APIKey{Kind: store.KeyAgent, Agent: "demo", User: "alice"})
	otherKey := e.key(t, store.APIKey{Kind: store.KeyAgent, Agent: "other", User: "bob"})
	revokedKey := e.key(t, store.APIKey{Kind: store.KeyAgent, Agent: "demo", Revoked: true})
	expiredKey := e.key(t, store.APIKey{Kind: store.KeyAgent, Agent: "demo", ExpiresAt: time.Now().Add(-time.Minute)})
	userKey := e.key(t, store.APIKey{Kind: store.KeyUser, User: "alice"})
	admin := e.g.cfg.AdminToken

	forDemo, c := e.mint(t, "alice", e.pub+"/demo/mcp", time.Hour)
	forOther, _ := e.mint(t, "bob", e.pub+"/other/mcp", time.Hour)
	wide, _ := e.mint(t, "alice", e.pub, time.Hour)
	expired, _ := e.mint(t, "alice", e.pub+"/demo/mcp", -time.Hour)
	notAllowed, _ := e.mint(t, "mallory", e.pub+"/demo/mcp", time.Hour)
	revoked, rc := e.mint(t, "alice", e.pub+"/demo/mcp", time.Hour)
	if err := e.g.store.RevokeJTI(t.Context(), rc.ID, rc.ExpiresAt.Time); err != nil {
		t.Fatal(err)
	}

	code, m := e.post(demoKey, forDemo)
	if code != 200 || m["active"] != true || m["sub"] != "alice" || m["username"] != "alice" || m["client_id"] != "client-alice" ||
		m["scope"] != "mcp" || m["token_type"] != "Bearer" || m["iss"] != e.pub || m["jti"] != c.ID ||
		m["exp"] != float64(c.ExpiresAt.Unix()) || m["iat"] != float64(c.IssuedAt.Unix()) {
		t.Fatalf("demo's key on demo's token: %d %v", code, m)
	}
	if aud, _ := m["aud"].([]any); len(aud) != 1 || aud[0] != e.pub+"/demo/mcp" {
		t.Fatalf("aud %v", m["aud"])
	}

	waitRevoked(t, e, revoked)
	for name, tc := range map[string]struct {
		caller, tok string
		active      bool
	}{
		"other agent's token":  {demoKey, forOther, false},
		"its own token":        {otherKey, forOther, true},
		"gateway-wide token":   {demoKey, wide, false},
		"expired":              {demoKey, expired, false},
		"user not allowed":     {demoKey, notAllowed, false},
		"revoked":              {demoKey, revoked, false},
		"garbage":              {demoKey, "not-a-token", false},
		"an API key":           {demoKey, userKey, false},
		"admin: other's token": {admin, forOther, true},
		"admin: gateway-wide":  {admin, wide, true},
		"admin: revoked":       {admin, revoked, false},
		"oversized":            {demoKey, strings.Repeat("a", 9000), false},
	} {
		code, m := e.post(tc.caller, tc.tok)
		if code != 200 || m["active"] != tc.active {
			t.Errorf("%s: %d %v, want active %v", name, code, m, tc.active)
		}
		if !tc.active && len(m) != 1 {
			t.Errorf("%s: an inactive answer tells more than active: %v", name, m)
		}
	}
	for name, caller := range map[string]string{
		"none": "", "user key": userKey, "revoked key": revokedKey, "expired key": expiredKey,
		"unknown key": token.PrefixAgentKey + token.Random(32), "wrong admin": admin + "x", "access token": forDemo,
	} {
		if code, m := e.post(caller, forDemo); code != http.StatusUnauthorized || m["error"] != "invalid_client" {
			t.Errorf("caller %s: %d %v, want 401 invalid_client", name, code, m)
		}
	}
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, httptest.NewRequest("GET", "/oauth/introspect?token="+forDemo, nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d", rec.Code)
	}
	if code, m := e.post(demoKey, ""); code != 400 || m["error"] != "invalid_request" {
		t.Errorf("no token: %d %v", code, m)
	}

	rec = httptest.NewRecorder()
	e.h.ServeHTTP(rec, httptest.NewRequest("GET", "/.well-known/oauth-authorization-server", nil))
	var meta map[string]any
	_ = json.Unmarshal(rec.Body.Bytes(), &meta)
	if meta["introspection_endpoint"] != e.pub+"/oauth/introspect" {
		t.Errorf("metadata introspection_endpoint %v", meta["introspection_endpoint"])
	}
}

// waitRevoked waits for the authorizer's denylist mirror to see the jti.
func waitRevoked(t *testing.T, e *introspectEnv, raw string) {
	t.Helper()
	for range 200 {
		if _, active := e.g.authz.Introspect(t.Context(), raw, ""); !active {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("the revocation never reached the authorizer")
}

func TestIntrospectionRateLimited(t *testing.T) {
	e := newIntrospectEnv(t, func(c *config.Config) { c.RateLimit.Introspect = 3 })
	for i := range 3 {
		if code, _ := e.post("", "x"); code != http.StatusUnauthorized {
			t.Fatalf("call %d: %d", i, code)
		}
	}
	if code, m := e.post("", "x"); code != http.StatusTooManyRequests {
		t.Fatalf("4th call: %d %v", code, m)
	}
}

// TestStaticAgentUpstreamAuth: a config agent's upstream credential is
// read from upstream_secrets.dir and added by the Check.
func TestStaticAgentUpstreamAuth(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "demo.token"), []byte("tok-1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e := newIntrospectEnv(t, func(c *config.Config) {
		c.UpstreamSecrets.Dir = dir
		c.Agents[0].UpstreamAuth = &store.UpstreamAuth{Header: "authorization", Prefix: "Bearer ", SecretFile: "demo.token"}
	})
	raw, _ := e.mint(t, "alice", e.pub+"/demo/mcp", time.Hour)
	req := httptest.NewRequest("GET", "/authz/check/demo/mcp", nil)
	req.Header.Set("Authorization", "Bearer "+raw)
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	if rec.Code != 200 || rec.Header().Get("Authorization") != "Bearer tok-1" || rec.Header().Get("X-Mcp-Identity") == "" {
		t.Fatalf("%d %v", rec.Code, rec.Header())
	}
}
