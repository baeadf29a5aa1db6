package oauthsrv

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/mcpgateway/mcp-gateway/config"
	"github.com/mcpgateway/mcp-gateway/store"
)

func TestRegisterRejects(t *testing.T) {
	e := newEnv(t)
	long := strings.Repeat("a", 2100)
	cases := []struct {
		name, ctype, body string
		status            int
		code              string
	}{
		{"form content type", "application/x-www-form-urlencoded", `redirect_uris=https://a.example/cb`, 400, "invalid_client_metadata"},
		{"no content type", "", `{"redirect_uris":["https://a.example/cb"]}`, 400, "invalid_client_metadata"},
		{"not json", "application/json", `{redirect_uris`, 400, "invalid_client_metadata"},
		{"array", "application/json", `[{"redirect_uris":["https://a.example/cb"]}]`, 400, "invalid_client_metadata"},
		{"null", "application/json", `null`, 400, "invalid_client_metadata"},
		{"trailing data", "application/json", `{"redirect_uris":["https://a.example/cb"]} {}`, 400, "invalid_client_metadata"},
		{"trailing brace", "application/json", `{"redirect_uris":["https://a.example/cb"]}}`, 400, "invalid_client_metadata"},
		{"trailing bracket", "application/json", `{"redirect_uris":["https://a.example/cb"]}]`, 400, "invalid_client_metadata"},
		{"oversized body", "application/json", `{"client_name":"` + strings.Repeat("x", 70<<10) + `"}`, 413, "invalid_client_metadata"},
		{"redirect_uris wrong type", "application/json", `{"redirect_uris":"https://a.example/cb"}`, 400, "invalid_client_metadata"},
		{"missing redirect_uris", "application/json", `{"client_name":"x"}`, 400, "invalid_redirect_uri"},
		{"empty redirect_uris", "application/json", `{"redirect_uris":[]}`, 400, "invalid_redirect_uri"},
		{"javascript", "application/json", `{"redirect_uris":["javascript:alert(1)"]}`, 400, "invalid_redirect_uri"},
		{"javascript mixed case", "application/json", `{"redirect_uris":["JavaScript://x/%0aalert(1)"]}`, 400, "invalid_redirect_uri"},
		{"data", "application/json", `{"redirect_uris":["data:text/html,hi"]}`, 400, "invalid_redirect_uri"},
		{"file", "application/json", `{"redirect_uris":["file:///etc/passwd"]}`, 400, "invalid_redirect_uri"},
		{"vbscript", "application/json", `{"redirect_uris":["vbscript:msgbox"]}`, 400, "invalid_redirect_uri"},
		{"blob", "application/json", `{"redirect_uris":["blob:https://a.example/x"]}`, 400, "invalid_redirect_uri"},
		{"about", "application/json", `{"redirect_uris":["about:blank"]}`, 400, "invalid_redirect_uri"},
		{"fragment", "application/json", `{"redirect_uris":["https://a.example/cb#frag"]}`, 400, "invalid_redirect_uri"},
		{"empty fragment", "application/json", `{"redirect_uris":["https://a.example/cb#"]}`, 400, "invalid_redirect_uri"},
		{"wildcard host", "application/json", `{"redirect_uris":["https://*.example.com/cb"]}`, 400, "invalid_redirect_uri"},
		{"wildcard path", "application/json", `{"redirect_uris":["https://a.example/*"]}`, 400, "invalid_redirect_uri"},
		{"userinfo", "application/json", `{"redirect_uris":["https://user@a.example/cb"]}`, 400, "invalid_redirect_uri"},
		{"http non-loopback", "application/json", `{"redirect_uris":["http://a.example/cb"]}`, 400, "invalid_redirect_uri"},
		{"http 127.0.0.2", "application/json", `{"redirect_uris":["http://127.0.0.2/cb"]}`, 400, "invalid_redirect_uri"},
		{"http localhost.evil", "application/json", `{"redirect_uris":["http://localhost.evil.example/cb"]}`, 400, "invalid_redirect_uri"},
		{"https no host", "application/json", `{"redirect_uris":["https:///cb"]}`, 400, "invalid_redirect_uri"},
		{"relative", "application/json", `{"redirect_uris":["/cb"]}`, 400, "invalid_redirect_uri"},
		{"empty string", "application/json", `{"redirect_uris":[""]}`, 400, "invalid_redirect_uri"},
		{"bare scheme", "application/json", `{"redirect_uris":["com.example.app:"]}`, 400, "invalid_redirect_uri"},
		// Schemes that launch local handlers (issue: open redirect through
		// anonymous registration), and plain custom schemes not configured.
		{"ms-msdt", "application/json", `{"redirect_uris":["ms-msdt:/id"]}`, 400, "invalid_redirect_uri"},
		{"ms-officecmd", "application/json", `{"redirect_uris":["ms-officecmd:x"]}`, 400, "invalid_redirect_uri"},
		{"MS-Settings upper case", "application/json", `{"redirect_uris":["MS-Settings:privacy"]}`, 400, "invalid_redirect_uri"},
		{"search-ms", "application/json", `{"redirect_uris":["search-ms:query=x"]}`, 400, "invalid_redirect_uri"},
		{"plain custom scheme", "application/json", `{"redirect_uris":["myapp://cb"]}`, 400, "invalid_redirect_uri"},
		{"vscode not configured", "application/json", `{"redirect_uris":["vscode://cb"]}`, 400, "invalid_redirect_uri"},
		{"dotted handler scheme", "application/json", `{"redirect_uris":["x-apple.systempreferences:com.apple.preference"]}`, 400, "invalid_redirect_uri"},
		{"reverse-DNS empty label", "application/json", `{"redirect_uris":["com..app:/cb"]}`, 400, "invalid_redirect_uri"},
		{"reverse-DNS digit TLD", "application/json", `{"redirect_uris":["c0m.example:/cb"]}`, 400, "invalid_redirect_uri"},
		{"one evil among good", "application/json", `{"redirect_uris":["https://a.example/cb","ms-msdt:/id"]}`, 400, "invalid_redirect_uri"},
		{"space", "application/json", `{"redirect_uris":["https://a.example/c b"]}`, 400, "invalid_redirect_uri"},
		{"control char", "application/json", `{"redirect_uris":["https://a.example/c\u0000b"]}`, 400, "invalid_redirect_uri"},
		{"too long", "application/json", `{"redirect_uris":["https://a.example/` + long + `"]}`, 400, "invalid_redirect_uri"},
		{"too many", "application/json", `{"redirect_uris":[` + strings.Repeat(`"https://a.example/cb",`, 10) + `"https://a.example/cb"]}`, 400, "invalid_redirect_uri"},
		{"confidential client", "application/json", `{"redirect_uris":["https://a.example/cb"],"token_endpoint_auth_method":"client_secret_basic"}`, 400, "invalid_client_metadata"},
		{"private_key_jwt", "application/json", `{"redirect_uris":["https://a.example/cb"],"token_endpoint_auth_method":"private_key_jwt"}`, 400, "invalid_client_metadata"},
		{"client_credentials grant", "application/json", `{"redirect_uris":["https://a.example/cb"],"grant_types":["client_credentials"]}`, 400, "invalid_client_metadata"},
		{"implicit grant", "application/json", `{"redirect_uris":["https://a.example/cb"],"grant_types":["authorization_code","implicit"]}`, 400, "invalid_client_metadata"},
		{"refresh only", "application/json", `{"redirect_uris":["https://a.example/cb"],"grant_types":["refresh_token"]}`, 400, "invalid_client_metadata"},
		{"token response type", "application/json", `{"redirect_uris":["https://a.example/cb"],"response_types":["token"]}`, 400, "invalid_client_metadata"},
		{"name too long", "application/json", `{"redirect_uris":["https://a.example/cb"],"client_name":"` + strings.Repeat("n", 201) + `"}`, 400, "invalid_client_metadata"},
		{"name control chars", "application/json", `{"redirect_uris":["https://a.example/cb"],"client_name":"a\u001bb"}`, 400, "invalid_client_metadata"},
		{"logo javascript", "application/json", `{"redirect_uris":["https://a.example/cb"],"logo_uri":"javascript:alert(1)"}`, 400, "invalid_client_metadata"},
		{"unknown scope", "application/json", `{"redirect_uris":["https://a.example/cb"],"scope":"admin"}`, 400, "invalid_client_metadata"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, e.url+"/oauth/register", strings.NewReader(tc.body))
			if tc.ctype != "" {
				req.Header.Set("Content-Type", tc.ctype)
			}
			expectOAuthError(t, e.do(req), tc.status, tc.code)
		})
	}
	clients, err := e.st.ListClients(context.Background())
	if err != nil || len(clients) != 0 {
		t.Fatalf("rejected registrations stored clients: %v %v", clients, err)
	}
}

