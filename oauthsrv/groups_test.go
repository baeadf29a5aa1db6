package oauthsrv

import (
	"net/http"
	"slices"
	"testing"

	"github.com/mcpgateway/mcp-gateway/config"
)

// withGroups gives built-in user name the groups of login.users[].groups.
func withGroups(name string, groups ...string) envOption {
	return func(cfg *config.Config, _ *Options) {
		cfg.Login.Users = slices.Clone(cfg.Login.Users) // shared by every test
		for i := range cfg.Login.Users {
			if cfg.Login.Users[i].Username == name {
				cfg.Login.Users[i].Groups = groups
			}
		}
	}
}

// TestBuiltinGroupsReachTokens: a built-in user's configured groups reach
// the access token's groups claim (sorted, deduplicated), stay in refreshed
// tokens and in tokens of a later authorization through the session
// (remembered consent, no new login); a user without groups gets none.
func TestBuiltinGroupsReachTokens(t *testing.T) {
	e := newEnv(t, withGroups("alice", "ops", "eng", "ops"))
	client := e.register("CLI")
	want := []string{"eng", "ops"}
	b, code, verifier := e.fullLogin(client, "alice", "")
	tok := e.tokens(client, code, verifier)
	if got := e.verify(tok["access_token"].(string)).Groups; !slices.Equal(got, want) {
		t.Fatalf("access token groups = %q, want %q", got, want)
	}
	resp := e.refresh(client, tok["refresh_token"].(string), nil)
	m := readJSON(t, resp)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("refresh: %d %v", resp.StatusCode, m)
	}
	if got := e.verify(m["access_token"].(string)).Groups; !slices.Equal(got, want) {
		t.Fatalf("refreshed access token groups = %q, want %q", got, want)
	}
	code, verifier = b.authorizeCode(client, "alice", "") // the session, remembered consent
	tok = e.tokens(client, code, verifier)
	if got := e.verify(tok["access_token"].(string)).Groups; !slices.Equal(got, want) {
		t.Fatalf("access token groups through the session = %q, want %q", got, want)
	}
	_, code, verifier = e.fullLogin(client, "bob", "")
	tok = e.tokens(client, code, verifier)
	if got := e.verify(tok["access_token"].(string)).Groups; got != nil {
		t.Fatalf("bob's access token groups = %q, want none", got)
	}
}
