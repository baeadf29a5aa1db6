package login

import (
	"context"
	"os"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/mcpgateway/mcp-gateway/store"
	"github.com/mcpgateway/mcp-gateway/store/storeopen"
	"github.com/mcpgateway/mcp-gateway/token"
)

// With MCPGW_TEST_REDIS_URL set, every gateway in these tests keeps its
// pending requests and assertion markers in that Redis, under its own key
// prefix (removed afterwards).
func init() {
	rawURL := os.Getenv("MCPGW_TEST_REDIS_URL")
	if rawURL == "" {
		return
	}
	storeFactory = func(tb testing.TB) store.Store {
		ctx := context.Background()
		prefix := "mcpgw-test-login:" + token.Random(6) + ":"
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
			var keys []string
			for iter := rdb.Scan(ctx, 0, prefix+"*", 500).Iterator(); iter.Next(ctx); {
				keys = append(keys, iter.Val())
			}
			if len(keys) > 0 {
				rdb.Del(ctx, keys...)
			}
		})
		return s
	}
}
