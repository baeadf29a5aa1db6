// Package xds turns the agent registry into Envoy configuration: one builder
// (Build) makes the listeners, routes and clusters that the ADS server in
// `mcp-gateway serve` pushes to Envoy and that `mcp-gateway envoy-config`
// prints as a static bootstrap (envoy/envoy.yaml is that output).
package xds

import (
	"cmp"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"time"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	mutationrulesv3 "github.com/envoyproxy/go-control-plane/envoy/config/common/mutation_rules/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	streamv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	headermutationv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/header_mutation/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	reqwithoutqueryv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/formatter/req_without_query/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	xdscorev3 "github.com/cncf/xds/go/xds/core/v3"
	xdsmatcherv3 "github.com/cncf/xds/go/xds/type/matcher/v3"

	"github.com/mcpgateway/mcp-gateway/internal/routes"
	"github.com/mcpgateway/mcp-gateway/store"
)

// Mode is how Envoy asks the gateway for a decision.
type Mode string

const (
	// ModeGRPC: ext_authz over gRPC to the Check (listen.grpc).
	ModeGRPC Mode = "grpc"
	// ModeHTTPService: ext_authz http_service to /authz/check on listen.http.
	ModeHTTPService Mode = "http-service"
)

// Names of the fixed resources.
const (
	ListenerPublic  = "mcp_ingress"
	ListenerStats   = "envoy_stats"
	RouteConfigName = "mcp"
	ClusterAuthz    = "mcp_gateway_authz"
	ClusterHTTP     = "mcp_gateway_http"
	ClusterAdmin    = "envoy_admin"

	filterCORS     = "envoy.filters.http.cors"
	filterExtAuthz = "envoy.filters.http.ext_authz"
	filterHeaders  = "envoy.filters.http.header_mutation"
	filterRouter   = "envoy.filters.http.router"
)

// StreamIdleTimeout ends an agent stream on which nothing moved for this
// long. MCP's SSE streams sit idle between events, so Envoy's default of 5
// minutes would cut them; an hour still frees streams whose peer vanished.
const StreamIdleTimeout = time.Hour

// Options configures Build.
type Options struct {
	Mode Mode
	// GatewayHTTP and GatewayGRPC are host:port of the gateway's HTTP and
	// gRPC listeners as Envoy reaches them (e.g. gateway:8080, gateway:9191).
	GatewayHTTP string
	GatewayGRPC string
	// ListenPort is Envoy's public port (default 8000); StatsPort serves
	// /stats/prometheus (default 9902); AdminPort is Envoy's loopback admin
	// (default 9901).
	ListenPort, StatsPort, AdminPort uint32
	// UpstreamCAFile validates https agents instead of the system roots.
	UpstreamCAFile string
	// CheckUpstream refuses an agent's upstream URL (nil: CheckUpstreamURL
	// with no exceptions). An agent refused gets no route.
	CheckUpstream func(string) error

	// upstreamHeaders: the agents' upstream_auth headers (Build sets it),
	// which http_service passes from the Check's answer.
	upstreamHeaders []string

	// pieces, when set, keeps each agent's cluster and routes from one
	// build to the next (the ADS server's rebuilds), so a change costs the
	// changed agent's encoding, not every agent's.
	pieces *pieceCache
}

// pieceCache holds the per-agent resources of the last build, by agent id.
type pieceCache struct {
	mu   sync.Mutex
	last map[string]*agentPieces
}

type agentPieces struct {
	upstream string
	cluster  *clusterv3.Cluster
	routes   *xdsmatcherv3.Matcher_OnMatch
}

// agentPieces returns a's cluster and route list, reused when a's upstream,
// whether its body is read and whether it keeps Authorization are what they were (everything else they
// depend on is fixed per Options).
func (o *Options) agentPieces(a agentUpstream, next map[string]*agentPieces) (*agentPieces, error) {
	raw := a.url.String()
	if a.readBody {
		raw += " body"
	}
	if a.keepAuthorization {
		raw += " authorization"
	}
	if o.pieces != nil {
		o.pieces.mu.Lock()
		p := o.pieces.last[a.id]
		o.pieces.mu.Unlock()
		if p != nil && p.upstream == raw {
			next[a.id] = p
			return p, nil
		}
	}
	c, err := agentCluster(a, o.UpstreamCAFile)
	if err != nil {
		return nil, err
	}
	p := &agentPieces{upstream: raw, cluster: c, routes: routeList("agent_"+a.id, append(agentRoutes(a), notFoundRoute()))}
	next[a.id] = p
	return p, nil
}

