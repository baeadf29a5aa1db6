package oauthsrv

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mcpgateway/mcp-gateway/config"
	"github.com/mcpgateway/mcp-gateway/store"
	"github.com/mcpgateway/mcp-gateway/token"
)

// startLogin opens the login page of a fresh authorization in b.
func (b *browser) startLogin(clientID string) *http.Response {
	b.e.t.Helper()
	_, challenge := pkce()
	resp := b.get(b.e.authorizeURL(authzParams{clientID: clientID, redirect: loopbackRedirect, challenge: challenge, state: "s1"}))
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/login" {
		b.e.t.Fatalf("no login page: %d %s", resp.StatusCode, resp.Request.URL)
	}
	return resp
}

func expectPage(t testing.TB, resp *http.Response, status int, contains string) {
	t.Helper()
	body := readBodyString(resp)
	if resp.StatusCode != status || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") ||
		resp.Header.Get("X-Frame-Options") != "DENY" || !strings.Contains(body, contains) {
		t.Fatalf("got %d %q, want %d page containing %q: %s", resp.StatusCode, resp.Header.Get("Content-Type"), status, contains, body)
	}
}

func TestLoginFailures(t *testing.T) {
	e := newEnv(t)
	clientID := e.register("login failures")

	t.Run("wrong password", func(t *testing.T) {
		b := e.browser()
		f := parseForm(t, b.startLogin(clientID))
		resp := b.submit(f, url.Values{"username": {"alice"}, "password": {"wrong"}})
		expectPage(t, resp, http.StatusUnauthorized, "Wrong username or password")
		if b.c.Jar.Cookies(resp.Request.URL) != nil {
			for _, c := range b.c.Jar.Cookies(resp.Request.URL) {
				if c.Name == e.srv.sessionCookie {
					t.Fatal("failed login set a session cookie")
				}
			}
		}
		// The form is shown again and still works.
		resp = b.submit(f, url.Values{"username": {"alice"}, "password": {passwords["alice"]}})
		if resp.Request.URL.Path != "/consent" {
			t.Fatalf("retry after failure: %d %s", resp.StatusCode, resp.Request.URL)
		}
		resp.Body.Close()
	})
	t.Run("unknown user same answer", func(t *testing.T) {
		b := e.browser()
		resp := b.submit(parseForm(t, b.startLogin(clientID)), url.Values{"username": {"mallory"}, "password": {"x"}})
		expectPage(t, resp, http.StatusUnauthorized, "Wrong username or password")
	})
	t.Run("overlong password", func(t *testing.T) {
		b := e.browser()
		resp := b.submit(parseForm(t, b.startLogin(clientID)), url.Values{"username": {"alice"}, "password": {passwords["alice"] + strings.Repeat("x", 2000)}})
		expectPage(t, resp, http.StatusUnauthorized, "Wrong username or password")
	})
	t.Run("empty fields", func(t *testing.T) {
		b := e.browser()
		resp := b.submit(parseForm(t, b.startLogin(clientID)), url.Values{"username": {"alice"}})
		expectPage(t, resp, http.StatusBadRequest, "Enter your username and password")
	})
	t.Run("missing csrf", func(t *testing.T) {
		b := e.browser()
		f := parseForm(t, b.startLogin(clientID))
		f.fields.Del("csrf")
		expectPage(t, b.submit(f, url.Values{"username": {"alice"}, "password": {passwords["alice"]}}), http.StatusForbidden, "Form expired")
	})
	t.Run("wrong csrf", func(t *testing.T) {
		b := e.browser()
		f := parseForm(t, b.startLogin(clientID))
		f.fields.Set("csrf", token.Random(32))
		expectPage(t, b.submit(f, url.Values{"username": {"alice"}, "password": {passwords["alice"]}}), http.StatusForbidden, "Form expired")
	})
	t.Run("csrf of another request", func(t *testing.T) {
		b := e.browser()
		f1 := parseForm(t, b.startLogin(clientID))
		f2 := parseForm(t, b.startLogin(clientID))
		f1.fields.Set("csrf", f2.fields.Get("csrf"))
		expectPage(t, b.submit(f1, url.Values{"username": {"alice"}, "password": {passwords["alice"]}}), http.StatusForbidden, "Form expired")
	})
	t.Run("other browser", func(t *testing.T) {
		b := e.browser()
		f := parseForm(t, b.startLogin(clientID))
		other := e.browser()
		expectPage(t, other.get(f.action.String()+"?request="+f.fields.Get("request")), http.StatusBadRequest, "another browser")
		expectPage(t, other.submit(f, url.Values{"username": {"alice"}, "password": {passwords["alice"]}}), http.StatusBadRequest, "another browser")
	})
	t.Run("unknown request", func(t *testing.T) {
		b := e.browser()
		expectPage(t, b.get(e.url+"/login?request=nope"), http.StatusBadRequest, "expired")
		expectPage(t, b.get(e.url+"/login"), http.StatusBadRequest, "incomplete")
	})
	t.Run("wrong content type", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, e.url+"/login", strings.NewReader(`{"username":"alice"}`))
		req.Header.Set("Content-Type", "application/json")
		expectPage(t, e.do(req), http.StatusBadRequest, "not sent correctly")
	})
	t.Run("method", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPut, e.url+"/login", nil)
		resp := e.do(req)
		if resp.Header.Get("Allow") == "" {
			t.Fatal("405 without Allow")
		}
		expectPage(t, resp, http.StatusMethodNotAllowed, "method not allowed")
	})
	if n := len(e.auditEvents("login_failed")); n != 3 {
		t.Fatalf("%d login_failed audit lines, want 3: %s", n, e.logs.String())
	}
	if strings.Contains(e.logs.String(), "wrong") {
		t.Fatal("a tried password reached the logs")
	}
}

