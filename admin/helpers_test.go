package admin

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mcpgateway/mcp-gateway/internal/logtest"
	"github.com/mcpgateway/mcp-gateway/store"
	"github.com/mcpgateway/mcp-gateway/store/memstore"
)

const testToken = "admin-token-0123456789abcdef0123456789"

// fixedNow is the server clock in tests, so expiries are exact. It is near
// the wall clock because memstore judges expiry by the wall clock.
var fixedNow = time.Now().UTC().Truncate(time.Second)

type testEnv struct {
	mem  *memstore.Store
	srv  *httptest.Server
	logs *logtest.Buffer
}

var staticDemo = store.Agent{AgentSpec: store.AgentSpec{ID: "static-demo", Name: "Static demo", Owner: "demo", Upstream: "http://127.0.0.1:3000/mcp", Scopes: []string{"mcp", "tools"}}}

// newEnv starts an admin server on 127.0.0.1 over a fresh memstore. wrap,
// when set, may replace the store the server sees (fault injection) and
// adjust the options.
func newEnv(t *testing.T, wrap func(*Options)) *testEnv {
	t.Helper()
	mem := memstore.New()
	t.Cleanup(func() { _ = mem.Close() })
	logs := &logtest.Buffer{}
	opts := Options{
		Token:        testToken,
		Store:        mem,
		StaticAgents: []store.Agent{staticDemo},
		Logger:       slog.New(slog.NewJSONHandler(logs, nil)),
		Now:          func() time.Time { return fixedNow },
	}
	if wrap != nil {
		wrap(&opts)
	}
	srv := httptest.NewServer(New(opts).Handler())
	t.Cleanup(srv.Close)
	return &testEnv{mem: mem, srv: srv, logs: logs}
}

// call sends a request with the admin token (token "" = none) and returns
// status, headers and body.
func (e *testEnv) call(t *testing.T, method, path, token, body string) (int, http.Header, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, e.srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

// api is call with the right token, expecting status want.
func (e *testEnv) api(t *testing.T, method, path, body string, want int) []byte {
	t.Helper()
	status, _, b := e.call(t, method, path, testToken, body)
	if status != want {
		t.Fatalf("%s %s: status %d, want %d; body %s", method, path, status, want, b)
	}
	return b
}

// errorMessage decodes an ErrorBody and checks it contains want.
func errorMessage(t *testing.T, b []byte, want string) {
	t.Helper()
	var eb ErrorBody
	if err := json.Unmarshal(b, &eb); err != nil {
		t.Fatalf("error body is not JSON: %q: %v", b, err)
	}
	if !strings.Contains(eb.Error, want) {
		t.Fatalf("error %q does not mention %q", eb.Error, want)
	}
}

func decode[T any](t *testing.T, b []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("decode %T from %q: %v", v, b, err)
	}
	return v
}

// faultyStore fails chosen calls the way a backend outage does.
type faultyStore struct {
	Store
	err       error // returned by every data call when set
	pingErr   error
	pingBlock bool // Ping waits for its context to end
}

func (f *faultyStore) Ping(ctx context.Context) error {
	if f.pingBlock {
		<-ctx.Done()
		return ctx.Err()
	}
	if f.pingErr != nil {
		return f.pingErr
	}
	return f.Store.Ping(ctx)
}

func (f *faultyStore) GetAgent(ctx context.Context, id string) (*store.Agent, error) {
	if f.err != nil {
		return nil, f.err
	}
	return f.Store.GetAgent(ctx, id)
}

func (f *faultyStore) ListAgents(ctx context.Context) ([]*store.Agent, error) {
	if f.err != nil {
		return nil, f.err
	}
	return f.Store.ListAgents(ctx)
}

func (f *faultyStore) PutAgent(ctx context.Context, a *store.Agent) error {
	if f.err != nil {
		return f.err
	}
	return f.Store.PutAgent(ctx, a)
}

func (f *faultyStore) CreateAgent(ctx context.Context, a *store.Agent) error {
	if f.err != nil {
		return f.err
	}
	return f.Store.CreateAgent(ctx, a)
}

func (f *faultyStore) DeleteAgent(ctx context.Context, id string) error {
	if f.err != nil {
		return f.err
	}
	return f.Store.DeleteAgent(ctx, id)
}

func (f *faultyStore) CreateKey(ctx context.Context, k *store.APIKey) error {
	if f.err != nil {
		return f.err
	}
	return f.Store.CreateKey(ctx, k)
}

func (f *faultyStore) ListKeys(ctx context.Context) ([]*store.APIKey, error) {
	if f.err != nil {
		return nil, f.err
	}
	return f.Store.ListKeys(ctx)
}

func (f *faultyStore) RevokeKey(ctx context.Context, id string) (*store.APIKey, error) {
	if f.err != nil {
		return nil, f.err
	}
	return f.Store.RevokeKey(ctx, id)
}

func (f *faultyStore) ListClients(ctx context.Context) ([]*store.Client, error) {
	if f.err != nil {
		return nil, f.err
	}
	return f.Store.ListClients(ctx)
}

func (f *faultyStore) DeleteClient(ctx context.Context, id string) error {
	if f.err != nil {
		return f.err
	}
	return f.Store.DeleteClient(ctx, id)
}

func (f *faultyStore) RevokeJTI(ctx context.Context, jti string, exp time.Time) error {
	if f.err != nil {
		return f.err
	}
	return f.Store.RevokeJTI(ctx, jti, exp)
}
