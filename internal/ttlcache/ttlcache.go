// Package ttlcache is the one cache the gateway puts in front of slow
// lookups (store reads in authz, CIMD documents, OIDC discovery): a bounded
// TTL map whose concurrent misses for one key share one load.
package ttlcache

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Cache is a bounded TTL map. Misses for the same key share one load; a nil
// value is a cached "not found" (kept for the shorter negative TTL). Expired
// entries are never served: once the TTL is over the source must answer
// again, so an outage fails closed instead of serving stale grants forever.
type Cache[V any] struct {
	ttl, negTTL time.Duration
	ttlOf       func(*V) time.Duration
	max         int
	hit, miss   prometheus.Counter

	mu       sync.RWMutex
	m        map[string]*entry[V]
	negs     int // "not found" entries in m, at most max/2
	inflight map[string]*call[V]
	// gen moves on every invalidation; a load that started before one must
	// not store its (possibly stale) answer.
	gen atomic.Uint64
}

type entry[V any] struct {
	v   *V // nil: not found
	exp int64
}

type call[V any] struct {
	done chan struct{}
	v    *V
	err  error
}

// Options configure a Cache. Hit and Miss count lookups (both required).
type Options[V any] struct {
	// TTL keeps a found value, NegTTL a "not found" (nil) answer.
	TTL, NegTTL time.Duration
	// TTLOf, when set, gives each found value its own lifetime instead of
	// TTL (e.g. from HTTP caching headers); 0 or less: not kept.
	TTLOf func(*V) time.Duration
	// Max bounds the number of entries.
	Max       int
	Hit, Miss prometheus.Counter
}

// New returns an empty cache.
func New[V any](o Options[V]) *Cache[V] {
	return &Cache[V]{
		ttl: o.TTL, negTTL: o.NegTTL, ttlOf: o.TTLOf, max: max(o.Max, 1),
		hit: o.Hit, miss: o.Miss,
		m:        make(map[string]*entry[V]),
		inflight: make(map[string]*call[V]),
	}
}

// Peek is the allocation-free fast path: a live entry for key, if any
// (a nil value with true: known not found).
func (c *Cache[V]) Peek(key string, now time.Time) (*V, bool) {
	c.mu.RLock()
	e, ok := c.m[key]
	c.mu.RUnlock()
	if ok && now.UnixNano() < e.exp {
		c.hit.Inc()
		return e.v, true
	}
	return nil, false
}

// Lookup is Peek without counting a hit: for bookkeeping reads (metrics
// labels) that must not skew the cache's hit ratio.
func (c *Cache[V]) Lookup(key string, now time.Time) (*V, bool) {
	c.mu.RLock()
	e, ok := c.m[key]
	c.mu.RUnlock()
	if ok && now.UnixNano() < e.exp {
		return e.v, true
	}
	return nil, false
}

// PeekBytes is Peek without converting key to a string (m[string(b)]
// does not copy).
func (c *Cache[V]) PeekBytes(key []byte, now time.Time) (*V, bool) {
	c.mu.RLock()
	e, ok := c.m[string(key)]
	c.mu.RUnlock()
	if ok && now.UnixNano() < e.exp {
		c.hit.Inc()
		return e.v, true
	}
	return nil, false
}

// Get returns the cached value (nil = known not found) or loads it with
// load, which must return (nil, nil) for not found; errors are not kept.
// load runs detached from ctx (bound it with its own timeout) so one caller
// giving up does not fail the others waiting on the same load; the caller
// that gives up gets ctx.Err().
func (c *Cache[V]) Get(ctx context.Context, key string, now time.Time, load func(context.Context) (*V, error)) (*V, error) {
	n := now.UnixNano()
	c.mu.RLock()
	e, ok := c.m[key]
	c.mu.RUnlock()
	if ok && n < e.exp {
		c.hit.Inc()
		return e.v, nil
	}
	c.miss.Inc()

	c.mu.Lock()
	// Checked again under the write lock: a load that ended between the
	// read above and here has stored its value, and must not run twice.
	if e, ok := c.m[key]; ok && n < e.exp {
		c.mu.Unlock()
		return e.v, nil
	}
	cl, running := c.inflight[key]
	if !running {
		cl = &call[V]{done: make(chan struct{})}
		c.inflight[key] = cl
		gen := c.gen.Load()
		c.mu.Unlock()
		go c.run(context.WithoutCancel(ctx), key, n, gen, cl, load)
	} else {
		c.mu.Unlock()
	}
	select {
	case <-cl.done:
		return cl.v, cl.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (c *Cache[V]) run(ctx context.Context, key string, n int64, gen uint64, cl *call[V], load func(context.Context) (*V, error)) {
	cl.v, cl.err = load(ctx)
	c.mu.Lock()
	delete(c.inflight, key)
	// A flood of unknown keys must not push out the known ones: "not
	// found" answers take at most half the cache and are otherwise just
	// not remembered.
	if ttl := c.ttlFor(cl.v); cl.err == nil && ttl > 0 && c.gen.Load() == gen && (cl.v != nil || c.negs < c.max/2) {
		c.evictLocked(n)
		c.deleteLocked(key)
		c.m[key] = &entry[V]{v: cl.v, exp: n + int64(ttl)}
		if cl.v == nil {
			c.negs++
		}
	}
	c.mu.Unlock()
	close(cl.done)
}

func (c *Cache[V]) ttlFor(v *V) time.Duration {
	switch {
	case v == nil:
		return c.negTTL
	case c.ttlOf != nil:
		return c.ttlOf(v)
	}
	return c.ttl
}

// evictLocked makes room for one entry: expired entries first, else an
// arbitrary one (map iteration order is randomised).
func (c *Cache[V]) evictLocked(n int64) {
	if len(c.m) < c.max {
		return
	}
	scanned := 0
	for k, e := range c.m {
		if n >= e.exp {
			c.deleteLocked(k)
		}
		if scanned++; scanned >= 64 {
			break
		}
	}
	for k := range c.m {
		if len(c.m) < c.max {
			return
		}
		c.deleteLocked(k)
	}
}

func (c *Cache[V]) deleteLocked(key string) {
	if e, ok := c.m[key]; ok {
		if e.v == nil {
			c.negs--
		}
		delete(c.m, key)
	}
}

// Invalidate drops key ("" drops everything); a load under way when it is
// called does not store its answer.
func (c *Cache[V]) Invalidate(key string) {
	c.mu.Lock()
	c.gen.Add(1)
	if key == "" {
		clear(c.m)
		c.negs = 0
	} else {
		c.deleteLocked(key)
	}
	c.mu.Unlock()
}

// Len is the number of entries, live or expired but not yet evicted.
func (c *Cache[V]) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.m)
}

// Gen is the invalidation count (tests wait on it to see an event applied).
func (c *Cache[V]) Gen() uint64 { return c.gen.Load() }
