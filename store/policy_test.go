package store_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/mcpgateway/mcp-gateway/config"
	"github.com/mcpgateway/mcp-gateway/store"
)

// The Check (static agents as records) and the authorization server (as
// declared in the config file) get the same gateway base scopes from the
// same agents: the gateway's scopes but those only a rule requires.
func TestGatewayBaseScopes(t *testing.T) {
	gateway := []string{"mcp", "mcp:admin", "mcp:read"}
	specs := []store.AgentSpec{
		{ID: "demo", Rules: []store.Rule{{Method: "tools/call", Target: "admin_*", Scopes: []string{"mcp:admin"}}}},
		{ID: "docs", Scopes: []string{"mcp:read"}}, // its own scopes leave the gateway's alone
	}
	records := make([]store.Agent, len(specs))
	declared := make([]config.StaticAgent, len(specs))
	for i, s := range specs {
		records[i] = store.Agent{AgentSpec: s, Static: true}
		declared[i] = config.StaticAgent{AgentSpec: s}
	}
	want := []string{"mcp", "mcp:read"}
	if got := store.GatewayBaseScopes(gateway, records); !slices.Equal(got, want) {
		t.Errorf("from records: %v, want %v", got, want)
	}
	if got := store.GatewayBaseScopes(gateway, declared); !slices.Equal(got, want) {
		t.Errorf("from the config file: %v, want %v", got, want)
	}
	if got := store.GatewayBaseScopes(gateway, []store.Agent(nil)); !slices.Equal(got, gateway) {
		t.Errorf("no static agents: %v, want %v", got, gateway)
	}
	// A rule can narrow, never empty, the base: then the gateway's scopes stay.
	only := []store.Agent{{AgentSpec: store.AgentSpec{Rules: []store.Rule{{Method: "*", Scopes: gateway}}}}}
	if got := store.GatewayBaseScopes(gateway, only); !slices.Equal(got, gateway) {
		t.Errorf("rules requiring every scope: %v, want %v", got, gateway)
	}
}

// A rule's scopes and groups are checked as tokens' are, so no rule is
// stored that no token could satisfy.
func TestValidateRulesEntries(t *testing.T) {
	ok := store.Rule{Method: "tools/call", Scopes: []string{"mcp:admin"}, Groups: []string{"eng-team", "ops"}}
	if err := store.ValidateRules([]store.Rule{ok}); err != nil {
		t.Fatalf("a valid rule: %v", err)
	}
	for name, r := range map[string]store.Rule{
		"rules[0].scopes[0]": {Method: "tools/call", Scopes: []string{"mcp:é"}},
		"rules[0].scopes[1]": {Method: "tools/call", Scopes: []string{"mcp", "a\x01b"}},
		"rules[0].groups[0]": {Method: "tools/call", Groups: []string{"e\u200bng"}},
	} {
		if err := store.ValidateRules([]store.Rule{r}); err == nil || !strings.HasPrefix(err.Error(), name+":") {
			t.Errorf("%+v: err = %v, want it to name %s", r, err, name)
		}
	}
}
