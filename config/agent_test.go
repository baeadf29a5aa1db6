package config

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"
)

// The config file's agents obey the admin API's rules (StaticAgent.Validate):
// each of these was accepted by the config file before the two were one.
func TestStaticAgentsGetTheAdminAPIsValidation(t *testing.T) {
	base := "public_url: https://gw.example.com\nsigning_keys: [{id: k, secret: '0123456789abcdef0123456789abcdef'}]\n"
	if _, err := Load(write(t, base+"agents: [{id: a, owner: x, users: [bob], scopes: [mcp], upstream: 'http://127.0.0.1:9/mcp'}]"), false); err != nil {
		t.Fatalf("a valid agent: %v", err)
	}
	cases := map[string]string{
		"agents: [{id: a, owner: \"x\\ay\"}]":                                                         "agents[0].owner: contains a control character",
		"agents: [{id: a, owner: '" + strings.Repeat("o", 257) + "'}]":                                "agents[0].owner: longer than 256 bytes",
		"agents: [{id: a, owner: x, name: '" + strings.Repeat("n", 257) + "'}]":                       "agents[0].name",
		"agents: [{id: a, owner: x, users: ['']}]":                                                    "agents[0].users[0]: required",
		"agents: [{id: a, owner: x, scopes: [mcp, mcp]}]":                                             "agents[0].scopes[1]",
		"agents: [{id: a, owner: x, scopes: ['a b']}]":                                                "agents[0].scopes[0]",
		"agents: [{id: a, owner: x, upstream: 'http://u.example/mcp#f'}]":                             "agents[0].upstream",
		"agents: [{id: a, owner: x, upstream: 'http://u.example/" + strings.Repeat("p", 2048) + "'}]": "agents[0].upstream",
	}
	for yaml, want := range cases {
		_, err := Load(write(t, base+yaml), false)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%.80q: err = %v, want it to contain %q", yaml, err, want)
		}
	}
}

// agentKeys are an agent declaration's keys as the README documents them,
// in the config file and in the admin API's create body alike.
var agentKeys = []string{"id", "name", "owner", "users", "upstream", "scopes", "rules", "limits", "upstream_auth"}

// A static agent's YAML keys are the documented ones: each is read into
// its field, and a declaration writes back exactly these keys.
func TestAgentDeclarationKeys(t *testing.T) {
	base := "public_url: https://gw.example.com\nsigning_keys: [{id: k, secret: '0123456789abcdef0123456789abcdef'}]\n" +
		"scopes: [mcp, 'mcp:admin']\nupstream_secrets: {dir: /run/secrets/upstream}\n"
	cfg, err := Load(write(t, base+`agents:
  - id: full
    name: Full
    owner: alice
    users: [bob]
    upstream: https://full.internal/mcp
    scopes: [mcp]
    rules: [{name: admin, method: tools/call, target: "admin_*", scopes: ["mcp:admin"]}]
    limits: {per_user: 60, per_tool: 10}
    upstream_auth: {header: Authorization, prefix: "Bearer ", secret_file: full.token}
`), false)
	if err != nil {
		t.Fatal(err)
	}
	a := cfg.Agents[0]
	if a.ID != "full" || a.Name != "Full" || a.Owner != "alice" || !slices.Equal(a.Users, []string{"bob"}) ||
		a.Upstream != "https://full.internal/mcp" || !slices.Equal(a.Scopes, []string{"mcp"}) ||
		len(a.Rules) != 1 || a.Rules[0].Target != "admin_*" || a.Limits == nil || a.Limits.PerTool != 10 ||
		a.UpstreamAuth == nil || a.UpstreamAuth.Header != "authorization" || a.UpstreamAuth.SecretFile != "full.token" {
		t.Fatalf("agent read as %+v", a)
	}
	b, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	got := slices.Sorted(maps.Keys(m))
	if want := slices.Sorted(slices.Values(agentKeys)); !slices.Equal(got, want) {
		t.Fatalf("a declaration's keys are %v, want %v", got, want)
	}
	// What only a stored agent has is not part of a declaration.
	for _, k := range []string{"static: true", "created_at: 2026-01-02T03:04:05Z"} {
		if _, err := Load(write(t, base+"agents: [{id: a, owner: x, "+k+"}]"), false); err == nil || !strings.Contains(err.Error(), strings.Split(k, ":")[0]) {
			t.Errorf("%s: err = %v, want it refused by name", k, err)
		}
	}
}
