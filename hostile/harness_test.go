package hostile

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"golang.org/x/crypto/bcrypt"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/mcpgateway/mcp-gateway/authz"
	"github.com/mcpgateway/mcp-gateway/config"
	"github.com/mcpgateway/mcp-gateway/internal/logtest"
	"github.com/mcpgateway/mcp-gateway/internal/proxy"
	"github.com/mcpgateway/mcp-gateway/internal/slowbody"
	"github.com/mcpgateway/mcp-gateway/oauthsrv"
	"github.com/mcpgateway/mcp-gateway/store"
	"github.com/mcpgateway/mcp-gateway/store/memstore"
	"github.com/mcpgateway/mcp-gateway/store/redistest"
	"github.com/mcpgateway/mcp-gateway/token"
)

// signingSecret is the gateway's HS256 key: the matrix forges tokens with it
// to show that only exactly-right tokens pass.
const (
	signingKID    = "k1"
	signingSecret = "hostile-signing-secret-0123456789abcdef"
	loopback      = "http://127.0.0.1:9/callback"
)

var passwords = map[string]string{"alice": "pw-alice-1", "bob": "pw-bob-1", "carol": "pw-carol-1", "victim": "pw-victim-1"}

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

// backend opens a fresh, isolated store for one gateway.
type backend struct {
	name string
	open func(t *testing.T) store.Store
}

// backends: memory always; Redis too when MCPGW_TEST_REDIS_URL is set (with
// CI=true it must be), each gateway under its own key prefix, removed
// afterwards.
func backends(t *testing.T) []backend {
	bs := []backend{{"memory", func(t *testing.T) store.Store {
		s := memstore.New()
		t.Cleanup(func() { _ = s.Close() })
		return s
	}}}
	if os.Getenv(redistest.EnvURL) != "" || os.Getenv("CI") == "true" {
		u := redistest.URL(t)
		bs = append(bs, backend{"redis", func(t *testing.T) store.Store { return redistest.OpenURL(t, u, "hostile") }})
	}
	return bs
}

// countingStore counts successful writes that store or issue something, so
// a case can assert that an attack changed nothing.
type countingStore struct {
	store.Store
	mu sync.Mutex
	n  map[string]int
}

// tracked are the writes every case accounts for.
var tracked = []string{
	"CreateClient", "DeleteClient", "PutAuthRequest", "PutCode", "CreateFamily", "Rotate", "RevokeFamily",
	"SaveConsent", "PutSession", "RevokeJTI", "CreateKey", "RevokeKey", "PutAgent",
}

func (c *countingStore) count(op string, err error) error {
	if err == nil {
		c.mu.Lock()
		if c.n == nil {
			c.n = map[string]int{}
		}
		c.n[op]++
		c.mu.Unlock()
	}
	return err
}

func (c *countingStore) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]int{}
	for k, v := range c.n {
		out[k] = v
	}
	return out
}

