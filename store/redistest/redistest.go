// Package redistest gives tests a real Redis: the server named by
// MCPGW_TEST_REDIS_URL (CI always sets it), each store under a key prefix of
// its own that is deleted when the test ends, so packages can share a server.
package redistest

import (
	"context"
	"os"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/mcpgateway/mcp-gateway/store/redisstore"
	"github.com/mcpgateway/mcp-gateway/token"
)

// EnvURL names the variable holding the test server's URL.
const EnvURL = "MCPGW_TEST_REDIS_URL"

// URL returns the test server's URL. Without one the test is skipped, except
// when CI=true, where a missing server is a failure.
func URL(tb testing.TB) string {
	tb.Helper()
	u := os.Getenv(EnvURL)
	if u == "" {
		if os.Getenv("CI") == "true" {
			tb.Fatal(EnvURL + " is not set (required when CI=true)")
		}
		tb.Skip(EnvURL + " not set: skipping a test that needs a real redis-server")
	}
	return u
}

// Open connects a store to the test server under a fresh prefix
// ("mcpgwtest:<name>:<random>:") and removes its keys at the end of the test.
func Open(tb testing.TB, name string) *redisstore.Store {
	tb.Helper()
	return OpenURL(tb, URL(tb), name)
}

// OpenURL is Open on a given server URL.
func OpenURL(tb testing.TB, url, name string) *redisstore.Store {
	tb.Helper()
	prefix := "mcpgwtest:" + name + ":" + token.Random(6) + ":"
	s, err := redisstore.New(context.Background(), url, prefix)
	if err != nil {
		tb.Fatalf("%s: %v", EnvURL, err)
	}
	tb.Cleanup(func() {
		_ = s.Close()
		Clean(tb, url, prefix)
	})
	return s
}

// Clean deletes every key under prefix (on every primary of a cluster).
func Clean(tb testing.TB, url, prefix string) {
	rdb, _, err := redisstore.Dial(url)
	if err != nil {
		tb.Errorf("redistest: %v", err)
		return
	}
	defer rdb.Close()
	ctx := context.Background()
	clean := func(ctx context.Context, c *redis.Client) error {
		var keys []string
		for it := c.Scan(ctx, 0, prefix+"*", 500).Iterator(); it.Next(ctx); {
			keys = append(keys, it.Val())
		}
		pipe := c.Pipeline()
		for _, k := range keys { // one DEL each: keys may sit in different slots
			pipe.Del(ctx, k)
		}
		_, err := pipe.Exec(ctx)
		return err
	}
	switch c := rdb.(type) {
	case *redis.ClusterClient:
		_ = c.ForEachMaster(ctx, clean)
	case *redis.Client:
		_ = clean(ctx, c)
	}
}
