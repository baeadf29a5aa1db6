package login

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/mcpgateway/mcp-gateway/config"
	"github.com/mcpgateway/mcp-gateway/oauthsrv"
	"github.com/mcpgateway/mcp-gateway/token"
)

const (
	appIssuer = "https://app.example.com"
	appSecret = "web-app-shared-secret-of-at-least-32-bytes"
)

// webApp plays the product's web app: it has signed the user in already
// and answers the gateway's hand-off with an assertion, as login/README.md
// tells integrators to.
type webApp struct {
	t        *testing.T
	user     string
	returnTo string // what the gateway must send
}

func (a *webApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if r.URL.Path != "/gateway-login" || q.Get("tenant") != "acme" {
		http.Error(w, "unexpected hand-off "+r.URL.String(), http.StatusBadRequest)
		return
	}
	// The app only ever sends users back to the gateway URL it knows.
	if q.Get("return_to") != a.returnTo || q.Get("request") == "" {
		http.Error(w, "bad return_to or request", http.StatusBadRequest)
		return
	}
	assertion := mint(a.t, jwt.MapClaims{
		"iss": appIssuer, "aud": []string{strings.TrimSuffix(a.returnTo, WebAppCallbackPath)}, "sub": a.user,
		"request": q.Get("request"), "iat": time.Now().Unix(), "exp": time.Now().Add(30 * time.Second).Unix(),
		"jti": token.Random(16),
	}, appSecret)
	back := a.returnTo + "?" + url.Values{"request": {q.Get("request")}, "assertion": {assertion}}.Encode()
	http.Redirect(w, r, back, http.StatusFound)
}

func mint(t *testing.T, c jwt.MapClaims, secret string) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

type webEnv struct {
	*gateway
	app    *webApp
	appURL string
}

func newWebEnv(t *testing.T) *webEnv {
	app := &webApp{t: t, user: "alice@example.com"}
	ts := httptest.NewServer(app)
	t.Cleanup(ts.Close)
	g := newGateway(t, func(cfg *config.Config) {
		cfg.Login.Provider = config.LoginWebApp
		cfg.Login.WebApp = config.WebAppLogin{LoginURL: ts.URL + "/gateway-login?tenant=acme", Issuer: appIssuer, Secret: appSecret}
	})
	app.returnTo = g.url + WebAppCallbackPath
	return &webEnv{gateway: g, app: app, appURL: ts.URL}
}

// start authorizes in b and returns the pending request id the gateway
// handed to the web app.
func (e *webEnv) start(b *browser) (string, *flow) {
	e.t.Helper()
	u, f := e.authorizeURL()
	resp := b.get(u)
	defer resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || err != nil || !strings.HasPrefix(loc.String(), e.appURL+"/gateway-login?") {
		e.t.Fatalf("authorize: %d to %q, want the web app", resp.StatusCode, resp.Header.Get("Location"))
	}
	q := loc.Query()
	if q.Get("tenant") != "acme" || q.Get("return_to") != e.url+WebAppCallbackPath || q.Get("request") == "" {
		e.t.Fatalf("hand-off query %v", q)
	}
	return q.Get("request"), f
}

func (e *webEnv) callback(id, assertion string) string {
	v := url.Values{"request": {id}}
	if assertion != "" {
		v.Set("assertion", assertion)
	}
	return e.url + WebAppCallbackPath + "?" + v.Encode()
}

// claims are a valid assertion's claims for pending request id.
func (e *webEnv) claims(id string) jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{
		"iss": appIssuer, "aud": e.url, "sub": "alice@example.com", "request": id,
		"iat": now.Unix(), "exp": now.Add(30 * time.Second).Unix(), "jti": token.Random(16),
	}
}

func TestWebAppFullFlow(t *testing.T) {
	e := newWebEnv(t)
	b := newBrowser(t)
	u, f := e.authorizeURL()
	// authorize → web app → /login/callback → consent.
	resp := b.follow(b.get(u), atClient, nil)
	if got := e.redeem(b.consent(resp, "alice@example.com"), f); got != "alice@example.com" {
		t.Fatalf("access token sub %q", got)
	}
	if a := e.audits("login"); len(a) != 1 || a[0]["user"] != "alice@example.com" {
		t.Fatalf("login audit lines %v", a)
	}

	// A second client in the same browser: the session skips the web app.
	u, f = e.authorizeURL()
	resp = b.follow(b.get(u), atClient, nil)
	if got := e.redeem(b.consent(resp, "alice@example.com"), f); got != "alice@example.com" {
		t.Fatalf("second login: sub %q", got)
	}
}

