//go:build soak

package bench

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/net/html"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/mcpgateway/mcp-gateway/authz"
	"github.com/mcpgateway/mcp-gateway/config"
	"github.com/mcpgateway/mcp-gateway/internal/slowbody"
	"github.com/mcpgateway/mcp-gateway/oauthsrv"
	"github.com/mcpgateway/mcp-gateway/store"
	"github.com/mcpgateway/mcp-gateway/store/redistest"
	"github.com/mcpgateway/mcp-gateway/token"
)

// Soak bounds. The heap bound is generous against what a healthy run uses
// (see the log line "heap in use"): the verified-token cache alone may hold
// 16384 tokens (~8 MiB); a leak of one object per request over 60 s of this
// load exceeds it many times over.
const (
	defaultSoakDuration = 60 * time.Second
	heapBound           = 64 << 20
	goroutineSlack      = 8
	maxIterations       = 5_000_000 // per worker: loops end by count or time
	redirectURI         = "http://127.0.0.1:9/callback"
	password            = "soak-password-alice"
)

// TestSoak runs a gateway (decision core, gRPC Check, HTTP check, the
// authorization server) on real Redis under mixed load for
// MCPGW_SOAK_DURATION (default 60s): gRPC and HTTP Checks with JWTs, bak_
// and oag_ keys and credentials that must be refused; browser logins and
// authorization-code flows; refresh rotations, refresh-token reuse, code
// replay, revocation and registrations. Every answer is checked against the
// one expected, so any error beyond the expected denials fails the test; so
// do goroutines that do not go back to their baseline once the load stops,
// and a heap in use above heapBound after GC.
func TestSoak(t *testing.T) {
	redisURL := redistest.URL(t) // skips without one; with CI=true fails
	dur := defaultSoakDuration
	if v := os.Getenv("MCPGW_SOAK_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 || d > 30*time.Minute {
			t.Fatalf("MCPGW_SOAK_DURATION=%q: want a duration up to 30m", v)
		}
		dur = d
	}

	g := startGateway(t, redisURL)
	s := &soak{g: g, t: t, counts: map[string]*atomic.Int64{}}
	s.warmUp()

	// Baseline: servers up, one gRPC connection open, no idle HTTP ones.
	s.closeIdle()
	baseG, baseHeap := settle()
	t.Logf("baseline: %d goroutines, heap in use %.1f MiB", baseG, mib(baseHeap))

	// Workers stop between iterations once the time is up: no request is
	// ever cut short, so every failed request is a failure of the gateway.
	ctx := context.Background()
	stop := time.Now().Add(dur)
	var wg sync.WaitGroup
	worker := func(fn func(ctx context.Context, i int)) {
		wg.Go(func() {
			for i := 0; i < maxIterations && time.Now().Before(stop); i++ {
				fn(ctx, i)
			}
		})
	}
	for range 3 {
		worker(s.grpcCheck)
	}
	worker(s.httpCheck)
	for w := range 2 {
		worker(s.newFlow(fmt.Sprintf("flow-%d", w)).iterate)
	}
	samples := s.sample(stop)
	wg.Wait()
	for _, line := range <-samples {
		t.Log(line)
	}

	s.closeIdle()
	var endG int
	var endHeap uint64
	for range 50 { // connections wind down asynchronously: let them
		if endG, endHeap = settle(); endG <= baseG+goroutineSlack {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("after the load: %d goroutines (baseline %d), heap in use %.1f MiB (baseline %.1f MiB, bound %d MiB)",
		endG, baseG, mib(endHeap), mib(baseHeap), heapBound>>20)
	t.Log("operations: " + s.summary())

	s.mu.Lock()
	nErr, errs := s.nErr, s.errs
	s.mu.Unlock()
	if nErr > 0 {
		t.Errorf("%d unexpected answers; first ones:\n%s", nErr, strings.Join(errs, "\n"))
	}
	if n := g.logErrors.Load(); n > 0 {
		t.Errorf("the gateway logged %d warnings/errors; first: %s", n, g.firstLogError())
	}
	if endG > baseG+goroutineSlack {
		buf := make([]byte, 1<<20)
		t.Errorf("goroutines grew from %d to %d:\n%s", baseG, endG, buf[:runtime.Stack(buf, true)])
	}
	if endHeap > heapBound {
		t.Errorf("heap in use after GC is %.1f MiB, above the %d MiB bound", mib(endHeap), heapBound>>20)
	}
	if s.count("grpc_allow") == 0 || s.count("token_code") == 0 || s.count("token_refresh") == 0 {
		t.Errorf("a part of the load never ran: %s", s.summary())
	}
}

func settle() (int, uint64) {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return runtime.NumGoroutine(), ms.HeapInuse
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

// gateway is one replica wired as `mcp-gateway serve` wires it, on loopback.
type gateway struct {
	url, grpcAddr string
	ring          *token.Ring
	check         authv3.AuthorizationClient
	bak, oag      string // keys for demo / alice
	bakOther      string // agent key of agent "other"
	badSig        string // a JWT signed with the wrong secret

	logErrors atomic.Int64
	logMu     sync.Mutex
	logFirst  string
}

func (g *gateway) firstLogError() string {
	g.logMu.Lock()
	defer g.logMu.Unlock()
	return g.logFirst
}

// countingHandler formats every record (as production would) and counts
// warnings and errors: the gateway logs those only when something broke.
type countingHandler struct {
	slog.Handler
	g *gateway
}

func (h countingHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn {
		if h.g.logErrors.Add(1) == 1 {
			h.g.logMu.Lock()
			h.g.logFirst = r.Message
			r.Attrs(func(a slog.Attr) bool { h.g.logFirst += " " + a.String(); return true })
			h.g.logMu.Unlock()
		}
	}
	return h.Handler.Handle(ctx, r)
}

func (h countingHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return countingHandler{h.Handler.WithAttrs(as), h.g}
}

func (h countingHandler) WithGroup(n string) slog.Handler {
	return countingHandler{h.Handler.WithGroup(n), h.g}
}

func startGateway(t *testing.T, redisURL string) *gateway {
	t.Helper()
	ctx := context.Background()
	g := &gateway{}
	log := slog.New(countingHandler{slog.NewJSONHandler(io.Discard, nil), g})

	httpLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	grpcLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g.url = "http://" + httpLn.Addr().String()
	g.grpcAddr = grpcLn.Addr().String()

	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.PublicURL = g.url
	cfg.Store = config.Store{URL: redisURL}
	cfg.SigningKeys = []config.SigningKey{{ID: "soak-1", Secret: token.Random(32)}}
	cfg.Login.Users = []config.User{{Username: "alice", PasswordHash: string(hash)}}
	cfg.RateLimit = config.RateLimit{} // one client IP does all the work
	cfg.Clients.MaxPerIP = 0
	cfg.TTL.RefreshGrace = 0 // a reused refresh token always revokes its family
	cfg.Agents = []config.StaticAgent{{AgentSpec: store.AgentSpec{ID: "demo", Owner: "alice"}}}
	if err := cfg.Validate(false); err != nil {
		t.Fatal(err)
	}
	secrets, err := cfg.Secrets()
	if err != nil {
		t.Fatal(err)
	}
	g.ring, err = token.NewRing(cfg.PublicURL, []token.Key{{ID: cfg.SigningKeys[0].ID, Secret: secrets[0]}})
	if err != nil {
		t.Fatal(err)
	}
	st := redistest.OpenURL(t, redisURL, "soak") // own prefix, keys removed at the end
	// "other" lives in the store (agent cache on Redis); demo is static.
	if err := st.PutAgent(ctx, &store.Agent{AgentSpec: store.AgentSpec{ID: "other", Owner: "bob"}}); err != nil {
		t.Fatal(err)
	}
	newKey := func(prefix string, k store.APIKey) string {
		raw, h := token.NewAPIKey(prefix)
		k.ID, k.Hash, k.CreatedAt = "key_"+token.Random(8), h, time.Now()
		if err := st.CreateKey(ctx, &k); err != nil {
			t.Fatal(err)
		}
		return raw
	}
	g.bak = newKey(token.PrefixAgentKey, store.APIKey{Kind: store.KeyAgent, Agent: "demo", User: "alice"})
	g.oag = newKey(token.PrefixUserKey, store.APIKey{Kind: store.KeyUser, User: "alice"})
	g.bakOther = newKey(token.PrefixAgentKey, store.APIKey{Kind: store.KeyAgent, Agent: "other", User: "bob"})
	wrong, err := token.NewRing(cfg.PublicURL, []token.Key{{ID: "soak-1", Secret: []byte(token.Random(32))}})
	if err != nil {
		t.Fatal(err)
	}
	g.badSig = mintFor(t, wrong, cfg.PublicURL+"/demo/mcp")

	bg, stopBG := context.WithCancel(ctx)
	a, err := authz.New(authz.Options{
		PublicURL: cfg.PublicURL, Scopes: cfg.ScopeNames(), Ring: g.ring, Store: st,
		StaticAgents: []store.Agent{{AgentSpec: store.AgentSpec{ID: "demo", Owner: "alice"}, Static: true}},
		Logger:       log,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(bg); err != nil {
		t.Fatal(err)
	}
	oauth, err := oauthsrv.New(oauthsrv.Options{Config: cfg, Store: st, Ring: g.ring, Agents: a, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{ // as gateway.run configures its listeners
		Handler:           slowbody.New(cfg.HTTPLimits.BodyTimeout.D(), cfg.HTTPLimits.MaxBodyReads).Wrap(authz.WithHTTPCheck(a, oauth.Handler())),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       cfg.HTTPLimits.IdleTimeout.D(),
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	gs := authz.NewGRPCServer(a)
	go func() { _ = hs.Serve(httpLn) }()
	go func() { _ = gs.Serve(grpcLn) }()
	conn, err := grpc.NewClient(g.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	g.check = authv3.NewAuthorizationClient(conn)
	t.Cleanup(func() {
		_ = conn.Close()
		gs.Stop()
		_ = hs.Close()
		stopBG()
	})
	return g
}

func mintFor(t *testing.T, r *token.Ring, aud string) string {
	t.Helper()
	now := time.Now()
	raw, err := r.Mint(&token.Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Subject: "alice", Audience: jwt.ClaimStrings{aud}, ID: token.Random(16),
			IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour)),
		},
		ClientID: "soak", Scope: "mcp",
	})
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// soak is the load and its bookkeeping.
type soak struct {
	g *gateway
	t *testing.T

	mu     sync.Mutex
	nErr   int
	errs   []string
	counts map[string]*atomic.Int64
	// pool holds access tokens of families that are never revoked, so a
	// Check with any of them must be allowed.
	pool    []string
	poolPos int

	clients     []*http.Client
	checkOnce   sync.Once
	checkClient *http.Client
}

func (s *soak) fail(format string, a ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nErr++
	if len(s.errs) < 20 {
		s.errs = append(s.errs, fmt.Sprintf(format, a...))
	}
}

func (s *soak) inc(what string) {
	s.mu.Lock()
	c, ok := s.counts[what]
	if !ok {
		c = &atomic.Int64{}
		s.counts[what] = c
	}
	s.mu.Unlock()
	c.Add(1)
}

func (s *soak) count(what string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.counts[what]; ok {
		return c.Load()
	}
	return 0
}

func (s *soak) summary() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var parts []string
	for k, v := range s.counts {
		parts = append(parts, fmt.Sprintf("%s=%d", k, v.Load()))
	}
	slices.Sort(parts)
	return strings.Join(parts, " ")
}

func (s *soak) pushToken(tok string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.pool) < 64 {
		s.pool = append(s.pool, tok)
		return
	}
	s.pool[s.poolPos%len(s.pool)] = tok
	s.poolPos++
}

func (s *soak) pooledToken(i int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.pool) == 0 {
		return ""
	}
	return s.pool[i%len(s.pool)]
}

func (s *soak) httpClient(jar http.CookieJar) *http.Client {
	c := &http.Client{
		Jar:     jar,
		Timeout: 10 * time.Second,
		// Stop at the client's redirect URI; follow the gateway's own.
		CheckRedirect: func(req *http.Request, _ []*http.Request) error {
			if "http://"+req.URL.Host != s.g.url {
				return http.ErrUseLastResponse
			}
			return nil
		},
	}
	s.mu.Lock()
	s.clients = append(s.clients, c)
	s.mu.Unlock()
	return c
}

func (s *soak) closeIdle() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.clients {
		c.CloseIdleConnections()
	}
	http.DefaultClient.CloseIdleConnections()
}

// warmUp checks the setup before anything is measured.
func (s *soak) warmUp() {
	s.t.Helper()
	ctx := context.Background()
	if got, _ := s.grpc(ctx, "/demo/mcp", "Bearer "+s.g.bak); got != 200 {
		s.t.Fatalf("warm-up Check with the agent key: %d", got)
	}
	c := s.httpClient(nil)
	resp, err := c.Get(s.g.url + "/.well-known/oauth-authorization-server")
	if err != nil {
		s.t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	s.mu.Lock()
	n := s.nErr
	s.mu.Unlock()
	if n > 0 {
		s.t.Fatalf("warm-up failed: %v", s.errs)
	}
}

// grpc sends an Envoy-shaped Check; it returns the HTTP status the decision
// stands for and the x-mcp-user it sets upstream.
func (s *soak) grpc(ctx context.Context, path, authorization string) (int, string) {
	h := map[string]string{
		":authority": "127.0.0.1:8000", ":path": path, ":method": "POST", ":scheme": "http",
		"content-type": "application/json", "x-mcp-user": "mallory",
	}
	if authorization != "" {
		h["authorization"] = authorization
	}
	req := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
		Http: &authv3.AttributeContext_HttpRequest{Method: "POST", Path: path, Host: "127.0.0.1:8000", Headers: h},
	}}}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := s.g.check.Check(cctx, req)
	if err != nil {
		s.fail("gRPC Check %s: %v", path, err)
		return 0, ""
	}
	if d := resp.GetDeniedResponse(); d != nil {
		return int(d.GetStatus().GetCode()), ""
	}
	user := ""
	for _, o := range resp.GetOkResponse().GetHeaders() {
		if o.GetHeader().GetKey() == authz.HeaderUser {
			user = o.GetHeader().GetValue()
		}
	}
	return 200, user
}

