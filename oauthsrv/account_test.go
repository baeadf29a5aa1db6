package oauthsrv

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/net/html"

	"github.com/mcpgateway/mcp-gateway/store"
	"github.com/mcpgateway/mcp-gateway/token"
)

// pageForms returns every form of an HTML page, actions resolved against
// the page URL.
func pageForms(t testing.TB, resp *http.Response) (string, []form) {
	t.Helper()
	body := readBodyString(resp)
	doc, err := html.Parse(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	attr := func(n *html.Node, k string) string {
		for _, a := range n.Attr {
			if a.Key == k {
				return a.Val
			}
		}
		return ""
	}
	var forms []form
	var walk func(n *html.Node, cur *form)
	walk = func(n *html.Node, cur *form) {
		if n.Type == html.ElementNode {
			switch n.Data {
			case "form":
				a, err := resp.Request.URL.Parse(attr(n, "action"))
				if err != nil {
					t.Fatal(err)
				}
				forms = append(forms, form{action: a, fields: url.Values{}, buttons: map[string][]string{}})
				cur = &forms[len(forms)-1]
			case "input":
				if cur != nil && attr(n, "type") == "hidden" {
					cur.fields.Set(attr(n, "name"), attr(n, "value"))
				}
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c, cur)
		}
	}
	walk(doc, nil)
	return body, forms
}

// findForm returns the form posting to path whose hidden field k is v
// (k "" matches any).
func findForm(t testing.TB, forms []form, path, k, v string) form {
	t.Helper()
	for _, f := range forms {
		if f.action.Path == path && (k == "" || f.fields.Get(k) == v) {
			return f
		}
	}
	t.Fatalf("no form to %s with %s=%s among %d forms", path, k, v, len(forms))
	return form{}
}

// accountLogin signs in for the account page through /account/login and
// the built-in login, and returns the signed-in page.
func (b *browser) accountLogin(user string) (string, []form) {
	b.e.t.Helper()
	resp := b.get(b.e.url + "/account")
	body, forms := pageForms(b.e.t, resp)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "Sign in") {
		b.e.t.Fatalf("signed-out account page: %d %s", resp.StatusCode, body)
	}
	f := findForm(b.e.t, forms, "/account/login", "", "")
	resp = b.get(f.action.String())
	if resp.Request.URL.Path != "/login" {
		b.e.t.Fatalf("account login went to %s", resp.Request.URL)
	}
	resp = b.login(resp, user)
	body, forms = pageForms(b.e.t, resp)
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/account" || !strings.Contains(body, "Signed in as <strong>"+user+"</strong>") {
		b.e.t.Fatalf("after login: %d at %s: %s", resp.StatusCode, resp.Request.URL, body)
	}
	return body, forms
}

func (b *browser) account() (string, []form) {
	b.e.t.Helper()
	resp := b.get(b.e.url + "/account")
	if resp.StatusCode != http.StatusOK {
		b.e.t.Fatalf("account page: %d", resp.StatusCode)
	}
	return pageForms(b.e.t, resp)
}

