package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mcpgateway/mcp-gateway/envoy"
	"github.com/mcpgateway/mcp-gateway/store"
	"github.com/mcpgateway/mcp-gateway/store/storeopen"
	"github.com/mcpgateway/mcp-gateway/token"
)

// registryConfig writes a serve config with three static agents on storeURL.
func registryConfig(t *testing.T, storeURL, prefix string) string {
	t.Helper()
	cfg := map[string]any{
		"public_url":   "https://mcp.example.com",
		"store":        map[string]string{"url": storeURL, "prefix": prefix},
		"signing_keys": []map[string]string{{"id": "k1", "secret": token.Random(32)}},
		"admin_token":  token.Random(32),
		"agents": []map[string]any{
			{"id": "demo", "owner": "alice", "upstream": "http://demo-agent:3000/mcp"},
			{"id": "nowhere", "owner": "alice"},
			// An address Envoy's builder refuses: no proxy may route it.
			{"id": "metadata", "owner": "alice", "upstream": "http://169.254.169.254/mcp"},
		},
	}
	b, _ := json.Marshal(cfg)
	p := filepath.Join(t.TempDir(), "gateway.yaml")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// The generators read the registry as serve does: the config's agents and
// the store's, the config winning on a shared id; on memory and on Redis.
func TestRegistryConfigCommands(t *testing.T) {
	backends := map[string]string{"memory": "memory"}
	if u := os.Getenv("MCPGW_TEST_REDIS_URL"); u != "" {
		backends["redis"] = u
	} else if os.Getenv("CI") == "true" {
		t.Fatal("MCPGW_TEST_REDIS_URL is not set")
	}
	for name, url := range backends {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			prefix := "mcpgw-test-registry-" + strings.ToLower(token.Random(6)) + ":"
			path := registryConfig(t, url, prefix)
			if url != "memory" {
				st, err := storeopen.Open(ctx, url, prefix)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() {
					for _, id := range []string{"reports", "demo"} {
						_ = st.DeleteAgent(ctx, id)
					}
					st.Close()
				})
				for _, a := range []store.Agent{
					{AgentSpec: store.AgentSpec{ID: "reports", Owner: "bob", Upstream: "https://reports.example/mcp"}},
					{AgentSpec: store.AgentSpec{ID: "demo", Owner: "mallory", Upstream: "http://evil.example/mcp"}}, // shadowed by the config's demo
				} {
					if err := st.PutAgent(ctx, &a); err != nil {
						t.Fatal(err)
					}
				}
			}
			var out bytes.Buffer
			if err := runNginxConfig(ctx, []string{"--config", path}, &out); err != nil {
				t.Fatal(err)
			}
			nginx := out.String()
			if !strings.Contains(nginx, "    demo http://mcp_agent_") || !strings.Contains(nginx, "server demo-agent:3000;") ||
				strings.Contains(nginx, "nowhere") || strings.Contains(nginx, "evil.example") || strings.Contains(nginx, "169.254") {
				t.Errorf("nginx-config:\n%s", nginx)
			}
			if got := strings.Contains(nginx, "    reports https://mcp_agent_"); got != (url != "memory") {
				t.Errorf("store agent routed = %v:\n%s", got, nginx)
			}
			out.Reset()
			if err := runIstioConfig(ctx, []string{"--config", path, "--host", "a.example,b.example"}, &out); err != nil {
				t.Fatal(err)
			}
			istio := out.String()
			for _, want := range []string{"exact: /demo/mcp", "host: demo-agent", "- a.example\n  - b.example"} {
				if !strings.Contains(istio, want) {
					t.Errorf("istio-config lacks %q:\n%s", want, istio)
				}
			}
			if got := strings.Contains(istio, "exact: /reports/mcp"); got != (url != "memory") || strings.Contains(istio, "evil.example") || strings.Contains(istio, "169.254") {
				t.Errorf("istio-config:\n%s", istio)
			}

			// --out replaces the file whole.
			file := filepath.Join(t.TempDir(), "agents.conf")
			for range 2 {
				if err := runNginxConfig(ctx, []string{"--config", path, "--out", file}, &bytes.Buffer{}); err != nil {
					t.Fatal(err)
				}
			}
			if b, err := os.ReadFile(file); err != nil || string(b) != nginx {
				t.Errorf("--out wrote %q, %v", b, err)
			}
			if left, _ := filepath.Glob(filepath.Join(filepath.Dir(file), ".*")); len(left) > 0 {
				t.Errorf("temporary files left: %v", left)
			}
		})
	}
	if err := runNginxConfig(context.Background(), []string{"--config", "/nonexistent.yaml"}, &bytes.Buffer{}); err == nil {
		t.Error("a missing config accepted")
	}
}

// nginx-config warns about an agent whose upstream_auth header nginx cannot
// pass on (anything but Authorization), naming the agent, never a secret.
func TestNginxConfigWarnsUnforwardedUpstreamHeader(t *testing.T) {
	routes, errs := envoy.AgentRoutes([]store.Agent{
		{AgentSpec: store.AgentSpec{ID: "plain", Upstream: "http://plain:3000/mcp"}},
		{AgentSpec: store.AgentSpec{ID: "bearer", Upstream: "http://bearer:3000/mcp", UpstreamAuth: &store.UpstreamAuth{Header: "Authorization", Prefix: "Bearer ", SecretFile: "b.token"}}},
		{AgentSpec: store.AgentSpec{ID: "keyed", Upstream: "http://keyed:3000/mcp", UpstreamAuth: &store.UpstreamAuth{Header: "X-Api-Key", SecretEnv: "MCPGW_UPSTREAM_SECRET_K"}}},
	})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	var buf bytes.Buffer
	warnUnforwardedUpstreamHeaders(slog.New(slog.NewJSONHandler(&buf, nil)), routes)
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], `"agent":"keyed"`) || !strings.Contains(lines[0], `"header":"x-api-key"`) || !strings.Contains(lines[0], `"level":"WARN"`) {
		t.Fatalf("warnings:\n%s", buf.String())
	}
}
