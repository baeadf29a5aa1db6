package envoy

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	networkingv1 "istio.io/api/networking/v1"
	"sigs.k8s.io/yaml"

	"github.com/mcpgateway/mcp-gateway/internal/routes"
)

// IstioOptions names what the generated Istio resources attach to. The zero
// value matches the shipped manifests (envoy/istio/).
type IstioOptions struct {
	Name      string   // the VirtualService; default "mcp"
	Namespace string   // default "mcp-gateway"
	Hosts     []string // the public host names; default ["mcp.example.com"]
	Gateways  []string // Istio Gateways; default ["mcp"]
	// GatewayService and GatewayPort are the MCP Gateway's HTTP Service;
	// default mcp-gateway.<Namespace>.svc.cluster.local, 8080.
	GatewayService string
	GatewayPort    uint32
}

func (o *IstioOptions) defaults() {
	if o.Name == "" {
		o.Name = "mcp"
	}
	if o.Namespace == "" {
		o.Namespace = "mcp-gateway"
	}
	if len(o.Hosts) == 0 {
		o.Hosts = []string{"mcp.example.com"}
	}
	if len(o.Gateways) == 0 {
		o.Gateways = []string{"mcp"}
	}
	if o.GatewayService == "" {
		o.GatewayService = "mcp-gateway." + o.Namespace + ".svc.cluster.local"
	}
	if o.GatewayPort == 0 {
		o.GatewayPort = 8080
	}
}

// IstioVirtualService builds the ingress VirtualService for the registry:
// the authorization server's paths to the gateway, then one route per agent
// matching /<id>/mcp and /<id>/mcp/ exactly, its path rewritten to the
// upstream's, no timeout (SSE streams stay open), Authorization removed
// (unless it is the agent's upstream credential, which the Check sets).
// Every other path matches no route, so the ingress answers 404. The
// CUSTOM AuthorizationPolicy (authorization-policy.yaml) checks every path
// ending in /mcp, so a new agent needs no policy change.
func IstioVirtualService(routes []AgentRoute, opt IstioOptions) *networkingv1.VirtualService {
	opt.defaults()
	vs := &networkingv1.VirtualService{
		Hosts:    opt.Hosts,
		Gateways: opt.Gateways,
		Http: []*networkingv1.HTTPRoute{{
			Name: "authorization-server",
			Match: []*networkingv1.HTTPMatchRequest{
				{Uri: &networkingv1.StringMatch{MatchType: &networkingv1.StringMatch_Prefix{Prefix: "/oauth/"}}},
				{Uri: &networkingv1.StringMatch{MatchType: &networkingv1.StringMatch_Prefix{Prefix: "/.well-known/"}}},
				{Uri: &networkingv1.StringMatch{MatchType: &networkingv1.StringMatch_Regex{Regex: "/(login|consent|account)(/.*)?"}}},
			},
			Route: []*networkingv1.HTTPRouteDestination{{Destination: &networkingv1.Destination{
				Host: opt.GatewayService, Port: &networkingv1.PortSelector{Number: opt.GatewayPort},
			}}},
		}},
	}
	for _, r := range routes {
		port, _ := strconv.ParseUint(r.Port, 10, 32) // AgentRoutes checked: digits
		exact := func(p string) *networkingv1.HTTPMatchRequest {
			return &networkingv1.HTTPMatchRequest{Uri: &networkingv1.StringMatch{MatchType: &networkingv1.StringMatch_Exact{Exact: p}}}
		}
		vs.Http = append(vs.Http, &networkingv1.HTTPRoute{
			Name:       "agent-" + r.ID,
			Match:      []*networkingv1.HTTPMatchRequest{exact("/" + r.ID + "/mcp"), exact("/" + r.ID + "/mcp/")},
			Rewrite:    &networkingv1.HTTPRewrite{Uri: r.Path, Authority: r.HostHeader},
			Timeout:    durationpb.New(0),
			CorsPolicy: agentCORS(),
			Headers:    agentHeaders(r),
			Route: []*networkingv1.HTTPRouteDestination{{Destination: &networkingv1.Destination{
				Host: r.Host, Port: &networkingv1.PortSelector{Number: uint32(port)},
			}}},
		})
	}
	return vs
}

// agentHeaders: the client's token goes no further (the Check removes it
// too). Not for an agent whose upstream credential is Authorization: the
// route's removal runs after ext_authz and would drop the Check's value,
// which already replaced the client's.
func agentHeaders(r AgentRoute) *networkingv1.Headers {
	if r.UpstreamHeader == "authorization" {
		return nil
	}
	return &networkingv1.Headers{Request: &networkingv1.Headers_HeaderOperations{Remove: []string{"authorization"}}}
}

