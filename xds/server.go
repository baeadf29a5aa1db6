package xds

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/log"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/protobuf/proto"

	"github.com/mcpgateway/mcp-gateway/internal/metrics"
	"github.com/mcpgateway/mcp-gateway/store"
)

// Source is what the ADS server reads the registry from.
type Source interface {
	ListAgents(ctx context.Context) ([]*store.Agent, error)
	Subscribe(ctx context.Context, fn func(store.Event)) error
}

// ServerOptions configures NewServer.
type ServerOptions struct {
	Build  Options
	Static []store.Agent // the config file's agents; they win over stored ones
	Store  Source
	Logger *slog.Logger
	// GRPCOptions add to the ADS gRPC server's (credentials for TLS/mTLS).
	GRPCOptions []grpc.ServerOption
	// Resync rebuilds this often even without events (default 1 minute):
	// a safety net for a missed event, never the way changes arrive.
	Resync time.Duration
}

// maxNodeClusters bounds the snapshot keys: a client naming a new
// node.cluster on every stream must not grow the cache without end.
const maxNodeClusters = 64

// Server is the ADS server: it keeps one snapshot of the registry's Envoy
// configuration and serves it to every Envoy, keyed by node.cluster, so all
// Envoys of a deployment (and all gateway replicas, whose builds hash to
// the same versions) agree.
type Server struct {
	opts  ServerOptions
	log   *slog.Logger
	cache cachev3.SnapshotCache
	xds   serverv3.Server
	grpc  *grpc.Server
	kick  chan struct{}

	// pub serialises publishing snapshots (Rebuild, a new node cluster);
	// mu guards the fields below and is the only lock the stream
	// callbacks take, so a callback never waits behind SetSnapshot.
	pub     sync.Mutex
	mu      sync.Mutex
	snap    *cachev3.Snapshot
	res     *Resources
	built   time.Time
	keys    map[string]bool
	streams map[int64]*streamState
}

// streamState is what one Envoy's stream has been sent and has answered.
type streamState struct {
	Node, Cluster string
	Protocol      string // sotw or delta
	Since         time.Time
	Types         map[string]*typeState // by type URL
}

type typeState struct {
	Sent, Acked string // versions
	AckedAt     time.Time
	NackError   string
	nonce       string // of the last response sent
}

// clusterHash keys the cache by node.cluster, not node id.
type clusterHash struct{}

func (clusterHash) ID(n *corev3.Node) string { return nodeKey(n) }

func nodeKey(n *corev3.Node) string {
	if n.GetCluster() == "" {
		return "default"
	}
	return n.GetCluster()
}

// NewServer builds the ADS server; Start loads the registry and follows it.
func NewServer(opts ServerOptions) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Resync <= 0 {
		opts.Resync = time.Minute
	}
	opts.Build.pieces = &pieceCache{}
	s := &Server{
		opts:    opts,
		log:     opts.Logger,
		kick:    make(chan struct{}, 1),
		keys:    map[string]bool{},
		streams: map[int64]*streamState{},
	}
	s.cache = cachev3.NewSnapshotCache(true, clusterHash{}, cacheLogger{s.log})
	return s
}

// Start builds the first snapshot, subscribes to agent events and rebuilds
// on each until ctx ends. It returns once the first snapshot is set.
func (s *Server) Start(ctx context.Context) error {
	if err := s.opts.Store.Subscribe(ctx, func(e store.Event) {
		if e.Kind == store.EventAgent || e.Kind == store.EventResync {
			s.Kick()
		}
	}); err != nil {
		return fmt.Errorf("xds: subscribe to store events: %w", err)
	}
	if err := s.Rebuild(ctx); err != nil {
		return err
	}
	s.xds = serverv3.NewServer(ctx, versionTrust{s.cache}, s)
	gs := grpc.NewServer(append([]grpc.ServerOption{
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.MaxRecvMsgSize(4 << 20),
	}, s.opts.GRPCOptions...)...)
	discoverygrpc.RegisterAggregatedDiscoveryServiceServer(gs, s.xds)
	s.mu.Lock()
	s.grpc = gs
	s.mu.Unlock()
	go s.loop(ctx)
	return nil
}

// Serve serves ADS on ln until Stop.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	gs := s.grpc
	s.mu.Unlock()
	if gs == nil {
		return errors.New("xds: Serve before Start")
	}
	return gs.Serve(ln)
}

