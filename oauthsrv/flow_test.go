package oauthsrv

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/mcpgateway/mcp-gateway/config"
	"github.com/mcpgateway/mcp-gateway/internal/metrics"
	"github.com/mcpgateway/mcp-gateway/store"
)

// TestFullFlow walks what an MCP client does: discovery, registration, the
// browser through the real login and consent forms, code exchange with
// PKCE, refresh, revocation — and a second authorization that skips login
// and consent.
func TestFullFlow(t *testing.T) {
	e := newEnv(t)
	resource := e.url + "/demo/mcp"
	issuedBefore := counterValue(metrics.TokensIssued.WithLabelValues("authorization_code"))

	// Discovery: PRM of the MCP endpoint → authorization server → metadata.
	prm := readJSON(t, e.get("/.well-known/oauth-protected-resource/demo/mcp"))
	if prm["resource"] != resource {
		t.Fatalf("PRM resource = %v, want %s", prm["resource"], resource)
	}
	as := prm["authorization_servers"].([]any)[0].(string)
	if as != e.url {
		t.Fatalf("authorization_servers[0] = %s", as)
	}
	meta := readJSON(t, e.get(strings.TrimPrefix(as, e.url)+"/.well-known/oauth-authorization-server"))
	if meta["issuer"] != as {
		t.Fatalf("issuer %v differs from PRM authorization server %s", meta["issuer"], as)
	}

	// Registration.
	resp := e.postJSON(strings.TrimPrefix(meta["registration_endpoint"].(string), e.url),
		`{"client_name":"Flow Test Client","redirect_uris":["`+loopbackRedirect+`"]}`)
	reg := readJSON(t, resp)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("register: %d %v", resp.StatusCode, reg)
	}
	clientID := reg["client_id"].(string)

	// Authorize: the browser lands on the login page.
	b := e.browser()
	verifier, challenge := pkce()
	resp = b.get(e.authorizeURL(authzParams{clientID: clientID, redirect: loopbackRedirect, challenge: challenge, state: "xyz-state", resource: resource}))
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/login" {
		t.Fatalf("authorize did not lead to login: %d %s", resp.StatusCode, resp.Request.URL)
	}
	for k, want := range map[string]string{
		"X-Frame-Options": "DENY",
		"Cache-Control":   "no-store",
	} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("login page %s = %q, want %q", k, got, want)
		}
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") || !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("login page CSP = %q", csp)
	}
	resp = b.login(resp, "alice")

	// Consent page shows who asks for what.
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/consent" {
		t.Fatalf("login did not lead to consent: %d %s: %s", resp.StatusCode, resp.Request.URL, readBodyString(resp))
	}
	body := readBodyString(resp)
	for _, want := range []string{"Flow Test Client", "127.0.0.1:9", resource, "mcp", `name="decision"`, `value="approve"`, `value="deny"`} {
		if !strings.Contains(body, want) {
			t.Errorf("consent page lacks %q", want)
		}
	}
	resp.Body = http.NoBody
	f := parseFormFromString(t, resp, body)
	resp = b.submit(f, url.Values{"decision": {"approve"}})
	q := callback(t, resp, loopbackRedirect)
	if q.Get("state") != "xyz-state" || q.Get("iss") != e.url || q.Get("code") == "" {
		t.Fatalf("callback %v", q)
	}

	// Exchange.
	resp = e.exchange(clientID, q.Get("code"), verifier)
	if resp.Header.Get("Cache-Control") != "no-store" || resp.Header.Get("Pragma") != "no-cache" {
		t.Errorf("token response caching headers: %v", resp.Header)
	}
	tok := readJSON(t, resp)
	if resp.StatusCode != http.StatusOK || tok["token_type"] != "Bearer" || tok["expires_in"] != float64(3600) ||
		tok["scope"] != "mcp" || tok["refresh_token"] == nil {
		t.Fatalf("token response %d %v", resp.StatusCode, tok)
	}
	c := e.verify(tok["access_token"].(string))
	if c.Subject != "alice" || len(c.Audience) != 1 || c.Audience[0] != resource || c.ClientID != clientID ||
		c.Scope != "mcp" || c.ID == "" || c.Issuer != e.url || c.ExpiresAt.Sub(c.IssuedAt.Time) != e.cfg.TTL.Access.D() {
		t.Fatalf("claims %+v", c)
	}
	if got := counterValue(metrics.TokensIssued.WithLabelValues("authorization_code")); got != issuedBefore+1 {
		t.Errorf("tokens issued metric %v, want %v", got, issuedBefore+1)
	}

	// Refresh without resource or scope: rotated, same binding.
	resp = e.refresh(clientID, tok["refresh_token"].(string), nil)
	tok2 := readJSON(t, resp)
	if resp.StatusCode != http.StatusOK || tok2["refresh_token"] == tok["refresh_token"] || tok2["refresh_token"] == nil {
		t.Fatalf("refresh %d %v", resp.StatusCode, tok2)
	}
	c2 := e.verify(tok2["access_token"].(string))
	if c2.Subject != "alice" || c2.Audience[0] != resource || c2.ID == c.ID || c2.Scope != "mcp" {
		t.Fatalf("refreshed claims %+v", c2)
	}

	// A second authorization in the same browser skips login and consent.
	code, verifier2 := b.authorizeCode(clientID, "", resource)
	tok3 := e.tokens(clientID, code, verifier2)
	if e.verify(tok3["access_token"].(string)).Subject != "alice" {
		t.Fatal("second authorization issued a token for someone else")
	}

	// Revoke the refresh token: the family dies with its access tokens.
	resp = e.postForm("/oauth/revoke", url.Values{"token": {tok2["refresh_token"].(string)}, "token_type_hint": {"refresh_token"}, "client_id": {clientID}})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("revoke refresh: %d %s", resp.StatusCode, readBodyString(resp))
	}
	expectOAuthError(t, e.refresh(clientID, tok2["refresh_token"].(string), nil), http.StatusBadRequest, "invalid_grant")
	if !e.revoked(c2.ID) || c2.Family == "" || !e.revoked(store.RevokedFamilyJTI(c2.Family)) {
		t.Error("revoking the refresh family did not revoke its access tokens")
	}
	// Revoke an access token by itself.
	c3 := e.verify(tok3["access_token"].(string))
	if e.revoked(c3.ID) {
		t.Fatal("unrelated token revoked")
	}
	resp = e.postForm("/oauth/revoke", url.Values{"token": {tok3["access_token"].(string)}})
	if resp.StatusCode != http.StatusOK || !e.revoked(c3.ID) {
		t.Fatalf("revoke access: %d, revoked=%v", resp.StatusCode, e.revoked(c3.ID))
	}
	// Unknown tokens: 200 too.
	for _, tk := range []string{"not-a-token", "a.b.c"} {
		if resp := e.postForm("/oauth/revoke", url.Values{"token": {tk}}); resp.StatusCode != http.StatusOK {
			t.Errorf("revoke %q: %d", tk, resp.StatusCode)
		}
	}

	// No secret ever reaches the logs.
	logs := e.logs.String()
	for _, secret := range []string{q.Get("code"), code, verifier, tok["refresh_token"].(string), tok2["refresh_token"].(string),
		tok["access_token"].(string), passwords["alice"]} {
		if strings.Contains(logs, secret) {
			t.Errorf("a secret appears in the logs")
		}
	}
	if len(e.auditEvents("token_issued")) != 3 || len(e.auditEvents("token_revoked")) != 2 || len(e.auditEvents("login")) != 1 {
		t.Errorf("audit lines: %s", logs)
	}
}

