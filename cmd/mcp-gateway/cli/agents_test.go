package cli

import (
	"context"
	"strings"
	"testing"
)

// TestCLIAgentPolicy: agents create takes the tool policy and limits and
// prints them; keys create --scope restricts a key.
func TestCLIAgentPolicy(t *testing.T) {
	e := newEnv(t, nil)
	out, err := run(t, e, agentsCLI, "create", "--id", "ruled", "--owner", "alice", "--limit-per-user", "60",
		"--rules", `[{"name":"admin","method":"tools/call","target":"admin_*","scopes":["mcp:admin"],"credentials":["oauth"]}]`)
	if err != nil {
		t.Fatalf("agents create: %v\n%s", err, out)
	}
	if !strings.Contains(out, "rule 1:") || !strings.Contains(out, "tools/call admin_* → scopes mcp:admin credentials oauth") || !strings.Contains(out, "60/min per user") {
		t.Fatalf("agents create output:\n%s", out)
	}
	a, err := e.mem.GetAgent(context.Background(), "ruled")
	if err != nil || len(a.Rules) != 1 || a.Limits.PerUser != 60 {
		t.Fatalf("stored %+v %v", a, err)
	}
	if out, err := run(t, e, agentsCLI, "create", "--id", "bad", "--owner", "alice", "--rules", `{"method":1}`); err == nil {
		t.Fatalf("malformed --rules accepted:\n%s", out)
	}
	out, err = run(t, e, keysCLI, "create", "--kind", "user", "--user", "alice", "--scope", "mcp,mcp:admin", "--json")
	if err != nil || !strings.Contains(out, `"mcp:admin"`) {
		t.Fatalf("keys create --scope: %v\n%s", err, out)
	}
}

func TestCLIAgentUpstreamAuth(t *testing.T) {
	e := newEnv(t, nil)
	out, err := run(t, e, agentsCLI, "create", "--id", "weather", "--owner", "alice",
		"--upstream-auth-header", "Authorization", "--upstream-auth-prefix", "Bearer ", "--upstream-secret-file", "weather.token")
	if err != nil {
		t.Fatalf("agents create: %v\n%s", err, out)
	}
	if !strings.Contains(out, "upstream auth:  authorization: Bearer <secret from file weather.token>") {
		t.Fatalf("output:\n%s", out)
	}
	a, err := e.mem.GetAgent(t.Context(), "weather")
	if err != nil || a.UpstreamAuth == nil || a.UpstreamAuth.SecretFile != "weather.token" {
		t.Fatalf("stored %+v %v", a, err)
	}
	if _, err := run(t, e, agentsCLI, "create", "--id", "bad", "--owner", "alice", "--upstream-auth-header", "x-k", "--upstream-secret-env", "MCPGW_ADMIN_TOKEN"); err == nil {
		t.Fatal("a reference to the gateway's own secret was accepted")
	}
}
