package xds

import (
	"context"
	"errors"
	"sort"
	"time"
	"unicode/utf8"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/protobuf/proto"

	"github.com/mcpgateway/mcp-gateway/internal/metrics"
)

// maxNackLog bounds the error text of a NACK in logs and the status view.
const maxNackLog = 512

// The Callbacks of go-control-plane's server: they track each stream's
// node, what it was sent and what it ACKed or NACKed, for metrics, logs
// and the /admin/v1/xds view.

// OnStreamOpen implements serverv3.Callbacks.
func (s *Server) OnStreamOpen(_ context.Context, id int64, _ string) error {
	return s.open(id, "sotw")
}

// OnDeltaStreamOpen implements serverv3.Callbacks.
func (s *Server) OnDeltaStreamOpen(_ context.Context, id int64, _ string) error {
	return s.open(id, "delta")
}

func (s *Server) open(id int64, proto string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.streams[id] = &streamState{Protocol: proto, Since: time.Now().UTC(), Types: map[string]*typeState{}}
	metrics.XDSStreams.Inc()
	return nil
}

// OnStreamClosed implements serverv3.Callbacks.
func (s *Server) OnStreamClosed(id int64, _ *corev3.Node) { s.closed(id) }

// OnDeltaStreamClosed implements serverv3.Callbacks.
func (s *Server) OnDeltaStreamClosed(id int64, _ *corev3.Node) { s.closed(id) }

func (s *Server) closed(id int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.streams[id]; ok {
		delete(s.streams, id)
		metrics.XDSStreams.Dec()
	}
}

// OnStreamRequest implements serverv3.Callbacks: ACK or NACK of the last
// response of its type (or a first subscription).
func (s *Server) OnStreamRequest(id int64, req *discovery.DiscoveryRequest) error {
	if err := s.ensureKey(req.GetNode()); err != nil {
		return err
	}
	s.request(id, req.GetNode().GetId(), nodeKey(req.GetNode()), req.GetTypeUrl(), req.GetResponseNonce(), req.GetVersionInfo(), req.GetErrorDetail().GetMessage(), req.GetErrorDetail() != nil)
	return nil
}

// OnStreamDeltaRequest implements serverv3.Callbacks.
func (s *Server) OnStreamDeltaRequest(id int64, req *discovery.DeltaDiscoveryRequest) error {
	if err := s.ensureKey(req.GetNode()); err != nil {
		return err
	}
	s.request(id, req.GetNode().GetId(), nodeKey(req.GetNode()), req.GetTypeUrl(), req.GetResponseNonce(), "", req.GetErrorDetail().GetMessage(), req.GetErrorDetail() != nil)
	return nil
}

func (s *Server) request(id int64, node, cluster, typ, nonce, version, nackMsg string, nack bool) {
	s.mu.Lock()
	st := s.streams[id]
	if st == nil {
		s.mu.Unlock()
		return
	}
	if node != "" {
		st.Node, st.Cluster = node, cluster
	}
	ts := st.Types[typ]
	if ts == nil {
		ts = &typeState{}
		st.Types[typ] = ts
	}
	var acked string
	switch {
	case nonce == "":
		// A first subscription (or a reconnect announcing its version).
		if version != "" {
			ts.Acked, ts.AckedAt = version, time.Now().UTC()
		}
	case nack:
		ts.NackError = truncate(nackMsg)
	case nonce == ts.nonce:
		if version == "" { // delta: the ACK names the nonce, the version is what we sent with it
			version = ts.Sent
		}
		ts.Acked, ts.AckedAt, ts.NackError = version, time.Now().UTC(), ""
		acked = version
	}
	node = st.Node
	s.mu.Unlock()
	if nack {
		metrics.XDSNacks.WithLabelValues(shortType(typ)).Inc()
		// Envoy keeps its previous configuration: the new one is broken
		// (a builder bug or an Envoy too old for a field). Say why.
		s.log.Error("xds: Envoy rejected the configuration (NACK)", "node", node, "cluster", cluster,
			"type", shortType(typ), "nonce", nonce, "version_kept", version, "error", truncate(nackMsg))
	} else if acked != "" {
		metrics.XDSAcks.WithLabelValues(shortType(typ)).Inc()
	}
}

