package authz

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcpgateway/mcp-gateway/store"
)

// upstreamEnv has agent "cred" (owner alice) requiring an upstream
// credential u, secrets in dir, and a settable clock.
func upstreamEnv(t *testing.T, u store.UpstreamAuth) (*env, string, *time.Time) {
	t.Helper()
	dir := t.TempDir()
	now := time.Now()
	e := newEnv(t, func(o *Options) {
		o.UpstreamSecretsDir = dir
		o.UpstreamSecretsRefresh = 10 * time.Second
		o.Now = func() time.Time { return now }
	})
	if err := e.st.PutAgent(context.Background(), &store.Agent{AgentSpec: store.AgentSpec{ID: "cred", Owner: "alice", UpstreamAuth: &u}}); err != nil {
		t.Fatal(err)
	}
	return e, dir, &now
}

func writeSecret(t *testing.T, dir, name, v string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(v), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestUpstreamCredential(t *testing.T) {
	e, dir, now := upstreamEnv(t, store.UpstreamAuth{Header: "Authorization", Prefix: "Bearer ", SecretFile: "cred.token"})
	writeSecret(t, dir, "cred.token", "s3cret-one\n")
	tok := e.mint("", "alice")
	req := map[string]string{"authorization": "Bearer " + tok}
	d := decideDirect(e.a, "POST", "/cred/mcp", req)
	if !d.Allow {
		t.Fatalf("%d %s", d.Status, d.Reason)
	}
	// The client's token is replaced by the agent's credential, not removed
	// after it was set.
	up := applyEnvoy(t, req, d.UpstreamHeaders, d.RemoveHeaders)
	if up["authorization"] != "Bearer s3cret-one" {
		t.Fatalf("upstream authorization %q (remove %v)", up["authorization"], d.RemoveHeaders)
	}

	// HTTP check adapter: the credential is in the 200's headers.
	rec := httptest.NewRecorder()
	r := httptest.NewRequest("GET", "/authz/check", nil)
	r.Header.Set("X-Original-URI", "/cred/mcp")
	r.Header.Set("Authorization", "Bearer "+tok)
	HTTPCheckHandler(e.a).ServeHTTP(rec, r)
	if rec.Code != 200 || rec.Header().Get("Authorization") != "Bearer s3cret-one" {
		t.Fatalf("http check: %d %v", rec.Code, rec.Header())
	}

	// Rotation: the new file is used once the refresh has passed, no restart.
	writeSecret(t, dir, "cred.token", "s3cret-two")
	if v := upstream(decideDirect(e.a, "POST", "/cred/mcp", req))["authorization"]; v != "Bearer s3cret-one" {
		t.Fatalf("re-read before the refresh: %q", v)
	}
	*now = now.Add(11 * time.Second)
	if v := upstream(decideDirect(e.a, "POST", "/cred/mcp", req))["authorization"]; v != "Bearer s3cret-two" {
		t.Fatalf("after rotation: %q", v)
	}

	// Another agent gets none, and keeps the client's token removed.
	d = decideDirect(e.a, "POST", "/alpha/mcp", req)
	if _, ok := upstream(d)["authorization"]; ok || !strings.Contains(strings.Join(d.RemoveHeaders, ","), "authorization") {
		t.Fatalf("alpha: %v remove %v", d.UpstreamHeaders, d.RemoveHeaders)
	}
	if strings.Contains(e.logs.String(), "s3cret") {
		t.Fatal("a secret reached the log")
	}
}

// TestUpstreamCredentialFailsClosed: a credential that cannot be read
// refuses the request (503), logs the reference only, and recovers once
// the file is there.
func TestUpstreamCredentialFailsClosed(t *testing.T) {
	e, dir, now := upstreamEnv(t, store.UpstreamAuth{Header: "x-api-key", SecretFile: "missing.token"})
	req := map[string]string{"authorization": "Bearer " + e.mint("", "alice")}
	d := decideDirect(e.a, "POST", "/cred/mcp", req)
	if d.Allow || d.Status != 503 {
		t.Fatalf("missing secret: %d %s", d.Status, d.Reason)
	}
	if !strings.Contains(e.logs.String(), "missing.token") {
		t.Fatalf("the log does not name the reference: %s", e.logs.String())
	}
	writeSecret(t, dir, "missing.token", "k-123")
	*now = now.Add(11 * time.Second)
	if v := upstream(decideDirect(e.a, "POST", "/cred/mcp", req))["x-api-key"]; v != "k-123" {
		t.Fatalf("after the file appeared: %q", v)
	}
	for name, content := range map[string]string{"empty": "\n", "two lines": "a\r\nX-Injected: 1", "binary": "a\x00b"} {
		writeSecret(t, dir, "missing.token", content)
		*now = now.Add(11 * time.Second)
		if d := decideDirect(e.a, "POST", "/cred/mcp", req); d.Allow {
			t.Errorf("%s secret: allowed with %v", name, d.UpstreamHeaders)
		}
	}
}

// TestUpstreamCredentialConfinement: a reference can reach neither a file
// outside the directory (symlink) nor the gateway's own environment.
func TestUpstreamCredentialConfinement(t *testing.T) {
	outside := filepath.Join(t.TempDir(), "signing.key")
	writeSecret(t, filepath.Dir(outside), "signing.key", "gateway-signing-secret")
	t.Setenv("MCPGW_ADMIN_TOKEN", "the-admin-token")
	t.Setenv("MCPGW_UPSTREAM_SECRET_CRED", "env-secret")

	e, dir, _ := upstreamEnv(t, store.UpstreamAuth{Header: "x-api-key", SecretFile: "link"})
	if err := os.Symlink(outside, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	req := map[string]string{"authorization": "Bearer " + e.mint("", "alice")}
	if d := decideDirect(e.a, "POST", "/cred/mcp", req); d.Allow {
		t.Fatalf("a symlink out of the directory was followed: %v", d.UpstreamHeaders)
	}
	for _, u := range []store.UpstreamAuth{
		{Header: "x-api-key", SecretEnv: "MCPGW_ADMIN_TOKEN"},
		{Header: "x-api-key", SecretFile: "../signing.key"},
		{Header: "x-mcp-user", SecretEnv: "MCPGW_UPSTREAM_SECRET_CRED"},
	} {
		// Written straight to the store, past the admin API's validation.
		if err := e.st.PutAgent(context.Background(), &store.Agent{AgentSpec: store.AgentSpec{ID: "cred", Owner: "alice", UpstreamAuth: &u}}); err != nil {
			t.Fatal(err)
		}
		e.a.onEvent(store.Event{Kind: store.EventAgent, ID: "cred"})
		if d := decideDirect(e.a, "POST", "/cred/mcp", req); d.Allow || d.Status != 503 {
			t.Errorf("%+v: %d %v", u, d.Status, d.UpstreamHeaders)
		}
	}
	if err := e.st.PutAgent(context.Background(), &store.Agent{AgentSpec: store.AgentSpec{ID: "cred", Owner: "alice", UpstreamAuth: &store.UpstreamAuth{Header: "x-api-key", SecretEnv: "MCPGW_UPSTREAM_SECRET_CRED"}}}); err != nil {
		t.Fatal(err)
	}
	e.a.onEvent(store.Event{Kind: store.EventAgent, ID: "cred"})
	if v := upstream(decideDirect(e.a, "POST", "/cred/mcp", req))["x-api-key"]; v != "env-secret" {
		t.Fatalf("env secret: %q", v)
	}
	for _, s := range []string{"gateway-signing-secret", "the-admin-token", "env-secret"} {
		if strings.Contains(e.logs.String(), s) {
			t.Fatalf("%q reached the log", s)
		}
	}
}