// grpcCheck is one Check of a rotating mix: allowed credentials and ones
// that must be refused with a precise status.
func (s *soak) grpcCheck(ctx context.Context, i int) {
	type c struct {
		name, path, authz string
		want              int
	}
	cases := [...]c{
		{"jwt", "/demo/mcp", "", 200}, // a pooled token from a real flow
		{"bak", "/demo/mcp", "Bearer " + s.g.bak, 200},
		{"oag", "/demo/mcp/", "Bearer " + s.g.oag, 200},
		{"none", "/demo/mcp", "", 401},
		{"badsig", "/demo/mcp", "Bearer " + s.g.badSig, 401},
		{"bak_other_agent", "/demo/mcp", "Bearer " + s.g.bakOther, 403},
		{"oag_not_owner", "/other/mcp", "Bearer " + s.g.oag, 403},
		{"unknown_key", "/demo/mcp", "Bearer bak_" + strings.Repeat("x", 43), 401},
		{"bad_path", "/demo/../other/mcp", "Bearer " + s.g.bak, 404},
	}
	tc := cases[i%len(cases)]
	if tc.name == "jwt" {
		tok := s.pooledToken(i)
		if tok == "" {
			return
		}
		tc.authz = "Bearer " + tok
	}
	got, user := s.grpc(ctx, tc.path, tc.authz)
	switch {
	case got == 0:
		return // the RPC failed: recorded already
	case got != tc.want:
		s.fail("gRPC %s %s: got %d, want %d", tc.name, tc.path, got, tc.want)
	case got == 200 && user != "alice":
		s.fail("gRPC %s: x-mcp-user %q, want alice", tc.name, user)
	case got == 200:
		s.inc("grpc_allow")
	default:
		s.inc("grpc_deny")
	}
}

