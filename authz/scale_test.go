package authz

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mcpgateway/mcp-gateway/store"
	"github.com/mcpgateway/mcp-gateway/store/memstore"
	"github.com/mcpgateway/mcp-gateway/token"
)

// scale is how much state the store holds when the authorizer starts.
type scale struct{ agents, keys, revoked int }

// heapInUse is the live heap after a full collection.
func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// rssBytes is the process's resident set (Linux; 0 elsewhere).
func rssBytes() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb * 1024
		}
	}
	return 0
}

// scaleEnv fills a memory store with sc, then starts an authorizer on it,
// reporting the heap its start-up took per revoked entry (the mirror).
func scaleEnv(b *testing.B, sc scale) (*env, float64) {
	b.Helper()
	st := memstore.New()
	b.Cleanup(func() { _ = st.Close() })
	seedAgents(b, st)
	ctx := context.Background()
	now := time.Now()
	for i := range sc.agents {
		if err := st.PutAgent(ctx, &store.Agent{AgentSpec: store.AgentSpec{ID: fmt.Sprintf("agent-%d", i), Owner: "alice"}}); err != nil {
			b.Fatal(err)
		}
	}
	for i := range sc.keys {
		_, hash := token.NewAPIKey(token.PrefixUserKey)
		k := &store.APIKey{ID: fmt.Sprintf("key-%d", i), Hash: hash, Kind: store.KeyUser, User: "alice", CreatedAt: now}
		if err := st.CreateKey(ctx, k); err != nil {
			b.Fatal(err)
		}
	}
	for range sc.revoked {
		if err := st.RevokeJTI(ctx, token.Random(16), now.Add(time.Hour)); err != nil {
			b.Fatal(err)
		}
	}
	before := heapInUse()
	e := newEnvOn(b, st, func(o *Options) { o.Logger = slog.New(slog.DiscardHandler) })
	perEntry := 0.0
	if sc.revoked > 0 {
		perEntry = float64(heapInUse()-before) / float64(sc.revoked)
	}
	return e, perEntry
}

// BenchmarkDecideAtScale: the Check with an empty store and with 10,000
// agents, 100,000 API keys and 1,000,000 revoked token ids (all mirrored
// in memory at start). Its cost must not grow with those counts.
// BENCHMARKS.md, "Memory at scale".
func BenchmarkDecideAtScale(b *testing.B) {
	for _, sc := range []scale{{0, 0, 0}, {10_000, 100_000, 1_000_000}} {
		name := fmt.Sprintf("agents=%d/keys=%d/revoked=%d", sc.agents, sc.keys, sc.revoked)
		b.Run(name, func(b *testing.B) {
			e, perEntry := scaleEnv(b, sc)
			key := e.addKey("scale", token.PrefixUserKey, store.APIKey{Kind: store.KeyUser, User: "alice"})
			for _, c := range []struct {
				name, auth string
				status     int
			}{
				{"jwt", "Bearer " + e.mint("", "alice"), 200},
				{"key", "Bearer " + key, 200},
				{"none", "", 401},
			} {
				b.Run(c.name, func(b *testing.B) {
					runDecide(b, e.a, benchRequest("/alpha/mcp", c.auth), c.status)
					b.ReportMetric(perEntry, "mirror-B/revoked")
					b.ReportMetric(rssBytes()/(1<<20), "RSS-MiB")
				})
			}
		})
	}
}