func TestAccountSignedOut(t *testing.T) {
	e := newEnv(t)
	resp := e.get("/account")
	body := readBodyString(resp)
	h := resp.Header
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `action="/account/login"`) {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	if h.Get("X-Frame-Options") != "DENY" || !strings.Contains(h.Get("Content-Security-Policy"), "frame-ancestors 'none'") ||
		h.Get("Cache-Control") != "no-store" || h.Get("Referrer-Policy") != "same-origin" {
		t.Fatalf("security headers missing: %v", h)
	}
	// A failed provider login comes back with an error: a fixed message,
	// never the reflected description, and no automatic new login.
	resp = e.get("/account?error=access_denied&error_description=" + url.QueryEscape("<b>call 555</b>"))
	body = readBodyString(resp)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "Sign-in did not complete") || strings.Contains(body, "555") {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	// Unknown sub-paths and wrong methods.
	if resp := e.get("/account/nope"); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("/account/nope: %d", resp.StatusCode)
	}
	if resp := e.postForm("/account", url.Values{}); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST /account: %d", resp.StatusCode)
	}
	// A form's address opened by GET (a reload after the post) is no dead
	// end: it leads to the page; other methods are refused.
	for _, path := range []string{"/account/revoke", "/account/keys", "/account/logout"} {
		req, _ := http.NewRequest(http.MethodGet, e.url+path, nil)
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != e.url+"/account" {
			t.Fatalf("GET %s: %d to %q, want 303 to the account page", path, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	req, _ := http.NewRequest(http.MethodPut, e.url+"/account/revoke", nil)
	if resp := e.do(req); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("PUT /account/revoke: %d", resp.StatusCode)
	}
	// Posting without a session is refused.
	if resp := e.postForm("/account/keys", url.Values{"csrf": {"x"}, "expires": {"30"}}); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("POST without session: %d", resp.StatusCode)
	}
}

