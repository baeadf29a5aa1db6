package cli

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/mcpgateway/mcp-gateway/admin"
	"github.com/mcpgateway/mcp-gateway/store"
	"github.com/mcpgateway/mcp-gateway/store/memstore"
)

const testToken = "admin-token-0123456789abcdef0123456789"

// fixedNow is the server clock in tests, so expiries are exact. It is near
// the wall clock because memstore judges expiry by the wall clock.
var fixedNow = time.Now().UTC().Truncate(time.Second)

var staticDemo = store.Agent{AgentSpec: store.AgentSpec{ID: "static-demo", Name: "Static demo", Owner: "demo", Upstream: "http://127.0.0.1:3000/mcp", Scopes: []string{"mcp", "tools"}}}

// testEnv is a real admin server on 127.0.0.1 over a fresh memstore, for
// the CLI to talk to.
type testEnv struct {
	mem *memstore.Store
	srv *httptest.Server
}

// newEnv starts the admin server; wrap, when set, adjusts its options.
func newEnv(t *testing.T, wrap func(*admin.Options)) *testEnv {
	t.Helper()
	mem := memstore.New()
	t.Cleanup(func() { _ = mem.Close() })
	opts := admin.Options{
		Token:        testToken,
		Store:        mem,
		StaticAgents: []store.Agent{staticDemo},
		Logger:       slog.New(slog.NewJSONHandler(io.Discard, nil)),
		Now:          func() time.Time { return fixedNow },
	}
	if wrap != nil {
		wrap(&opts)
	}
	srv := httptest.NewServer(admin.New(opts).Handler())
	t.Cleanup(srv.Close)
	return &testEnv{mem: mem, srv: srv}
}

func decode[T any](t *testing.T, b []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("decode %T from %q: %v", v, b, err)
	}
	return v
}
