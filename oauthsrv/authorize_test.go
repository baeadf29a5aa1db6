package oauthsrv

import (
	"html"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/mcpgateway/mcp-gateway/config"
	"github.com/mcpgateway/mcp-gateway/store"
)

// authorizeQuery builds a valid authorization query and lets a case change it.
func authorizeQuery(clientID string, mod func(url.Values)) string {
	_, challenge := pkce()
	v := url.Values{
		"response_type": {"code"}, "client_id": {clientID}, "redirect_uri": {loopbackRedirect},
		"code_challenge": {challenge}, "code_challenge_method": {"S256"}, "state": {"st-1"},
	}
	if mod != nil {
		mod(v)
	}
	return v.Encode()
}

// TestAuthorizeNoRedirectErrors: until client and redirect URI are
// trusted, errors are an HTML page and never a redirect.
func TestAuthorizeNoRedirectErrors(t *testing.T) {
	e := newEnv(t)
	clientID := e.register("pages", loopbackRedirect, "https://app.example.com/cb")
	cases := []struct {
		name  string
		query string
	}{
		{"missing client_id", authorizeQuery(clientID, func(v url.Values) { v.Del("client_id") })},
		{"unknown client_id", authorizeQuery("nope", nil)},
		{"repeated client_id", authorizeQuery(clientID, func(v url.Values) { v.Add("client_id", clientID) })},
		{"repeated redirect_uri", authorizeQuery(clientID, func(v url.Values) { v.Add("redirect_uri", loopbackRedirect) })},
		{"missing redirect_uri", authorizeQuery(clientID, func(v url.Values) { v.Del("redirect_uri") })},
		{"unregistered redirect_uri", authorizeQuery(clientID, func(v url.Values) { v.Set("redirect_uri", "https://evil.example/cb") })},
		{"https redirect other port", authorizeQuery(clientID, func(v url.Values) { v.Set("redirect_uri", "https://app.example.com:444/cb") })},
		{"https redirect other path", authorizeQuery(clientID, func(v url.Values) { v.Set("redirect_uri", "https://app.example.com/cb/x") })},
		{"loopback other path", authorizeQuery(clientID, func(v url.Values) { v.Set("redirect_uri", "http://127.0.0.1:9/other") })},
		{"loopback dot-dot path", authorizeQuery(clientID, func(v url.Values) { v.Set("redirect_uri", "http://127.0.0.1:9/callback/../x") })},
		{"loopback other host", authorizeQuery(clientID, func(v url.Values) { v.Set("redirect_uri", "http://localhost:9/callback") })},
		{"loopback userinfo", authorizeQuery(clientID, func(v url.Values) { v.Set("redirect_uri", "http://127.0.0.1:9@evil.example/callback") })},
		{"loopback https swap", authorizeQuery(clientID, func(v url.Values) { v.Set("redirect_uri", "https://127.0.0.1:9/callback") })},
		{"loopback extra query", authorizeQuery(clientID, func(v url.Values) { v.Set("redirect_uri", "http://127.0.0.1:9/callback?x=1") })},
		{"loopback fragment", authorizeQuery(clientID, func(v url.Values) { v.Set("redirect_uri", "http://127.0.0.1:9/callback#f") })},
		{"malformed query", "client_id=%zz&redirect_uri=x"},
		{"oversized query", authorizeQuery(clientID, func(v url.Values) { v.Set("junk", strings.Repeat("a", 9000)) })},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := e.get("/oauth/authorize?" + tc.query)
			body := readBodyString(resp)
			if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
				t.Fatalf("got %d Location=%q, want 400 without redirect", resp.StatusCode, resp.Header.Get("Location"))
			}
			if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || !strings.Contains(body, "<h1>") ||
				resp.Header.Get("X-Frame-Options") != "DENY" {
				t.Fatalf("not an HTML error page: %v %s", resp.Header, body)
			}
		})
	}
}

// approvedHTTPS registers a client with an https redirect URI and has user
// approve it in a fresh browser: that browser now trusts the redirect URI.
func (e *env) approvedHTTPS(user string) (b *browser, clientID, redirect string) {
	e.t.Helper()
	redirect = "https://app.example.com/cb"
	clientID = e.register("approved", redirect)
	b = e.browser()
	code, verifier := b.authorizeCodeAt(clientID, redirect, user, e.url+"/demo/mcp")
	e.tokensAt(clientID, redirect, code, verifier)
	return b, clientID, redirect
}

