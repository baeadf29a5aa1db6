package envoytest

import (
	"errors"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strings"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	streamv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
)

// perRouteTypes: which per-route config type each HTTP filter accepts.
var perRouteTypes = map[protoreflect.FullName]protoreflect.FullName{
	"envoy.extensions.filters.http.ext_authz.v3.ExtAuthz":             "envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute",
	"envoy.extensions.filters.http.cors.v3.Cors":                      "envoy.extensions.filters.http.cors.v3.CorsPolicy",
	"envoy.extensions.filters.http.header_mutation.v3.HeaderMutation": "envoy.extensions.filters.http.header_mutation.v3.HeaderMutationPerRoute",
}

// ValidateBootstrap runs every check that needs no knowledge of this project's
// routes: proto validation (nested Anys too), deprecated fields, regexes,
// cluster references, per-filter keys and types, filter order, ext_authz
// fail-closed settings, path normalisation, admin on loopback.
func ValidateBootstrap(b *bootstrapv3.Bootstrap) error {
	s := &walkState{clusterRefs: map[string][]string{}}
	if err := b.ValidateAll(); err != nil {
		s.fail("bootstrap: %w", err)
	}
	s.walk(b.ProtoReflect(), "bootstrap")

	clusters := map[string]*clusterv3.Cluster{}
	for i, c := range b.GetStaticResources().GetClusters() {
		switch {
		case c.GetName() == "":
			s.fail("clusters[%d]: empty cluster name", i)
		case clusters[c.GetName()] != nil:
			s.fail("clusters[%d]: cluster %q defined twice", i, c.GetName())
		}
		clusters[c.GetName()] = c
		if la := c.GetLoadAssignment(); la != nil && la.GetClusterName() != c.GetName() {
			s.fail("cluster %q: load_assignment.cluster_name is %q", c.GetName(), la.GetClusterName())
		}
	}
	for name, where := range s.clusterRefs {
		if clusters[name] == nil {
			s.fail("missing cluster %q referenced at %s", name, strings.Join(where, ", "))
		}
	}

	if a := b.GetAdmin().GetAddress().GetSocketAddress(); a != nil {
		if ip := net.ParseIP(a.GetAddress()); ip == nil || !ip.IsLoopback() {
			s.fail("admin: bound to %q, want a loopback address", a.GetAddress())
		}
	}

	hcms, err := ConnectionManagers(b)
	if err != nil {
		s.fail("%w", err)
	}
	for _, h := range hcms {
		s.checkHCM(h, clusters)
	}
	return errors.Join(s.errs...)
}

// checkHCM checks one connection manager: path normalisation, filter order,
// ext_authz, and each typed_per_filter_config against the filter it names.
func (s *walkState) checkHCM(h *ConnectionManager, clusters map[string]*clusterv3.Cluster) {
	where := "listener " + h.Listener
	if !h.Config.GetNormalizePath().GetValue() || !h.Config.GetMergeSlashes() ||
		h.Config.GetPathWithEscapedSlashesAction() != hcmv3.HttpConnectionManager_REJECT_REQUEST {
		s.fail("%s: want normalize_path, merge_slashes and path_with_escaped_slashes_action REJECT_REQUEST", where)
	}
	if len(h.Order) == 0 || h.Order[len(h.Order)-1] != FilterRouter {
		s.fail("%s: the router must be the last HTTP filter, have %v", where, h.Order)
	}
	seen := map[string]bool{}
	for _, n := range h.Order {
		if seen[n] {
			s.fail("%s: HTTP filter %q configured twice", where, n)
		}
		seen[n] = true
	}
	if i := slices.Index(h.Order, FilterExtAuthz); i >= 0 {
		for _, before := range []string{FilterCORS, FilterHeaders} {
			if j := slices.Index(h.Order, before); j < 0 || j > i {
				s.fail("%s: %s must come before %s (have %v)", where, before, FilterExtAuthz, h.Order)
			}
		}
		s.checkExtAuthz(h, clusters)
	}

	rc := h.Config.GetRouteConfig()
	if rc == nil {
		s.fail("%s: route_config must be static for these checks", where)
		return
	}
	check := func(at string, cfg map[string]*anypb.Any) {
		for key, a := range cfg {
			f, ok := h.Filters[key]
			if !ok {
				s.fail("%s %s: typed_per_filter_config key %q names no configured HTTP filter (have %v)", where, at, key, h.Order)
				continue
			}
			got := protoreflect.FullName(strings.TrimPrefix(a.GetTypeUrl(), "type.googleapis.com/"))
			if got == "envoy.config.route.v3.FilterConfig" {
				continue
			}
			if want, ok := perRouteTypes[f.ProtoReflect().Descriptor().FullName()]; !ok {
				s.fail("%s %s: filter %q takes no per-route config this test knows", where, at, key)
			} else if got != want {
				s.fail("%s %s: per-route config for %q is %s, want %s", where, at, key, got, want)
			}
		}
	}
	check("route_config", rc.GetTypedPerFilterConfig())
	for _, vh := range rc.GetVirtualHosts() {
		check("virtual_host "+vh.GetName(), vh.GetTypedPerFilterConfig())
		rs, err := vhostRoutes(vh)
		if err != nil {
			s.fail("%s virtual_host %s: %w", where, vh.GetName(), err)
		}
		for i, r := range rs {
			at := fmt.Sprintf("route %d (%s)", i, r.GetName())
			check(at, r.GetTypedPerFilterConfig())
			for _, w := range r.GetRoute().GetWeightedClusters().GetClusters() {
				check(at+" weighted cluster "+w.GetName(), w.GetTypedPerFilterConfig())
			}
		}
	}
}

