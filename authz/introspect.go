package authz

import (
	"context"
	"strings"

	"github.com/mcpgateway/mcp-gateway/token"
)

// Introspect reports whether raw is an access token the Check would let
// into agent now — valid signature, not expired, not revoked, issued for
// exactly that agent's resource URL (not the gateway-wide audience), its
// user allowed and its scope enough — and returns its claims (read-only).
// agent "" (the admin) asks only whether the token is valid and not
// revoked. API keys are never active here: they are not access tokens.
// Before Start has loaded the denylist nothing is active (fail closed).
func (a *Authorizer) Introspect(ctx context.Context, raw, agent string) (*token.Claims, bool) {
	if !a.loaded.Load() || raw == "" || len(raw) > maxTokenLen || strings.Count(raw, ".") != 2 {
		return nil, false
	}
	c, err := a.ring.Verify(raw)
	if err != nil || a.jtis.revoked(c) {
		return nil, false
	}
	if agent == "" {
		return c, true
	}
	ai, err := a.lookupAgent(ctx, agent, a.now())
	if err != nil || ai == nil {
		return nil, false
	}
	aud := false
	for _, s := range c.Audience {
		aud = aud || s == ai.resource
	}
	if !aud || !ai.agent.Allows(c.Subject) || !scopeOverlap(c.Scope, ai.required) {
		return nil, false
	}
	return c, true
}