func TestRegisterAccepts(t *testing.T) {
	e := newEnv(t)
	uris := []string{
		"https://app.example.com/oauth/callback",
		"http://localhost/cb", "http://localhost:3000/cb", "http://127.0.0.1:6274/oauth/callback", "http://[::1]:8080/cb",
		"cursor://anysphere.cursor-retrieval/oauth/user-mcp/callback", "com.example.app:/oauth2redirect",
	}
	b, _ := json.Marshal(map[string]any{
		"client_name": "Café Client ✓", "redirect_uris": uris, "token_endpoint_auth_method": "none",
		"scope": "mcp", "software_id": "sw-1", "unknown_member": map[string]any{"ignored": true},
	})
	req, _ := http.NewRequest(http.MethodPost, e.url+"/oauth/register", strings.NewReader(string(b)))
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	resp := e.do(req)
	m := readJSON(t, resp)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("%d %v", resp.StatusCode, m)
	}
	id, _ := m["client_id"].(string)
	if len(id) < 16 || m["client_id_issued_at"] == nil || m["client_name"] != "Café Client ✓" ||
		m["token_endpoint_auth_method"] != "none" || m["client_secret"] != nil {
		t.Fatalf("response %v", m)
	}
	if got := m["grant_types"].([]any); len(got) != 2 || got[0] != "authorization_code" || got[1] != "refresh_token" {
		t.Fatalf("default grant_types %v", got)
	}
	if got := m["response_types"].([]any); len(got) != 1 || got[0] != "code" {
		t.Fatalf("default response_types %v", got)
	}
	if got := m["redirect_uris"].([]any); len(got) != len(uris) {
		t.Fatalf("redirect_uris %v", got)
	}
	c, err := e.st.GetClient(context.Background(), id)
	if err != nil || c.RegisteredIP != "127.0.0.1" || len(c.RedirectURIs) != len(uris) {
		t.Fatalf("stored client %+v %v", c, err)
	}
}