// httpCheck is the nginx auth_request adapter under the same mix.
func (s *soak) httpCheck(ctx context.Context, i int) {
	c := s.httpClientOnce()
	auths := [...]struct {
		authz string
		want  int
	}{
		{"Bearer " + s.g.bak, 200},
		{"Bearer " + s.g.oag, 200},
		{"", 401},
		{"Bearer " + s.g.badSig, 401},
		{"Bearer " + s.g.bakOther, 403},
	}
	tc := auths[i%len(auths)]
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.g.url+authz.CheckPath, nil)
	req.Header.Set("X-Original-URI", "/demo/mcp")
	req.Header.Set("X-Original-Method", "POST")
	if tc.authz != "" {
		req.Header.Set("Authorization", tc.authz)
	}
	resp, err := c.Do(req)
	if err != nil {
		s.fail("HTTP check: %v", err)
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != tc.want {
		s.fail("HTTP check %q: got %d, want %d", tc.authz[:min(len(tc.authz), 12)], resp.StatusCode, tc.want)
		return
	}
	if tc.want == 200 && resp.Header.Get(authz.HeaderUser) != "alice" {
		s.fail("HTTP check: x-mcp-user %q", resp.Header.Get(authz.HeaderUser))
		return
	}
	s.inc("http_check")
}