// agentCORS: browser-based MCP clients (MCP Inspector's web UI) get their
// preflights answered by the ingress, any origin (the Check refuses an
// Origin the gateway does not admit), the shared header list. Preflights are
// never forwarded: the CUSTOM policy lets them through unchecked
// (authorization-policy.yaml), so none may reach an agent.
func agentCORS() *networkingv1.CorsPolicy {
	return &networkingv1.CorsPolicy{
		AllowOrigins:        []*networkingv1.StringMatch{{MatchType: &networkingv1.StringMatch_Regex{Regex: ".*"}}},
		AllowMethods:        strings.Split(routes.AgentCORSMethods, ", "),
		AllowHeaders:        strings.Split(routes.AgentCORSAllowHeaders, ", "),
		ExposeHeaders:       strings.Split(routes.AgentCORSExposeHeaders, ", "),
		MaxAge:              durationpb.New(corsMaxAge),
		UnmatchedPreflights: networkingv1.CorsPolicy_IGNORE,
	}
}

// corsMaxAge is routes.AgentCORSMaxAge (seconds) as a duration.
var corsMaxAge = func() time.Duration {
	n, err := strconv.Atoi(routes.AgentCORSMaxAge)
	if err != nil {
		panic("routes.AgentCORSMaxAge is not a number of seconds")
	}
	return time.Duration(n) * time.Second
}()

// IstioDestinationRules are the DestinationRules that make Istio speak TLS
// to https agents (SIMPLE origination with SNI, certificate verified against
// the proxy's system CAs), one per https server.
func IstioDestinationRules(routes []AgentRoute) map[string]*networkingv1.DestinationRule {
	out := map[string]*networkingv1.DestinationRule{}
	for _, r := range routes {
		if r.Scheme != "https" {
			continue
		}
		port, _ := strconv.ParseUint(r.Port, 10, 32)
		dr := out[r.Host]
		if dr == nil {
			dr = &networkingv1.DestinationRule{Host: r.Host, TrafficPolicy: &networkingv1.TrafficPolicy{}}
			out[r.Host] = dr
		}
		for _, ps := range dr.TrafficPolicy.PortLevelSettings {
			if ps.Port.GetNumber() == uint32(port) {
				port = 0
			}
		}
		if port != 0 {
			dr.TrafficPolicy.PortLevelSettings = append(dr.TrafficPolicy.PortLevelSettings, &networkingv1.TrafficPolicy_PortTrafficPolicy{
				Port: &networkingv1.PortSelector{Number: uint32(port)},
				Tls:  &networkingv1.ClientTLSSettings{Mode: networkingv1.ClientTLSSettings_SIMPLE, Sni: r.Host},
			})
		}
	}
	return out
}

// IstioConfig renders the registry's Istio resources as YAML documents:
// the VirtualService, then a DestinationRule per https agent server.
func IstioConfig(routes []AgentRoute, opt IstioOptions) (string, error) {
	opt.defaults()
	var b strings.Builder
	fmt.Fprintf(&b, "# Generated by `mcp-gateway istio-config` from the agent registry: %d routed agents.\n", len(routes))
	b.WriteString("# Apply with kubectl apply -f; regenerate after agents change.\n")
	doc, err := istioDoc("VirtualService", opt.Name, opt.Namespace, IstioVirtualService(routes, opt))
	if err != nil {
		return "", err
	}
	b.WriteString(doc)
	drs := IstioDestinationRules(routes)
	for _, r := range routes { // in route order, each server once
		dr, ok := drs[r.Host]
		if !ok {
			continue
		}
		delete(drs, r.Host)
		doc, err := istioDoc("DestinationRule", "agent-tls-"+dnsLabel(r.Host), opt.Namespace, dr)
		if err != nil {
			return "", err
		}
		b.WriteString(doc)
	}
	return b.String(), nil
}

// istioDoc is one "---" YAML document: the resource's envelope around spec.
func istioDoc(kind, name, namespace string, spec proto.Message) (string, error) {
	j, err := protojson.Marshal(spec)
	if err != nil {
		return "", fmt.Errorf("istio %s: %w", kind, err)
	}
	var s any
	if err := yaml.Unmarshal(j, &s); err != nil {
		return "", fmt.Errorf("istio %s: %w", kind, err)
	}
	y, err := yaml.Marshal(map[string]any{
		"apiVersion": "networking.istio.io/v1",
		"kind":       kind,
		"metadata":   map[string]string{"name": name, "namespace": namespace},
		"spec":       s,
	})
	if err != nil {
		return "", fmt.Errorf("istio %s: %w", kind, err)
	}
	return "---\n" + string(y), nil
}

// dnsLabel makes a host name usable in a Kubernetes object name.
func dnsLabel(host string) string {
	s := strings.Trim(strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '.' {
			return r
		}
		if r >= 'A' && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return '-'
	}, host), "-.")
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}
