package oauthsrv

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/mcpgateway/mcp-gateway/config"
)

func TestASMetadata(t *testing.T) {
	e := newEnv(t)
	for _, path := range []string{"/.well-known/oauth-authorization-server", "/.well-known/oauth-authorization-server/demo/mcp"} {
		resp := e.get(path)
		m := readJSON(t, resp)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d", path, resp.StatusCode)
		}
		want := map[string]any{
			"issuer":                 e.url,
			"authorization_endpoint": e.url + "/oauth/authorize",
			"token_endpoint":         e.url + "/oauth/token",
			"registration_endpoint":  e.url + "/oauth/register",
			"revocation_endpoint":    e.url + "/oauth/revoke",
			"authorization_response_iss_parameter_supported": true,
		}
		for k, v := range want {
			if m[k] != v {
				t.Errorf("%s: %s = %v, want %v", path, k, m[k], v)
			}
		}
		lists := map[string][]string{
			"response_types_supported":              {"code"},
			"grant_types_supported":                 {"authorization_code", "refresh_token"},
			"code_challenge_methods_supported":      {"S256"},
			"token_endpoint_auth_methods_supported": {"none"},
			"scopes_supported":                      {"mcp"},
		}
		for k, v := range lists {
			if got := toStrings(m[k]); !slices.Equal(got, v) {
				t.Errorf("%s: %s = %v, want %v", path, k, got, v)
			}
		}
	}
}