func (c *countingStore) CreateClient(ctx context.Context, cl *store.Client) error {
	return c.count("CreateClient", c.Store.CreateClient(ctx, cl))
}
func (c *countingStore) DeleteClient(ctx context.Context, id string) error {
	return c.count("DeleteClient", c.Store.DeleteClient(ctx, id))
}
func (c *countingStore) PutAuthRequest(ctx context.Context, r *store.AuthRequest, ttl time.Duration) error {
	return c.count("PutAuthRequest", c.Store.PutAuthRequest(ctx, r, ttl))
}
func (c *countingStore) PutCode(ctx context.Context, cd *store.AuthCode) error {
	return c.count("PutCode", c.Store.PutCode(ctx, cd))
}
func (c *countingStore) CreateFamily(ctx context.Context, f *store.RefreshFamily, ttl time.Duration) error {
	return c.count("CreateFamily", c.Store.CreateFamily(ctx, f, ttl))
}
func (c *countingStore) Rotate(ctx context.Context, r store.Rotation) (*store.RefreshFamily, error) {
	f, err := c.Store.Rotate(ctx, r)
	return f, c.count("Rotate", err)
}
func (c *countingStore) RevokeFamily(ctx context.Context, id string) (*store.RefreshFamily, error) {
	f, err := c.Store.RevokeFamily(ctx, id)
	return f, c.count("RevokeFamily", err)
}
func (c *countingStore) SaveConsent(ctx context.Context, cs *store.Consent) error {
	return c.count("SaveConsent", c.Store.SaveConsent(ctx, cs))
}
func (c *countingStore) PutSession(ctx context.Context, hash string, s *store.Session) error {
	return c.count("PutSession", c.Store.PutSession(ctx, hash, s))
}
func (c *countingStore) RevokeJTI(ctx context.Context, jti string, exp time.Time) error {
	return c.count("RevokeJTI", c.Store.RevokeJTI(ctx, jti, exp))
}
func (c *countingStore) CreateKey(ctx context.Context, k *store.APIKey) error {
	return c.count("CreateKey", c.Store.CreateKey(ctx, k))
}
func (c *countingStore) RevokeKey(ctx context.Context, id string) (*store.APIKey, error) {
	k, err := c.Store.RevokeKey(ctx, id)
	return k, c.count("RevokeKey", err)
}
func (c *countingStore) PutAgent(ctx context.Context, a *store.Agent) error {
	return c.count("PutAgent", c.Store.PutAgent(ctx, a))
}

// upstream is the agent behind the dev proxy: it counts requests and echoes
// the headers it received.
type upstream struct {
	ts   *httptest.Server
	hits atomic.Int64
}

func newUpstream(t *testing.T) *upstream {
	u := &upstream{}
	u.ts = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.hits.Add(1)
		h := map[string]string{}
		for k, v := range r.Header {
			h[strings.ToLower(k)] = strings.Join(v, ",")
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"path": r.URL.RequestURI(), "headers": h})
	}))
	t.Cleanup(u.ts.Close)
	return u
}

// gw is one in-process gateway wired like `mcp-gateway dev`: the
// authorization server behind authz.WithHTTPCheck for the gateway's paths
// and the gated proxy for everything else, on one real HTTP listener.
type gw struct {
	t     *testing.T
	cfg   *config.Config
	st    *countingStore
	ring  *token.Ring
	az    *authz.Authorizer
	grpc  authv3.AuthorizationClient // the Envoy gRPC Check on the same authorizer
	oauth *oauthsrv.Server
	ts    *httptest.Server
	url   string
	up    *upstream
	logs  *logtest.Buffer
	tr    *http.Transport

	client *http.Client // never follows redirects

	fx        map[string]string // values a case hands from its setup to its checks
	secrets   []string          // never to appear in logs
	attacking atomic.Bool
	allow5xx  atomic.Bool // the fault test expects 503s
	before    map[string]int
}

// agents every gateway knows (in the store, as the admin API creates them).
func seedAgents(upstreamURL string) []*store.Agent {
	return []*store.Agent{
		{AgentSpec: store.AgentSpec{ID: "alpha", Owner: "alice", Users: []string{"bob"}, Upstream: upstreamURL}},
		{AgentSpec: store.AgentSpec{ID: "gamma", Owner: "alice", Upstream: upstreamURL}},
		{AgentSpec: store.AgentSpec{ID: "beta", Owner: "bob", Upstream: upstreamURL}},
		{AgentSpec: store.AgentSpec{ID: "private", Owner: "carol", Upstream: upstreamURL}},
	}
}

// gwOptions adjust a gateway beyond the defaults.
type gwOptions struct {
	cfg   func(*config.Config)
	authz func(g *gw, o *authz.Options)
	oauth func(g *gw, o *oauthsrv.Options)
	front func(g *gw, h http.Handler) http.Handler // wraps the listener's handler
}

func newGW(t *testing.T, b backend, tweak func(*config.Config)) *gw {
	t.Helper()
	return newGWWith(t, b, gwOptions{cfg: tweak})
}