// Stop closes every stream at once: an Envoy reconnects to another replica
// and, versions being equal, gets nothing new.
func (s *Server) Stop() {
	s.mu.Lock()
	gs := s.grpc
	s.mu.Unlock()
	if gs != nil {
		gs.Stop()
	}
}

// Kick asks for a rebuild soon.
func (s *Server) Kick() {
	select {
	case s.kick <- struct{}{}:
	default: // one is already queued
	}
}

func (s *Server) loop(ctx context.Context) {
	t := time.NewTicker(s.opts.Resync)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.kick:
			// Coalesce a burst (a bulk import) into one build.
			time.Sleep(20 * time.Millisecond)
			select {
			case <-s.kick:
			default:
			}
		case <-t.C:
		}
		if err := s.Rebuild(ctx); err != nil {
			s.log.Warn("xds: rebuild failed; serving the last snapshot", "err", err)
		}
	}
}

// Rebuild reads the registry and sets a new snapshot when it changed.
func (s *Server) Rebuild(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	dyn, err := s.opts.Store.ListAgents(cctx)
	cancel()
	if err != nil {
		metrics.StoreErrors.WithLabelValues("xds_list_agents").Inc()
		return fmt.Errorf("xds: list agents: %w", err)
	}
	start := time.Now()
	snap, res, err := Snapshot(s.opts.Build, Merge(s.opts.Static, dyn))
	if err != nil {
		return err
	}
	metrics.XDSBuildSeconds.Observe(time.Since(start).Seconds())
	s.pub.Lock()
	defer s.pub.Unlock()
	s.mu.Lock()
	if s.snap != nil && sameVersions(s.snap, snap) {
		s.mu.Unlock()
		return nil
	}
	s.snap, s.res, s.built = snap, res, time.Now()
	keys := make([]string, 0, len(s.keys))
	for key := range s.keys {
		keys = append(keys, key)
	}
	s.mu.Unlock()
	metrics.XDSSnapshotVersion.Reset()
	for _, typ := range snapshotTypes {
		metrics.XDSSnapshotVersion.WithLabelValues(shortType(typ), snap.GetVersion(typ)).Set(1)
	}
	for _, key := range keys {
		if err := s.cache.SetSnapshot(ctx, key, snap); err != nil {
			return fmt.Errorf("xds: set snapshot: %w", err)
		}
	}
	s.log.Info("xds: new snapshot", "agents_routed", len(res.Routed), "agents_unrouted", len(res.Unrouted),
		"routes_version", snap.GetVersion(resourcev3.RouteType), "clusters_version", snap.GetVersion(resourcev3.ClusterType))
	return nil
}

// Merge is the registry: the config file's agents, then stored ones whose
// ids they do not take (the config file wins, as in the Check).
func Merge(static []store.Agent, dyn []*store.Agent) []store.Agent {
	out := slices.Clone(static)
	seen := make(map[string]bool, len(static))
	for _, a := range static {
		seen[a.ID] = true
	}
	for _, a := range dyn {
		if a != nil && !seen[a.ID] {
			out = append(out, *a)
		}
	}
	return out
}

var snapshotTypes = []string{resourcev3.ListenerType, resourcev3.RouteType, resourcev3.ClusterType}

// Snapshot builds the ADS snapshot for agents. Each type's version is a
// hash of its resources' deterministic encoding, so equal registries give
// equal versions on every replica.
func Snapshot(opts Options, agents []store.Agent) (*cachev3.Snapshot, *Resources, error) {
	res, err := Build(opts, agents, true)
	if err != nil {
		return nil, nil, err
	}
	snap := &cachev3.Snapshot{}
	add := func(typ string, items []types.Resource) error {
		v, err := contentVersion(items)
		if err != nil {
			return err
		}
		snap.Resources[cachev3.GetResponseType(typ)] = cachev3.NewResources(v, items)
		return nil
	}
	var ls, rs, cs []types.Resource
	for _, l := range res.Listeners {
		ls = append(ls, l)
	}
	for _, r := range res.Routes {
		rs = append(rs, r)
	}
	for _, c := range res.Clusters {
		cs = append(cs, c)
	}
	for typ, items := range map[string][]types.Resource{resourcev3.ListenerType: ls, resourcev3.RouteType: rs, resourcev3.ClusterType: cs} {
		if err := add(typ, items); err != nil {
			return nil, nil, err
		}
	}
	if err := snap.Consistent(); err != nil {
		return nil, nil, fmt.Errorf("xds: inconsistent snapshot: %w", err)
	}
	return snap, res, nil
}