// checkExtAuthz checks the ext_authz filter fails closed, fast, and passes
// the headers the gateway reads and sets, and that the access log names who
// was let in and why a request was refused.
func (s *walkState) checkExtAuthz(h *ConnectionManager, clusters map[string]*clusterv3.Cluster) {
	where := "listener " + h.Listener + " ext_authz"
	ea, ok := h.Filters[FilterExtAuthz].(*extauthzv3.ExtAuthz)
	if !ok {
		s.fail("%s: typed_config is not an ExtAuthz", where)
		return
	}
	if ea.GetTransportApiVersion() != corev3.ApiVersion_V3 {
		s.fail("%s: transport_api_version must be V3", where)
	}
	if ea.GetFailureModeAllow() {
		s.fail("%s: failure_mode_allow must be false (fail closed)", where)
	}
	if ea.GetStatusOnError().GetCode() != 503 {
		s.fail("%s: status_on_error must be 503, is %v", where, ea.GetStatusOnError().GetCode())
	}
	if ea.GetWithRequestBody() != nil || ea.GetIncludePeerCertificate() {
		s.fail("%s: must not send the body or the peer certificate", where)
	}
	switch {
	case ea.GetGrpcService() != nil:
		g := ea.GetGrpcService()
		if d := g.GetTimeout().AsDuration(); d <= 0 || d.Seconds() > 1 {
			s.fail("%s: grpc_service.timeout %v, want a short one (0 < t ≤ 1s)", where, d)
		}
		if c := clusters[g.GetEnvoyGrpc().GetClusterName()]; c != nil && !http2Cluster(c) {
			s.fail("%s: cluster %q must speak HTTP/2 (typed_extension_protocol_options)", where, c.GetName())
		}
	case ea.GetHttpService() != nil:
		hs := ea.GetHttpService()
		if hs.GetPathPrefix() != "/authz/check" {
			s.fail("%s: http_service.path_prefix %q, want /authz/check", where, hs.GetPathPrefix())
		}
		if d := hs.GetServerUri().GetTimeout().AsDuration(); d <= 0 || d.Seconds() > 1 {
			s.fail("%s: server_uri.timeout %v, want a short one (0 < t ≤ 1s)", where, d)
		}
		for _, hdr := range IdentityHeaders {
			if !listMatches(hs.GetAuthorizationResponse().GetAllowedUpstreamHeaders(), hdr) {
				s.fail("%s: allowed_upstream_headers does not pass %s", where, hdr)
			}
		}
		if !listMatches(hs.GetAuthorizationResponse().GetAllowedClientHeaders(), "www-authenticate") {
			s.fail("%s: allowed_client_headers does not pass www-authenticate", where)
		}
		for _, hdr := range []string{"authorization", "mcp-protocol-version", "mcp-method", "mcp-name", "origin", "traceparent"} {
			if !listMatches(ea.GetAllowedHeaders(), hdr) {
				s.fail("%s: allowed_headers does not send %s to the gateway", where, hdr)
			}
		}
	default:
		s.fail("%s: neither grpc_service nor http_service", where)
	}

	// The access log must carry who was let in (the identity headers the
	// answer set) and why a request was refused (a denial's metadata).
	var formats []string
	for _, al := range h.Config.GetAccessLog() {
		so := &streamv3.StdoutAccessLog{}
		if al.GetTypedConfig().UnmarshalTo(so) == nil {
			formats = append(formats, protojson.Format(so.GetLogFormat()))
		}
	}
	for _, want := range []string{
		"%REQ(X-MCP-USER)%", "%REQ(X-MCP-AGENT)%", "%REQ(X-MCP-CLIENT-ID)%", "%REQ(X-MCP-CREDENTIAL)%",
		"%DYNAMIC_METADATA(envoy.filters.http.ext_authz:reason)%",
	} {
		if !slices.ContainsFunc(formats, func(f string) bool { return strings.Contains(f, want) }) {
			s.fail("listener %s: no stdout access log with %s", h.Listener, want)
		}
	}
}

// http2Cluster reports whether c speaks HTTP/2 to its endpoints (gRPC needs it).
func http2Cluster(c *clusterv3.Cluster) bool {
	a := c.GetTypedExtensionProtocolOptions()["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
	o := &upstreamhttpv3.HttpProtocolOptions{}
	if a == nil || a.UnmarshalTo(o) != nil {
		return false
	}
	return o.GetExplicitHttpConfig().GetHttp2ProtocolOptions() != nil
}

// listMatches reports whether s matches any of l's patterns.
func listMatches(l *matcherv3.ListStringMatcher, s string) bool {
	return slices.ContainsFunc(l.GetPatterns(), func(m *matcherv3.StringMatcher) bool { return StringMatches(m, s) })
}

// StringMatches reports whether s matches m as Envoy matches it.
func StringMatches(m *matcherv3.StringMatcher, s string) bool {
	cmp := func(a string) (string, string) {
		if m.GetIgnoreCase() {
			return strings.ToLower(s), strings.ToLower(a)
		}
		return s, a
	}
	switch p := m.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		x, y := cmp(p.Exact)
		return x == y
	case *matcherv3.StringMatcher_Prefix:
		x, y := cmp(p.Prefix)
		return strings.HasPrefix(x, y)
	case *matcherv3.StringMatcher_Suffix:
		x, y := cmp(p.Suffix)
		return strings.HasSuffix(x, y)
	case *matcherv3.StringMatcher_Contains:
		x, y := cmp(p.Contains)
		return strings.Contains(x, y)
	case *matcherv3.StringMatcher_SafeRegex:
		re, err := regexp.Compile("^(?:" + p.SafeRegex.GetRegex() + ")$")
		return err == nil && re.MatchString(s)
	}
	return false
}
