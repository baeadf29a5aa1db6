package oauthsrv

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/mcpgateway/mcp-gateway/config"
)

// The fuzz targets drive the real handler (memstore, rate limits off) with
// httptest.NewRecorder. Seeds name live values by placeholder so a mutation
// can keep them: CLIENT (a registered client id), REDIRECT (its registered
// redirect URI, query-escaped), CHALLENGE, RESOURCE, CODE, VERIFIER, REFRESH.

func fuzzEnv(f *testing.F) *env {
	return newEnv(f, func(c *config.Config, _ *Options) {
		c.Clients.MaxPerIP = 0 // the registration target registers many clients
		c.CIMD.Enabled = false // no outbound fetches while fuzzing
	})
}

func fuzzRequest(method, path, rawQuery string, body []byte) *http.Request {
	r := &http.Request{
		Method: method, URL: &url.URL{Path: path, RawQuery: rawQuery}, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{}, Host: "127.0.0.1", RemoteAddr: "192.0.2.7:4321", Body: http.NoBody,
		RequestURI: path + "?" + rawQuery,
	}
	if body != nil {
		r.Body = httpBody(body)
		r.ContentLength = int64(len(body))
	}
	return r.WithContext(context.Background())
}

type bodyReader struct{ *bytes.Reader }

func (bodyReader) Close() error { return nil }

func httpBody(b []byte) bodyReader { return bodyReader{bytes.NewReader(b)} }

// redirectOK: a Location is ours (login, consent) or the registered loopback
// redirect URI (any port, RFC 8252) carrying iss.
func redirectOK(e *env, loc string) bool {
	u, err := url.Parse(loc)
	if err != nil {
		return false
	}
	if strings.HasPrefix(loc, e.url+"/") {
		return u.User == nil
	}
	return u.Scheme == "http" && u.Hostname() == "127.0.0.1" && u.EscapedPath() == "/callback" &&
		u.User == nil && u.Fragment == "" && u.Query().Get("iss") == e.url
}

// FuzzAuthorizeQuery: any authorization query answers < 500 and redirects
// nowhere but to the gateway's own pages: no user has approved the client,
// so not even an error goes to its redirect URI (RFC 9700 §4.11.2).
func FuzzAuthorizeQuery(f *testing.F) {
	e := fuzzEnv(f)
	clientID := e.register("fuzz")
	_, challenge := pkce()
	repl := strings.NewReplacer("CLIENT", clientID, "REDIRECT", url.QueryEscape(loopbackRedirect),
		"CHALLENGE", challenge, "RESOURCE", url.QueryEscape(e.url+"/demo/mcp"))
	base := "response_type=code&client_id=CLIENT&redirect_uri=REDIRECT&code_challenge=CHALLENGE&code_challenge_method=S256"
	for _, s := range []string{
		base, base + "&state=xyz&resource=RESOURCE&scope=mcp", base + "&resource=https://evil.example/mcp",
		"client_id=CLIENT&redirect_uri=https://evil.example/cb", "client_id=CLIENT&redirect_uri=http://127.0.0.1:1/callback",
		"client_id=CLIENT&redirect_uri=http://127.0.0.1:9/callback/../x", "client_id=CLIENT&client_id=x&redirect_uri=REDIRECT",
		base + "&code_challenge_method=plain", base + "&response_type=token", base + "&scope=mcp&scope=mcp",
		"client_id=CLIENT&redirect_uri=javascript:alert(1)", "client_id=CLIENT&redirect_uri=http://127.0.0.1:9@evil.example/callback",
		"client_id=CLIENT&redirect_uri=%zz", "%", "&&&", "client_id=https://169.254.169.254/x&redirect_uri=REDIRECT",
		base + "&state=" + strings.Repeat("s", 1100), base + "&resource=RESOURCE%23x",
	} {
		f.Add(s)
	}
	h := e.srv.Handler()
	f.Fuzz(func(t *testing.T, q string) {
		q = repl.Replace(q)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, fuzzRequest(http.MethodGet, "/oauth/authorize", q, nil))
		if rec.Code >= 500 {
			t.Fatalf("%q: %d", q, rec.Code)
		}
		if loc := rec.Header().Get("Location"); loc != "" && (!redirectOK(e, loc) || !strings.HasPrefix(loc, e.url+"/")) {
			t.Fatalf("%q: redirect to %q", q, loc)
		}
	})
}