func contentVersion(items []types.Resource) (string, error) {
	sorted := slices.Clone(items)
	slices.SortFunc(sorted, func(a, b types.Resource) int {
		return cmp.Compare(cachev3.GetResourceName(a), cachev3.GetResourceName(b))
	})
	h := sha256.New()
	mo := proto.MarshalOptions{Deterministic: true}
	for _, r := range sorted {
		b, err := mo.Marshal(r)
		if err != nil {
			return "", fmt.Errorf("xds: marshal %s: %w", cachev3.GetResourceName(r), err)
		}
		fmt.Fprintf(h, "%s\x00%d\x00", cachev3.GetResourceName(r), len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil)[:12]), nil
}

func sameVersions(a, b *cachev3.Snapshot) bool {
	for _, typ := range snapshotTypes {
		if a.GetVersion(typ) != b.GetVersion(typ) {
			return false
		}
	}
	return true
}

func shortType(typeURL string) string {
	switch typeURL {
	case resourcev3.ListenerType:
		return "listener"
	case resourcev3.RouteType:
		return "route"
	case resourcev3.ClusterType:
		return "cluster"
	case resourcev3.EndpointType:
		return "endpoint"
	}
	return "other"
}

// ensureKey makes sure the node's cluster has the snapshot before its
// first watch is opened.
func (s *Server) ensureKey(n *corev3.Node) error {
	key := nodeKey(n)
	s.pub.Lock()
	defer s.pub.Unlock()
	s.mu.Lock()
	known, full, snap := s.keys[key], len(s.keys) >= maxNodeClusters, s.snap
	if !known && !full {
		s.keys[key] = true
	}
	s.mu.Unlock()
	switch {
	case known:
		return nil
	case full:
		return fmt.Errorf("xds: more than %d node clusters", maxNodeClusters)
	case snap == nil:
		return nil
	}
	return s.cache.SetSnapshot(context.Background(), key, snap)
}

// versionTrust lets an Envoy that reconnects (to this or another replica)
// with the version it already has keep it without a new push: versions are
// content hashes, so an equal version means equal resources. The snapshot
// cache alone would resend everything on every new stream.
type versionTrust struct{ cachev3.SnapshotCache }

type knownSub struct {
	cachev3.Subscription
	known map[string]string
}

func (k knownSub) ReturnedResources() map[string]string { return k.known }

// CreateWatch implements cache.ConfigWatcher. It also keeps a NACKed
// version from being sent again at once: the cache would answer the NACK
// (which names the last good version) with the current version, the one
// just rejected, and Envoy would reject it again, round after round. The
// next change is sent instead.
func (v versionTrust) CreateWatch(req *cachev3.Request, sub cachev3.Subscription, ch chan cachev3.Response) (func(), error) {
	if req.GetErrorDetail() != nil {
		if snap, err := v.GetSnapshot(nodeKey(req.GetNode())); err == nil {
			cur := snap.GetVersion(req.GetTypeUrl())
			for _, sent := range sub.ReturnedResources() {
				if sent == cur {
					req = proto.Clone(req).(*cachev3.Request)
					req.VersionInfo = cur
				}
				break // one response: every resource has its version
			}
		}
	}
	if req.GetVersionInfo() != "" && len(sub.ReturnedResources()) == 0 {
		if snap, err := v.GetSnapshot(nodeKey(req.GetNode())); err == nil && snap.GetVersion(req.GetTypeUrl()) == req.GetVersionInfo() {
			known := map[string]string{}
			for name := range snap.GetResources(req.GetTypeUrl()) {
				known[name] = req.GetVersionInfo()
			}
			sub = knownSub{Subscription: sub, known: known}
		}
	}
	return v.SnapshotCache.CreateWatch(req, sub, ch)
}

// cacheLogger routes go-control-plane's logs to slog (debug and warnings).
type cacheLogger struct{ l *slog.Logger }

func (c cacheLogger) Debugf(f string, a ...any) { c.l.Debug("xds: " + fmt.Sprintf(f, a...)) }
func (c cacheLogger) Infof(f string, a ...any)  { c.l.Debug("xds: " + fmt.Sprintf(f, a...)) }
func (c cacheLogger) Warnf(f string, a ...any)  { c.l.Warn("xds: " + fmt.Sprintf(f, a...)) }
func (c cacheLogger) Errorf(f string, a ...any) { c.l.Error("xds: " + fmt.Sprintf(f, a...)) }

var _ log.Logger = cacheLogger{}
