package oauthsrv

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

// TestPageCSPAllowsOnlyItsStyle: the CSP hash matches the served <style>,
// so the pages look right under the tight policy.
func TestPageCSPAllowsOnlyItsStyle(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	resp := b.startLogin(e.register("csp"))
	csp := resp.Header.Get("Content-Security-Policy")
	body := readBodyString(resp)
	m := regexp.MustCompile(`(?s)<style>(.*?)</style>`).FindStringSubmatch(body)
	if m == nil {
		t.Fatal("no <style> in the page")
	}
	sum := sha256.Sum256([]byte(m[1]))
	if !strings.Contains(csp, "style-src 'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'") {
		t.Fatalf("CSP %q does not allow the page's style", csp)
	}
	if strings.Contains(body, "<script") {
		t.Fatal("pages must not need scripts")
	}
}

// TestNoServerErrors sends junk to every endpoint with every method: the
// answer is always a 2xx–4xx with a body of the right kind, never a 5xx.
func TestNoServerErrors(t *testing.T) {
	e := newEnv(t)
	clientID := e.register("junk")
	paths := []string{
		"/.well-known/oauth-authorization-server", "/.well-known/oauth-authorization-server/x/y",
		"/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/demo/mcp",
		"/.well-known/oauth-protected-resource/%00/mcp", "/.well-known/openid-configuration",
		"/oauth/register", "/oauth/authorize", "/oauth/token", "/oauth/revoke", "/login", "/consent", "/",
	}
	queries := []string{"", "?client_id=" + clientID, "?request=%00", "?client_id=" + clientID + "&redirect_uri=" + loopbackRedirect + "&resource=%zz",
		"?client_id=" + clientID + "&redirect_uri=" + loopbackRedirect + "&response_type=code&code_challenge_method=S256&code_challenge=" + strings.Repeat("A", 43) + "&resource=http://%5B::1%5D:80/x/mcp"}
	bodies := []struct{ ctype, body string }{
		{"", ""},
		{"application/json", `{"redirect_uris":[1,2,3]}`},
		{"application/json", `{"redirect_uris":["https://a.example/cb"],"grant_types":null,"client_name":{"x":1}}`},
		{"application/json", "\xff\xfe"},
		{"application/x-www-form-urlencoded", "grant_type=authorization_code&client_id=" + clientID + "&code=x&redirect_uri=x&code_verifier=" + strings.Repeat("~", 128)},
		{"application/x-www-form-urlencoded", "grant_type=refresh_token&client_id=" + clientID + "&refresh_token=" + strings.Repeat("r", 600)},
		{"application/x-www-form-urlencoded", "token=" + strings.Repeat("a.", 3) + "&token_type_hint=bogus"},
		{"application/x-www-form-urlencoded", "request=x&csrf=y&username=%00&password=%ff&decision=approve"},
		{"application/x-www-form-urlencoded; charset=\"", "a=b"},
		{"text/plain", strings.Repeat("z", 70<<10)},
	}
	methods := []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodOptions, http.MethodPatch}
	for _, path := range paths {
		for _, q := range queries {
			for _, m := range methods {
				bs := bodies
				if m != http.MethodPost {
					bs = bodies[:2] // bodies matter on POST; keep the sweep fast
				}
				for _, bd := range bs {
					req, err := http.NewRequest(m, e.url+path+q, strings.NewReader(bd.body))
					if err != nil {
						t.Fatal(err)
					}
					if bd.ctype != "" {
						req.Header.Set("Content-Type", bd.ctype)
					}
					req.Header.Set("Origin", "https://x.example")
					resp := e.do(req)
					readBodyString(resp)
					if resp.StatusCode >= 500 {
						t.Fatalf("%s %s%s (%s): %d", m, path, q, bd.ctype, resp.StatusCode)
					}
					if resp.StatusCode >= 400 && m != http.MethodHead {
						ct := resp.Header.Get("Content-Type")
						if ct != "application/json" && !strings.HasPrefix(ct, "text/html") {
							t.Fatalf("%s %s%s: %d with Content-Type %q", m, path, q, resp.StatusCode, ct)
						}
					}
				}
			}
		}
	}
}
