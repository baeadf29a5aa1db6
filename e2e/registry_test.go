//go:build e2e

package e2e

// The agent registry reaches the data planes: an agent created through the
// admin CLI against `serve` on real Redis is routed by nginx once
// `mcp-gateway nginx-config` regenerates the include and nginx reloads; and
// no client x-mcp-* header of any name reaches an agent through nginx or
// dev mode's proxy (issue 10, item 7).

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// echoAgent stands in for an MCP server: it answers every request with the
// headers it received, and remembers the last request's.
type echoAgent struct {
	srv  *httptest.Server
	mu   sync.Mutex
	last http.Header
}

func startEchoAgent(t *testing.T) *echoAgent {
	t.Helper()
	e := &echoAgent{}
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.mu.Lock()
		e.last = r.Header.Clone()
		e.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"path": r.URL.Path, "host": r.Host, "headers": r.Header})
	}))
	t.Cleanup(e.srv.Close)
	return e
}

// spoofedMCPHeaders are client headers an agent must never see: x-mcp-*
// names the gateway sets, names it has never heard of, and underscore
// spellings that CGI-style servers fold into the same names.
var spoofedMCPHeaders = map[string]string{
	"X-MCP-Role": "admin", "x-mcp-user": "mallory", "X-Mcp-Credential": "agent_key",
	"X-Mcp-Tenant": "other", "x-mcp-": "empty-suffix", "X-MCP-AGENT": "demo", "x_mcp_role": "admin",
	"X-MCP-Identity": "forged.assertion.value",
}

