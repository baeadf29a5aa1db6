package memstore_test

import (
	"sync"
	"testing"
	"time"

	"github.com/mcpgateway/mcp-gateway/store"
	"github.com/mcpgateway/mcp-gateway/store/memstore"
	"github.com/mcpgateway/mcp-gateway/store/storetest"
)

// fakeClock lets the suite pass TTLs without sleeping.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func TestContract(t *testing.T) {
	storetest.RunBackend(t, func(t *testing.T) storetest.Backend {
		clk := &fakeClock{now: time.Now()}
		s := memstore.NewWithClock(clk.Now)
		t.Cleanup(func() { _ = s.Close() })
		return storetest.Backend{Store: s, Now: clk.Now, Advance: clk.Advance}
	})
}

// The suite on the real clock too (short real sleeps in the expiry test).
func TestContractWallClock(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s := memstore.New()
		t.Cleanup(func() { _ = s.Close() })
		return s
	})
}