func newGWWith(t *testing.T, b backend, opts gwOptions) *gw {
	t.Helper()
	tweak := opts.cfg
	g := &gw{t: t, logs: &logtest.Buffer{}, fx: map[string]string{}}
	g.ts = httptest.NewUnstartedServer(nil)
	g.url = "http://" + g.ts.Listener.Addr().String()
	cfg := config.Default()
	cfg.PublicURL = g.url
	cfg.Login.Users = hashedUsers()
	cfg.SigningKeys = []config.SigningKey{{ID: signingKID, Secret: signingSecret}}
	cfg.RateLimit = config.RateLimit{Register: 10, Token: 30, Authorize: 30, Login: 5, LoginPerUser: 5}
	cfg.TTL.RefreshGrace = 0 // every reuse of a rotated refresh token is a reuse
	if tweak != nil {
		tweak(cfg)
	}
	if err := cfg.Validate(false); err != nil {
		t.Fatal(err)
	}
	g.cfg = cfg
	ring, err := token.NewRing(g.url, []token.Key{{ID: signingKID, Secret: []byte(signingSecret)}})
	if err != nil {
		t.Fatal(err)
	}
	g.ring = ring
	g.st = &countingStore{Store: b.open(t)}
	g.up = newUpstream(t)
	ctx := context.Background()
	for _, a := range seedAgents(g.up.ts.URL + "/mcp") {
		if err := g.st.Store.PutAgent(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	log := slog.New(slog.NewJSONHandler(g.logs, nil))
	ao := authz.Options{
		PublicURL: g.url, Scopes: cfg.ScopeNames(), Ring: ring, Store: g.st,
		CacheTTL: cfg.Cache.TTL.D(), CacheSize: cfg.Cache.MaxSize, Logger: log,
	}
	if opts.authz != nil {
		opts.authz(g, &ao)
	}
	g.az, err = authz.New(ao)
	if err != nil {
		t.Fatal(err)
	}
	actx, stop := context.WithCancel(ctx)
	t.Cleanup(stop)
	if err := g.az.Start(actx); err != nil {
		t.Fatal(err)
	}
	gs := authz.NewGRPCServer(g.az)
	glis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = gs.Serve(glis) }()
	t.Cleanup(gs.Stop)
	gconn, err := grpc.NewClient(glis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = gconn.Close() })
	g.grpc = authv3.NewAuthorizationClient(gconn)
	oo := oauthsrv.Options{Config: cfg, Store: g.st, Ring: ring, Agents: g.az, Logger: log}
	if opts.oauth != nil {
		opts.oauth(g, &oo)
	}
	g.oauth, err = oauthsrv.New(oo)
	if err != nil {
		t.Fatal(err)
	}
	// As gateway.run configures its listeners.
	var h http.Handler = devFront(g.az, g.oauth, log)
	if opts.front != nil {
		h = opts.front(g, h)
	}
	g.ts.Config.Handler = slowbody.New(cfg.HTTPLimits.BodyTimeout.D(), cfg.HTTPLimits.MaxBodyReads).Wrap(h)
	g.ts.Config.MaxHeaderBytes = 32 << 10
	g.ts.Config.ReadHeaderTimeout = 10 * time.Second
	g.ts.Config.IdleTimeout = cfg.HTTPLimits.IdleTimeout.D()
	g.ts.Start()
	t.Cleanup(g.ts.Close)
	g.tr = &http.Transport{MaxIdleConnsPerHost: 4}
	t.Cleanup(g.tr.CloseIdleConnections)
	g.client = &http.Client{
		Transport:     &recTransport{g: g, base: g.tr},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       10 * time.Second,
	}
	t.Cleanup(func() {
		if t.Failed() {
			l := g.logs.String()
			t.Logf("gateway log (last 4 KiB):\n%s", l[max(0, len(l)-4096):])
		}
	})
	return g
}