func TestWebAppBadAssertions(t *testing.T) {
	e := newWebEnv(t)
	for _, tc := range []struct {
		name   string
		secret string
		mod    func(c jwt.MapClaims, id string)
		raw    func(c jwt.MapClaims) string // instead of signing with secret
	}{
		{name: "bad signature", secret: "another-secret-of-at-least-32-bytes!!"},
		{name: "wrong aud", mod: func(c jwt.MapClaims, _ string) { c["aud"] = "https://other-gateway.example" }},
		{name: "aud missing", mod: func(c jwt.MapClaims, _ string) { delete(c, "aud") }},
		{name: "wrong iss", mod: func(c jwt.MapClaims, _ string) { c["iss"] = "https://evil.example" }},
		{name: "expired", mod: func(c jwt.MapClaims, _ string) {
			c["iat"], c["exp"] = time.Now().Add(-2*time.Minute).Unix(), time.Now().Add(-90*time.Second).Unix()
		}},
		{name: "exp too far after iat", mod: func(c jwt.MapClaims, _ string) { c["exp"] = time.Now().Add(10 * time.Minute).Unix() }},
		{name: "exp missing", mod: func(c jwt.MapClaims, _ string) { delete(c, "exp") }},
		{name: "iat missing", mod: func(c jwt.MapClaims, _ string) { delete(c, "iat") }},
		{name: "iat in the future", mod: func(c jwt.MapClaims, _ string) {
			c["iat"], c["exp"] = time.Now().Add(5*time.Minute).Unix(), time.Now().Add(5*time.Minute+30*time.Second).Unix()
		}},
		{name: "request mismatch", mod: func(c jwt.MapClaims, id string) { c["request"] = id + "x" }},
		{name: "request missing", mod: func(c jwt.MapClaims, _ string) { delete(c, "request") }},
		{name: "sub empty", mod: func(c jwt.MapClaims, _ string) { c["sub"] = "" }},
		{name: "sub with spaces", mod: func(c jwt.MapClaims, _ string) { c["sub"] = "alice smith" }},
		{name: "sub too long", mod: func(c jwt.MapClaims, _ string) { c["sub"] = strings.Repeat("a", 257) }},
		{name: "jti missing", mod: func(c jwt.MapClaims, _ string) { delete(c, "jti") }},
		// Issue 10 item 12: invisible and bidi characters in the user id.
		{name: "12 sub with a zero-width space", mod: func(c jwt.MapClaims, _ string) { c["sub"] = "alice\u200b@example.com" }},
		{name: "12 sub with a right-to-left override", mod: func(c jwt.MapClaims, _ string) { c["sub"] = "\u202ealice@example.com" }},
		{name: "12 sub with a byte-order mark", mod: func(c jwt.MapClaims, _ string) { c["sub"] = "\ufeffalice@example.com" }},
		// Item 16: NumericDates are JSON numbers (RFC 7519 §2), and no
		// "crit" extension is understood (RFC 7515 §4.1.11).
		{name: "16 exp as a string", mod: func(c jwt.MapClaims, _ string) { c["exp"] = strconv.FormatInt(c["exp"].(int64), 10) }},
		{name: "16 iat as a string", mod: func(c jwt.MapClaims, _ string) { c["iat"] = strconv.FormatInt(c["iat"].(int64), 10) }},
		{name: "16 nbf as a string", mod: func(c jwt.MapClaims, _ string) { c["nbf"] = strconv.FormatInt(c["iat"].(int64), 10) }},
		{name: "16 crit header", raw: func(c jwt.MapClaims) string {
			tok := jwt.NewWithClaims(jwt.SigningMethodHS256, c)
			tok.Header["crit"] = []string{"x-tenant"}
			tok.Header["x-tenant"] = "acme"
			s, _ := tok.SignedString([]byte(appSecret))
			return s
		}},
		{name: "16 empty crit header", raw: func(c jwt.MapClaims) string {
			tok := jwt.NewWithClaims(jwt.SigningMethodHS256, c)
			tok.Header["crit"] = []string{}
			s, _ := tok.SignedString([]byte(appSecret))
			return s
		}},
		{name: "alg none", raw: func(c jwt.MapClaims) string {
			s, _ := jwt.NewWithClaims(jwt.SigningMethodNone, c).SignedString(jwt.UnsafeAllowNoneSignatureType)
			return s
		}},
		{name: "HS512", raw: func(c jwt.MapClaims) string {
			s, _ := jwt.NewWithClaims(jwt.SigningMethodHS512, c).SignedString([]byte(appSecret))
			return s
		}},
		{name: "garbage", raw: func(jwt.MapClaims) string { return "not.a.jwt" }},
		{name: "oversized", raw: func(jwt.MapClaims) string { return strings.Repeat("a", 5000) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBrowser(t)
			id, _ := e.start(b)
			c := e.claims(id)
			if tc.mod != nil {
				tc.mod(c, id)
			}
			secret := appSecret
			if tc.secret != "" {
				secret = tc.secret
			}
			var a string
			if tc.raw != nil {
				a = tc.raw(c)
			} else {
				a = mint(t, c, secret)
			}
			expectPage(t, b.get(e.callback(id, a)), http.StatusBadRequest, "could not be verified")
			// Refused assertions leave the request usable with a good one.
			resp := b.follow(b.get(e.callback(id, mint(t, e.claims(id), appSecret))), atClient, nil)
			if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/consent" {
				t.Fatalf("good assertion after a bad one: %d at %s", resp.StatusCode, resp.Request.URL)
			}
			resp.Body.Close()
		})
	}
	e.expectAudit("login_failed", "bad_assertion")
}

