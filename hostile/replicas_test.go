package hostile

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"

	"github.com/mcpgateway/mcp-gateway/authz"
	"github.com/mcpgateway/mcp-gateway/config"
	"github.com/mcpgateway/mcp-gateway/internal/metrics"
	"github.com/mcpgateway/mcp-gateway/oauthsrv"
	"github.com/mcpgateway/mcp-gateway/store"
	"github.com/mcpgateway/mcp-gateway/store/redisstore"
	"github.com/mcpgateway/mcp-gateway/store/redistest"
)

// TagsSecrets passes the backend's need through the counting wrapper: on a
// cluster, codes and refresh tokens must carry their family's tag.
func (c *countingStore) TagsSecrets() bool { return store.TagsSecrets(c.Store) }

// replicaHeader picks which gateway replica behind the shared listener
// answers (A when absent), as a load balancer would.
const replicaHeader = "X-Test-Replica"

// withReplicas puts replicas B and C, each with its own connection to the
// store named by url and prefix, its own authorizer (mirror, caches) and
// authorization server, behind gateway A's listener and public URL.
func withReplicas(t *testing.T, url string) func(g *gw, a http.Handler) http.Handler {
	return func(g *gw, a http.Handler) http.Handler {
		prefix := g.st.Store.(*redisstore.Store).Prefix()
		rs := map[string]http.Handler{"A": a}
		for _, name := range []string{"B", "C"} {
			st, err := redisstore.New(t.Context(), url, prefix)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = st.Close() })
			log := slog.New(slog.NewJSONHandler(g.logs, nil))
			az, err := authz.New(authz.Options{PublicURL: g.url, Scopes: g.cfg.ScopeNames(), Ring: g.ring, Store: st,
				CacheTTL: g.cfg.Cache.TTL.D(), CacheSize: g.cfg.Cache.MaxSize, Logger: log})
			if err != nil {
				t.Fatal(err)
			}
			ctx, stop := context.WithCancel(context.Background())
			t.Cleanup(stop)
			if err := az.Start(ctx); err != nil {
				t.Fatal(err)
			}
			oauth, err := oauthsrv.New(oauthsrv.Options{Config: g.cfg, Store: st, Ring: g.ring, Agents: az, Logger: log})
			if err != nil {
				t.Fatal(err)
			}
			rs[name] = devFront(az, oauth, log)
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h, ok := rs[r.Header.Get(replicaHeader)]
			if !ok {
				h = a
			}
			h.ServeHTTP(w, r)
		})
	}
}

