package login

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"

	"github.com/mcpgateway/mcp-gateway/config"
	"github.com/mcpgateway/mcp-gateway/oauthsrv"
	"github.com/mcpgateway/mcp-gateway/store"
	"github.com/mcpgateway/mcp-gateway/token"
)

// The attacks of issue 10 (items 11 to 15) by a hostile OpenID Provider.
// Each case names its item; an empty want means the login is refused.

func emailLogin(o *config.OIDCLogin) { o.UserClaim = "email" }

func domains(d ...string) func(*config.OIDCLogin) {
	return func(o *config.OIDCLogin) { o.UserClaim, o.AllowedEmailDomains = "email", d }
}

func verifiedEmail(email string) func(jwt.MapClaims) {
	return func(c jwt.MapClaims) { c["email"], c["email_verified"] = email, true }
}

func TestOIDCHostileProvider(t *testing.T) {
	later := func(d time.Duration) int64 { return time.Now().Add(d).Unix() }
	for _, tc := range []struct {
		name     string
		cfg      func(*config.OIDCLogin)
		claims   func(jwt.MapClaims)
		userinfo func(sub string) map[string]any
		// Exactly one of: the user signed in, the reason of an
		// access_denied (a verified user refused), or a phrase of the log
		// line of an unverifiable answer (502 page).
		want, reason, log string
	}{
		// 11: email_verified speaks of the email in the same answer.
		{name: "11 userinfo's email_verified vouches for another email", cfg: emailLogin,
			claims: func(c jwt.MapClaims) { c["email"] = "alice@example.com" },
			userinfo: func(sub string) map[string]any {
				return map[string]any{"sub": sub, "email": "mallory@evil.org", "email_verified": true}
			},
			log: "email differs"},
		{name: "11 userinfo's email_verified without an email", cfg: emailLogin,
			claims: func(c jwt.MapClaims) { c["email"] = "alice@example.com" },
			userinfo: func(sub string) map[string]any {
				return map[string]any{"sub": sub, "email_verified": true}
			},
			reason: "email_not_verified"},
		{name: "11 a complete id token pair and another email in userinfo",
			cfg:    func(o *config.OIDCLogin) { o.UserClaim, o.AllowedGroups = "email", []string{"staff"} },
			claims: verifiedEmail("alice@example.com"),
			userinfo: func(sub string) map[string]any {
				return map[string]any{"sub": sub, "email": "mallory@evil.org", "email_verified": true, "groups": []string{"staff"}}
			},
			log: "email differs"},
		{name: "11 userinfo confirms the id token's email", cfg: emailLogin,
			claims: func(c jwt.MapClaims) { c["email"] = "alice@example.com" },
			userinfo: func(sub string) map[string]any {
				return map[string]any{"sub": sub, "email": "alice@example.com", "email_verified": true}
			},
			want: "alice@example.com"},
		{name: "11 email only in userinfo", cfg: emailLogin,
			userinfo: func(sub string) map[string]any {
				return map[string]any{"sub": sub, "email": "carol@example.com", "email_verified": "true"}
			},
			want: "carol@example.com"},
		{name: "11 userinfo of another subject", cfg: emailLogin,
			claims: func(c jwt.MapClaims) { c["email"] = "alice@example.com" },
			userinfo: func(string) map[string]any {
				return map[string]any{"sub": "u-alice", "email": "alice@example.com", "email_verified": true}
			},
			log: "subject differs"},

		// 12: invisible and bidi characters in user ids.
		{name: "12 sub with a zero-width space", claims: func(c jwt.MapClaims) { c["sub"] = "alice\u200b" }, reason: "invalid_user_id"},
		{name: "12 sub with a right-to-left override", claims: func(c jwt.MapClaims) { c["sub"] = "\u202ealice" }, reason: "invalid_user_id"},
		{name: "12 sub with a byte-order mark", claims: func(c jwt.MapClaims) { c["sub"] = "\ufeffalice" }, reason: "invalid_user_id"},
		{name: "12 email with a zero-width joiner", cfg: emailLogin, claims: verifiedEmail("ali\u200dce@example.com"), reason: "invalid_user_id"},
		{name: "12 email with a left-to-right isolate", cfg: emailLogin, claims: verifiedEmail("\u2066alice@example.com"), reason: "invalid_user_id"},

		// 13: domain allow-lists fold ASCII only.
		{name: "13 Kelvin sign for k", cfg: domains("kite.io"), claims: verifiedEmail("mallory@\u212Aite.io"), reason: "email_domain_not_allowed"},
		{name: "13 fullwidth letters", cfg: domains("kite.io"), claims: verifiedEmail("mallory@\uff4bite.io"), reason: "email_domain_not_allowed"},
		{name: "13 zero-width space in the domain", cfg: domains("kite.io"), claims: verifiedEmail("mallory@ki\u200bte.io"), reason: "email_domain_not_allowed"},
		{name: "13 ASCII case folds", cfg: domains("Kite.IO"), claims: verifiedEmail("Bob@KITE.io"), want: "Bob@KITE.io"},
		{name: "13 IDN domain in its canonical form", cfg: domains("Bücher.de"), claims: verifiedEmail("ana@bücher.de"), want: "ana@bücher.de"},
		{name: "13 IDN domain as its A-label", cfg: domains("bücher.de"), claims: verifiedEmail("ana@xn--bcher-kva.de"), want: "ana@xn--bcher-kva.de"},
		{name: "13 IDN domain in upper case", cfg: domains("bücher.de"), claims: verifiedEmail("ana@BÜCHER.de"), reason: "email_domain_not_allowed"},

		// 14: OIDC Core §3.1.3.7 steps 3, 4 and 10 (and §2: a sub).
		{name: "14 extra audience without azp", claims: func(c jwt.MapClaims) { c["aud"] = []string{opClientID, "other-client"} }, log: "several audiences"},
		{name: "14 azp of another client", claims: func(c jwt.MapClaims) { c["aud"], c["azp"] = []string{opClientID, "other-client"}, "other-client" }, log: "azp"},
		{name: "14 azp of another client with aud us alone", claims: func(c jwt.MapClaims) { c["azp"] = "other-client" }, log: "azp"},
		{name: "14 azp that is not a string", claims: func(c jwt.MapClaims) { c["azp"] = []string{opClientID} }, log: "azp"},
		{name: "14 extra audience with azp us", claims: func(c jwt.MapClaims) { c["aud"], c["azp"] = []string{opClientID, "other-client"}, opClientID }, want: hostileSub},
		{name: "14 iat an hour ahead", claims: func(c jwt.MapClaims) { c["iat"], c["exp"] = later(time.Hour), later(time.Hour+5*time.Minute) }, log: "in the future"},
		{name: "14 iat within the clock skew", claims: func(c jwt.MapClaims) { c["iat"] = later(30 * time.Second) }, want: hostileSub},
		{name: "14 no iat", claims: func(c jwt.MapClaims) { delete(c, "iat") }, log: "no iat"},
		{name: "14 no sub", cfg: emailLogin, claims: func(c jwt.MapClaims) { delete(c, "sub"); verifiedEmail("alice@example.com")(c) }, log: "no sub"},

		// 16 (for ID tokens too): NumericDates are JSON numbers.
		{name: "16 exp as a string", claims: func(c jwt.MapClaims) { c["exp"] = strconv.FormatInt(later(5*time.Minute), 10) }, log: "exp is not a JSON number"},
		{name: "16 iat as a string", claims: func(c jwt.MapClaims) { c["iat"] = strconv.FormatInt(later(0), 10) }, log: "iat is not a JSON number"},
		{name: "16 auth_time as a string", claims: func(c jwt.MapClaims) { c["auth_time"] = strconv.FormatInt(later(0), 10) }, log: "auth_time is not a JSON number"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newHostileEnv(t, tc.cfg)
			e.op.claims, e.op.userinfo = tc.claims, tc.userinfo
			b, f, resp := e.login()
			switch {
			case tc.want != "":
				if got := e.redeem(b.consent(resp, tc.want), f); got != tc.want {
					t.Fatalf("signed in as %q, want %q", got, tc.want)
				}
				return
			case tc.reason != "":
				expectClientError(t, resp, f, "access_denied")
				e.expectAudit("login_failed", tc.reason)
				// The refused id is logged, escaped: it cannot pass for another.
				for _, m := range e.audits("login_failed") {
					if u, _ := m["user"].(string); strings.IndexFunc(u, func(r rune) bool { return r != ' ' && !store.Visible(r) }) >= 0 {
						t.Fatalf("audit line names the user as %q", u)
					}
				}
			default:
				expectPage(t, resp, http.StatusBadGateway, "could not be verified")
				e.expectAudit("login_failed", "upstream_response_invalid")
				if !strings.Contains(e.logs.String(), tc.log) {
					t.Fatalf("log does not say %q: %s", tc.log, e.logs.String())
				}
			}
			if a := e.audits("login"); len(a) != 0 {
				t.Fatalf("signed in: %v", a)
			}
		})
	}
}

