package oauthsrv

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/mcpgateway/mcp-gateway/config"
)

// authorizeIn starts an authorization in browser b and returns where it
// ended (the login page, the consent page or the client's redirect).
func (b *browser) authorizeIn(clientID, redirect, scope, resource string) *http.Response {
	b.e.t.Helper()
	_, challenge := pkce()
	return b.get(b.e.authorizeURL(authzParams{clientID: clientID, redirect: redirect, challenge: challenge, state: "st", scope: scope, resource: resource}))
}

// expectConsentPage: the request stopped at the consent page (no code).
func expectConsentPage(t *testing.T, resp *http.Response, why string) {
	t.Helper()
	body := readBodyString(resp)
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/consent" {
		t.Fatalf("%s: got %d at %s (Location %q), want the consent page: %.300s", why, resp.StatusCode, resp.Request.URL, resp.Header.Get("Location"), body)
	}
}

// expectCode: the request went straight to the client with a code.
func expectCode(t *testing.T, resp *http.Response, redirect, why string) {
	t.Helper()
	if q := callback(t, resp, redirect); q.Get("code") == "" {
		t.Fatalf("%s: callback %v without a code", why, q)
	}
}

// TestLoopbackConsentNeverRemembered: an approved loopback client shows the
// consent page on every authorization, on the approved port and on any
// other (RFC 8252 §8.6: any local process can listen there), and its
// approval is not stored. The login session still spares the password.
func TestLoopbackConsentNeverRemembered(t *testing.T) {
	e := newEnv(t)
	const approved = "http://127.0.0.1:9999/cb"
	clientID := e.register("loopback", approved)
	b := e.browser()
	b.authorizeCodeAt(clientID, approved, "alice", "")
	if cs, _ := e.st.ListConsents(t.Context(), "alice"); len(cs) != 0 {
		t.Fatalf("a loopback approval was stored: %+v", cs)
	}
	for _, redirect := range []string{"http://127.0.0.1:31337/cb", approved} {
		resp := b.authorizeIn(clientID, redirect, "", "")
		expectConsentPage(t, resp, redirect)
	}
	// The page says why, and one click finishes it.
	resp := b.authorizeIn(clientID, "http://127.0.0.1:31337/cb", "", "")
	body := readBodyString(resp)
	if !strings.Contains(body, "not remembered") {
		t.Fatalf("consent page does not say the approval is not remembered: %s", body)
	}
	f := parseFormFromString(t, resp, body)
	expectCode(t, b.submit(f, url.Values{"decision": {"approve"}}), "http://127.0.0.1:31337/cb", "one click")
}

// TestCustomSchemeConsentNeverRemembered: a private-use scheme (Cursor's)
// is claimed by whatever app registers it on the device: asked each time.
func TestCustomSchemeConsentNeverRemembered(t *testing.T) {
	e := newEnv(t)
	const cursor = "cursor://anysphere.cursor-retrieval/oauth/user-mcp/callback"
	clientID := e.register("Cursor", cursor, "http://127.0.0.1:9/callback")
	b := e.browser()
	b.authorizeCodeAt(clientID, cursor, "alice", "")
	expectConsentPage(t, b.authorizeIn(clientID, cursor, "", ""), "custom scheme, second time")
}

