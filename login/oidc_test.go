package login

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
	"golang.org/x/text/language"

	"github.com/mcpgateway/mcp-gateway/config"
)

// The upstream in these tests is a real OpenID Provider: the certified op
// package of github.com/zitadel/oidc with its example storage and login UI,
// on 127.0.0.1. Our gateway discovers it, sends the browser there, and the
// browser signs in on its login form.

const (
	opClientID     = "mcp-gateway"
	opClientSecret = "op-client-secret"
)

// opUsers are the provider's accounts (storage.UserStore).
type opUsers map[string]*storage.User

func (u opUsers) GetUserByID(id string) *storage.User { return u[id] }
func (u opUsers) GetUserByUsername(name string) *storage.User {
	for _, x := range u {
		if x.Username == name {
			return x
		}
	}
	return nil
}
func (u opUsers) ExampleClientID() string { return storage.ServiceUserID }

var testUsers = opUsers{
	"u-alice": {ID: "u-alice", Username: "alice", Password: "alice-pw", Email: "alice@Example.com", EmailVerified: true, PreferredLanguage: language.English},
	"u-bob":   {ID: "u-bob", Username: "bob", Password: "bob-pw", Email: "bob@example.com", EmailVerified: false, PreferredLanguage: language.English},
	"u-carol": {ID: "u-carol", Username: "carol", Password: "carol-pw", Email: "carol@other.org", EmailVerified: true, PreferredLanguage: language.English},
}

var testGroups = map[string][]string{"u-alice": {"staff", "mcp-users"}, "u-carol": {"staff"}}

// opStorage is the example storage plus what a real deployment configures:
// a groups claim, the choice to put userinfo claims in the ID token, and
// (for one failure test) a mix-up that issues the ID token to another client.
type opStorage struct {
	*storage.Storage
	claimsInIDToken bool

	mu          sync.Mutex
	otherClient string
	alsoUs      bool // the mixed-up ID token's aud lists us too
	redirects   []string
}

func (s *opStorage) addRedirect(u string) {
	s.mu.Lock()
	s.redirects = append(s.redirects, u)
	s.mu.Unlock()
}

func (s *opStorage) other() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.otherClient
}

func (s *opStorage) GetClientByClientID(ctx context.Context, id string) (op.Client, error) {
	c, err := s.Storage.GetClientByClientID(ctx, id)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return claimsClient{c, s.claimsInIDToken, s.otherClient, slices.Clone(s.redirects)}, nil
}

type claimsClient struct {
	op.Client
	inIDToken bool
	id        string
	redirects []string
}

func (c claimsClient) RedirectURIs() []string { return c.redirects }

func (c claimsClient) IDTokenUserinfoClaimsAssertion() bool { return c.inIDToken }

func (c claimsClient) GetID() string {
	if c.id != "" {
		return c.id
	}
	return c.Client.GetID()
}

func (s *opStorage) SetUserinfoFromScopes(ctx context.Context, ui *oidc.UserInfo, userID, clientID string, scopes []string) error {
	if err := s.Storage.SetUserinfoFromScopes(ctx, ui, userID, clientID, scopes); err != nil {
		return err
	}
	if s.claimsInIDToken { // the ID token path
		s.addGroups(ui, userID)
	}
	return nil
}

func (s *opStorage) SetUserinfoFromRequest(ctx context.Context, ui *oidc.UserInfo, req op.IDTokenRequest, scopes []string) error {
	if err := s.Storage.SetUserinfoFromRequest(ctx, ui, req, scopes); err != nil {
		return err
	}
	if s.claimsInIDToken {
		s.addGroups(ui, req.GetSubject())
	}
	return nil
}

func (s *opStorage) SetUserinfoFromToken(ctx context.Context, ui *oidc.UserInfo, tokenID, subject, origin string) error {
	if err := s.Storage.SetUserinfoFromToken(ctx, ui, tokenID, subject, origin); err != nil {
		return err
	}
	s.addGroups(ui, ui.Subject) // the userinfo endpoint always has them
	return nil
}

func (s *opStorage) addGroups(ui *oidc.UserInfo, userID string) {
	if g, ok := testGroups[userID]; ok {
		ui.AppendClaims("groups", g)
	}
}

func (s *opStorage) AuthRequestByCode(ctx context.Context, code string) (op.AuthRequest, error) {
	r, err := s.Storage.AuthRequestByCode(ctx, code)
	if other := s.other(); err == nil && other != "" {
		s.mu.Lock()
		defer s.mu.Unlock()
		return otherRequest{r, other, s.alsoUs}, nil
	}
	return r, err
}