func toStrings(v any) []string {
	l, _ := v.([]any)
	var out []string
	for _, x := range l {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

func TestPRM(t *testing.T) {
	e := newEnv(t)
	cases := []struct {
		path, resource string
	}{
		{"/.well-known/oauth-protected-resource", e.url},
		{"/.well-known/oauth-protected-resource/demo/mcp", e.url + "/demo/mcp"},
	}
	for _, tc := range cases {
		resp := e.get(tc.path)
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Fatalf("%s Content-Type %q", tc.path, ct)
		}
		m := readJSON(t, resp)
		if resp.StatusCode != http.StatusOK || m["resource"] != tc.resource ||
			!slices.Equal(toStrings(m["authorization_servers"]), []string{e.url}) ||
			!slices.Equal(toStrings(m["bearer_methods_supported"]), []string{"header"}) ||
			!slices.Equal(toStrings(m["scopes_supported"]), []string{"mcp"}) {
			t.Fatalf("%s: %d %v", tc.path, resp.StatusCode, m)
		}
	}
	for _, path := range []string{
		"/.well-known/oauth-protected-resource/ghost/mcp",
		"/.well-known/oauth-protected-resource/demo",
		"/.well-known/oauth-protected-resource/demo/mcp/x",
		"/.well-known/oauth-protected-resource/de%2Fmo/mcp",
		"/.well-known/openid-configuration",
		"/.well-known/openid-configuration/x",
		"/.well-known/unknown",
		"/nothing-here",
	} {
		expectOAuthError(t, e.get(path), http.StatusNotFound, "not_found")
	}
	req, _ := http.NewRequest(http.MethodPost, e.url+"/.well-known/oauth-protected-resource", nil)
	resp := e.do(req)
	if resp.StatusCode != http.StatusMethodNotAllowed || !strings.Contains(resp.Header.Get("Allow"), "GET") {
		t.Fatalf("POST PRM: %d Allow=%q", resp.StatusCode, resp.Header.Get("Allow"))
	}
	readJSON(t, resp)
}

func TestCORS(t *testing.T) {
	preflight := func(e *env, path, origin string) *http.Response {
		req, _ := http.NewRequest(http.MethodOptions, e.url+path, nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "content-type, mcp-protocol-version")
		resp := e.do(req)
		resp.Body.Close()
		return resp
	}
	t.Run("any origin", func(t *testing.T) {
		e := newEnv(t)
		for _, path := range []string{"/oauth/token", "/oauth/register", "/oauth/revoke", "/.well-known/oauth-authorization-server", "/.well-known/oauth-protected-resource/demo/mcp"} {
			resp := preflight(e, path, "http://localhost:6274")
			h := resp.Header
			if resp.StatusCode != http.StatusNoContent || h.Get("Access-Control-Allow-Origin") != "*" ||
				!strings.Contains(h.Get("Access-Control-Allow-Headers"), "MCP-Protocol-Version") ||
				!strings.Contains(h.Get("Access-Control-Allow-Headers"), "Content-Type") ||
				!strings.Contains(h.Get("Access-Control-Allow-Headers"), "Authorization") ||
				h.Get("Access-Control-Allow-Methods") == "" {
				t.Fatalf("preflight %s: %d %v", path, resp.StatusCode, h)
			}
		}
		req, _ := http.NewRequest(http.MethodGet, e.url+"/.well-known/oauth-authorization-server", nil)
		req.Header.Set("Origin", "http://localhost:6274")
		resp := e.do(req)
		resp.Body.Close()
		if resp.Header.Get("Access-Control-Allow-Origin") != "*" {
			t.Fatalf("GET metadata without CORS: %v", resp.Header)
		}
		// No CORS on the browser pages.
		for _, path := range []string{"/login", "/consent", "/oauth/authorize"} {
			resp := preflight(e, path, "http://localhost:6274")
			if resp.Header.Get("Access-Control-Allow-Origin") != "" {
				t.Fatalf("%s answers CORS", path)
			}
		}
	})
	t.Run("listed origins", func(t *testing.T) {
		e := newEnv(t, func(c *config.Config, _ *Options) { c.CORS.AllowedOrigins = []string{"https://inspector.example"} })
		resp := preflight(e, "/oauth/token", "https://inspector.example")
		if resp.Header.Get("Access-Control-Allow-Origin") != "https://inspector.example" || !strings.Contains(resp.Header.Get("Vary"), "Origin") {
			t.Fatalf("listed origin: %v", resp.Header)
		}
		resp = preflight(e, "/oauth/token", "https://evil.example")
		if resp.Header.Get("Access-Control-Allow-Origin") != "" || resp.Header.Get("Access-Control-Allow-Methods") != "" {
			t.Fatalf("unlisted origin allowed: %v", resp.Header)
		}
	})
}

// TestClientIP: X-Forwarded-For is read only from a trusted peer, and then
// only the entry trusted_hops from the right, whatever addresses stand to
// its left: the client writes those, private ranges included.
func TestClientIP(t *testing.T) {
	cases := []struct {
		hops              int
		remote, xff, want string
	}{
		{1, "192.0.2.7:1234", "", "192.0.2.7"},
		{1, "192.0.2.7:1234", "203.0.113.9", "192.0.2.7"}, // untrusted peer: header ignored
		{1, "10.1.2.3:1234", "203.0.113.9", "203.0.113.9"},
		{1, "10.1.2.3:1234", "198.51.100.1, 203.0.113.9, 10.9.9.9", "10.9.9.9"}, // a private client is that client
		{1, "10.1.2.3:1234", "203.0.113.5, 10.0.0.5", "10.0.0.5"},               // not walked past as a "trusted" hop
		{1, "10.1.2.3:1234", "garbage, 203.0.113.9", "203.0.113.9"},
		{1, "10.1.2.3:1234", "203.0.113.9, garbage", "10.1.2.3"},
		{1, "10.1.2.3:1234", "", "10.1.2.3"},
		{1, "10.1.2.3:1234", "203.0.113.9:4711", "203.0.113.9"},
		{1, "[::1]:80", "2001:db8::5", "2001:db8::5"},
		{1, "[::ffff:10.0.0.1]:80", "203.0.113.4", "203.0.113.4"},
		// Two proxies (a load balancer, then nginx): the client is second from the right.
		{2, "10.1.2.3:1234", "198.51.100.1, 203.0.113.9, 10.9.9.9", "203.0.113.9"},
		{2, "10.1.2.3:1234", "203.0.113.9, 10.9.9.9", "203.0.113.9"},
		{2, "10.1.2.3:1234", "10.9.9.9", "10.1.2.3"}, // shorter than the chain: the peer
		{3, "10.1.2.3:1234", "1.1.1.1, 203.0.113.9, 10.9.9.9, 10.8.8.8", "203.0.113.9"},
	}
	envs := map[int]*env{}
	for _, tc := range cases {
		e := envs[tc.hops]
		if e == nil {
			e = newEnv(t, func(c *config.Config, _ *Options) {
				c.TrustedProxies = []string{"10.0.0.0/8", "::1/128"}
				c.TrustedHops = tc.hops
			})
			envs[tc.hops] = e
		}
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = tc.remote
		if tc.xff != "" {
			r.Header.Set("X-Forwarded-For", tc.xff)
		}
		if got := e.srv.clientIP(r); got != tc.want {
			t.Errorf("hops %d: clientIP(%s, %q) = %s, want %s", tc.hops, tc.remote, tc.xff, got, tc.want)
		}
	}
	// Repeated header lines are one list (RFC 9110 §5.3).
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.RemoteAddr = "10.1.2.3:1234"
	r.Header.Add("X-Forwarded-For", "203.0.113.5")
	r.Header.Add("X-Forwarded-For", "198.51.100.8, 10.9.9.9")
	if got := envs[2].srv.clientIP(r); got != "198.51.100.8" {
		t.Errorf("two header lines, hops 2: %s, want 198.51.100.8", got)
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	e := newEnv(t)
	cfg := *e.cfg
	if _, err := New(Options{Config: &cfg, Store: e.st}); err == nil {
		t.Error("New without a ring succeeded")
	}
	cfg.PublicURL = e.url + "/"
	if _, err := New(Options{Config: &cfg, Store: e.st, Ring: e.ring}); err == nil {
		t.Error("New with a trailing-slash public URL succeeded")
	}
	cfg.PublicURL = "http://other.example"
	if _, err := New(Options{Config: &cfg, Store: e.st, Ring: e.ring}); err == nil {
		t.Error("New with a ring for another issuer succeeded")
	}
	cfg = *e.cfg
	if _, err := New(Options{Config: &cfg, Store: e.st, Ring: e.ring, Users: map[string]string{"x": "plaintext"}}); err == nil {
		t.Error("New with a non-bcrypt user hash succeeded")
	}
}
