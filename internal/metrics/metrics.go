// Package metrics holds the gateway's Prometheus collectors (prefix
// mcp_gateway_) on one registry served at /metrics on the admin listener.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Registry carries the gateway's metrics plus the Go and process collectors.
var Registry = prometheus.NewRegistry()

var (
	// Decisions counts Check decisions. decision: allow|deny|error;
	// reason: ok, missing_credential, invalid_token, expired, revoked,
	// wrong_audience, forbidden, unknown_agent, bad_path, unavailable…;
	// credential: oauth|agent_key|user_key|none.
	Decisions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mcp_gateway_decisions_total",
		Help: "Authorization decisions by outcome, reason and credential kind.",
	}, []string{"decision", "reason", "credential"})

	DecisionSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "mcp_gateway_decision_duration_seconds",
		Help:    "Time to reach an authorization decision, by adapter.",
		Buckets: []float64{.00001, .000025, .00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .1},
	}, []string{"adapter"})

	OAuthRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mcp_gateway_oauth_requests_total",
		Help: "Authorization-server requests by endpoint and HTTP status.",
	}, []string{"endpoint", "status"})

	TokensIssued = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mcp_gateway_tokens_issued_total",
		Help: "Access tokens issued by grant type.",
	}, []string{"grant_type"})

	TokensRevoked = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mcp_gateway_tokens_revoked_total",
		Help: "Revocations by what was revoked (access_token, refresh_family, api_key) and why.",
	}, []string{"kind", "reason"})

	Registrations = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mcp_gateway_client_registrations_total",
		Help: "Dynamic client registrations by result (created, rejected, rate_limited).",
	}, []string{"result"})

	StoreErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mcp_gateway_store_errors_total",
		Help: "Store operations that failed for a reason other than not-found.",
	}, []string{"op"})

	StoreSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "mcp_gateway_store_duration_seconds",
		Help:    "Store operation latency.",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
	}, []string{"op"})

	CacheLookups = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mcp_gateway_cache_lookups_total",
		Help: "In-process cache lookups by cache (api_key, agent, assertion, cimd, oidc_discovery) and result (hit, miss).",
	}, []string{"cache", "result"})

	RateLimited = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mcp_gateway_rate_limited_total",
		Help: "Requests refused with 429, by endpoint.",
	}, []string{"endpoint"})

	// PolicyDecisions counts the tool-policy decisions of agents that have
	// rules or limits. Bounded labels: agent is a registered agent, rule a
	// rule's name ("other" when it has none, "none" when no rule matched);
	// decision allow|deny|rate_limited.
	// AgentDecisions counts every decision by agent. Bounded: agent is a
	// registered agent (config or store), anything else "(other)".
	AgentDecisions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mcp_gateway_agent_decisions_total",
		Help: "Authorization decisions by agent (registered agents; (other) for the rest) and outcome (allow, deny).",
	}, []string{"agent", "decision"})

	PolicyDecisions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mcp_gateway_policy_decisions_total",
		Help: "Tool-policy decisions by agent, rule and outcome.",
	}, []string{"agent", "rule", "decision"})

	SlowBodies = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mcp_gateway_slow_bodies_total",
		Help: "Request bodies cut off by the HTTP listeners: timeout (not received within http.body_timeout) or busy (over http.max_body_reads, answered 503).",
	}, []string{"result"})
	// The xDS control plane (package xds). type: listener|route|cluster.
	XDSStreams = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "mcp_gateway_xds_connected_streams",
		Help: "Envoy ADS streams connected to this replica.",
	})
	XDSPushes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mcp_gateway_xds_pushes_total",
		Help: "xDS responses sent to Envoys, by resource type.",
	}, []string{"type"})
	XDSPushBytes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mcp_gateway_xds_pushed_bytes_total",
		Help: "Bytes of xDS responses sent to Envoys, by resource type.",
	}, []string{"type"})
	XDSAcks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mcp_gateway_xds_acks_total",
		Help: "xDS responses Envoys accepted, by resource type.",
	}, []string{"type"})
	XDSNacks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mcp_gateway_xds_nacks_total",
		Help: "xDS responses Envoys rejected (NACK; the error is logged), by resource type.",
	}, []string{"type"})
	XDSSnapshotVersion = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "mcp_gateway_xds_snapshot_version",
		Help: "1 for the version of each resource type this replica serves (a content hash, equal on every replica).",
	}, []string{"type", "version"})
	XDSBuildSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "mcp_gateway_xds_build_duration_seconds",
		Help:    "Time to build an xDS snapshot from the registry.",
		Buckets: []float64{.0001, .001, .005, .01, .05, .1, .25, .5, 1, 2.5},
	})
)

func init() {
	Registry.MustRegister(
		AgentDecisions,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		Decisions, DecisionSeconds, OAuthRequests, TokensIssued, TokensRevoked,
		Registrations, StoreErrors, StoreSeconds, CacheLookups, RateLimited,
		SlowBodies, PolicyDecisions,
		XDSStreams, XDSPushes, XDSPushBytes, XDSAcks, XDSNacks, XDSSnapshotVersion, XDSBuildSeconds,
	)
}
