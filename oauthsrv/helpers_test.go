package oauthsrv

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/net/html"

	"github.com/mcpgateway/mcp-gateway/config"
	"github.com/mcpgateway/mcp-gateway/internal/logtest"
	"github.com/mcpgateway/mcp-gateway/store"
	"github.com/mcpgateway/mcp-gateway/store/memstore"
	"github.com/mcpgateway/mcp-gateway/token"
)

// storeFactory makes the backend the tests run on. It is a variable so a
// file guarded by MCPGW_TEST_REDIS_URL can switch it to Redis (storeopen).
// now is the test clock; backends with their own clock (Redis TTLs) ignore it.
var storeFactory = func(tb testing.TB, now func() time.Time) store.Store {
	s := memstore.NewWithClock(now)
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

const testSecret = "0123456789abcdef0123456789abcdef-test-secret"

var passwords = map[string]string{"alice": "alice-password", "bob": "bob-password", "carol": "carol-password"}

var hashedUsers = sync.OnceValue(func() []config.User {
	var us []config.User
	for name, pw := range passwords {
		h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
		if err != nil {
			panic(err)
		}
		us = append(us, config.User{Username: name, PasswordHash: string(h)})
	}
	return us
})

// clock is a settable test clock starting at the wall clock.
type clock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.off += d
	c.mu.Unlock()
}

type env struct {
	t     testing.TB
	cfg   *config.Config
	st    store.Store
	ring  *token.Ring
	srv   *Server
	ts    *httptest.Server
	clock *clock
	logs  *logtest.Buffer
	url   string
}

type envOption func(*config.Config, *Options)

// newEnv starts the authorization server on 127.0.0.1 with agents "demo"
// (owner alice, user bob) and "private" (owner carol).
func newEnv(t testing.TB, opts ...envOption) *env {
	t.Helper()
	e := &env{t: t, clock: &clock{}, logs: &logtest.Buffer{}}
	e.ts = httptest.NewUnstartedServer(nil)
	e.url = "http://" + e.ts.Listener.Addr().String()
	cfg := config.Default()
	cfg.PublicURL = e.url
	cfg.Login.Users = hashedUsers()
	cfg.RateLimit = config.RateLimit{} // off unless a test sets one
	e.cfg = cfg
	e.st = storeFactory(t, e.clock.Now)
	ctx := context.Background()
	for _, a := range []*store.Agent{
		{AgentSpec: store.AgentSpec{ID: "demo", Owner: "alice", Users: []string{"bob"}}},
		{AgentSpec: store.AgentSpec{ID: "private", Owner: "carol"}},
	} {
		if err := e.st.PutAgent(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	ring, err := token.NewRing(e.url, []token.Key{{ID: "k1", Secret: []byte(testSecret)}})
	if err != nil {
		t.Fatal(err)
	}
	e.ring = ring
	o := Options{
		Config: cfg, Store: e.st, Ring: ring, Agents: e.st,
		Logger: slog.New(slog.NewJSONHandler(e.logs, nil)), Now: e.clock.Now,
	}
	for _, f := range opts {
		f(cfg, &o)
	}
	e.srv, err = New(o)
	if err != nil {
		t.Fatal(err)
	}
	e.ts.Config.Handler = e.srv.Handler()
	e.ts.Start()
	t.Cleanup(e.ts.Close)
	return e
}

// plain is an HTTP client that never follows redirects.
var plain = &http.Client{
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	Timeout:       10 * time.Second,
}

func (e *env) do(req *http.Request) *http.Response {
	e.t.Helper()
	resp, err := plain.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp
}

func (e *env) get(path string) *http.Response {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.url+path, nil)
	return e.do(req)
}

func (e *env) postForm(path string, v url.Values) *http.Response {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.url+path, strings.NewReader(v.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return e.do(req)
}

func (e *env) postJSON(path string, body string) *http.Response {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.url+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	return e.do(req)
}

// readJSON decodes a JSON response body into a map and closes it.
func readJSON(t testing.TB, resp *http.Response) map[string]any {
	t.Helper()
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type = %q, want application/json (status %d, body %s)", ct, resp.StatusCode, b)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("body is not a JSON object: %v: %s", err, b)
	}
	return m
}

func readBodyString(resp *http.Response) string {
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// expectOAuthError asserts status and the JSON error code.
func expectOAuthError(t testing.TB, resp *http.Response, status int, code string) {
	t.Helper()
	m := readJSON(t, resp)
	if resp.StatusCode != status || m["error"] != code {
		t.Fatalf("got %d %v, want %d error=%s", resp.StatusCode, m, status, code)
	}
}

const loopbackRedirect = "http://127.0.0.1:9/callback"

// register registers a public client and returns its id.
func (e *env) register(name string, redirects ...string) string {
	e.t.Helper()
	if len(redirects) == 0 {
		redirects = []string{loopbackRedirect}
	}
	b, _ := json.Marshal(map[string]any{"client_name": name, "redirect_uris": redirects})
	resp := e.postJSON("/oauth/register", string(b))
	m := readJSON(e.t, resp)
	if resp.StatusCode != http.StatusCreated {
		e.t.Fatalf("register: %d %v", resp.StatusCode, m)
	}
	return m["client_id"].(string)
}

// pkce returns a fresh verifier and its S256 challenge.
func pkce() (verifier, challenge string) {
	verifier = token.Random(32)
	sum := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(sum[:])
}

// browser is a user agent with a cookie jar that follows the gateway's own
// redirects but stops at the client's redirect URI.
type browser struct {
	e *env
	c *http.Client
}

func (e *env) browser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{e: e, c: &http.Client{
		Jar:     jar,
		Timeout: 10 * time.Second,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if req.URL.Scheme+"://"+req.URL.Host != e.url {
				return http.ErrUseLastResponse
			}
			return nil
		},
	}}
}

