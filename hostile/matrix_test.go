package hostile

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/mcpgateway/mcp-gateway/config"
	"github.com/mcpgateway/mcp-gateway/oauthsrv"
	"github.com/mcpgateway/mcp-gateway/store"
	"github.com/mcpgateway/mcp-gateway/token"
)

// The hostile-input matrix: every attack the gateway must withstand, by
// name, with the answer it must give. Each case builds its own gateway (so
// rate-limit windows and caches never leak between cases), sets up what
// the attack needs, calls g.begin(), attacks, and returns the answer.
// After the attack the runner checks the expected status and OAuth error,
// that the store saw exactly the writes listed in want.writes (none by
// default: nothing registered, stored, issued or revoked), that no answer
// redirected to an unregistered URI or carried a code or token, and that no
// secret reached the logs.

// kind is the shape of the expected answer.
type kind int

const (
	kJSON     kind = iota // OAuth JSON error body (error = want.err), no Location
	kCheck                // Check denial: JSON error, challenge on 401, no identity headers
	kPage                 // HTML error page, no Location
	kRedirect             // 302 to the client's registered redirect URI with ?error=want.err&iss=
	kStatus               // status only (the listener refused before any handler)
	kAllow                // allowed; the case's then checks the identity
)

type want struct {
	status int
	err    string
	kind   kind
	writes map[string]int // expected store writes during the attack
}

type attack struct {
	name  string
	tweak func(*config.Config)
	run   func(t *testing.T, g *gw) *reply // setup, g.begin(), the attack
	want  want
	then  func(t *testing.T, g *gw, r *reply) // afterwards: what the attack did not achieve
	// oauth, when set, adjusts the authorization server's options (e.g. a
	// document server for CIMD cases).
	oauth func(g *gw, o *oauthsrv.Options)
}

func TestHostileMatrix(t *testing.T) {
	cases := matrix()
	if len(cases) < 60 {
		t.Fatalf("the matrix has %d cases, want ≥ 60", len(cases))
	}
	seen := map[string]bool{}
	for _, c := range cases {
		if seen[c.name] {
			t.Fatalf("case %q twice", c.name)
		}
		seen[c.name] = true
	}
	runAttacks(t, cases)
}

// runAttacks runs each case on a gateway of its own, on every backend.
func runAttacks(t *testing.T, cases []attack) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					t.Parallel()
					g := newGWWith(t, b, gwOptions{cfg: c.tweak, oauth: c.oauth})
					r := c.run(t, g)
					if !g.attacking.Load() {
						t.Fatal("the case never called g.begin()")
					}
					writes := g.end()
					c.want.verify(t, g, r)
					if !maps.Equal(writes, c.want.writes) && (len(writes) > 0 || len(c.want.writes) > 0) {
						t.Errorf("store writes during the attack: %v, want %v", writes, c.want.writes)
					}
					if c.then != nil && !t.Failed() {
						c.then(t, g, r)
					}
					g.assertNoSecretsLogged(t)
				})
			}
		})
	}
}

func (w want) verify(t *testing.T, g *gw, r *reply) {
	t.Helper()
	if r.status != w.status {
		t.Fatalf("status %d, want %d: %.300s", r.status, w.status, r.body)
	}
	if r.status == http.StatusTooManyRequests && r.hdr.Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
	if w.kind != kRedirect && r.hdr.Get("Location") != "" && w.kind != kStatus {
		t.Errorf("unexpected Location %q", r.hdr.Get("Location"))
	}
	switch w.kind {
	case kJSON, kCheck:
		if got := r.json(t)["error"]; got != w.err {
			t.Fatalf("error %v, want %q: %s", got, w.err, r.body)
		}
		if w.kind == kCheck {
			if r.hdr.Get("X-Mcp-User") != "" || r.hdr.Get("X-Mcp-Credential") != "" {
				t.Errorf("a denial carries identity headers: %v", r.hdr)
			}
			if r.status == http.StatusUnauthorized {
				ch := r.hdr.Get("WWW-Authenticate")
				if !strings.HasPrefix(ch, "Bearer ") || !strings.Contains(ch, `resource_metadata="`+g.url+"/.well-known/oauth-protected-resource/") {
					t.Errorf("401 challenge %q", ch)
				}
			}
		}
	case kPage:
		if ct := r.hdr.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
			t.Errorf("Content-Type %q, want an HTML error page", ct)
		}
		if w.err != "" { // an OAuth error shown instead of redirected: its link back carries it
			if q := backLink(t, r).Query(); q.Get("error") != w.err || q.Get("iss") != g.url || q.Get("code") != "" {
				t.Errorf("link back %v, want error=%s with iss and no code", q, w.err)
			}
		}
	case kRedirect:
		u := r.location(t)
		if g.internal(u) {
			t.Fatalf("redirect to the gateway, want the client: %s", u)
		}
		q := u.Query()
		if q.Get("error") != w.err || q.Get("iss") != g.url || q.Get("code") != "" {
			t.Fatalf("redirect %s, want error=%s with iss and no code", u, w.err)
		}
	case kAllow:
		if r.status != http.StatusOK {
			t.Fatalf("status %d, want an allow", r.status)
		}
	}
}

// ---- token forging ----

var rsaKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

// forge signs claims (a valid gateway-wide token for alice unless mod
// changes them) with any method, key and kid.
func (g *gw) forge(m jwt.SigningMethod, key any, kid string, mod func(*token.Claims)) string {
	g.t.Helper()
	now := time.Now()
	c := &token.Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer: g.url, Subject: "alice", Audience: jwt.ClaimStrings{g.url}, ID: token.Random(8),
			IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour)),
		},
		ClientID: "forged", Scope: "mcp",
	}
	if mod != nil {
		mod(c)
	}
	tok := jwt.NewWithClaims(m, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		g.t.Fatal(err)
	}
	return s
}