// devFront is cmd/mcp-gateway's devHandler: the gateway's own paths to the
// authorization server (behind the HTTP check), the rest through the proxy.
func devFront(az *authz.Authorizer, oauth *oauthsrv.Server, log *slog.Logger) http.Handler {
	as := authz.WithHTTPCheck(az, oauth.Handler())
	gated := proxy.New(proxy.Options{
		Decider: az,
		Upstream: func(ctx context.Context, id string) (*url.URL, error) {
			a, err := az.GetAgent(ctx, id)
			if err != nil {
				return nil, err
			}
			return url.Parse(a.Upstream)
		},
		Logger:        log,
		OriginAllowed: az.OriginAllowed,
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, p := range []string{"/oauth/", "/.well-known/", "/authz/check", "/login", "/consent", "/account"} {
			if strings.HasPrefix(r.URL.Path, p) {
				as.ServeHTTP(w, r)
				return
			}
		}
		gated.ServeHTTP(w, r)
	})
}

// reply is one HTTP answer, body read.
type reply struct {
	status int
	hdr    http.Header
	body   []byte
	url    *url.URL // where a browser ended up
}

func (r *reply) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if ct := r.hdr.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("status %d: Content-Type %q, want JSON: %.300s", r.status, ct, r.body)
	}
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("status %d: body is not a JSON object: %v: %.300s", r.status, err, r.body)
	}
	return m
}

func (r *reply) location(t *testing.T) *url.URL {
	t.Helper()
	loc := r.hdr.Get("Location")
	if loc == "" {
		t.Fatalf("status %d without Location: %.300s", r.status, r.body)
	}
	u, err := url.Parse(loc)
	if err != nil {
		t.Fatalf("Location %q: %v", loc, err)
	}
	return u
}

// recTransport checks every response the test clients receive.
type recTransport struct {
	g    *gw
	base http.RoundTripper
}

func (rt *recTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := rt.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	rt.g.observe(req.Method+" "+req.URL.RequestURI(), resp.StatusCode, resp.Header, body)
	return resp, nil
}

// observe holds for every answer: never a 5xx, never a redirect off the
// gateway except to a registered redirect URI, and during an attack no
// code and no token.
func (g *gw) observe(what string, status int, h http.Header, body []byte) {
	t := g.t
	t.Helper()
	if status >= 500 && !g.allow5xx.Load() {
		t.Errorf("%s: server error %d: %.300s", trunc(what), status, body)
	}
	if loc := h.Get("Location"); loc != "" {
		u, err := url.Parse(loc)
		if err != nil {
			t.Errorf("%s: unparsable Location %q", trunc(what), loc)
			return
		}
		external := !g.internal(u)
		if external && !g.registered(u) {
			t.Errorf("%s: redirect to an unregistered URI: %s", trunc(what), loc)
		}
		if external && g.attacking.Load() && u.Query().Get("code") != "" {
			t.Errorf("%s: an authorization code was issued: %s", trunc(what), loc)
		}
	}
	if g.attacking.Load() && (bytes.Contains(body, []byte(`"access_token"`)) || bytes.Contains(body, []byte(`"refresh_token"`))) {
		t.Errorf("%s: a token was issued: %.300s", trunc(what), body)
	}
}

func trunc(s string) string {
	if len(s) > 160 {
		return s[:160] + "…"
	}
	return s
}

// internal: a Location on the gateway itself (relative paths included, but
// not scheme-relative ones, which leave the host).
func (g *gw) internal(u *url.URL) bool {
	if !u.IsAbs() && u.Host == "" && !strings.HasPrefix(u.String(), "//") {
		return true
	}
	return u.Scheme+"://"+u.Host == g.url
}

