package envoy

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	xdscorev3 "github.com/cncf/xds/go/xds/core/v3"
	xdsmatcherv3 "github.com/cncf/xds/go/xds/type/matcher/v3"
	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	streamv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	headermutationv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/header_mutation/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/known/anypb"
	"sigs.k8s.io/yaml"

	// Every extension type an Envoy config here names in "@type" must be
	// linked in, or protojson cannot resolve it.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/formatter/req_without_query/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/resource_monitors/downstream_connections/v3"
)

// The two shipped bootstraps: both must route as described in envoy.yaml.
var shippedBootstraps = []string{"envoy.yaml", "envoy-http-service.yaml"}

const (
	filterCORS     = "envoy.filters.http.cors"
	filterExtAuthz = "envoy.filters.http.ext_authz"
	filterHeaders  = "envoy.filters.http.header_mutation"
	filterRouter   = "envoy.filters.http.router"
)

// identityHeaders are the headers only the gateway may set upstream.
var identityHeaders = []string{"x-mcp-user", "x-mcp-agent", "x-mcp-client-id", "x-mcp-scope", "x-mcp-credential", "x-mcp-identity"}

// findBootstraps lists every YAML file in the repository with a top-level
// static_resources key: those are Envoy bootstraps, wherever they live.
func findBootstraps(t *testing.T) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", "node_modules", "vendor", "out":
				return filepath.SkipDir
			}
			return nil
		}
		if ext := filepath.Ext(path); ext != ".yaml" && ext != ".yml" {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		var top map[string]any
		if yaml.Unmarshal(b, &top) == nil && top["static_resources"] != nil {
			out = append(out, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// decodeBootstrap turns YAML into a Bootstrap the way Envoy reads it: unknown
// fields and unresolvable "@type"s are errors.
func decodeBootstrap(y []byte) (*bootstrapv3.Bootstrap, error) {
	j, err := yaml.YAMLToJSON(y)
	if err != nil {
		return nil, fmt.Errorf("yaml: %w", err)
	}
	b := &bootstrapv3.Bootstrap{}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: false}).Unmarshal(j, b); err != nil {
		return nil, fmt.Errorf("protojson: %w", err)
	}
	return b, nil
}

type validator interface{ ValidateAll() error }

// walkState collects what the recursive walk finds.
type walkState struct {
	errs        []error
	clusterRefs map[string][]string // cluster name → where referenced
}

func (s *walkState) fail(format string, a ...any) { s.errs = append(s.errs, fmt.Errorf(format, a...)) }

// walk visits m and every message below it, unpacking each Any and running its
// ValidateAll (the Bootstrap's own ValidateAll stops at Any), and records
// cluster references, regexes that do not compile and deprecated fields.
func (s *walkState) walk(m protoreflect.Message, path string) {
	switch v := m.Interface().(type) {
	case *anypb.Any:
		inner, err := v.UnmarshalNew()
		if err != nil {
			s.fail("%s: unpack %s: %w", path, v.GetTypeUrl(), err)
			return
		}
		if iv, ok := inner.(validator); ok {
			if err := iv.ValidateAll(); err != nil {
				s.fail("%s (%s): %w", path, v.GetTypeUrl(), err)
			}
		}
		s.walk(inner.ProtoReflect(), path+"<"+string(inner.ProtoReflect().Descriptor().FullName())+">")
		return
	case *matcherv3.RegexMatcher:
		if _, err := regexp.Compile(v.GetRegex()); err != nil {
			s.fail("%s: regex %q does not compile: %w", path, v.GetRegex(), err)
		}
	case *routev3.RouteAction:
		if c, ok := v.GetClusterSpecifier().(*routev3.RouteAction_Cluster); ok {
			s.ref(c.Cluster, path)
		}
		for _, w := range v.GetWeightedClusters().GetClusters() {
			s.ref(w.GetName(), path)
		}
		for _, mp := range v.GetRequestMirrorPolicies() {
			s.ref(mp.GetCluster(), path)
		}
	case *corev3.GrpcService_EnvoyGrpc:
		s.ref(v.GetClusterName(), path)
	case *corev3.HttpUri:
		s.ref(v.GetCluster(), path)
	}
	m.Range(func(fd protoreflect.FieldDescriptor, val protoreflect.Value) bool {
		fpath := path + "." + string(fd.Name())
		if fd.Options().(*descriptorpb.FieldOptions).GetDeprecated() {
			s.fail("%s: field is deprecated", fpath)
		}
		switch {
		case fd.IsList():
			l := val.List()
			for i := 0; i < l.Len(); i++ {
				p := fmt.Sprintf("%s[%d]", fpath, i)
				if fd.Kind() == protoreflect.MessageKind {
					s.walk(l.Get(i).Message(), p)
				} else if fd.Kind() == protoreflect.EnumKind {
					s.enum(fd, l.Get(i).Enum(), p)
				}
			}
		case fd.IsMap():
			if fd.MapValue().Kind() == protoreflect.MessageKind {
				val.Map().Range(func(k protoreflect.MapKey, v protoreflect.Value) bool {
					s.walk(v.Message(), fmt.Sprintf("%s[%s]", fpath, k.String()))
					return true
				})
			}
		case fd.Kind() == protoreflect.MessageKind:
			s.walk(val.Message(), fpath)
		case fd.Kind() == protoreflect.EnumKind:
			s.enum(fd, val.Enum(), fpath)
		}
		return true
	})
}

func (s *walkState) enum(fd protoreflect.FieldDescriptor, n protoreflect.EnumNumber, path string) {
	ev := fd.Enum().Values().ByNumber(n)
	if ev == nil {
		s.fail("%s: enum value %d is not defined", path, n)
	} else if ev.Options().(*descriptorpb.EnumValueOptions).GetDeprecated() {
		s.fail("%s: enum value %s is deprecated", path, ev.Name())
	}
}

func (s *walkState) ref(cluster, path string) {
	s.clusterRefs[cluster] = append(s.clusterRefs[cluster], path)
}

// hcmOf is one HTTP connection manager with its unpacked HTTP filters.
type hcmOf struct {
	listener string
	port     uint32
	hcm      *hcmv3.HttpConnectionManager
	order    []string                 // filter names in order
	filters  map[string]proto.Message // name → unpacked typed_config
	disabled map[string]bool          // filters with disabled: true at HCM level
}

func connectionManagers(b *bootstrapv3.Bootstrap) ([]*hcmOf, error) {
	var out []*hcmOf
	for _, l := range b.GetStaticResources().GetListeners() {
		for _, fc := range l.GetFilterChains() {
			for _, f := range fc.GetFilters() {
				h := &hcmv3.HttpConnectionManager{}
				if f.GetTypedConfig() == nil || !f.GetTypedConfig().MessageIs(h) {
					continue
				}
				if err := f.GetTypedConfig().UnmarshalTo(h); err != nil {
					return nil, fmt.Errorf("listener %s: %w", l.GetName(), err)
				}
				c := &hcmOf{listener: l.GetName(), port: l.GetAddress().GetSocketAddress().GetPortValue(), hcm: h,
					filters: map[string]proto.Message{}, disabled: map[string]bool{}}
				for _, hf := range h.GetHttpFilters() {
					c.order = append(c.order, hf.GetName())
					if hf.GetDisabled() {
						c.disabled[hf.GetName()] = true
					}
					if tc := hf.GetTypedConfig(); tc != nil {
						m, err := tc.UnmarshalNew()
						if err != nil {
							return nil, fmt.Errorf("listener %s filter %s: %w", l.GetName(), hf.GetName(), err)
						}
						c.filters[hf.GetName()] = m
					}
				}
				out = append(out, c)
			}
		}
	}
	return out, nil
}

// perRouteTypes: which per-route config type each HTTP filter accepts.
var perRouteTypes = map[protoreflect.FullName]protoreflect.FullName{
	"envoy.extensions.filters.http.ext_authz.v3.ExtAuthz":             "envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute",
	"envoy.extensions.filters.http.cors.v3.Cors":                      "envoy.extensions.filters.http.cors.v3.CorsPolicy",
	"envoy.extensions.filters.http.header_mutation.v3.HeaderMutation": "envoy.extensions.filters.http.header_mutation.v3.HeaderMutationPerRoute",
}

// validateBootstrap runs every check that needs no knowledge of this project's
// routes: proto validation (nested Anys too), deprecated fields, regexes,
// cluster references, per-filter keys and types, filter order, ext_authz
// fail-closed settings, path normalisation, admin on loopback.
func validateBootstrap(b *bootstrapv3.Bootstrap) error {
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

	hcms, err := connectionManagers(b)
	if err != nil {
		s.fail("%w", err)
	}
	for _, h := range hcms {
		s.checkHCM(h, clusters)
	}
	return errors.Join(s.errs...)
}

func (s *walkState) checkHCM(h *hcmOf, clusters map[string]*clusterv3.Cluster) {
	where := "listener " + h.listener
	if !h.hcm.GetNormalizePath().GetValue() || !h.hcm.GetMergeSlashes() ||
		h.hcm.GetPathWithEscapedSlashesAction() != hcmv3.HttpConnectionManager_REJECT_REQUEST {
		s.fail("%s: want normalize_path, merge_slashes and path_with_escaped_slashes_action REJECT_REQUEST", where)
	}
	if len(h.order) == 0 || h.order[len(h.order)-1] != filterRouter {
		s.fail("%s: the router must be the last HTTP filter, have %v", where, h.order)
	}
	seen := map[string]bool{}
	for _, n := range h.order {
		if seen[n] {
			s.fail("%s: HTTP filter %q configured twice", where, n)
		}
		seen[n] = true
	}
	if i := slices.Index(h.order, filterExtAuthz); i >= 0 {
		for _, before := range []string{filterCORS, filterHeaders} {
			if j := slices.Index(h.order, before); j < 0 || j > i {
				s.fail("%s: %s must come before %s (have %v)", where, before, filterExtAuthz, h.order)
			}
		}
		s.checkExtAuthz(h, clusters)
	}

	rc := h.hcm.GetRouteConfig()
	if rc == nil {
		s.fail("%s: route_config must be static for these checks", where)
		return
	}
	check := func(at string, cfg map[string]*anypb.Any) {
		for key, a := range cfg {
			f, ok := h.filters[key]
			if !ok {
				s.fail("%s %s: typed_per_filter_config key %q names no configured HTTP filter (have %v)", where, at, key, h.order)
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

func (s *walkState) checkExtAuthz(h *hcmOf, clusters map[string]*clusterv3.Cluster) {
	where := "listener " + h.listener + " ext_authz"
	ea, ok := h.filters[filterExtAuthz].(*extauthzv3.ExtAuthz)
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
		for _, hdr := range identityHeaders {
			if !listMatches(hs.GetAuthorizationResponse().GetAllowedUpstreamHeaders(), hdr) {
				s.fail("%s: allowed_upstream_headers does not pass %s", where, hdr)
			}
		}
		if !listMatches(hs.GetAuthorizationResponse().GetAllowedClientHeaders(), "www-authenticate") {
			s.fail("%s: allowed_client_headers does not pass www-authenticate", where)
		}
		for _, hdr := range []string{"authorization", "mcp-protocol-version"} {
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
	for _, al := range h.hcm.GetAccessLog() {
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
			s.fail("listener %s: no stdout access log with %s", h.listener, want)
		}
	}
}

func http2Cluster(c *clusterv3.Cluster) bool {
	a := c.GetTypedExtensionProtocolOptions()["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
	o := &upstreamhttpv3.HttpProtocolOptions{}
	if a == nil || a.UnmarshalTo(o) != nil {
		return false
	}
	return o.GetExplicitHttpConfig().GetHttp2ProtocolOptions() != nil
}

func listMatches(l *matcherv3.ListStringMatcher, s string) bool {
	return slices.ContainsFunc(l.GetPatterns(), func(m *matcherv3.StringMatcher) bool { return stringMatches(m, s) })
}

func stringMatches(m *matcherv3.StringMatcher, s string) bool {
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

// routed is where the simulated router sends one request.
type routed struct {
	route   *routev3.Route
	cluster string // "" for a direct response
	status  uint32 // direct response status
	authz   bool   // ext_authz runs for this request
	cors    bool   // a CORS policy applies
	// corsPolicy is the one that applies (route, else virtual host…)
	corsPolicy *anypb.Any
	path       string // path sent upstream after any regex rewrite
}

// route runs Envoy's route selection for host and path (path may carry a
// query): first matching virtual host by domain, then first matching route.
// Matchers the simulation cannot evaluate are an error, not a guess.
func route(h *hcmOf, host, path string) (*routed, error) {
	rc := h.hcm.GetRouteConfig()
	vh := pickVirtualHost(rc.GetVirtualHosts(), host)
	if vh == nil {
		return nil, fmt.Errorf("no virtual host for %q", host)
	}
	bare, _, _ := strings.Cut(path, "?")
	candidates := vh.GetRoutes()
	if vh.GetMatcher() != nil {
		var err error
		if candidates, err = matchTree(vh.GetMatcher(), path); err != nil {
			return nil, err
		}
	}
	for _, r := range candidates {
		ok, err := routeMatches(r.GetMatch(), path, bare)
		if err != nil {
			return nil, fmt.Errorf("route %q: %w", r.GetName(), err)
		}
		if !ok {
			continue
		}
		out := &routed{route: r, path: bare}
		switch {
		case r.GetRoute() != nil:
			out.cluster = r.GetRoute().GetCluster()
			if pr := r.GetRoute().GetPrefixRewrite(); pr != "" {
				// The matched path (or prefix) is swapped for the rewrite.
				switch m := r.GetMatch().GetPathSpecifier().(type) {
				case *routev3.RouteMatch_Path:
					out.path = pr
				case *routev3.RouteMatch_Prefix:
					out.path = pr + strings.TrimPrefix(bare, m.Prefix)
				default:
					return nil, fmt.Errorf("route %q: prefix_rewrite with %T is not simulated", r.GetName(), m)
				}
			}
			if rw := r.GetRoute().GetRegexRewrite(); rw != nil {
				re, err := regexp.Compile(rw.GetPattern().GetRegex())
				if err != nil {
					return nil, err
				}
				// Envoy writes groups as \1, Go as ${1}.
				sub := regexp.MustCompile(`\\(\d)`).ReplaceAllString(rw.GetSubstitution(), "$${$1}")
				out.path = re.ReplaceAllString(bare, sub)
			}
		case r.GetDirectResponse() != nil:
			out.status = r.GetDirectResponse().GetStatus()
		default:
			return nil, fmt.Errorf("route %q: only route and direct_response are simulated", r.GetName())
		}
		perFilter := func(name string) *anypb.Any {
			for _, m := range []map[string]*anypb.Any{r.GetTypedPerFilterConfig(), vh.GetTypedPerFilterConfig(), rc.GetTypedPerFilterConfig()} {
				if a := m[name]; a != nil {
					return a
				}
			}
			return nil
		}
		if _, ok := h.filters[filterExtAuthz]; ok {
			out.authz = !h.disabled[filterExtAuthz]
			if a := perFilter(filterExtAuthz); a != nil {
				pr := &extauthzv3.ExtAuthzPerRoute{}
				if err := a.UnmarshalTo(pr); err != nil {
					return nil, err
				}
				out.authz = !pr.GetDisabled()
			}
		}
		if _, ok := h.filters[filterCORS]; ok {
			out.cors = perFilter(filterCORS) != nil
			out.corsPolicy = perFilter(filterCORS)
			cp := &corsv3.CorsPolicy{}
			if a := perFilter(filterCORS); a != nil && a.UnmarshalTo(cp) == nil && cp.GetFilterEnabled() != nil &&
				cp.GetFilterEnabled().GetDefaultValue().GetNumerator() == 0 {
				out.cors = false // a policy that turns CORS off
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("no route matches %q", path)
}

func pickVirtualHost(vhs []*routev3.VirtualHost, host string) *routev3.VirtualHost {
	host = strings.ToLower(host)
	var wildcard *routev3.VirtualHost
	for _, vh := range vhs {
		for _, d := range vh.GetDomains() {
			d = strings.ToLower(d)
			switch {
			case d == host:
				return vh
			case d == "*":
				wildcard = vh
			case strings.HasPrefix(d, "*") && strings.HasSuffix(host, d[1:]),
				strings.HasSuffix(d, "*") && strings.HasPrefix(host, d[:len(d)-1]):
				return vh
			}
		}
	}
	return wildcard
}

func routeMatches(m *routev3.RouteMatch, full, bare string) (bool, error) {
	switch {
	case len(m.GetHeaders()) > 0, len(m.GetQueryParameters()) > 0, len(m.GetCookies()) > 0, m.GetGrpc() != nil,
		m.GetTlsContext() != nil, len(m.GetDynamicMetadata()) > 0, len(m.GetFilterState()) > 0,
		m.GetRuntimeFraction() != nil, m.GetPathMatchPolicy() != nil, m.GetConnectMatcher() != nil:
		return false, errors.New("matcher uses fields the simulation does not evaluate")
	}
	if cs := m.GetCaseSensitive(); cs != nil && !cs.GetValue() {
		return false, errors.New("case_sensitive: false is not simulated")
	}
	switch p := m.GetPathSpecifier().(type) {
	case *routev3.RouteMatch_Prefix:
		return strings.HasPrefix(full, p.Prefix), nil
	case *routev3.RouteMatch_Path:
		return bare == p.Path, nil
	case *routev3.RouteMatch_PathSeparatedPrefix:
		return bare == p.PathSeparatedPrefix || strings.HasPrefix(bare, p.PathSeparatedPrefix+"/"), nil
	case *routev3.RouteMatch_SafeRegex:
		re, err := regexp.Compile("^(?:" + p.SafeRegex.GetRegex() + ")$")
		if err != nil {
			return false, err
		}
		return re.MatchString(bare), nil
	}
	return false, fmt.Errorf("path specifier %T is not simulated", m.GetPathSpecifier())
}

// routeExpectations: the routing contract of the shipped bootstraps on the
// public listener (port 8000).
var routeExpectations = []struct {
	path    string
	cluster string // "" → direct response 404
	authz   bool
	cors    bool // 404s carry the MCP policy too (the virtual host's); the browser pages none
}{
	{"/oauth/token", "mcp_gateway_http", false, true},
	{"/oauth/register", "mcp_gateway_http", false, true},
	{"/oauth/revoke", "mcp_gateway_http", false, true},
	{"/oauth/authorize?response_type=code&resource=http%3A%2F%2Flocalhost%3A8000%2Fdemo%2Fmcp", "mcp_gateway_http", false, true},
	{"/.well-known/oauth-protected-resource/demo/mcp", "mcp_gateway_http", false, true},
	{"/.well-known/oauth-protected-resource", "mcp_gateway_http", false, true},
	{"/.well-known/oauth-authorization-server", "mcp_gateway_http", false, true},
	{"/login", "mcp_gateway_http", false, false},
	{"/login/callback?code=abc&state=xyz", "mcp_gateway_http", false, false},
	{"/consent", "mcp_gateway_http", false, false},
	{"/account", "mcp_gateway_http", false, false},
	{"/demo/mcp", "agent_demo", true, true},
	{"/demo/mcp/", "agent_demo", true, true},
	{"/demo/mcp?x=1", "agent_demo", true, true},
	{"/other-agent/mcp", "", true, true}, // the gateway still answers first
	{"/unknown", "", false, true},
	{"/", "", false, true},
	{"/loginx", "", false, true},
	{"/oauth", "", false, true},
	{"/authz/check", "", false, true}, // the HTTP check is never public
	{"/authz/check/demo/mcp", "", false, true},
	{"/admin/v1/agents", "", false, true},
	{"/metrics", "", false, true},
	{"/demo/mcp/extra", "", false, true},
	{"/a/b/mcp", "", false, true},
	{"/demo/mcpx", "", false, true},
}

// checkShipped adds this project's routing contract to validateBootstrap.
func checkShipped(b *bootstrapv3.Bootstrap) error {
	if err := validateBootstrap(b); err != nil {
		return err
	}
	hcms, err := connectionManagers(b)
	if err != nil {
		return err
	}
	var public *hcmOf
	for _, h := range hcms {
		if h.port == 8000 {
			public = h
		}
	}
	if public == nil {
		return errors.New("no listener on port 8000")
	}
	if _, ok := public.filters[filterExtAuthz]; !ok {
		return errors.New("listener on port 8000 has no ext_authz filter")
	}
	var errs []error
	for _, hdr := range clientIdentityHeaders {
		if !clientHeaderStripped(public, hdr) {
			errs = append(errs, fmt.Errorf("a client's %s header reaches the agent: header_mutation (before ext_authz) must remove every x-mcp-* request header", hdr))
		}
	}
	for _, e := range routeExpectations {
		got, err := route(public, "localhost:8000", e.path)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", e.path, err))
			continue
		}
		where := fmt.Sprintf("%s (route %q)", e.path, got.route.GetName())
		if e.cluster == "" && (got.cluster != "" || got.status != 404) {
			errs = append(errs, fmt.Errorf("%s: want a 404, goes to cluster %q status %d", where, got.cluster, got.status))
		}
		if e.cluster != "" && got.cluster != e.cluster {
			errs = append(errs, fmt.Errorf("%s: want cluster %q, got %q (status %d)", where, e.cluster, got.cluster, got.status))
		}
		if got.authz != e.authz {
			errs = append(errs, fmt.Errorf("%s: ext_authz enabled=%v, want %v", where, got.authz, e.authz))
		}
		if got.cors != e.cors {
			errs = append(errs, fmt.Errorf("%s: CORS policy=%v, want %v", where, got.cors, e.cors))
		}
		if got.cluster == "" {
			continue
		}
		if ra := got.route.GetRoute(); e.authz {
			// An agent route: streaming must not be cut, the token must not leak.
			// Streams stay open: no route timeout, and an idle timeout long
			// enough for a quiet SSE stream (0 = none, else at least 10m).
			if idle := ra.GetIdleTimeout(); ra.GetTimeout() == nil || ra.GetTimeout().AsDuration() != 0 || idle == nil ||
				(idle.AsDuration() != 0 && idle.AsDuration() < 10*time.Minute) {
				errs = append(errs, fmt.Errorf("%s: agent route needs timeout: 0s and idle_timeout: 0s or ≥ 10m for SSE", where))
			}
			if !slices.Contains(got.route.GetRequestHeadersToRemove(), "authorization") {
				errs = append(errs, fmt.Errorf("%s: agent route must remove authorization", where))
			}
			if got.path != "/mcp" {
				errs = append(errs, fmt.Errorf("%s: upstream path %q, want /mcp", where, got.path))
			}
		}
		if got.cors {
			if err := checkCORS(got.corsPolicy); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", where, err))
			}
		}
	}
	return errors.Join(errs...)
}

func checkCORS(a *anypb.Any) error {
	p := &corsv3.CorsPolicy{}
	if err := a.UnmarshalTo(p); err != nil {
		return err
	}
	if !slices.ContainsFunc(p.GetAllowOriginStringMatch(), func(m *matcherv3.StringMatcher) bool {
		return stringMatches(m, "http://localhost:6274") && stringMatches(m, "https://inspector.example")
	}) {
		return errors.New("CORS must allow any origin")
	}
	split := func(s string) []string {
		var out []string
		for _, f := range strings.Split(s, ",") {
			out = append(out, strings.ToLower(strings.TrimSpace(f)))
		}
		return out
	}
	for _, h := range []string{"authorization", "content-type", "mcp-protocol-version", "mcp-session-id", "last-event-id"} {
		if !slices.Contains(split(p.GetAllowHeaders()), h) {
			return fmt.Errorf("CORS allow_headers lacks %s", h)
		}
	}
	for _, h := range []string{"mcp-session-id", "www-authenticate"} {
		if !slices.Contains(split(p.GetExposeHeaders()), h) {
			return fmt.Errorf("CORS expose_headers lacks %s", h)
		}
	}
	return nil
}

func checkFile(name string, y []byte) error {
	b, err := decodeBootstrap(y)
	if err != nil {
		return err
	}
	if slices.Contains(shippedBootstraps, name) {
		return checkShipped(b)
	}
	return validateBootstrap(b)
}

func TestEnvoyBootstraps(t *testing.T) {
	files := findBootstraps(t)
	for _, want := range shippedBootstraps {
		if !slices.Contains(files, filepath.Join("..", "envoy", want)) {
			t.Fatalf("%s not found among bootstraps %v", want, files)
		}
	}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			y, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			name := f
			if filepath.Dir(f) == filepath.Join("..", "envoy") {
				name = filepath.Base(f)
			}
			if err := checkFile(name, y); err != nil {
				t.Errorf("%s:\n%v", f, err)
			}
		})
	}
}

// The HTTP-service variant is a copy of envoy.yaml but for ext_authz: any
// other difference means one was edited and the other forgotten.
func TestBootstrapsDifferOnlyInExtAuthz(t *testing.T) {
	strip := func(file string) map[string]any {
		doc := loadDoc(t, file)
		delete(httpFilter(t, doc, filterExtAuthz), "typed_config")
		res := doc["static_resources"].(map[string]any)
		var keep []any
		for _, c := range res["clusters"].([]any) {
			if c.(map[string]any)["name"] != "mcp_gateway_authz" {
				keep = append(keep, c)
			}
		}
		res["clusters"] = keep
		return doc
	}
	a, b := strip("envoy.yaml"), strip("envoy-http-service.yaml")
	ja, _ := yaml.Marshal(a)
	jb, _ := yaml.Marshal(b)
	if string(ja) != string(jb) {
		t.Errorf("envoy.yaml and envoy-http-service.yaml differ outside ext_authz:\n--- envoy.yaml\n%s\n--- envoy-http-service.yaml\n%s", ja, jb)
	}
}

// loadDoc reads a YAML file into plain maps for mutation.
func loadDoc(t *testing.T, file string) map[string]any {
	t.Helper()
	y, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(y, &doc); err != nil {
		t.Fatal(err)
	}
	return doc
}

func publicHCM(t *testing.T, doc map[string]any) map[string]any {
	t.Helper()
	l := doc["static_resources"].(map[string]any)["listeners"].([]any)[0].(map[string]any)
	return l["filter_chains"].([]any)[0].(map[string]any)["filters"].([]any)[0].(map[string]any)["typed_config"].(map[string]any)
}

func httpFilter(t *testing.T, doc map[string]any, name string) map[string]any {
	t.Helper()
	for _, f := range publicHCM(t, doc)["http_filters"].([]any) {
		if f.(map[string]any)["name"] == name {
			return f.(map[string]any)
		}
	}
	t.Fatalf("no HTTP filter %s", name)
	return nil
}

// routesOf lists the public virtual host's routes (maps shared with doc),
// from its routes list or every RouteList of its matcher tree.
func routesOf(t *testing.T, doc map[string]any) []any {
	t.Helper()
	vh := publicHCM(t, doc)["route_config"].(map[string]any)["virtual_hosts"].([]any)[0].(map[string]any)
	if rs, ok := vh["routes"].([]any); ok {
		return rs
	}
	var out []any
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if tc, ok := x["typed_config"].(map[string]any); ok && tc["@type"] == "type.googleapis.com/envoy.config.route.v3.RouteList" {
				out = append(out, tc["routes"].([]any)...)
				return
			}
			keys := make([]string, 0, len(x))
			for k := range x {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			for _, k := range keys {
				walk(x[k])
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(vh["matcher"])
	return out
}

// fallbackRoutes is the matcher's on_no_match RouteList (shared with doc).
func fallbackRoutes(t *testing.T, doc map[string]any) []any {
	t.Helper()
	vh := publicHCM(t, doc)["route_config"].(map[string]any)["virtual_hosts"].([]any)[0].(map[string]any)
	return vh["matcher"].(map[string]any)["on_no_match"].(map[string]any)["action"].(map[string]any)["typed_config"].(map[string]any)["routes"].([]any)
}

func namedRoute(t *testing.T, doc map[string]any, name string) map[string]any {
	t.Helper()
	for _, r := range routesOf(t, doc) {
		if r.(map[string]any)["name"] == name {
			return r.(map[string]any)
		}
	}
	t.Fatalf("no route %s", name)
	return nil
}

func namedCluster(t *testing.T, doc map[string]any, name string) map[string]any {
	t.Helper()
	for _, c := range doc["static_resources"].(map[string]any)["clusters"].([]any) {
		if c.(map[string]any)["name"] == name {
			return c.(map[string]any)
		}
	}
	t.Fatalf("no cluster %s", name)
	return nil
}

// copyDoc deep-copies doc: YAML anchors share maps between routes, and a
// mutation must not leak from one case into the next.
func copyDoc(t *testing.T, doc map[string]any) map[string]any {
	t.Helper()
	y, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := yaml.Unmarshal(y, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestValidationBites breaks copies of the shipped bootstraps in the ways a
// hand edit does and requires each to fail, for the stated reason.
func TestValidationBites(t *testing.T) {
	cases := []struct {
		name   string
		file   string
		mutate func(t *testing.T, doc map[string]any)
		want   string // substring of the error
	}{
		{"typo in a top-level field", "envoy.yaml", func(t *testing.T, d map[string]any) {
			d["static_resource"] = d["static_resources"]
			delete(d, "static_resources")
		}, `unknown field "static_resource"`},
		{"typo in a field inside typed_config", "envoy.yaml", func(t *testing.T, d map[string]any) {
			h := publicHCM(t, d)
			h["normalise_path"] = h["normalize_path"]
			delete(h, "normalize_path")
		}, `unknown field "normalise_path"`},
		{"typo in an @type", "envoy.yaml", func(t *testing.T, d map[string]any) {
			httpFilter(t, d, filterRouter)["typed_config"].(map[string]any)["@type"] = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Routr"
		}, "Routr"},
		{"empty cluster name in a route", "envoy.yaml", func(t *testing.T, d map[string]any) {
			namedRoute(t, d, "oauth")["route"].(map[string]any)["cluster"] = ""
		}, "invalid RouteAction.Cluster"},
		{"empty cluster name in a definition", "envoy.yaml", func(t *testing.T, d map[string]any) {
			namedCluster(t, d, "agent_demo")["name"] = ""
		}, "empty cluster name"},
		{"route to a missing cluster", "envoy.yaml", func(t *testing.T, d map[string]any) {
			namedRoute(t, d, "agent_demo")["route"].(map[string]any)["cluster"] = "agent_demox"
		}, `missing cluster "agent_demox"`},
		{"ext_authz to a missing cluster", "envoy.yaml", func(t *testing.T, d map[string]any) {
			tc := httpFilter(t, d, filterExtAuthz)["typed_config"].(map[string]any)
			tc["grpc_service"].(map[string]any)["envoy_grpc"].(map[string]any)["cluster_name"] = "authz"
		}, `missing cluster "authz"`},
		{"http_service to a missing cluster", "envoy-http-service.yaml", func(t *testing.T, d map[string]any) {
			tc := httpFilter(t, d, filterExtAuthz)["typed_config"].(map[string]any)
			tc["http_service"].(map[string]any)["server_uri"].(map[string]any)["cluster"] = "gateway"
		}, `missing cluster "gateway"`},
		{"regex that does not compile", "envoy.yaml", func(t *testing.T, d map[string]any) {
			namedRoute(t, d, "agent_demo")["match"] = map[string]any{"safe_regex": map[string]any{"regex": "^/demo/mcp(/?$"}}
		}, "does not compile"},
		{"ext_authz-disabled key naming an unknown filter", "envoy.yaml", func(t *testing.T, d map[string]any) {
			pf := namedRoute(t, d, "oauth")["typed_per_filter_config"].(map[string]any)
			pf["envoy.filters.http.extauthz"] = pf[filterExtAuthz]
			delete(pf, filterExtAuthz)
		}, `key "envoy.filters.http.extauthz" names no configured HTTP filter`},
		{"per-route config of the wrong type", "envoy.yaml", func(t *testing.T, d map[string]any) {
			pf := namedRoute(t, d, "login")["typed_per_filter_config"].(map[string]any)
			pf[filterExtAuthz] = map[string]any{"@type": "type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy"}
		}, "per-route config for \"envoy.filters.http.ext_authz\" is envoy.extensions.filters.http.cors.v3.CorsPolicy"},
		{"invalid value inside an Any (only the Any walk sees it)", "envoy.yaml", func(t *testing.T, d map[string]any) {
			publicHCM(t, d)["stat_prefix"] = ""
		}, "invalid HttpConnectionManager.StatPrefix"},
		{"deprecated field", "envoy-http-service.yaml", func(t *testing.T, d map[string]any) {
			tc := httpFilter(t, d, filterExtAuthz)["typed_config"].(map[string]any)
			tc["http_service"].(map[string]any)["authorization_request"] = map[string]any{"allowed_headers": tc["allowed_headers"]}
		}, "authorization_request.allowed_headers: field is deprecated"},
		{"fail open", "envoy.yaml", func(t *testing.T, d map[string]any) {
			httpFilter(t, d, filterExtAuthz)["typed_config"].(map[string]any)["failure_mode_allow"] = true
		}, "failure_mode_allow must be false"},
		{"ext_authz before CORS", "envoy.yaml", func(t *testing.T, d map[string]any) {
			h := publicHCM(t, d)
			fs := h["http_filters"].([]any)
			fs[0], fs[2] = fs[2], fs[0]
		}, "envoy.filters.http.cors must come before envoy.filters.http.ext_authz"},
		{"gRPC cluster without HTTP/2", "envoy.yaml", func(t *testing.T, d map[string]any) {
			delete(namedCluster(t, d, "mcp_gateway_authz"), "typed_extension_protocol_options")
		}, "must speak HTTP/2"},
		{"escaped slashes let through", "envoy.yaml", func(t *testing.T, d map[string]any) {
			publicHCM(t, d)["path_with_escaped_slashes_action"] = "KEEP_UNCHANGED"
		}, "path_with_escaped_slashes_action REJECT_REQUEST"},
		{"admin on all interfaces", "envoy.yaml", func(t *testing.T, d map[string]any) {
			d["admin"].(map[string]any)["address"].(map[string]any)["socket_address"].(map[string]any)["address"] = "0.0.0.0"
		}, "want a loopback address"},
		{"catch-all moved to the front", "envoy.yaml", func(t *testing.T, d map[string]any) {
			rs := fallbackRoutes(t, d)
			rs[0], rs[len(rs)-1] = rs[len(rs)-1], rs[0]
		}, "/other-agent/mcp (route \"not_found\"): ext_authz enabled=false, want true"},
		{"agent route as a prefix (catches /demo/mcpx)", "envoy.yaml", func(t *testing.T, d map[string]any) {
			namedRoute(t, d, "agent_demo")["match"] = map[string]any{"prefix": "/demo/mcp"}
		}, "/demo/mcpx (route \"agent_demo\"): want a 404"},
		{"client x-mcp-* headers kept", "envoy-http-service.yaml", func(t *testing.T, d map[string]any) {
			delete(httpFilter(t, d, filterHeaders), "typed_config")
			httpFilter(t, d, filterHeaders)["typed_config"] = map[string]any{
				"@type":     "type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation",
				"mutations": map[string]any{"request_mutations": []any{map[string]any{"remove": "x-mcp-user"}}}}
		}, "x-mcp-role"},
		{"ext_authz left on for /oauth/", "envoy.yaml", func(t *testing.T, d map[string]any) {
			delete(namedRoute(t, d, "oauth")["typed_per_filter_config"].(map[string]any), filterExtAuthz)
		}, "/oauth/token (route \"oauth\"): ext_authz enabled=true, want false"},
		{"ext_authz off for the agent", "envoy.yaml", func(t *testing.T, d map[string]any) {
			namedRoute(t, d, "agent_demo")["typed_per_filter_config"].(map[string]any)[filterExtAuthz] = map[string]any{
				"@type": "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute", "disabled": true}
		}, "/demo/mcp (route \"agent_demo\"): ext_authz enabled=false, want true"},
		{"SSE cut by the default route timeout", "envoy.yaml", func(t *testing.T, d map[string]any) {
			delete(namedRoute(t, d, "agent_demo")["route"].(map[string]any), "timeout")
		}, "timeout: 0s and idle_timeout"},
		{"token passed upstream", "envoy.yaml", func(t *testing.T, d map[string]any) {
			delete(namedRoute(t, d, "agent_demo"), "request_headers_to_remove")
		}, "must remove authorization"},
		{"/login as a plain prefix also catches /loginx", "envoy.yaml", func(t *testing.T, d map[string]any) {
			namedRoute(t, d, "login")["match"] = map[string]any{"prefix": "/login"}
		}, "/loginx (route \"login\"): want a 404"},
		{"access log without the user", "envoy.yaml", func(t *testing.T, d map[string]any) {
			al := publicHCM(t, d)["access_log"].([]any)[0].(map[string]any)["typed_config"].(map[string]any)
			delete(al["log_format"].(map[string]any)["json_format"].(map[string]any), "mcp_user")
		}, "%REQ(X-MCP-USER)%"},
		{"access log without the denial reason", "envoy.yaml", func(t *testing.T, d map[string]any) {
			al := publicHCM(t, d)["access_log"].([]any)[0].(map[string]any)["typed_config"].(map[string]any)
			delete(al["log_format"].(map[string]any)["json_format"].(map[string]any), "mcp_deny_reason")
		}, "ext_authz:reason"},
		{"http_service not passing an identity header", "envoy-http-service.yaml", func(t *testing.T, d map[string]any) {
			tc := httpFilter(t, d, filterExtAuthz)["typed_config"].(map[string]any)
			ar := tc["http_service"].(map[string]any)["authorization_response"].(map[string]any)
			ar["allowed_upstream_headers"] = map[string]any{"patterns": []any{map[string]any{"exact": "x-mcp-user"}}}
		}, "allowed_upstream_headers does not pass x-mcp-agent"},
	}
	// The unmutated copies must pass, so a failure below is the mutation's.
	for _, f := range shippedBootstraps {
		y, _ := yaml.Marshal(copyDoc(t, loadDoc(t, f)))
		if err := checkFile(f, y); err != nil {
			t.Fatalf("unmutated %s fails: %v", f, err)
		}
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := copyDoc(t, loadDoc(t, c.file))
			c.mutate(t, d)
			y, err := yaml.Marshal(d)
			if err != nil {
				t.Fatal(err)
			}
			err = checkFile(c.file, y)
			if err == nil {
				t.Fatalf("broken %s passed validation", c.file)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error does not mention %q:\n%v", c.want, err)
			}
		})
	}
}

// vhostRoutes lists every route of a virtual host: its routes list, or the
// routes of each Route/RouteList action in its matcher tree.
func vhostRoutes(vh *routev3.VirtualHost) ([]*routev3.Route, error) {
	if vh.GetMatcher() == nil {
		return vh.GetRoutes(), nil
	}
	var out []*routev3.Route
	var walk func(m *xdsmatcherv3.Matcher) error
	onMatch := func(om *xdsmatcherv3.Matcher_OnMatch) error {
		if om == nil {
			return nil
		}
		if om.GetMatcher() != nil {
			return walk(om.GetMatcher())
		}
		rs, err := actionRoutes(om.GetAction())
		out = append(out, rs...)
		return err
	}
	walk = func(m *xdsmatcherv3.Matcher) error {
		t := m.GetMatcherTree()
		if t == nil {
			return errors.New("only matcher_tree is simulated")
		}
		maps := []map[string]*xdsmatcherv3.Matcher_OnMatch{t.GetExactMatchMap().GetMap(), t.GetPrefixMatchMap().GetMap()}
		for _, mp := range maps {
			keys := make([]string, 0, len(mp))
			for k := range mp {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			for _, k := range keys {
				if err := onMatch(mp[k]); err != nil {
					return err
				}
			}
		}
		return onMatch(m.GetOnNoMatch())
	}
	return out, walk(vh.GetMatcher())
}

func actionRoutes(a *xdscorev3.TypedExtensionConfig) ([]*routev3.Route, error) {
	m, err := a.GetTypedConfig().UnmarshalNew()
	if err != nil {
		return nil, err
	}
	switch v := m.(type) {
	case *routev3.RouteList:
		return v.GetRoutes(), nil
	case *routev3.Route:
		return []*routev3.Route{v}, nil
	}
	return nil, fmt.Errorf("matcher action %T is not a Route or RouteList", m)
}

// matchTree runs Envoy's matcher on a request path (the :path header, query
// included) and returns the routes of the action it selects. Only what the
// builder uses is simulated: a matcher_tree on the :path header with an
// exact or prefix (longest key wins) map, and on_no_match.
func matchTree(m *xdsmatcherv3.Matcher, path string) ([]*routev3.Route, error) {
	t := m.GetMatcherTree()
	if t == nil {
		return nil, errors.New("only matcher_tree is simulated")
	}
	in := &matcherv3.HttpRequestHeaderMatchInput{}
	if err := t.GetInput().GetTypedConfig().UnmarshalTo(in); err != nil || in.GetHeaderName() != ":path" {
		return nil, fmt.Errorf("matcher input must be the :path header (%v)", err)
	}
	var hit *xdsmatcherv3.Matcher_OnMatch
	switch {
	case t.GetExactMatchMap() != nil:
		hit = t.GetExactMatchMap().GetMap()[path]
	case t.GetPrefixMatchMap() != nil:
		best := -1
		for k, om := range t.GetPrefixMatchMap().GetMap() {
			if strings.HasPrefix(path, k) && len(k) > best {
				best, hit = len(k), om
			}
		}
	default:
		return nil, errors.New("only exact and prefix match maps are simulated")
	}
	if hit == nil {
		hit = m.GetOnNoMatch()
	}
	if hit == nil {
		return nil, nil
	}
	if hit.GetMatcher() != nil {
		return matchTree(hit.GetMatcher(), path)
	}
	return actionRoutes(hit.GetAction())
}

// clientHeaderStripped reports whether the header_mutation filter (which
// runs before ext_authz) removes a request header of this name.
func clientHeaderStripped(h *hcmOf, name string) bool {
	hm, ok := h.filters[filterHeaders].(*headermutationv3.HeaderMutation)
	if !ok {
		return false
	}
	for _, m := range hm.GetMutations().GetRequestMutations() {
		if strings.EqualFold(m.GetRemove(), name) {
			return true
		}
		if km := m.GetRemoveOnMatch().GetKeyMatcher(); km != nil && stringMatches(km, strings.ToLower(name)) {
			return true
		}
	}
	return false
}

// clientIdentityHeaders: any x-mcp-* a client sends must not reach an agent
// (issue 10 item 7), whatever its name.
var clientIdentityHeaders = []string{"x-mcp-user", "X-MCP-Agent", "x-mcp-client-id", "x-mcp-scope", "x-mcp-credential", "x-mcp-role", "X-Mcp-Tenant", "x-mcp-"}
