package envoytest

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	xdscorev3 "github.com/cncf/xds/go/xds/core/v3"
	xdsmatcherv3 "github.com/cncf/xds/go/xds/type/matcher/v3"
	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	headermutationv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/header_mutation/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// ConnectionManager is one HTTP connection manager of a listener, with its
// HTTP filters unpacked.
type ConnectionManager struct {
	Listener string
	Port     uint32
	Config   *hcmv3.HttpConnectionManager
	Order    []string                 // filter names in order
	Filters  map[string]proto.Message // name → unpacked typed_config
	Disabled map[string]bool          // filters with disabled: true at HCM level
}

// ConnectionManagers lists the HTTP connection managers of b's static
// listeners, in order, each filter's typed_config unpacked.
func ConnectionManagers(b *bootstrapv3.Bootstrap) ([]*ConnectionManager, error) {
	var out []*ConnectionManager
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
				c := &ConnectionManager{Listener: l.GetName(), Port: l.GetAddress().GetSocketAddress().GetPortValue(), Config: h,
					Filters: map[string]proto.Message{}, Disabled: map[string]bool{}}
				for _, hf := range h.GetHttpFilters() {
					c.Order = append(c.Order, hf.GetName())
					if hf.GetDisabled() {
						c.Disabled[hf.GetName()] = true
					}
					if tc := hf.GetTypedConfig(); tc != nil {
						m, err := tc.UnmarshalNew()
						if err != nil {
							return nil, fmt.Errorf("listener %s filter %s: %w", l.GetName(), hf.GetName(), err)
						}
						c.Filters[hf.GetName()] = m
					}
				}
				out = append(out, c)
			}
		}
	}
	return out, nil
}

// Routed is where the simulated router sends one request.
type Routed struct {
	Route   *routev3.Route
	Cluster string // "" for a direct response
	Status  uint32 // direct response status
	Authz   bool   // ext_authz runs for this request
	CORS    bool   // a CORS policy applies
	// CORSPolicy is the one that applies (route, else virtual host…)
	CORSPolicy *anypb.Any
	Path       string // path sent upstream after any regex rewrite
}

// Route runs Envoy's route selection for host and path (path may carry a
// query): first matching virtual host by domain, then first matching route.
// Matchers the simulation cannot evaluate are an error, not a guess.
func Route(h *ConnectionManager, host, path string) (*Routed, error) {
	rc := h.Config.GetRouteConfig()
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
		out := &Routed{Route: r, Path: bare}
		switch {
		case r.GetRoute() != nil:
			out.Cluster = r.GetRoute().GetCluster()
			if pr := r.GetRoute().GetPrefixRewrite(); pr != "" {
				// The matched path (or prefix) is swapped for the rewrite.
				switch m := r.GetMatch().GetPathSpecifier().(type) {
				case *routev3.RouteMatch_Path:
					out.Path = pr
				case *routev3.RouteMatch_Prefix:
					out.Path = pr + strings.TrimPrefix(bare, m.Prefix)
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
				out.Path = re.ReplaceAllString(bare, sub)
			}
		case r.GetDirectResponse() != nil:
			out.Status = r.GetDirectResponse().GetStatus()
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
		if _, ok := h.Filters[FilterExtAuthz]; ok {
			out.Authz = !h.Disabled[FilterExtAuthz]
			if a := perFilter(FilterExtAuthz); a != nil {
				pr := &extauthzv3.ExtAuthzPerRoute{}
				if err := a.UnmarshalTo(pr); err != nil {
					return nil, err
				}
				out.Authz = !pr.GetDisabled()
			}
		}
		if _, ok := h.Filters[FilterCORS]; ok {
			out.CORS = perFilter(FilterCORS) != nil
			out.CORSPolicy = perFilter(FilterCORS)
			cp := &corsv3.CorsPolicy{}
			if a := perFilter(FilterCORS); a != nil && a.UnmarshalTo(cp) == nil && cp.GetFilterEnabled() != nil &&
				cp.GetFilterEnabled().GetDefaultValue().GetNumerator() == 0 {
				out.CORS = false // a policy that turns CORS off
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("no route matches %q", path)
}

// pickVirtualHost picks host's virtual host as Envoy does: an exact domain,
// then a prefix or suffix wildcard, then "*".
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

// routeMatches reports whether a route's match accepts the path (full with
// its query, bare without).
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

// actionRoutes unpacks a matcher action: a Route or a RouteList.
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

// HeaderStripped reports whether the header_mutation filter (which
// runs before ext_authz) removes a request header of this name.
func HeaderStripped(h *ConnectionManager, name string) bool {
	hm, ok := h.Filters[FilterHeaders].(*headermutationv3.HeaderMutation)
	if !ok {
		return false
	}
	for _, m := range hm.GetMutations().GetRequestMutations() {
		if strings.EqualFold(m.GetRemove(), name) {
			return true
		}
		if km := m.GetRemoveOnMatch().GetKeyMatcher(); km != nil && StringMatches(km, strings.ToLower(name)) {
			return true
		}
	}
	return false
}
