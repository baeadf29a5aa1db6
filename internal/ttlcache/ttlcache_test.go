package ttlcache

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func newTest[V any](o Options[V]) *Cache[V] {
	o.Hit = prometheus.NewCounter(prometheus.CounterOpts{Name: "hit"})
	o.Miss = prometheus.NewCounter(prometheus.CounterOpts{Name: "miss"})
	return New(o)
}

type doc struct {
	n   int
	ttl time.Duration
}

func TestTTLOfPerValue(t *testing.T) {
	c := newTest(Options[doc]{TTLOf: func(d *doc) time.Duration { return d.ttl }, Max: 10})
	now := time.Unix(1000, 0)
	var loads atomic.Int32
	load := func(ttl time.Duration) func(context.Context) (*doc, error) {
		return func(context.Context) (*doc, error) { return &doc{n: int(loads.Add(1)), ttl: ttl}, nil }
	}
	ctx := t.Context()
	if _, err := c.Get(ctx, "a", now, load(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if d, ok := c.Peek("a", now.Add(59*time.Second)); !ok || d.n != 1 {
		t.Fatalf("Peek within its ttl = %v, %v", d, ok)
	}
	if _, ok := c.Peek("a", now.Add(time.Minute)); ok {
		t.Fatal("served after its own ttl")
	}
	if _, err := c.Get(ctx, "b", now, load(0)); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Peek("b", now); ok {
		t.Fatal("a value with ttl 0 was kept")
	}
}

func TestErrorsNotKeptAndLoadsShared(t *testing.T) {
	c := newTest(Options[doc]{TTL: time.Minute, NegTTL: time.Second, Max: 10})
	now := time.Unix(1000, 0)
	boom := errors.New("boom")
	if _, err := c.Get(t.Context(), "k", now, func(context.Context) (*doc, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	if _, ok := c.Peek("k", now); ok {
		t.Fatal("an error was cached")
	}
	gate := make(chan struct{})
	var loads atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			d, err := c.Get(t.Context(), "k", now, func(context.Context) (*doc, error) {
				loads.Add(1)
				<-gate
				return &doc{n: 7}, nil
			})
			if err != nil || d.n != 7 {
				t.Errorf("Get = %v, %v", d, err)
			}
		})
	}
	for c.inflightLen() == 0 {
		time.Sleep(time.Millisecond)
	}
	close(gate)
	wg.Wait()
	if n := loads.Load(); n != 1 {
		t.Fatalf("%d loads for one key, want 1", n)
	}
}

// A caller that gives up must not fail the others waiting on the load.
func TestCancelledCallerDoesNotFailLoad(t *testing.T) {
	c := newTest(Options[doc]{TTL: time.Minute, Max: 10})
	now := time.Unix(1000, 0)
	gate := make(chan struct{})
	ctx, cancel := context.WithCancel(t.Context())
	first := make(chan error)
	go func() {
		_, err := c.Get(ctx, "k", now, func(ctx context.Context) (*doc, error) {
			<-gate
			return &doc{n: 1}, ctx.Err()
		})
		first <- err
	}()
	for c.inflightLen() == 0 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled caller got %v", err)
	}
	close(gate)
	d, err := c.Get(t.Context(), "k", now, func(context.Context) (*doc, error) { return nil, errors.New("second load") })
	if err != nil || d.n != 1 {
		t.Fatalf("waiter got %v, %v; want the first load's value", d, err)
	}
}

func (c *Cache[V]) inflightLen() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.inflight)
}
