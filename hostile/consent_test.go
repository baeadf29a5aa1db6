package hostile

import (
	"context"
	"html"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/mcpgateway/mcp-gateway/store"
)

// Consent and redirect trust (issue 10, items 2 and 4, and the browser
// binding gap): remembered consent never approves a loopback or custom
// scheme redirect, registration refuses schemes that launch local
// handlers, an authorization error goes back only to a redirect URI the
// user approved, and a pending request is bound to its browser even when
// another browser brings its own binding cookie.
func TestHostileConsent(t *testing.T) { runAttacks(t, consentAttacks()) }

const (
	approvedLoopback = "http://127.0.0.1:9999/cb"
	phishURI         = "https://evil.example/phish"
)

// approve runs authorize → (login) → (consent: approve) in b as user for
// redirect and returns the code's callback; b keeps its session.
func (b *browser) approve(clientID, redirect, user string, extra url.Values) url.Values {
	t := b.g.t
	t.Helper()
	_, ch := pkce()
	r := b.get(b.g.authzURL(clientID, redirect, ch, extra))
	if r.status == http.StatusOK && r.url.Path == "/login" {
		r = b.login(r, user)
	}
	if r.status == http.StatusOK && r.url.Path == "/consent" {
		v := formFields(t, r)
		v.Set("decision", "approve")
		r = b.postForm("/consent", v)
	}
	if r.status != http.StatusFound {
		t.Fatalf("approval: %d at %v: %.300s", r.status, r.url, r.body)
	}
	q := r.location(t).Query()
	if q.Get("code") == "" {
		t.Fatalf("approval without a code: %v", q)
	}
	b.g.secret(q.Get("code"))
	return q
}

// backLink is the href of an error page's link back to the application.
func backLink(t *testing.T, r *reply) *url.URL {
	t.Helper()
	_, rest, ok := strings.Cut(string(r.body), `<a id="back" href="`)
	raw, _, _ := strings.Cut(rest, `"`)
	u, err := url.Parse(html.UnescapeString(raw))
	if !ok || err != nil {
		t.Fatalf("error page without a link back: %.400s", r.body)
	}
	return u
}

// atConsent: the attack stopped at the consent page, no code issued.
func atConsent(t *testing.T, _ *gw, r *reply) {
	if r.url.Path != "/consent" || !strings.Contains(string(r.body), `value="approve"`) {
		t.Errorf("ended at %v, want the consent page: %.300s", r.url, r.body)
	}
}

// noBack: the page offers no link at all (the redirect URI itself is bad).
func noBack(t *testing.T, _ *gw, r *reply) {
	if strings.Contains(string(r.body), `id="back"`) {
		t.Errorf("the page links to a refused redirect URI: %.400s", r.body)
	}
}

