package envoy

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"sigs.k8s.io/yaml"

	"github.com/mcpgateway/mcp-gateway/envoy/envoytest"
)

// The two shipped bootstraps: both must route as described in envoy.yaml.
var shippedBootstraps = []string{"envoy.yaml", "envoy-http-service.yaml"}

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
	if err := envoytest.ValidateBootstrap(b); err != nil {
		return err
	}
	hcms, err := envoytest.ConnectionManagers(b)
	if err != nil {
		return err
	}
	var public *envoytest.ConnectionManager
	for _, h := range hcms {
		if h.Port == 8000 {
			public = h
		}
	}
	if public == nil {
		return errors.New("no listener on port 8000")
	}
	if _, ok := public.Filters[envoytest.FilterExtAuthz]; !ok {
		return errors.New("listener on port 8000 has no ext_authz filter")
	}
	var errs []error
	for _, hdr := range clientIdentityHeaders {
		if !envoytest.HeaderStripped(public, hdr) {
			errs = append(errs, fmt.Errorf("a client's %s header reaches the agent: header_mutation (before ext_authz) must remove every x-mcp-* request header", hdr))
		}
	}
	for _, e := range routeExpectations {
		got, err := envoytest.Route(public, "localhost:8000", e.path)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", e.path, err))
			continue
		}
		where := fmt.Sprintf("%s (route %q)", e.path, got.Route.GetName())
		if e.cluster == "" && (got.Cluster != "" || got.Status != 404) {
			errs = append(errs, fmt.Errorf("%s: want a 404, goes to cluster %q status %d", where, got.Cluster, got.Status))
		}
		if e.cluster != "" && got.Cluster != e.cluster {
			errs = append(errs, fmt.Errorf("%s: want cluster %q, got %q (status %d)", where, e.cluster, got.Cluster, got.Status))
		}
		if got.Authz != e.authz {
			errs = append(errs, fmt.Errorf("%s: ext_authz enabled=%v, want %v", where, got.Authz, e.authz))
		}
		if got.CORS != e.cors {
			errs = append(errs, fmt.Errorf("%s: CORS policy=%v, want %v", where, got.CORS, e.cors))
		}
		if got.Cluster == "" {
			continue
		}
		if ra := got.Route.GetRoute(); e.authz {
			// An agent route: streaming must not be cut, the token must not leak.
			// Streams stay open: no route timeout, and an idle timeout long
			// enough for a quiet SSE stream (0 = none, else at least 10m).
			if idle := ra.GetIdleTimeout(); ra.GetTimeout() == nil || ra.GetTimeout().AsDuration() != 0 || idle == nil ||
				(idle.AsDuration() != 0 && idle.AsDuration() < 10*time.Minute) {
				errs = append(errs, fmt.Errorf("%s: agent route needs timeout: 0s and idle_timeout: 0s or ≥ 10m for SSE", where))
			}
			if !slices.Contains(got.Route.GetRequestHeadersToRemove(), "authorization") {
				errs = append(errs, fmt.Errorf("%s: agent route must remove authorization", where))
			}
			if got.Path != "/mcp" {
				errs = append(errs, fmt.Errorf("%s: upstream path %q, want /mcp", where, got.Path))
			}
		}
		if got.CORS {
			if err := checkCORS(got.CORSPolicy); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", where, err))
			}
		}
	}
	return errors.Join(errs...)
}

// browserClientHeaders must be in every front's Access-Control-Allow-Headers
// for agents (issue 16 item 7); "*" admits Mcp-Param-*, never Authorization.
var browserClientHeaders = []string{"authorization", "content-type", "mcp-protocol-version", "mcp-session-id", "mcp-method", "mcp-name", "last-event-id", "*"}