// bigErrorPage is what a provider behind a broken proxy may send: 200 KB
// of HTML with a status 500.
func bigErrorPage(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/html")
	w.WriteHeader(http.StatusInternalServerError)
	fmt.Fprint(w, "<html><body>upstream-error-page ", strings.Repeat("x", 200<<10), "</body></html>")
}

// maxLogLine is a generous bound for one line of the gateway's log.
const maxLogLine = 2 << 10

func expectShortLogLines(t *testing.T, logs, phrase string) {
	t.Helper()
	if !strings.Contains(logs, phrase) || !strings.Contains(logs, "upstream-error-page") {
		t.Fatalf("log does not say %q with the start of the page: %.2000s", phrase, logs)
	}
	for _, l := range strings.Split(logs, "\n") {
		if len(l) > maxLogLine {
			t.Fatalf("a log line of %d bytes (want ≤ %d): %.300s…", len(l), maxLogLine, l)
		}
	}
}

// 15: untrusted upstream text is cut short in the log.
func TestOIDCUpstreamTextTruncated(t *testing.T) {
	t.Run("15 token endpoint error page", func(t *testing.T) {
		e := newHostileEnv(t, nil)
		e.op.tokenFail = bigErrorPage
		_, _, resp := e.login()
		expectPage(t, resp, http.StatusBadGateway, "could not be verified")
		expectShortLogLines(t, e.logs.String(), "code exchange")
	})
	t.Run("15 userinfo error page", func(t *testing.T) {
		e := newHostileEnv(t, emailLogin)
		e.op.infoFail = bigErrorPage
		_, _, resp := e.login()
		expectPage(t, resp, http.StatusBadGateway, "could not be verified")
		expectShortLogLines(t, e.logs.String(), "userinfo")
	})
	t.Run("15 discovery error page", func(t *testing.T) {
		failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { bigErrorPage(w) }))
		t.Cleanup(failing.Close)
		g := newGateway(t, func(cfg *config.Config) {
			cfg.Login.Provider = config.LoginOIDC
			cfg.Login.OIDC.Issuer, cfg.Login.OIDC.ClientID = failing.URL, opClientID
		})
		u, _ := g.authorizeURL()
		expectPage(t, newBrowser(t).get(u), http.StatusBadGateway, "could not be reached")
		expectShortLogLines(t, g.logs.String(), "oidc discovery failed")
	})
}