type otherRequest struct {
	op.AuthRequest
	client string
	alsoUs bool
}

func (r otherRequest) GetClientID() string { return r.client }
func (r otherRequest) GetAudience() []string {
	if r.alsoUs {
		return []string{opClientID, r.client}
	}
	return []string{r.client}
}

// testOP is the running provider.
type testOP struct {
	url      string
	st       *opStorage
	userinfo atomic.Int32 // calls of its userinfo endpoint
}

// startOP serves a provider on 127.0.0.1 until stop is called.
func startOP(claimsInIDToken bool) (o *testOP, stop func()) {
	ts := httptest.NewUnstartedServer(nil)
	issuer := "http://" + ts.Listener.Addr().String()
	// The client's redirect URIs come from opStorage (each test gateway
	// adds its callback), so this entry only provides id and secret.
	clients := map[string]*storage.Client{opClientID: storage.WebClient(opClientID, opClientSecret, "http://127.0.0.1/unused")}
	st := &opStorage{Storage: storage.NewStorageWithClients(testUsers, clients), claimsInIDToken: claimsInIDToken}
	o = &testOP{url: issuer, st: st}
	// A non-nil logger replaces slog's default (the example's choice): keep
	// the provider's request log out of the test output.
	h := exampleop.SetupServer(issuer, st, slog.New(slog.DiscardHandler), false)
	ts.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/userinfo" {
			o.userinfo.Add(1)
		}
		h.ServeHTTP(w, r)
	})
	ts.Start()
	return o, ts.Close
}

// Providers are shared by the tests (each makes a 2048-bit RSA key);
// TestMain stops them.
var shared struct {
	mu   sync.Mutex
	ops  map[bool]*testOP
	stop []func()
}

func sharedOP(claimsInIDToken bool) *testOP {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if o := shared.ops[claimsInIDToken]; o != nil {
		return o
	}
	o, stop := startOP(claimsInIDToken)
	if shared.ops == nil {
		shared.ops = map[bool]*testOP{}
	}
	shared.ops[claimsInIDToken] = o
	shared.stop = append(shared.stop, stop)
	return o
}

func TestMain(m *testing.M) {
	code := m.Run()
	for _, stop := range shared.stop {
		stop()
	}
	os.Exit(code)
}

// oidcEnv is a gateway whose login provider is a test OP.
type oidcEnv struct {
	*gateway
	op *testOP
}

// newOIDCEnv starts a gateway on a shared provider.
func newOIDCEnv(t *testing.T, claimsInIDToken bool, tweak func(*config.OIDCLogin)) *oidcEnv {
	t.Helper()
	return newOIDCEnvOn(t, sharedOP(claimsInIDToken), tweak)
}

func newOIDCEnvOn(t *testing.T, o *testOP, tweak func(*config.OIDCLogin)) *oidcEnv {
	t.Helper()
	g := newGateway(t, func(cfg *config.Config) {
		cfg.Login.Provider = config.LoginOIDC
		cfg.Login.OIDC.Issuer = o.url
		cfg.Login.OIDC.ClientID = opClientID
		cfg.Login.OIDC.ClientSecret = opClientSecret
		if tweak != nil {
			tweak(&cfg.Login.OIDC)
		}
	})
	o.st.addRedirect(g.url + OIDCCallbackPath)
	return &oidcEnv{gateway: g, op: o}
}

func (e *oidcEnv) atOP(u *url.URL) bool { return "http://"+u.Host == e.op.url }
func (e *oidcEnv) atCallback(u *url.URL) bool {
	return u.String() != "" && strings.HasPrefix(u.String(), e.url+OIDCCallbackPath)
}

// toOP starts an MCP client authorization in b and returns the gateway's
// redirect to the provider's authorization endpoint.
func (e *oidcEnv) toOP(b *browser) (*url.URL, *flow) {
	e.t.Helper()
	u, f := e.authorizeURL()
	resp := b.get(u)
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		e.t.Fatalf("authorize: %d %s", resp.StatusCode, readBody(resp))
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || !e.atOP(loc) {
		e.t.Fatalf("authorize redirected to %q, want the provider %s", resp.Header.Get("Location"), e.op.url)
	}
	return loc, f
}

