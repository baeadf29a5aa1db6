//go:build e2e

// Package e2e runs the gateway with real parts around it: the built binary
// (serve, dev, demo-agent, the admin CLI), nginx from Debian, Redis when
// MCPGW_TEST_REDIS_URL is set, and the official MCP SDK clients.
//
// Run with `make e2e` (go test -count=1 -tags e2e -timeout 20m ./e2e/...).
// With CI=true a missing tool (nginx) or an unset MCPGW_TEST_REDIS_URL fails
// the suite; with CI unset the tests that need the tool skip and name it.
//
// # Harness API (stable: other suites in this package call it)
//
//	gatewayBin() string
//	    the mcp-gateway binary TestMain built once (./cmd/mcp-gateway).
//	startServe(t, *ServeOptions) *Gateway
//	    `mcp-gateway serve` with a generated config: public_url = the URL
//	    startNginx will serve, listeners on free 127.0.0.1 ports, store =
//	    MCPGW_TEST_REDIS_URL with a unique prefix (else memory), a signing
//	    key, built-in users alice and bob (Gateway.Users has the passwords),
//	    agents "demo" (owner alice) and "other" (owner bob), both upstream
//	    to one `mcp-gateway demo-agent` process (Gateway.AgentAddr), and an
//	    admin token. opts may be nil. Stopped by t.Cleanup.
//	startNginx(t, gw) string
//	    real nginx with nginx.NginxStandalone (the shipped template) in a
//	    temp prefix, listening on gw.PublicURL's port, proxying the OAuth
//	    paths to gw.HTTPURL, auth_request to /authz/check, and /<agent>/mcp
//	    to each agent's upstream, from the include `mcp-gateway
//	    nginx-config` writes for gw's registry. Returns gw.PublicURL once
//	    it answers. Skips (CI unset) or fails (CI=true) when nginx is not
//	    installed.
//	(*Gateway).reloadNginx(t)
//	    after agents change: nginx-config again, `nginx -t`, `nginx -s reload`.
//	startFront(t, gw) string
//	    instead of nginx (never both for one gw): an in-process reverse
//	    proxy on gw.PublicURL's port passing everything to gw.HTTPURL, so
//	    the authorization server is reachable at its issuer URL without
//	    nginx (for suites that test the gRPC Check, not a data plane).
//	startDev(t) *Dev
//	    `mcp-gateway dev` on free ports (memory store, demo user "demo",
//	    a known password and admin token).
//	completeLogin(t, authorizeURL, user, pass) (code, state, iss string)
//	    the browser part of OAuth, headless: GET the authorize URL with a
//	    fresh cookie jar, submit the login form (username/password + its
//	    hidden csrf/request fields), approve the consent form
//	    (decision=approve), and capture — not follow — the redirect to the
//	    client's redirect URI. Fails the test on any error.
//	browserLogin(ctx, authorizeURL, user, pass) (*AuthResponse, error)
//	    the same without *testing.T (for SDK callbacks running off the
//	    test goroutine); an error redirect (error=access_denied…) is an error.
//	oauthTokens(t, publicURL, user, pass, resource) *Tokens
//	    a complete hand-rolled OAuth flow against publicURL: DCR, PKCE
//	    authorize via completeLogin, code exchange. resource "" asks for the
//	    gateway-wide audience.
//	(*Gateway).MCPURL(agent) string
//	    gw.PublicURL + "/" + agent + "/mcp".
//	(*Gateway).CLI(t, args...) []byte
//	    runs `mcp-gateway <args>` against the admin API (MCPGW_ADMIN_URL and
//	    MCPGW_ADMIN_TOKEN set), failing the test on a non-zero exit; stdout.
//	(*Gateway).CreateKey(t, kind, subject, name) CreatedKey
//	    `mcp-gateway keys create --json`: kind "agent" (subject = agent id,
//	    bak_) or "user" (subject = user id, oag_).
//	(*Gateway).redisKeys(t, pattern) []string
//	    the gateway's Redis keys matching prefix+pattern (nil on memory).
//	requireTool(t, name, paths...) string
//	    the path of a tool; skips with CI unset, fails with CI=true.
package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/net/html"

	"github.com/mcpgateway/mcp-gateway/deploy/nginx"
)