func (s *soak) httpClientOnce() *http.Client {
	s.checkOnce.Do(func() { s.checkClient = s.httpClient(nil) })
	return s.checkClient
}

// flow is one OAuth client driven by a logged-in browser.
type flow struct {
	s        *soak
	name     string
	browser  *http.Client
	clientID string
}

func (s *soak) newFlow(name string) *flow {
	jar, _ := cookiejar.New(nil)
	f := &flow{s: s, name: name, browser: s.httpClient(jar)}
	f.clientID = f.register(context.Background())
	return f
}

func (f *flow) register(ctx context.Context) string {
	body, _ := json.Marshal(map[string]any{"client_name": "soak " + f.name, "redirect_uris": []string{redirectURI}})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, f.s.g.url+"/oauth/register", strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	resp, err := f.browser.Do(req)
	if err != nil {
		f.s.fail("%s register: %v", f.name, err)
		return ""
	}
	var out struct {
		ClientID string `json:"client_id"`
	}
	err = json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&out)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || err != nil || out.ClientID == "" {
		f.s.fail("%s register: %d %v", f.name, resp.StatusCode, err)
		return ""
	}
	f.s.inc("register")
	return out.ClientID
}

// iterate is one authorization: authorize (logging in and consenting when
// the browser has to), redeem the code, use the token, rotate it twice,
// then — by turns — keep the family (its token joins the Check pool),
// replay a rotated refresh token, replay the code, or revoke the family.
func (f *flow) iterate(ctx context.Context, i int) {
	s := f.s
	if i > 0 && i%10 == 0 { // a new client now and then: new consent too
		if id := f.register(ctx); id != "" {
			f.clientID = id
		}
	}
	if f.clientID == "" {
		return
	}
	verifier := token.Random(32)
	sum := sha256.Sum256([]byte(verifier))
	state := token.Random(8)
	code, ok := f.authorize(ctx, base64.RawURLEncoding.EncodeToString(sum[:]), state)
	if !ok {
		return
	}
	codeForm := url.Values{
		"grant_type": {"authorization_code"}, "client_id": {f.clientID}, "code": {code},
		"redirect_uri": {redirectURI}, "code_verifier": {verifier},
	}
	tok, ok := f.token(ctx, codeForm, "")
	if !ok {
		return
	}
	s.inc("token_code")
	if !f.use(ctx, tok.AccessToken) {
		return
	}
	first := tok.RefreshToken
	for range 2 {
		next, ok := f.token(ctx, url.Values{"grant_type": {"refresh_token"}, "client_id": {f.clientID}, "refresh_token": {tok.RefreshToken}}, "")
		if !ok || !f.use(ctx, next.AccessToken) {
			return
		}
		s.inc("token_refresh")
		tok = next
	}
	refresh := func(rt string) url.Values {
		return url.Values{"grant_type": {"refresh_token"}, "client_id": {f.clientID}, "refresh_token": {rt}}
	}
	switch i % 4 {
	case 0, 2:
		s.pushToken(tok.AccessToken)
	case 1: // reuse of a rotated token revokes the family, newest included
		if _, ok := f.token(ctx, refresh(first), "invalid_grant"); !ok {
			return
		}
		if _, ok := f.token(ctx, refresh(tok.RefreshToken), "invalid_grant"); ok {
			s.inc("refresh_reuse_refused")
		}
	case 3: // code replay, then an explicit revocation
		if _, ok := f.token(ctx, codeForm, "invalid_grant"); !ok {
			return
		}
		s.inc("code_replay_refused")
		if !f.revoke(ctx, tok.RefreshToken) {
			return
		}
		if _, ok := f.token(ctx, refresh(tok.RefreshToken), "invalid_grant"); ok {
			s.inc("revoked_refresh_refused")
		}
	}
}