// signIn follows authURL (possibly tampered) to the provider's login form,
// signs in as username and follows the redirects until stop.
func (e *oidcEnv) signIn(b *browser, authURL *url.URL, username string, stop func(*url.URL) bool) *http.Response {
	e.t.Helper()
	resp := b.follow(b.get(authURL.String()), nil, nil)
	if resp.StatusCode != http.StatusOK || !e.atOP(resp.Request.URL) || resp.Request.URL.Path != "/login/username" {
		e.t.Fatalf("expected the provider's login form, got %d at %s: %s", resp.StatusCode, resp.Request.URL, readBody(resp))
	}
	action, fields := parseForm(e.t, resp.Request.URL, readBody(resp))
	u := testUsers.GetUserByUsername(username)
	fields.Set("username", username)
	fields.Set("password", u.Password)
	return b.follow(b.postForm(action, fields), stop, nil)
}

// login runs authorize → provider → callback for username and returns
// where the gateway sent the browser (consent page or client redirect).
func (e *oidcEnv) login(username string) (*browser, *flow, *http.Response) {
	e.t.Helper()
	b := newBrowser(e.t)
	authURL, f := e.toOP(b)
	return b, f, e.signIn(b, authURL, username, atClient)
}

func TestOIDCFullFlow(t *testing.T) {
	for _, tc := range []struct {
		name            string
		claimsInIDToken bool
		cfg             func(*config.OIDCLogin)
		user, want      string
		userinfo        int32 // expected userinfo calls
	}{
		{"sub", false, nil, "alice", "u-alice", 0},
		{"email from userinfo with allow-lists", false, func(o *config.OIDCLogin) {
			o.UserClaim, o.AllowedEmailDomains, o.AllowedGroups = "email", []string{"example.COM"}, []string{"mcp-users"}
		}, "alice", "alice@Example.com", 1},
		{"email in the id token with allow-lists", true, func(o *config.OIDCLogin) {
			o.UserClaim, o.AllowedEmailDomains, o.AllowedGroups = "email", []string{"example.com"}, []string{"mcp-users"}
		}, "alice", "alice@Example.com", 0},
		{"sub of a user with an unverified email", false, nil, "bob", "u-bob", 0},
		{"groups from userinfo", false, func(o *config.OIDCLogin) { o.AllowedGroups = []string{"staff"} }, "carol", "u-carol", 1},
		{"groups in the id token", true, func(o *config.OIDCLogin) { o.AllowedGroups = []string{"staff"} }, "carol", "u-carol", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newOIDCEnv(t, tc.claimsInIDToken, tc.cfg)
			userinfoBefore := e.op.userinfo.Load()
			b := newBrowser(t)
			authURL, f := e.toOP(b)
			q := authURL.Query()
			id, _, _ := strings.Cut(q.Get("state"), ".")
			p := e.pendingOf(id)
			if q.Get("client_id") != opClientID || q.Get("redirect_uri") != e.url+OIDCCallbackPath || q.Get("response_type") != "code" ||
				q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" || q.Get("nonce") != p.LoginNonce ||
				p.LoginStateHash == "" || p.LoginVerifier == "" || !strings.Contains(q.Get("scope"), "openid") {
				t.Fatalf("upstream authorization request %v (pending %+v)", q, p)
			}
			resp := e.signIn(b, authURL, tc.user, atClient)
			if got := e.pendingOf(id); got.LoginStateHash != "" || got.LoginVerifier != "" || got.LoginNonce != "" {
				t.Fatalf("login state not cleared after the callback: %+v", got)
			}
			if got := e.redeem(b.consent(resp, tc.want), f); got != tc.want {
				t.Fatalf("access token sub %q, want %q", got, tc.want)
			}
			if len(e.audits("login")) != 1 {
				t.Fatalf("want one login audit line: %s", e.logs.String())
			}
			if n := e.op.userinfo.Load() - userinfoBefore; n != tc.userinfo {
				t.Fatalf("%d userinfo calls, want %d", n, tc.userinfo)
			}

			// The gateway session now skips the provider, and consent was saved.
			u, f2 := e.authorizeURLFor(f.clientID)
			if got := e.redeem(b.get(u), f2); got != tc.want {
				t.Fatalf("second authorization: sub %q, want %q", got, tc.want)
			}
		})
	}
}

