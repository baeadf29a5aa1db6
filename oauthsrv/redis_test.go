package oauthsrv

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mcpgateway/mcp-gateway/store"
	"github.com/mcpgateway/mcp-gateway/store/storeopen"
	"github.com/mcpgateway/mcp-gateway/token"
)

// With MCPGW_TEST_REDIS_URL set, every test and BenchmarkCodeToToken run on
// that Redis, each server under its own key prefix (removed afterwards).
func init() {
	rawURL := os.Getenv("MCPGW_TEST_REDIS_URL")
	if rawURL == "" {
		return
	}
	storeFactory = func(tb testing.TB, _ func() time.Time) store.Store {
		ctx := context.Background()
		prefix := "mcpgw-test-oauthsrv:" + token.Random(6) + ":"
		s, err := storeopen.Open(ctx, rawURL, prefix)
		if err != nil {
			tb.Fatalf("MCPGW_TEST_REDIS_URL: %v", err)
		}
		tb.Cleanup(func() {
			_ = s.Close()
			opt, err := redis.ParseURL(rawURL)
			if err != nil {
				return
			}
			rdb := redis.NewClient(opt)
			defer rdb.Close()
			iter := rdb.Scan(ctx, 0, prefix+"*", 500).Iterator()
			var keys []string
			for iter.Next(ctx) {
				keys = append(keys, iter.Val())
			}
			for len(keys) > 0 {
				n := min(len(keys), 500)
				rdb.Del(ctx, keys[:n]...)
				keys = keys[n:]
			}
		})
		return s
	}
}