// TestHTTPSConsentRememberedExactly: remembered consent is keyed by (user,
// client, exact redirect URI, resource, scopes): an https redirect URI
// byte-equal to the approved one and covered scopes skip the page; another
// registered redirect URI, another resource or more scopes show it.
func TestHTTPSConsentRememberedExactly(t *testing.T) {
	e := newEnv(t, func(c *config.Config, _ *Options) { c.Scopes = config.NamedScopes("mcp", "admin") })
	const cb1, cb2 = "https://app.example.com/cb", "https://app.example.com/cb2"
	clientID := e.register("web", cb1, cb2)
	b := e.browser()
	resource := e.url + "/demo/mcp"
	resp := b.login(b.authorizeIn(clientID, cb1, "mcp", resource), "alice")
	expectCode(t, b.consent(resp, "approve"), cb1, "first approval")

	expectCode(t, b.authorizeIn(clientID, cb1, "mcp", resource), cb1, "same request again")
	expectConsentPage(t, b.authorizeIn(clientID, cb2, "mcp", resource), "other registered redirect URI")
	expectConsentPage(t, b.authorizeIn(clientID, cb1, "mcp", e.url), "other resource")
	expectConsentPage(t, b.authorizeIn(clientID, cb1, "mcp admin", resource), "more scopes")
	// Another user in another browser is asked too.
	other := e.browser()
	expectConsentPage(t, other.login(other.authorizeIn(clientID, cb1, "mcp", resource), "bob"), "another user")

	// Approving the wider request remembers it; the narrower one still works.
	expectCode(t, b.consent(b.authorizeIn(clientID, cb1, "mcp admin", resource), "approve"), cb1, "wider approval")
	expectCode(t, b.authorizeIn(clientID, cb1, "admin mcp", resource), cb1, "wider request again")
	expectCode(t, b.authorizeIn(clientID, cb1, "mcp", resource), cb1, "narrower request")
	cs, err := e.st.ListConsents(t.Context(), "alice")
	if err != nil || len(cs) != 2 || cs[0].RedirectURI != cb1 || cs[1].RedirectURI != cb1 {
		t.Fatalf("stored consents %+v %v, want two at %s", cs, err, cb1)
	}
}

// TestOtherBrowserWithOwnBinding: browser B holds its own binding cookie
// (it started an authorization of its own, and is even signed in as the
// same user) and replays A's request id and CSRF value on the login and
// the consent forms: 400, no code. Only Pending's browser check stops this.
func TestOtherBrowserWithOwnBinding(t *testing.T) {
	e := newEnv(t)
	clientID := e.register("binding")
	a, bb := e.browser(), e.browser()
	bb.authorizeCode(clientID, "alice", "") // B: own binding cookie and session
	if u, _ := url.Parse(e.url); len(bb.c.Jar.Cookies(u)) < 2 {
		t.Fatalf("browser B lacks its own cookies: %v", bb.c.Jar.Cookies(u))
	}

	loginPage := a.authorizeIn(clientID, loopbackRedirect, "", "")
	lf := parseForm(t, loginPage)
	resp := bb.submit(lf, url.Values{"username": {"alice"}, "password": {passwords["alice"]}})
	expectPage(t, resp, http.StatusBadRequest, "another browser")

	consentPage := a.login(a.authorizeIn(clientID, loopbackRedirect, "", ""), "alice")
	if consentPage.Request.URL.Path != "/consent" {
		t.Fatalf("A did not reach the consent page: %s", consentPage.Request.URL)
	}
	cf := parseForm(t, consentPage)
	expectPage(t, bb.get(e.url+"/consent?request="+url.QueryEscape(cf.fields.Get("request"))), http.StatusBadRequest, "another browser")
	expectPage(t, bb.submit(cf, url.Values{"decision": {"approve"}}), http.StatusBadRequest, "another browser")
	// A's request is intact: A finishes it.
	expectCode(t, a.submit(cf, url.Values{"decision": {"approve"}}), loopbackRedirect, "A after B's replays")
	if n := len(e.auditEvents("code_issued")); n != 2 {
		t.Fatalf("%d codes issued, want 2 (B's own, A's)", n)
	}
}

// TestAccountListsUnrememberedClients: a loopback client's approval is not
// stored, but while it holds a sign-in /account lists it among the allowed
// applications, and revoking it there ends that sign-in.
func TestAccountListsUnrememberedClients(t *testing.T) {
	e := newEnv(t)
	clientID := e.register("Loopback CLI")
	b := e.browser()
	code, verifier := b.authorizeCode(clientID, "alice", e.url+"/demo/mcp")
	tok := e.tokens(clientID, code, verifier)
	body, forms := b.account()
	if !strings.Contains(body, "Loopback CLI") || !strings.Contains(body, e.url+"/demo/mcp (Use the agent&#39;s tools and data on your behalf), asked at each sign-in") {
		t.Fatalf("account page does not list the loopback client: %s", body)
	}
	resp := b.submit(findForm(t, forms, "/account/revoke", "client", clientID), nil)
	if body, _ := pageForms(t, resp); !strings.Contains(body, "You have not allowed any application") {
		t.Fatalf("after revoking: %s", body)
	}
	expectOAuthError(t, e.refresh(clientID, tok["refresh_token"].(string), nil), http.StatusBadRequest, "invalid_grant")
}
