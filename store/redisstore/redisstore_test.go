package redisstore_test

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/mcpgateway/mcp-gateway/store"
	"github.com/mcpgateway/mcp-gateway/store/redisstore"
	"github.com/mcpgateway/mcp-gateway/store/redistest"
	"github.com/mcpgateway/mcp-gateway/store/storetest"
)

// clock is the fake time shared by a miniredis server and its stores;
// Advance moves both forward together.
type clock struct {
	mu  sync.Mutex
	now time.Time
	mr  *miniredis.Miniredis
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
	c.mr.FastForward(d)
}

func randomPrefix(t *testing.T) string {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "mcpgwtest:" + hex.EncodeToString(b) + ":"
}

// miniStore opens a store on mr that closes with the test.
func miniStore(t *testing.T, mr *miniredis.Miniredis, prefix string, clk *clock) *redisstore.Store {
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	s := redisstore.NewFromClient(rdb, prefix, redisstore.WithClock(clk.Now))
	t.Cleanup(func() {
		_ = s.Close()
		_ = rdb.Close()
	})
	return s
}

func TestContractMiniredis(t *testing.T) {
	storetest.RunBackend(t, func(t *testing.T) storetest.Backend {
		// One server per subtest: FastForward moves every key's TTL.
		mr := miniredis.RunT(t)
		clk := &clock{now: time.Now(), mr: mr}
		prefix := randomPrefix(t)
		return storetest.Backend{
			Store:   miniStore(t, mr, prefix, clk),
			Now:     clk.Now,
			Advance: clk.Advance,
			Peer:    func(t *testing.T) store.Store { return miniStore(t, mr, prefix, clk) },
		}
	})
}

// realStore opens a store on the real server under prefix and deletes the
// prefix's keys when the test ends, so test packages can share a server.
func realStore(t *testing.T, url, prefix string, cleanup bool) *redisstore.Store {
	s, err := redisstore.New(t.Context(), url, prefix)
	if err != nil {
		t.Fatalf("redisstore.New: %v", err)
	}
	t.Cleanup(func() {
		if cleanup {
			redistest.Clean(t, url, prefix)
		}
		_ = s.Close()
	})
	return s
}

func TestContractRealRedis(t *testing.T) {
	url := redistest.URL(t)
	storetest.RunBackend(t, func(t *testing.T) storetest.Backend {
		prefix := randomPrefix(t)
		return storetest.Backend{
			Store: realStore(t, url, prefix, true),
			Peer:  func(t *testing.T) store.Store { return realStore(t, url, prefix, false) },
		}
	})
}

// closedAddr returns a 127.0.0.1 address nothing listens on.
func closedAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

func TestUnavailable(t *testing.T) {
	addr := closedAddr(t)
	ctx := t.Context()

	_, err := redisstore.New(ctx, "redis://"+addr+"/0?dial_timeout=200ms&max_retries=-1", "p:")
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("New on a closed port: %v, want ErrUnavailable", err)
	}

	rdb := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: 200 * time.Millisecond, MaxRetries: -1, DialerRetries: 1})
	defer rdb.Close()
	s := redisstore.NewFromClient(rdb, "p:")
	defer s.Close()

	calls := map[string]func() error{
		"Ping":      func() error { return s.Ping(ctx) },
		"GetClient": func() error { _, err := s.GetClient(ctx, "c"); return err },
		"RedeemCode": func() error {
			_, err := s.RedeemCode(ctx, "h", store.CodeBinding{})
			return err
		},
		"LookupRefresh": func() error { _, err := s.LookupRefresh(ctx, "h"); return err },
		"Rotate": func() error {
			_, err := s.Rotate(ctx, store.Rotation{OldHash: "a", NewHash: "b", TokenTTL: time.Hour})
			return err
		},
		"GetKeyByHash": func() error { _, err := s.GetKeyByHash(ctx, "h"); return err },
		"IsRevoked":    func() error { _, err := s.IsRevoked(ctx, "j"); return err },
		"Allow":        func() error { _, _, err := s.Allow(ctx, "k", 1, time.Second); return err },
		"TouchKeys":    func() error { return s.TouchKeys(ctx, map[string]time.Time{"h": time.Now()}) },
		"Publish":      func() error { return s.Publish(ctx, store.Event{Kind: store.EventAgent, ID: "a"}) },
		"Subscribe":    func() error { return s.Subscribe(ctx, func(store.Event) {}) },
	}
	for name, call := range calls {
		err := call()
		if !errors.Is(err, store.ErrUnavailable) || errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s on a closed port: %v, want ErrUnavailable (and not ErrNotFound)", name, err)
		}
	}
}