func parseFormFromString(t testing.TB, resp *http.Response, body string) form {
	t.Helper()
	resp.Body = io.NopCloser(strings.NewReader(body))
	return parseForm(t, resp)
}

// TestGatewayWideAudience: no resource → the audience is the base URL.
func TestGatewayWideAudience(t *testing.T) {
	e := newEnv(t)
	clientID := e.register("wide")
	_, code, verifier := e.fullLogin(clientID, "alice", "")
	tok := e.tokens(clientID, code, verifier)
	if c := e.verify(tok["access_token"].(string)); len(c.Audience) != 1 || c.Audience[0] != e.url {
		t.Fatalf("aud = %v, want [%s]", c.Audience, e.url)
	}
}

// TestNoAgentChecks: with Agents nil any well-formed agent resource works.
func TestNoAgentChecks(t *testing.T) {
	e := newEnv(t, func(_ *config.Config, o *Options) { o.Agents = nil })
	clientID := e.register("no agents")
	_, code, verifier := e.fullLogin(clientID, "bob", e.url+"/anything/mcp")
	tok := e.tokens(clientID, code, verifier)
	if c := e.verify(tok["access_token"].(string)); c.Audience[0] != e.url+"/anything/mcp" {
		t.Fatalf("aud = %v", c.Audience)
	}
}

// TestConsentRememberedPerScopeAndResource: consent for one resource does
// not carry over to another.
func TestConsentRememberedPerScopeAndResource(t *testing.T) {
	e := newEnv(t)
	clientID := e.register("scoped")
	b, _, _ := e.fullLogin(clientID, "alice", e.url+"/demo/mcp")
	// Same browser, other resource: logged in, but consent is asked again.
	_, challenge := pkce()
	resp := b.get(e.authorizeURL(authzParams{clientID: clientID, redirect: loopbackRedirect, challenge: challenge, resource: e.url}))
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/consent" {
		t.Fatalf("expected consent for a new resource, got %d at %s", resp.StatusCode, resp.Request.URL)
	}
	callback(t, b.consent(resp, "approve"), loopbackRedirect)
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}
