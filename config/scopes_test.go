package config

import (
	"slices"
	"strings"
	"testing"
)

func TestScopesObjectAndPlainForms(t *testing.T) {
	body := `scopes:
  - mcp
  - {name: "mcp:admin", description: "Manage the agent", implies: [mcp]}
signing_keys: [{id: k, secret: '0123456789abcdef0123456789abcdef'}]
`
	c, err := Load(write(t, body), false)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.ScopeNames(); !slices.Equal(got, []string{"mcp", "mcp:admin"}) {
		t.Fatalf("names %v", got)
	}
	if d := c.ScopeDescription("mcp:admin"); d != "Manage the agent" {
		t.Errorf("description of mcp:admin: %q", d)
	}
	if d := c.ScopeDescription("mcp"); d != DefaultMCPScopeDescription {
		t.Errorf("plain mcp gets no default description: %q", d)
	}
	if d := c.ScopeDescription("nope"); d != "" {
		t.Errorf("undeclared scope described: %q", d)
	}
	if !slices.Equal(c.Scopes[1].Implies, []string{"mcp"}) {
		t.Errorf("implies not stored: %+v", c.Scopes[1])
	}
	// The old plain list still loads.
	c, err = Load(write(t, "scopes: [mcp, tools]\nsigning_keys: [{id: k, secret: '0123456789abcdef0123456789abcdef'}]\n"), false)
	if err != nil || !slices.Equal(c.ScopeNames(), []string{"mcp", "tools"}) || c.ScopeDescription("tools") != "" {
		t.Fatalf("plain list: %v %+v", err, c)
	}
}

func TestScopesFromEnv(t *testing.T) {
	for env, want := range map[string][]string{
		"mcp, tools:read":                      {"mcp", "tools:read"},
		`[{"name":"a","description":"A"},"b"]`: {"a", "b"},
	} {
		c := Default()
		if err := ApplyEnv(c, func(k string) (string, bool) { return env, k == "MCPGW_SCOPES" }); err != nil {
			t.Fatalf("%s: %v", env, err)
		}
		if !slices.Equal(c.ScopeNames(), want) {
			t.Errorf("%s: names %v, want %v", env, c.ScopeNames(), want)
		}
	}
	err := ApplyEnv(Default(), func(k string) (string, bool) { return `[{"name":1}]`, k == "MCPGW_SCOPES" })
	if err == nil || !strings.Contains(err.Error(), "MCPGW_SCOPES") {
		t.Fatalf("bad JSON scopes: %v", err)
	}
}

func TestScopesValidation(t *testing.T) {
	cases := map[string]string{
		"scopes: []":                        "scopes: at least one",
		"scopes: ['']":                      "scopes[0]",
		"scopes: [a, a]":                    `scopes[1]: "a" declared twice`,
		"scopes: ['é']":                     "scopes[0]",
		"scopes: [{name: a, implies: [b]}]": `scopes[0].implies[0]: "b" is not a declared scope`,
		"scopes: [{name: a, implies: [a]}]": `scopes[0].implies[0]: "a" implies itself`,
		"scopes: [{name: a, implies: [b]}, {name: b, implies: [c]}, {name: c, implies: [a]}]": "cycle: a → b → c → a",
		"scopes: [{name: a, description: \"x\\ny\"}]":                                         "scopes[0].description",
		"scopes: [{name: a, descripton: typo}]":                                               "descripton",
		"scopes: [{name: a, description: " + strings.Repeat("d", 201) + "}]":                  "scopes[0].description",
	}
	for y, want := range cases {
		_, err := Load(write(t, y+"\nsigning_keys: [{id: k, secret: '0123456789abcdef0123456789abcdef'}]\n"), false)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v, want it to contain %q", y, err, want)
		}
	}
	ok := "scopes: [{name: a, implies: [b, c]}, {name: b, implies: [c]}, c]\nsigning_keys: [{id: k, secret: '0123456789abcdef0123456789abcdef'}]\n"
	if _, err := Load(write(t, ok), false); err != nil {
		t.Errorf("a diamond is no cycle: %v", err)
	}
}

// TestAgentPolicyValidated: an agent's rules name declared scopes only,
// valid globs, known credential kinds, and its limits are sane; a valid
// policy loads, with the scope hierarchy as declared.
func TestAgentPolicyValidated(t *testing.T) {
	const keys = "\nsigning_keys: [{id: k, secret: '0123456789abcdef0123456789abcdef'}]"
	for yaml, field := range map[string]string{
		"agents: [{id: a, owner: x, rules: [{method: tools/call, scopes: [nosuch]}]}]":            "agents[0].rules[0].scopes[0]",
		"agents: [{id: a, owner: x, rules: [{method: 'tools/[', scopes: [mcp]}]}]":                "rules[0].method",
		"agents: [{id: a, owner: x, rules: [{method: tools/call, target: 'a[', scopes: [mcp]}]}]": "rules[0].target",
		"agents: [{id: a, owner: x, rules: [{method: tools/call, credentials: [cookie]}]}]":       "rules[0].credentials[0]",
		"agents: [{id: a, owner: x, rules: [{method: tools/call}]}]":                              "rules[0]",
		"agents: [{id: a, owner: x, rules: [{scopes: [mcp]}]}]":                                   "rules[0].method",
		"agents: [{id: a, owner: x, limits: {per_user: -1}}]":                                     "limits",
		"agents: [{id: a, owner: x, rules: [{method: tools/call, users: ['@admins']}]}]":          "rules[0].users[0]",
	} {
		_, err := Load(write(t, yaml+keys), false)
		if err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("%q: err = %v, want it to name %s", yaml, err, field)
		}
	}
	c, err := Load(write(t, `scopes: [mcp, {name: "mcp:admin", description: Administer, implies: [mcp]}]
agents: [{id: a, owner: x, limits: {per_user: 60, per_tool: 10}, rules: [{name: admin, method: tools/call, target: "admin_*", scopes: ["mcp:admin"], users: ["@owner"], credentials: [oauth, user_key]}]}]`+keys), false)
	if err != nil {
		t.Fatal(err)
	}
	if r := c.Agents[0].Rules[0]; r.Target != "admin_*" || r.Scopes[0] != "mcp:admin" || c.Agents[0].Limits.PerTool != 10 {
		t.Fatalf("agent loaded as %+v", c.Agents[0])
	}
	if imp := c.ScopeImplies(); len(imp) != 1 || imp["mcp:admin"][0] != "mcp" {
		t.Fatalf("ScopeImplies %v", imp)
	}
}
