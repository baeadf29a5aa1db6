package hostile

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/mcpgateway/mcp-gateway/config"
	"github.com/mcpgateway/mcp-gateway/store"
)

// TestRateLimitsHoldAcrossReplicas: two gateway replicas on one store share
// the per-IP windows, so spreading requests over replicas gains nothing
// (on Redis the counters live in Redis; the memory store shows the same
// logic within one process). Each endpoint answers 429 + Retry-After.
func TestRateLimitsHoldAcrossReplicas(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			var shared store.Store
			one := backend{b.name, func(t *testing.T) store.Store {
				if shared == nil {
					shared = b.open(t)
				}
				return shared
			}}
			limits := func(c *config.Config) {
				c.RateLimit = config.RateLimit{Register: 4, Token: 4, Authorize: 4, Login: 4, LoginPerUser: 100}
			}
			a, z := newGW(t, one, limits), newGW(t, one, limits)
			replicas := []*gw{a, z}
			reg := `{"redirect_uris":["` + loopback + `"]}`
			for i := range 4 {
				if r := replicas[i%2].post("/oauth/register", "application/json", reg); r.status != http.StatusCreated {
					t.Fatalf("registration %d: %d %s", i, r.status, r.body)
				}
			}
			for i, g := range replicas {
				r := g.post("/oauth/register", "application/json", reg)
				if r.status != http.StatusTooManyRequests || r.hdr.Get("Retry-After") == "" || r.json(t)["error"] != "rate_limited" {
					t.Fatalf("replica %d after the shared limit: %d %v %s", i, r.status, r.hdr, r.body)
				}
			}
			for i := range 4 {
				replicas[i%2].postForm("/oauth/token", form("grant_type", "refresh_token", "client_id", "c", "refresh_token", fmt.Sprint(i)))
			}
			if r := z.postForm("/oauth/token", form("grant_type", "refresh_token", "client_id", "c", "refresh_token", "x")); r.status != http.StatusTooManyRequests {
				t.Fatalf("token after the shared limit: %d %s", r.status, r.body)
			}
			for i := range 4 {
				replicas[i%2].get("/oauth/authorize?client_id=nope")
			}
			if r := a.get("/oauth/authorize?client_id=nope"); r.status != http.StatusTooManyRequests || r.hdr.Get("Retry-After") == "" {
				t.Fatalf("authorize after the shared limit: %d", r.status)
			}
		})
	}
}