func (o *Options) defaults() {
	if o.Mode == "" {
		o.Mode = ModeGRPC
	}
	if o.ListenPort == 0 {
		o.ListenPort = 8000
	}
	if o.StatsPort == 0 {
		o.StatsPort = 9902
	}
	if o.AdminPort == 0 {
		o.AdminPort = 9901
	}
	if o.CheckUpstream == nil {
		g := Guard{}
		o.CheckUpstream = g.Check
	}
}

// Resources is one complete Envoy configuration.
type Resources struct {
	Listeners []*listenerv3.Listener
	Routes    []*routev3.RouteConfiguration
	Clusters  []*clusterv3.Cluster
	// Unrouted: agent id → why it has no route (no upstream, refused URL).
	Unrouted map[string]string
	// Routed lists the agent ids that have a route, sorted.
	Routed []string
}

// Build makes the configuration for agents. With ads set the public
// listener takes its routes from RDS over ADS; otherwise they are inline.
// The output depends only on its input, so every replica builds identical
// resources (and identical version hashes) for one registry.
func Build(opts Options, agents []store.Agent, ads bool) (*Resources, error) {
	opts.defaults()
	if opts.Mode != ModeGRPC && opts.Mode != ModeHTTPService {
		return nil, fmt.Errorf("xds: mode %q: want %q or %q", opts.Mode, ModeGRPC, ModeHTTPService)
	}
	agents = slices.Clone(agents)
	slices.SortFunc(agents, func(a, b store.Agent) int { return cmp.Compare(a.ID, b.ID) })
	agents = slices.CompactFunc(agents, func(a, b store.Agent) bool { return a.ID == b.ID })

	res := &Resources{Unrouted: map[string]string{}}
	var ups []agentUpstream
	var declared []string // every agent's upstream_auth header: what the Check's answer may carry
	for _, a := range agents {
		h := a.DeclaredHeader()
		if h != "" {
			declared = append(declared, h)
		}
		u, reason := RouteFor(a, opts.CheckUpstream)
		if u == nil {
			res.Unrouted[a.ID] = reason
			continue
		}
		ups = append(ups, agentUpstream{id: a.ID, url: u, readBody: len(a.Rules) > 0, keepAuthorization: h == "authorization"})
		res.Routed = append(res.Routed, a.ID)
	}
	slices.Sort(declared)
	opts.upstreamHeaders = slices.Compact(declared)

	gwHTTP, err := endpointCluster(ClusterHTTP, opts.GatewayHTTP, false)
	if err != nil {
		return nil, fmt.Errorf("%w (Envoy reaches the gateway's listen.http there; set xds.gateway_http)", err)
	}
	res.Clusters = append(res.Clusters, gwHTTP)
	if opts.Mode == ModeGRPC {
		c, err := endpointCluster(ClusterAuthz, opts.GatewayGRPC, true)
		if err != nil {
			return nil, fmt.Errorf("%w (Envoy reaches the gateway's listen.grpc there; set xds.gateway_grpc)", err)
		}
		res.Clusters = append(res.Clusters, c)
	}
	admin, err := endpointCluster(ClusterAdmin, net.JoinHostPort("127.0.0.1", strconv.Itoa(int(opts.AdminPort))), false)
	if err != nil {
		return nil, err
	}
	admin.ConnectTimeout = durationpb.New(250 * time.Millisecond)
	res.Clusters = append(res.Clusters, admin)
	next := make(map[string]*agentPieces, len(ups))
	lists := make(map[string]*xdsmatcherv3.Matcher_OnMatch, len(ups))
	for _, a := range ups {
		p, err := opts.agentPieces(a, next)
		if err != nil {
			return nil, err
		}
		res.Clusters = append(res.Clusters, p.cluster)
		lists[routes.AgentPaths(a.id)[0]] = p.routes
	}
	if opts.pieces != nil {
		opts.pieces.mu.Lock()
		opts.pieces.last = next
		opts.pieces.mu.Unlock()
	}

	rc := publicRoutes(lists)
	var pub *listenerv3.Listener
	if ads {
		res.Routes = append(res.Routes, rc)
		pub = publicListener(opts, nil)
	} else {
		pub = publicListener(opts, rc)
	}
	res.Listeners = append(res.Listeners, pub, statsListener(opts))
	return res, nil
}

