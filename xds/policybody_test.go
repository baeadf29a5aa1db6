package xds

import (
	"net/url"
	"testing"

	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/mcpgateway/mcp-gateway/authz"
	"github.com/mcpgateway/mcp-gateway/store"
)

// routeBody is the body setting of an agent route's ext_authz per-filter
// config (nil: the body is not sent to the Check).
func routeBody(t *testing.T, a agentUpstream) []*extauthzv3.BufferSettings {
	t.Helper()
	var out []*extauthzv3.BufferSettings
	for _, r := range agentRoutes(a) {
		var per extauthzv3.ExtAuthzPerRoute
		if err := r.GetTypedPerFilterConfig()[filterExtAuthz].UnmarshalTo(&per); err != nil {
			t.Fatal(err)
		}
		out = append(out, per.GetCheckSettings().GetWithRequestBody())
	}
	return out
}

// An agent with a tool policy has its JSON-RPC body sent to the Check on
// both of its paths, whole and as bytes, up to what the policy reads; an
// agent without rules does not (its bodies stay unbuffered, of any size).
func TestPolicyAgentsSendTheBody(t *testing.T) {
	if MaxPolicyBody != authz.MaxMCPBody {
		t.Fatalf("MaxPolicyBody %d, authz.MaxMCPBody %d", MaxPolicyBody, authz.MaxMCPBody)
	}
	u, _ := url.Parse("http://agent:3000/mcp")
	for i, b := range routeBody(t, agentUpstream{id: "ruled", url: u, readBody: true}) {
		if b == nil || b.GetMaxRequestBytes() != authz.MaxMCPBody || b.GetAllowPartialMessage() || !b.GetPackAsBytes() {
			t.Errorf("route %d of an agent with rules: with_request_body %v", i, b)
		}
	}
	for i, b := range routeBody(t, agentUpstream{id: "open", url: u}) {
		if b != nil {
			t.Errorf("route %d of an agent without rules: with_request_body %v, want none", i, b)
		}
	}

	// Through the builder: rules decide it, and a rebuild that reuses
	// pieces notices a change of rules alone.
	agents := testAgents(3)
	opts := testOpts
	opts.pieces = &pieceCache{}
	before, _, err := Snapshot(opts, agents)
	if err != nil {
		t.Fatal(err)
	}
	agents[1].Rules = []store.Rule{{Method: "tools/call", Target: "admin_*", Scopes: []string{"mcp:admin"}}}
	after, _, err := Snapshot(opts, agents)
	if err != nil {
		t.Fatal(err)
	}
	if before.GetVersion(resourcev3.RouteType) == after.GetVersion(resourcev3.RouteType) {
		t.Fatal("adding rules to an agent did not change the routes")
	}
	fresh, _, err := Snapshot(testOpts, agents)
	if err != nil {
		t.Fatal(err)
	}
	if fresh.GetVersion(resourcev3.RouteType) != after.GetVersion(resourcev3.RouteType) {
		t.Fatal("the rebuild served routes that differ from a build from scratch")
	}
}