// FuzzRegisterJSON: any registration body answers 201 or a 4xx OAuth error,
// and whatever is registered has only acceptable redirect URIs.
func FuzzRegisterJSON(f *testing.F) {
	e := fuzzEnv(f)
	for _, s := range [][2]string{
		{"application/json", `{"redirect_uris":["http://127.0.0.1:9/cb"],"client_name":"x"}`},
		{"application/json", `{"redirect_uris":["https://app.example/cb","com.example.app:/cb"],"grant_types":["authorization_code","refresh_token"]}`},
		{"application/json", `{"redirect_uris":["javascript:alert(1)"]}`},
		{"application/json", `{"redirect_uris":["https://a.example/cb#f"]}`},
		{"application/json", `{"redirect_uris":["http://evil.example/cb"]}`},
		{"application/json", `{"redirect_uris":["HTTP://LOCALHOST/cb"]}`},
		{"application/json", `{"redirect_uris":["JavaScript:x"]}`},
		{"application/json", `{"redirect_uris":["cursor:"]}`},
		{"application/json", `{"redirect_uris":["ms-msdt:/id","search-ms:query=x","myapp://cb"]}`},
		{"application/json", `{"redirect_uris":["cursor://anysphere.cursor-retrieval/cb","Com.Example.App:/cb"]}`},
		{"application/json", `{"redirect_uris":["https:/\\evil.example"]}`},
		{"application/json", `{"redirect_uris":["https://app.example/cb"],"token_endpoint_auth_method":"client_secret_post"}`},
		{"application/json", `{"redirect_uris":["https://app.example/cb"],"scope":"mcp admin"}`},
		{"application/json", `{"redirect_uris":["https://app.example/cb"],"redirect_uris":["data:,x"]}`},
		{"application/json", `[]`}, {"application/json", `{}{}`}, {"application/json", `{"redirect_uris":[1]}`},
		{"application/json; charset=utf-8", `{"redirect_uris":["http://[::1]:1/cb"],"logo_uri":"javascript:x"}`},
		{"text/plain", `{"redirect_uris":["http://127.0.0.1/cb"]}`}, {"", ""},
	} {
		f.Add(s[0], []byte(s[1]))
	}
	h := e.srv.Handler()
	f.Fuzz(func(t *testing.T, ctype string, body []byte) {
		req := fuzzRequest(http.MethodPost, "/oauth/register", "", body)
		req.Header.Set("Content-Type", ctype)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusCreated && (rec.Code < 400 || rec.Code >= 500) {
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
		if rec.Header().Get("Location") != "" {
			t.Fatalf("registration redirected: %v", rec.Header())
		}
		var m map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
			t.Fatalf("%d: body is not JSON: %s", rec.Code, rec.Body)
		}
		if rec.Code != http.StatusCreated {
			if ec, _ := m["error"].(string); ec == "" {
				t.Fatalf("%d without an error code: %s", rec.Code, rec.Body)
			}
			return
		}
		if m["token_endpoint_auth_method"] != "none" || m["client_id"] == "" {
			t.Fatalf("registered %v", m)
		}
		uris, _ := m["redirect_uris"].([]any)
		if len(uris) == 0 {
			t.Fatalf("registered without redirect URIs: %v", m)
		}
		for _, x := range uris {
			if why := badRedirect(x.(string)); why != "" {
				t.Fatalf("registered redirect URI %q: %s", x, why)
			}
		}
	})
}

