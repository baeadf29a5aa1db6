package oauthsrv

import (
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mcpgateway/mcp-gateway/config"
	"github.com/mcpgateway/mcp-gateway/token"
)

// TestDeviceCookie: only an unexpired cookie this server MACed for the same
// user (any case) marks a known browser; every altered, foreign, expired or
// malformed value is an unknown browser.
func TestDeviceCookie(t *testing.T) {
	e := newEnv(t)
	rec := httptest.NewRecorder()
	e.srv.setDeviceCookie(rec, "Alice")
	var dc *http.Cookie
	for _, c := range rec.Result().Cookies() {
		if c.Name == "mcpgw_device" {
			dc = c
		}
	}
	if dc == nil || !dc.HttpOnly || dc.SameSite != http.SameSiteLaxMode || dc.MaxAge != int(deviceCookieTTL/time.Second) {
		t.Fatalf("device cookie %+v", dc)
	}
	if strings.Contains(strings.ToLower(dc.Value), "alice") {
		t.Fatalf("the device cookie names its user: %q", dc.Value)
	}
	known := func(value, user string) bool {
		r := httptest.NewRequest(http.MethodPost, "/login", nil)
		if value != "" {
			r.AddCookie(&http.Cookie{Name: "mcpgw_device", Value: value})
		}
		return e.srv.knownDevice(r, user) != ""
	}
	if !known(dc.Value, "alice") || !known(dc.Value, "ALICE") {
		t.Fatal("the server's own device cookie is not recognised")
	}
	p := strings.Split(dc.Value, ".")
	with := func(i int, v string) string {
		q := append([]string(nil), p...)
		q[i] = v
		return strings.Join(q, ".")
	}
	other, err := token.NewRing(e.url, []token.Key{{ID: "k1", Secret: []byte(strings.Repeat("z", 32))}})
	if err != nil {
		t.Fatal(err)
	}
	kid, mac := other.MAC(deviceMACPurpose, deviceMsg("alice", p[1], p[2]))
	foreign := base64.RawURLEncoding.EncodeToString([]byte(kid)) + "." + p[1] + "." + p[2] + "." + base64.RawURLEncoding.EncodeToString(mac)
	for name, v := range map[string]string{
		"none":             "",
		"garbage":          "x",
		"other user":       dc.Value + "|bob",
		"three parts":      strings.Join(p[:3], "."),
		"five parts":       dc.Value + ".x",
		"changed expiry":   with(1, p[1]+"0"),
		"changed nonce":    with(2, token.Random(16)),
		"unknown kid":      with(0, base64.RawURLEncoding.EncodeToString([]byte("k2"))),
		"kid not base64":   with(0, "k1!"),
		"mac not base64":   with(3, "!!"),
		"truncated mac":    with(3, p[3][:20]),
		"another key's":    foreign,
		"oversized":        dc.Value + strings.Repeat("A", maxDeviceCookie),
		"expiry not a num": with(1, "tomorrow"),
	} {
		user := "alice"
		if name == "other user" {
			v, user = dc.Value, "bob"
		}
		if known(v, user) {
			t.Errorf("%s: a known browser", name)
		}
	}
	e.clock.Advance(deviceCookieTTL)
	if known(dc.Value, "alice") {
		t.Error("an expired device cookie still marks a known browser")
	}
}

// TestKnownBrowserSkipsUserBudget: with the per-username budget spent, a
// browser that signed in as the user before still signs in (its own
// address has failures to spare), one that never did gets 429, right
// password or not.
func TestKnownBrowserSkipsUserBudget(t *testing.T) {
	e := newEnv(t, func(c *config.Config, _ *Options) {
		c.RateLimit.LoginPerUser = 2
		c.TrustedProxies = []string{"127.0.0.0/8"}
	})
	clientID := e.register("lockout")
	known := e.browser()
	resp := known.submit(parseForm(t, known.startLogin(clientID)), url.Values{"username": {"alice"}, "password": {passwords["alice"]}})
	if resp.Request.URL.Path != "/consent" {
		t.Fatalf("first login: %d %s", resp.StatusCode, resp.Request.URL)
	}
	resp.Body.Close()
	// Strangers spend alice's budget from addresses of their own.
	for i, ip := range []string{"203.0.113.1", "203.0.113.2", "203.0.113.3"} {
		b := e.browser()
		b.c.Transport = xffTransport(ip)
		want := http.StatusUnauthorized
		if i == 2 {
			want = http.StatusTooManyRequests
		}
		expectPage(t, b.submit(parseForm(t, b.startLogin(clientID)), url.Values{"username": {"alice"}, "password": {"guess"}}), want, "")
	}
	stranger := e.browser()
	expectPage(t, stranger.submit(parseForm(t, stranger.startLogin(clientID)), url.Values{"username": {"alice"}, "password": {passwords["alice"]}}), http.StatusTooManyRequests, "Too many")
	// The known browser, its session gone, signs in.
	later := e.browser()
	u, _ := url.Parse(e.url)
	for _, c := range known.c.Jar.Cookies(u) {
		if c.Name == "mcpgw_device" {
			later.c.Jar.SetCookies(u, []*http.Cookie{{Name: c.Name, Value: c.Value, Path: "/"}})
		}
	}
	resp = later.submit(parseForm(t, later.startLogin(clientID)), url.Values{"username": {"alice"}, "password": {passwords["alice"]}})
	if resp.Request.URL.Path != "/consent" {
		t.Fatalf("known browser during the lockout: %d %s", resp.StatusCode, resp.Request.URL)
	}
	resp.Body.Close()
}

// xffTransport sends every request as a trusted proxy would for client ip.
type xffTransport string

func (ip xffTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("X-Forwarded-For", string(ip))
	return http.DefaultTransport.RoundTrip(r)
}