// registered: u is one of the registered redirect URIs (loopback: any port,
// RFC 8252 §7.3) with the registered query kept.
func (g *gw) registered(u *url.URL) bool {
	clients, err := g.st.Store.ListClients(context.Background())
	if err != nil {
		g.t.Errorf("list clients: %v", err)
		return false
	}
	for _, c := range clients {
		for _, raw := range c.RedirectURIs {
			r, err := url.Parse(raw)
			if err != nil || r.Scheme != u.Scheme || r.EscapedPath() != u.EscapedPath() || u.User != nil || u.Fragment != "" {
				continue
			}
			host := r.Host == u.Host || r.Scheme == "http" && r.Hostname() == u.Hostname() &&
				(r.Hostname() == "127.0.0.1" || r.Hostname() == "localhost" || r.Hostname() == "::1")
			if !host {
				continue
			}
			ok := true
			for k, vs := range r.Query() {
				ok = ok && u.Query().Get(k) == vs[0]
			}
			if ok {
				return true
			}
		}
	}
	return false
}

// begin ends a case's setup: store writes are counted from here and no
// code or token may be issued.
func (g *gw) begin() {
	g.before = g.st.snapshot()
	g.attacking.Store(true)
}

func (g *gw) end() map[string]int {
	g.attacking.Store(false)
	after := g.st.snapshot()
	d := map[string]int{}
	for _, op := range tracked {
		if n := after[op] - g.before[op]; n != 0 {
			d[op] = n
		}
	}
	return d
}

func (g *gw) secret(s ...string) { g.secrets = append(g.secrets, s...) }

// ---- plain HTTP calls ----