// badRedirect is an independent statement of what a registered redirect URI
// must never be.
func badRedirect(raw string) string {
	u, err := url.Parse(raw)
	switch {
	case err != nil || !u.IsAbs():
		return "not an absolute URI"
	case strings.Contains(raw, "#"):
		return "fragment"
	case u.User != nil:
		return "userinfo"
	}
	switch sc := strings.ToLower(u.Scheme); {
	case sc == "javascript", sc == "data", sc == "file", sc == "vbscript", sc == "about", sc == "blob",
		sc == "filesystem", sc == "view-source", sc == "search-ms", strings.HasPrefix(sc, "ms-"):
		return "dangerous scheme"
	case sc != "http" && sc != "https" && sc != "cursor" && !strings.Contains(sc, "."):
		return "custom scheme neither reverse-DNS nor configured"
	}
	switch strings.ToLower(u.Scheme) {
	case "http":
		if h := u.Hostname(); h != "127.0.0.1" && h != "::1" && !strings.EqualFold(h, "localhost") {
			return "plain http off loopback"
		}
	case "https":
		if u.Hostname() == "" {
			return "https without host"
		}
	}
	return ""
}

// FuzzTokenForm: any token request answers < 500 with JSON and no redirect,
// and tokens come out only for the code and refresh token this process
// really issued.
func FuzzTokenForm(f *testing.F) {
	e := fuzzEnv(f)
	clientID := e.register("fuzz")
	_, code, verifier := e.fullLogin(clientID, "alice", e.url+"/demo/mcp")
	_, code2, verifier2 := e.fullLogin(clientID, "alice", "")
	refresh, _ := e.tokens(clientID, code2, verifier2)["refresh_token"].(string)
	repl := strings.NewReplacer("CLIENT", clientID, "REDIRECT", url.QueryEscape(loopbackRedirect),
		"CODE", code, "VERIFIER", verifier, "REFRESH", refresh, "RESOURCE", url.QueryEscape(e.url+"/demo/mcp"))
	for _, s := range [][2]string{
		{"grant_type=authorization_code&client_id=CLIENT&code=CODE&redirect_uri=REDIRECT&code_verifier=VERIFIER", ""},
		{"grant_type=authorization_code&client_id=CLIENT&code=CODE&redirect_uri=REDIRECT&code_verifier=VERIFIER&resource=RESOURCE", ""},
		{"grant_type=refresh_token&client_id=CLIENT&refresh_token=REFRESH", ""},
		{"grant_type=refresh_token&client_id=CLIENT&refresh_token=REFRESH&scope=mcp%20admin", ""},
		{"grant_type=refresh_token&refresh_token=REFRESH", "CLIENT"},
		{"grant_type=authorization_code&code=CODE&code=x&client_id=CLIENT", ""},
		{"grant_type=authorization_code&client_id=CLIENT&code=CODE&redirect_uri=REDIRECT&code_verifier=" + strings.Repeat("a", 42), ""},
		{"grant_type=client_credentials&client_id=CLIENT", "other"},
		{"grant_type=password&username=alice&password=x", ""}, {"%zz=1", ""}, {"", ""}, {"grant_type=refresh_token&client_id=" + strings.Repeat("c", 3000), ""},
	} {
		f.Add(s[0], s[1])
	}
	h := e.srv.Handler()
	f.Fuzz(func(t *testing.T, body, basicUser string) {
		body = repl.Replace(body)
		req := fuzzRequest(http.MethodPost, "/oauth/token", "", []byte(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if basicUser != "" {
			req.SetBasicAuth(repl.Replace(basicUser), "")
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 || rec.Header().Get("Location") != "" {
			t.Fatalf("%q: %d %v", body, rec.Code, rec.Header())
		}
		var m map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
			t.Fatalf("%d: body is not JSON: %s", rec.Code, rec.Body)
		}
		if rec.Code != http.StatusOK {
			if ec, _ := m["error"].(string); ec == "" {
				t.Fatalf("%d without an error code: %s", rec.Code, rec.Body)
			}
			return
		}
		if !strings.Contains(body, code) && !strings.Contains(body, refresh) {
			t.Fatalf("tokens issued for a code or refresh token never issued: %q", body)
		}
		access, _ := m["access_token"].(string)
		c, err := e.ring.Verify(access)
		if err != nil || c.Subject != "alice" || c.ClientID != clientID {
			t.Fatalf("issued token: %v %+v", err, c)
		}
	})
}