type agentUpstream struct {
	id  string
	url *url.URL
	// readBody: the agent has a tool policy, so its routes send the Check
	// the JSON-RPC body (clients before 2026-07-28 send no Mcp-Method).
	readBody bool
	// keepAuthorization: the agent's upstream_auth header is Authorization,
	// which the Check sets (over the client's); its routes must not remove it.
	keepAuthorization bool
}

// RouteFor returns the agent's upstream URL when Envoy can route to it, or
// nil and the reason it gets no route.
func RouteFor(a store.Agent, check func(string) error) (*url.URL, string) {
	if a.Upstream == "" {
		return nil, "the agent has no upstream URL, so no proxy routes /" + a.ID + "/mcp"
	}
	if check != nil {
		if err := check(a.Upstream); err != nil {
			return nil, err.Error()
		}
	}
	u, err := url.Parse(a.Upstream)
	if err != nil {
		return nil, "upstream: " + err.Error()
	}
	if u.RawQuery != "" || u.ForceQuery {
		// prefix_rewrite replaces the path only; a query in the upstream
		// would end up in front of the client's.
		return nil, "upstream URL has a query string, which Envoy cannot add to the client's"
	}
	return u, ""
}

// mustAny packs m deterministically (map fields sorted): the bytes inside
// an Any are part of the content hash that versions a snapshot, so two
// replicas (or two builds) of one registry must produce the same ones.
func mustAny(m proto.Message) *anypb.Any {
	a := &anypb.Any{}
	if err := anypb.MarshalFrom(a, m, proto.MarshalOptions{Deterministic: true}); err != nil {
		panic(err) // only for messages of linked types: a programming error
	}
	return a
}

func hostPort(addr string) (string, uint32, error) {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("xds: %q: %w", addr, err)
	}
	n, err := strconv.ParseUint(p, 10, 16)
	if err != nil || n == 0 {
		return "", 0, fmt.Errorf("xds: %q: bad port", addr)
	}
	if h == "" || h == "0.0.0.0" || h == "::" {
		h = "127.0.0.1"
	}
	return h, uint32(n), nil
}

// endpointCluster is a cluster of one host:port; DNS names resolve with
// STRICT_DNS (every replica behind the name), IP literals are STATIC.
func endpointCluster(name, addr string, http2 bool) (*clusterv3.Cluster, error) {
	h, port, err := hostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	c := &clusterv3.Cluster{
		Name:           name,
		ConnectTimeout: durationpb.New(time.Second),
		LoadAssignment: &endpointv3.ClusterLoadAssignment{
			ClusterName: name,
			Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: []*endpointv3.LbEndpoint{{
				HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
					Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
						Address: h, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
					}}},
				}},
			}}}},
		},
	}
	if net.ParseIP(h) != nil {
		c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC}
	} else {
		c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STRICT_DNS}
		c.DnsLookupFamily = clusterv3.Cluster_V4_PREFERRED
	}
	if http2 {
		c.TypedExtensionProtocolOptions = map[string]*anypb.Any{
			"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": mustAny(&upstreamhttpv3.HttpProtocolOptions{
				UpstreamProtocolOptions: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig{
					ProtocolConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: &corev3.Http2ProtocolOptions{}},
				}},
			}),
		}
		// The gateway serves grpc.health.v1; a replica that stops answering is skipped.
		c.HealthChecks = []*corev3.HealthCheck{{
			Timeout:            durationpb.New(time.Second),
			Interval:           durationpb.New(5 * time.Second),
			UnhealthyThreshold: wrapperspb.UInt32(2),
			HealthyThreshold:   wrapperspb.UInt32(1),
			HealthChecker:      &corev3.HealthCheck_GrpcHealthCheck_{GrpcHealthCheck: &corev3.HealthCheck_GrpcHealthCheck{}},
		}}
	}
	return c, nil
}