func TestOIDCDenied(t *testing.T) {
	for _, tc := range []struct {
		name, user, reason string
		cfg                func(*config.OIDCLogin)
	}{
		{"email not verified", "bob", "email_not_verified", func(o *config.OIDCLogin) { o.UserClaim = "email" }},
		{"domain check needs a verified email", "bob", "email_not_verified", func(o *config.OIDCLogin) { o.AllowedEmailDomains = []string{"example.com"} }},
		{"domain not allowed", "carol", "email_domain_not_allowed", func(o *config.OIDCLogin) {
			o.UserClaim, o.AllowedEmailDomains = "email", []string{"example.com"}
		}},
		{"group not allowed", "carol", "group_not_allowed", func(o *config.OIDCLogin) { o.AllowedGroups = []string{"mcp-users"} }},
		{"no groups at all", "bob", "group_not_allowed", func(o *config.OIDCLogin) { o.AllowedGroups = []string{"mcp-users"} }},
		{"groups claim renamed", "alice", "group_not_allowed", func(o *config.OIDCLogin) {
			o.AllowedGroups, o.GroupsClaim = []string{"mcp-users"}, "roles"
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newOIDCEnv(t, false, tc.cfg)
			_, f, resp := e.login(tc.user)
			expectClientError(t, resp, f, "access_denied")
			e.expectAudit("login_failed", tc.reason)
			if len(e.audits("login")) != 0 {
				t.Fatal("a denied user was logged in")
			}
		})
	}
}

func TestOIDCUpstreamError(t *testing.T) {
	e := newOIDCEnv(t, false, nil)
	b := newBrowser(t)
	authURL, f := e.toOP(b)
	// What a provider sends when the user refuses: error + our state.
	cb := e.url + OIDCCallbackPath + "?" + url.Values{"error": {"access_denied"}, "error_description": {"user said no"},
		"state": {authURL.Query().Get("state")}}.Encode()
	expectClientError(t, b.get(cb), f, "access_denied")
	e.expectAudit("login_failed", "upstream_error")

	// A provider outage is passed on as temporarily_unavailable.
	b = newBrowser(t)
	authURL, f = e.toOP(b)
	cb = e.url + OIDCCallbackPath + "?" + url.Values{"error": {"temporarily_unavailable"}, "state": {authURL.Query().Get("state")}}.Encode()
	expectClientError(t, b.get(cb), f, "temporarily_unavailable")

	// An error without a valid state is not forwarded to any client.
	expectPage(t, b.get(e.url+OIDCCallbackPath+"?error=access_denied&state=x"), http.StatusBadRequest, "does not belong")
}

func TestOIDCBadState(t *testing.T) {
	e := newOIDCEnv(t, false, nil)
	b := newBrowser(t)
	authURL, _ := e.toOP(b)
	resp := e.signIn(b, authURL, "alice", e.atCallback)
	cb, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || !e.atCallback(cb) {
		t.Fatalf("provider redirected to %q", resp.Header.Get("Location"))
	}
	good := cb.Query()
	withState := func(state string) string {
		q := url.Values{"code": {good.Get("code")}, "state": {state}}
		return e.url + OIDCCallbackPath + "?" + q.Encode()
	}
	id, secret, _ := strings.Cut(good.Get("state"), ".")
	flipped := []byte(secret)
	flipped[5] ^= 1
	for name, state := range map[string]string{
		"wrong secret":  id + "." + string(flipped),
		"no secret":     id,
		"short secret":  id + ".abc",
		"empty":         "",
		"unknown id":    "nosuchrequest." + secret,
		"other request": e.otherPending(t, b) + "." + secret,
	} {
		t.Run(name, func(t *testing.T) {
			resp := b.get(withState(state))
			body := readBody(resp)
			if resp.StatusCode != http.StatusBadRequest || strings.Contains(resp.Header.Get("Location"), "code=") {
				t.Fatalf("got %d %s", resp.StatusCode, body)
			}
		})
	}

	// An answer that names another provider (RFC 9207) is refused.
	mixUp := *cb
	mq := cb.Query()
	mq.Set("iss", "https://evil.example")
	mixUp.RawQuery = mq.Encode()
	expectPage(t, b.get(mixUp.String()), http.StatusBadRequest, "does not belong")
	// The real answer in another browser (no binding cookie) is refused.
	expectPage(t, newBrowser(t).get(cb.String()), http.StatusBadRequest, "another browser")
	// In the right browser it works, exactly once.
	resp = b.follow(b.get(cb.String()), atClient, nil)
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/consent" {
		t.Fatalf("callback: %d at %s", resp.StatusCode, resp.Request.URL)
	}
	resp.Body.Close()
	expectPage(t, b.get(cb.String()), http.StatusBadRequest, "does not belong")
	e.expectAudit("login_failed", "bad_state")
}

// otherPending starts a second authorization in b and returns its pending id.
func (e *oidcEnv) otherPending(t *testing.T, b *browser) string {
	authURL, _ := e.toOP(b)
	id, _, _ := strings.Cut(authURL.Query().Get("state"), ".")
	return id
}

