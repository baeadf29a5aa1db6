//go:build e2e

package e2e

// The identity assertion end to end: an MCP SDK client through real nginx
// and the gateway reaches the demo agent, which verifies x-mcp-identity
// (package agentauth) against the gateway's published keys; the same
// request straight to the agent, with forged x-mcp-* headers, is refused;
// the README's jose example verifies the gateway's assertion under node.

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/mcpgateway/mcp-gateway/agentauth"
)

var forgedIdentity = http.Header{
	"X-Mcp-User":       {"mallory"},
	"X-Mcp-Agent":      {"demo"},
	"X-Mcp-Credential": {"oauth"},
	"X-Mcp-Scope":      {"mcp"},
	"X-Mcp-Identity":   {"eyJhbGciOiJub25lIiwidHlwIjoibWNwLWlkZW50aXR5K2p3dCJ9.eyJzdWIiOiJtYWxsb3J5In0."},
}

func TestIdentityAssertionThroughNginx(t *testing.T) {
	gw := startServe(t, nil)
	base := startNginx(t, gw)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	bak := gw.CreateKey(t, "agent", "demo", "ci")

	// Through the gateway: the agent verified the assertion (it refuses
	// requests without one) and shows it in whoami.
	cs := connectMCP(t, ctx, gw.MCPURL("demo"), bearerClient(bak.Key, forgedIdentity), nil)
	w := whoami(t, ctx, cs)
	assertIdentity(t, w, "alice", "demo", "agent_key")
	raw := w.MCPHeaders["x-mcp-identity"]
	if raw == "" || raw == forgedIdentity.Get("X-Mcp-Identity") {
		t.Fatalf("x-mcp-identity at the agent: %q", raw)
	}
	v, err := agentauth.New(agentauth.Options{Issuer: base, Audiences: []string{gw.MCPURL("demo")}})
	if err != nil {
		t.Fatal(err)
	}
	id, err := v.Verify(ctx, raw) // keys fetched through nginx at the public URL
	if err != nil {
		t.Fatalf("the agent's assertion does not verify: %v", err)
	}
	if id.Subject != "alice" || id.ClientID != bak.ID || id.Credential != "agent_key" || id.Scope != w.Scope {
		t.Fatalf("assertion states %+v, headers %+v", id, w)
	}

	t.Run("JWKS published with cache headers", func(t *testing.T) {
		resp, err := quickClient.Get(base + "/.well-known/jwks.json")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var set agentauth.JWKS
		if err := json.NewDecoder(resp.Body).Decode(&set); err != nil || resp.StatusCode != 200 || len(set.Keys) == 0 {
			t.Fatalf("%d %v %+v", resp.StatusCode, err, set)
		}
		if !strings.HasPrefix(resp.Header.Get("Cache-Control"), "public, max-age=") {
			t.Fatalf("Cache-Control %q", resp.Header.Get("Cache-Control"))
		}
	})

	t.Run("straight to the agent with forged headers: refused", func(t *testing.T) {
		direct := "http://" + gw.AgentAddr + "/mcp"
		if status, _, body := rawInitialize(t, direct, forgedIdentity); status != http.StatusForbidden {
			t.Fatalf("status %d, want 403: %s", status, body)
		}
		if _, err := dialMCP(ctx, direct, bearerClient("", forgedIdentity), nil); err == nil {
			t.Fatal("an SDK client reached the agent around the gateway")
		}
	})

	t.Run("an assertion for another agent is refused", func(t *testing.T) {
		vOther, _ := agentauth.New(agentauth.Options{Issuer: base, Audiences: []string{gw.MCPURL("other")}})
		if _, err := vOther.Verify(ctx, raw); err == nil {
			t.Fatal("demo's assertion verified for other")
		}
	})

	t.Run("README jose example under node", func(t *testing.T) {
		node := requireNodeSDK(t)
		if _, err := os.Stat("node_modules/jose/package.json"); err != nil {
			missing(t, "e2e/node_modules/jose is missing: run `npm ci` in e2e/")
		}
		checkReadmeExample(t)
		verify := func(assertion, agent string) (string, error) {
			ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, node, "ts/verify-identity.mjs", "--gateway", base, "--agent", agent)
			cmd.Env = append(os.Environ(), "MCP_IDENTITY="+assertion)
			out, err := cmd.CombinedOutput()
			return string(out), err
		}
		out, err := verify(raw, "demo")
		if err != nil {
			t.Fatalf("jose refused the gateway's assertion: %v\n%s", err, out)
		}
		var claims map[string]any
		if err := json.Unmarshal([]byte(out), &claims); err != nil || claims["sub"] != "alice" || claims["credential"] != "agent_key" {
			t.Fatalf("claims %s (%v)", out, err)
		}
		parts := strings.Split(raw, ".")
		tampered := parts[0] + "." + parts[1] + "." + strings.Repeat("A", len(parts[2]))
		for name, c := range map[string][2]string{"tampered": {tampered, "demo"}, "other agent": {raw, "other"}, "forged": {forgedIdentity.Get("X-Mcp-Identity"), "demo"}} {
			if out, err := verify(c[0], c[1]); err == nil {
				t.Errorf("%s: jose accepted it: %s", name, out)
			}
		}
	})
}

// checkReadmeExample: the README shows the tested code, word for word.
func checkReadmeExample(t *testing.T) {
	t.Helper()
	src, err := os.ReadFile("ts/verify-identity.mjs")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok1 := strings.Cut(string(src), "// --- README example start\n")
	example, _, ok2 := strings.Cut(rest, "// --- README example end\n")
	if !ok1 || !ok2 || !strings.Contains(string(readme), "```js\n"+example+"```\n") {
		t.Fatalf("README.md does not show ts/verify-identity.mjs's example as is:\n%s", example)
	}
}

// TestIdentityAssertionDevMode: in dev mode too the demo agent requires the
// assertion, and the built-in proxy delivers it.
func TestIdentityAssertionDevMode(t *testing.T) {
	d := startDev(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var k CreatedKey
	if err := json.Unmarshal(runCLI(t, d.AdminURL, d.AdminToken, "keys", "create", "--kind", "agent", "--agent", "demo", "--json"), &k); err != nil {
		t.Fatal(err)
	}
	cs := connectMCP(t, ctx, d.MCPURL, bearerClient(k.Key, forgedIdentity), nil)
	w := whoami(t, ctx, cs)
	assertIdentity(t, w, "demo", "demo", "agent_key")
	v, _ := agentauth.New(agentauth.Options{Issuer: d.URL, Audiences: []string{d.MCPURL}})
	if id, err := v.Verify(ctx, w.MCPHeaders["x-mcp-identity"]); err != nil || id.Subject != "demo" {
		t.Fatalf("dev assertion: %+v %v", id, err)
	}
}
