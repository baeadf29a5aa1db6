//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/mcpgateway/mcp-gateway/internal/demoagent"
)

// TestTSSDKv2StatelessAgent: the TypeScript SDK v2 client
// (@modelcontextprotocol/client, locked in e2e/package-lock.json) connects
// to the stateless demo agent through dev mode with an agent key, lists its
// tools and calls them; no session id comes back.
func TestTSSDKv2StatelessAgent(t *testing.T) {
	node := requireTool(t, "node")
	if _, err := os.Stat(filepath.Join("node_modules", "@modelcontextprotocol", "client", "package.json")); err != nil {
		missing(t, "e2e/node_modules/@modelcontextprotocol/client is missing: run `npm ci` in e2e/")
	}
	d := startDev(t)
	key := runCLI(t, d.AdminURL, d.AdminToken, "keys", "create", "--kind", "agent", "--agent", "demo", "--name", "ts-v2", "--json")
	var k CreatedKey
	if err := json.Unmarshal(key, &k); err != nil || k.Key == "" {
		t.Fatalf("keys create: %v %q", err, key)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "ts/v2-client.mjs", d.MCPURL)
	cmd.Env = childEnv(map[string]string{"MCPGW_E2E_KEY": k.Key})
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var res struct {
		OK        bool              `json:"ok"`
		Error     string            `json:"error"`
		SessionID string            `json:"session_id"`
		Tools     []string          `json:"tools"`
		WhoAmI    demoagent.WhoAmI  `json:"whoami"`
		Echo      map[string]string `json:"echo"`
	}
	if jerr := json.Unmarshal(bytes.TrimSpace(stdout.Bytes()), &res); jerr != nil || err != nil || !res.OK {
		t.Fatalf("v2 client: %v %v %s\nstdout: %s\nstderr: %s", err, jerr, res.Error, stdout.String(), stderr.String())
	}
	if !slices.Equal(res.Tools, []string{"admin_echo", "echo", "whoami"}) {
		t.Fatalf("tools %v", res.Tools)
	}
	assertIdentity(t, res.WhoAmI, "demo", "demo", "agent_key")
	if res.Echo["text"] != "v2 says hi" {
		t.Fatalf("echo %v", res.Echo)
	}
	if res.SessionID != "" {
		t.Fatalf("the stateless demo agent handed out session %q", res.SessionID)
	}
}