func TestOIDCNonceMismatch(t *testing.T) {
	e := newOIDCEnv(t, false, nil)
	b := newBrowser(t)
	authURL, _ := e.toOP(b)
	q := authURL.Query()
	q.Set("nonce", "attacker-chosen-nonce")
	authURL.RawQuery = q.Encode()
	expectPage(t, e.signIn(b, authURL, "alice", atClient), http.StatusBadGateway, "could not be verified")
	e.expectAudit("login_failed", "upstream_response_invalid")
	if !strings.Contains(e.logs.String(), "nonce mismatch") {
		t.Fatalf("log does not name the nonce: %s", e.logs.String())
	}
	if len(e.audits("login")) != 0 {
		t.Fatal("logged in despite a wrong nonce")
	}
}

func TestOIDCWrongAudience(t *testing.T) {
	for _, tc := range []struct {
		name, log string
		alsoUs    bool
	}{
		{"aud is another client", "expected audience", false},
		{"aud has us but azp is another client", "azp", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, stop := startOP(false) // its own: the test makes it misbehave
			defer stop()
			e := newOIDCEnvOn(t, o, nil)
			b := newBrowser(t)
			authURL, _ := e.toOP(b)
			resp := e.signIn(b, authURL, "alice", e.atCallback)
			// From the code exchange on, the provider believes the code was
			// issued to another client and names that one in the ID token.
			o.st.mu.Lock()
			o.st.otherClient, o.st.alsoUs = "some-other-client", tc.alsoUs
			o.st.mu.Unlock()
			resp = b.follow(resp, atClient, nil)
			expectPage(t, resp, http.StatusBadGateway, "could not be verified")
			if !strings.Contains(e.logs.String(), tc.log) {
				t.Fatalf("log does not say %q: %s", tc.log, e.logs.String())
			}
			if len(e.audits("login")) != 0 {
				t.Fatal("logged in with a token for another client")
			}
		})
	}
}

func TestOIDCBadCode(t *testing.T) {
	e := newOIDCEnv(t, false, nil)
	b := newBrowser(t)
	authURL, _ := e.toOP(b)
	resp := e.signIn(b, authURL, "alice", e.atCallback)
	cb, _ := url.Parse(resp.Header.Get("Location"))
	q := cb.Query()
	q.Set("code", "not-the-code")
	cb.RawQuery = q.Encode()
	expectPage(t, b.get(cb.String()), http.StatusBadGateway, "could not be verified")
	if !strings.Contains(e.logs.String(), "code exchange") {
		t.Fatalf("log does not name the exchange: %s", e.logs.String())
	}
	// No code at all.
	b = newBrowser(t)
	authURL, _ = e.toOP(b)
	expectPage(t, b.get(e.url+OIDCCallbackPath+"?state="+url.QueryEscape(authURL.Query().Get("state"))), http.StatusBadRequest, "no authorization code")
}

func TestOIDCDiscoveryDown(t *testing.T) {
	// A port nobody listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + l.Addr().String()
	l.Close()
	// A provider whose discovery fails, and one that names another issuer.
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down for maintenance", http.StatusInternalServerError)
	}))
	t.Cleanup(failing.Close)
	impostor := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"issuer":"https://elsewhere.example","authorization_endpoint":"https://elsewhere.example/auth","token_endpoint":"https://elsewhere.example/token","jwks_uri":"https://elsewhere.example/keys"}`))
	}))
	t.Cleanup(impostor.Close)
	for name, issuer := range map[string]string{"closed port": closed, "500": failing.URL, "issuer mismatch": impostor.URL} {
		t.Run(name, func(t *testing.T) {
			g := newGateway(t, func(cfg *config.Config) {
				cfg.Login.Provider = config.LoginOIDC
				cfg.Login.OIDC.Issuer, cfg.Login.OIDC.ClientID = issuer, opClientID
			})
			u, _ := g.authorizeURL()
			resp := newBrowser(t).get(u)
			expectPage(t, resp, http.StatusBadGateway, "could not be reached")
			if resp.Header.Get("Retry-After") == "" {
				t.Fatal("no Retry-After on the discovery failure page")
			}
		})
	}
}

func TestOIDCCallbackMethod(t *testing.T) {
	e := newOIDCEnv(t, false, nil)
	resp, err := http.PostForm(e.url+OIDCCallbackPath, url.Values{"state": {"x"}})
	if err != nil {
		t.Fatal(err)
	}
	expectPage(t, resp, http.StatusMethodNotAllowed, "does not accept")
	// Repeated parameters are refused.
	expectPage(t, newBrowser(t).get(e.url+OIDCCallbackPath+"?state=a&state=b"), http.StatusBadRequest, "malformed")
}