// AgentCluster is the name of an agent's cluster.
func AgentCluster(id string) string { return "agent_" + id }

func agentCluster(a agentUpstream, caFile string) (*clusterv3.Cluster, error) {
	port := a.url.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[a.url.Scheme]
	}
	c, err := endpointCluster(AgentCluster(a.id), net.JoinHostPort(a.url.Hostname(), port), false)
	if err != nil {
		return nil, err
	}
	if a.url.Scheme != "https" {
		return c, nil
	}
	host := a.url.Hostname()
	vc := &tlsv3.CertificateValidationContext{}
	if caFile != "" {
		vc.TrustedCa = &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: caFile}}
	} else {
		vc.SystemRootCerts = &tlsv3.CertificateValidationContext_SystemRootCerts{}
	}
	san := &tlsv3.SubjectAltNameMatcher{SanType: tlsv3.SubjectAltNameMatcher_DNS,
		Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: host}}}
	if net.ParseIP(host) != nil {
		san.SanType = tlsv3.SubjectAltNameMatcher_IP_ADDRESS
	}
	vc.MatchTypedSubjectAltNames = []*tlsv3.SubjectAltNameMatcher{san}
	tc := &tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
		ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: vc},
	}}
	if net.ParseIP(host) == nil {
		tc.Sni = host
	}
	c.TransportSocket = &corev3.TransportSocket{
		Name:       "envoy.transport_sockets.tls",
		ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(tc)},
	}
	return c, nil
}

// corsPolicy: any origin (MCP clients run in browsers on their own origins;
// the credential is a bearer token, never a cookie).
func corsPolicy(methods string) *anypb.Any {
	return mustAny(&corsv3.CorsPolicy{
		AllowOriginStringMatch: []*matcherv3.StringMatcher{{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: ".*"}}}},
		AllowMethods:           methods,
		AllowHeaders:           routes.AgentCORSAllowHeaders,
		ExposeHeaders:          routes.AgentCORSExposeHeaders,
		MaxAge:                 routes.AgentCORSMaxAge,
	})
}

// corsOff: the browser pages (login, consent, account) are same-origin
// only; no other origin may read them (their forms carry CSRF values).
func corsOff() *anypb.Any {
	return mustAny(&corsv3.CorsPolicy{FilterEnabled: &corev3.RuntimeFractionalPercent{
		DefaultValue: &typev3.FractionalPercent{Numerator: 0},
	}})
}

func authzDisabled() *anypb.Any {
	return mustAny(&extauthzv3.ExtAuthzPerRoute{Override: &extauthzv3.ExtAuthzPerRoute_Disabled{Disabled: true}})
}

func jsonResponse(status uint32, body string) *routev3.Route_DirectResponse {
	return &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{
		Status: status,
		Body:   &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: body}},
	}}
}

var jsonContentType = []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "content-type", Value: "application/json"}}}

// gatewayRoute is one of the authorization server's routes, ext_authz off.
func gatewayRoute(r routes.Route) *routev3.Route {
	m := &routev3.RouteMatch{}
	if r.Match == routes.Prefix {
		m.PathSpecifier = &routev3.RouteMatch_Prefix{Prefix: r.Path}
	} else {
		m.PathSpecifier = &routev3.RouteMatch_PathSeparatedPrefix{PathSeparatedPrefix: r.Path}
	}
	pf := map[string]*anypb.Any{filterExtAuthz: authzDisabled(), filterCORS: corsOff()}
	if r.CORS {
		pf[filterCORS] = corsPolicy("GET, POST, OPTIONS")
	}
	return &routev3.Route{
		Name:  r.Name,
		Match: m,
		Action: &routev3.Route_Route{Route: &routev3.RouteAction{
			ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: ClusterHTTP},
			Timeout:          durationpb.New(15 * time.Second),
		}},
		TypedPerFilterConfig: pf,
	}
}