func (b *browser) get(rawURL string) *http.Response {
	b.e.t.Helper()
	resp, err := b.c.Get(rawURL)
	if err != nil {
		b.e.t.Fatal(err)
	}
	return resp
}

func (b *browser) post(rawURL string, v url.Values) *http.Response {
	b.e.t.Helper()
	resp, err := b.c.PostForm(rawURL, v)
	if err != nil {
		b.e.t.Fatal(err)
	}
	return resp
}

// authzParams is an authorization request.
type authzParams struct {
	clientID, redirect, challenge, state, scope, resource string
}

func (e *env) authorizeURL(p authzParams) string {
	v := url.Values{
		"response_type":         {"code"},
		"client_id":             {p.clientID},
		"redirect_uri":          {p.redirect},
		"code_challenge":        {p.challenge},
		"code_challenge_method": {"S256"},
	}
	for k, s := range map[string]string{"state": p.state, "scope": p.scope, "resource": p.resource} {
		if s != "" {
			v.Set(k, s)
		}
	}
	return e.url + "/oauth/authorize?" + v.Encode()
}

// form is an HTML form found on a page.
type form struct {
	action  *url.URL
	fields  url.Values
	buttons map[string][]string // name → values of submit buttons
}

// parseForm reads the first form of an HTML page, resolving its action
// against the page URL.
func parseForm(t testing.TB, resp *http.Response) form {
	t.Helper()
	body := readBodyString(resp)
	doc, err := html.Parse(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	f := form{fields: url.Values{}, buttons: map[string][]string{}}
	found := false
	var walk func(n *html.Node)
	attr := func(n *html.Node, k string) string {
		for _, a := range n.Attr {
			if a.Key == k {
				return a.Val
			}
		}
		return ""
	}
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode {
			switch n.Data {
			case "form":
				if !found {
					found = true
					a, err := resp.Request.URL.Parse(attr(n, "action"))
					if err != nil {
						t.Fatal(err)
					}
					f.action = a
				}
			case "input":
				if attr(n, "type") == "hidden" {
					f.fields.Set(attr(n, "name"), attr(n, "value"))
				}
			case "button":
				if name := attr(n, "name"); name != "" {
					f.buttons[name] = append(f.buttons[name], attr(n, "value"))
				}
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	if !found {
		t.Fatalf("no form on page %s (status %d): %s", resp.Request.URL, resp.StatusCode, body)
	}
	return f
}

// submit posts the form's hidden fields plus extra.
func (b *browser) submit(f form, extra url.Values) *http.Response {
	b.e.t.Helper()
	v := url.Values{}
	for k, s := range f.fields {
		v[k] = s
	}
	for k, s := range extra {
		v[k] = s
	}
	return b.post(f.action.String(), v)
}

// login fills in the login page resp with username and password.
func (b *browser) login(resp *http.Response, user string) *http.Response {
	b.e.t.Helper()
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/login" {
		b.e.t.Fatalf("expected the login page, got %d at %s: %s", resp.StatusCode, resp.Request.URL, readBodyString(resp))
	}
	f := parseForm(b.e.t, resp)
	return b.submit(f, url.Values{"username": {user}, "password": {passwords[user]}})
}

// consent answers the consent page resp.
func (b *browser) consent(resp *http.Response, decision string) *http.Response {
	b.e.t.Helper()
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/consent" {
		b.e.t.Fatalf("expected the consent page, got %d at %s: %s", resp.StatusCode, resp.Request.URL, readBodyString(resp))
	}
	f := parseForm(b.e.t, resp)
	return b.submit(f, url.Values{"decision": {decision}})
}

// callback checks a redirect to the client and returns its query.
func callback(t testing.TB, resp *http.Response, redirect string) url.Values {
	t.Helper()
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("expected a redirect to the client, got %d: %s", resp.StatusCode, b)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := url.Parse(redirect)
	if loc.Scheme != want.Scheme || loc.Host != want.Host || loc.Path != want.Path {
		t.Fatalf("redirected to %s, want %s", loc, redirect)
	}
	return loc.Query()
}

// fullLogin runs authorize → login → consent(approve) in a fresh browser
// and returns the browser, the code and the verifier.
func (e *env) fullLogin(clientID, user, resource string) (*browser, string, string) {
	e.t.Helper()
	b := e.browser()
	code, verifier := b.authorizeCode(clientID, user, resource)
	return b, code, verifier
}

// authorizeCode authorizes in this browser, logging in and approving when
// asked, and returns code and verifier.
func (b *browser) authorizeCode(clientID, user, resource string) (string, string) {
	b.e.t.Helper()
	return b.authorizeCodeAt(clientID, loopbackRedirect, user, resource)
}

// authorizeCodeAt is authorizeCode with redirect URI redirect.
func (b *browser) authorizeCodeAt(clientID, redirect, user, resource string) (string, string) {
	b.e.t.Helper()
	verifier, challenge := pkce()
	state := token.Random(8)
	resp := b.get(b.e.authorizeURL(authzParams{clientID: clientID, redirect: redirect, challenge: challenge, state: state, resource: resource}))
	if resp.StatusCode == http.StatusOK && resp.Request.URL.Path == "/login" {
		resp = b.login(resp, user)
	}
	if resp.StatusCode == http.StatusOK && resp.Request.URL.Path == "/consent" {
		resp = b.consent(resp, "approve")
	}
	q := callback(b.e.t, resp, redirect)
	if q.Get("state") != state || q.Get("iss") != b.e.url || q.Get("code") == "" {
		b.e.t.Fatalf("callback query %v", q)
	}
	return q.Get("code"), verifier
}

// exchange redeems a code and returns the response.
func (e *env) exchange(clientID, code, verifier string) *http.Response {
	e.t.Helper()
	return e.exchangeAt(clientID, loopbackRedirect, code, verifier)
}

// exchangeAt is exchange for a code issued to redirect URI redirect.
func (e *env) exchangeAt(clientID, redirect, code, verifier string) *http.Response {
	e.t.Helper()
	return e.postForm("/oauth/token", url.Values{
		"grant_type": {"authorization_code"}, "client_id": {clientID}, "code": {code},
		"redirect_uri": {redirect}, "code_verifier": {verifier},
	})
}

func (e *env) tokens(clientID, code, verifier string) map[string]any {
	e.t.Helper()
	return e.tokensAt(clientID, loopbackRedirect, code, verifier)
}

// tokensAt is tokens for a code issued to redirect URI redirect.
func (e *env) tokensAt(clientID, redirect, code, verifier string) map[string]any {
	e.t.Helper()
	resp := e.exchangeAt(clientID, redirect, code, verifier)
	m := readJSON(e.t, resp)
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("token: %d %v", resp.StatusCode, m)
	}
	return m
}

