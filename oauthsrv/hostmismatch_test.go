package oauthsrv

import (
	"html"
	"net/http"
	"strings"
	"testing"
)

// TestOtherHostNameExplained: a newcomer gives the MCP client localhost for
// a gateway whose public URL is 127.0.0.1 (issue 16 item 5). The resource
// is refused with a description naming the right URL, and a sign-in begun
// at the other host name (its cookie unseen at the public one) ends on a
// page that says so and names the address to use.
func TestOtherHostNameExplained(t *testing.T) {
	e := newEnv(t)
	other := strings.Replace(e.url, "127.0.0.1", "localhost", 1)
	clientID := e.register("Mixed Hosts", loopbackRedirect)

	_, challenge := pkce()
	resp := e.browser().get(e.authorizeURL(authzParams{clientID: clientID, redirect: loopbackRedirect, challenge: challenge, state: "s", resource: other + "/demo/mcp"}))
	if body := html.UnescapeString(readBodyString(resp)); !strings.Contains(body, "invalid_target") || !strings.Contains(body, e.url+"/<agent>/mcp") {
		t.Errorf("invalid_target does not name the public URL %s:\n%s", e.url, body)
	}
	tok := e.postForm("/oauth/token", map[string][]string{"grant_type": {"authorization_code"}, "client_id": {clientID}, "code": {"x"},
		"redirect_uri": {loopbackRedirect}, "code_verifier": {strings.Repeat("v", 43)}, "resource": {other + "/demo/mcp"}})
	if m := readJSON(t, tok); m["error"] != "invalid_target" || !strings.Contains(m["error_description"].(string), e.url) {
		t.Errorf("token endpoint: %v", m)
	}

	// The authorization begins at the other host name: the binding cookie is
	// set there, the login page is at the public URL.
	b := e.browser()
	u := strings.Replace(e.authorizeURL(authzParams{clientID: clientID, redirect: loopbackRedirect, challenge: challenge, state: "s", resource: e.url + "/demo/mcp"}), e.url, other, 1)
	resp = b.get(u)
	body := html.UnescapeString(readBodyString(resp))
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "another address of this gateway") || !strings.Contains(body, "address "+e.url) {
		t.Errorf("sign-in begun at %s: %d %s, want a page naming %s", other, resp.StatusCode, resp.Request.URL, e.url)
	}
}