// faviconRoute answers a browser's /favicon.ico with 204, no check.
func faviconRoute() *routev3.Route {
	return &routev3.Route{
		Name:                 "favicon",
		Match:                &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: routes.Favicon}},
		Action:               &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{Status: 204}},
		TypedPerFilterConfig: map[string]*anypb.Any{filterExtAuthz: authzDisabled()},
	}
}

func notFoundRoute() *routev3.Route {
	return &routev3.Route{
		Name:                 "not_found",
		Match:                &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
		Action:               jsonResponse(404, `{"error":"not_found"}`),
		ResponseHeadersToAdd: jsonContentType,
		TypedPerFilterConfig: map[string]*anypb.Any{filterExtAuthz: authzDisabled()},
	}
}

// notRoutedRoute: any other /<agent>/mcp still goes through ext_authz, so a
// client gets the gateway's answer (401 + challenge, 403, 404 unknown
// agent); an agent the gateway allows but has no route for ends here.
func notRoutedRoute() *routev3.Route {
	return &routev3.Route{
		Name:                 "agent_not_routed",
		Match:                &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "^/[A-Za-z0-9._-]{1,128}/mcp/?$"}}},
		Action:               jsonResponse(404, `{"error":"not_found","error_description":"no route to this agent"}`),
		ResponseHeadersToAdd: jsonContentType,
	}
}

// policyBody is what an agent with a tool policy sends the Check: the whole
// JSON-RPC body up to the 64 KiB the policy reads, as bytes; a larger one is
// refused by Envoy (413) rather than judged on a part. Only on such agents'
// routes, so agents without rules take bodies of any size unbuffered.
func policyBody(a agentUpstream) *extauthzv3.BufferSettings {
	if !a.readBody {
		return nil
	}
	return &extauthzv3.BufferSettings{MaxRequestBytes: MaxPolicyBody, AllowPartialMessage: false, PackAsBytes: true}
}

// MaxPolicyBody matches authz.MaxMCPBody, the largest body the tool policy
// reads (a test keeps them equal).
const MaxPolicyBody = 64 << 10

// removeOnRoute: the gateway's Check removes the client's Authorization
// too; removing it at the route keeps it so with any authorizer. Not for an
// agent whose upstream credential is Authorization: the route's removal runs
// after ext_authz and would drop the Check's value (which already replaced
// the client's).
func removeOnRoute(a agentUpstream) []string {
	if a.keepAuthorization {
		return nil
	}
	return []string{"authorization"}
}

// agentRoutes are the two exact paths of one agent, to its cluster.
func agentRoutes(a agentUpstream) []*routev3.Route {
	rewrite := a.url.EscapedPath()
	if rewrite == "" {
		rewrite = "/"
	}
	pf := map[string]*anypb.Any{
		// The gRPC Check compares this with the agent in the path and denies
		// a mismatch: a route can only ever reach the agent it was built
		// for. http_service does not send context extensions; there the
		// check judges the path alone (the same path Envoy routes on).
		filterExtAuthz: mustAny(&extauthzv3.ExtAuthzPerRoute{Override: &extauthzv3.ExtAuthzPerRoute_CheckSettings{
			CheckSettings: &extauthzv3.CheckSettings{ContextExtensions: map[string]string{"agent": a.id}, WithRequestBody: policyBody(a)},
		}}),
	}
	var out []*routev3.Route
	for i, p := range routes.AgentPaths(a.id) {
		name := "agent_" + a.id
		if i == 1 {
			name += "_slash"
		}
		out = append(out, &routev3.Route{
			Name:  name,
			Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: p}},
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{
				ClusterSpecifier:     &routev3.RouteAction_Cluster{Cluster: AgentCluster(a.id)},
				PrefixRewrite:        rewrite,
				HostRewriteSpecifier: &routev3.RouteAction_HostRewriteLiteral{HostRewriteLiteral: a.url.Host},
				// Streamable HTTP keeps GET (SSE) streams open: no route timeout.
				Timeout:     durationpb.New(0),
				IdleTimeout: durationpb.New(StreamIdleTimeout),
			}},
			RequestHeadersToRemove: removeOnRoute(a),
			TypedPerFilterConfig:   pf,
		})
	}
	return out
}

