package storetest

import (
	"testing"

	"github.com/mcpgateway/mcp-gateway/store"
)

// testAgentUpstreamAuth: an agent's upstream credential reference survives
// the store, and the caller's copy stays its own.
func testAgentUpstreamAuth(t *testing.T, h *harness) {
	s, ctx := h.s, h.ctx
	a := &store.Agent{AgentSpec: store.AgentSpec{ID: id("agent"), Owner: "alice", UpstreamAuth: &store.UpstreamAuth{Header: "authorization", Prefix: "Bearer ", SecretFile: "demo.token"}}}
	must(t, s.PutAgent(ctx, a))
	a.UpstreamAuth.SecretFile = "mallory"
	got, err := s.GetAgent(ctx, a.ID)
	must(t, err)
	if got.UpstreamAuth == nil || *got.UpstreamAuth != (store.UpstreamAuth{Header: "authorization", Prefix: "Bearer ", SecretFile: "demo.token"}) {
		t.Fatalf("upstream_auth %+v", got.UpstreamAuth)
	}
	got.UpstreamAuth.SecretEnv = "mallory"
	again, err := s.GetAgent(ctx, a.ID)
	must(t, err)
	if again.UpstreamAuth.SecretEnv != "" {
		t.Fatal("a returned agent shares its upstream_auth with the store")
	}
}