// expectBackPage checks an authorization error shown as a page (no
// redirect) whose link back carries error code, state and iss.
func expectBackPage(t *testing.T, resp *http.Response, status int, redirect, code, state, iss string) {
	t.Helper()
	body := readBodyString(resp)
	if resp.StatusCode != status || resp.Header.Get("Location") != "" || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("got %d Location=%q, want a %d page: %s", resp.StatusCode, resp.Header.Get("Location"), status, body)
	}
	resp.Body = io.NopCloser(strings.NewReader(body))
	back := backLink(t, body)
	want, _ := url.Parse(redirect)
	q := back.Query()
	if back.Scheme != want.Scheme || back.Host != want.Host || back.Path != want.Path ||
		q.Get("error") != code || q.Get("state") != state || q.Get("iss") != iss || q.Get("code") != "" {
		t.Fatalf("link back %s, want %s with error=%s state=%q iss=%s", back, redirect, code, state, iss)
	}
}

// backLink returns the href of the page's link back to the application.
func backLink(t testing.TB, body string) *url.URL {
	t.Helper()
	_, rest, ok := strings.Cut(body, `<a id="back" href="`)
	if !ok {
		t.Fatalf("page without a link back: %s", body)
	}
	raw, _, _ := strings.Cut(rest, `"`)
	u, err := url.Parse(html.UnescapeString(raw))
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestAuthorizeRedirectErrors: errors of a well-formed request for a known
// client and redirect URI go back to the client (error, state, iss) only
// once the user has approved that client at that https redirect URI; until
// then (a fresh browser, any loopback redirect) they are a page whose link
// back carries the same error (RFC 9700 §4.11.2).
func TestAuthorizeRedirectErrors(t *testing.T) {
	e := newEnv(t)
	clientID := e.register("redirects")
	trusted, httpsClient, httpsRedirect := e.approvedHTTPS("alice")
	cases := []struct {
		name      string
		mod       func(url.Values)
		code      string
		wantState string
	}{
		{"missing response_type", func(v url.Values) { v.Del("response_type") }, "invalid_request", "st-1"},
		{"response_type token", func(v url.Values) { v.Set("response_type", "token") }, "unsupported_response_type", "st-1"},
		{"missing code_challenge", func(v url.Values) { v.Del("code_challenge") }, "invalid_request", "st-1"},
		{"plain method", func(v url.Values) { v.Set("code_challenge_method", "plain") }, "invalid_request", "st-1"},
		{"missing method", func(v url.Values) { v.Del("code_challenge_method") }, "invalid_request", "st-1"},
		{"unknown method", func(v url.Values) { v.Set("code_challenge_method", "S512") }, "invalid_request", "st-1"},
		{"short challenge", func(v url.Values) { v.Set("code_challenge", "abc") }, "invalid_request", "st-1"},
		{"long challenge", func(v url.Values) { v.Set("code_challenge", strings.Repeat("a", 44)) }, "invalid_request", "st-1"},
		{"challenge bad chars", func(v url.Values) { v.Set("code_challenge", strings.Repeat("a", 42)+"=") }, "invalid_request", "st-1"},
		{"no grantable scope", func(v url.Values) { v.Set("scope", "admin other") }, "invalid_scope", "st-1"},
		{"resource other host", func(v url.Values) { v.Set("resource", "https://evil.example/demo/mcp") }, "invalid_target", "st-1"},
		{"resource other scheme", func(v url.Values) { v.Set("resource", strings.Replace(e.url, "http:", "https:", 1)+"/demo/mcp") }, "invalid_target", "st-1"},
		{"resource unknown agent", func(v url.Values) { v.Set("resource", e.url+"/ghost/mcp") }, "invalid_target", "st-1"},
		{"resource no /mcp", func(v url.Values) { v.Set("resource", e.url+"/demo") }, "invalid_target", "st-1"},
		{"resource trailing junk", func(v url.Values) { v.Set("resource", e.url+"/demo/mcp/x") }, "invalid_target", "st-1"},
		{"resource path case", func(v url.Values) { v.Set("resource", e.url+"/demo/MCP") }, "invalid_target", "st-1"},
		{"resource dot-dot", func(v url.Values) { v.Set("resource", e.url+"/x/../demo/mcp") }, "invalid_target", "st-1"},
		{"resource encoded slash", func(v url.Values) { v.Set("resource", e.url+"/de%2Fmo/mcp") }, "invalid_target", "st-1"},
		{"resource double slash", func(v url.Values) { v.Set("resource", e.url+"//demo/mcp") }, "invalid_target", "st-1"},
		{"resource query", func(v url.Values) { v.Set("resource", e.url+"/demo/mcp?x=1") }, "invalid_target", "st-1"},
		{"resource fragment", func(v url.Values) { v.Set("resource", e.url+"/demo/mcp#f") }, "invalid_target", "st-1"},
		{"resource relative", func(v url.Values) { v.Set("resource", "/demo/mcp") }, "invalid_target", "st-1"},
		{"repeated resource", func(v url.Values) { v["resource"] = []string{e.url, e.url + "/demo/mcp"} }, "invalid_request", "st-1"},
		{"repeated scope", func(v url.Values) { v["scope"] = []string{"mcp", "mcp"} }, "invalid_request", "st-1"},
		{"state too long", func(v url.Values) { v.Set("state", strings.Repeat("s", 1025)) }, "invalid_request", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Loopback: never trusted, even in the approving browser.
			expectBackPage(t, trusted.get(e.url+"/oauth/authorize?"+authorizeQuery(clientID, tc.mod)), 400, loopbackRedirect, tc.code, tc.wantState, e.url)
			// https, approved, but another browser: a page.
			httpsQuery := func() string {
				return authorizeQuery(httpsClient, func(v url.Values) { v.Set("redirect_uri", httpsRedirect); tc.mod(v) })
			}
			expectBackPage(t, e.get("/oauth/authorize?"+httpsQuery()), 400, httpsRedirect, tc.code, tc.wantState, e.url)
			// https, approved in this browser: back to the client.
			q := callback(t, trusted.get(e.url+"/oauth/authorize?"+httpsQuery()), httpsRedirect)
			if q.Get("error") != tc.code || q.Get("state") != tc.wantState || q.Get("iss") != e.url || q.Get("code") != "" {
				t.Fatalf("callback %v, want error=%s state=%q iss=%s", q, tc.code, tc.wantState, e.url)
			}
		})
	}
}

