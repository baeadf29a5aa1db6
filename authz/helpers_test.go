package authz

import (
	"context"
	"crypto/ecdsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/mcpgateway/mcp-gateway/assertion"
	"github.com/mcpgateway/mcp-gateway/internal/logtest"
	"github.com/mcpgateway/mcp-gateway/store"
	"github.com/mcpgateway/mcp-gateway/store/memstore"
	"github.com/mcpgateway/mcp-gateway/token"
)

const pub = "http://127.0.0.1:8000"

var (
	secret1 = []byte("0123456789abcdef0123456789abcdef-k1")
	secret2 = []byte("fedcba9876543210fedcba9876543210-k2")
)

func newRing(t testing.TB) *token.Ring {
	t.Helper()
	r, err := token.NewRing(pub, []token.Key{{ID: "k1", Secret: secret1}, {ID: "k2", Secret: secret2}})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// assertionKey is the env's assertion key ("a1"), made once.
var assertionKey = sync.OnceValue(func() *ecdsa.PrivateKey {
	k, err := assertion.GenerateKey()
	if err != nil {
		panic(err)
	}
	return k
})

// newSigner signs with assertionKey.
func newSigner(t testing.TB, tweak ...func(*assertion.Options)) *assertion.Signer {
	t.Helper()
	o := assertion.Options{Issuer: pub, Keys: []assertion.Key{{ID: "a1", Private: assertionKey()}}}
	for _, f := range tweak {
		f(&o)
	}
	s, err := assertion.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// env is one gateway (Authorizer) over a memstore seeded with agents and keys.
type env struct {
	t    testing.TB
	ctx  context.Context
	st   store.Store // seeded directly, as the admin API would
	ring *token.Ring
	a    *Authorizer
	logs *logtest.Buffer
	keys map[string]string // name → raw key
	toks map[string]string // name → raw JWT
}

var staticAgents = []store.Agent{{AgentSpec: store.AgentSpec{ID: "demo", Owner: "demo", Upstream: "http://127.0.0.1:9999"}}}

func seedAgents(t testing.TB, st store.Store) {
	t.Helper()
	ctx := context.Background()
	for _, ag := range []*store.Agent{
		{AgentSpec: store.AgentSpec{ID: "alpha", Owner: "alice", Users: []string{"bob"}}},
		// As long as "alpha": only the agent comparison tells their audiences apart.
		{AgentSpec: store.AgentSpec{ID: "bravo", Owner: "alice"}},
		{AgentSpec: store.AgentSpec{ID: "scoped", Owner: "alice", Scopes: []string{"mcp:admin"}}},
		// The config's static "demo" must win over this one.
		{AgentSpec: store.AgentSpec{ID: "demo", Owner: "mallory"}},
	} {
		if err := st.PutAgent(ctx, ag); err != nil {
			t.Fatal(err)
		}
	}
}

func newEnv(t testing.TB, tweak ...func(*Options)) *env {
	t.Helper()
	st := memstore.New()
	t.Cleanup(func() { _ = st.Close() })
	seedAgents(t, st)
	return newEnvOn(t, st, tweak...)
}

// newEnvOn builds an Authorizer on st (shared between replicas in tests).
func newEnvOn(t testing.TB, st store.Store, tweak ...func(*Options)) *env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	e := &env{t: t, ctx: ctx, st: st, ring: newRing(t), logs: &logtest.Buffer{}, keys: map[string]string{}, toks: map[string]string{}}
	opts := Options{
		PublicURL:     pub + "/", // trailing slash is tolerated
		Scopes:        []string{"mcp"},
		Ring:          e.ring,
		Store:         st,
		StaticAgents:  staticAgents,
		Assertions:    newSigner(t),
		TouchInterval: 50 * time.Millisecond,
		Logger:        slog.New(slog.NewJSONHandler(e.logs, nil)),
	}
	for _, f := range tweak {
		f(&opts)
	}
	a, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	e.a = a
	return e
}

// addKey stores a key record and remembers the raw key under name.
func (e *env) addKey(name, prefix string, k store.APIKey) string {
	e.t.Helper()
	raw, hash := token.NewAPIKey(prefix)
	k.ID, k.Hash = "key-"+name, hash
	if k.CreatedAt.IsZero() {
		k.CreatedAt = time.Now()
	}
	if err := e.st.CreateKey(context.Background(), &k); err != nil {
		e.t.Fatal(err)
	}
	e.keys[name] = raw
	return raw
}

type claimOpt func(*token.Claims)

func aud(a ...string) claimOpt  { return func(c *token.Claims) { c.Audience = a } }
func scope(s string) claimOpt   { return func(c *token.Claims) { c.Scope = s } }
func client(id string) claimOpt { return func(c *token.Claims) { c.ClientID = id } }
func family(id string) claimOpt { return func(c *token.Claims) { c.Family = id } }
func expIn(d time.Duration) claimOpt {
	return func(c *token.Claims) { c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(d)) }
}

