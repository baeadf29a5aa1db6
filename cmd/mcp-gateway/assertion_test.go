package main

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcpgateway/mcp-gateway/agentauth"
	"github.com/mcpgateway/mcp-gateway/assertion"
	"github.com/mcpgateway/mcp-gateway/config"
	"github.com/mcpgateway/mcp-gateway/token"
)

func TestGenAssertionKey(t *testing.T) {
	p := filepath.Join(t.TempDir(), "a1.pem")
	var out bytes.Buffer
	if err := runKeys(t.Context(), []string{"gen-assertion", "--out", p, "--id", "a1"}, &out); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(p)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", st, err)
	}
	b, _ := os.ReadFile(p)
	if _, err := assertion.ParseKey(b); err != nil {
		t.Fatalf("the written key does not load: %v", err)
	}
	if !strings.Contains(out.String(), "{id: a1, private_key_file: "+p+"}") {
		t.Errorf("output %s", out.String())
	}
	if err := runKeys(t.Context(), []string{"gen-assertion", "--out", p}, &bytes.Buffer{}); err == nil {
		t.Fatal("an existing key file was overwritten")
	}
	if b2, _ := os.ReadFile(p); !bytes.Equal(b, b2) {
		t.Fatal("the key file changed")
	}
	if err := runKeys(t.Context(), []string{"gen-assertion"}, &bytes.Buffer{}); err == nil {
		t.Fatal("no --out accepted")
	}
}

func TestAssertionSignerFromConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(name string) string {
		p := filepath.Join(dir, name)
		if err := runGenAssertion([]string{"--out", p}, &bytes.Buffer{}); err != nil {
			t.Fatal(err)
		}
		return p
	}
	log := slog.New(slog.DiscardHandler)
	ring := []token.Key{{ID: "k1", Secret: []byte("0123456789abcdef0123456789abcdef")}}
	cfg := config.Default()
	cfg.AssertionKeys = []config.AssertionKey{{ID: "new", PrivateKeyFile: write("new.pem")}, {ID: "old", PrivateKeyFile: write("old.pem")}}
	s, err := newAssertionSigner(cfg, ring, log)
	if err != nil {
		t.Fatal(err)
	}
	var set agentauth.JWKS
	if err := json.Unmarshal(s.JWKS(), &set); err != nil || len(set.Keys) != 2 || set.Keys[0].Kid != "new" || set.Keys[1].Kid != "old" {
		t.Fatalf("published %s (%v)", s.JWKS(), err)
	}
	raw, _ := s.Sign(assertion.Identity{Subject: "a", Credential: "oauth"}, cfg.PublicURL+"/demo/mcp", time.Now())
	if !strings.HasPrefix(raw, "eyJhbGciOiJFUzI1NiIsImtpZCI6Im5ldyIs") { // {"alg":"ES256","kid":"new",
		t.Errorf("not signed by the first key: %s", raw)
	}

	// None configured: one derived per signing key, the same on every replica.
	cfg.AssertionKeys = nil
	a, _ := newAssertionSigner(cfg, ring, log)
	b, _ := newAssertionSigner(cfg, ring, log)
	if !bytes.Equal(a.JWKS(), b.JWKS()) || !strings.Contains(string(a.JWKS()), `"kid":"hs-k1"`) {
		t.Fatalf("derived keys differ or are misnamed: %s %s", a.JWKS(), b.JWKS())
	}

	for name, k := range map[string]config.AssertionKey{
		"missing file": {ID: "x", PrivateKeyFile: filepath.Join(dir, "nope.pem")},
		"not a key":    {ID: "x", PrivateKeyFile: writeFile(t, dir, "junk.pem", "junk")},
	} {
		cfg.AssertionKeys = []config.AssertionKey{k}
		if _, err := newAssertionSigner(cfg, ring, log); err == nil || !strings.Contains(err.Error(), "assertion_keys[0]") {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func writeFile(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestJWKSServed: the gateway's HTTP handler publishes the assertion keys,
// and the authorization server metadata does not name them as its
// jwks_uri (its access tokens are HS256, not verifiable with them).
func TestJWKSServed(t *testing.T) {
	cfg := config.Default()
	cfg.SigningKeys = []config.SigningKey{{ID: "k1", Secret: "0123456789abcdef0123456789abcdef"}}
	g, err := newGateway(t.Context(), cfg, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.store.Close() })
	h := g.httpHandler()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", assertion.JWKSPath, nil))
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"kid":"hs-k1"`) || rec.Header().Get("Cache-Control") == "" {
		t.Fatalf("jwks: %d %v %s", rec.Code, rec.Header(), rec.Body)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/.well-known/oauth-authorization-server", nil))
	if rec.Code != 200 || strings.Contains(rec.Body.String(), "jwks") {
		t.Fatalf("AS metadata: %d %s", rec.Code, rec.Body)
	}
}
