package authz

import (
	"sync"
	"time"

	"github.com/mcpgateway/mcp-gateway/internal/metrics"
	"github.com/mcpgateway/mcp-gateway/internal/ttlcache"
	"github.com/mcpgateway/mcp-gateway/store"
	"github.com/mcpgateway/mcp-gateway/token"
)

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

// newCache is the cache of one kind of store record, counted in
// metrics.CacheLookups under name.
func newCache[V any](name string, ttl, negTTL time.Duration, max int) *ttlcache.Cache[V] {
	return ttlcache.New(ttlcache.Options[V]{
		TTL: ttl, NegTTL: negTTL, Max: max,
		Hit:  metrics.CacheLookups.WithLabelValues(name, "hit"),
		Miss: metrics.CacheLookups.WithLabelValues(name, "miss"),
	})
}
