package xds

import (
	"fmt"
	"net"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	overloadv3 "github.com/envoyproxy/go-control-plane/envoy/config/overload/v3"
	downstreamconnectionsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/resource_monitors/downstream_connections/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"sigs.k8s.io/yaml"

	"github.com/mcpgateway/mcp-gateway/config"
	"github.com/mcpgateway/mcp-gateway/store"
)

// OptionsFromConfig maps the config's xds block to builder options. The
// gateway's addresses default to 127.0.0.1 and the listen ports.
func OptionsFromConfig(cfg *config.Config) (Options, error) {
	guard, err := NewGuard(cfg.XDS.AllowedUpstreamHosts)
	if err != nil {
		return Options{}, err
	}
	o := Options{
		Mode:           Mode(cfg.XDS.Mode),
		GatewayHTTP:    cfg.XDS.GatewayHTTP,
		GatewayGRPC:    cfg.XDS.GatewayGRPC,
		UpstreamCAFile: cfg.XDS.UpstreamCAFile,
		CheckUpstream:  guard.Check,
	}
	local := func(listen string) string {
		if _, port, err := net.SplitHostPort(listen); err == nil {
			return net.JoinHostPort("127.0.0.1", port)
		}
		return ""
	}
	if o.GatewayHTTP == "" {
		o.GatewayHTTP = local(cfg.Listen.HTTP)
	}
	if o.GatewayGRPC == "" {
		o.GatewayGRPC = local(cfg.Listen.GRPC)
	}
	return o, nil
}

func admin(port uint32) *bootstrapv3.Admin {
	// Admin is local only: it can change Envoy's state. Prometheus reads the
	// stats through the envoy_stats listener, which exposes them alone.
	return &bootstrapv3.Admin{Address: socketAddress("127.0.0.1", port)}
}

func overload() *overloadv3.OverloadManager {
	return &overloadv3.OverloadManager{ResourceMonitors: []*overloadv3.ResourceMonitor{{
		Name: "envoy.resource_monitors.global_downstream_max_connections",
		ConfigType: &overloadv3.ResourceMonitor_TypedConfig{TypedConfig: mustAny(
			&downstreamconnectionsv3.DownstreamConnectionsConfig{MaxActiveDownstreamConnections: 50000})},
	}}}
}

// StaticBootstrap is a complete Envoy bootstrap for agents, routes inline:
// for running Envoy without the control plane.
func StaticBootstrap(opts Options, agents []store.Agent) (*bootstrapv3.Bootstrap, *Resources, error) {
	opts.defaults()
	res, err := Build(opts, agents, false)
	if err != nil {
		return nil, nil, err
	}
	return &bootstrapv3.Bootstrap{
		Admin:           admin(opts.AdminPort),
		OverloadManager: overload(),
		StaticResources: &bootstrapv3.Bootstrap_StaticResources{Listeners: res.Listeners, Clusters: res.Clusters},
	}, res, nil
}

// ADSBootstrapOptions configures ADSBootstrap.
type ADSBootstrapOptions struct {
	// NodeID names this Envoy (--service-node overrides it); NodeCluster is
	// the snapshot it gets: every Envoy of one deployment shares it.
	NodeID, NodeCluster string
	// Server is host:port of the gateway's xds.listen.
	Server string
	// TLS: connect with TLS, validating the server against CAFile; with
	// CertFile/KeyFile, present a client certificate (mutual TLS).
	TLS                       bool
	CAFile, CertFile, KeyFile string
	AdminPort                 uint32
	// Delta: incremental xDS (DELTA_GRPC). A changed agent then costs its
	// own cluster instead of every cluster; the route table is one
	// resource either way.
	Delta bool
}

// ClusterXDS is the bootstrap's one cluster: the gateway's ADS listener.
const ClusterXDS = "mcp_gateway_xds"

