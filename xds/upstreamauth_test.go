package xds

import (
	"net/url"
	"slices"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/mcpgateway/mcp-gateway/store"
)

// publicExtAuthz is the ext_authz filter config of res's public listener.
func publicExtAuthz(t *testing.T, res *Resources) *extauthzv3.ExtAuthz {
	t.Helper()
	for _, l := range res.Listeners {
		if l.GetName() != ListenerPublic {
			continue
		}
		var h hcmv3.HttpConnectionManager
		if err := l.GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(&h); err != nil {
			t.Fatal(err)
		}
		for _, f := range h.GetHttpFilters() {
			if f.GetName() == filterExtAuthz {
				var ea extauthzv3.ExtAuthz
				if err := f.GetTypedConfig().UnmarshalTo(&ea); err != nil {
					t.Fatal(err)
				}
				return &ea
			}
		}
	}
	t.Fatal("no ext_authz filter on the public listener")
	return nil
}

// upstreamAllowed lists http_service's allowed_upstream_headers as
// "prefix:…" or "exact:…", failing on a case-sensitive pattern.
func upstreamAllowed(t *testing.T, ea *extauthzv3.ExtAuthz) []string {
	t.Helper()
	var out []string
	for _, p := range ea.GetHttpService().GetAuthorizationResponse().GetAllowedUpstreamHeaders().GetPatterns() {
		if !p.GetIgnoreCase() {
			t.Errorf("pattern %v is case-sensitive", p)
		}
		switch {
		case p.GetPrefix() != "":
			out = append(out, "prefix:"+p.GetPrefix())
		case p.GetExact() != "":
			out = append(out, "exact:"+p.GetExact())
		default:
			t.Errorf("unexpected pattern %v", p)
		}
	}
	return out
}

func upstreamAuthAgents() []store.Agent {
	return []store.Agent{
		{AgentSpec: store.AgentSpec{ID: "plain", Owner: "o", Upstream: "http://plain:3000/mcp"}},
		{AgentSpec: store.AgentSpec{
			ID: "bearer", Owner: "o", Upstream: "http://bearer:3000/mcp",
			UpstreamAuth: &store.UpstreamAuth{Header: "Authorization", Prefix: "Bearer ", SecretFile: "bearer.token"},
		}},
		{AgentSpec: store.AgentSpec{
			ID: "bearer2", Owner: "o", Upstream: "http://bearer2:3000/mcp",
			UpstreamAuth: &store.UpstreamAuth{Header: "authorization", SecretEnv: "MCPGW_UPSTREAM_SECRET_B2"},
		}},
		{AgentSpec: store.AgentSpec{
			ID: "keyed", Owner: "o", Upstream: "http://keyed:3000/mcp",
			UpstreamAuth: &store.UpstreamAuth{Header: "X-Api-Key", SecretFile: "keyed.token"},
		}},
		// Invalid (the Check refuses this agent's requests): never allowed upstream.
		{AgentSpec: store.AgentSpec{
			ID: "bad", Owner: "o", Upstream: "http://bad:3000/mcp",
			UpstreamAuth: &store.UpstreamAuth{Header: "x-mcp-user", SecretFile: "x"},
		}},
	}
}

// http_service passes each header an agent's upstream_auth declares from
// the check's answer (exact, any case), once, besides the x-mcp- identity;
// with no agent declaring one, the identity alone.
func TestHTTPServicePassesDeclaredUpstreamHeaders(t *testing.T) {
	opts := testOpts
	opts.Mode = ModeHTTPService
	res, err := Build(opts, upstreamAuthAgents(), true)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := upstreamAllowed(t, publicExtAuthz(t, res)), []string{"prefix:x-mcp-", "exact:authorization", "exact:x-api-key"}; !slices.Equal(got, want) {
		t.Errorf("allowed_upstream_headers %v, want %v", got, want)
	}
	res, err = Build(opts, upstreamAuthAgents()[:1], true)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := upstreamAllowed(t, publicExtAuthz(t, res)), []string{"prefix:x-mcp-"}; !slices.Equal(got, want) {
		t.Errorf("without upstream_auth: allowed_upstream_headers %v, want %v", got, want)
	}
	// gRPC: the Check's ok_response sets the header itself.
	opts.Mode = ModeGRPC
	res, err = Build(opts, upstreamAuthAgents(), true)
	if err != nil {
		t.Fatal(err)
	}
	if ea := publicExtAuthz(t, res); ea.GetHttpService() != nil {
		t.Errorf("gRPC mode has an http_service: %v", ea.GetHttpService())
	}
}

// The route's request_headers_to_remove runs after ext_authz: an agent
// whose upstream credential is Authorization keeps the Check's value; every
// other agent's routes still remove the client's.
func TestRoutesKeepTheCheckAuthorization(t *testing.T) {
	u, _ := url.Parse("http://agent:3000/mcp")
	for _, tc := range []struct {
		a    agentUpstream
		want []string
	}{
		{agentUpstream{id: "plain", url: u}, []string{"authorization"}},
		{agentUpstream{id: "bearer", url: u, keepAuthorization: true}, nil},
	} {
		for i, r := range agentRoutes(tc.a) {
			if got := r.GetRequestHeadersToRemove(); !slices.Equal(got, tc.want) {
				t.Errorf("%s route %d removes %v, want %v", tc.a.id, i, got, tc.want)
			}
		}
	}

	// Through the builder, in both modes: only a valid Authorization
	// declaration keeps it, and a rebuild that reuses pieces notices a
	// declaration added later.
	for _, mode := range []Mode{ModeGRPC, ModeHTTPService} {
		agents := upstreamAuthAgents()
		opts := testOpts
		opts.Mode = mode
		opts.pieces = &pieceCache{}
		before, _, err := Snapshot(opts, agents)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]bool{}
		for id, p := range opts.pieces.last {
			var rl routev3.RouteList
			if err := p.routes.GetAction().GetTypedConfig().UnmarshalTo(&rl); err != nil {
				t.Fatal(err)
			}
			for _, r := range rl.GetRoutes() {
				if r.GetRoute() != nil && r.GetRoute().GetCluster() == AgentCluster(id) {
					got[id] = !slices.Contains(r.GetRequestHeadersToRemove(), "authorization")
				}
			}
		}
		want := map[string]bool{"plain": false, "bearer": true, "bearer2": true, "keyed": false, "bad": false}
		for id, w := range want {
			if got[id] != w {
				t.Errorf("%s: %s keeps authorization %v, want %v", mode, id, got[id], w)
			}
		}
		agents[0].UpstreamAuth = &store.UpstreamAuth{Header: "authorization", SecretFile: "plain.token"}
		after, _, err := Snapshot(opts, agents)
		if err != nil {
			t.Fatal(err)
		}
		if before.GetVersion(resourcev3.RouteType) == after.GetVersion(resourcev3.RouteType) {
			t.Errorf("%s: declaring upstream_auth did not change the routes", mode)
		}
		fo := testOpts
		fo.Mode = mode
		fresh, _, err := Snapshot(fo, agents)
		if err != nil {
			t.Fatal(err)
		}
		if fresh.GetVersion(resourcev3.RouteType) != after.GetVersion(resourcev3.RouteType) {
			t.Errorf("the rebuild served routes that differ from a build from scratch")
		}
	}
}