// publicRoutes is the route table of the public listener. Its virtual host
// uses Envoy's matcher tree, not a list of routes: a prefix map (a trie) on
// :path finds a request's candidates in time that grows with the path's
// length, not with the agent count, so 10,000 agents do not make each
// request try 20,000 routes. Each map entry is a short RouteList whose
// routes Envoy still matches in order (exact agent paths, then not_found),
// so /demo/mcpx or /demo/mcp/extra end in a 404 as before. The path input
// carries the query, hence a prefix map rather than an exact one.
func publicRoutes(agentLists map[string]*xdsmatcherv3.Matcher_OnMatch) *routev3.RouteConfiguration {
	entries := map[string]*xdsmatcherv3.Matcher_OnMatch{}
	for _, r := range routes.Gateway {
		if r.DevOnly {
			continue
		}
		list := []*routev3.Route{gatewayRoute(r)}
		if r.Match == routes.Segment {
			list = append(list, notFoundRoute()) // /loginx
		}
		entries[r.Path] = routeList(r.Name, list)
	}
	entries[routes.Favicon] = routeList("favicon", []*routev3.Route{faviconRoute(), notFoundRoute()})
	for path, l := range agentLists {
		entries[path] = l
	}
	return &routev3.RouteConfiguration{
		Name: RouteConfigName,
		VirtualHosts: []*routev3.VirtualHost{{
			Name:    RouteConfigName,
			Domains: []string{"*"},
			// The MCP CORS policy once for every route (agents, their 404s);
			// the gateway's routes set their own. Per agent route it would
			// be a quarter of the route table's bytes.
			TypedPerFilterConfig: map[string]*anypb.Any{filterCORS: corsPolicy(routes.AgentCORSMethods)},
			Matcher: &xdsmatcherv3.Matcher{
				MatcherType: &xdsmatcherv3.Matcher_MatcherTree_{MatcherTree: &xdsmatcherv3.Matcher_MatcherTree{
					Input: &xdscorev3.TypedExtensionConfig{
						Name:        "path",
						TypedConfig: mustAny(&matcherv3.HttpRequestHeaderMatchInput{HeaderName: ":path"}),
					},
					TreeType: &xdsmatcherv3.Matcher_MatcherTree_PrefixMatchMap{PrefixMatchMap: &xdsmatcherv3.Matcher_MatcherTree_MatchMap{Map: entries}},
				}},
				OnNoMatch: routeList("fallback", []*routev3.Route{notRoutedRoute(), notFoundRoute()}),
			},
		}},
	}
}

func routeList(name string, rs []*routev3.Route) *xdsmatcherv3.Matcher_OnMatch {
	return &xdsmatcherv3.Matcher_OnMatch{OnMatch: &xdsmatcherv3.Matcher_OnMatch_Action{Action: &xdscorev3.TypedExtensionConfig{
		Name:        name,
		TypedConfig: mustAny(&routev3.RouteList{Routes: rs}),
	}}}
}

// identityHeaderPrefix: every request header with this prefix is the
// gateway's to set. The client's are removed before ext_authz runs, whatever
// their name (x-mcp-role as well as x-mcp-user), in both ext_authz modes.
const identityHeaderPrefix = "x-mcp-"

func stripClientIdentity() *anypb.Any {
	return mustAny(&headermutationv3.HeaderMutation{Mutations: &headermutationv3.Mutations{
		RequestMutations: []*mutationrulesv3.HeaderMutation{{
			Action: &mutationrulesv3.HeaderMutation_RemoveOnMatch_{RemoveOnMatch: &mutationrulesv3.HeaderMutation_RemoveOnMatch{
				KeyMatcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: identityHeaderPrefix}, IgnoreCase: true},
			}},
		}},
	}})
}

