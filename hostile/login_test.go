package hostile

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/mcpgateway/mcp-gateway/admin"
	"github.com/mcpgateway/mcp-gateway/config"
	"github.com/mcpgateway/mcp-gateway/internal/logtest"
)

// Attacks on the login budgets, on the client address behind proxies and on
// the admin token (issue 10, items 3, 8 and 9). The login and address cases
// run through the matrix's checks: status and answer kind, store writes
// during the attack, redirects, and no secret in the logs.

// deviceCookie is the device cookie's name on an http issuer.
const deviceCookie = "mcpgw_device"

func TestHostileLogin(t *testing.T) {
	runAttacks(t, loginAttacks())
}

// behind: every login attempt comes through a trusted proxy on 127.0.0.1,
// so a case can speak from any client address (X-Forwarded-For).
func behind(c *config.Config) { c.TrustedProxies = []string{"127.0.0.1/32"}; c.RateLimit.Login = 100 }

// postFrom posts form v to /login in b as the client at ip.
func (b *browser) postFrom(ip string, v url.Values) *reply {
	req, _ := http.NewRequest(http.MethodPost, b.g.url+"/login", strings.NewReader(v.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if ip != "" {
		req.Header.Set("X-Forwarded-For", ip)
	}
	return b.do(req)
}

// signIn logs user in once in a fresh browser (which so gets its device
// cookie) and returns that browser.
func (g *gw) signIn(clientID, user string) *browser {
	g.t.Helper()
	_, ch := pkce()
	b := g.browser()
	b.consentPage(clientID, ch, user, nil)
	if b.cookie(deviceCookie) == "" {
		g.t.Fatalf("no device cookie after %s signed in", user)
	}
	return b
}

// cookie is the value of b's cookie name on the gateway ("" if none).
func (b *browser) cookie(name string) string {
	u, _ := url.Parse(b.g.url)
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

// laterBrowser is the same browser after its session has ended: a fresh
// one holding only b's device cookie (value overrides it when not "").
func (g *gw) laterBrowser(b *browser, value string) *browser {
	n := g.browser()
	if value == "" {
		value = b.cookie(deviceCookie)
	}
	u, _ := url.Parse(g.url)
	n.c.Jar.(*cookiejar.Jar).SetCookies(u, []*http.Cookie{{Name: deviceCookie, Value: value, Path: "/"}})
	return n
}

// lockOut starts the attack (g.begin) and spends user's budget of failed
// logins as strangers would: one wrong guess from each of many addresses,
// from a browser that never signed in; the next stranger's guess is refused.
func (g *gw) lockOut(t *testing.T, clientID, user string) {
	t.Helper()
	_, ch := pkce()
	b := g.browser()
	v := formFields(t, b.loginPage(clientID, ch, nil))
	v.Set("username", user)
	g.begin()
	for i := range g.cfg.RateLimit.LoginPerUser {
		v.Set("password", fmt.Sprintf("guess-%d", i))
		if r := b.postFrom(fmt.Sprintf("203.0.113.%d", i+1), v); r.status != http.StatusUnauthorized {
			t.Fatalf("stranger's guess %d: %d", i, r.status)
		}
	}
	v.Set("password", "one-more-guess")
	if r := b.postFrom("203.0.113.200", v); r.status != http.StatusTooManyRequests {
		t.Fatalf("stranger after the budget: %d, want 429", r.status)
	}
}

// loginForm is a fresh login page's form in b, filled in for user.
func loginForm(t *testing.T, g *gw, b *browser, clientID, user, password string) url.Values {
	t.Helper()
	_, ch := pkce()
	v := formFields(t, b.loginPage(clientID, ch, nil))
	v.Set("username", user)
	v.Set("password", password)
	return v
}

func loginAttacks() []attack {
	const js = "application/json"
	reg := `{"redirect_uris":["` + loopback + `"]}`
	// lockedOut: a browser with device cookie value cookieOf(g, victim's
	// browser, alice's browser) tries victim's right password while
	// strangers hold victim's budget.
	lockedOut := func(name string, cookieOf func(g *gw, victim, alice *browser) string) attack {
		return attack{name: "login/" + name, tweak: behind, want: want{429, "", kPage, nil},
			run: func(t *testing.T, g *gw) *reply {
				id := g.register()
				victim, alice := g.signIn(id, "victim"), g.signIn(id, "alice")
				b := g.laterBrowser(victim, cookieOf(g, victim, alice))
				v := loginForm(t, g, b, id, "victim", passwords["victim"])
				g.lockOut(t, id, "victim")
				return b.postForm("/login", v)
			}}
	}
	return []attack{
		// Item 3: ten wrong passwords from anywhere used to lock the user
		// out of every browser for 15 minutes.
		{name: "login/strangers_cannot_lock_out_a_known_browser", tweak: behind,
			want: want{200, "", kPage, map[string]int{"PutSession": 1, "PutAuthRequest": 1}}, // the login, then the consent page
			run: func(t *testing.T, g *gw) *reply {
				id := g.register()
				b := g.laterBrowser(g.signIn(id, "victim"), "") // its session has ended since
				v := loginForm(t, g, b, id, "victim", passwords["victim"])
				g.lockOut(t, id, "victim")
				return b.postForm("/login", v)
			},
			then: func(t *testing.T, g *gw, r *reply) {
				if r.url.Path != "/consent" {
					t.Fatalf("the victim's own browser ended at %s, want the consent page", r.url)
				}
			}},
		lockedOut("unknown_browser_stays_locked", func(*gw, *browser, *browser) string { return "none" }),
		lockedOut("device_cookie_of_another_user_does_not_unlock", func(_ *gw, _, alice *browser) string { return alice.cookie(deviceCookie) }),
		lockedOut("device_cookie_with_changed_expiry_does_not_unlock", func(_ *gw, victim, _ *browser) string {
			p := strings.Split(victim.cookie(deviceCookie), ".")
			p[1] += "9"
			return strings.Join(p, ".")
		}),
		lockedOut("device_cookie_under_an_unknown_key_does_not_unlock", func(_ *gw, victim, _ *browser) string {
			p := strings.Split(victim.cookie(deviceCookie), ".")
			p[0] = "azI" // "k2"
			return strings.Join(p, ".")
		}),
		lockedOut("session_cookie_as_device_cookie_does_not_unlock", func(_ *gw, victim, _ *browser) string {
			return victim.cookie("mcpgw_session")
		}),
		{name: "login/throttled_answer_hides_the_password", tweak: behind, want: want{429, "", kPage, nil},
			run: func(t *testing.T, g *gw) *reply {
				id := g.register()
				b := g.browser()
				right := loginForm(t, g, b, id, "victim", passwords["victim"])
				g.lockOut(t, id, "victim")
				wrong := maps.Clone(right)
				wrong.Set("password", "wrong-guess")
				w := b.postForm("/login", wrong)
				r := b.postForm("/login", right)
				if w.status != r.status || !bytes.Equal(w.body, r.body) || w.hdr.Get("Retry-After") == "" {
					t.Errorf("a throttled attempt tells its password: wrong %d %q, right %d %q", w.status, w.body, r.status, r.body)
				}
				return r
			}},
		// The device cookie lifts the per-username budget only: guesses from
		// one address through it (a stolen cookie) stay capped per
		// (address, username), so brute force is as hard as before.
		{name: "login/known_browser_still_capped_per_address", tweak: behind, want: want{429, "", kPage, nil},
			run: func(t *testing.T, g *gw) *reply {
				id := g.register()
				b := g.laterBrowser(g.signIn(id, "victim"), "")
				v := loginForm(t, g, b, id, "victim", "")
				g.begin()
				for i := range g.cfg.RateLimit.LoginPerUser {
					v.Set("password", fmt.Sprintf("guess-%d", i))
					if r := b.postFrom("198.51.100.9", v); r.status != http.StatusUnauthorized {
						t.Fatalf("guess %d: %d", i, r.status)
					}
				}
				v.Set("password", passwords["victim"])
				return b.postFrom("198.51.100.9", v)
			}},
		{name: "login/stolen_device_cookie_capped_across_addresses", tweak: behind, want: want{429, "", kPage, nil},
			run: func(t *testing.T, g *gw) *reply {
				id := g.register()
				b := g.laterBrowser(g.signIn(id, "victim"), "")
				v := loginForm(t, g, b, id, "victim", "")
				g.begin()
				for i := range g.cfg.RateLimit.LoginPerUser {
					v.Set("password", fmt.Sprintf("guess-%d", i))
					if r := b.postFrom(fmt.Sprintf("203.0.113.%d", i+1), v); r.status != http.StatusUnauthorized {
						t.Fatalf("guess %d: %d", i, r.status)
					}
				}
				v.Set("password", passwords["victim"])
				return b.postFrom("198.51.100.77", v)
			}},

		// Item 8: a client whose own address is a trusted (private) one
		// wrote any address to its left and got a fresh budget each time.
		{name: "xff/rotating_spoof_from_a_private_address",
			tweak: func(c *config.Config) {
				c.TrustedProxies = []string{"127.0.0.1/32", "10.0.0.0/8"}
				c.RateLimit.Register = 20
			},
			want: want{429, "rate_limited", kJSON, nil},
			run: func(t *testing.T, g *gw) *reply {
				for i := range g.cfg.RateLimit.Register {
					if r := g.post("/oauth/register", js, reg, "X-Forwarded-For", fmt.Sprintf("203.0.113.%d, 10.0.0.5", i)); r.status != http.StatusCreated {
						t.Fatalf("registration %d: %d", i, r.status)
					}
				}
				g.begin()
				return g.post("/oauth/register", js, reg, "X-Forwarded-For", "203.0.113.250, 10.0.0.5")
			}},
		{name: "xff/two_trusted_hops_find_the_client",
			tweak: func(c *config.Config) {
				c.TrustedProxies = []string{"127.0.0.1/32"}
				c.TrustedHops = 2
				c.RateLimit.Register = 20
			},
			want: want{429, "rate_limited", kJSON, nil},
			run: func(t *testing.T, g *gw) *reply {
				// A load balancer appends the client, nginx the balancer.
				for i := range g.cfg.RateLimit.Register {
					if r := g.post("/oauth/register", js, reg, "X-Forwarded-For", fmt.Sprintf("203.0.113.%d, 198.51.100.7, 10.0.0.9", i)); r.status != http.StatusCreated {
						t.Fatalf("registration %d: %d", i, r.status)
					}
				}
				g.begin()
				return g.post("/oauth/register", js, reg, "X-Forwarded-For", "203.0.113.250, 198.51.100.7, 10.0.0.9")
			},
			then: func(t *testing.T, g *gw, _ *reply) {
				if r := g.post("/oauth/register", js, reg, "X-Forwarded-For", "198.51.100.8, 10.0.0.9"); r.status != http.StatusCreated {
					t.Errorf("another client through the same proxies: %d, want its own budget", r.status)
				}
			}},
	}
}

// TestHostileAdminToken (item 9): serve refuses a short admin token, and on
// the admin API wrong, missing and short tokens are refused and, past the
// per-address budget, throttled: 429 + Retry-After even for the right
// token, with no store write and no presented token in the logs.
func TestHostileAdminToken(t *testing.T) {
	const good = "hostile-admin-token-0123456789abcdef"
	cfg := config.Default()
	cfg.SigningKeys = []config.SigningKey{{ID: signingKID, Secret: signingSecret}}
	cfg.AdminToken = "x"
	if err := cfg.Validate(false); err == nil || !strings.Contains(err.Error(), "admin_token") {
		t.Fatalf("serve accepts a 1-byte admin token: %v", err)
	}
	limit := config.Default().RateLimit.AdminAuth
	if limit <= 0 {
		t.Fatalf("failed admin authentications are not limited by default (%d)", limit)
	}
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			st := &countingStore{Store: b.open(t)}
			logs := &logtest.Buffer{}
			srv := httptest.NewServer(admin.New(admin.Options{
				Token: good, Store: st, AuthFailLimit: limit, Logger: slog.New(slog.NewJSONHandler(logs, nil)),
			}).Handler())
			t.Cleanup(srv.Close)
			call := func(auth string) (int, http.Header, map[string]any) {
				req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, srv.URL+"/admin/v1/keys", strings.NewReader(`{"kind":"user","user":"mallory"}`))
				req.Header.Set("Content-Type", "application/json")
				if auth != "" {
					req.Header.Set("Authorization", auth)
				}
				resp, err := srv.Client().Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				var m map[string]any
				body, _ := io.ReadAll(resp.Body)
				if err := json.Unmarshal(body, &m); err != nil {
					t.Fatalf("%d: not JSON: %s", resp.StatusCode, body)
				}
				return resp.StatusCode, resp.Header, m
			}
			guesses := []string{"", "Bearer ", "Bearer x", "Basic " + good, "Bearer " + good[:len(good)-1], "Bearer " + strings.Repeat("x", len(good)), "Bearer " + good + "x"}
			for i := range limit {
				if status, _, m := call(guesses[i%len(guesses)]); status != http.StatusUnauthorized {
					t.Fatalf("guess %d (%.12q): %d %v, want 401", i, guesses[i%len(guesses)], status, m)
				}
			}
			for _, auth := range []string{"Bearer wrong", "Bearer " + good} {
				status, h, m := call(auth)
				if status != http.StatusTooManyRequests || h.Get("Retry-After") == "" || m["error"] == "" {
					t.Fatalf("%.12q after %d failures: %d Retry-After %q %v, want 429", auth, limit, status, h.Get("Retry-After"), m)
				}
			}
			if w := st.snapshot(); len(w) != 0 {
				t.Errorf("store writes: %v, want none", w)
			}
			if l := logs.String(); strings.Contains(l, strings.Repeat("x", len(good))) || strings.Contains(l, good) {
				t.Error("a presented admin token reached the logs")
			}
		})
	}
}
