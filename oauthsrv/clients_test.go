package oauthsrv

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mcpgateway/mcp-gateway/config"
	"github.com/mcpgateway/mcp-gateway/store"
	"github.com/mcpgateway/mcp-gateway/store/memstore"
)

// onMemstore makes newEnv use a memstore on the test clock even when the
// suite runs on Redis: idle expiry is judged by the injected clock here
// (store/redisstore tests the same TTLs on a real Redis).
func onMemstore(t *testing.T) {
	prev := storeFactory
	storeFactory = func(tb testing.TB, now func() time.Time) store.Store {
		s := memstore.NewWithClock(now)
		tb.Cleanup(func() { _ = s.Close() })
		return s
	}
	t.Cleanup(func() { storeFactory = prev })
}

func TestRegisteredClientIdleExpiry(t *testing.T) {
	onMemstore(t)
	e := newEnv(t) // default clients.idle_ttl: 720h
	ctx := t.Context()
	day := 24 * time.Hour
	id := e.register("idle")
	c, err := e.st.GetClient(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if want := e.clock.Now().Add(30 * day); c.ExpiresAt.Before(want.Add(-time.Minute)) || c.ExpiresAt.After(want.Add(time.Minute)) {
		t.Fatalf("ExpiresAt = %v, want about %v", c.ExpiresAt, want)
	}

	// Use at /oauth/authorize renews it…
	e.clock.Advance(20 * day)
	if st, body := e.authorizePage(id, loopbackRedirect); st != http.StatusFound {
		t.Fatalf("authorize after 20 days: %d %s", st, body)
	}
	e.clock.Advance(20 * day)
	if st, body := e.authorizePage(id, loopbackRedirect); st != http.StatusFound {
		t.Fatalf("authorize 40 days after registration (20 after use): %d %s", st, body)
	}
	// …and so does use at /oauth/token, even a failed grant.
	e.clock.Advance(20 * day)
	resp := e.postForm("/oauth/token", url.Values{"grant_type": {"refresh_token"}, "client_id": {id}, "refresh_token": {"nope"}})
	expectOAuthError(t, resp, http.StatusBadRequest, "invalid_grant")
	e.clock.Advance(20 * day)
	if st, body := e.authorizePage(id, loopbackRedirect); st != http.StatusFound {
		t.Fatalf("authorize 20 days after a token request: %d %s", st, body)
	}

	// 30 idle days: gone everywhere.
	e.clock.Advance(30*day + time.Minute)
	if st, body := e.authorizePage(id, loopbackRedirect); st != http.StatusBadRequest || !strings.Contains(body, "not registered") {
		t.Fatalf("authorize after 30 idle days: %d %s", st, body)
	}
	resp = e.postForm("/oauth/token", url.Values{"grant_type": {"refresh_token"}, "client_id": {id}, "refresh_token": {"nope"}})
	expectOAuthError(t, resp, http.StatusUnauthorized, "invalid_client")
	if _, err := e.st.GetClient(ctx, id); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("expired client still in the store: %v", err)
	}
}

func TestClientsNeverExpireWithZeroIdleTTL(t *testing.T) {
	onMemstore(t)
	e := newEnv(t, func(c *config.Config, _ *Options) { c.Clients.IdleTTL = 0 })
	id := e.register("forever")
	c, err := e.st.GetClient(t.Context(), id)
	if err != nil || !c.ExpiresAt.IsZero() {
		t.Fatalf("client %+v, %v: want no expiry", c, err)
	}
	e.clock.Advance(10 * 365 * 24 * time.Hour)
	if st, body := e.authorizePage(id, loopbackRedirect); st != http.StatusFound {
		t.Fatalf("authorize: %d %s", st, body)
	}
}

// registerFrom registers a client as if from ip (through a trusted proxy).
func (e *env) registerFrom(ip string) *http.Response {
	e.t.Helper()
	b, _ := json.Marshal(map[string]any{"client_name": "cap", "redirect_uris": []string{loopbackRedirect}})
	req, _ := http.NewRequest(http.MethodPost, e.url+"/oauth/register", strings.NewReader(string(b)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Forwarded-For", ip)
	return e.do(req)
}

func TestClientCapPerIP(t *testing.T) {
	onMemstore(t)
	e := newEnv(t, func(c *config.Config, _ *Options) {
		c.Clients.MaxPerIP = 3
		c.TrustedProxies = []string{"127.0.0.0/8"}
	})
	ctx := t.Context()
	var ids []string
	for i := range 3 {
		resp := e.registerFrom("203.0.113.7")
		m := readJSON(t, resp)
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("registration %d: %d %v", i, resp.StatusCode, m)
		}
		ids = append(ids, m["client_id"].(string))
	}
	resp := e.registerFrom("203.0.113.7")
	m := readJSON(t, resp)
	if resp.StatusCode != http.StatusTooManyRequests || m["error"] != "rate_limited" ||
		!strings.Contains(m["error_description"].(string), "too many clients registered from this address") {
		t.Fatalf("4th registration: %d %v", resp.StatusCode, m)
	}
	if cs, _ := e.st.ListClients(ctx); len(cs) != 3 {
		t.Fatalf("%d clients stored, want 3", len(cs))
	}
	// Another address is not affected.
	if resp := e.registerFrom("198.51.100.9"); resp.StatusCode != http.StatusCreated {
		t.Fatalf("other IP: %d %v", resp.StatusCode, readJSON(t, resp))
	}
	// Deleting one (admin) frees a slot.
	if err := e.st.DeleteClient(ctx, ids[0]); err != nil {
		t.Fatal(err)
	}
	if resp := e.registerFrom("203.0.113.7"); resp.StatusCode != http.StatusCreated {
		t.Fatalf("after a delete: %d %v", resp.StatusCode, readJSON(t, resp))
	}
	expectOAuthError(t, e.registerFrom("203.0.113.7"), http.StatusTooManyRequests, "rate_limited")
	// Clients that expired stop counting.
	e.clock.Advance(31 * 24 * time.Hour)
	if resp := e.registerFrom("203.0.113.7"); resp.StatusCode != http.StatusCreated {
		t.Fatalf("after idle expiry: %d %v", resp.StatusCode, readJSON(t, resp))
	}
}

// The cap on a real backend too (no clock needed): whatever storeFactory is.
func TestClientCapPerIPAnyStore(t *testing.T) {
	e := newEnv(t, func(c *config.Config, _ *Options) { c.Clients.MaxPerIP = 2 })
	e.register("a")
	e.register("b")
	resp := e.postJSON("/oauth/register", `{"redirect_uris":["`+loopbackRedirect+`"]}`)
	expectOAuthError(t, resp, http.StatusTooManyRequests, "rate_limited")
}
