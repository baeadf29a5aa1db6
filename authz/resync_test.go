package authz

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/mcpgateway/mcp-gateway/store"
	"github.com/mcpgateway/mcp-gateway/store/memstore"
)

// deafStore delivers no events by itself: the test plays the subscription,
// as when a Redis pub/sub connection drops and comes back.
type deafStore struct {
	*memstore.Store
	mu sync.Mutex
	fn func(store.Event)
}

func (d *deafStore) Subscribe(_ context.Context, fn func(store.Event)) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.fn = fn
	return nil
}

func (d *deafStore) deliver(e store.Event) {
	d.mu.Lock()
	fn := d.fn
	d.mu.Unlock()
	fn(e)
}

// After a lost subscription, a resync event must heal what was missed at once,
// not at the next resync tick or cache expiry.
func TestResyncEventHealsMissedEvents(t *testing.T) {
	st := &deafStore{Store: memstore.New()}
	t.Cleanup(func() { _ = st.Close() })
	seedAgents(t, st)
	e := newEnvOn(t, st, func(o *Options) { o.ResyncInterval = time.Hour; o.CacheTTL = time.Hour })
	tok := e.mint("t", "alice", aud(pub+"/alpha/mcp"))
	key := e.addKey("k", "bak_", store.APIKey{Kind: store.KeyAgent, Agent: "alpha", User: "alice"})
	h := func(cred string) map[string]string { return map[string]string{"authorization": "Bearer " + cred} }
	for _, cred := range []string{tok, key} {
		if d := decideDirect(e.a, "POST", "/alpha/mcp", h(cred)); !d.Allow {
			t.Fatalf("before: %d %s", d.Status, d.Reason)
		}
	}
	claims, err := e.ring.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := st.RevokeJTI(ctx, claims.ID, claims.ExpiresAt.Time); err != nil {
		t.Fatal(err)
	}
	keys, _ := st.ListKeys(ctx)
	if _, err := st.RevokeKey(ctx, keys[0].ID); err != nil {
		t.Fatal(err)
	}
	// Both events were missed: the stale answers prove the test's premise.
	for _, cred := range []string{tok, key} {
		if d := decideDirect(e.a, "POST", "/alpha/mcp", h(cred)); !d.Allow {
			t.Fatalf("missed event already applied (%s): the test proves nothing", d.Reason)
		}
	}
	st.deliver(store.Event{Kind: store.EventResync})
	for name, cred := range map[string]string{"revoked jwt": tok, "revoked key": key} {
		eventually(t, name+" denied after resync", func() bool {
			d := decideDirect(e.a, "POST", "/alpha/mcp", h(cred))
			return !d.Allow && d.Status == 401
		})
	}
}