// TestAuthorizeAccepts: the variants that must reach login.
func TestAuthorizeAccepts(t *testing.T) {
	e := newEnv(t)
	clientID := e.register("accepts", loopbackRedirect, "http://localhost/cb", "http://[::1]:7/cb", "cursor://anysphere.cursor/cb")
	upper := strings.ToUpper(strings.TrimPrefix(e.url, "http://"))
	cases := []struct {
		name string
		mod  func(url.Values)
	}{
		{"loopback any port", func(v url.Values) { v.Set("redirect_uri", "http://127.0.0.1:53682/callback") }},
		{"loopback no port", func(v url.Values) { v.Set("redirect_uri", "http://127.0.0.1/callback") }},
		{"localhost any port", func(v url.Values) { v.Set("redirect_uri", "http://localhost:8123/cb") }},
		{"ipv6 loopback any port", func(v url.Values) { v.Set("redirect_uri", "http://[::1]:49152/cb") }},
		{"private scheme exact", func(v url.Values) { v.Set("redirect_uri", "cursor://anysphere.cursor/cb") }},
		{"resource case-insensitive scheme and host", func(v url.Values) { v.Set("resource", "HTTP://"+upper+"/demo/mcp") }},
		{"resource base with slash", func(v url.Values) { v.Set("resource", e.url+"/") }},
		{"resource base", func(v url.Values) { v.Set("resource", e.url) }},
		{"scope repeated inside", func(v url.Values) { v.Set("scope", "mcp mcp") }},
		{"unknown parameter ignored", func(v url.Values) { v.Set("prompt", "consent") }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := e.get("/oauth/authorize?" + authorizeQuery(clientID, tc.mod))
			loc := resp.Header.Get("Location")
			resp.Body.Close()
			if resp.StatusCode != http.StatusFound || !strings.HasPrefix(loc, e.url+"/login?request=") {
				t.Fatalf("got %d Location=%q, want the login page", resp.StatusCode, loc)
			}
		})
	}
}