// call sends one request (form body when v is set) and returns the status;
// safe to use from any goroutine.
func call(c *http.Client, method, target, replica, authorization string, v url.Values) int {
	var body io.Reader
	if v != nil {
		body = strings.NewReader(v.Encode())
	}
	req, _ := http.NewRequest(method, target, body)
	if v != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if replica != "" {
		req.Header.Set(replicaHeader, replica)
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// Three gateway replicas on one Redis Cluster: a code issued through A is
// redeemed once across A, B and C racing; a revocation through C is
// enforced on A and B within a second; an agent created on B is allowed
// on A and routed by it.
func TestThreeReplicasOnCluster(t *testing.T) {
	curl := redistest.ClusterURL(t)
	b := backend{"cluster", func(t *testing.T) store.Store { return redistest.OpenURL(t, curl, "replicas") }}
	g := newGWWith(t, b, gwOptions{front: withReplicas(t, curl)})
	c := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	replicas := []string{"A", "B", "C"}

	// 1. One code, six redemptions racing on three replicas: one wins.
	clientID := g.register()
	code, verifier := g.code(clientID, "alice", nil)
	redeem := url.Values{"grant_type": {"authorization_code"}, "client_id": {clientID}, "code": {code},
		"redirect_uri": {loopback}, "code_verifier": {verifier}}
	var wins, refused atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			switch call(c, http.MethodPost, g.url+"/oauth/token", replicas[i%3], "", redeem) {
			case http.StatusOK:
				wins.Add(1)
			case http.StatusBadRequest:
				refused.Add(1)
			}
		}()
	}
	close(start)
	wg.Wait()
	if wins.Load() != 1 || refused.Load() != 5 {
		t.Fatalf("racing redemptions: %d won, %d refused; want 1 and 5", wins.Load(), refused.Load())
	}

	// 2. A grant through A, checked on A and B, revoked through C.
	grantClient, access, refresh := g.grant("alice", "")
	bearer := "Bearer " + access
	check := func(replica string) int {
		return call(c, http.MethodGet, g.url+authz.CheckPath+"/alpha/mcp", replica, bearer, nil)
	}
	for _, r := range replicas {
		if st := check(r); st != http.StatusOK {
			t.Fatalf("replica %s: check %d before the revocation", r, st)
		}
	}
	revoked := time.Now()
	if st := call(c, http.MethodPost, g.url+"/oauth/revoke", "C", "", url.Values{"token": {refresh}, "client_id": {grantClient}}); st != http.StatusOK {
		t.Fatalf("revoke through C: %d", st)
	}
	for _, r := range []string{"A", "B"} {
		for check(r) == http.StatusOK {
			if time.Since(revoked) > time.Second {
				t.Fatalf("replica %s still allows a grant revoked through C %v ago", r, time.Since(revoked))
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	t.Logf("revocation through C enforced on A and B after %v", time.Since(revoked))

	// 3. An agent created on B (as its admin API does) is allowed on A,
	// which had just answered that it does not exist.
	_, access2, _ := g.grant("alice", "")
	newAgent := func(replica string) int {
		return call(c, http.MethodGet, g.url+authz.CheckPath+"/fresh/mcp", replica, "Bearer "+access2, nil)
	}
	if st := newAgent("A"); st == http.StatusOK {
		t.Fatal("an unknown agent was allowed")
	}
	stB, err := redisstore.New(t.Context(), curl, g.st.Store.(*redisstore.Store).Prefix())
	if err != nil {
		t.Fatal(err)
	}
	defer stB.Close()
	if err := stB.CreateAgent(t.Context(), &store.Agent{AgentSpec: store.AgentSpec{ID: "fresh", Owner: "alice", Upstream: g.up.ts.URL + "/mcp"}}); err != nil {
		t.Fatal(err)
	}
	created := time.Now()
	for newAgent("A") != http.StatusOK {
		if time.Since(created) > time.Second {
			t.Fatal("replica A does not allow an agent created on B after 1 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// And A routes to it: the request reaches the agent's upstream.
	hits := g.up.hits.Load()
	if st := call(c, http.MethodPost, g.url+"/fresh/mcp", "A", "Bearer "+access2, url.Values{"x": {"1"}}); st != http.StatusOK || g.up.hits.Load() != hits+1 {
		t.Fatalf("replica A routing to an agent created on B: %d, upstream hits %d → %d", st, hits, g.up.hits.Load())
	}
}

// Sentinel failover under load: one primary, one replica, three sentinels.
// The primary is killed during JWT checks, code redemptions and refreshes.
// JWT Checks never stop (they need no Redis); the gateway reaches the new
// primary without a restart; no rotation acknowledged before the kill is
// lost (decisive writes WAIT for the replica, see redisstore.run). A write
// the replica did not acknowledge in time is counted
// (mcpgw_store_errors_total{op="WaitReplica"}) and may be lost: a loaded
// machine can miss a few, so those are the only losses excused.
func TestSentinelFailoverUnderLoad(t *testing.T) {
	set := redistest.StartSentinel(t)
	b := backend{"sentinel", func(t *testing.T) store.Store { return redistest.OpenURL(t, set.URL, "failover") }}
	g := newGWWith(t, b, gwOptions{cfg: func(c *config.Config) {
		c.RateLimit = config.RateLimit{Register: 100, Token: 10000, Authorize: 100, Login: 100, LoginPerUser: 100}
	}})
	c := &http.Client{Timeout: 10 * time.Second}

	clientID := g.register()
	_, access, _ := g.grant("alice", "")
	type chain struct {
		token     string // last refresh token the gateway acknowledged
		ambiguous bool   // the last attempt failed without an answer: it may have rotated
		done      bool
		end       string // the answer that ended the chain
	}
	chains := make([]*chain, 8)
	for i := range chains {
		code, verifier := g.code(clientID, "alice", nil)
		_, rt := g.tokens(clientID, code, verifier)
		chains[i] = &chain{token: rt}
	}
	type pending struct{ code, verifier string }
	var codes []pending
	for range 12 {
		code, verifier := g.code(clientID, "alice", nil)
		codes = append(codes, pending{code, verifier})
	}

	missed := func() int {
		var m dto.Metric
		if err := metrics.StoreErrors.WithLabelValues("WaitReplica").Write(&m); err != nil {
			t.Fatal(err)
		}
		return int(m.GetCounter().GetValue())
	}
	missedBefore := missed()
	g.allow5xx.Store(true)
	var jwtOK, jwtBad, redeemOK, redeem5xx, refreshOK, refresh5xx atomic.Int32
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { // JWT checks, all along
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if call(c, http.MethodGet, g.url+authz.CheckPath+"/alpha/mcp", "", "Bearer "+access, nil) == http.StatusOK {
				jwtOK.Add(1)
			} else {
				jwtBad.Add(1)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	go func() { // code redemptions, one every 100 ms
		defer wg.Done()
		for _, p := range codes {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			st := call(c, http.MethodPost, g.url+"/oauth/token", "", "", url.Values{"grant_type": {"authorization_code"},
				"client_id": {clientID}, "code": {p.code}, "redirect_uri": {loopback}, "code_verifier": {p.verifier}})
			switch {
			case st == http.StatusOK:
				redeemOK.Add(1)
			case st >= 500:
				redeem5xx.Add(1)
			}
		}
	}()
	go func() { // refresh rotations; a chain stops at its first failure
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			for _, ch := range chains {
				if ch.done {
					continue
				}
				r := g.refreshRaw(c, clientID, ch.token)
				switch {
				case r.status == http.StatusOK:
					ch.token = r.refresh
					refreshOK.Add(1)
				case r.status >= 500 || r.status == 0:
					ch.ambiguous, ch.done = true, true
					refresh5xx.Add(1)
				default:
					ch.done, ch.end = true, fmt.Sprintf("%d %s", r.status, r.desc)
				}
			}
		}
	}()

	time.Sleep(300 * time.Millisecond)
	killed := time.Now()
	set.Primary.Kill()
	waitPromoted(t, set)
	promoted := time.Since(killed)
	// Writes fail between the kill and the promotion, so the misses counted
	// by now are writes the old primary acknowledged without its replica.
	unreplicated := missed() - missedBefore
	// The same gateway, not restarted, works against the new primary.
	var recovered time.Duration
	for {
		if err := g.st.Store.Ping(t.Context()); err == nil {
			recovered = time.Since(killed)
			break
		}
		if time.Since(killed) > 20*time.Second {
			t.Fatal("the gateway did not reach the new primary within 20 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	g.allow5xx.Store(false)

	if jwtBad.Load() != 0 || jwtOK.Load() == 0 {
		t.Errorf("JWT checks: %d allowed, %d not: a JWT check must not depend on Redis", jwtOK.Load(), jwtBad.Load())
	}
	lostChains := 0
	var lost []string
	for i, ch := range chains {
		r := g.refreshRaw(c, clientID, ch.token)
		if r.status != http.StatusOK && !ch.ambiguous {
			lostChains++
			lost = append(lost, fmt.Sprintf("chain %d: its last acknowledged refresh token is refused after the failover (%d %s); the chain had ended on %q",
				i, r.status, r.desc, ch.end))
		}
	}
	if lostChains > unreplicated {
		t.Errorf("%d acknowledged rotations lost, %d writes not acknowledged by the replica:\n%s", lostChains, unreplicated, strings.Join(lost, "\n"))
	}
	if 2*unreplicated > int(refreshOK.Load()) {
		t.Errorf("the replica acknowledged in time fewer than half of %d rotations (%d missed): the test did not exercise WAIT", refreshOK.Load(), unreplicated)
	}
	code, verifier := g.code(clientID, "alice", nil)
	_, rt := g.tokens(clientID, code, verifier)
	if r := g.refresh(clientID, rt); r.status != http.StatusOK {
		t.Fatalf("refresh after the failover: %d", r.status)
	}
	t.Logf("failover: promoted after %v, gateway back after %v; JWT checks %d ok / %d not; redemptions %d ok / %d 5xx; refreshes %d ok / %d 5xx; writes the replica missed: %d; acknowledged rotations lost: %d",
		promoted, recovered, jwtOK.Load(), jwtBad.Load(), redeemOK.Load(), redeem5xx.Load(), refreshOK.Load(), refresh5xx.Load(), unreplicated, lostChains)
}

// refreshed is a refresh grant's answer.
type refreshed struct {
	status  int
	refresh string
	desc    string // error_description, when refused
}

// refreshRaw runs a refresh grant from any goroutine (no test helpers).
func (g *gw) refreshRaw(c *http.Client, clientID, rt string) refreshed {
	v := url.Values{"grant_type": {"refresh_token"}, "client_id": {clientID}, "refresh_token": {rt}}
	resp, err := c.PostForm(g.url+"/oauth/token", v)
	if err != nil {
		return refreshed{}
	}
	defer resp.Body.Close()
	var body struct {
		RefreshToken string `json:"refresh_token"`
		Description  string `json:"error_description"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return refreshed{resp.StatusCode, body.RefreshToken, body.Description}
}

// waitPromoted waits until the sentinels name the replica as the primary.
func waitPromoted(t *testing.T, set *redistest.SentinelSetup) {
	t.Helper()
	sc := redis.NewSentinelClient(&redis.Options{Addr: set.Sentinels[0].Addr()})
	defer sc.Close()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		addr, err := sc.GetMasterAddrByName(t.Context(), "mymaster").Result()
		if err == nil && len(addr) == 2 && addr[1] == set.Replica.Addr()[strings.LastIndexByte(set.Replica.Addr(), ':')+1:] {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no failover within 30 s: %v %v", addr, err)
		}
	}
}
