//go:build e2e

package e2e

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestUpstreamCredentialThroughNginx: behind real nginx and the real
// gateway, an agent whose upstream_auth is Authorization from a secret file
// receives "Bearer <secret>" in place of the client's token, sees a rotated
// file without a restart, and an agent without upstream_auth receives no
// Authorization at all although the client sent one (issue 14 item 4).
func TestUpstreamCredentialThroughNginx(t *testing.T) {
	secrets := t.TempDir()
	secretFile := filepath.Join(secrets, "cred.token")
	writeSecret := func(v string) {
		t.Helper()
		if err := os.WriteFile(secretFile, []byte(v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	first, second := "up-"+randomString(18), "up-"+randomString(18)
	writeSecret(first)

	// The agent answers with the Authorization values it received.
	agent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"jsonrpc": "2.0", "id": 1, "result": map[string]any{"authorization": r.Header.Values("Authorization")}})
	}))
	t.Cleanup(agent.Close)

	gw := startServe(t, &ServeOptions{Env: map[string]string{
		"MCPGW_UPSTREAM_SECRETS_DIR": secrets, "MCPGW_UPSTREAM_SECRETS_REFRESH": "1s",
	}})
	base := startNginx(t, gw)
	gw.CLI(t, "agents", "create", "--id", "cred", "--owner", "alice", "--upstream", agent.URL+"/mcp",
		"--upstream-auth-header", "authorization", "--upstream-auth-prefix", "Bearer ", "--upstream-secret-file", "cred.token")
	gw.CLI(t, "agents", "create", "--id", "plain", "--owner", "alice", "--upstream", agent.URL+"/mcp")
	keys := map[string]string{"cred": gw.CreateKey(t, "agent", "cred", "ci").Key, "plain": gw.CreateKey(t, "agent", "plain", "ci").Key}
	gw.reloadNginx(t)

	client := &http.Client{Timeout: 10 * time.Second}
	// seen posts to agent id with its key (and, for the listed location,
	// a client x-mcp-* header) and returns the status and what it received.
	seen := func(id string, spoof bool) (int, []string) {
		t.Helper()
		req, err := http.NewRequest("POST", base+"/"+id+"/mcp", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"ping"}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+keys[id])
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		if spoof {
			req.Header.Set("X-Mcp-Role", "mallory")
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body struct {
			Result struct{ Authorization []string }
		}
		if resp.StatusCode == 200 {
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				t.Fatal(err)
			}
		}
		return resp.StatusCode, body.Result.Authorization
	}
	// The reload is a signal: new workers route the new agents a moment later.
	deadline := time.Now().Add(15 * time.Second)
	for {
		if st, _ := seen("plain", false); st == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("nginx never routed the new agents")
		}
		time.Sleep(100 * time.Millisecond)
	}

	for _, spoof := range []bool{false, true} {
		if st, got := seen("cred", spoof); st != 200 || !slices.Equal(got, []string{"Bearer " + first}) {
			t.Errorf("cred (client x-mcp-* %v): status %d, agent got Authorization %d value(s), want the secret file's", spoof, st, len(got))
		}
		if st, got := seen("plain", spoof); st != 200 || len(got) != 0 {
			t.Errorf("plain (client x-mcp-* %v): status %d, agent got Authorization %q, want none", spoof, st, got)
		}
	}

	// Rotation: the new file's secret within the refresh, no restart.
	writeSecret(second)
	deadline = time.Now().Add(15 * time.Second)
	for {
		st, got := seen("cred", false)
		if st == 200 && slices.Equal(got, []string{"Bearer " + second}) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the rotated secret never reached the agent (status %d)", st)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
