package agentauth_test

import (
	"crypto/ecdsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/mcpgateway/mcp-gateway/agentauth"
	"github.com/mcpgateway/mcp-gateway/assertion"
)

const (
	iss = "http://gw.test"
	aud = iss + "/alpha/mcp"
)

var alice = assertion.Identity{Subject: "alice", ClientID: "c1", Scope: "mcp", Credential: "oauth"}

// gw is the gateway side: the current signer, its JWKS endpoint and a
// count of fetches.
type gw struct {
	mu      sync.Mutex
	s       *assertion.Signer
	fetches atomic.Int32
	srv     *httptest.Server
}

func newKey(t testing.TB, id string) assertion.Key {
	t.Helper()
	k, err := assertion.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return assertion.Key{ID: id, Private: k}
}

func newGW(t *testing.T, keys ...assertion.Key) *gw {
	t.Helper()
	g := &gw{}
	g.set(t, keys...)
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.fetches.Add(1)
		g.mu.Lock()
		s := g.s
		g.mu.Unlock()
		s.JWKSHandler().ServeHTTP(w, r)
	}))
	t.Cleanup(g.srv.Close)
	return g
}

func (g *gw) set(t *testing.T, keys ...assertion.Key) {
	t.Helper()
	s, err := assertion.New(assertion.Options{Issuer: iss, Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	g.mu.Lock()
	g.s = s
	g.mu.Unlock()
}

func (g *gw) sign(t *testing.T, id assertion.Identity, audience string, at time.Time) string {
	t.Helper()
	g.mu.Lock()
	s := g.s
	g.mu.Unlock()
	raw, err := s.Sign(id, audience, at)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func (g *gw) verifier(t *testing.T, tweak ...func(*agentauth.Options)) *agentauth.Verifier {
	t.Helper()
	o := agentauth.Options{Issuer: iss, Audiences: []string{aud}, JWKSURL: g.srv.URL}
	for _, f := range tweak {
		f(&o)
	}
	v, err := agentauth.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// resign signs claims edited by edit with key k, keeping the header fields given.
func resign(t *testing.T, raw string, k *ecdsa.PrivateKey, kid, typ string, edit func(map[string]any)) string {
	t.Helper()
	parts := strings.Split(raw, ".")
	b, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var m jwt.MapClaims
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, m)
	tok.Header["kid"], tok.Header["typ"] = kid, typ
	s, err := tok.SignedString(k)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestVerify(t *testing.T) {
	k1 := newKey(t, "k1")
	g := newGW(t, k1)
	v := g.verifier(t)
	now := time.Now()
	good := g.sign(t, alice, aud, now)
	id, err := v.Verify(t.Context(), good)
	if err != nil {
		t.Fatalf("the gateway's assertion: %v", err)
	}
	if id.Subject != "alice" || id.ClientID != "c1" || id.Scope != "mcp" || id.Credential != "oauth" || id.Audience != aud || id.Issuer != iss || id.ID == "" {
		t.Fatalf("identity %+v", id)
	}
	other := newKey(t, "k1") // same kid, another key
	parts := strings.Split(good, ".")
	for name, raw := range map[string]string{
		"empty":         "",
		"tampered":      tamper(t, good, func(m map[string]any) { m["sub"] = "root" }),
		"sig cut":       parts[0] + "." + parts[1] + "." + parts[2][:len(parts[2])-4],
		"expired":       g.sign(t, alice, aud, now.Add(-assertion.TTL-time.Minute)),
		"future iat":    g.sign(t, alice, aud, now.Add(10*time.Minute)),
		"wrong aud":     g.sign(t, alice, iss+"/beta/mcp", now),
		"gateway aud":   g.sign(t, alice, iss, now),
		"unknown kid":   resign(t, good, k1.Private, "k9", agentauth.Type, func(map[string]any) {}),
		"other key":     resign(t, good, other.Private, "k1", agentauth.Type, func(map[string]any) {}),
		"wrong typ":     resign(t, good, k1.Private, "k1", "JWT", func(map[string]any) {}),
		"wrong iss":     resign(t, good, k1.Private, "k1", agentauth.Type, func(m map[string]any) { m["iss"] = "http://evil.test" }),
		"no exp":        resign(t, good, k1.Private, "k1", agentauth.Type, func(m map[string]any) { delete(m, "exp") }),
		"two auds":      resign(t, good, k1.Private, "k1", agentauth.Type, func(m map[string]any) { m["aud"] = []string{aud, iss + "/beta/mcp"} }),
		"alg none":      "eyJhbGciOiJub25lIiwidHlwIjoibWNwLWlkZW50aXR5K2p3dCIsImtpZCI6ImsxIn0." + parts[1] + ".",
		"hs256":         hs256(t, good),
		"oversized":     good + strings.Repeat("A", agentauth.MaxLen),
		"no credential": resign(t, good, k1.Private, "k1", agentauth.Type, func(m map[string]any) { delete(m, "credential") }),
	} {
		if _, err := v.Verify(t.Context(), raw); err == nil {
			t.Errorf("%s: accepted", name)
		} else if !errors.Is(err, agentauth.ErrInvalid) && !errors.Is(err, agentauth.ErrMissing) {
			t.Errorf("%s: %v is neither ErrInvalid nor ErrMissing", name, err)
		}
	}
}

// hs256 re-signs the payload with HS256 keyed by the JWKS document: the
// classic algorithm confusion.
func hs256(t *testing.T, raw string) string {
	t.Helper()
	parts := strings.Split(raw, ".")
	b, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var m jwt.MapClaims
	_ = json.Unmarshal(b, &m)
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, m)
	tok.Header["kid"], tok.Header["typ"] = "k1", agentauth.Type
	s, err := tok.SignedString([]byte("the-public-key-used-as-an-hmac-secret"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func tamper(t *testing.T, raw string, edit func(map[string]any)) string {
	t.Helper()
	parts := strings.Split(raw, ".")
	b, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	edit(m)
	b, _ = json.Marshal(m)
	parts[1] = base64.RawURLEncoding.EncodeToString(b)
	return strings.Join(parts, ".")
}

// TestRotation: a verifier holding the old key set accepts a token by a
// newly prepended key (refetch on the unknown kid), the old kid verifies
// while published, and stops once removed and the set refreshed.
func TestRotation(t *testing.T) {
	old, nu := newKey(t, "old"), newKey(t, "new")
	g := newGW(t, old)
	now := time.Now()
	clock := now
	v := g.verifier(t, func(o *agentauth.Options) {
		o.Now = func() time.Time { return clock }
		o.MinRefetchInterval = time.Second
		o.RefreshInterval = time.Minute
	})
	byOld := g.sign(t, alice, aud, now)
	if _, err := v.Verify(t.Context(), byOld); err != nil {
		t.Fatal(err)
	}
	g.set(t, nu, old)
	byNew := g.sign(t, alice, aud, now)
	clock = clock.Add(2 * time.Second)
	for name, raw := range map[string]string{"new": byNew, "old": byOld} {
		if _, err := v.Verify(t.Context(), raw); err != nil {
			t.Fatalf("%s kid after rotation: %v", name, err)
		}
	}
	if n := g.fetches.Load(); n != 2 {
		t.Errorf("%d fetches, want 2 (first use, unknown kid)", n)
	}
	g.set(t, nu)
	clock = clock.Add(2 * time.Minute) // the set is stale: refreshed in the background
	_, _ = v.Verify(t.Context(), byNew)
	waitFor(t, func() bool { return g.fetches.Load() == 3 })
	waitFor(t, func() bool { _, err := v.Verify(t.Context(), byOld); return err != nil })
	if _, err := v.Verify(t.Context(), byNew); err != nil {
		t.Fatalf("new kid after the old was removed: %v", err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for range 200 {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("condition not met")
}

// TestUnknownKidRateLimited: tokens with made-up kids cause at most one
// fetch per MinRefetchInterval.
func TestUnknownKidRateLimited(t *testing.T) {
	k := newKey(t, "k1")
	g := newGW(t, k)
	v := g.verifier(t, func(o *agentauth.Options) { o.MinRefetchInterval = time.Hour })
	good := g.sign(t, alice, aud, time.Now())
	for i := range 50 {
		_, _ = v.Verify(t.Context(), resign(t, good, k.Private, "made-up-"+string(rune('a'+i)), agentauth.Type, func(map[string]any) {}))
	}
	if n := g.fetches.Load(); n != 1 {
		t.Fatalf("%d fetches for 50 unknown kids, want 1", n)
	}
	if _, err := v.Verify(t.Context(), good); err != nil {
		t.Fatal(err)
	}
}

func TestMiddleware(t *testing.T) {
	g := newGW(t, newKey(t, "k1"))
	v := g.verifier(t)
	var seen *agentauth.Identity
	h := v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen, _ = agentauth.FromContext(r.Context())
	}))
	for name, tc := range map[string]struct {
		hdr  string
		code int
	}{
		"missing": {"", 403},
		"forged":  {"eyJhbGciOiJub25lIn0.eyJzdWIiOiJyb290In0.", 403},
		"good":    {g.sign(t, alice, aud, time.Now()), 200},
	} {
		seen = nil
		req := httptest.NewRequest("POST", "/mcp", nil)
		req.Header.Set("X-Mcp-User", "root")
		if tc.hdr != "" {
			req.Header.Set(agentauth.Header, tc.hdr)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tc.code || (tc.code == 200) != (seen != nil) {
			t.Errorf("%s: %d, identity %v", name, rec.Code, seen)
		}
		if tc.code == 200 && seen.Subject != "alice" {
			t.Errorf("identity %+v", seen)
		}
	}
}

// TestBindSessions: a session opened by alice is refused (404) to bob and
// to alice through another client, and forgotten on DELETE.
func TestBindSessions(t *testing.T) {
	g := newGW(t, newKey(t, "k1"))
	v := g.verifier(t)
	var n atomic.Int32
	mcp := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(agentauth.SessionHeader) == "" {
			w.Header().Set(agentauth.SessionHeader, "s"+string(rune('0'+n.Add(1))))
		}
		w.WriteHeader(http.StatusOK)
	})
	h := v.Middleware(agentauth.BindSessions(mcp, agentauth.SessionOptions{}))
	do := func(method string, id assertion.Identity, sid string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, "/mcp", nil)
		req.Header.Set(agentauth.Header, g.sign(t, id, aud, time.Now()))
		if sid != "" {
			req.Header.Set(agentauth.SessionHeader, sid)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	sid := do("POST", alice, "").Header().Get(agentauth.SessionHeader)
	if sid == "" {
		t.Fatal("no session created")
	}
	if c := do("POST", alice, sid).Code; c != 200 {
		t.Fatalf("owner: %d", c)
	}
	bob := alice
	bob.Subject = "bob"
	otherClient := alice
	otherClient.ClientID = "c2"
	for name, id := range map[string]assertion.Identity{"another user": bob, "another client": otherClient} {
		if c := do("POST", id, sid).Code; c != http.StatusNotFound {
			t.Errorf("%s: %d, want 404", name, c)
		}
	}
	if c := do("POST", alice, "never-issued").Code; c != http.StatusNotFound {
		t.Errorf("unknown session: %d", c)
	}
	if c := do("DELETE", alice, sid).Code; c != 200 {
		t.Fatalf("delete: %d", c)
	}
	if c := do("POST", alice, sid).Code; c != http.StatusNotFound {
		t.Errorf("after delete: %d", c)
	}
}
