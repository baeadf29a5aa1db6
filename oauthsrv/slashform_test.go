package oauthsrv

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// TestSlashFormResource: /<agent>/mcp/ is served as well as /<agent>/mcp, so
// it is a resource of its own (issue 16 item 9): its path-aware metadata
// names it byte for byte (RFC 9728 §3.3, which the Go SDK enforces), and
// authorize and token accept it and bind the token's aud to that agent, not
// to the whole gateway. A refresh keeps it; the other form at the token
// endpoint is another resource.
func TestSlashFormResource(t *testing.T) {
	e := newEnv(t)
	slash := e.url + "/demo/mcp/"

	prm := readJSON(t, e.get("/.well-known/oauth-protected-resource/demo/mcp/"))
	if prm["resource"] != slash {
		t.Fatalf("slash form's PRM resource %v, want %s", prm["resource"], slash)
	}
	for _, p := range []string{"/.well-known/oauth-protected-resource/ghost/mcp/", "/.well-known/oauth-protected-resource/demo/mcp/x/"} {
		expectOAuthError(t, e.get(p), http.StatusNotFound, "not_found")
	}

	clientID := e.register("Slash Client", loopbackRedirect)
	_, code, verifier := e.fullLogin(clientID, "alice", slash)
	toks := e.tokens(clientID, code, verifier)
	c := e.verify(toks["access_token"].(string))
	if !slices.Equal([]string(c.Audience), []string{slash}) {
		t.Fatalf("aud %v, want [%s]", c.Audience, slash)
	}
	resp := e.refresh(clientID, toks["refresh_token"].(string), url.Values{"resource": {e.url + "/demo/mcp"}})
	expectOAuthError(t, resp, http.StatusBadRequest, "invalid_target")
	resp = e.refresh(clientID, toks["refresh_token"].(string), url.Values{"resource": {slash}})
	m := readJSON(t, resp)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("refresh with the slash form: %d %v", resp.StatusCode, m)
	}
	if c := e.verify(m["access_token"].(string)); !slices.Equal([]string(c.Audience), []string{slash}) {
		t.Fatalf("refreshed aud %v", c.Audience)
	}

	for _, bad := range []string{e.url + "/demo/mcp//", e.url + "/demo//mcp/", e.url + "/ghost/mcp/"} {
		b := e.browser()
		_, challenge := pkce()
		resp := b.get(e.authorizeURL(authzParams{clientID: clientID, redirect: loopbackRedirect, challenge: challenge, state: "s", resource: bad}))
		// Not approved here yet: an error page links back, no redirect.
		if body := readBodyString(resp); !strings.Contains(body, "error=invalid_target") {
			t.Errorf("resource %s: %d, want an invalid_target page", bad, resp.StatusCode)
		}
	}
}
