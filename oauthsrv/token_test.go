package oauthsrv

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/mcpgateway/mcp-gateway/config"
	"github.com/mcpgateway/mcp-gateway/token"
)

func TestTokenRequestErrors(t *testing.T) {
	e := newEnv(t)
	clientID := e.register("token errors")
	cases := []struct {
		name   string
		ctype  string
		body   string
		status int
		code   string
	}{
		{"json body", "application/json", `{"grant_type":"authorization_code"}`, 400, "invalid_request"},
		{"no content type", "", "grant_type=authorization_code", 400, "invalid_request"},
		{"multipart", "multipart/form-data; boundary=x", "--x--", 400, "invalid_request"},
		{"malformed form", "application/x-www-form-urlencoded", "grant_type=%zz", 400, "invalid_request"},
		{"oversized", "application/x-www-form-urlencoded", "grant_type=authorization_code&pad=" + strings.Repeat("p", 65<<10), 413, "invalid_request"},
		{"duplicate parameter", "application/x-www-form-urlencoded", "grant_type=authorization_code&grant_type=refresh_token&client_id=" + clientID, 400, "invalid_request"},
		{"duplicate code", "application/x-www-form-urlencoded", "grant_type=authorization_code&code=a&code=b&client_id=" + clientID, 400, "invalid_request"},
		{"missing grant_type", "application/x-www-form-urlencoded", "client_id=" + clientID, 400, "invalid_request"},
		{"password grant", "application/x-www-form-urlencoded", "grant_type=password&client_id=" + clientID, 400, "unsupported_grant_type"},
		{"client_credentials", "application/x-www-form-urlencoded", "grant_type=client_credentials&client_id=" + clientID, 400, "unsupported_grant_type"},
		{"missing client_id", "application/x-www-form-urlencoded", "grant_type=authorization_code&code=x", 400, "invalid_request"},
		{"unknown client_id", "application/x-www-form-urlencoded", "grant_type=authorization_code&code=x&client_id=ghost", 401, "invalid_client"},
		{"missing code", "application/x-www-form-urlencoded", "grant_type=authorization_code&client_id=" + clientID + "&redirect_uri=" + url.QueryEscape(loopbackRedirect) + "&code_verifier=" + strings.Repeat("v", 43), 400, "invalid_request"},
		{"missing refresh_token", "application/x-www-form-urlencoded", "grant_type=refresh_token&client_id=" + clientID, 400, "invalid_request"},
		{"unknown refresh_token", "application/x-www-form-urlencoded", "grant_type=refresh_token&refresh_token=nope&client_id=" + clientID, 400, "invalid_grant"},
		{"unknown code", "application/x-www-form-urlencoded", "grant_type=authorization_code&code=nope&client_id=" + clientID + "&redirect_uri=" + url.QueryEscape(loopbackRedirect) + "&code_verifier=" + strings.Repeat("v", 43), 400, "invalid_grant"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, e.url+"/oauth/token", strings.NewReader(tc.body))
			if tc.ctype != "" {
				req.Header.Set("Content-Type", tc.ctype)
			}
			expectOAuthError(t, e.do(req), tc.status, tc.code)
		})
	}
	req, _ := http.NewRequest(http.MethodGet, e.url+"/oauth/token?grant_type=authorization_code", nil)
	resp := e.do(req)
	if resp.StatusCode != http.StatusMethodNotAllowed || !strings.Contains(resp.Header.Get("Allow"), "POST") {
		t.Fatalf("GET token: %d Allow=%q", resp.StatusCode, resp.Header.Get("Allow"))
	}
	readJSON(t, resp)
}