// ADSBootstrap is the bootstrap of an Envoy that gets everything else from
// the gateway over ADS: node, admin, the overload limit (bootstrap-only
// settings) and the ADS cluster.
func ADSBootstrap(o ADSBootstrapOptions) (*bootstrapv3.Bootstrap, error) {
	if o.AdminPort == 0 {
		o.AdminPort = 9901
	}
	c, err := endpointCluster(ClusterXDS, o.Server, true)
	if err != nil {
		return nil, err
	}
	c.HealthChecks = nil // ADS streams; a lost one reconnects to another replica
	if o.TLS {
		vc := &tlsv3.CertificateValidationContext{}
		if o.CAFile != "" {
			vc.TrustedCa = &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: o.CAFile}}
		} else {
			vc.SystemRootCerts = &tlsv3.CertificateValidationContext_SystemRootCerts{}
		}
		ctc := &tlsv3.CommonTlsContext{ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: vc}}
		if o.CertFile != "" {
			ctc.TlsCertificates = []*tlsv3.TlsCertificate{{
				CertificateChain: &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: o.CertFile}},
				PrivateKey:       &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: o.KeyFile}},
			}}
		}
		h, _, _ := net.SplitHostPort(o.Server)
		c.TransportSocket = &corev3.TransportSocket{Name: "envoy.transport_sockets.tls",
			ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(&tlsv3.UpstreamTlsContext{Sni: h, CommonTlsContext: ctc})}}
	}
	apiType := corev3.ApiConfigSource_GRPC
	if o.Delta {
		apiType = corev3.ApiConfigSource_DELTA_GRPC
	}
	ads := &corev3.ConfigSource{ResourceApiVersion: corev3.ApiVersion_V3, ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}}
	return &bootstrapv3.Bootstrap{
		Node:            &corev3.Node{Id: o.NodeID, Cluster: o.NodeCluster},
		Admin:           admin(o.AdminPort),
		OverloadManager: overload(),
		DynamicResources: &bootstrapv3.Bootstrap_DynamicResources{
			AdsConfig: &corev3.ApiConfigSource{
				ApiType:             apiType,
				TransportApiVersion: corev3.ApiVersion_V3,
				GrpcServices: []*corev3.GrpcService{{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{
					EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: ClusterXDS}}}},
			},
			LdsConfig: ads,
			CdsConfig: ads,
		},
		StaticResources: &bootstrapv3.Bootstrap_StaticResources{Clusters: []*clusterv3.Cluster{c}},
	}, nil
}

// YAML renders a message as YAML after a comment header, deterministically:
// field names as in Envoy's docs, keys sorted.
func YAML(header string, m proto.Message) ([]byte, error) {
	j, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("xds: %w", err)
	}
	y, err := yaml.JSONToYAML(j)
	if err != nil {
		return nil, fmt.Errorf("xds: %w", err)
	}
	return append([]byte(header), y...), nil
}

// StaticHeader is the comment on top of a generated static bootstrap.
func StaticHeader(mode Mode, regen string) string {
	how := "ext_authz over gRPC to the gateway's Check"
	if mode == ModeHTTPService {
		how = "ext_authz http_service: each check is an HTTP request to /authz/check/<path> on the gateway's HTTP listener"
	}
	return "# Envoy v3 static bootstrap for the MCP Gateway (" + how + ").\n" +
		"#\n" +
		"#   client ─► :8000 ─► cors ─► header_mutation (drops every client x-mcp-*) ─► ext_authz ─► router\n" +
		"#     /oauth/, /.well-known/, /login, /consent, /account ─► gateway HTTP (no check)\n" +
		"#     /<agent>/mcp, /<agent>/mcp/ (exact, via a prefix-map matcher) ─► that agent's cluster\n" +
		"#     anything else ─► 404\n" +
		"#\n" +
		"# GENERATED by `" + regen + "`: do not edit. It is the\n" +
		"# same builder the gateway's ADS server (xds.listen) uses; to add an agent, create it\n" +
		"# (mcp-gateway agents create …) and either run Envoy with envoy-xds.yaml or regenerate.\n" +
		"# Checked against the builder by envoy/xds_test.go.\n"
}

// RenderStatic is the envoy-config output for agents.
func RenderStatic(opts Options, agents []store.Agent, regen string) ([]byte, *Resources, error) {
	b, res, err := StaticBootstrap(opts, agents)
	if err != nil {
		return nil, nil, err
	}
	opts.defaults()
	out, err := YAML(StaticHeader(opts.Mode, regen), b)
	return out, res, err
}

// RenderADS is the ADS bootstrap (envoy-xds.yaml).
func RenderADS(o ADSBootstrapOptions, regen string) ([]byte, error) {
	b, err := ADSBootstrap(o)
	if err != nil {
		return nil, err
	}
	header := "# Envoy v3 bootstrap for the MCP Gateway as control plane: Envoy gets its listeners,\n" +
		"# routes and clusters from the gateway's ADS server (xds.listen, default :18000), built\n" +
		"# from the agent registry; an agent created through the admin API is routed within a\n" +
		"# second. Every Envoy with node.cluster \"" + o.NodeCluster + "\" gets the same snapshot;\n" +
		"# give each its own id with --service-node.\n" +
		"#\n" +
		"# GENERATED by `" + regen + "`: do not edit.\n"
	return YAML(header, b)
}