// OnStreamResponse implements serverv3.Callbacks.
func (s *Server) OnStreamResponse(_ context.Context, id int64, _ *discovery.DiscoveryRequest, resp *discovery.DiscoveryResponse) {
	s.sent(id, resp.GetTypeUrl(), resp.GetNonce(), resp.GetVersionInfo(), proto.Size(resp))
}

// OnStreamDeltaResponse implements serverv3.Callbacks.
func (s *Server) OnStreamDeltaResponse(id int64, _ *discovery.DeltaDiscoveryRequest, resp *discovery.DeltaDiscoveryResponse) {
	s.sent(id, resp.GetTypeUrl(), resp.GetNonce(), resp.GetSystemVersionInfo(), proto.Size(resp))
}

func (s *Server) sent(id int64, typ, nonce, version string, size int) {
	metrics.XDSPushes.WithLabelValues(shortType(typ)).Inc()
	metrics.XDSPushBytes.WithLabelValues(shortType(typ)).Add(float64(size))
	s.mu.Lock()
	defer s.mu.Unlock()
	if st := s.streams[id]; st != nil {
		ts := st.Types[typ]
		if ts == nil {
			ts = &typeState{}
			st.Types[typ] = ts
		}
		ts.Sent, ts.nonce = version, nonce
	}
}

// OnFetchRequest implements serverv3.Callbacks: REST is not served.
func (s *Server) OnFetchRequest(context.Context, *discovery.DiscoveryRequest) error {
	return errors.New("xds: REST fetch is not served")
}

// OnFetchResponse implements serverv3.Callbacks.
func (s *Server) OnFetchResponse(*discovery.DiscoveryRequest, *discovery.DiscoveryResponse) {}

func truncate(s string) string {
	if len(s) <= maxNackLog {
		return s
	}
	s = s[:maxNackLog]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "…"
}

// Status is the /admin/v1/xds view.
type Status struct {
	Versions map[string]string `json:"versions"` // type → the snapshot's version
	BuiltAt  time.Time         `json:"built_at,omitzero"`
	Routed   int               `json:"agents_routed"`
	Unrouted map[string]string `json:"agents_unrouted"` // id → why
	Nodes    []NodeStatus      `json:"nodes"`
}

// NodeStatus is one connected stream: per type, what it was last sent,
// what it ACKed and the error of its last NACK.
type NodeStatus struct {
	Stream   int64               `json:"stream"`
	Node     string              `json:"node"`
	Cluster  string              `json:"cluster"`
	Protocol string              `json:"protocol"`
	Since    time.Time           `json:"connected_at"`
	Types    map[string]typeView `json:"types"`
}

type typeView struct {
	Sent      string    `json:"sent,omitempty"`
	Acked     string    `json:"acked,omitempty"`
	AckedAt   time.Time `json:"acked_at,omitzero"`
	NackError string    `json:"nack_error,omitempty"`
	UpToDate  bool      `json:"up_to_date"`
}

// Status reports the snapshot and every connected node.
func (s *Server) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := Status{Versions: map[string]string{}, Unrouted: map[string]string{}, Nodes: []NodeStatus{}}
	if s.snap != nil {
		for _, typ := range snapshotTypes {
			out.Versions[shortType(typ)] = s.snap.GetVersion(typ)
		}
		out.BuiltAt = s.built.UTC()
		out.Routed = len(s.res.Routed)
		for k, v := range s.res.Unrouted {
			out.Unrouted[k] = v
		}
	}
	for id, st := range s.streams {
		ns := NodeStatus{Stream: id, Node: st.Node, Cluster: st.Cluster, Protocol: st.Protocol, Since: st.Since, Types: map[string]typeView{}}
		for typ, ts := range st.Types {
			cur := ""
			if s.snap != nil {
				cur = s.snap.GetVersion(typ)
			}
			ns.Types[shortType(typ)] = typeView{Sent: ts.Sent, Acked: ts.Acked, AckedAt: ts.AckedAt, NackError: ts.NackError, UpToDate: ts.Acked != "" && ts.Acked == cur}
		}
		out.Nodes = append(out.Nodes, ns)
	}
	sort.Slice(out.Nodes, func(i, j int) bool { return out.Nodes[i].Stream < out.Nodes[j].Stream })
	return out
}

// Versions returns the current snapshot's version per type URL.
func (s *Server) Versions() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]string{}
	if s.snap != nil {
		for _, typ := range snapshotTypes {
			out[typ] = s.snap.GetVersion(typ)
		}
	}
	return out
}