func TestWebAppReplayAndBrowserBinding(t *testing.T) {
	e := newWebEnv(t)
	b := newBrowser(t)
	id, f := e.start(b)
	a := mint(t, e.claims(id), appSecret)
	cb := e.callback(id, a)

	// Another browser, without the binding cookie, cannot use the link.
	expectPage(t, newBrowser(t).get(cb), http.StatusBadRequest, "another browser")
	// Nor can a browser with a binding cookie of its own.
	other := newBrowser(t)
	e.start(other)
	expectPage(t, other.get(cb), http.StatusBadRequest, "another browser")

	// The right browser signs in once ...
	resp := b.follow(b.get(cb), atClient, nil)
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/consent" {
		t.Fatalf("callback: %d at %s", resp.StatusCode, resp.Request.URL)
	}
	resp.Body.Close()
	// ... and the same assertion cannot be used again.
	expectPage(t, b.get(cb), http.StatusBadRequest, "already used")
	e.expectAudit("login_failed", "assertion_replayed")
	if n := len(e.audits("login")); n != 1 {
		t.Fatalf("%d logins, want 1", n)
	}
	// The login itself still completes.
	resp = b.get(e.url + "/consent?request=" + url.QueryEscape(id))
	if got := e.redeem(b.consent(resp, "alice@example.com"), f); got != "alice@example.com" {
		t.Fatalf("sub %q", got)
	}
}

func TestWebAppMissingAndErrors(t *testing.T) {
	e := newWebEnv(t)
	b := newBrowser(t)
	id, f := e.start(b)
	expectPage(t, b.get(e.callback(id, "")), http.StatusBadRequest, "no sign-in assertion")
	expectPage(t, b.get(e.url+WebAppCallbackPath), http.StatusBadRequest, "incomplete")
	expectPage(t, b.get(e.callback("no-such-request", mint(t, e.claims("no-such-request"), appSecret))), http.StatusBadRequest, "expired")
	expectPage(t, b.get(e.callback(id, "a")+"&assertion=b"), http.StatusBadRequest, "malformed")

	// The web app reports that the user gave up: access_denied to the client.
	resp := b.get(e.url + WebAppCallbackPath + "?" + url.Values{"request": {id}, "error": {"access_denied"}}.Encode())
	expectClientError(t, resp, f, "access_denied")
	e.expectAudit("login_failed", "webapp_error")
	// The request is gone afterwards.
	expectPage(t, b.get(e.callback(id, mint(t, e.claims(id), appSecret))), http.StatusBadRequest, "expired")

	r, err := http.PostForm(e.url+WebAppCallbackPath, url.Values{"request": {id}})
	if err != nil {
		t.Fatal(err)
	}
	expectPage(t, r, http.StatusMethodNotAllowed, "does not accept")
}

func TestProviderSelection(t *testing.T) {
	cfg := config.Default()
	if Provider(cfg, nil) != nil {
		t.Fatal("builtin must leave the choice to oauthsrv (nil)")
	}
	cfg.Login.Provider = "saml"
	if _, err := Provider(cfg, nil)(nil); err == nil || !strings.Contains(err.Error(), `"saml"`) {
		t.Fatalf("unknown provider: err = %v", err)
	}
	// A web-app secret file that is too short fails at startup.
	ts := httptest.NewUnstartedServer(nil)
	defer ts.Close()
	cfg = config.Default()
	cfg.PublicURL = "http://" + ts.Listener.Addr().String()
	cfg.Login.Provider = config.LoginWebApp
	cfg.Login.WebApp = config.WebAppLogin{LoginURL: "https://app.example.com/login", Issuer: "app", SecretFile: t.TempDir() + "/missing"}
	st := storeFactory(t)
	ring, err := token.NewRing(cfg.PublicURL, []token.Key{{ID: "k", Secret: []byte(ringSecret)}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = oauthsrv.New(oauthsrv.Options{Config: cfg, Store: st, Ring: ring, Login: Provider(cfg, st)})
	if err == nil || !strings.Contains(err.Error(), "login.webapp.secret_file") {
		t.Fatalf("missing secret file: err = %v", err)
	}
	// Without Options.Login, oauthsrv names what is missing.
	_, err = oauthsrv.New(oauthsrv.Options{Config: cfg, Store: st, Ring: ring})
	if err == nil || !strings.Contains(err.Error(), "login.Provider") {
		t.Fatalf("oauthsrv without a login provider: err = %v", err)
	}
}
