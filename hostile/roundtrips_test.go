package hostile

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mcpgateway/mcp-gateway/authz"
	"github.com/mcpgateway/mcp-gateway/store"
	"github.com/mcpgateway/mcp-gateway/store/redisstore"
	"github.com/mcpgateway/mcp-gateway/store/redistest"
	"github.com/mcpgateway/mcp-gateway/token"
)

// roundTrips is a go-redis hook counting round trips: one per command sent
// alone, one per pipeline or transaction.
type roundTrips struct {
	mu   sync.Mutex
	n    int
	cmds []string
}

func (c *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.add(cmd.Name())
		return next(ctx, cmd)
	}
}

func (c *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		names := make([]string, len(cmds))
		for i, cmd := range cmds {
			names[i] = cmd.Name()
		}
		c.add("[" + strings.Join(names, " ") + "]")
		return next(ctx, cmds)
	}
}

func (c *roundTrips) add(name string) {
	c.mu.Lock()
	c.n++
	c.cmds = append(c.cmds, name)
	c.mu.Unlock()
}

// take returns the round trips since the last take, and their commands.
func (c *roundTrips) take() (int, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, cmds := c.n, strings.Join(c.cmds, " ")
	c.n, c.cmds = 0, nil
	return n, cmds
}

// The Redis round trips of each flow, on one real redis-server, counted by
// a go-redis hook (BENCHMARKS.md, "Redis round trips per flow"). A JWT
// Check needs none: the signature, the denylist mirror and the agent cache
// are in memory.
func TestRoundTripsPerFlow(t *testing.T) {
	t.Run("redis", func(t *testing.T) {
		roundTripsOn(t, redistest.URL(t), map[string]int{
			"register": 3, "authorize+login+consent": 27, "code→token": 4, "refresh": 5, "revoke": 7,
			"Check JWT": 0, "Check API key (first use)": 1, "Check API key (cached)": 0, "Check without credential": 0,
		})
	})
	// On a cluster, creating a family also writes the user's index and
	// reads the family's denylist entry, in other slots: two more.
	t.Run("cluster", func(t *testing.T) {
		roundTripsOn(t, redistest.ClusterURL(t), map[string]int{
			"register": 3, "authorize+login+consent": 27, "code→token": 6, "refresh": 5, "revoke": 7,
			"Check JWT": 0, "Check API key (first use)": 1, "Check API key (cached)": 0, "Check without credential": 0,
		})
	})
}

func roundTripsOn(t *testing.T, url string, want map[string]int) {
	rt := &roundTrips{}
	b := backend{"redis", func(t *testing.T) store.Store {
		rdb, _, err := redisstore.Dial(url)
		if err != nil {
			t.Fatal(err)
		}
		rdb.AddHook(rt)
		prefix := "mcpgwtest:roundtrips:" + token.Random(6) + ":"
		s := redisstore.NewFromClient(rdb, prefix)
		s.LoadScripts(t.Context())
		t.Cleanup(func() {
			_ = s.Close()
			_ = rdb.Close()
			redistest.Clean(t, url, prefix)
		})
		return s
	}}
	g := newGWWith(t, b, gwOptions{authz: func(_ *gw, o *authz.Options) {
		o.TouchInterval = time.Hour // a key's last use is written in the background, in batches
	}})
	c := &http.Client{Timeout: 10 * time.Second}
	check := func(authorization string) int {
		return call(c, http.MethodGet, g.url+authz.CheckPath+"/alpha/mcp", "", authorization, nil)
	}

	flows := func() map[string]int {
		got := map[string]int{}
		measure := func(name string, fn func()) {
			rt.take()
			fn()
			n, cmds := rt.take()
			got[name] = n
			t.Logf("%-28s %2d  %s", name, n, cmds)
		}
		var clientID, code, verifier, access, refresh string
		measure("register", func() { clientID = g.register() })
		measure("authorize+login+consent", func() { code, verifier = g.code(clientID, "alice", nil) })
		measure("code→token", func() { access, refresh = g.tokens(clientID, code, verifier) })
		measure("refresh", func() {
			m := g.refresh(clientID, refresh).json(t)
			refresh, _ = m["refresh_token"].(string)
		})
		measure("Check JWT", func() {
			if st := check("Bearer " + access); st != http.StatusOK {
				t.Fatalf("JWT check: %d", st)
			}
		})
		key := g.apiKey(store.KeyAgent, token.PrefixAgentKey, "alpha", "", nil)
		rt.take()
		measure("Check API key (first use)", func() {
			if st := check("Bearer " + key); st != http.StatusOK {
				t.Fatalf("key check: %d", st)
			}
		})
		measure("Check API key (cached)", func() { check("Bearer " + key) })
		measure("Check without credential", func() {
			if st := check(""); st != http.StatusUnauthorized {
				t.Fatalf("anonymous check: %d", st)
			}
		})
		measure("revoke", func() {
			if r := g.postForm("/oauth/revoke", form("token", refresh, "client_id", clientID)); r.status != http.StatusOK {
				t.Fatalf("revoke: %d", r.status)
			}
		})
		return got
	}
	flows() // loads the scripts (EvalSha's first NOSCRIPT), warms the caches
	got := flows()
	for name, w := range want {
		if got[name] != w {
			t.Errorf("%s: %d round trips, want %d", name, got[name], w)
		}
	}
}