func extAuthz(opts Options) *anypb.Any {
	ea := &extauthzv3.ExtAuthz{
		TransportApiVersion: corev3.ApiVersion_V3,
		// Fail closed: the gateway unreachable or slow → 503, never allow.
		FailureModeAllow:       false,
		StatusOnError:          &typev3.HttpStatus{Code: typev3.StatusCode_ServiceUnavailable},
		IncludePeerCertificate: false,
	}
	if opts.Mode == ModeGRPC {
		ea.Services = &extauthzv3.ExtAuthz_GrpcService{GrpcService: &corev3.GrpcService{
			TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: ClusterAuthz}},
			Timeout:         durationpb.New(250 * time.Millisecond),
		}}
		return mustAny(ea)
	}
	exact := func(s string) *matcherv3.StringMatcher {
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: s}, IgnoreCase: true}
	}
	// Host, method and path are always sent; besides them the gateway reads
	// the credential, the MCP version and request headers (tool policy), the
	// Origin (refused unless admitted) and the trace context (its span
	// continues the client's trace).
	ea.AllowedHeaders = &matcherv3.ListStringMatcher{Patterns: []*matcherv3.StringMatcher{
		exact("authorization"), exact("mcp-protocol-version"), exact("mcp-method"), exact("mcp-name"),
		exact("origin"), exact("traceparent"), exact("tracestate"),
	}}
	ea.Services = &extauthzv3.ExtAuthz_HttpService{HttpService: &extauthzv3.HttpService{
		ServerUri: &corev3.HttpUri{
			Uri:              "http://" + opts.GatewayHTTP,
			HttpUpstreamType: &corev3.HttpUri_Cluster{Cluster: ClusterHTTP},
			Timeout:          durationpb.New(250 * time.Millisecond),
		},
		PathPrefix: "/authz/check",
		AuthorizationResponse: &extauthzv3.AuthorizationResponse{
			AllowedUpstreamHeaders: &matcherv3.ListStringMatcher{Patterns: upstreamPatterns(opts.upstreamHeaders, exact)},
			// The challenge (and the JSON error's type) for the client on 401/403.
			AllowedClientHeaders: &matcherv3.ListStringMatcher{Patterns: []*matcherv3.StringMatcher{exact("www-authenticate"), exact("content-type")}},
		},
	}}
	return mustAny(ea)
}

// upstreamPatterns: what Envoy takes from the check's 200 answer onto the
// request (overwriting the client's value): the identity (x-mcp-user,
// -agent, -client-id, -scope, -credential, -identity) and each header an
// agent's upstream_auth declares (the check sets it only for that agent and
// removes the client's Authorization for the others).
func upstreamPatterns(declared []string, exact func(string) *matcherv3.StringMatcher) []*matcherv3.StringMatcher {
	ps := []*matcherv3.StringMatcher{{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: identityHeaderPrefix}, IgnoreCase: true}}
	for _, h := range declared {
		ps = append(ps, exact(h))
	}
	return ps
}

func accessLog() []*accesslogv3.AccessLog {
	f := func(s string) *structpb.Value { return structpb.NewStringValue(s) }
	return []*accesslogv3.AccessLog{{
		Name: "envoy.access_loggers.stdout",
		ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: mustAny(&streamv3.StdoutAccessLog{
			AccessLogFormat: &streamv3.StdoutAccessLog_LogFormat{LogFormat: &corev3.SubstitutionFormatString{
				Format: &corev3.SubstitutionFormatString_JsonFormat{JsonFormat: &structpb.Struct{Fields: map[string]*structpb.Value{
					"time":        f("%START_TIME%"),
					"method":      f("%REQ(:METHOD)%"),
					"path":        f("%REQ_WITHOUT_QUERY(:PATH)%"), // no code or state in the log
					"status":      f("%RESPONSE_CODE%"),
					"flags":       f("%RESPONSE_FLAGS%"),
					"duration_ms": f("%DURATION%"),
					"bytes_sent":  f("%BYTES_SENT%"),
					"upstream":    f("%UPSTREAM_CLUSTER%"),
					"client":      f("%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%"),
					"request_id":  f("%REQ(X-REQUEST-ID)%"),
					"user_agent":  f("%REQ(USER-AGENT)%"),
					// Who was let in (the identity headers the answer set) and
					// why one was refused (a gRPC denial's metadata).
					"mcp_user":        f("%REQ(X-MCP-USER)%"),
					"mcp_agent":       f("%REQ(X-MCP-AGENT)%"),
					"mcp_client_id":   f("%REQ(X-MCP-CLIENT-ID)%"),
					"mcp_credential":  f("%REQ(X-MCP-CREDENTIAL)%"),
					"mcp_deny_reason": f("%DYNAMIC_METADATA(envoy.filters.http.ext_authz:reason)%"),
				}}},
				Formatters: []*corev3.TypedExtensionConfig{{
					Name:        "envoy.formatter.req_without_query",
					TypedConfig: mustAny(&reqwithoutqueryv3.ReqWithoutQuery{}),
				}},
			}},
		})},
	}}
}