// A subscriber survives a Redis restart: it is told to resync, then
// receives events again.
func TestSubscribeReconnects(t *testing.T) {
	mr := miniredis.RunT(t)
	clk := &clock{now: time.Now(), mr: mr}
	prefix := randomPrefix(t)
	pub, sub := miniStore(t, mr, prefix, clk), miniStore(t, mr, prefix, clk)

	events := make(chan store.Event, 16)
	must(t, sub.Subscribe(t.Context(), func(e store.Event) { events <- e }))
	must(t, pub.Publish(t.Context(), store.Event{Kind: store.EventAgent, ID: "before"}))
	select {
	case e := <-events:
		if e.Kind != store.EventAgent || e.ID != "before" {
			t.Fatalf("first event = %+v, want the published one (no resync before a reconnect)", e)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no event before the restart")
	}

	mr.Close()
	if err := mr.Restart(); err != nil {
		t.Fatalf("restart miniredis: %v", err)
	}
	waitFor(t, events, store.EventResync, "")
	must(t, pub.Publish(t.Context(), store.Event{Kind: store.EventAgent, ID: "after"}))
	waitFor(t, events, store.EventAgent, "after")
}

func waitFor(t *testing.T, ch <-chan store.Event, kind, id string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case e := <-ch:
			if e.Kind == kind && e.ID == id {
				return
			}
		case <-deadline:
			t.Fatalf("no %s event %q", kind, id)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// Keys carry the prefix and the documented names, and expire by Redis TTL.
func TestKeyLayout(t *testing.T) {
	mr := miniredis.RunT(t)
	clk := &clock{now: time.Now(), mr: mr}
	s := miniStore(t, mr, "gw:", clk)
	ctx := t.Context()
	now := clk.Now()
	must(t, s.PutCode(ctx, &store.AuthCode{Hash: "h1", FamilyID: "f1", ExpiresAt: now.Add(120 * time.Second)}))
	must(t, s.CreateFamily(ctx, &store.RefreshFamily{ID: "f1", UserID: "u:1", CurrentHash: "r1", ExpiresAt: now.Add(time.Hour)}, 10*time.Minute))
	must(t, s.RevokeJTI(ctx, "j1", now.Add(time.Minute)))
	must(t, s.PutAgent(ctx, &store.Agent{AgentSpec: store.AgentSpec{ID: "a1", Owner: "u"}}))
	for key, ttl := range map[string]time.Duration{
		"gw:code:h1": 120 * time.Second, "gw:rtfam:f1": time.Hour, "gw:rt:r1": 10 * time.Minute,
		"gw:revoked:j1": time.Minute, "gw:agent:a1": 0, "gw:rtuser:u%3A1": time.Hour,
	} {
		if !mr.Exists(key) {
			t.Errorf("key %s missing; have %v", key, mr.Keys())
			continue
		}
		if got := mr.TTL(key); got != ttl {
			t.Errorf("TTL(%s) = %v, want %v", key, got, ttl)
		}
	}
	_, err := s.RedeemCode(ctx, "h1", store.CodeBinding{})
	must(t, err)
	if mr.Exists("gw:code:h1") || !mr.Exists("gw:codeused:h1") {
		t.Errorf("after redeem: keys %v", mr.Keys())
	}
}

// Idle expiry of registered clients is a Redis TTL on client:<id> (and on
// clientsip:<ip>), observed with PTTL on a real server; TouchClient renews
// both, and a short TTL really ends the client.
func TestClientIdleTTLRealRedis(t *testing.T) {
	url := redistest.URL(t)
	prefix := randomPrefix(t)
	s := realStore(t, url, prefix, true)
	o, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(o)
	defer rdb.Close()
	ctx := t.Context()
	pttl := func(key string) time.Duration {
		t.Helper()
		d, err := rdb.PTTL(ctx, key).Result()
		if err != nil {
			t.Fatal(err)
		}
		return d
	}

	c := &store.Client{ID: "idle-1", RedirectURIs: []string{"http://127.0.0.1/cb"}, RegisteredIP: "2001:db8::7",
		CreatedAt: time.Now(), ExpiresAt: time.Now().Add(10 * time.Second)}
	must(t, s.CreateClient(ctx, c))
	for _, key := range []string{prefix + "client:idle-1", prefix + "clientsip:2001:db8::7"} {
		if d := pttl(key); d <= 0 || d > 10*time.Second {
			t.Fatalf("PTTL(%s) = %v, want within (0, 10s]", key, d)
		}
	}
	must(t, s.TouchClient(ctx, c.ID, time.Hour))
	for _, key := range []string{prefix + "client:idle-1", prefix + "clientsip:2001:db8::7"} {
		if d := pttl(key); d <= 10*time.Second || d > time.Hour {
			t.Fatalf("PTTL(%s) after touch = %v, want within (10s, 1h]", key, d)
		}
	}
	got, err := s.GetClient(ctx, c.ID)
	must(t, err)
	if !got.ExpiresAt.After(c.ExpiresAt) {
		t.Fatalf("ExpiresAt after touch = %v, want after %v", got.ExpiresAt, c.ExpiresAt)
	}
	perm := &store.Client{ID: "perm-1", RedirectURIs: []string{"http://127.0.0.1/cb"}, CreatedAt: time.Now()}
	must(t, s.CreateClient(ctx, perm))
	must(t, s.TouchClient(ctx, perm.ID, time.Hour))
	if d := pttl(prefix + "client:perm-1"); d != -1 {
		t.Fatalf("permanent client PTTL = %v, want -1 (no expiry)", d)
	}

	short := &store.Client{ID: "idle-2", RedirectURIs: []string{"http://127.0.0.1/cb"}, RegisteredIP: "2001:db8::7",
		CreatedAt: time.Now(), ExpiresAt: time.Now().Add(300 * time.Millisecond)}
	must(t, s.CreateClient(ctx, short))
	if n, err := s.CountClientsByIP(ctx, "2001:db8::7"); err != nil || n != 2 {
		t.Fatalf("CountClientsByIP = %d, %v; want 2", n, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := s.GetClient(ctx, short.ID)
		if errors.Is(err, store.ErrNotFound) {
			break
		}
		must(t, err)
		if time.Now().After(deadline) {
			t.Fatal("client with a 300ms idle TTL still there after 10s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n, err := rdb.Exists(ctx, prefix+"client:idle-2").Result(); err != nil || n != 0 {
		t.Fatalf("client:idle-2 still in Redis: %d %v", n, err)
	}
	if n, err := s.CountClientsByIP(ctx, "2001:db8::7"); err != nil || n != 1 {
		t.Fatalf("CountClientsByIP after expiry = %d, %v; want 1", n, err)
	}
}

// A consent written before redirect URIs were part of the key (field
// "<resource>\x00<scope>", no redirect_uri in the JSON) is read compatibly:
// listed and revoked with its client, but it never auto-approves.
func TestLegacyConsentRealRedis(t *testing.T) {
	url := redistest.URL(t)
	prefix := randomPrefix(t)
	s := realStore(t, url, prefix, true)
	o, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(o)
	defer rdb.Close()
	ctx := t.Context()
	// What the previous SaveConsent wrote, byte for byte.
	legacy := `{"user_id":"alice","client_id":"c1","scope":"mcp","resource":"http://gw","created_at":"2026-01-02T03:04:05Z"}`
	must(t, rdb.HSet(ctx, prefix+"consent:alice:c1", "http://gw\x00mcp", legacy).Err())
	must(t, rdb.SAdd(ctx, prefix+"consents:alice", "c1").Err())

	for _, redirect := range []string{"https://app.example/cb", ""} {
		ok, err := s.HasConsent(ctx, &store.Consent{UserID: "alice", ClientID: "c1", RedirectURI: redirect, Scope: "mcp", Resource: "http://gw"})
		must(t, err)
		if ok {
			t.Fatalf("a legacy consent auto-approves redirect URI %q", redirect)
		}
	}
	// A new approval sits next to it and is the only one that matches.
	must(t, s.SaveConsent(ctx, &store.Consent{UserID: "alice", ClientID: "c1", RedirectURI: "https://app.example/cb", Scope: "mcp", Resource: "http://gw", CreatedAt: time.Now()}))
	ok, err := s.HasConsent(ctx, &store.Consent{UserID: "alice", ClientID: "c1", RedirectURI: "https://app.example/cb", Scope: "mcp", Resource: "http://gw"})
	must(t, err)
	if !ok {
		t.Fatal("new consent next to a legacy one does not match")
	}
	list, err := s.ListConsents(ctx, "alice")
	must(t, err)
	if len(list) != 2 || list[0].RedirectURI != "" || list[0].Scope != "mcp" || list[1].RedirectURI != "https://app.example/cb" {
		t.Fatalf("ListConsents = %+v, want the legacy record then the new one", list)
	}
	must(t, s.DeleteConsents(ctx, "alice", "c1"))
	if n, err := rdb.Exists(ctx, prefix+"consent:alice:c1").Result(); err != nil || n != 0 {
		t.Fatalf("DeleteConsents left the legacy hash: %d %v", n, err)
	}
}

// The contract on a 3-primary Redis Cluster: every script and transaction
// keeps its keys in one hash slot (a CROSSSLOT error fails the suite).
func TestContractCluster(t *testing.T) {
	url := redistest.ClusterURL(t)
	storetest.RunBackend(t, func(t *testing.T) storetest.Backend {
		s := redistest.OpenURL(t, url, "contract")
		if !s.TagsSecrets() {
			t.Fatal("a store on a cluster URL must use the cluster key layout")
		}
		return storetest.Backend{
			Store: s,
			Peer: func(t *testing.T) store.Store {
				p, err := redisstore.New(t.Context(), url, s.Prefix())
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = p.Close() })
				return p
			},
		}
	})
}

// The contract through Sentinel: a primary found by asking the sentinels,
// every decisive write followed by WAIT for the replica.
func TestContractSentinel(t *testing.T) {
	url := redistest.SentinelURL(t)
	storetest.RunBackend(t, func(t *testing.T) storetest.Backend {
		s := redistest.OpenURL(t, url, "contract")
		return storetest.Backend{
			Store: s,
			Peer: func(t *testing.T) store.Store {
				p, err := redisstore.New(t.Context(), url, s.Prefix())
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = p.Close() })
				return p
			},
		}
	})
}