func TestLoginRateLimits(t *testing.T) {
	t.Run("per user", func(t *testing.T) {
		e := newEnv(t, func(c *config.Config, _ *Options) { c.RateLimit.LoginPerUser = 2 })
		clientID := e.register("brute force")
		b := e.browser()
		f := parseForm(t, b.startLogin(clientID))
		for i := 0; i < 2; i++ {
			expectPage(t, b.submit(f, url.Values{"username": {"Alice"}, "password": {"guess"}}), http.StatusUnauthorized, "Wrong")
		}
		// Locked even with the right password, whatever the case of the name.
		resp := b.submit(f, url.Values{"username": {"alice"}, "password": {passwords["alice"]}})
		if resp.Header.Get("Retry-After") == "" {
			t.Fatal("429 without Retry-After")
		}
		expectPage(t, resp, http.StatusTooManyRequests, "Too many")
		// Another user is not affected.
		resp = b.submit(f, url.Values{"username": {"bob"}, "password": {passwords["bob"]}})
		if resp.Request.URL.Path != "/consent" {
			t.Fatalf("other user blocked: %d %s", resp.StatusCode, resp.Request.URL)
		}
		resp.Body.Close()
	})
	t.Run("per user counts failures only", func(t *testing.T) {
		e := newEnv(t, func(c *config.Config, _ *Options) { c.RateLimit.LoginPerUser = 2 })
		clientID := e.register("busy user")
		// More successful logins than the limit: a user with several MCP
		// clients signs in again and again.
		for i := range 4 {
			b := e.browser()
			resp := b.submit(parseForm(t, b.startLogin(clientID)), url.Values{"username": {"alice"}, "password": {passwords["alice"]}})
			if resp.Request.URL.Path != "/consent" {
				t.Fatalf("login %d: %d %s", i+1, resp.StatusCode, resp.Request.URL)
			}
			resp.Body.Close()
		}
		b := e.browser()
		f := parseForm(t, b.startLogin(clientID))
		for range 2 {
			expectPage(t, b.submit(f, url.Values{"username": {"alice"}, "password": {"guess"}}), http.StatusUnauthorized, "Wrong")
		}
		expectPage(t, b.submit(f, url.Values{"username": {"alice"}, "password": {passwords["alice"]}}), http.StatusTooManyRequests, "Too many")
	})
	t.Run("per ip", func(t *testing.T) {
		e := newEnv(t, func(c *config.Config, _ *Options) { c.RateLimit.Login = 2 })
		clientID := e.register("spray")
		b := e.browser()
		f := parseForm(t, b.startLogin(clientID))
		for _, u := range []string{"u1", "u2"} {
			expectPage(t, b.submit(f, url.Values{"username": {u}, "password": {"x"}}), http.StatusUnauthorized, "Wrong")
		}
		expectPage(t, b.submit(f, url.Values{"username": {"u3"}, "password": {"x"}}), http.StatusTooManyRequests, "Too many")
	})
}