// TestCodeExchangeErrors: each bad exchange of a real code. Nothing is
// issued, and the code is left to its client: the right redemption then
// succeeds (whoever holds a code without its binding cannot burn it).
func TestCodeExchangeErrors(t *testing.T) {
	e := newEnv(t)
	clientID := e.register("exchange errors")
	otherID := e.register("other client")
	resource := e.url + "/demo/mcp"
	b, _, _ := e.fullLogin(clientID, "alice", resource) // session + consent: later codes come in one request
	cases := []struct {
		name string
		mod  func(v url.Values)
		code string
	}{
		{"wrong verifier", func(v url.Values) { v.Set("code_verifier", strings.Repeat("w", 43)) }, "invalid_grant"},
		{"short verifier", func(v url.Values) { v.Set("code_verifier", strings.Repeat("w", 42)) }, "invalid_request"},
		{"long verifier", func(v url.Values) { v.Set("code_verifier", strings.Repeat("w", 129)) }, "invalid_request"},
		{"verifier bad chars", func(v url.Values) { v.Set("code_verifier", strings.Repeat("w", 42)+"+") }, "invalid_request"},
		{"missing verifier", func(v url.Values) { v.Del("code_verifier") }, "invalid_request"},
		{"challenge as verifier", nil, "invalid_grant"}, // set below
		{"missing redirect_uri", func(v url.Values) { v.Del("redirect_uri") }, "invalid_request"},
		{"other redirect_uri", func(v url.Values) { v.Set("redirect_uri", "http://127.0.0.1:10/callback") }, "invalid_grant"},
		{"redirect_uri trailing slash", func(v url.Values) { v.Set("redirect_uri", loopbackRedirect+"/") }, "invalid_grant"},
		{"other client", func(v url.Values) { v.Set("client_id", otherID) }, "invalid_grant"},
		{"other resource", func(v url.Values) { v.Set("resource", e.url) }, "invalid_target"},
		{"foreign resource", func(v url.Values) { v.Set("resource", "https://evil.example/demo/mcp") }, "invalid_target"},
		{"empty resource", func(v url.Values) { v.Set("resource", "") }, "invalid_target"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, verifier := b.authorizeCode(clientID, "alice", resource)
			v := url.Values{"grant_type": {"authorization_code"}, "client_id": {clientID}, "code": {code},
				"redirect_uri": {loopbackRedirect}, "code_verifier": {verifier}}
			if tc.mod != nil {
				tc.mod(v)
			} else {
				_, ch := pkce()
				v.Set("code_verifier", ch+"x") // 44 chars, valid syntax, wrong value
			}
			resp := e.postForm("/oauth/token", v)
			status := http.StatusBadRequest
			expectOAuthError(t, resp, status, tc.code)
			e.tokens(clientID, code, verifier)
		})
	}
	// The resource may be sent when it equals the bound one, case-insensitively on the host.
	code, verifier := b.authorizeCode(clientID, "alice", resource)
	resp := e.postForm("/oauth/token", url.Values{"grant_type": {"authorization_code"}, "client_id": {clientID}, "code": {code},
		"redirect_uri": {loopbackRedirect}, "code_verifier": {verifier}, "resource": {strings.ToUpper(e.url[:4]) + e.url[4:] + "/demo/mcp"}})
	if m := readJSON(t, resp); resp.StatusCode != http.StatusOK {
		t.Fatalf("exchange with matching resource: %d %v", resp.StatusCode, m)
	}
}

// TestCodeReplayRevokesFamily: a second redemption fails and revokes what
// the first issued (refresh family and its access token).
func TestCodeReplayRevokesFamily(t *testing.T) {
	e := newEnv(t)
	clientID := e.register("replay")
	_, code, verifier := e.fullLogin(clientID, "alice", "")
	tok := e.tokens(clientID, code, verifier)
	c := e.verify(tok["access_token"].(string))

	expectOAuthError(t, e.exchange(clientID, code, verifier), http.StatusBadRequest, "invalid_grant")
	if !e.revoked(c.ID) {
		t.Fatal("code replay did not revoke the access token issued by the first redemption")
	}
	expectOAuthError(t, e.refresh(clientID, tok["refresh_token"].(string), nil), http.StatusBadRequest, "invalid_grant")
	if len(e.auditEvents("code_replay")) != 1 {
		t.Fatalf("no code_replay audit line: %s", e.logs.String())
	}
}

// TestConcurrentCodeRedemption: many redemptions of one code, one winner.
func TestConcurrentCodeRedemption(t *testing.T) {
	e := newEnv(t)
	clientID := e.register("race")
	_, code, verifier := e.fullLogin(clientID, "alice", "")
	const n = 16
	var wg sync.WaitGroup
	statuses := make(chan int, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := plain.PostForm(e.url+"/oauth/token", url.Values{"grant_type": {"authorization_code"}, "client_id": {clientID},
				"code": {code}, "redirect_uri": {loopbackRedirect}, "code_verifier": {verifier}})
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			statuses <- resp.StatusCode
		}()
	}
	wg.Wait()
	close(statuses)
	ok := 0
	for s := range statuses {
		switch s {
		case http.StatusOK:
			ok++
		case http.StatusBadRequest:
		default:
			t.Errorf("unexpected status %d", s)
		}
	}
	if ok != 1 {
		t.Fatalf("%d redemptions succeeded, want exactly 1", ok)
	}
}

