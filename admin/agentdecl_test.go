package admin

import (
	"context"
	"maps"
	"slices"
	"testing"
)

// The create body takes the documented keys of an agent declaration (those
// of the config file's agents), each into its field; what only a stored
// agent has (static, created_at) is refused by name, and the answer adds
// exactly those to the declared keys.
func TestAgentCreateKeys(t *testing.T) {
	e := newEnv(t, nil)
	body := `{"id":"full","name":"Full","owner":"alice","users":["bob"],"upstream":"https://full.internal/mcp","scopes":["mcp","mcp:admin"],` +
		`"rules":[{"name":"admin","method":"tools/call","target":"admin_*","scopes":["mcp:admin"]}],"limits":{"per_user":60,"per_tool":10},` +
		`"upstream_auth":{"header":"Authorization","prefix":"Bearer ","secret_env":"MCPGW_UPSTREAM_SECRET_FULL"}}`
	ans := decode[map[string]any](t, e.api(t, "POST", "/admin/v1/agents", body, 201))
	want := []string{"created_at", "id", "limits", "name", "owner", "rules", "scopes", "upstream", "upstream_auth", "users"}
	if got := slices.Sorted(maps.Keys(ans)); !slices.Equal(got, want) {
		t.Fatalf("answer keys %v, want %v", got, want)
	}
	a, err := e.mem.GetAgent(context.Background(), "full")
	if err != nil {
		t.Fatal(err)
	}
	if a.Name != "Full" || a.Owner != "alice" || !slices.Equal(a.Users, []string{"bob"}) || a.Upstream != "https://full.internal/mcp" ||
		!slices.Equal(a.Scopes, []string{"mcp", "mcp:admin"}) || len(a.Rules) != 1 || a.Rules[0].Target != "admin_*" ||
		a.Limits == nil || a.Limits.PerUser != 60 || a.UpstreamAuth == nil || a.UpstreamAuth.Header != "authorization" ||
		a.UpstreamAuth.SecretEnv != "MCPGW_UPSTREAM_SECRET_FULL" || a.Static || !a.Created.Equal(fixedNow) {
		t.Fatalf("stored %+v", a)
	}
	for name, value := range map[string]string{"static": "true", "created_at": `"2026-01-02T03:04:05Z"`} {
		errorMessage(t, e.api(t, "POST", "/admin/v1/agents", `{"id":"x","owner":"b","`+name+`":`+value+`}`, 400), `unknown field "`+name+`"`)
	}
}

// A rule's scopes are RFC 6749 scope-tokens and its groups are group names
// as login providers' groups are (store.ValidScopeToken, store.ValidGroup):
// the admin API refuses what no token could ever carry, as the config file
// does, instead of storing a rule that can never be satisfied.
func TestAgentRuleEntriesAreWellFormed(t *testing.T) {
	e := newEnv(t, nil)
	for body, field := range map[string]string{
		`"scopes":["mcp:\u00e9"]`:     "rules[0].scopes[0]", // not ASCII
		`"scopes":["a\u0001b"]`:       "rules[0].scopes[0]", // a control character
		`"scopes":["mcp","a\u007fb"]`: "rules[0].scopes[1]",
		`"groups":["e\u200bng"]`:      "rules[0].groups[0]", // invisible
		`"groups":["ops\u0007"]`:      "rules[0].groups[0]",
	} {
		b := e.api(t, "POST", "/admin/v1/agents", `{"id":"r1","owner":"alice","rules":[{"method":"tools/call",`+body+`}]}`, 400)
		errorMessage(t, b, field)
	}
	e.api(t, "POST", "/admin/v1/agents", `{"id":"r1","owner":"alice","rules":[{"method":"tools/call","scopes":["mcp:admin"],"groups":["eng-team"]}]}`, 201)
}