func TestAccountListAndRevoke(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	b := e.browser()
	body, _ := b.accountLogin("alice")
	if !strings.Contains(body, "You have not allowed any application") {
		t.Fatalf("fresh account page: %s", body)
	}
	// Alice approves two clients in this browser (the session is reused).
	// https redirects: only those approvals are remembered (trust.go).
	const cb = "https://app.example/cb"
	inspector := e.register("Inspector", cb)
	cli := e.register("CLI", cb)
	code, verifier := b.authorizeCodeAt(inspector, cb, "alice", e.url+"/demo/mcp")
	tokA := e.tokensAt(inspector, cb, code, verifier)
	code, verifier = b.authorizeCodeAt(cli, cb, "alice", "")
	tokB := e.tokensAt(cli, cb, code, verifier)
	jtiA := e.verify(tokA["access_token"].(string)).ID
	jtiB := e.verify(tokB["access_token"].(string)).ID
	// Bob has his own grant, which Alice never sees.
	bobCode, bobVerifier := e.browser().authorizeCodeAt(cli, cb, "bob", "")
	tokBob := e.tokensAt(cli, cb, bobCode, bobVerifier)

	body, forms := b.account()
	for _, want := range []string{"Inspector", "CLI", e.url + "/demo/mcp", "all agents you may use", "returns to app.example"} {
		if !strings.Contains(body, want) {
			t.Fatalf("account page lacks %q: %s", want, body)
		}
	}
	fams, err := e.st.ListFamilies(ctx, "alice")
	if err != nil || len(fams) != 2 {
		t.Fatalf("alice families: %v %v", fams, err)
	}
	bobFams, _ := e.st.ListFamilies(ctx, "bob")
	if strings.Contains(body, bobFams[0].ID) {
		t.Fatal("bob's family listed on alice's page")
	}

	// CSRF failures: missing, wrong, another session's, another site.
	famForm := findForm(t, forms, "/account/revoke", "family", fams[0].ID)
	bobBrowser := e.browser()
	_, bobForms := bobBrowser.accountLogin("bob")
	bobCSRF := findForm(t, bobForms, "/account/logout", "", "").fields.Get("csrf")
	if bobCSRF == famForm.fields.Get("csrf") {
		t.Fatal("two sessions share a CSRF token")
	}
	for name, csrf := range map[string]string{"missing": "", "wrong": token.Random(32), "other session": bobCSRF} {
		v := url.Values{"family": {fams[0].ID}}
		if csrf != "" {
			v.Set("csrf", csrf)
		}
		resp := b.post(famForm.action.String(), v)
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("%s CSRF: %d", name, resp.StatusCode)
		}
		readBodyString(resp)
	}
	req, _ := http.NewRequest(http.MethodPost, famForm.action.String(), strings.NewReader(famForm.fields.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://evil.example")
	resp, err := b.c.Do(req)
	if err != nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-origin post: %v %v", resp, err)
	}
	// Bob cannot revoke Alice's family with his own valid form.
	resp = bobBrowser.post(famForm.action.String(), url.Values{"csrf": {bobCSRF}, "family": {fams[0].ID}})
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("bob revoking alice's family: %d", resp.StatusCode)
	}
	if f, _ := e.st.ListFamilies(ctx, "alice"); len(f) != 2 {
		t.Fatal("a refused request revoked something")
	}

	// Revoke one family: its refresh token and access token die.
	famClient := fams[0].ClientID
	resp = b.submit(famForm, nil)
	body, forms = pageForms(t, resp)
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/account" || !strings.Contains(body, "The sign-in was revoked") {
		t.Fatalf("revoke family: %d %s", resp.StatusCode, body)
	}
	rt, jti := tokA["refresh_token"].(string), jtiA
	if famClient == cli {
		rt, jti = tokB["refresh_token"].(string), jtiB
	}
	expectOAuthError(t, e.refresh(famClient, rt, nil), http.StatusBadRequest, "invalid_grant")
	if !e.revoked(jti) {
		t.Fatal("access token of the revoked family still valid")
	}

	// Revoke the other client: consents and families go.
	other := inspector
	otherRT, otherJTI := tokA["refresh_token"].(string), jtiA
	if famClient == inspector {
		other, otherRT, otherJTI = cli, tokB["refresh_token"].(string), jtiB
	}
	resp = b.submit(findForm(t, forms, "/account/revoke", "client", other), nil)
	body, _ = pageForms(t, resp)
	if !strings.Contains(body, "The application&#39;s access was revoked") {
		t.Fatalf("revoke client: %s", body)
	}
	if cs, _ := e.st.ListConsents(ctx, "alice"); len(cs) != 1 || cs[0].ClientID != famClient {
		t.Fatalf("consents after revoking %s: %+v", other, cs)
	}
	expectOAuthError(t, e.refresh(other, otherRT, nil), http.StatusBadRequest, "invalid_grant")
	if !e.revoked(otherJTI) {
		t.Fatal("access token of the revoked client still valid")
	}
	if f, _ := e.st.ListFamilies(ctx, "alice"); len(f) != 0 {
		t.Fatalf("alice still has families: %+v", f)
	}
	// Bob's grant for the same client is untouched.
	if resp := e.refresh(cli, tokBob["refresh_token"].(string), nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("bob's refresh after alice revoked: %d %v", resp.StatusCode, readJSON(t, resp))
	}
	// The revoked client must ask for consent again.
	_, challenge := pkce()
	resp = b.get(e.authorizeURL(authzParams{clientID: other, redirect: cb, challenge: challenge}))
	if resp.Request.URL.Path != "/consent" {
		t.Fatalf("after revoking, authorize went to %s", resp.Request.URL)
	}
	readBodyString(resp)

	// Sign out: the session ends and its CSRF token with it.
	_, forms = b.account()
	logout := findForm(t, forms, "/account/logout", "", "")
	resp = b.submit(logout, nil)
	body = readBodyString(resp)
	if !strings.Contains(body, "You are signed out") || !strings.Contains(body, `action="/account/login"`) {
		t.Fatalf("after sign-out: %s", body)
	}
	if resp := b.submit(logout, nil); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("form of an ended session: %d", resp.StatusCode)
	}
}

var oagKey = regexp.MustCompile(`oag_[A-Za-z0-9_-]{43}`)