func TestRefresh(t *testing.T) {
	e := newEnv(t, func(c *config.Config, _ *Options) {
		c.Scopes = config.NamedScopes("mcp", "tools")
		c.TTL.RefreshGrace = config.Duration(5 * time.Second)
	})
	clientID := e.register("refresh")
	otherID := e.register("thief")
	b := e.browser()
	verifier, challenge := pkce()
	resp := b.get(e.authorizeURL(authzParams{clientID: clientID, redirect: loopbackRedirect, challenge: challenge, scope: "tools mcp", resource: e.url + "/demo/mcp"}))
	q := callback(t, b.consent(b.login(resp, "alice"), "approve"), loopbackRedirect)
	tok := e.tokens(clientID, q.Get("code"), verifier)
	if tok["scope"] != "mcp tools" {
		t.Fatalf("scope %v", tok["scope"])
	}
	rt := tok["refresh_token"].(string)

	t.Run("other client cannot use or burn it", func(t *testing.T) {
		expectOAuthError(t, e.refresh(otherID, rt, nil), http.StatusBadRequest, "invalid_grant")
	})
	t.Run("wider scope", func(t *testing.T) {
		expectOAuthError(t, e.refresh(clientID, rt, url.Values{"scope": {"mcp admin"}}), http.StatusBadRequest, "invalid_scope")
	})
	t.Run("other resource", func(t *testing.T) {
		expectOAuthError(t, e.refresh(clientID, rt, url.Values{"resource": {e.url}}), http.StatusBadRequest, "invalid_target")
	})
	t.Run("bad resource", func(t *testing.T) {
		expectOAuthError(t, e.refresh(clientID, rt, url.Values{"resource": {"https://evil.example/demo/mcp"}}), http.StatusBadRequest, "invalid_target")
	})

	// Narrow the scope, naming the bound resource.
	resp = e.refresh(clientID, rt, url.Values{"scope": {"mcp"}, "resource": {e.url + "/demo/mcp"}})
	tok2 := readJSON(t, resp)
	if resp.StatusCode != http.StatusOK || tok2["scope"] != "mcp" {
		t.Fatalf("narrowing refresh: %d %v", resp.StatusCode, tok2)
	}
	if c := e.verify(tok2["access_token"].(string)); c.Scope != "mcp" || c.Audience[0] != e.url+"/demo/mcp" {
		t.Fatalf("narrowed claims %+v", c)
	}
	rt2 := tok2["refresh_token"].(string)

	// Reuse within the grace period: refused, family intact.
	expectOAuthError(t, e.refresh(clientID, rt, nil), http.StatusBadRequest, "invalid_grant")
	// The family keeps the granted scope: the next refresh may ask for all of it.
	resp = e.refresh(clientID, rt2, url.Values{"scope": {"mcp tools"}})
	tok3 := readJSON(t, resp)
	if resp.StatusCode != http.StatusOK || tok3["scope"] != "mcp tools" {
		t.Fatalf("refresh after race: %d %v", resp.StatusCode, tok3)
	}
	jti3 := e.verify(tok3["access_token"].(string)).ID

	// Reuse after the grace period: the family and its newest access token are revoked.
	e.clock.Advance(6 * time.Second)
	expectOAuthError(t, e.refresh(clientID, rt2, nil), http.StatusBadRequest, "invalid_grant")
	if !e.revoked(jti3) {
		t.Fatal("refresh reuse did not revoke the family's access token")
	}
	expectOAuthError(t, e.refresh(clientID, tok3["refresh_token"].(string), nil), http.StatusBadRequest, "invalid_grant")
	if len(e.auditEvents("refresh_reuse")) != 1 {
		t.Fatalf("no refresh_reuse audit line: %s", e.logs.String())
	}
}