func consentAttacks() []attack {
	// A local process replays an approved loopback client on its own port
	// (or on the approved one, once it is free) with its own PKCE.
	loopbackReplay := func(name, redirect string) attack {
		return attack{name: "consent/" + name, want: want{200, "", kPage, map[string]int{"PutAuthRequest": 2}},
			run: func(t *testing.T, g *gw) *reply {
				id := g.register(approvedLoopback)
				b := g.browser()
				b.approve(id, approvedLoopback, "alice", nil)
				_, ch := pkce()
				g.begin()
				return b.get(g.authzURL(id, redirect, ch, nil))
			},
			then: atConsent}
	}
	evilScheme := func(name, uri string) attack {
		return registerCase("evil_scheme_"+name, 400, "invalid_redirect_uri", "application/json", `{"redirect_uris":["`+uri+`"]}`)
	}
	// An attacker registers phishURI anonymously and sends a malformed
	// request: the gateway must not bounce the victim there.
	phish := func(name string, status int, code string, extra url.Values) attack {
		return attack{name: "authorize/unapproved_https_" + name, want: want{status, code, kPage, nil},
			run: func(t *testing.T, g *gw) *reply {
				id := g.register(phishURI)
				_, ch := pkce()
				g.begin()
				return g.get(g.authzURL(id, phishURI, ch, extra))
			},
			then: func(t *testing.T, g *gw, r *reply) {
				if u := backLink(t, r); u.Host != "evil.example" || !strings.Contains(string(r.body), "Return to the application (evil.example)") {
					t.Errorf("the page does not say where its link goes: %v", u)
				}
			}}
	}
	return []attack{
		loopbackReplay("loopback_other_port_not_auto_approved", "http://127.0.0.1:31337/cb"),
		loopbackReplay("loopback_same_port_not_auto_approved", approvedLoopback),
		attack{name: "consent/custom_scheme_not_auto_approved", want: want{200, "", kPage, map[string]int{"PutAuthRequest": 2}},
			run: func(t *testing.T, g *gw) *reply {
				const cursor = "cursor://anysphere.cursor-retrieval/oauth/user-mcp/callback"
				id := g.register(cursor)
				b := g.browser()
				b.approve(id, cursor, "alice", nil)
				_, ch := pkce()
				g.begin()
				return b.get(g.authzURL(id, cursor, ch, nil))
			},
			then: atConsent},

		evilScheme("ms_msdt", "ms-msdt:/id"),
		evilScheme("search_ms", "search-ms:query=x"),
		evilScheme("ms_officecmd", "ms-officecmd:x"),
		evilScheme("ms_settings_upper_case", "MS-SETTINGS:privacy"),
		evilScheme("plain_custom", "evilapp://cb"),

		phish("missing_response_type", 400, "invalid_request", url.Values{"response_type": {""}}),
		phish("no_pkce", 400, "invalid_request", url.Values{"code_challenge": {""}, "code_challenge_method": {""}}),
		phish("unknown_scope", 400, "invalid_scope", url.Values{"scope": {"root"}}),
		phish("foreign_resource", 400, "invalid_target", url.Values{"resource": {"https://evil.example/alpha/mcp"}}),
		// The victim is signed in already: an agent they may not use must
		// not turn into a silent redirect either.
		attack{name: "authorize/unapproved_https_agent_refusal_with_session", want: want{403, "access_denied", kPage, map[string]int{"PutAuthRequest": 1}},
			run: func(t *testing.T, g *gw) *reply {
				b := g.browser()
				b.approve(g.register(), loopback, "bob", nil) // bob's session
				id := g.register(phishURI)
				_, ch := pkce()
				g.begin()
				return b.get(g.authzURL(id, phishURI, ch, url.Values{"resource": {g.resource("private")}}))
			}},
		// Stored before the scheme rules: refused at authorize, never linked.
		attack{name: "authorize/legacy_handler_scheme_client", want: want{400, "", kPage, nil},
			run: func(t *testing.T, g *gw) *reply {
				c := &store.Client{ID: "legacy-msdt", RedirectURIs: []string{"ms-msdt:/id"}, GrantTypes: []string{"authorization_code"}, ResponseTypes: []string{"code"}}
				if err := g.st.Store.CreateClient(context.Background(), c); err != nil {
					t.Fatal(err)
				}
				_, ch := pkce()
				g.begin()
				return g.get(g.authzURL(c.ID, "ms-msdt:/id", ch, url.Values{"response_type": {""}}))
			},
			then: noBack},

		// Browser B has its own binding cookie (and even alice's session)
		// and replays A's request id and CSRF value.
		attack{name: "login/post_from_another_browser_with_its_own_binding", want: want{400, "", kPage, nil},
			run: func(t *testing.T, g *gw) *reply {
				id := g.register()
				other := g.browser()
				_, ch := pkce()
				other.loginPage(id, ch, nil) // B's own binding cookie
				v := formFields(t, g.browser().loginPage(id, ch, nil))
				v.Set("username", "alice")
				v.Set("password", passwords["alice"])
				g.begin()
				return other.postForm("/login", v)
			}},
		attack{name: "consent/post_from_another_signed_in_browser_with_its_own_binding", want: want{400, "", kPage, nil},
			run: func(t *testing.T, g *gw) *reply {
				id := g.register()
				other := g.browser()
				other.approve(id, loopback, "alice", nil) // B: binding cookie and alice's session
				_, ch := pkce()
				v := formFields(t, g.browser().consentPage(id, ch, "alice", nil))
				v.Set("decision", "approve")
				g.begin()
				return other.postForm("/consent", v)
			}},
	}
}