func httpFilter(name string, cfg *anypb.Any) *hcmv3.HttpFilter {
	return &hcmv3.HttpFilter{Name: name, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: cfg}}
}

func socketAddress(ip string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: ip, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
	}}}
}

func hcmListener(name string, port uint32, h *hcmv3.HttpConnectionManager) *listenerv3.Listener {
	return &listenerv3.Listener{
		Name:    name,
		Address: socketAddress("0.0.0.0", port),
		FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{
			Name:       "envoy.filters.network.http_connection_manager",
			ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(h)},
		}}}},
	}
}

// publicListener: CORS first (a preflight is answered, never challenged),
// client identity headers dropped, ext_authz, router. rc nil: RDS over ADS.
func publicListener(opts Options, rc *routev3.RouteConfiguration) *listenerv3.Listener {
	h := &hcmv3.HttpConnectionManager{
		StatPrefix: "ingress_http",
		CodecType:  hcmv3.HttpConnectionManager_AUTO,
		// Edge proxy: the peer address is the client; X-Forwarded-For gets it appended.
		UseRemoteAddress: wrapperspb.Bool(true),
		// The gateway denies anything but a canonical /<agent>/mcp; normalising
		// here as well means Envoy routes on the same path the gateway judges.
		NormalizePath:                wrapperspb.Bool(true),
		MergeSlashes:                 true,
		PathWithEscapedSlashesAction: hcmv3.HttpConnectionManager_REJECT_REQUEST,
		RequestHeadersTimeout:        durationpb.New(10 * time.Second),
		CommonHttpProtocolOptions: &corev3.HttpProtocolOptions{
			// x_mcp_user would slip past the x-mcp- removal, and some
			// upstream frameworks treat "_" and "-" in header names alike.
			HeadersWithUnderscoresAction: corev3.HttpProtocolOptions_DROP_HEADER,
		},
		AccessLog: accessLog(),
		HttpFilters: []*hcmv3.HttpFilter{
			httpFilter(filterCORS, mustAny(&corsv3.Cors{})),
			httpFilter(filterHeaders, stripClientIdentity()),
			httpFilter(filterExtAuthz, extAuthz(opts)),
			httpFilter(filterRouter, mustAny(&routerv3.Router{})),
		},
	}
	if rc != nil {
		h.RouteSpecifier = &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: rc}
	} else {
		h.RouteSpecifier = &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			RouteConfigName: RouteConfigName,
			ConfigSource: &corev3.ConfigSource{
				ResourceApiVersion:    corev3.ApiVersion_V3,
				ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
			},
		}}
	}
	return hcmListener(ListenerPublic, opts.ListenPort, h)
}

// statsListener: Envoy's Prometheus stats for scrapers on the network,
// without the rest of admin.
func statsListener(opts Options) *listenerv3.Listener {
	toAdmin := func(path string) *routev3.Route {
		return &routev3.Route{
			Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: path}},
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: ClusterAdmin}}},
		}
	}
	h := &hcmv3.HttpConnectionManager{
		StatPrefix:                   "envoy_stats",
		NormalizePath:                wrapperspb.Bool(true),
		MergeSlashes:                 true,
		PathWithEscapedSlashesAction: hcmv3.HttpConnectionManager_REJECT_REQUEST,
		HttpFilters:                  []*hcmv3.HttpFilter{httpFilter(filterRouter, mustAny(&routerv3.Router{}))},
		RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: &routev3.RouteConfiguration{
			Name: "envoy_stats",
			VirtualHosts: []*routev3.VirtualHost{{
				Name:    "envoy_stats",
				Domains: []string{"*"},
				Routes: []*routev3.Route{
					toAdmin("/stats/prometheus"),
					toAdmin("/ready"),
					{
						Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
						Action: &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{Status: 404}},
					},
				},
			}},
		}},
	}
	return hcmListener(ListenerStats, opts.StatsPort, h)
}