func (e *env) refresh(clientID, rt string, extra url.Values) *http.Response {
	e.t.Helper()
	v := url.Values{"grant_type": {"refresh_token"}, "client_id": {clientID}, "refresh_token": {rt}}
	for k, s := range extra {
		v[k] = s
	}
	return e.postForm("/oauth/token", v)
}

// verify checks an access token with the ring.
func (e *env) verify(raw string) *token.Claims {
	e.t.Helper()
	c, err := e.ring.Verify(raw)
	if err != nil {
		e.t.Fatalf("minted token does not verify: %v", err)
	}
	return c
}

func (e *env) revoked(jti string) bool {
	e.t.Helper()
	ok, err := e.st.IsRevoked(context.Background(), jti)
	if err != nil {
		e.t.Fatal(err)
	}
	return ok
}

// auditEvents returns the audit lines with event ev.
func (e *env) auditEvents(ev string) []map[string]any { return e.logs.AuditEvents(e.t, ev) }

var errDown = fmt.Errorf("%w: connection refused (test)", store.ErrUnavailable)

// flakyStore fails every call the server makes while down is set, the way
// redisstore does when Redis is unreachable.
type flakyStore struct {
	store.Store
	down atomic.Bool
}

func (f *flakyStore) GetClient(ctx context.Context, id string) (*store.Client, error) {
	if f.down.Load() {
		return nil, errDown
	}
	return f.Store.GetClient(ctx, id)
}

