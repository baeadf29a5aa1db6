package oauthsrv

import (
	"context"
	"html"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/mcpgateway/mcp-gateway/config"
	"github.com/mcpgateway/mcp-gateway/store"
	"github.com/mcpgateway/mcp-gateway/token"
)

const adminDescription = "Run the agent's administrative tools"

// policyEnv declares mcp, mcp:admin (described; mcp does not imply it)
// and admin, with agents "tooled" (a rule needing mcp:admin) and "adm"
// (its own scopes: admin).
func policyEnv(t *testing.T) *env {
	e := newEnv(t, func(c *config.Config, _ *Options) {
		c.Scopes = config.Scopes{{Name: "mcp"}, {Name: "mcp:admin", Description: adminDescription}, {Name: "admin"}}
	})
	for _, a := range []*store.Agent{
		{AgentSpec: store.AgentSpec{ID: "tooled", Owner: "alice", Rules: []store.Rule{{Name: "admin", Method: "tools/call", Target: "admin_*", Scopes: []string{"mcp:admin"}}}}},
		{AgentSpec: store.AgentSpec{ID: "adm", Owner: "alice", Scopes: []string{"admin"}}},
	} {
		if err := e.st.PutAgent(context.Background(), a); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

// authorizeScope runs authorize with scope in browser b (logging in when
// asked) and returns the consent page's body ("" when none was shown)
// and the token response.
func (b *browser) authorizeScope(clientID, resource, scope string) (string, map[string]any) {
	t := b.e.t
	t.Helper()
	verifier, challenge := pkce()
	state := token.Random(8)
	resp := b.get(b.e.authorizeURL(authzParams{clientID: clientID, redirect: loopbackRedirect, challenge: challenge, state: state, scope: scope, resource: resource}))
	if resp.StatusCode == http.StatusOK && resp.Request.URL.Path == "/login" {
		resp = b.login(resp, "alice")
	}
	page := ""
	if resp.StatusCode == http.StatusOK && resp.Request.URL.Path == "/consent" {
		page = readBodyString(resp)
		resp = b.submit(parseFormFromString(t, resp, page), url.Values{"decision": {"approve"}})
	}
	q := callback(t, resp, loopbackRedirect)
	if q.Get("code") == "" {
		t.Fatalf("no code: %v", q)
	}
	return page, b.e.tokens(clientID, q.Get("code"), verifier)
}

// TestAuthorizeGrantsAllowedSubset: a client asking for more than the
// resource grants (the gateway-wide list a challenge used to name) gets
// the allowed part, and the token response says which (RFC 6749 §3.3),
// instead of invalid_scope for the whole request.
func TestAuthorizeGrantsAllowedSubset(t *testing.T) {
	e := policyEnv(t)
	client := e.register("subset")
	_, tok := e.browser().authorizeScope(client, e.url+"/adm/mcp", "mcp admin")
	if tok["scope"] != "admin" {
		t.Fatalf("granted scope %v, want admin", tok["scope"])
	}
	if c := e.verify(tok["access_token"].(string)); c.Scope != "admin" {
		t.Fatalf("access token scope %q", c.Scope)
	}
}

// TestStepUpUnionOfScopes: after a 403 naming mcp:admin, clients
// re-authorize with the union of their scopes and the new one; authorize
// grants it (a rule scope of the agent), and the consent page says in
// words what is added.
func TestStepUpUnionOfScopes(t *testing.T) {
	e := policyEnv(t)
	client := e.register("stepper")
	b := e.browser()
	first, tok := b.authorizeScope(client, e.url+"/tooled/mcp", "")
	if tok["scope"] != "admin mcp" {
		t.Fatalf("first grant %v, want the base scopes (the gateway's but mcp:admin)", tok["scope"])
	}
	if strings.Contains(first, "added-scopes") {
		t.Fatal("first consent shows added scopes")
	}
	page, tok := b.authorizeScope(client, e.url+"/tooled/mcp", "mcp mcp:admin")
	if tok["scope"] != "mcp mcp:admin" {
		t.Fatalf("step-up grant %v, want mcp mcp:admin", tok["scope"])
	}
	_, added, ok := strings.Cut(page, `id="added-scopes"`)
	added, _, _ = strings.Cut(added, "</ul>")
	if !ok || !strings.Contains(added, html.EscapeString(adminDescription)) || strings.Contains(added, "<code>mcp</code>") {
		t.Fatalf("consent page does not list just mcp:admin as added, in words:\n%s", page)
	}
	// A scope no rule or base of the agent names is not granted.
	_, tok = b.authorizeScope(client, e.url+"/adm/mcp", "admin mcp:admin")
	if tok["scope"] != "admin" {
		t.Fatalf("grant %v, want admin (mcp:admin is not this agent's)", tok["scope"])
	}
}

// TestPRMListsBaseScopes: the agent's metadata lists its base scopes, not
// the narrower ones its rules ask for in 403 challenges.
func TestPRMListsBaseScopes(t *testing.T) {
	e := policyEnv(t)
	for agent, want := range map[string][]string{"tooled": {"mcp", "admin"}, "adm": {"admin"}, "demo": {"mcp", "mcp:admin", "admin"}} {
		m := readJSON(t, e.get("/.well-known/oauth-protected-resource/"+agent+"/mcp"))
		var got []string
		for _, s := range m["scopes_supported"].([]any) {
			got = append(got, s.(string))
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: scopes_supported %v, want %v", agent, got, want)
		}
	}
}

// TestGatewayWideDefaultLeavesRuleScopes: with no resource and no scope,
// authorize grants the gateway's scopes but those the config's agents'
// rules require (asked for on demand), and the root metadata lists the same.
func TestGatewayWideDefaultLeavesRuleScopes(t *testing.T) {
	e := newEnv(t, func(c *config.Config, _ *Options) {
		c.Scopes = config.Scopes{{Name: "mcp"}, {Name: "mcp:admin", Description: adminDescription}}
		c.Agents = []config.StaticAgent{{AgentSpec: store.AgentSpec{ID: "cfgagent", Owner: "alice", Rules: []store.Rule{{Method: "tools/call", Target: "admin_*", Scopes: []string{"mcp:admin"}}}}}}
	})
	_, tok := e.browser().authorizeScope(e.register("wide"), "", "")
	if tok["scope"] != "mcp" {
		t.Fatalf("default gateway-wide grant %v, want mcp", tok["scope"])
	}
	for _, path := range []string{"", "/demo/mcp"} { // the root, and an agent without rules of its own
		m := readJSON(t, e.get("/.well-known/oauth-protected-resource"+path))
		if got := m["scopes_supported"].([]any); len(got) != 1 || got[0] != "mcp" {
			t.Fatalf("%q: scopes_supported %v", path, got)
		}
	}
	if _, tok := e.browser().authorizeScope(e.register("demo"), e.url+"/demo/mcp", "mcp mcp:admin"); tok["scope"] != "mcp" {
		t.Fatalf("demo agent granted %v: mcp:admin guards another agent's tool", tok["scope"])
	}
}

// TestAccountKeyScopes: /account offers the declared scopes, in words, for
// a new key; a ticked one restricts the key, an unknown one is refused.
func TestAccountKeyScopes(t *testing.T) {
	e := policyEnv(t)
	b := e.browser()
	body, forms := b.accountLogin("alice")
	if !strings.Contains(body, `id="key-scopes"`) || !strings.Contains(body, html.EscapeString(adminDescription)) {
		t.Fatalf("no scope choice on the account page:\n%s", body)
	}
	create := findForm(t, forms, "/account/keys", "", "")
	if resp := b.submit(create, url.Values{"name": {"x"}, "expires": {"30"}, "scope:root": {"on"}}); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("unknown scope: %d", resp.StatusCode)
	}
	resp := b.submit(create, url.Values{"name": {"admin"}, "expires": {"30"}, "scope:mcp": {"on"}, "scope:mcp:admin": {"on"}})
	page, _ := pageForms(t, resp)
	key := oagKey.FindString(page)
	if key == "" {
		t.Fatalf("create: %d %s", resp.StatusCode, page)
	}
	k, err := e.st.GetKeyByHash(t.Context(), token.Hash(key))
	if err != nil || !slices.Equal(k.Scopes, []string{"mcp", "mcp:admin"}) {
		t.Fatalf("stored key %+v, %v", k, err)
	}
}