func TestAuthorizeMethodAndRateLimit(t *testing.T) {
	e := newEnv(t, func(c *config.Config, _ *Options) { c.RateLimit.Authorize = 2 })
	clientID := e.register("limited")
	req, _ := http.NewRequest(http.MethodPost, e.url+"/oauth/authorize", nil)
	resp := e.do(req)
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") == "" {
		t.Fatalf("POST authorize: %d Allow=%q", resp.StatusCode, resp.Header.Get("Allow"))
	}
	resp.Body.Close()
	for i := 0; i < 2; i++ {
		if resp := e.get("/oauth/authorize?" + authorizeQuery(clientID, nil)); resp.StatusCode != http.StatusFound {
			t.Fatalf("request %d: %d", i, resp.StatusCode)
		}
	}
	resp = e.get("/oauth/authorize?" + authorizeQuery(clientID, nil))
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("third request: %d Retry-After=%q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}

// TestAgentAccessDenied: a user not allowed on the agent is sent back
// with access_denied after login, before any consent.
func TestAgentAccessDenied(t *testing.T) {
	e := newEnv(t)
	clientID := e.register("denied")
	b := e.browser()
	_, challenge := pkce()
	resp := b.get(e.authorizeURL(authzParams{clientID: clientID, redirect: loopbackRedirect, challenge: challenge, state: "s9", resource: e.url + "/private/mcp"}))
	resp = b.login(resp, "alice")
	// Not approved yet: a page, not a redirect (RFC 9700 §4.11.2).
	expectBackPage(t, resp, http.StatusForbidden, loopbackRedirect, "access_denied", "s9", e.url)
	if len(e.auditEvents("access_denied")) != 1 {
		t.Fatalf("no access_denied audit line: %s", e.logs.String())
	}
	// Once alice approved the client at its https redirect URI (for another
	// agent), the same refusal goes back to it.
	trusted, httpsClient, httpsRedirect := e.approvedHTTPS("alice")
	resp = trusted.get(e.authorizeURL(authzParams{clientID: httpsClient, redirect: httpsRedirect, challenge: challenge, state: "s10", resource: e.url + "/private/mcp"}))
	q := callback(t, resp, httpsRedirect)
	if q.Get("error") != "access_denied" || q.Get("state") != "s10" || q.Get("iss") != e.url {
		t.Fatalf("callback %v", q)
	}
	// A user the agent grants access to (not the owner) gets through.
	_, code, verifier := e.fullLogin(clientID, "bob", e.url+"/demo/mcp")
	e.tokens(clientID, code, verifier)
}

// TestStoreUnavailable: backend failures are 503 temporarily_unavailable
// (JSON on the OAuth endpoints, HTML on pages), never 500.
func TestStoreUnavailable(t *testing.T) {
	var fs *flakyStore
	e := newEnv(t, func(_ *config.Config, o *Options) {
		fs = &flakyStore{Store: o.Store.(store.Store)}
		o.Store = fs
		o.Agents = fs
	})
	clientID := e.register("flaky")
	fs.down.Store(true)
	expectOAuthError(t, e.postJSON("/oauth/register", `{"redirect_uris":["https://a.example/cb"]}`), http.StatusServiceUnavailable, "temporarily_unavailable")
	expectOAuthError(t, e.exchange(clientID, "code", strings.Repeat("v", 43)), http.StatusServiceUnavailable, "temporarily_unavailable")
	expectOAuthError(t, e.get("/.well-known/oauth-protected-resource/demo/mcp"), http.StatusServiceUnavailable, "temporarily_unavailable")
	expectOAuthError(t, e.postForm("/oauth/revoke", url.Values{"token": {"opaque"}}), http.StatusServiceUnavailable, "temporarily_unavailable")
	resp := e.get("/oauth/authorize?" + authorizeQuery(clientID, nil))
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("authorize with store down: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	resp.Body.Close()
	resp = e.get("/login?request=whatever")
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("login with store down: %d", resp.StatusCode)
	}
	resp.Body.Close()
	// Back up: everything works again.
	fs.down.Store(false)
	_, code, verifier := e.fullLogin(clientID, "alice", "")
	e.tokens(clientID, code, verifier)
}