func (f *flakyStore) CreateClient(ctx context.Context, c *store.Client) error {
	if f.down.Load() {
		return errDown
	}
	return f.Store.CreateClient(ctx, c)
}

func (f *flakyStore) GetAgent(ctx context.Context, id string) (*store.Agent, error) {
	if f.down.Load() {
		return nil, errDown
	}
	return f.Store.GetAgent(ctx, id)
}

func (f *flakyStore) Allow(ctx context.Context, key string, limit int, win time.Duration) (bool, time.Duration, error) {
	if f.down.Load() {
		return false, 0, errDown
	}
	return f.Store.Allow(ctx, key, limit, win)
}

func (f *flakyStore) GetAuthRequest(ctx context.Context, id string) (*store.AuthRequest, error) {
	if f.down.Load() {
		return nil, errDown
	}
	return f.Store.GetAuthRequest(ctx, id)
}

func (f *flakyStore) PutAuthRequest(ctx context.Context, r *store.AuthRequest, ttl time.Duration) error {
	if f.down.Load() {
		return errDown
	}
	return f.Store.PutAuthRequest(ctx, r, ttl)
}

func (f *flakyStore) RedeemCode(ctx context.Context, hash string, b store.CodeBinding) (*store.AuthCode, error) {
	if f.down.Load() {
		return nil, errDown
	}
	return f.Store.RedeemCode(ctx, hash, b)
}

func (f *flakyStore) LookupRefresh(ctx context.Context, hash string) (*store.RefreshFamily, error) {
	if f.down.Load() {
		return nil, errDown
	}
	return f.Store.LookupRefresh(ctx, hash)
}