func TestConsentDecisions(t *testing.T) {
	e := newEnv(t)
	clientID := e.register("consent")
	// Each case uses its own client: an approval is remembered.
	consentPage := func(t *testing.T) (*browser, form, string) {
		b := e.browser()
		id := e.register("consent " + t.Name())
		resp := b.login(b.startLogin(id), "alice")
		if resp.Request.URL.Path != "/consent" {
			t.Fatalf("no consent page: %d %s %s", resp.StatusCode, resp.Request.URL, readBodyString(resp))
		}
		for k, want := range map[string]string{"X-Frame-Options": "DENY", "Cache-Control": "no-store"} {
			if resp.Header.Get(k) != want {
				t.Fatalf("consent %s = %q", k, resp.Header.Get(k))
			}
		}
		return b, parseForm(t, resp), id
	}
	t.Run("deny", func(t *testing.T) {
		b, f, id := consentPage(t)
		if got := f.buttons["decision"]; len(got) != 2 {
			t.Fatalf("decision buttons %v", got)
		}
		q := callback(t, b.submit(f, url.Values{"decision": {"deny"}}), loopbackRedirect)
		if q.Get("error") != "access_denied" || q.Get("state") != "s1" || q.Get("iss") != e.url || q.Get("code") != "" {
			t.Fatalf("deny callback %v", q)
		}
		// Denial is not remembered: the next authorization asks again.
		_, challenge := pkce()
		resp := b.get(e.authorizeURL(authzParams{clientID: id, redirect: loopbackRedirect, challenge: challenge}))
		if resp.Request.URL.Path != "/consent" {
			t.Fatalf("after deny: %s", resp.Request.URL)
		}
		resp.Body.Close()
	})
	t.Run("bad decision", func(t *testing.T) {
		b, f, _ := consentPage(t)
		expectPage(t, b.submit(f, url.Values{"decision": {"maybe"}}), http.StatusBadRequest, "Approve or Deny")
		expectPage(t, b.submit(f, nil), http.StatusBadRequest, "Approve or Deny")
	})
	t.Run("bad csrf", func(t *testing.T) {
		b, f, _ := consentPage(t)
		f.fields.Set("csrf", "x")
		expectPage(t, b.submit(f, url.Values{"decision": {"approve"}}), http.StatusForbidden, "Form expired")
	})
	t.Run("posted twice", func(t *testing.T) {
		b, f, _ := consentPage(t)
		callback(t, b.submit(f, url.Values{"decision": {"approve"}}), loopbackRedirect)
		expectPage(t, b.submit(f, url.Values{"decision": {"approve"}}), http.StatusBadRequest, "expired")
	})
	t.Run("other browser", func(t *testing.T) {
		_, f, _ := consentPage(t)
		expectPage(t, e.browser().submit(f, url.Values{"decision": {"approve"}}), http.StatusBadRequest, "another browser")
	})
	t.Run("before login", func(t *testing.T) {
		b := e.browser()
		f := parseForm(t, b.startLogin(clientID))
		resp := b.get(e.url + "/consent?request=" + f.fields.Get("request"))
		if resp.Request.URL.Path != "/login" {
			t.Fatalf("consent before login went to %s", resp.Request.URL)
		}
		resp.Body.Close()
		expectPage(t, b.submit(form{action: mustURL(e.url + "/consent"), fields: f.fields}, url.Values{"decision": {"approve"}}), http.StatusOK, "Sign in")
	})
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

// TestHTTPSCookies: with an https public URL the cookies are Secure and
// __Host- prefixed; always HttpOnly, SameSite=Lax, Path=/.
func TestHTTPSCookies(t *testing.T) {
	cfg := config.Default()
	cfg.PublicURL = "https://gw.example.com"
	cfg.Login.Users = hashedUsers()
	cfg.RateLimit = config.RateLimit{}
	st := storeFactory(t, time.Now)
	ring, _ := token.NewRing(cfg.PublicURL, []token.Key{{ID: "k", Secret: []byte(testSecret)}})
	srv, err := New(Options{Config: cfg, Store: st, Ring: ring, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	h := srv.Handler()
	ctx := context.Background()
	c := &store.Client{ID: "c1", RedirectURIs: []string{"https://app.example/cb"}, GrantTypes: []string{"authorization_code"}, ResponseTypes: []string{"code"}}
	if err := st.CreateClient(ctx, c); err != nil {
		t.Fatal(err)
	}
	_, challenge := pkce()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "https://gw.example.com/oauth/authorize?"+url.Values{
		"response_type": {"code"}, "client_id": {"c1"}, "redirect_uri": {"https://app.example/cb"},
		"code_challenge": {challenge}, "code_challenge_method": {"S256"}}.Encode(), nil))
	loc, _ := url.Parse(rec.Header().Get("Location"))
	if rec.Code != http.StatusFound || loc.Host != "gw.example.com" || loc.Path != "/login" {
		t.Fatalf("authorize: %d %s", rec.Code, loc)
	}
	browserCookie := checkCookie(t, rec.Result().Cookies(), "__Host-mcpgw_browser")

	rec = httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, loc.String(), nil)
	req.AddCookie(browserCookie)
	h.ServeHTTP(rec, req)
	req.Response = rec.Result()
	f := parseForm(t, &http.Response{Body: rec.Result().Body, Request: req, StatusCode: rec.Code})

	v := url.Values{"username": {"carol"}, "password": {passwords["carol"]}}
	for k, s := range f.fields {
		v[k] = s
	}
	rec = httptest.NewRecorder()
	req = httptest.NewRequest(http.MethodPost, "https://gw.example.com/login", strings.NewReader(v.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(browserCookie)
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusFound {
		t.Fatalf("login: %d %s", rec.Code, rec.Body)
	}
	sess := checkCookie(t, rec.Result().Cookies(), "__Host-mcpgw_session")
	if sess.MaxAge != int(cfg.TTL.Session.D().Seconds()) {
		t.Fatalf("session cookie Max-Age %d", sess.MaxAge)
	}
	if dev := checkCookie(t, rec.Result().Cookies(), "__Host-mcpgw_device"); dev.MaxAge != int(deviceCookieTTL/time.Second) {
		t.Fatalf("device cookie Max-Age %d", dev.MaxAge)
	}
	// Only a hash of the session id is stored.
	if _, err := st.GetSession(ctx, sess.Value); err == nil {
		t.Fatal("session stored under the clear cookie value")
	}
	if s, err := st.GetSession(ctx, token.Hash(sess.Value)); err != nil || s.UserID != "carol" {
		t.Fatalf("session by hash: %+v %v", s, err)
	}
}

func checkCookie(t *testing.T, cs []*http.Cookie, name string) *http.Cookie {
	t.Helper()
	for _, c := range cs {
		if c.Name == name {
			if !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.Domain != "" {
				t.Fatalf("cookie %s attributes: %+v", name, c)
			}
			return c
		}
	}
	t.Fatalf("no cookie %s in %v", name, cs)
	return nil
}
