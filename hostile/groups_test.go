package hostile

import (
	"context"
	"net/http"
	"slices"
	"testing"

	"github.com/mcpgateway/mcp-gateway/config"
	"github.com/mcpgateway/mcp-gateway/store"
)

// Issue 13 item 1: a rule naming groups admits an OAuth user through the
// groups the login provider gave (here login.users[].groups), carried in
// the access token minted by the authorization server and kept by refresh;
// a user of the agent without the group is refused.
func TestGroupsRuleThroughMintedTokens(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			g := newGW(t, b, func(c *config.Config) {
				c.Login.Users = slices.Clone(c.Login.Users) // shared by every test
				for i := range c.Login.Users {
					if c.Login.Users[i].Username == "bob" {
						c.Login.Users[i].Groups = []string{"qa", "eng"}
					}
				}
			})
			a := &store.Agent{AgentSpec: store.AgentSpec{
				ID: "grouped", Owner: "alice", Users: []string{"bob", "carol"}, Upstream: g.up.ts.URL + "/mcp",
				Rules: []store.Rule{{Name: "eng-tools", Method: "tools/call", Target: "github_*", Groups: []string{"eng"}}},
			}}
			if err := g.st.Store.PutAgent(context.Background(), a); err != nil {
				t.Fatal(err)
			}
			call := func(tok string) int {
				t.Helper()
				return g.raw("POST", "/grouped/mcp", [][2]string{
					{"Authorization", "Bearer " + tok}, {"Content-Type", "application/json"},
					{"MCP-Protocol-Version", "2026-07-28"}, {"Mcp-Method", "tools/call"}, {"Mcp-Name", "github_search"},
				}, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"github_search","arguments":{}}}`).status
			}
			bobClient, bobTok, bobRT := g.grant("bob", g.resource("grouped"))
			if st := call(bobTok); st != http.StatusOK {
				t.Fatalf("bob (groups eng, qa) calling github_search: %d, want 200", st)
			}
			refreshed, _ := g.refreshed(t, bobClient, bobRT)
			if st := call(refreshed); st != http.StatusOK {
				t.Fatalf("bob's refreshed token calling github_search: %d, want 200", st)
			}
			_, carolTok, _ := g.grant("carol", g.resource("grouped"))
			if st := call(carolTok); st != http.StatusForbidden {
				t.Fatalf("carol (no groups) calling github_search: %d, want 403", st)
			}
		})
	}
}