// binPath is the binary TestMain built.
var binPath string

func gatewayBin() string { return binPath }

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "mcpgw-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	binPath = filepath.Join(dir, "mcp-gateway")
	build := exec.Command("go", "build", "-o", binPath, "./cmd/mcp-gateway")
	build.Dir = ".." // the module root
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: go build ./cmd/mcp-gateway:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func inCI() bool { return os.Getenv("CI") == "true" }

// missing skips the test for a missing prerequisite on a developer's
// machine and fails it when CI=true, where every prerequisite is installed.
func missing(t testing.TB, msg string) {
	t.Helper()
	if inCI() {
		t.Fatal(msg + " (CI=true requires it)")
	}
	t.Skip(msg + ": skipping")
}

// requireTool finds a tool on PATH or at one of paths. Missing: skip when
// CI is unset, fail when CI=true.
func requireTool(t testing.TB, name string, paths ...string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, p := range paths {
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	missing(t, fmt.Sprintf("%s is not installed (apt-get install -y %s)", name, name))
	return ""
}

// ---------------------------------------------------------------- ports

var (
	portsMu sync.Mutex
	ports   = map[string]bool{}
)

// freeAddr returns a 127.0.0.1:port nobody listens on now and that this
// process has not handed out before.
func freeAddr(t testing.TB) string {
	t.Helper()
	for range 50 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("free port: %v", err)
		}
		addr := ln.Addr().String()
		ln.Close()
		portsMu.Lock()
		seen := ports[addr]
		ports[addr] = true
		portsMu.Unlock()
		if !seen {
			return addr
		}
	}
	t.Fatal("no free port found")
	return ""
}

// ---------------------------------------------------------------- processes

// proc is a child process stopped by t.Cleanup.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

// childEnv is this process's environment without MCPGW_* (a developer's
// own settings must not leak into the generated config), plus extra.
func childEnv(extra map[string]string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MCPGW_") {
			env = append(env, kv)
		}
	}
	for k, v := range extra {
		env = append(env, k+"="+v)
	}
	return env
}

// startProc starts bin with args, stdout and stderr to logPath. At cleanup
// it gets SIGTERM, then SIGKILL after 10 s; on a failed test the tail of
// its log is printed.
func startProc(t testing.TB, name, logPath string, env []string, bin string, args ...string) *proc {
	t.Helper()
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatalf("%s: log: %v", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive the test binary
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("%s: start %s: %v", name, bin, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("--- %s log (tail):\n%s", name, p.tail(6000))
		}
	})
	return p
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *proc) tail(n int) string {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return err.Error()
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// waitReady polls check until it succeeds, the process exits, or 30 s pass.
func waitReady(t testing.TB, p *proc, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		if p.exited() {
			t.Fatalf("%s exited before it was ready (%v):\n%s", p.name, p.err, p.tail(6000))
		}
		if last = check(); last == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: %s not ready after 30s: %v\n%s", p.name, what, last, p.tail(6000))
}

var quickClient = &http.Client{Timeout: 5 * time.Second}

// httpOK: GET url answers 200.
func httpOK(u string) func() error {
	return func() error {
		resp, err := quickClient.Get(u)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", u, resp.Status)
		}
		return nil
	}
}

// ---------------------------------------------------------------- serve

// ServeOptions tunes startServe; the zero value (or nil) is fine.
type ServeOptions struct {
	// AccessTTL is ttl.access (default 60m).
	AccessTTL time.Duration
	// CacheTTL is cache.ttl of the Check's API-key and agent caches
	// (default 2s, so a revocation shows within a short bound).
	CacheTTL time.Duration
	// Memory forces the memory store even when MCPGW_TEST_REDIS_URL is set.
	Memory bool
	// Env adds MCPGW_* (or other) variables to the serve process; they
	// override the generated config file.
	Env map[string]string
}