func (g *gw) good(mod func(*token.Claims)) string {
	return g.forge(jwt.SigningMethodHS256, []byte(signingSecret), signingKID, mod)
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// jwtCase: a forged or altered bearer token at /alpha/mcp must get 401 invalid_token.
func jwtCase(name string, mk func(g *gw) string) attack {
	return attack{name: "check/jwt/" + name, want: want{401, "invalid_token", kCheck, nil},
		run: func(t *testing.T, g *gw) *reply {
			g.checkAllowed(t, "alpha", "Bearer "+g.good(nil), "alice") // the unaltered form passes
			tok := mk(g)
			g.begin()
			return g.check("/alpha/mcp", "Bearer "+tok)
		}}
}

// pathCase: a path trick at the Check with a credential valid for every
// agent alice may use: not an MCP endpoint (HTTP check: 403 not_found).
func pathCase(name, target string) attack {
	return attack{name: "check/path/" + name, want: want{403, "not_found", kCheck, nil},
		run: func(t *testing.T, g *gw) *reply {
			tok := g.good(nil)
			g.checkAllowed(t, "alpha", "Bearer "+tok, "alice")
			g.begin()
			return g.check(target, "Bearer "+tok)
		}}
}

// proxyPathCase: the same trick through the dev proxy: 404, agent not reached.
func proxyPathCase(name, target string) attack {
	return attack{name: "proxy/path/" + name, want: want{404, "not_found", kCheck, nil},
		run: func(t *testing.T, g *gw) *reply {
			tok := g.good(nil)
			g.begin()
			return g.raw(http.MethodPost, target, [][2]string{{"Authorization", "Bearer " + tok}, {"Content-Type", "application/json"}}, `{}`)
		},
		then: upstreamUntouched}
}

func upstreamUntouched(t *testing.T, g *gw, _ *reply) {
	if n := g.up.hits.Load(); n != 0 {
		t.Errorf("the agent received %d requests", n)
	}
}

// redirectCase: an authorization request whose redirect_uri is not exactly
// a registered one gets an error page and no Location, whatever else it says.
func redirectCase(name string, registered []string, redirect string) attack {
	return attack{name: "authorize/redirect/" + name, want: want{400, "", kPage, nil},
		run: func(t *testing.T, g *gw) *reply {
			id := g.register(registered...)
			_, ch := pkce()
			g.begin()
			return g.get(g.authzURL(id, redirect, ch, nil))
		}}
}

// authzErrCase: an authorization request from a valid client to its
// registered redirect URI, wrong in some other way: the user never approved
// that client, so the error is a page linking back, not a redirect (RFC 9700
// §4.11.2), and no pending request is stored.
func authzErrCase(name, code string, extra func(g *gw) url.Values) attack {
	return attack{name: "authorize/" + name, want: want{400, code, kPage, nil},
		run: func(t *testing.T, g *gw) *reply {
			id := g.register()
			_, ch := pkce()
			ex := extra(g)
			g.begin()
			return g.get(g.authzURL(id, loopback, ch, ex))
		}}
}

// registerCase: a registration that must be refused without storing a client.
func registerCase(name string, status int, code, ctype, body string) attack {
	return attack{name: "register/" + name, want: want{status, code, kJSON, nil},
		run: func(t *testing.T, g *gw) *reply {
			g.begin()
			return g.post("/oauth/register", ctype, body)
		},
		then: func(t *testing.T, g *gw, _ *reply) {
			cs, err := g.st.ListClients(t.Context())
			if err != nil || len(cs) != 0 {
				t.Errorf("clients after the attack: %d (%v)", len(cs), err)
			}
		}}
}

// codeFixture registers a client and gets a code for alice (at alpha).
func codeFixture(g *gw) (clientID, code, verifier string) {
	clientID = g.register()
	code, verifier = g.code(clientID, "alice", url.Values{"resource": {g.resource("alpha")}})
	return
}

// tokenCase: a code redemption altered by mod must fail with code; then
// reports whether the untouched code still works (spent: it was burned).
func tokenCase(name string, status int, code string, spent bool, mod func(g *gw, v url.Values) (hdr []string)) attack {
	return attack{name: "token/" + name, want: want{status, code, kJSON, nil},
		run: func(t *testing.T, g *gw) *reply {
			id, c, ver := codeFixture(g)
			g.fx["client"], g.fx["code"], g.fx["verifier"] = id, c, ver
			v := url.Values{"grant_type": {"authorization_code"}, "client_id": {id}, "code": {c}, "redirect_uri": {loopback}, "code_verifier": {ver}}
			hdr := mod(g, v)
			g.begin()
			return g.postForm("/oauth/token", v, hdr...)
		},
		then: func(t *testing.T, g *gw, _ *reply) {
			r := g.exchange(g.fx["client"], g.fx["code"], g.fx["verifier"], loopback)
			switch {
			case spent && r.status != http.StatusBadRequest:
				t.Errorf("the code still works after the failed attempt: %d", r.status)
			case !spent && r.status != http.StatusOK:
				t.Errorf("the legitimate redemption fails after the attack: %d %s", r.status, r.body)
			}
		}}
}

// denied asserts the Check refuses the credential at agent with status and error.
func denied(t *testing.T, g *gw, agent, authorization string, status int, code string) {
	t.Helper()
	r := g.eventuallyDenied(t, agent, authorization)
	if r.status != status || r.json(t)["error"] != code {
		t.Fatalf("Check at %s: %d %s, want %d %s", agent, r.status, r.body, status, code)
	}
}

func form(kv ...string) url.Values {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Add(kv[i], kv[i+1])
	}
	return v
}

