package assertion_test

import (
	"crypto/ecdsa"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcpgateway/mcp-gateway/agentauth"
	"github.com/mcpgateway/mcp-gateway/assertion"
)

const iss = "http://gw.test"

func genKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := assertion.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newSigner(t testing.TB, keys ...assertion.Key) *assertion.Signer {
	t.Helper()
	s, err := assertion.New(assertion.Options{Issuer: iss, Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// jwksServer serves whatever signer *cur points to, as the gateway would.
func jwksServer(t *testing.T, cur **assertion.Signer) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		(*cur).JWKSHandler().ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func verifier(t *testing.T, jwks string) *agentauth.Verifier {
	t.Helper()
	v, err := agentauth.New(agentauth.Options{Issuer: iss, Audiences: []string{iss + "/alpha/mcp"}, JWKSURL: jwks, MinRefetchInterval: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

var alice = assertion.Identity{Subject: "alice", ClientID: "c1", Scope: "mcp", Credential: "oauth"}

// TestRotation: a key prepended signs; the old one still verifies while it
// is published, and stops once removed.
func TestRotation(t *testing.T) {
	old := assertion.Key{ID: "old", Private: genKey(t)}
	nu := assertion.Key{ID: "new", Private: genKey(t)}
	cur := newSigner(t, old)
	srv := jwksServer(t, &cur)
	v := verifier(t, srv.URL)
	now := time.Now()
	byOld, err := cur.Sign(alice, iss+"/alpha/mcp", now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(t.Context(), byOld); err != nil {
		t.Fatalf("old key: %v", err)
	}
	cur = newSigner(t, nu, old) // rotation: prepend
	byNew, _ := cur.Sign(alice, iss+"/alpha/mcp", now)
	for name, raw := range map[string]string{"new": byNew, "old": byOld} {
		if id, err := v.Verify(t.Context(), raw); err != nil || id.Subject != "alice" {
			t.Fatalf("%s after rotation: %v %v", name, id, err)
		}
	}
	cur = newSigner(t, nu) // old removed
	stillOld, _ := newSigner(t, old).Sign(alice, iss+"/alpha/mcp", now)
	// The verifier has "old" cached from before; a fresh one (an agent
	// restart, or the periodic refresh) no longer accepts it.
	if _, err := verifier(t, srv.URL).Verify(t.Context(), stillOld); !errors.Is(err, agentauth.ErrInvalid) {
		t.Fatalf("removed key still verifies: %v", err)
	}
}

func TestJWKSHandler(t *testing.T) {
	s := newSigner(t, assertion.Key{ID: "a", Private: genKey(t)}, assertion.Key{ID: "b", Private: genKey(t)})
	rec := httptest.NewRecorder()
	s.JWKSHandler().ServeHTTP(rec, httptest.NewRequest("GET", assertion.JWKSPath, nil))
	if rec.Code != 200 || rec.Header().Get("Cache-Control") != "public, max-age=300" || rec.Header().Get("Content-Type") != "application/jwk-set+json" {
		t.Fatalf("%d %v", rec.Code, rec.Header())
	}
	body := rec.Body.String()
	if !strings.Contains(body, `"kid":"a"`) || !strings.Contains(body, `"kid":"b"`) || strings.Contains(body, `"d"`) {
		t.Fatalf("key set %s", body)
	}
	etag := rec.Header().Get("ETag")
	rec = httptest.NewRecorder()
	req := httptest.NewRequest("GET", assertion.JWKSPath, nil)
	req.Header.Set("If-None-Match", etag)
	s.JWKSHandler().ServeHTTP(rec, req)
	if rec.Code != http.StatusNotModified {
		t.Fatalf("conditional GET: %d", rec.Code)
	}
	rec = httptest.NewRecorder()
	s.JWKSHandler().ServeHTTP(rec, httptest.NewRequest("POST", assertion.JWKSPath, nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Fatalf("POST: %d", rec.Code)
	}
}

func TestKeyFiles(t *testing.T) {
	k := genKey(t)
	pemBytes, err := assertion.MarshalKey(k)
	if err != nil {
		t.Fatal(err)
	}
	back, err := assertion.ParseKey(pemBytes)
	if err != nil || !back.Equal(k) {
		t.Fatalf("round trip: %v", err)
	}
	p := filepath.Join(t.TempDir(), "k.pem")
	if err := os.WriteFile(p, []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	for name, in := range map[string][]byte{"garbage": b, "empty": nil, "public": []byte("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")} {
		if _, err := assertion.ParseKey(in); err == nil {
			t.Errorf("%s: parsed", name)
		}
	}
}

func TestDeriveKey(t *testing.T) {
	a, err := assertion.DeriveKey([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := assertion.DeriveKey([]byte("0123456789abcdef0123456789abcdef"))
	c, _ := assertion.DeriveKey([]byte("0123456789abcdef0123456789abcdeF"))
	if !a.Equal(b) || a.Equal(c) {
		t.Fatal("derivation is not a function of the secret alone")
	}
}

func TestNewRefuses(t *testing.T) {
	k := genKey(t)
	for name, o := range map[string]assertion.Options{
		"no issuer": {Keys: []assertion.Key{{ID: "a", Private: k}}},
		"no keys":   {Issuer: iss},
		"no id":     {Issuer: iss, Keys: []assertion.Key{{Private: k}}},
		"dup id":    {Issuer: iss, Keys: []assertion.Key{{ID: "a", Private: k}, {ID: "a", Private: k}}},
		"nil key":   {Issuer: iss, Keys: []assertion.Key{{ID: "a"}}},
	} {
		if _, err := assertion.New(o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// The cost of an assertion with and without the cache.
func BenchmarkSign(b *testing.B) {
	s := newSigner(b, assertion.Key{ID: "a", Private: genKey(b)})
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Sign(alice, iss+"/alpha/mcp", now); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGetCached(b *testing.B) {
	s := newSigner(b, assertion.Key{ID: "a", Private: genKey(b)})
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Get("jti-1", "alpha", iss+"/alpha/mcp", alice, now); err != nil {
			b.Fatal(err)
		}
	}
}