// reach sends POST /<agent>/mcp to base with credential and the spoofed
// headers, and returns the status and, on 200, the headers the agent saw.
func reach(t *testing.T, base, agent, credential string) (int, http.Header) {
	t.Helper()
	req, err := http.NewRequest("POST", base+"/"+agent+"/mcp", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"ping"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+credential)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
	// A ping is idempotent: saying so lets the transport resend it when
	// nginx, reloading, closes the kept-alive connection it was sent on
	// (seen as a bare EOF). A refused request still shows as its status.
	req.Header.Set("Idempotency-Key", "ping")
	for k, v := range spoofedMCPHeaders {
		req.Header[k] = []string{v} // as written: keeps the underscores
	}
	resp, err := quickClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, nil
	}
	var seen struct {
		Headers http.Header `json:"headers"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&seen); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, seen.Headers
}

// checkAgentSaw: exactly the gateway's identity for user on agent among
// the x-mcp-* headers, no credential, no underscore spelling.
func checkAgentSaw(t *testing.T, h http.Header, user, agent, cred string) {
	t.Helper()
	want := map[string]string{"X-Mcp-User": user, "X-Mcp-Agent": agent, "X-Mcp-Credential": cred, "X-Mcp-Scope": "mcp"}
	for k, v := range h {
		lk := strings.ToLower(k)
		switch {
		case lk == "authorization":
			t.Errorf("the agent got Authorization")
		case strings.Contains(lk, "_"):
			t.Errorf("the agent got %s = %q", k, v)
		case lk == "x-mcp-identity":
			// The gateway's own assertion, never the client's forged one.
			if len(v) != 1 || assertionSubject(v[0]) != user {
				t.Errorf("the agent got %s = %q, want the gateway's assertion for %s", k, v, user)
			}
		case strings.HasPrefix(lk, "x-mcp-") && lk != "x-mcp-client-id":
			if w, ok := want[k]; !ok || len(v) != 1 || v[0] != w {
				t.Errorf("the agent got %s = %q, want %q", k, v, want[k])
			}
		}
	}
	for k, v := range want {
		if h.Get(k) != v {
			t.Errorf("the agent got %s = %q, want %q", k, h.Get(k), v)
		}
	}
}

// assertionSubject is the sub claim of a JWT's payload ("" when it is not one).
func assertionSubject(jwt string) string {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return ""
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var c struct {
		Sub string `json:"sub"`
	}
	if json.Unmarshal(b, &c) != nil {
		return ""
	}
	return c.Sub
}

// within polls f until it returns true or d passes.
func within(d time.Duration, f func() bool) bool {
	for deadline := time.Now().Add(d); ; time.Sleep(50 * time.Millisecond) {
		if f() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

func TestNginxRoutesRegistryAgents(t *testing.T) {
	gw := startServe(t, nil)
	base := startNginx(t, gw)
	echo := startEchoAgent(t)

	// A new agent: created through the admin CLI, so it lives in the store.
	gw.CLI(t, "agents", "create", "--id", "echo.v2", "--owner", "alice", "--upstream", echo.srv.URL+"/mcp")
	key := gw.CreateKey(t, "agent", "echo.v2", "nginx")
	if st, _ := reach(t, base, "echo.v2", key.Key); st != http.StatusNotFound {
		t.Fatalf("before nginx-config and a reload: %d, want 404 (no route yet)", st)
	}

	gw.reloadNginx(t)
	var st int
	var seen http.Header
	if !within(10*time.Second, func() bool { st, seen = reach(t, base, "echo.v2", key.Key); return st == http.StatusOK }) {
		t.Fatalf("after nginx-config and nginx -s reload: %d, want 200", st)
	}
	checkAgentSaw(t, seen, "alice", "echo.v2", "agent_key")
	if got := echo.last.Get("Mcp-Protocol-Version"); got != "2025-11-25" {
		t.Errorf("the agent got Mcp-Protocol-Version %q", got)
	}

	// An OAuth access token for the new agent, through nginx end to end.
	tok := oauthTokens(t, base, "alice", gw.Users["alice"], gw.MCPURL("echo.v2"))
	st, seen = reach(t, base, "echo.v2", tok.AccessToken)
	if st != http.StatusOK {
		t.Fatalf("with an access token: %d", st)
	}
	checkAgentSaw(t, seen, "alice", "echo.v2", "oauth")
	// The static agents still go to the demo agent; another spelling of the
	// new id is no route.
	if st, _ := reach(t, base, "demo", tok.AccessToken); st != http.StatusUnauthorized {
		t.Errorf("echo.v2's token at demo: %d, want 401 (audience)", st)
	}
	if st, _ := reach(t, base, "Echo.v2", key.Key); st != http.StatusNotFound {
		t.Errorf("/Echo.v2/mcp: %d, want 404", st)
	}

	// Deleted: denied by the gateway at once, unrouted after the next reload.
	gw.CLI(t, "agents", "delete", "echo.v2")
	if !within(10*time.Second, func() bool { st, _ = reach(t, base, "echo.v2", key.Key); return st != http.StatusOK }) {
		t.Fatalf("a deleted agent is still reached: %d", st)
	}
	gw.reloadNginx(t)
	if !within(10*time.Second, func() bool { st, _ = reach(t, base, "echo.v2", key.Key); return st == http.StatusNotFound }) {
		t.Fatalf("a deleted agent after the reload: %d, want 404", st)
	}
}

func TestDevStripsClientMCPHeaders(t *testing.T) {
	d := startDev(t)
	echo := startEchoAgent(t)
	runCLI(t, d.AdminURL, d.AdminToken, "agents", "create", "--id", "echo", "--owner", d.User, "--upstream", echo.srv.URL+"/mcp")
	var key CreatedKey
	out := runCLI(t, d.AdminURL, d.AdminToken, "keys", "create", "--kind", "agent", "--agent", "echo", "--name", "dev", "--json")
	if err := json.Unmarshal(out, &key); err != nil || key.Key == "" {
		t.Fatalf("keys create: %v %q", err, out)
	}
	st, seen := reach(t, d.URL, "echo", key.Key)
	if st != http.StatusOK {
		t.Fatalf("dev proxy: %d", st)
	}
	checkAgentSaw(t, seen, d.User, "echo", "agent_key")
}