func (g *gw) do(req *http.Request) *reply {
	g.t.Helper()
	resp, err := g.client.Do(req)
	if err != nil {
		g.t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return &reply{status: resp.StatusCode, hdr: resp.Header, body: b, url: resp.Request.URL}
}

func (g *gw) get(path string) *reply {
	req, _ := http.NewRequest(http.MethodGet, g.url+path, nil)
	return g.do(req)
}

func (g *gw) post(path, ctype, body string, hdr ...string) *reply {
	req, _ := http.NewRequest(http.MethodPost, g.url+path, strings.NewReader(body))
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	return g.do(req)
}

func (g *gw) postForm(path string, v url.Values, hdr ...string) *reply {
	return g.post(path, "application/x-www-form-urlencoded", v.Encode(), hdr...)
}

// raw sends one request exactly as written (target, repeated headers) on a
// fresh connection, bypassing any client-side normalisation.
func (g *gw) raw(method, target string, hdr [][2]string, body string) *reply {
	g.t.Helper()
	conn, err := net.DialTimeout("tcp", g.ts.Listener.Addr().String(), 5*time.Second)
	if err != nil {
		g.t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n", method, target, g.ts.Listener.Addr())
	for _, h := range hdr {
		fmt.Fprintf(&b, "%s: %s\r\n", h[0], h[1])
	}
	if body != "" {
		fmt.Fprintf(&b, "Content-Length: %d\r\n", len(body))
	}
	b.WriteString("\r\n")
	b.WriteString(body)
	if _, err := io.WriteString(conn, b.String()); err != nil {
		g.t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		g.t.Fatalf("%s %s: %v", method, trunc(target), err)
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(resp.Body)
	g.observe(method+" "+target, resp.StatusCode, resp.Header, rb)
	return &reply{status: resp.StatusCode, hdr: resp.Header, body: rb}
}

// check asks the HTTP check adapter (Envoy http_service form) about target,
// and the gRPC Check the same question in the shape Envoy sends it: the two
// must agree (status as the HTTP check maps it, error, user). An answer can
// change between the two calls (a revocation arriving, a cache expiring),
// so a disagreement is asked again before it fails the test.
func (g *gw) check(target, authorization string, hdr ...[2]string) *reply {
	g.t.Helper()
	if authorization != "" {
		hdr = append(hdr, [2]string{"Authorization", authorization})
	}
	for try := 1; ; try++ {
		via := g.grpcCheck(target, hdr)
		r := g.raw(http.MethodGet, authz.CheckPath+target, hdr, "")
		if r.status != http.StatusOK && r.status != http.StatusUnauthorized && r.status != http.StatusForbidden {
			return r // refused before the check (oversized, malformed): no decision to compare
		}
		got := grpcVerdict{r.status, r.hdr.Get("X-Mcp-User"), ""}
		if r.status != http.StatusOK {
			var body struct {
				Error string `json:"error"`
			}
			_ = json.Unmarshal(r.body, &body)
			got.err = body.Error
		}
		if via == got {
			return r
		}
		if try == 3 {
			g.t.Errorf("gRPC Check %+v, HTTP check %+v for %s", via, got, trunc(target))
			return r
		}
	}
}

// grpcVerdict is a Check answer in the HTTP check's terms.
type grpcVerdict struct {
	status    int
	user, err string
}

// grpcCheck sends target and hdr as an Envoy-shaped CheckRequest: lower-case
// names, pseudo-headers, repeated headers joined with ",".
func (g *gw) grpcCheck(target string, hdr [][2]string) grpcVerdict {
	g.t.Helper()
	h := map[string]string{":method": http.MethodGet, ":path": target, ":authority": g.ts.Listener.Addr().String(), ":scheme": "http"}
	for _, kv := range hdr {
		k := strings.ToLower(kv[0])
		if old, ok := h[k]; ok {
			h[k] = old + "," + kv[1]
		} else {
			h[k] = kv[1]
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := g.grpc.Check(ctx, &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
		Http: &authv3.AttributeContext_HttpRequest{Method: http.MethodGet, Path: target, Headers: h},
	}}})
	if err != nil {
		g.t.Fatalf("gRPC Check %s: %v", trunc(target), err)
	}
	if ok := resp.GetOkResponse(); ok != nil {
		v := grpcVerdict{status: http.StatusOK}
		for _, o := range ok.GetHeaders() {
			if o.GetHeader().GetKey() == authz.HeaderUser {
				v.user = o.GetHeader().GetValue()
			}
		}
		return v
	}
	den := resp.GetDeniedResponse()
	v := grpcVerdict{status: http.StatusForbidden} // 403, 404 and 503 are 403 on the HTTP check
	if den.GetStatus().GetCode() == http.StatusUnauthorized {
		v.status = http.StatusUnauthorized
	}
	var body struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal([]byte(den.GetBody()), &body); err != nil {
		g.t.Fatalf("gRPC denial body %q: %v", den.GetBody(), err)
	}
	v.err = body.Error
	return v
}

// checkAllowed: the credential is allowed at agent as user.
func (g *gw) checkAllowed(t *testing.T, agent, authorization, user string) {
	t.Helper()
	r := g.check("/"+agent+"/mcp", authorization)
	if r.status != http.StatusOK || r.hdr.Get("X-Mcp-User") != user {
		t.Fatalf("check at %s: %d user %q, want 200 for %s: %s", agent, r.status, r.hdr.Get("X-Mcp-User"), user, r.body)
	}
}

// eventuallyDenied polls the Check until it refuses (revocations travel by
// pub/sub) and returns that answer.
func (g *gw) eventuallyDenied(t *testing.T, agent, authorization string) *reply {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := g.check("/"+agent+"/mcp", authorization)
		if r.status != http.StatusOK {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("the Check still allows at %s", agent)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ---- OAuth fixtures ----

func pkce() (verifier, challenge string) {
	verifier = token.Random(32)
	sum := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(sum[:])
}

// register registers a public client and returns its id.
func (g *gw) register(redirects ...string) string {
	g.t.Helper()
	if len(redirects) == 0 {
		redirects = []string{loopback}
	}
	b, _ := json.Marshal(map[string]any{"client_name": "hostile test", "redirect_uris": redirects})
	r := g.post("/oauth/register", "application/json", string(b))
	m := r.json(g.t)
	if r.status != http.StatusCreated {
		g.t.Fatalf("register: %d %v", r.status, m)
	}
	return m["client_id"].(string)
}

// authzURL builds an authorization request; extra overrides or adds
// parameters (an empty value removes one).
func (g *gw) authzURL(clientID, redirect, challenge string, extra url.Values) string {
	v := url.Values{
		"response_type": {"code"}, "client_id": {clientID}, "redirect_uri": {redirect},
		"code_challenge": {challenge}, "code_challenge_method": {"S256"}, "state": {"st-" + token.Random(4)},
	}
	for k, s := range extra {
		if len(s) == 1 && s[0] == "" {
			delete(v, k)
			continue
		}
		v[k] = s
	}
	return "/oauth/authorize?" + v.Encode()
}

// browser is a user agent with cookies that follows the gateway's own
// redirects and stops at the client's.
type browser struct {
	g *gw
	c *http.Client
}

func (g *gw) browser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{g: g, c: &http.Client{
		Jar: jar, Transport: &recTransport{g: g, base: g.tr}, Timeout: 10 * time.Second,
		CheckRedirect: func(req *http.Request, _ []*http.Request) error {
			if req.URL.Scheme+"://"+req.URL.Host != g.url {
				return http.ErrUseLastResponse
			}
			return nil
		},
	}}
}

func (b *browser) do(req *http.Request) *reply {
	b.g.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.g.t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return &reply{status: resp.StatusCode, hdr: resp.Header, body: body, url: resp.Request.URL}
}

func (b *browser) get(path string) *reply {
	req, _ := http.NewRequest(http.MethodGet, b.g.url+path, nil)
	return b.do(req)
}

func (b *browser) post(path, ctype, body string) *reply {
	req, _ := http.NewRequest(http.MethodPost, b.g.url+path, strings.NewReader(body))
	req.Header.Set("Content-Type", ctype)
	return b.do(req)
}

func (b *browser) postForm(path string, v url.Values) *reply {
	return b.post(path, "application/x-www-form-urlencoded", v.Encode())
}

var hiddenInput = regexp.MustCompile(`<input type="hidden" name="(\w+)" value="([^"]*)">`)

// formFields returns the hidden fields of the page's form (request, csrf).
func formFields(t *testing.T, r *reply) url.Values {
	t.Helper()
	v := url.Values{}
	for _, m := range hiddenInput.FindAllStringSubmatch(string(r.body), -1) {
		v.Set(m[1], m[2])
	}
	if v.Get("request") == "" || v.Get("csrf") == "" {
		t.Fatalf("no form on the page (%d at %v): %.400s", r.status, r.url, r.body)
	}
	return v
}

// loginPage starts an authorization in b and returns the login page.
func (b *browser) loginPage(clientID, challenge string, extra url.Values) *reply {
	t := b.g.t
	t.Helper()
	r := b.get(b.g.authzURL(clientID, loopback, challenge, extra))
	if r.status != http.StatusOK || r.url.Path != "/login" {
		t.Fatalf("expected the login page, got %d at %v: %.300s", r.status, r.url, r.body)
	}
	return r
}

// login submits the login page as user.
func (b *browser) login(page *reply, user string) *reply {
	v := formFields(b.g.t, page)
	v.Set("username", user)
	v.Set("password", passwords[user])
	return b.postForm("/login", v)
}

// consentPage logs in from a fresh authorization and returns the consent page.
func (b *browser) consentPage(clientID, challenge, user string, extra url.Values) *reply {
	t := b.g.t
	t.Helper()
	r := b.login(b.loginPage(clientID, challenge, extra), user)
	if r.status != http.StatusOK || r.url.Path != "/consent" {
		t.Fatalf("expected the consent page, got %d at %v: %.300s", r.status, r.url, r.body)
	}
	return r
}

// code runs authorize → login → consent as user and returns code and verifier.
func (g *gw) code(clientID, user string, extra url.Values) (code, verifier string) {
	g.t.Helper()
	verifier, challenge := pkce()
	b := g.browser()
	page := b.consentPage(clientID, challenge, user, extra)
	v := formFields(g.t, page)
	v.Set("decision", "approve")
	r := b.postForm("/consent", v)
	q := r.location(g.t).Query()
	if r.status != http.StatusFound || q.Get("code") == "" || q.Get("iss") != g.url {
		g.t.Fatalf("no code: %d %v", r.status, r.hdr.Get("Location"))
	}
	g.secret(q.Get("code"), verifier)
	return q.Get("code"), verifier
}

func (g *gw) exchange(clientID, code, verifier, redirect string) *reply {
	return g.postForm("/oauth/token", url.Values{
		"grant_type": {"authorization_code"}, "client_id": {clientID}, "code": {code},
		"redirect_uri": {redirect}, "code_verifier": {verifier},
	})
}

// tokens redeems a code and returns access and refresh token.
func (g *gw) tokens(clientID, code, verifier string) (access, refresh string) {
	g.t.Helper()
	r := g.exchange(clientID, code, verifier, loopback)
	m := r.json(g.t)
	if r.status != http.StatusOK {
		g.t.Fatalf("token: %d %v", r.status, m)
	}
	access, _ = m["access_token"].(string)
	refresh, _ = m["refresh_token"].(string)
	g.secret(access, refresh)
	return access, refresh
}

// grant is the whole flow for user at resource ("" = gateway-wide):
// a fresh client, its access and refresh token.
func (g *gw) grant(user, resource string) (clientID, access, refresh string) {
	g.t.Helper()
	clientID = g.register()
	var extra url.Values
	if resource != "" {
		extra = url.Values{"resource": {resource}}
	}
	code, verifier := g.code(clientID, user, extra)
	access, refresh = g.tokens(clientID, code, verifier)
	return clientID, access, refresh
}

func (g *gw) refresh(clientID, rt string) *reply {
	return g.postForm("/oauth/token", url.Values{"grant_type": {"refresh_token"}, "client_id": {clientID}, "refresh_token": {rt}})
}

// resource is the RFC 8707 resource of an agent.
func (g *gw) resource(agent string) string { return g.url + "/" + agent + "/mcp" }

// apiKey stores an API key record as the admin API would and returns the key.
func (g *gw) apiKey(kind store.KeyKind, prefix, agent, user string, mod func(*store.APIKey)) string {
	g.t.Helper()
	raw, hash := token.NewAPIKey(prefix)
	k := &store.APIKey{ID: "key-" + token.Random(6), Hash: hash, Kind: kind, Agent: agent, User: user, CreatedAt: time.Now()}
	if mod != nil {
		mod(k)
	}
	if err := g.st.Store.CreateKey(context.Background(), k); err != nil {
		g.t.Fatal(err)
	}
	g.fx["key_id"] = k.ID
	g.secret(raw)
	return raw
}

// assertNoSecretsLogged: no issued code, token, key or password in the logs.
func (g *gw) assertNoSecretsLogged(t *testing.T) {
	t.Helper()
	logs := g.logs.String()
	for _, s := range g.secrets {
		if len(s) >= 8 && strings.Contains(logs, s) {
			t.Errorf("a secret (%.8s…) appears in the logs", s)
		}
	}
	for _, pw := range passwords {
		if strings.Contains(logs, pw) {
			t.Errorf("a password appears in the logs")
		}
	}
}

// TestLocationOracle checks the harness's own open-redirect oracle, which
// every case relies on.
func TestLocationOracle(t *testing.T) {
	g := newGW(t, backends(t)[0], nil)
	g.register(loopback, "https://app.example/cb?x=1")
	for loc, want := range map[string]bool{
		"/login?request=x":                         true,
		g.url + "/consent?request=x":               true,
		"//evil.example/x":                         false,
		"http://127.0.0.1:5555/callback?code=c":    true,
		"http://127.0.0.1:9/callbackx":             false,
		"http://localhost:9/callback":              false,
		"http://127.0.0.1:9@evil.example/callback": false,
		"https://app.example/cb?x=1&code=c":        true,
		"https://app.example/cb?code=c":            false,
		"https://app.example:444/cb?x=1":           false,
		"https://evil.example/cb?x=1":              false,
		"javascript:alert(1)":                      false,
	} {
		u, err := url.Parse(loc)
		if err != nil {
			t.Fatal(err)
		}
		if got := g.internal(u) || g.registered(u); got != want {
			t.Errorf("%s: allowed = %v, want %v", loc, got, want)
		}
	}
}