func TestTrunc(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"short", 64, "short"},
		{strings.Repeat("a", 10), 10, strings.Repeat("a", 10)},
		{strings.Repeat("a", 11), 10, "aaaaaaa…"},
		{"aaaaaé", 10, "aaaaaé"},
		{"aaaaaaééé", 10, "aaaaaa…"}, // never half of é
		{"bad\xffbyte", 64, "bad?byte"},
		{"a b\u202ec\u200b\n\U000e0041", 64, `a b\u202ec\u200b\u000a\U000e0041`},
		{"aaaa\u202e", 10, `aaaa\u202e`},
		{"aaaaa\u202e", 10, "aaaaa…"}, // never half an escape
	} {
		got := trunc(tc.in, tc.n)
		if got != tc.want || len(got) > tc.n {
			t.Errorf("trunc(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}

// 12: the one rule for user ids from every provider.
func TestValidUserID(t *testing.T) {
	for s, want := range map[string]bool{
		"alice": true, "alice@example.com": true, "u-123_x.y+z": true, "ana@bücher.de": true, "名前": true, "émile": true,
		"":                       false,
		strings.Repeat("a", 257): false,
		"alice smith":            false,
		"alice\u00a0":            false, // no-break space
		"alice\u3000":            false, // ideographic space
		"alice\n":                false,
		"alice\x00":              false,
		"alice\u200b":            false, // zero width space (Cf)
		"al\u200dice":            false, // zero width joiner
		"\u202ealice":            false, // right-to-left override (bidi control)
		"\u2066alice\u2069":      false, // isolates
		"\u200ealice":            false, // left-to-right mark
		"alice\u061c":            false, // Arabic letter mark
		"\ufeffalice":            false, // byte-order mark
		"alice\u00ad":            false, // soft hyphen
		"alice\u2028":            false, // line separator
		"alice\U000e0041":        false, // tag letter
		"alice\u3164":            false, // Hangul filler (Lo, default-ignorable)
		"alice\u034f":            false, // combining grapheme joiner
		"alice\ufe0f":            false, // variation selector
		"alice\ue000":            false, // private use
		"alice\U0010fffd":        false, // private use, plane 16
		"alice\U000e01ef":        false, // variation selector supplement
		"alice\xff":              false, // not UTF-8
		"alice\U0001fffe":        false, // noncharacter, unassigned
		"alice\u0378":            false, // unassigned
	} {
		if got := validUserID(s); got != want {
			t.Errorf("validUserID(%q) = %v, want %v", s, got, want)
		}
	}
}

// 13: the allow-list is normalised once, at startup; an entry IDNA cannot
// map stops the gateway rather than matching nothing.
func TestOIDCDomainListAtStartup(t *testing.T) {
	ts := httptest.NewUnstartedServer(nil)
	defer ts.Close()
	cfg := config.Default()
	cfg.PublicURL = "http://" + ts.Listener.Addr().String()
	cfg.Login.Provider = config.LoginOIDC
	cfg.Login.OIDC.Issuer, cfg.Login.OIDC.ClientID = "https://accounts.example.com", opClientID
	cfg.Login.OIDC.AllowedEmailDomains = []string{"example.com", "exa_mple.com"}
	st := storeFactory(t)
	ring, err := token.NewRing(cfg.PublicURL, []token.Key{{ID: "k", Secret: []byte(ringSecret)}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = oauthsrv.New(oauthsrv.Options{Config: cfg, Store: st, Ring: ring, Login: Provider(cfg, st)})
	if err == nil || !strings.Contains(err.Error(), "allowed_email_domains[1]") {
		t.Fatalf("err = %v, want one naming allowed_email_domains[1]", err)
	}
}

// FuzzTrunc: whatever a provider sends, the log gets at most n bytes of
// valid UTF-8 in which every character shows, and short visible text as is.
func FuzzTrunc(f *testing.F) {
	for _, s := range []string{"", "alice", "\u202ealice\u200b", "a\xffb", strings.Repeat("é", 40), "x\U000e0041y"} {
		f.Add(s, 16)
	}
	f.Fuzz(func(t *testing.T, s string, n int) {
		n = 8 + abs(n)%512
		got := trunc(s, n)
		if len(got) > n || !utf8.ValidString(got) || strings.IndexFunc(got, func(r rune) bool { return r != ' ' && !store.Visible(r) }) >= 0 {
			t.Fatalf("trunc(%q, %d) = %q", s, n, got)
		}
		if len(s) <= n && utf8.ValidString(s) && strings.IndexFunc(s, func(r rune) bool { return r != ' ' && !store.Visible(r) }) < 0 && got != s {
			t.Fatalf("trunc(%q, %d) = %q, want it unchanged", s, n, got)
		}
	})
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}
