package hostile

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/redis/go-redis/v9"

	"github.com/mcpgateway/mcp-gateway/authz"
	"github.com/mcpgateway/mcp-gateway/store"
	"github.com/mcpgateway/mcp-gateway/store/redistest"
	"github.com/mcpgateway/mcp-gateway/token"
)

// redisServer is a private redis-server on a fixed loopback port, so it can
// be stopped and started again at the same address.
type redisServer struct {
	t    *testing.T
	bin  string
	port int
	dir  string
	cmd  *exec.Cmd
	done chan struct{}
}

func newRedisServer(t *testing.T) *redisServer {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("redis-server is required in CI: ", err)
		}
		t.Skip("redis-server not installed")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	r := &redisServer{t: t, bin: bin, port: port, dir: t.TempDir()}
	r.start()
	t.Cleanup(func() {
		if r.running() {
			_ = r.cmd.Process.Kill()
			<-r.done
		}
	})
	return r
}

func (r *redisServer) url() string { return fmt.Sprintf("redis://127.0.0.1:%d/0", r.port) }

func (r *redisServer) running() bool {
	if r.cmd == nil {
		return false
	}
	select {
	case <-r.done:
		return false
	default:
		return true
	}
}

// start runs redis-server (no RDB snapshots; an append-only file in a
// private dir, so a graceful restart keeps the data as a real deployment
// would) and waits until it answers PING.
func (r *redisServer) start() {
	r.t.Helper()
	r.cmd = exec.Command(r.bin, "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1", "--save", "",
		"--appendonly", "yes", "--appendfsync", "always", "--dir", r.dir)
	var out bytes.Buffer
	r.cmd.Stdout, r.cmd.Stderr = &out, &out
	if err := r.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	r.done = make(chan struct{})
	go func() { _ = r.cmd.Wait(); close(r.done) }()
	deadline := time.Now().Add(10 * time.Second)
	for !r.ping() {
		if time.Now().After(deadline) || !r.running() {
			r.t.Fatalf("redis-server did not start: %s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (r *redisServer) ping() bool {
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", r.port), time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && strings.HasPrefix(line, "+PONG")
}

// stop ends redis-server gracefully (SIGTERM) and waits for it to exit.
func (r *redisServer) stop() {
	r.t.Helper()
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		r.t.Fatal(err)
	}
	select {
	case <-r.done:
	case <-time.After(10 * time.Second):
		_ = r.cmd.Process.Kill()
		r.t.Fatal("redis-server did not stop on SIGTERM")
	}
}

// quietRedisLog silences go-redis's own dial-failure lines while Redis is
// down on purpose.
type quietRedisLog struct{}

func (quietRedisLog) Printf(context.Context, string, ...any) {}

// fakeClock is the Authorizer's clock: the test moves it to expire the
// API-key cache instead of waiting.
type fakeClock struct{ off atomic.Int64 }

func (c *fakeClock) Now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *fakeClock) Advance(d time.Duration) { c.off.Add(int64(d)) }

// settledGoroutines waits until the goroutine count stops moving.
func settledGoroutines() int {
	n := runtime.NumGoroutine()
	for range 40 {
		time.Sleep(50 * time.Millisecond)
		m := runtime.NumGoroutine()
		if m == n {
			return n
		}
		n = m
	}
	return n
}

// TestRedisOutage stops a real redis-server under load and starts it again
// on the same port. Throughout: a JWT for a config (static) agent is
// allowed and a forged one refused, both without Redis. An API key is
// served from the cache while it lives, then refused with a 503
// temporarily_unavailable (403 on the HTTP check, which must not answer
// 5xx to nginx) and never allowed. The OAuth endpoints answer 503
// temporarily_unavailable. After the restart everything works again, with
// no process restarted, revocations travel again, and the goroutine count
// returns to its baseline.
func TestRedisOutage(t *testing.T) {
	rs := newRedisServer(t)
	redis.SetLogger(quietRedisLog{})
	clock := &fakeClock{}
	const cacheTTL = 30 * time.Second
	g := newGWWith(t, backend{"redis-fault", func(t *testing.T) store.Store {
		return redistest.OpenURL(t, rs.url(), "fault")
	}}, gwOptions{authz: func(g *gw, o *authz.Options) {
		o.Now = clock.Now
		o.CacheTTL = cacheTTL
		o.StaticAgents = []store.Agent{{AgentSpec: store.AgentSpec{ID: "static", Owner: "alice", Upstream: g.up.ts.URL + "/mcp"}}}
	}})
	g.allow5xx.Store(true)

	valid := "Bearer " + g.good(nil)
	forged := "Bearer " + g.forge(jwt.SigningMethodHS384, []byte(signingSecret), signingKID, nil)
	key := "Bearer " + g.apiKey(store.KeyAgent, token.PrefixAgentKey, "static", "alice", nil)
	g.checkAllowed(t, "static", valid, "alice")
	g.checkAllowed(t, "static", key, "alice") // cached from here on
	g.tr.CloseIdleConnections()
	base := settledGoroutines()

	// phase: 0 Redis up, 1 down (key cached), 2 down (cache expired), 3 restarted.
	var phase atomic.Int32
	var mu sync.Mutex
	var violations []string
	bad := func(format string, a ...any) {
		mu.Lock()
		if len(violations) < 20 {
			violations = append(violations, fmt.Sprintf(format, a...))
		}
		mu.Unlock()
	}
	var jwtOK, keyCached, keyRefused atomic.Int64
	ctx, stopLoad := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	get := func(target, authorization string) (int, string, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, g.url+authz.CheckPath+target, nil)
		req.Header.Set("Authorization", authorization)
		resp, err := g.client.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		return resp.StatusCode, b.String(), nil
	}
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				switch w {
				case 0: // a valid JWT: always allowed
					st, body, err := get("/static/mcp", valid)
					if err == nil && st != http.StatusOK {
						bad("JWT in phase %d: %d %s", phase.Load(), st, body)
					} else if err == nil {
						jwtOK.Add(1)
					}
				case 1: // a forged JWT: always refused
					if st, body, err := get("/static/mcp", forged); err == nil && st != http.StatusUnauthorized {
						bad("forged JWT in phase %d: %d %s", phase.Load(), st, body)
					}
				case 2: // the API key: allowed from cache, then refused, never allowed in between
					p0 := phase.Load()
					st, body, err := get("/static/mcp", key)
					p1 := phase.Load()
					switch {
					case err != nil:
					case st == http.StatusOK && p0 == 2 && p1 == 2:
						bad("API key allowed with Redis down and the cache expired")
					case st == http.StatusOK:
						if p0 == 1 && p1 == 1 {
							keyCached.Add(1)
						}
					case st == http.StatusForbidden && strings.Contains(body, "temporarily_unavailable") && p0 >= 1:
						keyRefused.Add(1)
					default:
						bad("API key in phase %d–%d: %d %s", p0, p1, st, body)
					}
				}
			}
		}()
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitFor("load", func() bool { return jwtOK.Load() > 5 })

	// ---- Redis goes away ----
	phase.Store(1)
	rs.stop()
	g.checkAllowed(t, "static", key, "alice") // served from the cache
	waitFor("the key served from cache under load", func() bool { return keyCached.Load() > 0 })

	jsonUnavailable := func(r *reply, what string) {
		t.Helper()
		if r.status != http.StatusServiceUnavailable || r.hdr.Get("Retry-After") == "" || r.json(t)["error"] != "temporarily_unavailable" {
			t.Errorf("%s with Redis down: %d %v %.200s", what, r.status, r.hdr, r.body)
		}
	}
	jsonUnavailable(g.post("/oauth/register", "application/json", `{"redirect_uris":["`+loopback+`"]}`), "register")
	jsonUnavailable(g.postForm("/oauth/token", form("grant_type", "refresh_token", "client_id", "c", "refresh_token", "r")), "token")
	jsonUnavailable(g.postForm("/oauth/revoke", form("token", token.Random(32))), "revoke")
	if r := g.get(g.authzURL("c", loopback, "x", nil)); r.status != http.StatusServiceUnavailable || r.hdr.Get("Location") != "" {
		t.Errorf("authorize with Redis down: %d Location %q", r.status, r.hdr.Get("Location"))
	}
	if r := g.get("/.well-known/oauth-authorization-server"); r.status != http.StatusOK {
		t.Errorf("metadata with Redis down: %d", r.status)
	}

	// ---- the key cache expires: fail closed ----
	clock.Advance(cacheTTL + time.Second)
	phase.Store(2)
	if r := g.check("/static/mcp", key); r.status != http.StatusForbidden || r.json(t)["error"] != "temporarily_unavailable" || r.hdr.Get("Retry-After") == "" {
		t.Fatalf("HTTP check for a key once the cache expired: %d %v %s", r.status, r.hdr, r.body)
	}
	d := g.az.Decide(t.Context(), &authz.Request{Method: "POST", Path: "/static/mcp", Headers: map[string]string{"authorization": key}})
	if d.Allow || d.Status != http.StatusServiceUnavailable {
		t.Fatalf("decision for a key once the cache expired: %d %s", d.Status, d.Reason)
	}
	if r := g.raw(http.MethodPost, "/static/mcp", [][2]string{{"Authorization", key}, {"Content-Type", "application/json"}}, "{}"); r.status != http.StatusServiceUnavailable || r.json(t)["error"] != "temporarily_unavailable" {
		t.Fatalf("dev proxy for a key once the cache expired: %d %s", r.status, r.body)
	}
	before := keyRefused.Load()
	waitFor("key refusals under load", func() bool { return keyRefused.Load() > before+2 })
	g.checkAllowed(t, "static", valid, "alice")

	// ---- Redis comes back on the same port: no restart of the gateway ----
	phase.Store(3)
	rs.start()
	waitFor("the API key to be allowed again", func() bool { return g.check("/static/mcp", key).status == http.StatusOK })
	_, access, _ := g.grant("alice", "") // register, login, consent, code, token: all on Redis again
	g.checkAllowed(t, "static", "Bearer "+access, "alice")
	if r := g.postForm("/oauth/revoke", form("token", access)); r.status != http.StatusOK {
		t.Fatalf("revoke after recovery: %d %s", r.status, r.body)
	}
	g.eventuallyDenied(t, "static", "Bearer "+access) // the event subscription is live again

	stopLoad()
	wg.Wait()
	mu.Lock()
	for _, v := range violations {
		t.Error(v)
	}
	mu.Unlock()
	t.Logf("under load: %d JWT allows, %d key allows from cache, %d key refusals", jwtOK.Load(), keyCached.Load(), keyRefused.Load())

	// ---- no goroutine left behind by the outage ----
	g.tr.CloseIdleConnections()
	const slack = 5
	deadline := time.Now().Add(10 * time.Second)
	n := runtime.NumGoroutine()
	for ; n > base+slack; n = runtime.NumGoroutine() {
		if time.Now().After(deadline) {
			var buf bytes.Buffer
			_ = pprof.Lookup("goroutine").WriteTo(&buf, 1)
			t.Fatalf("%d goroutines, baseline %d (+%d):\n%s", n, base, slack, buf.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("goroutines: baseline %d, after the outage %d", base, n)
}
