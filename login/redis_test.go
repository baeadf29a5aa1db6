package login

import (
	"os"
	"testing"

	"github.com/mcpgateway/mcp-gateway/store"
	"github.com/mcpgateway/mcp-gateway/store/redistest"
)

// With MCPGW_TEST_REDIS_URL set, every gateway in these tests keeps its
// pending requests and assertion markers in that Redis, under its own key
// prefix (removed afterwards).
func init() {
	if os.Getenv(redistest.EnvURL) == "" {
		return
	}
	storeFactory = func(tb testing.TB) store.Store {
		return redistest.Open(tb, "login")
	}
}
