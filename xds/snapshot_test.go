package xds

import (
	"fmt"
	"testing"

	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/mcpgateway/mcp-gateway/store"
)

func testAgents(n int) []store.Agent {
	out := make([]store.Agent, n)
	for i := range out {
		scheme := "http"
		if i%2 == 1 {
			scheme = "https"
		}
		out[i] = store.Agent{AgentSpec: store.AgentSpec{ID: fmt.Sprintf("agent-%05d", i), Owner: "o", Upstream: fmt.Sprintf("%s://svc-%d.agents.internal:8443/mcp", scheme, i)}}
	}
	return out
}

var testOpts = Options{GatewayHTTP: "gateway:8080", GatewayGRPC: "gateway:9191"}

// Versions are content hashes: the same registry gives the same versions
// whatever the order it was read in, build after build.
func TestSnapshotVersionsDeterministic(t *testing.T) {
	agents := testAgents(50)
	a, _, err := Snapshot(testOpts, agents)
	if err != nil {
		t.Fatal(err)
	}
	rev := make([]store.Agent, len(agents))
	for i := range agents {
		rev[len(agents)-1-i] = agents[i]
	}
	for range 5 {
		b, _, err := Snapshot(testOpts, rev)
		if err != nil {
			t.Fatal(err)
		}
		for _, typ := range snapshotTypes {
			if a.GetVersion(typ) != b.GetVersion(typ) {
				t.Fatalf("%s: version %s then %s for the same registry", typ, a.GetVersion(typ), b.GetVersion(typ))
			}
		}
	}
	c, _, err := Snapshot(testOpts, agents[1:])
	if err != nil {
		t.Fatal(err)
	}
	if c.GetVersion(resourcev3.ClusterType) == a.GetVersion(resourcev3.ClusterType) || c.GetVersion(resourcev3.RouteType) == a.GetVersion(resourcev3.RouteType) {
		t.Fatal("removing an agent did not change the cluster and route versions")
	}
	if c.GetVersion(resourcev3.ListenerType) != a.GetVersion(resourcev3.ListenerType) {
		t.Fatal("the listeners do not depend on the agents, yet their version changed")
	}
}

// A rebuild that reuses unchanged agents' pieces gives the same versions as
// a build from scratch, and a changed upstream is not served stale.
func TestRebuildReusesPieces(t *testing.T) {
	agents := testAgents(20)
	opts := testOpts
	opts.pieces = &pieceCache{}
	if _, _, err := Snapshot(opts, agents); err != nil {
		t.Fatal(err)
	}
	p0, p3 := opts.pieces.last[agents[0].ID], opts.pieces.last[agents[3].ID]
	agents[3].Upstream = "http://moved:81/other"
	got, _, err := Snapshot(opts, agents)
	if err != nil {
		t.Fatal(err)
	}
	want, _, err := Snapshot(testOpts, agents)
	if err != nil {
		t.Fatal(err)
	}
	for _, typ := range snapshotTypes {
		if got.GetVersion(typ) != want.GetVersion(typ) {
			t.Fatalf("%s: rebuild %s, from scratch %s", typ, got.GetVersion(typ), want.GetVersion(typ))
		}
	}
	if len(opts.pieces.last) != 20 {
		t.Fatalf("cache holds %d agents, want 20", len(opts.pieces.last))
	}
	// Reused means the very pieces: an unchanged agent's are those of the
	// first build, the moved one's were built anew.
	if p0 == nil || opts.pieces.last[agents[0].ID] != p0 {
		t.Error("an unchanged agent's pieces were rebuilt, not reused")
	}
	if opts.pieces.last[agents[3].ID] == p3 {
		t.Error("a changed agent's pieces were reused")
	}
}