// Gateway is a running `mcp-gateway serve`.
type Gateway struct {
	PublicURL  string // issuer; startNginx serves it (http://127.0.0.1:<port>)
	HTTPURL    string // serve's HTTP listener: authorization server + /authz/check
	GRPCAddr   string // serve's ext_authz gRPC listener (127.0.0.1:<port>)
	AdminURL   string // admin listener: /admin/v1, /metrics, /healthz, /readyz
	XDSAddr    string // ADS server (127.0.0.1:<port>)
	AdminToken string
	AgentAddr  string            // the demo agent (host:port, MCP path /mcp), upstream of demo and other
	Users      map[string]string // built-in users → passwords: alice, bob
	StoreURL   string            // "memory" or the Redis URL
	Prefix     string            // Redis key prefix of this gateway
	Dir        string            // temp dir: config, logs
	ConfigPath string

	publicAddr  string // host:port reserved for nginx
	nginxBin    string // set by startNginx
	nginxPrefix string
}

// MCPURL is the public MCP endpoint of agent.
func (g *Gateway) MCPURL(agent string) string { return g.PublicURL + "/" + agent + "/mcp" }

// randomString is n random bytes, base64url.
func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func bcryptHash(t testing.TB, pw string) string {
	t.Helper()
	// MinCost: the login check is the same code, only faster for the tests.
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

// storeForTest picks the store: Redis from MCPGW_TEST_REDIS_URL with a
// unique prefix (keys deleted at cleanup), else memory. CI=true requires Redis.
func storeForTest(t testing.TB, memory bool) (storeURL, prefix string) {
	t.Helper()
	prefix = "mcpgw-e2e-" + strings.ToLower(strings.NewReplacer("-", "", "_", "").Replace(randomString(6))) + ":"
	ru := os.Getenv("MCPGW_TEST_REDIS_URL")
	if memory {
		return "memory", prefix
	}
	if ru == "" {
		if inCI() {
			t.Fatal("MCPGW_TEST_REDIS_URL is not set: CI=true runs the e2e suites against a real Redis")
		}
		return "memory", prefix
	}
	opt, err := redis.ParseURL(ru)
	if err != nil {
		t.Fatalf("MCPGW_TEST_REDIS_URL: %v", err)
	}
	t.Cleanup(func() {
		rc := redis.NewClient(opt)
		defer rc.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		iter := rc.Scan(ctx, 0, prefix+"*", 500).Iterator()
		var keys []string
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		if len(keys) > 0 {
			rc.Del(ctx, keys...)
		}
	})
	return ru, prefix
}

// redisKeys lists the Redis keys of gw matching pattern (after the
// prefix), or nil when gw runs on the memory store.
func (g *Gateway) redisKeys(t testing.TB, pattern string) []string {
	t.Helper()
	if g.StoreURL == "memory" {
		return nil
	}
	opt, err := redis.ParseURL(g.StoreURL)
	if err != nil {
		t.Fatal(err)
	}
	rc := redis.NewClient(opt)
	defer rc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	keys, err := rc.Keys(ctx, g.Prefix+pattern).Result()
	if err != nil {
		t.Fatalf("redis KEYS: %v", err)
	}
	return keys
}

// startDemoAgent runs `mcp-gateway demo-agent` for agents demo and other of
// the gateway at publicURL (keys fetched from httpURL) and returns its host:port.
func startDemoAgent(t testing.TB, dir, publicURL, httpURL string) string {
	t.Helper()
	addr := freeAddr(t)
	p := startProc(t, "demo-agent", filepath.Join(dir, "demo-agent.log"), childEnv(nil), gatewayBin(), "demo-agent", "--listen", addr,
		"--issuer", publicURL, "--agents", "demo,other", "--jwks-url", httpURL+"/.well-known/jwks.json")
	waitReady(t, p, "/healthz", httpOK("http://"+addr+"/healthz"))
	return addr
}

// startServe runs `mcp-gateway serve` (see the package comment).
func startServe(t testing.TB, opts *ServeOptions) *Gateway {
	t.Helper()
	if opts == nil {
		opts = &ServeOptions{}
	}
	storeURL, prefix := storeForTest(t, opts.Memory)
	dir := t.TempDir()
	g := &Gateway{
		publicAddr: freeAddr(t),
		AdminToken: randomString(24),
		Users:      map[string]string{"alice": "alice-" + randomString(9), "bob": "bob-" + randomString(9)},
		StoreURL:   storeURL,
		Prefix:     prefix,
		Dir:        dir,
		ConfigPath: filepath.Join(dir, "gateway.yaml"),
	}
	g.PublicURL = "http://" + g.publicAddr
	httpAddr, grpcAddr, adminAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	g.HTTPURL, g.GRPCAddr, g.AdminURL = "http://"+httpAddr, grpcAddr, "http://"+adminAddr
	g.XDSAddr = freeAddr(t)
	agentAddr := startDemoAgent(t, dir, g.PublicURL, g.HTTPURL)
	g.AgentAddr = agentAddr

	access, cacheTTL := opts.AccessTTL, opts.CacheTTL
	if access == 0 {
		access = 60 * time.Minute
	}
	if cacheTTL == 0 {
		cacheTTL = 2 * time.Second
	}
	upstream := "http://" + agentAddr + "/mcp"
	cfg := map[string]any{
		"public_url":   g.PublicURL,
		"listen":       map[string]string{"http": httpAddr, "grpc": grpcAddr, "admin": adminAddr},
		"store":        map[string]string{"url": storeURL, "prefix": prefix},
		"signing_keys": []map[string]string{{"id": "e2e-" + randomString(3), "secret": randomString(32)}},
		"ttl":          map[string]string{"access": access.String()},
		"login": map[string]any{"provider": "builtin", "users": []map[string]string{
			{"username": "alice", "password_hash": bcryptHash(t, g.Users["alice"])},
			{"username": "bob", "password_hash": bcryptHash(t, g.Users["bob"])},
		}},
		"scopes":      []string{"mcp"},
		"admin_token": g.AdminToken,
		"agents": []map[string]any{
			{"id": "demo", "name": "Demo", "owner": "alice", "upstream": upstream},
			{"id": "other", "name": "Other", "owner": "bob", "upstream": upstream},
		},
		// Every test request comes from 127.0.0.1: limits would only add flakes.
		"rate_limit": map[string]int{"register": 0, "token": 0, "authorize": 0, "login": 0, "login_per_user": 0},
		"cache":      map[string]any{"ttl": cacheTTL.String(), "max_size": 1000},
		"clients":    map[string]any{"max_per_ip": 0},
		// The agents here run on loopback, which agent upstreams may not
		// use unless allowed.
		"xds": map[string]any{"listen": g.XDSAddr, "allowed_upstream_hosts": []string{"127.0.0.1"}},
	}
	// JSON is YAML: the config loader reads it as is.
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(g.ConfigPath, b, 0o600); err != nil {
		t.Fatal(err)
	}
	p := startProc(t, "serve", filepath.Join(dir, "serve.log"), childEnv(opts.Env), gatewayBin(),
		"serve", "--config", g.ConfigPath, "--drain-delay", "0s", "--shutdown-timeout", "3s")
	waitReady(t, p, "/readyz", httpOK(g.AdminURL+"/readyz"))
	waitReady(t, p, "HTTP listener", httpOK(g.HTTPURL+"/.well-known/oauth-authorization-server"))
	return g
}

// ---------------------------------------------------------------- nginx

// startNginx runs real nginx with the shipped template in front of gw and
// returns gw.PublicURL once nginx proxies to the gateway. The agents include
// comes from `mcp-gateway nginx-config` for gw's registry (reloadNginx
// regenerates it).
func startNginx(t testing.TB, gw *Gateway) string {
	t.Helper()
	bin := requireTool(t, "nginx", "/usr/sbin/nginx")
	prefix := filepath.Join(gw.Dir, "nginx")
	if err := os.MkdirAll(prefix, 0o755); err != nil {
		t.Fatal(err)
	}
	gw.nginxBin, gw.nginxPrefix = bin, prefix
	agentsConf := filepath.Join(prefix, "agents.conf")
	gw.nginxConfig(t, agentsConf)
	conf, err := nginx.NginxStandalone(nginx.NginxParams{
		Listen:      gw.publicAddr,
		GatewayHTTP: strings.TrimPrefix(gw.HTTPURL, "http://"),
		AgentsConf:  agentsConf,
	}, prefix)
	if err != nil {
		t.Fatalf("nginx config from the template: %v", err)
	}
	confPath := filepath.Join(prefix, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	// The config says `daemon off;` and logs errors to stderr (our log file).
	p := startProc(t, "nginx", filepath.Join(prefix, "error.log"), childEnv(nil), bin, "-p", prefix+"/", "-c", confPath)
	waitReady(t, p, "proxy to the gateway", httpOK(gw.PublicURL+"/.well-known/oauth-authorization-server"))
	return gw.PublicURL
}

// nginxConfig runs `mcp-gateway nginx-config` for gw's registry (its config
// file and store), writing the agents include to out.
func (g *Gateway) nginxConfig(t testing.TB, out string) {
	t.Helper()
	cmd := exec.Command(gatewayBin(), "nginx-config", "--config", g.ConfigPath, "--out", out)
	cmd.Env = childEnv(nil)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mcp-gateway nginx-config: %v\n%s", err, b)
	}
}

// reloadNginx regenerates the agents include of the nginx startNginx runs
// for g, then checks the config and reloads nginx the documented way
// (`nginx -t`, `nginx -s reload`). The reload is a signal: new workers take
// over a moment later, so callers poll for the change.
func (g *Gateway) reloadNginx(t testing.TB) {
	t.Helper()
	if g.nginxPrefix == "" {
		t.Fatal("reloadNginx without startNginx")
	}
	g.nginxConfig(t, filepath.Join(g.nginxPrefix, "agents.conf"))
	conf := filepath.Join(g.nginxPrefix, "nginx.conf")
	for _, args := range [][]string{{"-t"}, {"-s", "reload"}} {
		cmd := exec.Command(g.nginxBin, append([]string{"-p", g.nginxPrefix + "/", "-c", conf, "-e", "stderr"}, args...)...)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("nginx %s: %v\n%s", strings.Join(args, " "), err, b)
		}
	}
}

