package xds

import (
	"context"
	"net"
	"slices"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/mcpgateway/mcp-gateway/store"
	"github.com/mcpgateway/mcp-gateway/store/memstore"
)

// startServer runs the ADS server on loopback over a memory store.
func startServer(t *testing.T, static []store.Agent) (*Server, *memstore.Store, discovery.AggregatedDiscoveryServiceClient) {
	t.Helper()
	mem := memstore.New()
	t.Cleanup(func() { _ = mem.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	s := NewServer(ServerOptions{Build: testOpts, Static: static, Store: mem})
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Serve(ln) }()
	t.Cleanup(s.Stop)
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return s, mem, discovery.NewAggregatedDiscoveryServiceClient(conn)
}

func recvWithin[T any](t *testing.T, recv func() (T, error), d time.Duration) T {
	t.Helper()
	type res struct {
		v   T
		err error
	}
	ch := make(chan res, 1)
	go func() { v, err := recv(); ch <- res{v, err} }()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatal(r.err)
		}
		return r.v
	case <-time.After(d):
		t.Fatalf("nothing received within %v", d)
	}
	var zero T
	return zero
}

var node = &corev3.Node{Id: "envoy-a", Cluster: "mcp-gateway"}

// Delta xDS: adding an agent sends that agent's cluster alone.
func TestDeltaPushesOneCluster(t *testing.T) {
	_, mem, client := startServer(t, testAgents(50))
	st, err := client.DeltaAggregatedResources(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(&discovery.DeltaDiscoveryRequest{Node: node, TypeUrl: resourcev3.ClusterType, ResourceNamesSubscribe: []string{"*"}}); err != nil {
		t.Fatal(err)
	}
	first := recvWithin(t, st.Recv, 5*time.Second)
	if len(first.GetResources()) != 53 {
		t.Fatalf("first delta response: %d clusters, want 53", len(first.GetResources()))
	}
	if err := st.Send(&discovery.DeltaDiscoveryRequest{Node: node, TypeUrl: resourcev3.ClusterType, ResponseNonce: first.GetNonce()}); err != nil {
		t.Fatal(err)
	}
	if err := mem.PutAgent(t.Context(), &store.Agent{AgentSpec: store.AgentSpec{ID: "added", Owner: "o", Upstream: "http://added:80/mcp"}}); err != nil {
		t.Fatal(err)
	}
	next := recvWithin(t, st.Recv, 5*time.Second)
	var names []string
	for _, r := range next.GetResources() {
		c := &clusterv3.Cluster{}
		if err := r.GetResource().UnmarshalTo(c); err != nil {
			t.Fatal(err)
		}
		names = append(names, c.GetName())
	}
	if !slices.Equal(names, []string{"agent_added"}) || len(next.GetRemovedResources()) != 0 {
		t.Fatalf("delta after one add: %v (removed %v), want just agent_added", names, next.GetRemovedResources())
	}
	t.Logf("delta push for one added cluster: %d bytes (state of the world: %d)", proto.Size(next), proto.Size(first))
}

// A NACK is recorded (status view, error text) and the stream goes on.
func TestNackRecordedAndStreamContinues(t *testing.T) {
	s, mem, client := startServer(t, testAgents(3))
	st, err := client.StreamAggregatedResources(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	send := func(r *discovery.DiscoveryRequest) {
		t.Helper()
		r.Node, r.TypeUrl = node, resourcev3.ClusterType
		if err := st.Send(r); err != nil {
			t.Fatal(err)
		}
	}
	send(&discovery.DiscoveryRequest{})
	r1 := recvWithin(t, st.Recv, 5*time.Second)
	send(&discovery.DiscoveryRequest{VersionInfo: r1.GetVersionInfo(), ResponseNonce: r1.GetNonce()})
	if err := mem.PutAgent(t.Context(), &store.Agent{AgentSpec: store.AgentSpec{ID: "bad", Owner: "o", Upstream: "http://bad:80/mcp"}}); err != nil {
		t.Fatal(err)
	}
	r2 := recvWithin(t, st.Recv, 5*time.Second)
	send(&discovery.DiscoveryRequest{VersionInfo: r1.GetVersionInfo(), ResponseNonce: r2.GetNonce(),
		ErrorDetail: &rpcstatus.Status{Code: 3, Message: "cluster bad: invalid"}})
	var view NodeStatus
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if ns := s.Status().Nodes; len(ns) == 1 && ns[0].Types["cluster"].NackError != "" {
			view = ns[0]
			break
		}
	}
	if tv := view.Types["cluster"]; tv.NackError != "cluster bad: invalid" || tv.Acked != r1.GetVersionInfo() || tv.Sent != r2.GetVersionInfo() || tv.UpToDate {
		t.Fatalf("status after NACK: %+v", view)
	}
	// The rejected version is not sent again (Envoy would reject it again,
	// in a loop); a negative check needs a wait.
	again := make(chan *discovery.DiscoveryResponse, 1)
	go func() {
		if r, err := st.Recv(); err == nil {
			again <- r
		}
	}()
	select {
	case r := <-again:
		t.Fatalf("the NACKed version %s was pushed again", r.GetVersionInfo())
	case <-time.After(300 * time.Millisecond):
	}
	if err := mem.PutAgent(t.Context(), &store.Agent{AgentSpec: store.AgentSpec{ID: "good", Owner: "o", Upstream: "http://good:80/mcp"}}); err != nil {
		t.Fatal(err)
	}
	var r3 *discovery.DiscoveryResponse
	select {
	case r3 = <-again:
	case <-time.After(5 * time.Second):
		t.Fatal("no push after the NACK")
	}
	if r3.GetVersionInfo() == r2.GetVersionInfo() {
		t.Fatal("no new version after the NACK")
	}
	send(&discovery.DiscoveryRequest{VersionInfo: r3.GetVersionInfo(), ResponseNonce: r3.GetNonce()})
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if ns := s.Status().Nodes; len(ns) == 1 && ns[0].Types["cluster"].UpToDate && ns[0].Types["cluster"].NackError == "" {
			return
		}
	}
	t.Fatalf("status after the ACK: %+v", s.Status().Nodes)
}
