package authz

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mcpgateway/mcp-gateway/metrics"
	"github.com/mcpgateway/mcp-gateway/store"
	"github.com/mcpgateway/mcp-gateway/token"
)

// cache is a small bounded TTL map in front of the store for API keys and
// agents. Misses for the same key share one store call; a nil value is a
// cached "not found" (kept for the shorter negative TTL). Expired entries are
// never served: once the TTL is over the store must answer again, so an
// outage fails closed instead of serving stale grants forever.
type cache[V any] struct {
	ttl, negTTL time.Duration
	max         int
	hit, miss   prometheus.Counter

	mu       sync.RWMutex
	m        map[string]*cacheEntry[V]
	negs     int // "not found" entries in m, at most max/2
	inflight map[string]*cacheCall[V]
	// gen moves on every invalidation; a load that started before one must
	// not store its (possibly stale) answer.
	gen atomic.Uint64
}

type cacheEntry[V any] struct {
	v   *V // nil: not found
	exp int64
}

type cacheCall[V any] struct {
	done chan struct{}
	v    *V
	err  error
}

func newCache[V any](name string, ttl, negTTL time.Duration, max int) *cache[V] {
	return &cache[V]{
		ttl: ttl, negTTL: negTTL, max: max,
		hit:      metrics.CacheLookups.WithLabelValues(name, "hit"),
		miss:     metrics.CacheLookups.WithLabelValues(name, "miss"),
		m:        make(map[string]*cacheEntry[V]),
		inflight: make(map[string]*cacheCall[V]),
	}
}

// peek is the allocation-free fast path: a live entry for key, if any.
func (c *cache[V]) peek(key string, now time.Time) (*V, bool) {
	c.mu.RLock()
	e, ok := c.m[key]
	c.mu.RUnlock()
	if ok && now.UnixNano() < e.exp {
		c.hit.Inc()
		return e.v, true
	}
	return nil, false
}

// peekBytes is peek without converting key to a string (m[string(b)]
// does not copy).
func (c *cache[V]) peekBytes(key []byte, now time.Time) (*V, bool) {
	c.mu.RLock()
	e, ok := c.m[string(key)]
	c.mu.RUnlock()
	if ok && now.UnixNano() < e.exp {
		c.hit.Inc()
		return e.v, true
	}
	return nil, false
}

// get returns the cached value (nil = known not found) or loads it with
// load, which must return (nil, nil) for not found. load runs detached from
// ctx (bounded by its own timeout) so one caller giving up does not fail
// the others waiting on the same call.
func (c *cache[V]) get(ctx context.Context, key string, now time.Time, load func(context.Context) (*V, error)) (*V, error) {
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
	call, running := c.inflight[key]
	if !running {
		call = &cacheCall[V]{done: make(chan struct{})}
		c.inflight[key] = call
		gen := c.gen.Load()
		c.mu.Unlock()
		go c.run(context.WithoutCancel(ctx), key, n, gen, call, load)
	} else {
		c.mu.Unlock()
	}
	select {
	case <-call.done:
		return call.v, call.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (c *cache[V]) run(ctx context.Context, key string, n int64, gen uint64, call *cacheCall[V], load func(context.Context) (*V, error)) {
	call.v, call.err = load(ctx)
	c.mu.Lock()
	delete(c.inflight, key)
	// A flood of unknown keys must not push out the known ones: "not
	// found" answers take at most half the cache and are otherwise just
	// not remembered.
	if call.err == nil && c.gen.Load() == gen && (call.v != nil || c.negs < c.max/2) {
		ttl := c.ttl
		if call.v == nil {
			ttl = c.negTTL
		}
		c.evictLocked(n)
		c.deleteLocked(key)
		c.m[key] = &cacheEntry[V]{v: call.v, exp: n + int64(ttl)}
		if call.v == nil {
			c.negs++
		}
	}
	c.mu.Unlock()
	close(call.done)
}

// evictLocked makes room for one entry: expired entries first, else an
// arbitrary one (map iteration order is randomised).
func (c *cache[V]) evictLocked(n int64) {
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

func (c *cache[V]) deleteLocked(key string) {
	if e, ok := c.m[key]; ok {
		if e.v == nil {
			c.negs--
		}
		delete(c.m, key)
	}
}

// invalidate drops key ("" drops everything).
func (c *cache[V]) invalidate(key string) {
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

func (c *cache[V]) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.m)
}

// mirror is the in-memory copy of the access-token denylist (jti → exp),
// so a JWT decision needs no store round trip. Entries that revoke a whole
// client (store.RevokedClientJTI) or a whole refresh family
// (store.RevokedFamilyJTI) are kept by client and family id, so the
// decision looks the token's claims up without building a key, all under
// one read lock.
type mirror struct {
	mu       sync.RWMutex
	m        map[string]time.Time
	clients  map[string]time.Time
	families map[string]time.Time
}

// unknownExpKeep is how long a revoked jti without an expiry is kept; no
// access token lives longer than this.
const unknownExpKeep = 24 * time.Hour

// revoked reports whether the token c is denylisted: by its jti, by its
// family (every token issued from a revoked grant; family ids are never
// reused, so the entry's mere presence decides) or by its client. A
// client's entry lasts until the last token issued before the revocation
// has expired, so it covers exactly the tokens expiring by then: a client
// that comes back under the same id (a CIMD client's document is fetched
// again) gets working tokens once the clock leeway in the entry has passed.
func (r *mirror) revoked(c *token.Claims) bool {
	r.mu.RLock()
	_, jti := r.m[c.ID]
	_, fam := r.families[c.Family]
	until, cl := r.clients[c.ClientID]
	r.mu.RUnlock()
	return jti || (fam && c.Family != "") || (cl && c.ClientID != "" && !c.ExpiresAt.After(until))
}

func (r *mirror) add(jti string, exp, now time.Time) {
	if exp.IsZero() {
		exp = now.Add(unknownExpKeep)
	}
	r.mu.Lock()
	if r.m == nil {
		r.m = make(map[string]time.Time)
		r.clients = make(map[string]time.Time)
		r.families = make(map[string]time.Time)
	}
	m := r.m
	if id, ok := store.RevokedClient(jti); ok {
		m, jti = r.clients, id
	} else if id, ok := store.RevokedFamily(jti); ok {
		m, jti = r.families, id
	}
	if old, ok := m[jti]; !ok || exp.After(old) {
		m[jti] = exp
	}
	r.mu.Unlock()
}

// merge adds a full listing; it never un-revokes (entries only leave by
// expiry), so a listing racing with an event cannot lose it.
func (r *mirror) merge(all map[string]time.Time, now time.Time) {
	for j, exp := range all {
		r.add(j, exp, now)
	}
}

// prune forgets entries whose token can no longer verify anyway.
func (r *mirror) prune(now time.Time, leeway time.Duration) {
	r.mu.Lock()
	for _, m := range []map[string]time.Time{r.m, r.clients, r.families} {
		for j, exp := range m {
			if now.After(exp.Add(leeway)) {
				delete(m, j)
			}
		}
	}
	r.mu.Unlock()
}
