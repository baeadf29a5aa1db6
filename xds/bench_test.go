package xds

import (
	"fmt"
	"os"
	"testing"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"
)

// BenchmarkSnapshot10k is the time to build (and hash) the snapshot for
// 10,000 agents: what every replica does on each agent change.
func BenchmarkSnapshot10k(b *testing.B) {
	agents := testAgents(10000)
	for b.Loop() {
		if _, _, err := Snapshot(testOpts, agents); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRebuild10k is an ADS rebuild at 10,000 agents after one agent
// changed: the other agents' clusters and routes are reused.
func BenchmarkRebuild10k(b *testing.B) {
	agents := testAgents(10000)
	opts := testOpts
	opts.pieces = &pieceCache{}
	if _, _, err := Snapshot(opts, agents); err != nil {
		b.Fatal(err)
	}
	i := 0
	for b.Loop() {
		i++
		agents[0].Upstream = fmt.Sprintf("http://changed-%d:80/mcp", i)
		if _, _, err := Snapshot(opts, agents); err != nil {
			b.Fatal(err)
		}
	}
}

func typeBytes(s *cachev3.Snapshot, typ string) (n int) {
	for _, r := range s.GetResources(typ) {
		n += proto.Size(r)
	}
	return n
}

// TestResourceSizes reports the bytes of the configuration at 1, 100 and
// 10,000 agents, and what adding one agent at 10,000 costs on the wire:
// state-of-the-world resends every cluster and the route table; delta xDS
// sends the new cluster and the route table (one resource).
// go test -run TestResourceSizes -v ./xds/
func TestResourceSizes(t *testing.T) {
	if testing.Short() && os.Getenv("CI") != "true" { // CI never skips it
		t.Skip("builds 10,000 agents")
	}
	sizes := map[int]*cachev3.Snapshot{}
	for _, n := range []int{1, 100, 10000} {
		s, _, err := Snapshot(testOpts, testAgents(n))
		if err != nil {
			t.Fatal(err)
		}
		sizes[n] = s
		t.Logf("%6d agents: listeners %8d B, routes %9d B, clusters %9d B", n,
			typeBytes(s, resourcev3.ListenerType), typeBytes(s, resourcev3.RouteType), typeBytes(s, resourcev3.ClusterType))
	}
	base := testAgents(10000)
	more := append(base, testAgents(10001)[10000])
	s2, _, err := Snapshot(testOpts, more)
	if err != nil {
		t.Fatal(err)
	}
	s1 := sizes[10000]
	if s1.GetVersion(resourcev3.ListenerType) != s2.GetVersion(resourcev3.ListenerType) {
		t.Error("adding an agent changed the listeners' version: LDS would be pushed for nothing")
	}
	sotw := typeBytes(s2, resourcev3.ClusterType) + typeBytes(s2, resourcev3.RouteType)
	changed := map[string]types.Resource{}
	old := s1.GetResources(resourcev3.ClusterType)
	for name, r := range s2.GetResources(resourcev3.ClusterType) {
		if o, ok := old[name]; !ok || !proto.Equal(o, r) {
			changed[name] = r
		}
	}
	if len(changed) != 1 {
		t.Errorf("%d clusters changed, want 1", len(changed))
	}
	delta := typeBytes(s2, resourcev3.RouteType)
	for _, r := range changed {
		delta += proto.Size(r)
	}
	t.Logf("add 1 agent at 10,000: state-of-the-world pushes %d B (all clusters + routes), delta xDS %d B (1 cluster + routes)", sotw, delta)
}
