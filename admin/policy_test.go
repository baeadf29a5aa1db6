package admin

import (
	"context"
	"strings"
	"testing"
)

// TestAgentPolicyAPI: the admin API stores an agent's tool policy and
// limits, and refuses a malformed one naming the field.
func TestAgentPolicyAPI(t *testing.T) {
	e := newEnv(t, nil)
	for _, bad := range []string{
		`{"id":"p1","owner":"alice","rules":[{"method":"tools/[","scopes":["mcp"]}]}`,
		`{"id":"p1","owner":"alice","rules":[{"method":"tools/call","credentials":["cookie"]}]}`,
		`{"id":"p1","owner":"alice","rules":[{"method":"tools/call"}]}`,
		`{"id":"p1","owner":"alice","limits":{"per_tool":-5}}`,
	} {
		if b := e.api(t, "POST", "/admin/v1/agents", bad, 400); !strings.Contains(string(b), "rules") && !strings.Contains(string(b), "limits") {
			t.Errorf("%s: answer %s does not name the field", bad, b)
		}
	}
	e.api(t, "POST", "/admin/v1/agents", `{"id":"p1","owner":"alice","scopes":["mcp"],"limits":{"per_user":60},"rules":[{"name":"admin","method":"tools/call","target":"admin_*","scopes":["mcp:admin"]}]}`, 201)
	a, err := e.mem.GetAgent(context.Background(), "p1")
	if err != nil || len(a.Rules) != 1 || a.Rules[0].Target != "admin_*" || a.Limits == nil || a.Limits.PerUser != 60 {
		t.Fatalf("stored %+v, %v", a, err)
	}
	// An agent key may hold the agent's rule scopes, not others.
	e.api(t, "POST", "/admin/v1/keys", `{"kind":"agent","agent":"p1","scopes":["mcp","mcp:admin"]}`, 201)
	e.api(t, "POST", "/admin/v1/keys", `{"kind":"agent","agent":"p1","scopes":["other"]}`, 400)
}