func matrix() []attack {
	hs := []byte(signingSecret)
	var cases []attack

	// ---- the Check: forged and altered access tokens ----
	cases = append(cases,
		jwtCase("alg_none", func(g *gw) string {
			return g.forge(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, signingKID, nil)
		}),
		jwtCase("alg_none_with_real_signature", func(g *gw) string {
			p := strings.Split(g.good(nil), ".")
			return b64(`{"alg":"none","kid":"`+signingKID+`"}`) + "." + p[1] + "." + p[2]
		}),
		jwtCase("rs256_swap", func(g *gw) string { return g.forge(jwt.SigningMethodRS256, rsaKey(), signingKID, nil) }),
		jwtCase("rs256_header_on_hs256_token", func(g *gw) string {
			p := strings.Split(g.good(nil), ".")
			return b64(`{"alg":"RS256","typ":"JWT","kid":"`+signingKID+`"}`) + "." + p[1] + "." + p[2]
		}),
		jwtCase("hs384_swap", func(g *gw) string { return g.forge(jwt.SigningMethodHS384, hs, signingKID, nil) }),
		jwtCase("hs512_swap", func(g *gw) string { return g.forge(jwt.SigningMethodHS512, hs, signingKID, nil) }),
		jwtCase("unknown_kid", func(g *gw) string { return g.forge(jwt.SigningMethodHS256, hs, "k2", nil) }),
		jwtCase("no_kid", func(g *gw) string { return g.forge(jwt.SigningMethodHS256, hs, "", nil) }),
		jwtCase("attacker_secret", func(g *gw) string {
			return g.forge(jwt.SigningMethodHS256, []byte("attacker-chosen-secret-0123456789abcdef"), signingKID, nil)
		}),
		jwtCase("tampered_payload", func(g *gw) string {
			p := strings.Split(g.good(nil), ".")
			claims, _ := base64.RawURLEncoding.DecodeString(p[1])
			return p[0] + "." + b64(strings.Replace(string(claims), `"alice"`, `"bob"`, 1)) + "." + p[2]
		}),
		jwtCase("tampered_signature", func(g *gw) string {
			p := strings.Split(g.good(nil), ".")
			sig, _ := base64.RawURLEncoding.DecodeString(p[2])
			sig[0] ^= 1
			return p[0] + "." + p[1] + "." + base64.RawURLEncoding.EncodeToString(sig)
		}),
		jwtCase("expired", func(g *gw) string {
			return g.good(func(c *token.Claims) { c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(-time.Hour)) })
		}),
		jwtCase("not_yet_valid", func(g *gw) string {
			return g.good(func(c *token.Claims) { c.NotBefore = jwt.NewNumericDate(time.Now().Add(time.Hour)) })
		}),
		jwtCase("no_exp", func(g *gw) string { return g.good(func(c *token.Claims) { c.ExpiresAt = nil }) }),
		jwtCase("wrong_iss", func(g *gw) string { return g.good(func(c *token.Claims) { c.Issuer = "https://evil.example" }) }),
		jwtCase("no_jti", func(g *gw) string { return g.good(func(c *token.Claims) { c.ID = "" }) }),
		jwtCase("oversized", func(g *gw) string {
			return g.good(func(c *token.Claims) { c.Scope = "mcp " + strings.Repeat("x", 5000) })
		}),
		jwtCase("two_tokens", func(g *gw) string { return g.good(nil) + " " + g.good(nil) }),
		attack{name: "check/jwt/duplicate_authorization_headers", want: want{401, "invalid_token", kCheck, nil},
			run: func(t *testing.T, g *gw) *reply {
				a, b := g.good(nil), g.good(func(c *token.Claims) { c.Subject = "carol" })
				g.begin()
				return g.raw(http.MethodGet, "/authz/check/alpha/mcp", [][2]string{{"Authorization", "Bearer " + a}, {"Authorization", "Bearer " + b}}, "")
			}},
		attack{name: "check/no_credential", want: want{401, "unauthorized", kCheck, nil},
			run: func(t *testing.T, g *gw) *reply { g.begin(); return g.check("/alpha/mcp", "") }},
		attack{name: "check/basic_scheme", want: want{401, "unauthorized", kCheck, nil},
			run: func(t *testing.T, g *gw) *reply {
				g.begin()
				return g.check("/alpha/mcp", "Basic "+base64.StdEncoding.EncodeToString([]byte("alice:"+passwords["alice"])))
			}},
	)

	// ---- the Check: real tokens used where they do not belong ----
	cases = append(cases,
		attack{name: "check/token_for_agent_a_at_agent_b", want: want{401, "invalid_token", kCheck, nil},
			run: func(t *testing.T, g *gw) *reply {
				_, access, _ := g.grant("alice", g.resource("alpha"))
				g.checkAllowed(t, "alpha", "Bearer "+access, "alice")
				g.begin()
				return g.check("/gamma/mcp", "Bearer "+access) // alice owns gamma too: only aud refuses
			}},
		attack{name: "check/gateway_wide_token_for_agent_not_owned", want: want{403, "access_denied", kCheck, nil},
			run: func(t *testing.T, g *gw) *reply {
				_, access, _ := g.grant("alice", "")
				g.checkAllowed(t, "gamma", "Bearer "+access, "alice")
				g.begin()
				return g.check("/private/mcp", "Bearer "+access)
			}},
		attack{name: "check/token_without_required_scope", want: want{403, "insufficient_scope", kCheck, nil},
			run: func(t *testing.T, g *gw) *reply {
				tok := g.good(func(c *token.Claims) { c.Scope = "other" })
				g.begin()
				return g.check("/alpha/mcp", "Bearer "+tok)
			}},
		attack{name: "check/revoked_access_token", want: want{401, "invalid_token", kCheck, nil},
			run: func(t *testing.T, g *gw) *reply {
				id, access, _ := g.grant("alice", g.resource("alpha"))
				if r := g.postForm("/oauth/revoke", form("token", access, "client_id", id)); r.status != 200 {
					t.Fatalf("revoke: %d %s", r.status, r.body)
				}
				g.begin()
				return g.eventuallyDenied(t, "alpha", "Bearer "+access)
			}},
		attack{name: "check/unknown_agent", want: want{403, "not_found", kCheck, nil},
			run: func(t *testing.T, g *gw) *reply {
				tok := g.good(nil)
				g.begin()
				return g.check("/nosuch/mcp", "Bearer "+tok)
			}},
	)

	// ---- the Check: API keys ----
	cases = append(cases,
		attack{name: "check/key/bak_of_another_agent", want: want{403, "access_denied", kCheck, nil},
			run: func(t *testing.T, g *gw) *reply {
				k := g.apiKey(store.KeyAgent, token.PrefixAgentKey, "alpha", "alice", nil)
				g.checkAllowed(t, "alpha", "Bearer "+k, "alice")
				g.begin()
				return g.check("/beta/mcp", "Bearer "+k)
			}},
		attack{name: "check/key/revoked_bak_after_cache_warm", want: want{401, "invalid_token", kCheck, nil},
			run: func(t *testing.T, g *gw) *reply {
				k := g.apiKey(store.KeyAgent, token.PrefixAgentKey, "alpha", "alice", nil)
				g.checkAllowed(t, "alpha", "Bearer "+k, "alice") // now cached
				if _, err := g.st.Store.RevokeKey(t.Context(), g.fx["key_id"]); err != nil {
					t.Fatal(err)
				}
				g.begin()
				return g.eventuallyDenied(t, "alpha", "Bearer "+k)
			}},
		attack{name: "check/key/expired", want: want{401, "invalid_token", kCheck, nil},
			run: func(t *testing.T, g *gw) *reply {
				// Stores refuse to create a key that has already expired: let one expire.
				k := g.apiKey(store.KeyAgent, token.PrefixAgentKey, "alpha", "alice", func(k *store.APIKey) { k.ExpiresAt = time.Now().Add(time.Second) })
				g.begin()
				return g.eventuallyDenied(t, "alpha", "Bearer "+k)
			}},
		attack{name: "check/key/oag_for_agent_not_owned", want: want{403, "access_denied", kCheck, nil},
			run: func(t *testing.T, g *gw) *reply {
				k := g.apiKey(store.KeyUser, token.PrefixUserKey, "", "alice", nil)
				g.checkAllowed(t, "gamma", "Bearer "+k, "alice")
				g.begin()
				return g.check("/private/mcp", "Bearer "+k)
			}},
		attack{name: "check/key/prefix_disagrees_with_record", want: want{401, "invalid_token", kCheck, nil},
			run: func(t *testing.T, g *gw) *reply {
				k := g.apiKey(store.KeyUser, token.PrefixAgentKey, "", "alice", nil) // a user key spelled bak_
				g.begin()
				return g.check("/alpha/mcp", "Bearer "+k)
			}},
		attack{name: "check/key/unknown", want: want{401, "invalid_token", kCheck, nil},
			run: func(t *testing.T, g *gw) *reply {
				k, _ := token.NewAPIKey(token.PrefixAgentKey)
				g.begin()
				return g.check("/alpha/mcp", "Bearer "+k)
			}},
		attack{name: "check/key/oversized", want: want{401, "invalid_token", kCheck, nil},
			run: func(t *testing.T, g *gw) *reply {
				g.begin()
				return g.check("/alpha/mcp", "Bearer "+token.PrefixAgentKey+strings.Repeat("A", 3000))
			}},
	)

	// ---- the Check and the dev proxy: path tricks ----
	cases = append(cases,
		pathCase("dot_segments", "/beta/../alpha/mcp"),
		pathCase("encoded_slash", "/alpha%2Fmcp"),
		pathCase("encoded_dot_segments", "/x/%2e%2e/alpha/mcp"),
		pathCase("double_slash", "//alpha/mcp"),
		pathCase("trailing_segment", "/alpha/mcp/extra"),
		pathCase("trailing_junk", "/alpha/mcpx"),
		pathCase("matrix_param", "/alpha/mcp;x=1"),
		pathCase("encoded_nul", "/alpha/mcp%00"),
		pathCase("upper_case_mcp", "/alpha/MCP"),
		pathCase("backslash", `/alpha\mcp`),
		pathCase("oversized_query", "/alpha/mcp?q="+strings.Repeat("a", 9000)),
		attack{name: "check/path/upper_case_agent", want: want{403, "not_found", kCheck, nil},
			run: func(t *testing.T, g *gw) *reply {
				tok := g.good(nil)
				g.begin()
				return g.check("/ALPHA/mcp", "Bearer "+tok) // ids are case-sensitive: no such agent
			}},
		attack{name: "check/nginx_original_uri_trick", want: want{403, "not_found", kCheck, nil},
			run: func(t *testing.T, g *gw) *reply {
				tok := g.good(nil)
				g.begin()
				return g.raw(http.MethodGet, "/authz/check", [][2]string{{"X-Original-URI", "/beta/../alpha/mcp"}, {"Authorization", "Bearer " + tok}}, "")
			}},
		proxyPathCase("dot_segments", "/private/../alpha/mcp"),
		proxyPathCase("encoded_slash", "/alpha%2Fmcp"),
		proxyPathCase("double_slash", "//alpha/mcp"),
		attack{name: "proxy/path/through_oauth_prefix", want: want{307, "", kStatus, nil},
			run: func(t *testing.T, g *gw) *reply {
				tok := g.good(nil)
				g.begin()
				return g.raw(http.MethodGet, "/oauth/../alpha/mcp", [][2]string{{"Authorization", "Bearer " + tok}}, "")
			},
			then: upstreamUntouched},
	)

	// ---- spoofed identity headers ----
	spoofed := [][2]string{
		{"X-Mcp-User", "carol"}, {"x-mcp-agent", "private"}, {"X-MCP-Credential", "agent_key"},
		{"x-mcp-scope", "admin"}, {"x-mcp-extra", "1"}, {"X_Mcp_User", "carol"}, {"X-Forwarded-For", "10.0.0.1"},
	}
	cases = append(cases,
		attack{name: "check/spoofed_x_mcp_headers", want: want{200, "", kAllow, nil},
			run: func(t *testing.T, g *gw) *reply {
				tok := g.good(nil)
				g.begin()
				return g.check("/alpha/mcp", "Bearer "+tok, spoofed...)
			},
			then: func(t *testing.T, g *gw, r *reply) {
				for k, v := range map[string]string{"X-Mcp-User": "alice", "X-Mcp-Agent": "alpha", "X-Mcp-Credential": "oauth", "X-Mcp-Scope": "mcp"} {
					if r.hdr.Get(k) != v {
						t.Errorf("%s = %q, want %q", k, r.hdr.Get(k), v)
					}
				}
				rm := r.hdr.Get("X-Envoy-Auth-Headers-To-Remove")
				for _, h := range []string{"authorization", "x-mcp-extra"} {
					if !strings.Contains(rm, h) {
						t.Errorf("headers to remove %q lack %s", rm, h)
					}
				}
			}},
		attack{name: "proxy/spoofed_x_mcp_headers", want: want{200, "", kAllow, nil},
			run: func(t *testing.T, g *gw) *reply {
				tok := g.good(nil)
				g.begin()
				return g.raw(http.MethodPost, "/alpha/mcp", append([][2]string{{"Authorization", "Bearer " + tok}, {"Content-Type", "application/json"}}, spoofed...), `{}`)
			},
			then: func(t *testing.T, g *gw, r *reply) {
				var echo struct{ Headers map[string]string }
				if err := json.Unmarshal(r.body, &echo); err != nil {
					t.Fatalf("upstream answer: %v: %s", err, r.body)
				}
				h := echo.Headers
				if h["x-mcp-user"] != "alice" || h["x-mcp-agent"] != "alpha" || h["x-mcp-credential"] != "oauth" || h["x-mcp-scope"] != "mcp" {
					t.Errorf("identity upstream: %v", h)
				}
				for _, k := range []string{"authorization", "x-mcp-extra", "x_mcp_user"} {
					if _, ok := h[k]; ok {
						t.Errorf("%s reached the agent: %v", k, h)
					}
				}
				if h["x-forwarded-for"] == "10.0.0.1" || strings.Contains(h["x-forwarded-for"], "10.0.0.1") {
					t.Errorf("the client's X-Forwarded-For reached the agent: %q", h["x-forwarded-for"])
				}
			}},
		attack{name: "proxy/spoofed_identity_without_credential", want: want{401, "unauthorized", kCheck, nil},
			run: func(t *testing.T, g *gw) *reply {
				g.begin()
				return g.raw(http.MethodPost, "/alpha/mcp", append([][2]string{{"Content-Type", "application/json"}}, spoofed...), `{}`)
			},
			then: upstreamUntouched},
	)

	// ---- authorize: nothing may redirect to an unregistered URI ----
	https := "https://app.example/cb"
	cases = append(cases,
		redirectCase("unregistered_host", nil, "https://evil.example/callback"),
		redirectCase("https_port_added", []string{https}, "https://app.example:8443/cb"),
		redirectCase("loopback_host_swapped", nil, "http://localhost:9/callback"),
		redirectCase("loopback_ipv6_for_ipv4", nil, "http://[::1]:9/callback"),
		redirectCase("loopback_https_for_http", nil, "https://127.0.0.1:9/callback"),
		redirectCase("path_dot_segments", nil, "http://127.0.0.1:9/callback/../evil"),
		redirectCase("path_suffix", nil, "http://127.0.0.1:9/callbackevil"),
		redirectCase("path_extra_segment", nil, "http://127.0.0.1:9/callback/evil"),
		redirectCase("path_percent_encoded", nil, "http://127.0.0.1:9/%63allback"),
		redirectCase("path_case", nil, "http://127.0.0.1:9/Callback"),
		redirectCase("userinfo_host_confusion", nil, "http://127.0.0.1:9@evil.example/callback"),
		redirectCase("added_query", []string{https}, "https://app.example/cb?next=https://evil.example"),
		redirectCase("fragment", []string{https}, "https://app.example/cb#evil"),
		redirectCase("javascript_scheme", nil, "javascript:alert(document.domain)//http://127.0.0.1:9/callback"),
		redirectCase("subdomain_of_registered", []string{https}, "https://app.example.evil.example/cb"),
		attack{name: "authorize/unknown_client_with_evil_redirect", want: want{400, "", kPage, nil},
			run: func(t *testing.T, g *gw) *reply {
				_, ch := pkce()
				g.begin()
				return g.get(g.authzURL("no-such-client", "https://evil.example/cb", ch, nil))
			}},
		attack{name: "authorize/missing_client_id", want: want{400, "", kPage, nil},
			run: func(t *testing.T, g *gw) *reply {
				_, ch := pkce()
				g.begin()
				return g.get(g.authzURL("", "https://evil.example/cb", ch, url.Values{"client_id": {""}}))
			}},
		attack{name: "authorize/duplicate_client_id", want: want{400, "", kPage, nil},
			run: func(t *testing.T, g *gw) *reply {
				id := g.register()
				_, ch := pkce()
				g.begin()
				return g.get(g.authzURL(id, loopback, ch, url.Values{"client_id": {id, "other"}}))
			}},
		attack{name: "authorize/duplicate_redirect_uri", want: want{400, "", kPage, nil},
			run: func(t *testing.T, g *gw) *reply {
				id := g.register()
				_, ch := pkce()
				g.begin()
				return g.get(g.authzURL(id, loopback, ch, url.Values{"redirect_uri": {loopback, "https://evil.example/cb"}}))
			}},
		attack{name: "authorize/oversized_query", want: want{400, "", kPage, nil},
			run: func(t *testing.T, g *gw) *reply {
				id := g.register()
				_, ch := pkce()
				g.begin()
				return g.get(g.authzURL(id, loopback, ch, url.Values{"pad": {strings.Repeat("p", 9000)}}))
			}},
		attack{name: "authorize/malformed_query", want: want{400, "", kPage, nil},
			run: func(t *testing.T, g *gw) *reply {
				id := g.register()
				g.begin()
				return g.raw(http.MethodGet, "/oauth/authorize?client_id="+id+"&redirect_uri="+url.QueryEscape(loopback)+"&state=%zz", nil, "")
			}},
		attack{name: "authorize/cimd_client_id_ssrf_to_metadata_service", want: want{400, "", kPage, nil},
			run: func(t *testing.T, g *gw) *reply {
				_, ch := pkce()
				g.begin()
				return g.get(g.authzURL("https://169.254.169.254/latest/meta-data/client.json", "https://evil.example/cb", ch, nil))
			}},
		attack{name: "authorize/post_method", want: want{405, "", kPage, nil},
			run: func(t *testing.T, g *gw) *reply {
				id := g.register()
				g.begin()
				return g.postForm("/oauth/authorize", form("client_id", id, "redirect_uri", "https://evil.example/cb"))
			}},
	)

	// ---- authorize: errors for a registered, not yet approved redirect URI ----
	cases = append(cases,
		authzErrCase("pkce_plain", "invalid_request", func(g *gw) url.Values {
			return url.Values{"code_challenge_method": {"plain"}, "code_challenge": {strings.Repeat("v", 43)}}
		}),
		authzErrCase("pkce_missing_challenge", "invalid_request", func(g *gw) url.Values { return url.Values{"code_challenge": {""}} }),
		authzErrCase("pkce_missing_method", "invalid_request", func(g *gw) url.Values { return url.Values{"code_challenge_method": {""}} }),
		authzErrCase("pkce_short_challenge", "invalid_request", func(g *gw) url.Values { return url.Values{"code_challenge": {"abc"}} }),
		authzErrCase("response_type_token", "unsupported_response_type", func(g *gw) url.Values { return url.Values{"response_type": {"token"}} }),
		authzErrCase("duplicate_scope", "invalid_request", func(g *gw) url.Values { return url.Values{"scope": {"mcp", "mcp"}} }),
		authzErrCase("no_grantable_scope", "invalid_scope", func(g *gw) url.Values { return url.Values{"scope": {"admin other"}} }),
		authzErrCase("foreign_resource", "invalid_target", func(g *gw) url.Values {
			return url.Values{"resource": {"https://evil.example/alpha/mcp"}}
		}),
		authzErrCase("resource_unknown_agent", "invalid_target", func(g *gw) url.Values { return url.Values{"resource": {g.resource("nosuch")}} }),
		authzErrCase("resource_dot_segments", "invalid_target", func(g *gw) url.Values {
			return url.Values{"resource": {g.url + "/alpha/../private/mcp"}}
		}),
		authzErrCase("resource_with_fragment", "invalid_target", func(g *gw) url.Values {
			return url.Values{"resource": {g.resource("alpha") + "#x"}}
		}),
		authzErrCase("oversized_state", "invalid_request", func(g *gw) url.Values { return url.Values{"state": {strings.Repeat("s", 1100)}} }),
		attack{name: "authorize/agent_user_may_not_use", want: want{403, "access_denied", kPage, map[string]int{"PutAuthRequest": 1, "PutSession": 1}},
			run: func(t *testing.T, g *gw) *reply {
				id := g.register()
				_, ch := pkce()
				b := g.browser()
				g.begin()
				return b.login(b.loginPage(id, ch, url.Values{"resource": {g.resource("private")}}), "alice")
			}},
	)

	// ---- login and consent forms ----
	loginWith := func(name string, status int, mod func(g *gw, b *browser, v url.Values) *reply) attack {
		return attack{name: "login/" + name, want: want{status, "", kPage, nil},
			run: func(t *testing.T, g *gw) *reply {
				id := g.register()
				_, ch := pkce()
				b := g.browser()
				v := formFields(t, b.loginPage(id, ch, nil))
				v.Set("username", "alice")
				v.Set("password", passwords["alice"])
				g.begin()
				return mod(g, b, v)
			}}
	}
	consentWith := func(name string, status int, mod func(g *gw, b *browser, v url.Values) *reply) attack {
		return attack{name: "consent/" + name, want: want{status, "", kPage, nil},
			run: func(t *testing.T, g *gw) *reply {
				id := g.register()
				_, ch := pkce()
				b := g.browser()
				v := formFields(t, b.consentPage(id, ch, "alice", nil))
				v.Set("decision", "approve")
				g.begin()
				return mod(g, b, v)
			}}
	}
	cases = append(cases,
		loginWith("post_without_csrf", 403, func(g *gw, b *browser, v url.Values) *reply { v.Del("csrf"); return b.postForm("/login", v) }),
		loginWith("post_with_wrong_csrf", 403, func(g *gw, b *browser, v url.Values) *reply {
			v.Set("csrf", token.Random(32))
			return b.postForm("/login", v)
		}),
		loginWith("post_from_another_browser", 400, func(g *gw, _ *browser, v url.Values) *reply { return g.browser().postForm("/login", v) }),
		loginWith("post_as_json", 400, func(g *gw, b *browser, v url.Values) *reply {
			body, _ := json.Marshal(map[string]string{"request": v.Get("request"), "csrf": v.Get("csrf"), "username": "alice", "password": passwords["alice"]})
			return b.post("/login", "application/json", string(body))
		}),
		loginWith("duplicate_username", 400, func(g *gw, b *browser, v url.Values) *reply {
			v.Add("username", "carol")
			return b.postForm("/login", v)
		}),
		loginWith("oversized_form", 413, func(g *gw, b *browser, v url.Values) *reply {
			v.Set("password", strings.Repeat("p", 70<<10))
			return b.postForm("/login", v)
		}),
		consentWith("post_without_csrf", 403, func(g *gw, b *browser, v url.Values) *reply { v.Del("csrf"); return b.postForm("/consent", v) }),
		consentWith("post_from_another_browser", 400, func(g *gw, _ *browser, v url.Values) *reply {
			return g.browser().postForm("/consent", v)
		}),
		consentWith("post_as_multipart", 400, func(g *gw, b *browser, v url.Values) *reply {
			return b.post("/consent", "multipart/form-data; boundary=x", "--x\r\nContent-Disposition: form-data; name=\"decision\"\r\n\r\napprove\r\n--x--\r\n")
		}),
		consentWith("unknown_decision", 400, func(g *gw, b *browser, v url.Values) *reply {
			v.Set("decision", "approve all")
			return b.postForm("/consent", v)
		}),
		attack{name: "consent/replayed_approval", want: want{400, "", kPage, nil},
			run: func(t *testing.T, g *gw) *reply {
				id := g.register()
				_, ch := pkce()
				b := g.browser()
				v := formFields(t, b.consentPage(id, ch, "alice", nil))
				v.Set("decision", "approve")
				if r := b.postForm("/consent", v); r.status != http.StatusFound || r.location(t).Query().Get("code") == "" {
					t.Fatalf("first approval: %d", r.status)
				}
				g.begin()
				return b.postForm("/consent", v)
			}},
		attack{name: "login/brute_force_from_one_ip", want: want{429, "", kPage, nil},
			run: func(t *testing.T, g *gw) *reply {
				id := g.register()
				_, ch := pkce()
				b := g.browser()
				v := formFields(t, b.loginPage(id, ch, nil))
				v.Set("username", "victim")
				g.begin()
				for i := range g.cfg.RateLimit.Login {
					v.Set("password", fmt.Sprintf("guess-%d", i))
					if r := b.postForm("/login", v); r.status != http.StatusUnauthorized {
						t.Fatalf("guess %d: %d", i, r.status)
					}
				}
				v.Set("password", passwords["victim"]) // even the right password now
				return b.postForm("/login", v)
			}},
		attack{name: "login/brute_force_one_user_from_many_ips",
			tweak: func(c *config.Config) { c.TrustedProxies = []string{"127.0.0.1/32"}; c.RateLimit.Login = 100 },
			want:  want{429, "", kPage, nil},
			run: func(t *testing.T, g *gw) *reply {
				id := g.register()
				_, ch := pkce()
				b := g.browser()
				v := formFields(t, b.loginPage(id, ch, nil))
				v.Set("username", "victim")
				post := func(ip string) *reply {
					req, _ := http.NewRequest(http.MethodPost, g.url+"/login", strings.NewReader(v.Encode()))
					req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
					req.Header.Set("X-Forwarded-For", ip)
					return b.do(req)
				}
				g.begin()
				for i := range g.cfg.RateLimit.LoginPerUser {
					v.Set("password", fmt.Sprintf("guess-%d", i))
					if r := post(fmt.Sprintf("203.0.113.%d", i+1)); r.status != http.StatusUnauthorized {
						t.Fatalf("guess %d: %d", i, r.status)
					}
				}
				v.Set("password", passwords["victim"])
				return post("198.51.100.7")
			}},
	)

	// ---- registration ----
	reg := func(uris ...string) string {
		b, _ := json.Marshal(map[string]any{"redirect_uris": uris})
		return string(b)
	}
	const js = "application/json"
	cases = append(cases,
		registerCase("javascript_redirect_uri", 400, "invalid_redirect_uri", js, reg("javascript:alert(1)")),
		registerCase("data_redirect_uri", 400, "invalid_redirect_uri", js, reg("data:text/html,<script>alert(1)</script>")),
		registerCase("fragment_redirect_uri", 400, "invalid_redirect_uri", js, reg("https://app.example/cb#x")),
		registerCase("http_non_loopback_redirect_uri", 400, "invalid_redirect_uri", js, reg("http://evil.example/cb")),
		registerCase("wildcard_redirect_uri", 400, "invalid_redirect_uri", js, reg("https://*.example/cb")),
		registerCase("userinfo_redirect_uri", 400, "invalid_redirect_uri", js, reg("https://app.example@evil.example/cb")),
		registerCase("one_bad_among_good_redirect_uris", 400, "invalid_redirect_uri", js, reg(loopback, "javascript:alert(1)")),
		registerCase("duplicate_member_last_wins", 400, "invalid_redirect_uri", js,
			`{"redirect_uris":["`+loopback+`"],"redirect_uris":["javascript:alert(1)"]}`),
		registerCase("confidential_client", 400, "invalid_client_metadata", js,
			`{"redirect_uris":["`+loopback+`"],"token_endpoint_auth_method":"client_secret_basic"}`),
		registerCase("implicit_grant", 400, "invalid_client_metadata", js, `{"redirect_uris":["`+loopback+`"],"grant_types":["implicit"]}`),
		registerCase("control_chars_in_name", 400, "invalid_client_metadata", js, `{"redirect_uris":["`+loopback+`"],"client_name":"a\u0000b"}`),
		registerCase("wrong_content_type", 400, "invalid_client_metadata", "text/plain", reg(loopback)),
		registerCase("form_content_type", 400, "invalid_client_metadata", "application/x-www-form-urlencoded", "redirect_uris="+url.QueryEscape(loopback)),
		registerCase("not_an_object", 400, "invalid_client_metadata", js, "["+reg(loopback)+"]"),
		registerCase("two_objects", 400, "invalid_client_metadata", js, reg(loopback)+reg("https://evil.example/cb")),
		registerCase("oversized_body", 413, "invalid_client_metadata", js, `{"redirect_uris":["`+loopback+`"],"client_name":"`+strings.Repeat("n", 70<<10)+`"}`),
		attack{name: "register/rate_limited", want: want{429, "rate_limited", kJSON, nil},
			run: func(t *testing.T, g *gw) *reply {
				for range g.cfg.RateLimit.Register {
					g.register()
				}
				g.begin()
				return g.post("/oauth/register", js, reg(loopback))
			}},
		attack{name: "register/rate_limit_not_evaded_by_untrusted_xff", want: want{429, "rate_limited", kJSON, nil},
			run: func(t *testing.T, g *gw) *reply {
				for i := range g.cfg.RateLimit.Register {
					if r := g.post("/oauth/register", js, reg(loopback), "X-Forwarded-For", fmt.Sprintf("198.51.100.%d", i)); r.status != 201 {
						t.Fatalf("registration %d: %d", i, r.status)
					}
				}
				g.begin()
				return g.post("/oauth/register", js, reg(loopback), "X-Forwarded-For", "203.0.113.99")
			}},
		attack{name: "register/rate_limit_not_evaded_by_prepended_xff",
			tweak: func(c *config.Config) { c.TrustedProxies = []string{"127.0.0.1/32"} },
			want:  want{429, "rate_limited", kJSON, nil},
			run: func(t *testing.T, g *gw) *reply {
				for range g.cfg.RateLimit.Register {
					if r := g.post("/oauth/register", js, reg(loopback), "X-Forwarded-For", "198.51.100.1"); r.status != 201 {
						t.Fatalf("registration: %d", r.status)
					}
				}
				g.begin() // the proxy appends the real client; a forged left part changes nothing
				return g.post("/oauth/register", js, reg(loopback), "X-Forwarded-For", "203.0.113.5, 198.51.100.1")
			},
			then: func(t *testing.T, g *gw, _ *reply) {
				if r := g.post("/oauth/register", js, reg(loopback), "X-Forwarded-For", "198.51.100.2"); r.status != 201 {
					t.Errorf("another client behind the trusted proxy: %d, want its own limit", r.status)
				}
			}},
	)

	// ---- token endpoint: codes ----
	cases = append(cases,
		tokenCase("pkce_missing_verifier", 400, "invalid_request", false, func(_ *gw, v url.Values) []string { v.Del("code_verifier"); return nil }),
		tokenCase("pkce_short_verifier", 400, "invalid_request", false, func(_ *gw, v url.Values) []string { v.Set("code_verifier", strings.Repeat("a", 42)); return nil }),
		tokenCase("pkce_long_verifier", 400, "invalid_request", false, func(_ *gw, v url.Values) []string { v.Set("code_verifier", strings.Repeat("a", 129)); return nil }),
		tokenCase("pkce_verifier_bad_characters", 400, "invalid_request", false, func(_ *gw, v url.Values) []string {
			v.Set("code_verifier", strings.Repeat("a", 42)+"/")
			return nil
		}),
		tokenCase("pkce_wrong_verifier", 400, "invalid_grant", false, func(_ *gw, v url.Values) []string { v.Set("code_verifier", token.Random(32)); return nil }),
		tokenCase("pkce_challenge_as_verifier", 400, "invalid_grant", false, func(_ *gw, v url.Values) []string {
			// the plain method in disguise: the challenge itself as verifier
			v.Set("code_verifier", s256(v.Get("code_verifier")))
			return nil
		}),
		tokenCase("redirect_uri_mismatch", 400, "invalid_grant", false, func(_ *gw, v url.Values) []string { v.Set("redirect_uri", "http://127.0.0.1:9/other"); return nil }),
		tokenCase("redirect_uri_missing", 400, "invalid_request", false, func(_ *gw, v url.Values) []string { v.Del("redirect_uri"); return nil }),
		tokenCase("resource_mismatch", 400, "invalid_target", false, func(g *gw, v url.Values) []string { v.Set("resource", g.resource("gamma")); return nil }),
		tokenCase("unknown_code", 400, "invalid_grant", false, func(_ *gw, v url.Values) []string { v.Set("code", token.Random(32)); return nil }),
		tokenCase("duplicate_code_parameter", 400, "invalid_request", false, func(_ *gw, v url.Values) []string { v.Add("code", token.Random(32)); return nil }),
		tokenCase("unknown_client", 401, "invalid_client", false, func(_ *gw, v url.Values) []string { v.Set("client_id", "no-such-client"); return nil }),
		tokenCase("basic_auth_names_another_client", 400, "invalid_request", false, func(_ *gw, v url.Values) []string {
			return []string{"Authorization", "Basic " + base64.StdEncoding.EncodeToString([]byte("other-client:"))}
		}),
		tokenCase("password_grant", 400, "unsupported_grant_type", false, func(_ *gw, v url.Values) []string {
			v.Set("grant_type", "password")
			v.Set("username", "alice")
			v.Set("password", passwords["alice"])
			return nil
		}),
		tokenCase("client_credentials_grant", 400, "unsupported_grant_type", false, func(_ *gw, v url.Values) []string { v.Set("grant_type", "client_credentials"); return nil }),
		attack{name: "token/code_from_another_client", want: want{400, "invalid_grant", kJSON, nil},
			run: func(t *testing.T, g *gw) *reply {
				_, code, ver := codeFixture(g)
				other := g.register()
				g.begin()
				return g.exchange(other, code, ver, loopback)
			}},
		attack{name: "token/code_for_other_loopback_port", want: want{400, "invalid_grant", kJSON, nil},
			run: func(t *testing.T, g *gw) *reply {
				id := g.register()
				code, ver := g.code(id, "alice", url.Values{"redirect_uri": {"http://127.0.0.1:5555/callback"}})
				g.begin()
				return g.exchange(id, code, ver, loopback) // same path, the registered port
			}},
		attack{name: "token/code_replay_revokes_first_tokens", want: want{400, "invalid_grant", kJSON, map[string]int{"RevokeFamily": 1, "RevokeJTI": 2}},
			run: func(t *testing.T, g *gw) *reply {
				id, code, ver := codeFixture(g)
				g.fx["access"], g.fx["refresh"] = g.tokens(id, code, ver)
				g.fx["client"] = id
				g.checkAllowed(t, "alpha", "Bearer "+g.fx["access"], "alice")
				g.begin()
				return g.exchange(id, code, ver, loopback)
			},
			then: func(t *testing.T, g *gw, _ *reply) {
				denied(t, g, "alpha", "Bearer "+g.fx["access"], 401, "invalid_token")
				if r := g.refresh(g.fx["client"], g.fx["refresh"]); r.status != 400 || r.json(t)["error"] != "invalid_grant" {
					t.Errorf("the first refresh token still works after the replay: %d %s", r.status, r.body)
				}
			}},
		attack{name: "token/wrong_content_type", want: want{400, "invalid_request", kJSON, nil},
			run: func(t *testing.T, g *gw) *reply {
				id, code, ver := codeFixture(g)
				b, _ := json.Marshal(map[string]string{"grant_type": "authorization_code", "client_id": id, "code": code, "redirect_uri": loopback, "code_verifier": ver})
				g.begin()
				return g.post("/oauth/token", "application/json", string(b))
			}},
		attack{name: "token/params_in_query_not_body", want: want{400, "invalid_request", kJSON, nil},
			run: func(t *testing.T, g *gw) *reply {
				id, code, ver := codeFixture(g)
				q := form("grant_type", "authorization_code", "client_id", id, "code", code, "redirect_uri", loopback, "code_verifier", ver)
				g.begin()
				return g.post("/oauth/token?"+q.Encode(), "application/x-www-form-urlencoded", "")
			}},
		attack{name: "token/oversized_body", want: want{413, "invalid_request", kJSON, nil},
			run: func(t *testing.T, g *gw) *reply {
				id, code, ver := codeFixture(g)
				v := form("grant_type", "authorization_code", "client_id", id, "code", code, "redirect_uri", loopback, "code_verifier", ver, "pad", strings.Repeat("p", 70<<10))
				g.begin()
				return g.postForm("/oauth/token", v)
			}},
		attack{name: "token/oversized_header", want: want{431, "", kStatus, nil},
			run: func(t *testing.T, g *gw) *reply {
				id, code, ver := codeFixture(g)
				v := form("grant_type", "authorization_code", "client_id", id, "code", code, "redirect_uri", loopback, "code_verifier", ver)
				g.begin()
				return g.postForm("/oauth/token", v, "X-Junk", strings.Repeat("j", 40<<10))
			}},
		attack{name: "token/rate_limited", want: want{429, "rate_limited", kJSON, nil},
			run: func(t *testing.T, g *gw) *reply {
				id := g.register()
				for range g.cfg.RateLimit.Token {
					g.postForm("/oauth/token", form("grant_type", "authorization_code", "client_id", id, "code", "x"))
				}
				_, code, ver := codeFixture(g)
				g.begin()
				return g.exchange(id, code, ver, loopback)
			}},
		attack{name: "authorize/rate_limited", want: want{429, "", kPage, nil},
			run: func(t *testing.T, g *gw) *reply {
				id := g.register()
				_, ch := pkce()
				for range g.cfg.RateLimit.Authorize {
					g.get(g.authzURL(id, "https://evil.example/cb", ch, nil))
				}
				g.begin()
				return g.get(g.authzURL(id, loopback, ch, nil))
			}},
	)

	// ---- token endpoint: refresh tokens ----
	refreshCase := func(name string, writes map[string]int, w want, run func(t *testing.T, g *gw) *reply, then func(t *testing.T, g *gw, r *reply)) attack {
		w.writes = writes
		return attack{name: "refresh/" + name, want: w, run: run, then: then}
	}
	cases = append(cases,
		refreshCase("reuse_revokes_family", map[string]int{"RevokeJTI": 2}, want{400, "invalid_grant", kJSON, nil},
			func(t *testing.T, g *gw) *reply {
				id, _, r1 := g.grant("alice", g.resource("alpha"))
				r := g.refresh(id, r1)
				m := r.json(t)
				if r.status != 200 {
					t.Fatalf("first refresh: %d %v", r.status, m)
				}
				g.fx["client"], g.fx["access2"], g.fx["refresh2"] = id, m["access_token"].(string), m["refresh_token"].(string)
				g.secret(g.fx["access2"], g.fx["refresh2"])
				g.checkAllowed(t, "alpha", "Bearer "+g.fx["access2"], "alice")
				g.begin()
				return g.refresh(id, r1)
			},
			func(t *testing.T, g *gw, _ *reply) {
				denied(t, g, "alpha", "Bearer "+g.fx["access2"], 401, "invalid_token")
				if r := g.refresh(g.fx["client"], g.fx["refresh2"]); r.status != 400 {
					t.Errorf("the rotated refresh token still works after reuse: %d", r.status)
				}
			}),
		refreshCase("from_another_client", nil, want{400, "invalid_grant", kJSON, nil},
			func(t *testing.T, g *gw) *reply {
				id, _, rt := g.grant("alice", g.resource("alpha"))
				g.fx["client"], g.fx["refresh"] = id, rt
				other := g.register()
				g.begin()
				return g.refresh(other, rt)
			},
			func(t *testing.T, g *gw, _ *reply) {
				if r := g.refresh(g.fx["client"], g.fx["refresh"]); r.status != 200 {
					t.Errorf("the owner's refresh token was burned by another client: %d %s", r.status, r.body)
				}
			}),
		refreshCase("scope_escalation", nil, want{400, "invalid_scope", kJSON, nil},
			func(t *testing.T, g *gw) *reply {
				id, _, rt := g.grant("alice", g.resource("alpha"))
				g.begin()
				return g.postForm("/oauth/token", form("grant_type", "refresh_token", "client_id", id, "refresh_token", rt, "scope", "mcp admin"))
			}, nil),
		refreshCase("resource_change", nil, want{400, "invalid_target", kJSON, nil},
			func(t *testing.T, g *gw) *reply {
				id, _, rt := g.grant("alice", g.resource("alpha"))
				g.begin()
				return g.postForm("/oauth/token", form("grant_type", "refresh_token", "client_id", id, "refresh_token", rt, "resource", g.resource("private")))
			}, nil),
		refreshCase("access_token_as_refresh_token", nil, want{400, "invalid_grant", kJSON, nil},
			func(t *testing.T, g *gw) *reply {
				id, access, _ := g.grant("alice", g.resource("alpha"))
				g.begin()
				return g.refresh(id, access)
			}, nil),
		refreshCase("revoke_by_another_client", nil, want{400, "unauthorized_client", kJSON, nil},
			func(t *testing.T, g *gw) *reply {
				id, _, rt := g.grant("alice", g.resource("alpha"))
				g.fx["client"], g.fx["refresh"] = id, rt
				other := g.register()
				g.begin()
				return g.postForm("/oauth/revoke", form("token", rt, "client_id", other))
			},
			func(t *testing.T, g *gw, _ *reply) {
				if r := g.refresh(g.fx["client"], g.fx["refresh"]); r.status != 200 {
					t.Errorf("another client revoked the owner's refresh token: %d", r.status)
				}
			}),
	)

	return cases
}

// s256 is the PKCE S256 challenge of a verifier.
func s256(v string) string {
	sum := sha256.Sum256([]byte(v))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}
