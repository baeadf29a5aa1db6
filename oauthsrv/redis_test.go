package oauthsrv

import (
	"os"
	"testing"
	"time"

	"github.com/mcpgateway/mcp-gateway/store"
	"github.com/mcpgateway/mcp-gateway/store/redistest"
)

// With MCPGW_TEST_REDIS_URL set, every test and BenchmarkCodeToToken run on
// that Redis, each server under its own key prefix (removed afterwards).
func init() {
	if os.Getenv(redistest.EnvURL) == "" {
		return
	}
	storeFactory = func(tb testing.TB, _ func() time.Time) store.Store {
		return redistest.Open(tb, "oauthsrv")
	}
}