func checkCORS(a *anypb.Any) error {
	p := &corsv3.CorsPolicy{}
	if err := a.UnmarshalTo(p); err != nil {
		return err
	}
	if !slices.ContainsFunc(p.GetAllowOriginStringMatch(), func(m *matcherv3.StringMatcher) bool {
		return envoytest.StringMatches(m, "http://localhost:6274") && envoytest.StringMatches(m, "https://inspector.example")
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
	// A 2026-07-28 browser client sends Mcp-Method, Mcp-Name and
	// Mcp-Param-<Name> (covered by "*" only: a list cannot name a prefix).
	for _, h := range browserClientHeaders {
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
	b, err := envoytest.DecodeBootstrap(y)
	if err != nil {
		return err
	}
	if slices.Contains(shippedBootstraps, name) {
		return checkShipped(b)
	}
	return envoytest.ValidateBootstrap(b)
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
		delete(httpFilter(t, doc, envoytest.FilterExtAuthz), "typed_config")
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
			httpFilter(t, d, envoytest.FilterRouter)["typed_config"].(map[string]any)["@type"] = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Routr"
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
			tc := httpFilter(t, d, envoytest.FilterExtAuthz)["typed_config"].(map[string]any)
			tc["grpc_service"].(map[string]any)["envoy_grpc"].(map[string]any)["cluster_name"] = "authz"
		}, `missing cluster "authz"`},
		{"http_service to a missing cluster", "envoy-http-service.yaml", func(t *testing.T, d map[string]any) {
			tc := httpFilter(t, d, envoytest.FilterExtAuthz)["typed_config"].(map[string]any)
			tc["http_service"].(map[string]any)["server_uri"].(map[string]any)["cluster"] = "gateway"
		}, `missing cluster "gateway"`},
		{"regex that does not compile", "envoy.yaml", func(t *testing.T, d map[string]any) {
			namedRoute(t, d, "agent_demo")["match"] = map[string]any{"safe_regex": map[string]any{"regex": "^/demo/mcp(/?$"}}
		}, "does not compile"},
		{"ext_authz-disabled key naming an unknown filter", "envoy.yaml", func(t *testing.T, d map[string]any) {
			pf := namedRoute(t, d, "oauth")["typed_per_filter_config"].(map[string]any)
			pf["envoy.filters.http.extauthz"] = pf[envoytest.FilterExtAuthz]
			delete(pf, envoytest.FilterExtAuthz)
		}, `key "envoy.filters.http.extauthz" names no configured HTTP filter`},
		{"per-route config of the wrong type", "envoy.yaml", func(t *testing.T, d map[string]any) {
			pf := namedRoute(t, d, "login")["typed_per_filter_config"].(map[string]any)
			pf[envoytest.FilterExtAuthz] = map[string]any{"@type": "type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy"}
		}, "per-route config for \"envoy.filters.http.ext_authz\" is envoy.extensions.filters.http.cors.v3.CorsPolicy"},
		{"invalid value inside an Any (only the Any walk sees it)", "envoy.yaml", func(t *testing.T, d map[string]any) {
			publicHCM(t, d)["stat_prefix"] = ""
		}, "invalid HttpConnectionManager.StatPrefix"},
		{"deprecated field", "envoy-http-service.yaml", func(t *testing.T, d map[string]any) {
			tc := httpFilter(t, d, envoytest.FilterExtAuthz)["typed_config"].(map[string]any)
			tc["http_service"].(map[string]any)["authorization_request"] = map[string]any{"allowed_headers": tc["allowed_headers"]}
		}, "authorization_request.allowed_headers: field is deprecated"},
		{"fail open", "envoy.yaml", func(t *testing.T, d map[string]any) {
			httpFilter(t, d, envoytest.FilterExtAuthz)["typed_config"].(map[string]any)["failure_mode_allow"] = true
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
			delete(httpFilter(t, d, envoytest.FilterHeaders), "typed_config")
			httpFilter(t, d, envoytest.FilterHeaders)["typed_config"] = map[string]any{
				"@type":     "type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation",
				"mutations": map[string]any{"request_mutations": []any{map[string]any{"remove": "x-mcp-user"}}}}
		}, "x-mcp-role"},
		{"ext_authz left on for /oauth/", "envoy.yaml", func(t *testing.T, d map[string]any) {
			delete(namedRoute(t, d, "oauth")["typed_per_filter_config"].(map[string]any), envoytest.FilterExtAuthz)
		}, "/oauth/token (route \"oauth\"): ext_authz enabled=true, want false"},
		{"ext_authz off for the agent", "envoy.yaml", func(t *testing.T, d map[string]any) {
			namedRoute(t, d, "agent_demo")["typed_per_filter_config"].(map[string]any)[envoytest.FilterExtAuthz] = map[string]any{
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
			tc := httpFilter(t, d, envoytest.FilterExtAuthz)["typed_config"].(map[string]any)
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

// clientIdentityHeaders: any x-mcp-* a client sends must not reach an agent
// (issue 10 item 7), whatever its name.
var clientIdentityHeaders = []string{"x-mcp-user", "X-MCP-Agent", "x-mcp-client-id", "x-mcp-scope", "x-mcp-credential", "x-mcp-role", "X-Mcp-Tenant", "x-mcp-"}