func TestRegisterRateLimitAndMethod(t *testing.T) {
	e := newEnv(t, func(c *config.Config, _ *Options) { c.RateLimit.Register = 2 })
	req, _ := http.NewRequest(http.MethodGet, e.url+"/oauth/register", nil)
	resp := e.do(req)
	if resp.StatusCode != http.StatusMethodNotAllowed || !strings.Contains(resp.Header.Get("Allow"), "POST") {
		t.Fatalf("GET register: %d Allow=%q", resp.StatusCode, resp.Header.Get("Allow"))
	}
	readJSON(t, resp)
	e.register("one")
	e.register("two")
	resp = e.postJSON("/oauth/register", `{"redirect_uris":["https://a.example/cb"]}`)
	if resp.Header.Get("Retry-After") == "" {
		t.Fatal("429 without Retry-After")
	}
	expectOAuthError(t, resp, http.StatusTooManyRequests, "rate_limited")
}

// TestRegisterAllowedSchemes: clients.allowed_schemes replaces the default
// [cursor]; reverse-DNS schemes need no listing.
func TestRegisterAllowedSchemes(t *testing.T) {
	e := newEnv(t, func(c *config.Config, _ *Options) { c.Clients.AllowedSchemes = []string{"vscode"} })
	e.register("vscode", "vscode://vendor.ext/cb")
	e.register("native", "com.example.app:/oauth2redirect")
	resp := e.postJSON("/oauth/register", `{"redirect_uris":["cursor://anysphere.cursor-retrieval/oauth/user-mcp/callback"]}`)
	m := readJSON(t, resp)
	if resp.StatusCode != http.StatusBadRequest || m["error"] != "invalid_redirect_uri" ||
		!strings.Contains(m["error_description"].(string), "reverse domain name") {
		t.Fatalf("cursor without being listed: %d %v", resp.StatusCode, m)
	}
}

// TestAuthorizeRechecksScheme: a redirect URI stored before the scheme
// rules (or before its scheme left clients.allowed_schemes) is refused at
// authorize with a page, never followed.
func TestAuthorizeRechecksScheme(t *testing.T) {
	e := newEnv(t)
	for _, uri := range []string{"ms-msdt:/id", "myapp://cb"} {
		c := &store.Client{ID: "legacy-" + uri[:2], RedirectURIs: []string{uri}, GrantTypes: []string{grantCode}, ResponseTypes: []string{"code"}}
		if err := e.st.CreateClient(t.Context(), c); err != nil {
			t.Fatal(err)
		}
		for _, q := range []string{authorizeQuery(c.ID, func(v url.Values) { v.Set("redirect_uri", uri) }),
			authorizeQuery(c.ID, func(v url.Values) { v.Set("redirect_uri", uri); v.Del("code_challenge") })} {
			resp := e.get("/oauth/authorize?" + q)
			body := readBodyString(resp)
			if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" ||
				!strings.Contains(body, "not accepted by this gateway") || strings.Contains(body, `id="back"`) {
				t.Fatalf("%s: %d Location=%q %s", uri, resp.StatusCode, resp.Header.Get("Location"), body)
			}
		}
	}
}

// TestRegisterRealClients: what Cursor, claude.ai and ChatGPT register
// keeps working with the default configuration.
func TestRegisterRealClients(t *testing.T) {
	e := newEnv(t)
	for name, uris := range map[string][]string{
		"Cursor":    {"cursor://anysphere.cursor-retrieval/oauth/user-mcp/callback", "https://cursor.com/oauth/callback", "http://127.0.0.1:33418/callback"},
		"claude.ai": {"https://claude.ai/api/mcp/auth_callback"},
		"ChatGPT":   {"https://chatgpt.com/connector_platform_oauth_redirect"},
		"VS Code":   {"http://127.0.0.1:33418/", "https://vscode.dev/redirect"},
	} {
		e.register(name, uris...)
	}
}