func baseClaims(sub string, opts ...claimOpt) *token.Claims {
	c := &token.Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   sub,
			ID:        token.Random(12),
			Audience:  jwt.ClaimStrings{pub},
			IssuedAt:  jwt.NewNumericDate(time.Now()),
			ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour)),
		},
		ClientID: "client-" + sub,
		Scope:    "mcp",
		Family:   "fam-" + token.Random(8), // as the token endpoint mints them
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

// mint signs with the ring and remembers the token under name.
func (e *env) mint(name, sub string, opts ...claimOpt) string {
	e.t.Helper()
	s, err := e.ring.Mint(baseClaims(sub, opts...))
	if err != nil {
		e.t.Fatal(err)
	}
	if name != "" {
		e.toks[name] = s
	}
	return s
}

// signWith signs claims with any method/key/kid, bypassing the ring.
func signWith(t testing.TB, m jwt.SigningMethod, key any, kid string, c *token.Claims) string {
	t.Helper()
	c.Issuer = pub
	tk := jwt.NewWithClaims(m, c)
	if kid != "" {
		tk.Header["kid"] = kid
	}
	s, err := tk.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// tamper swaps the payload of a signed token, keeping header and signature.
func tamper(t testing.TB, tok string, edit func(map[string]any)) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	b, _ = json.Marshal(m)
	parts[1] = base64.RawURLEncoding.EncodeToString(b)
	return strings.Join(parts, ".")
}

// decideDirect calls the core with a plain header map (keys lower-case).
func decideDirect(a *Authorizer, method, path string, h map[string]string) *Decision {
	return a.Decide(context.Background(), &Request{
		Method: method,
		Path:   path,
		Header: func(n string) string { return h[n] },
		HeaderNames: func(yield func(string) bool) {
			for k := range h {
				if !yield(k) {
					return
				}
			}
		},
	})
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// challengeParams parses `Bearer k="v", k2="v2"` (no escapes in our values).
func challengeParams(t testing.TB, h string) map[string]string {
	t.Helper()
	rest, ok := strings.CutPrefix(h, "Bearer ")
	if !ok {
		t.Fatalf("challenge %q: not Bearer", h)
	}
	out := map[string]string{}
	for rest != "" {
		k, v, ok := strings.Cut(rest, `="`)
		if !ok {
			t.Fatalf("challenge %q: bad param near %q", h, rest)
		}
		val, after, ok := strings.Cut(v, `"`)
		if !ok {
			t.Fatalf("challenge %q: unterminated value", h)
		}
		if _, dup := out[k]; dup {
			t.Fatalf("challenge %q: %s twice", h, k)
		}
		out[k] = val
		rest = strings.TrimPrefix(after, ", ")
	}
	return out
}

// fakeClock is a settable Options.Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: time.Now()} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// flakyStore wraps a real store and can fail, hang or pause lookups.
type flakyStore struct {
	Store
	down    atomic.Bool // every call fails with store.ErrUnavailable
	hang    atomic.Bool // every call blocks until its context ends
	gate    chan struct{}
	gets    atomic.Int64 // GetKeyByHash calls
	agents  atomic.Int64 // GetAgent calls
	touchMu sync.Mutex
	touches []map[string]time.Time
}

func (f *flakyStore) fail(ctx context.Context) error {
	if f.hang.Load() {
		<-ctx.Done()
		return fmt.Errorf("redis: i/o timeout: %w: %w", store.ErrUnavailable, ctx.Err())
	}
	if f.down.Load() {
		return fmt.Errorf("redis: connection refused: %w", store.ErrUnavailable)
	}
	return nil
}

func (f *flakyStore) GetKeyByHash(ctx context.Context, h string) (*store.APIKey, error) {
	f.gets.Add(1)
	if err := f.fail(ctx); err != nil {
		return nil, err
	}
	k, err := f.Store.GetKeyByHash(ctx, h)
	if f.gate != nil {
		<-f.gate // answer read, reply held back
	}
	return k, err
}

func (f *flakyStore) GetAgent(ctx context.Context, id string) (*store.Agent, error) {
	f.agents.Add(1)
	if err := f.fail(ctx); err != nil {
		return nil, err
	}
	return f.Store.GetAgent(ctx, id)
}

func (f *flakyStore) RevokedJTIs(ctx context.Context) (map[string]time.Time, error) {
	if err := f.fail(ctx); err != nil {
		return nil, err
	}
	return f.Store.RevokedJTIs(ctx)
}

func (f *flakyStore) TouchKeys(ctx context.Context, used map[string]time.Time) error {
	f.touchMu.Lock()
	f.touches = append(f.touches, maps.Clone(used))
	f.touchMu.Unlock()
	if err := f.fail(ctx); err != nil {
		return err
	}
	return f.Store.TouchKeys(ctx, used)
}

func (f *flakyStore) touchBatches() []map[string]time.Time {
	f.touchMu.Lock()
	defer f.touchMu.Unlock()
	return slices.Clone(f.touches)
}