// authorize runs /oauth/authorize in the browser through whatever pages
// come (login, consent) and returns the code from the redirect.
func (f *flow) authorize(ctx context.Context, challenge, state string) (string, bool) {
	s := f.s
	q := url.Values{
		"response_type": {"code"}, "client_id": {f.clientID}, "redirect_uri": {redirectURI},
		"code_challenge": {challenge}, "code_challenge_method": {"S256"}, "state": {state},
		"scope": {"mcp"}, "resource": {s.g.url + "/demo/mcp"},
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.g.url+"/oauth/authorize?"+q.Encode(), nil)
	for step := 0; step < 4; step++ {
		resp, err := f.browser.Do(req)
		if err != nil {
			s.fail("%s authorize: %v", f.name, err)
			return "", false
		}
		if resp.StatusCode == http.StatusFound || resp.StatusCode == http.StatusSeeOther {
			resp.Body.Close()
			loc, err := url.Parse(resp.Header.Get("Location"))
			if err != nil || !strings.HasPrefix(loc.String(), redirectURI+"?") {
				s.fail("%s authorize: redirect to %q", f.name, resp.Header.Get("Location"))
				return "", false
			}
			v := loc.Query()
			if v.Get("state") != state || v.Get("iss") != s.g.url || v.Get("code") == "" {
				s.fail("%s authorize: redirect %q (state/iss/code)", f.name, loc.RawQuery)
				return "", false
			}
			s.inc("authorize")
			return v.Get("code"), true
		}
		action, fields, err := parseForm(resp)
		if err != nil {
			s.fail("%s authorize step %d: status %d: %v", f.name, step, resp.StatusCode, err)
			return "", false
		}
		switch {
		case strings.HasSuffix(action.Path, "/login"):
			fields.Set("username", "alice")
			fields.Set("password", password)
			s.inc("login")
		case strings.HasSuffix(action.Path, "/consent"):
			fields.Set("decision", "approve")
			s.inc("consent")
		default:
			s.fail("%s authorize: unexpected form to %s", f.name, action)
			return "", false
		}
		req, _ = http.NewRequestWithContext(ctx, http.MethodPost, action.String(), strings.NewReader(fields.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	s.fail("%s authorize: no redirect after 4 steps", f.name)
	return "", false
}

// parseForm reads the first form of an HTML page: its resolved action and
// its hidden fields.
func parseForm(resp *http.Response) (*url.URL, url.Values, error) {
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, nil, fmt.Errorf("want a page with a form: %s", b)
	}
	doc, err := html.Parse(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, nil, err
	}
	var action *url.URL
	fields := url.Values{}
	attr := func(n *html.Node, k string) string {
		for _, a := range n.Attr {
			if a.Key == k {
				return a.Val
			}
		}
		return ""
	}
	var walk func(n *html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode {
			switch {
			case n.Data == "form" && action == nil:
				action, err = resp.Request.URL.Parse(attr(n, "action"))
			case n.Data == "input" && attr(n, "type") == "hidden":
				fields.Set(attr(n, "name"), attr(n, "value"))
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	if err != nil {
		return nil, nil, err
	}
	if action == nil {
		return nil, nil, errors.New("no form on the page")
	}
	return action, fields, nil
}

type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	TokenType    string `json:"token_type"`
	Error        string `json:"error"`
}

// token posts to /oauth/token. wantErr "" expects 200 with both tokens;
// otherwise a 400 with that error; ok reports the expectation was met.
func (f *flow) token(ctx context.Context, form url.Values, wantErr string) (tokenResponse, bool) {
	s := f.s
	var out tokenResponse
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.g.url+"/oauth/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := f.browser.Do(req)
	if err != nil {
		s.fail("%s token (%s): %v", f.name, form.Get("grant_type"), err)
		return out, false
	}
	err = json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&out)
	resp.Body.Close()
	switch {
	case err != nil:
		s.fail("%s token (%s): %d, body: %v", f.name, form.Get("grant_type"), resp.StatusCode, err)
	case wantErr == "" && (resp.StatusCode != 200 || out.AccessToken == "" || out.RefreshToken == "" || out.TokenType != "Bearer"):
		s.fail("%s token (%s): %d %q", f.name, form.Get("grant_type"), resp.StatusCode, out.Error)
	case wantErr != "" && (resp.StatusCode != 400 || out.Error != wantErr):
		s.fail("%s token (%s): got %d %q, want 400 %s", f.name, form.Get("grant_type"), resp.StatusCode, out.Error, wantErr)
	default:
		return out, true
	}
	return out, false
}

// use checks a fresh access token through the gRPC Check.
func (f *flow) use(ctx context.Context, access string) bool {
	got, user := f.s.grpc(ctx, "/demo/mcp", "Bearer "+access)
	if got != 200 || user != "alice" {
		f.s.fail("%s: fresh access token: Check %d user %q", f.name, got, user)
		return false
	}
	return true
}

func (f *flow) revoke(ctx context.Context, refresh string) bool {
	form := url.Values{"token": {refresh}, "token_type_hint": {"refresh_token"}, "client_id": {f.clientID}}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, f.s.g.url+"/oauth/revoke", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := f.browser.Do(req)
	if err != nil {
		f.s.fail("%s revoke: %v", f.name, err)
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		f.s.fail("%s revoke: %d", f.name, resp.StatusCode)
		return false
	}
	f.s.inc("revoke")
	return true
}

// sample records goroutines and heap every tenth of the run, for the log,
// until stop.
func (s *soak) sample(stop time.Time) <-chan []string {
	out := make(chan []string, 1)
	go func() {
		var lines []string
		start := time.Now()
		tick := time.NewTicker(max(time.Second, time.Until(stop)/10))
		defer tick.Stop()
		end := time.NewTimer(time.Until(stop))
		defer end.Stop()
		for {
			select {
			case <-end.C:
				out <- lines
				return
			case <-tick.C:
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				lines = append(lines, fmt.Sprintf("t=%4.0fs goroutines=%d heap_inuse=%.1fMiB gc=%d",
					time.Since(start).Seconds(), runtime.NumGoroutine(), mib(ms.HeapInuse), ms.NumGC))
			}
		}
	}()
	return out
}