// TestConcurrentRefresh: one refresh token, many parallel refreshes: one
// rotation wins, the family survives (grace), the winner's token works.
func TestConcurrentRefresh(t *testing.T) {
	e := newEnv(t)
	clientID := e.register("concurrent refresh")
	_, code, verifier := e.fullLogin(clientID, "alice", "")
	rt := e.tokens(clientID, code, verifier)["refresh_token"].(string)
	const n = 16
	var wg sync.WaitGroup
	var mu sync.Mutex
	var winners []string
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := plain.PostForm(e.url+"/oauth/token", url.Values{"grant_type": {"refresh_token"}, "client_id": {clientID}, "refresh_token": {rt}})
			if err != nil {
				t.Error(err)
				return
			}
			m := readJSON(t, resp)
			if resp.StatusCode == http.StatusOK {
				mu.Lock()
				winners = append(winners, m["refresh_token"].(string))
				mu.Unlock()
			} else if m["error"] != "invalid_grant" {
				t.Errorf("loser got %d %v", resp.StatusCode, m)
			}
		}()
	}
	wg.Wait()
	if len(winners) != 1 {
		t.Fatalf("%d refreshes succeeded, want 1", len(winners))
	}
	if resp := e.refresh(clientID, winners[0], nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("winner's refresh token: %d %s", resp.StatusCode, readBodyString(resp))
	}
}

// TestClientWithoutRefreshGrant gets no refresh token.
func TestClientWithoutRefreshGrant(t *testing.T) {
	e := newEnv(t)
	resp := e.postJSON("/oauth/register", `{"redirect_uris":["`+loopbackRedirect+`"],"grant_types":["authorization_code"]}`)
	clientID := readJSON(t, resp)["client_id"].(string)
	_, code, verifier := e.fullLogin(clientID, "alice", "")
	tok := e.tokens(clientID, code, verifier)
	if _, has := tok["refresh_token"]; has {
		t.Fatalf("refresh token issued to a client without the grant: %v", tok)
	}
	expectOAuthError(t, e.refresh(clientID, "whatever", nil), http.StatusBadRequest, "unauthorized_client")
}

func TestRevokeErrors(t *testing.T) {
	e := newEnv(t)
	clientID := e.register("revoker")
	otherID := e.register("other")
	_, code, verifier := e.fullLogin(clientID, "alice", "")
	tok := e.tokens(clientID, code, verifier)

	req, _ := http.NewRequest(http.MethodGet, e.url+"/oauth/revoke", nil)
	resp := e.do(req)
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET revoke: %d", resp.StatusCode)
	}
	readJSON(t, resp)
	expectOAuthError(t, e.postForm("/oauth/revoke", url.Values{}), http.StatusBadRequest, "invalid_request")
	expectOAuthError(t, e.postForm("/oauth/revoke", url.Values{"token": {"a", "b"}}), http.StatusBadRequest, "invalid_request")
	expectOAuthError(t, e.postJSON("/oauth/revoke", `{"token":"x"}`), http.StatusBadRequest, "invalid_request")
	// Another client may not revoke this client's tokens.
	expectOAuthError(t, e.postForm("/oauth/revoke", url.Values{"token": {tok["refresh_token"].(string)}, "client_id": {otherID}}), http.StatusBadRequest, "unauthorized_client")
	expectOAuthError(t, e.postForm("/oauth/revoke", url.Values{"token": {tok["access_token"].(string)}, "client_id": {otherID}}), http.StatusBadRequest, "unauthorized_client")
	if resp := e.refresh(clientID, tok["refresh_token"].(string), nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("refused revocation still revoked: %d", resp.StatusCode)
	}
	// A JWT signed by someone else, and an expired one of ours: 200, nothing stored.
	foreign, _ := token.NewRing(e.url, []token.Key{{ID: "k1", Secret: []byte(strings.Repeat("z", 32))}})
	forged, _ := foreign.Mint(&token.Claims{RegisteredClaims: claimsAt("alice", "forged", time.Now().Add(time.Hour))})
	expired, _ := e.ring.Mint(&token.Claims{RegisteredClaims: claimsAt("alice", "old", time.Now().Add(-time.Hour))})
	for _, tk := range []string{forged, expired} {
		if resp := e.postForm("/oauth/revoke", url.Values{"token": {tk}}); resp.StatusCode != http.StatusOK {
			t.Fatalf("revoke foreign/expired: %d", resp.StatusCode)
		}
	}
	list, err := e.st.RevokedJTIs(context.Background())
	if err != nil || len(list) != 0 {
		t.Fatalf("denylist %v %v", list, err)
	}
}

func claimsAt(sub, jti string, exp time.Time) jwt.RegisteredClaims {
	return jwt.RegisteredClaims{Subject: sub, ID: jti, ExpiresAt: jwt.NewNumericDate(exp), IssuedAt: jwt.NewNumericDate(exp.Add(-time.Hour))}
}