// startFront serves gw.PublicURL with a plain reverse proxy to gw.HTTPURL
// (the authorization server's redirects name the issuer, so something must
// answer there); closed at cleanup.
func startFront(t testing.TB, gw *Gateway) string {
	t.Helper()
	target, err := url.Parse(gw.HTTPURL)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", gw.publicAddr)
	if err != nil {
		t.Fatalf("front on %s: %v", gw.publicAddr, err)
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	srv := &http.Server{Handler: rp, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return gw.PublicURL
}

// ---------------------------------------------------------------- dev

// Dev is a running `mcp-gateway dev`.
type Dev struct {
	URL        string // public URL = the one port (authorization server + gated proxy)
	MCPURL     string // URL + "/demo/mcp"
	User       string // "demo"
	Password   string
	AdminURL   string
	AdminToken string
	GRPCAddr   string
}

// startDev runs `mcp-gateway dev` on free ports with the memory store.
func startDev(t testing.TB) *Dev {
	t.Helper()
	dir := t.TempDir()
	listen, grpcAddr, adminAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	d := &Dev{
		URL:        "http://" + listen,
		User:       "demo",
		Password:   "demo-" + randomString(9),
		AdminURL:   "http://" + adminAddr,
		AdminToken: randomString(24),
		GRPCAddr:   grpcAddr,
	}
	d.MCPURL = d.URL + "/demo/mcp"
	env := childEnv(map[string]string{"MCPGW_DEV_PASSWORD": d.Password, "MCPGW_ADMIN_TOKEN": d.AdminToken})
	p := startProc(t, "dev", filepath.Join(dir, "dev.log"), env, gatewayBin(),
		"dev", "--listen", listen, "--grpc", grpcAddr, "--admin", adminAddr)
	waitReady(t, p, "/readyz", httpOK(d.AdminURL+"/readyz"))
	waitReady(t, p, "public port", httpOK(d.URL+"/.well-known/oauth-authorization-server"))
	return d
}

// ---------------------------------------------------------------- CLI

// CLI runs the binary with the admin API's URL and token in its env.
func (g *Gateway) CLI(t testing.TB, args ...string) []byte {
	t.Helper()
	return runCLI(t, g.AdminURL, g.AdminToken, args...)
}

func runCLI(t testing.TB, adminURL, adminToken string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(gatewayBin(), args...)
	cmd.Env = childEnv(map[string]string{"MCPGW_ADMIN_URL": adminURL, "MCPGW_ADMIN_TOKEN": adminToken})
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("mcp-gateway %s: %v\n%s", args[0], err, stderr.String())
	}
	return stdout.Bytes()
}

// CreatedKey is the JSON `keys create --json` prints (the admin API's answer).
type CreatedKey struct {
	ID    string `json:"id"`
	Key   string `json:"key"`
	Kind  string `json:"kind"`
	Agent string `json:"agent"`
	User  string `json:"user"`
}

// CreateKey makes an API key with the CLI: kind "agent" (subject: agent id)
// or "user" (subject: user id).
func (g *Gateway) CreateKey(t testing.TB, kind, subject, name string) CreatedKey {
	t.Helper()
	args := []string{"keys", "create", "--kind", kind, "--name", name, "--json"}
	if kind == "agent" {
		args = append(args, "--agent", subject)
	} else {
		args = append(args, "--user", subject)
	}
	out := g.CLI(t, args...)
	var k CreatedKey
	if err := json.Unmarshal(out, &k); err != nil {
		t.Fatalf("keys create --json: %v: %q", err, out)
	}
	if k.ID == "" || k.Key == "" {
		t.Fatalf("keys create --json: no id or key in %q", out)
	}
	return k
}

// ---------------------------------------------------------------- browser

// AuthResponse is what the authorization server sent to the client's
// redirect URI.
type AuthResponse struct {
	Code, State, Iss string
	Redirect         *url.URL // the whole redirect, not followed
}

// completeLogin does the browser's part of an authorization (see the
// package comment) and fails the test on any error.
func completeLogin(t testing.TB, authorizeURL, user, pass string) (code, state, iss string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := browserLogin(ctx, authorizeURL, user, pass)
	if err != nil {
		t.Fatalf("browser login: %v", err)
	}
	return r.Code, r.State, r.Iss
}

// backLinkRE finds an error page's link back to the application.
var backLinkRE = regexp.MustCompile(`<a id="back" href="([^"]*)"`)

// browserLogin: GET authorizeURL, then submit whatever page comes (login:
// username/password; consent: decision=approve) with its hidden fields,
// following redirects on the authorization server's origin, until a
// redirect leaves it: that is the client's redirect URI.
func browserLogin(ctx context.Context, authorizeURL, user, pass string) (*AuthResponse, error) {
	start, err := url.Parse(authorizeURL)
	if err != nil {
		return nil, fmt.Errorf("authorize URL: %w", err)
	}
	jar, _ := cookiejar.New(nil)
	c := &http.Client{
		Jar:           jar,
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	origin := start.Scheme + "://" + start.Host
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, authorizeURL, nil)
	if err != nil {
		return nil, err
	}
	var trail []string
	for step := 0; step < 12; step++ {
		trail = append(trail, req.Method+" "+req.URL.Path)
		resp, err := c.Do(req)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", req.Method, req.URL.Path, err)
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		switch {
		case resp.StatusCode >= 300 && resp.StatusCode < 400:
			loc, err := req.URL.Parse(resp.Header.Get("Location"))
			if err != nil || resp.Header.Get("Location") == "" {
				return nil, fmt.Errorf("%s %s: %s with a bad Location %q", req.Method, req.URL.Path, resp.Status, resp.Header.Get("Location"))
			}
			if loc.Scheme+"://"+loc.Host != origin {
				q := loc.Query()
				if e := q.Get("error"); e != "" {
					return nil, fmt.Errorf("authorization failed: error=%s error_description=%q (after %s)", e, q.Get("error_description"), strings.Join(trail, " → "))
				}
				if q.Get("code") == "" {
					return nil, fmt.Errorf("redirect to %s without code (after %s)", loc.Redacted(), strings.Join(trail, " → "))
				}
				return &AuthResponse{Code: q.Get("code"), State: q.Get("state"), Iss: q.Get("iss"), Redirect: loc}, nil
			}
			req, err = http.NewRequestWithContext(ctx, http.MethodGet, loc.String(), nil)
			if err != nil {
				return nil, err
			}
		case resp.StatusCode == http.StatusOK:
			f, err := parseForm(body)
			if err != nil {
				return nil, fmt.Errorf("%s %s: %w", req.Method, req.URL.Path, err)
			}
			vals := f.values
			switch {
			case f.has("password"):
				vals.Set("username", user)
				vals.Set("password", pass)
			case f.buttons["decision"] != nil:
				if !contains(f.buttons["decision"], "approve") {
					return nil, fmt.Errorf("consent form has no approve button: %v", f.buttons["decision"])
				}
				vals.Set("decision", "approve")
			default:
				return nil, fmt.Errorf("%s %s: a page with neither a login nor a consent form", req.Method, req.URL.Path)
			}
			action, err := req.URL.Parse(f.action)
			if err != nil {
				return nil, fmt.Errorf("form action %q: %w", f.action, err)
			}
			req, err = http.NewRequestWithContext(ctx, http.MethodPost, action.String(), strings.NewReader(vals.Encode()))
			if err != nil {
				return nil, err
			}
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Origin", origin) // what a browser sends with a form POST
		case backLinkRE.Match(body):
			// An error before the user approved the client is a page (RFC
			// 9700 §4.11.2): follow its link back as the user would.
			loc, err := req.URL.Parse(html.UnescapeString(string(backLinkRE.FindSubmatch(body)[1])))
			if err != nil {
				return nil, fmt.Errorf("error page link: %w", err)
			}
			req, err = http.NewRequestWithContext(ctx, http.MethodGet, loc.String(), nil)
			if err != nil {
				return nil, err
			}
		default:
			return nil, fmt.Errorf("%s %s: %s: %s (after %s)", req.Method, req.URL.Path, resp.Status, firstLine(body), strings.Join(trail, " → "))
		}
	}
	return nil, fmt.Errorf("no redirect to the client after %s", strings.Join(trail, " → "))
}

func contains(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

func firstLine(b []byte) string {
	s := strings.TrimSpace(string(b))
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 300 {
		s = s[:300]
	}
	return s
}

// htmlForm is the first POST form of a page.
type htmlForm struct {
	action  string
	values  url.Values          // hidden and pre-filled inputs
	fields  map[string]bool     // every input name
	buttons map[string][]string // submit buttons: name → values
}

func (f *htmlForm) has(name string) bool { return f.fields[name] }

func parseForm(page []byte) (*htmlForm, error) {
	doc, err := html.Parse(bytes.NewReader(page))
	if err != nil {
		return nil, fmt.Errorf("parse HTML: %w", err)
	}
	attr := func(n *html.Node, k string) string {
		for _, a := range n.Attr {
			if a.Key == k {
				return a.Val
			}
		}
		return ""
	}
	var form *html.Node
	var find func(*html.Node)
	find = func(n *html.Node) {
		if form != nil {
			return
		}
		if n.Type == html.ElementNode && n.Data == "form" && strings.EqualFold(attr(n, "method"), "post") {
			form = n
			return
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			find(c)
		}
	}
	find(doc)
	if form == nil {
		return nil, errors.New("no POST form on the page: " + firstLine(page))
	}
	f := &htmlForm{action: attr(form, "action"), values: url.Values{}, fields: map[string]bool{}, buttons: map[string][]string{}}
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode {
			name := attr(n, "name")
			switch {
			case n.Data == "input" && name != "":
				f.fields[name] = true
				switch strings.ToLower(attr(n, "type")) {
				case "submit":
					f.buttons[name] = append(f.buttons[name], attr(n, "value"))
				case "password":
				default:
					if v := attr(n, "value"); v != "" {
						f.values.Set(name, v)
					}
				}
			case n.Data == "button" && name != "":
				f.buttons[name] = append(f.buttons[name], attr(n, "value"))
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(form)
	if f.values.Get("csrf") == "" {
		return nil, errors.New("the form has no csrf hidden input")
	}
	return f, nil
}

// ---------------------------------------------------------------- OAuth by hand

// Tokens is the outcome of oauthTokens.
type Tokens struct {
	ClientID     string
	RedirectURI  string
	AccessToken  string
	RefreshToken string
	ExpiresIn    int
	Scope        string
}

// pkce returns a verifier and its S256 challenge.
func pkce() (verifier, challenge string) {
	verifier = randomString(32)
	sum := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(sum[:])
}

// postForm POSTs form values and decodes a JSON answer into out; it
// returns the status.
func postForm(t testing.TB, u string, form url.Values, out any) int {
	t.Helper()
	resp, err := quickClient.PostForm(u, form)
	if err != nil {
		t.Fatalf("POST %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("POST %s: %s: not JSON: %q", u, resp.Status, b)
		}
	}
	return resp.StatusCode
}

// oauthTokens registers a client at publicURL, authorizes it for user
// (login + consent through completeLogin) and exchanges the code with PKCE.
// resource "" asks for the gateway-wide audience.
func oauthTokens(t testing.TB, publicURL, user, pass, resource string) *Tokens {
	t.Helper()
	redirect := "http://127.0.0.1:" + strings.TrimPrefix(freeAddr(t), "127.0.0.1:") + "/callback"
	reg, _ := json.Marshal(map[string]any{
		"client_name":                "e2e hand-rolled client",
		"redirect_uris":              []string{redirect},
		"grant_types":                []string{"authorization_code", "refresh_token"},
		"response_types":             []string{"code"},
		"token_endpoint_auth_method": "none",
	})
	resp, err := quickClient.Post(publicURL+"/oauth/register", "application/json", bytes.NewReader(reg))
	if err != nil {
		t.Fatalf("register: %v", err)
	}
	var client struct {
		ClientID string `json:"client_id"`
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || json.Unmarshal(b, &client) != nil || client.ClientID == "" {
		t.Fatalf("register: %s: %s", resp.Status, b)
	}
	verifier, challenge := pkce()
	state := randomString(12)
	q := url.Values{
		"response_type":         {"code"},
		"client_id":             {client.ClientID},
		"redirect_uri":          {redirect},
		"code_challenge":        {challenge},
		"code_challenge_method": {"S256"},
		"scope":                 {"mcp"},
		"state":                 {state},
	}
	if resource != "" {
		q.Set("resource", resource)
	}
	code, gotState, iss := completeLogin(t, publicURL+"/oauth/authorize?"+q.Encode(), user, pass)
	if gotState != state {
		t.Fatalf("state: got %q, want %q", gotState, state)
	}
	if iss != publicURL {
		t.Fatalf("iss: got %q, want %q", iss, publicURL)
	}
	form := url.Values{
		"grant_type":    {"authorization_code"},
		"client_id":     {client.ClientID},
		"code":          {code},
		"redirect_uri":  {redirect},
		"code_verifier": {verifier},
	}
	if resource != "" {
		form.Set("resource", resource)
	}
	var tok struct {
		AccessToken  string `json:"access_token"`
		TokenType    string `json:"token_type"`
		RefreshToken string `json:"refresh_token"`
		ExpiresIn    int    `json:"expires_in"`
		Scope        string `json:"scope"`
		Error        string `json:"error"`
	}
	if st := postForm(t, publicURL+"/oauth/token", form, &tok); st != http.StatusOK || tok.AccessToken == "" {
		t.Fatalf("token: %d %s", st, tok.Error)
	}
	if !strings.EqualFold(tok.TokenType, "Bearer") {
		t.Fatalf("token_type %q, want Bearer", tok.TokenType)
	}
	return &Tokens{ClientID: client.ClientID, RedirectURI: redirect, AccessToken: tok.AccessToken,
		RefreshToken: tok.RefreshToken, ExpiresIn: tok.ExpiresIn, Scope: tok.Scope}
}