func TestAccountKeys(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	b := e.browser()
	_, forms := b.accountLogin("alice")
	create := findForm(t, forms, "/account/keys", "", "")

	// Bad input.
	for name, v := range map[string]url.Values{
		"no lifetime":     {"name": {"x"}},
		"odd lifetime":    {"name": {"x"}, "expires": {"7"}},
		"long name":       {"name": {strings.Repeat("n", 101)}, "expires": {"30"}},
		"control in name": {"name": {"a\x1bb"}, "expires": {"30"}},
	} {
		if resp := b.submit(create, v); resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("%s: %d", name, resp.StatusCode)
		}
	}
	resp := b.submit(create, url.Values{"csrf": {token.Random(32)}, "name": {"x"}, "expires": {"30"}})
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("create with bad CSRF: %d", resp.StatusCode)
	}

	resp = b.submit(create, url.Values{"name": {"laptop"}, "expires": {"90"}})
	body, _ := pageForms(t, resp)
	key := oagKey.FindString(body)
	if resp.StatusCode != http.StatusOK || key == "" || !strings.Contains(body, "not shown again") {
		t.Fatalf("create key: %d %s", resp.StatusCode, body)
	}
	k, err := e.st.GetKeyByHash(ctx, token.Hash(key))
	if err != nil || k.User != "alice" || k.Kind != store.KeyUser || k.Name != "laptop" || k.ExpiresAt.IsZero() {
		t.Fatalf("stored key %+v, %v", k, err)
	}
	// Listed without the secret afterwards.
	body, forms = b.account()
	if !strings.Contains(body, k.ID) || !strings.Contains(body, "laptop") || oagKey.MatchString(body) {
		t.Fatalf("key list: %s", body)
	}
	// Bob's key is neither listed nor revocable by Alice.
	bobKey := &store.APIKey{ID: "key_bob", Hash: token.Hash("oag_bob"), Kind: store.KeyUser, User: "bob", CreatedAt: e.clock.Now()}
	if err := e.st.CreateKey(ctx, bobKey); err != nil {
		t.Fatal(err)
	}
	csrf := findForm(t, forms, "/account/revoke", "key", k.ID).fields.Get("csrf")
	resp = b.post(e.url+"/account/revoke", url.Values{"csrf": {csrf}, "key": {"key_bob"}})
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("revoking bob's key: %d", resp.StatusCode)
	}
	if bk, _ := e.st.GetKeyByHash(ctx, bobKey.Hash); bk.Revoked {
		t.Fatal("bob's key revoked")
	}
	// Two items at once are refused.
	resp = b.post(e.url+"/account/revoke", url.Values{"csrf": {csrf}, "key": {k.ID}, "family": {"f"}})
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("two items: %d", resp.StatusCode)
	}
	// Revoke Alice's key.
	resp = b.submit(findForm(t, forms, "/account/revoke", "key", k.ID), nil)
	body = readBodyString(resp)
	if !strings.Contains(body, "The key was revoked") || strings.Contains(body, k.ID) {
		t.Fatalf("after revoke: %s", body)
	}
	if k, _ := e.st.GetKeyByHash(ctx, token.Hash(key)); !k.Revoked {
		t.Fatal("key not revoked")
	}

	// The cap on keys per user.
	for i := range maxAccountKeys {
		resp := b.submit(create, url.Values{"name": {"k"}, "expires": {"0"}})
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("key %d: %d", i, resp.StatusCode)
		}
		readBodyString(resp)
	}
	if resp := b.submit(create, url.Values{"name": {"k"}, "expires": {"0"}}); resp.StatusCode != http.StatusConflict {
		t.Fatalf("key over the cap: %d", resp.StatusCode)
	}
	body, _ = b.account()
	if strings.Contains(body, `action="/account/keys"`) {
		t.Fatal("create form shown at the cap")
	}
}

// The pending request of an account login is not a consent request.
func TestAccountRequestIsNotConsentable(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	resp := b.get(e.url + "/account/login")
	if resp.Request.URL.Path != "/login" {
		t.Fatalf("went to %s", resp.Request.URL)
	}
	readBodyString(resp)
	id := resp.Request.URL.Query().Get("request")
	resp = b.get(e.url + "/consent?request=" + url.QueryEscape(id))
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("consent for an account request: %d %s", resp.StatusCode, readBodyString(resp))
	}
	readBodyString(resp)
	p, err := e.st.GetAuthRequest(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	resp = b.post(e.url+"/consent", url.Values{"request": {id}, "csrf": {p.CSRF}, "decision": {"approve"}})
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("consent post for an account request: %d", resp.StatusCode)
	}
}
