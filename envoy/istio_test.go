package envoy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	networkingv1 "istio.io/api/networking/v1"
	securityv1 "istio.io/api/security/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/mcpgateway/mcp-gateway/config"
	"github.com/mcpgateway/mcp-gateway/envoy/envoytest"
)

// istioObjects is everything decoded from envoy/istio/*.yaml.
type istioObjects struct {
	deployments []*appsv1.Deployment
	services    []*corev1.Service
	configMaps  []*corev1.ConfigMap
	policies    map[string]*securityv1.AuthorizationPolicy // namespace/name
	gateways    []*networkingv1.Gateway
	virtuals    []*networkingv1.VirtualService
	destRules   []*networkingv1.DestinationRule
	mesh        []*meshv1alpha1.MeshConfig
}

// istioCR is the envelope of an Istio custom resource: the spec is a proto
// and is decoded with protojson, which rejects unknown fields.
type istioCR struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   metav1.ObjectMeta `json:"metadata"`
	Spec       json.RawMessage   `json:"spec"`
}

// istioOperator is the one part of an IstioOperator shipped here.
type istioOperator struct {
	APIVersion string             `json:"apiVersion"`
	Kind       string             `json:"kind"`
	Metadata   *metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec       struct {
		MeshConfig json.RawMessage `json:"meshConfig"`
	} `json:"spec"`
}

func strictProto(j []byte, m proto.Message) error {
	return protojson.UnmarshalOptions{DiscardUnknown: false}.Unmarshal(j, m)
}

// decodeManifest decodes one YAML document into its real API type, strictly.
func (o *istioObjects) decodeManifest(doc []byte) error {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return err
	}
	gvk := tm.APIVersion + "/" + tm.Kind
	strict := func(v any) error { return yaml.UnmarshalStrict(doc, v) }
	switch gvk {
	case "apps/v1/Deployment":
		d := &appsv1.Deployment{}
		o.deployments = append(o.deployments, d)
		return strict(d)
	case "v1/Service":
		s := &corev1.Service{}
		o.services = append(o.services, s)
		return strict(s)
	case "v1/ConfigMap":
		c := &corev1.ConfigMap{}
		o.configMaps = append(o.configMaps, c)
		return strict(c)
	case "v1/Namespace":
		return strict(&corev1.Namespace{})
	case "v1/ServiceAccount":
		return strict(&corev1.ServiceAccount{})
	case "policy/v1/PodDisruptionBudget":
		return strict(&policyv1.PodDisruptionBudget{})
	case "install.istio.io/v1alpha1/IstioOperator":
		var op istioOperator
		if err := strict(&op); err != nil {
			return err
		}
		m := &meshv1alpha1.MeshConfig{}
		if err := strictProto(op.Spec.MeshConfig, m); err != nil {
			return fmt.Errorf("meshConfig: %w", err)
		}
		o.mesh = append(o.mesh, m)
		return envoytest.Walk(m, "meshConfig")
	case "security.istio.io/v1/AuthorizationPolicy", "networking.istio.io/v1/Gateway", "networking.istio.io/v1/VirtualService",
		"networking.istio.io/v1/DestinationRule":
		var cr istioCR
		if err := strict(&cr); err != nil {
			return err
		}
		var spec proto.Message
		switch tm.Kind {
		case "AuthorizationPolicy":
			p := &securityv1.AuthorizationPolicy{}
			o.policies[cr.Metadata.Namespace+"/"+cr.Metadata.Name] = p
			spec = p
		case "Gateway":
			g := &networkingv1.Gateway{}
			o.gateways = append(o.gateways, g)
			spec = g
		case "DestinationRule":
			d := &networkingv1.DestinationRule{}
			o.destRules = append(o.destRules, d)
			spec = d
		default:
			v := &networkingv1.VirtualService{}
			o.virtuals = append(o.virtuals, v)
			spec = v
		}
		if err := strictProto(cr.Spec, spec); err != nil {
			return fmt.Errorf("%s %s spec: %w", tm.Kind, cr.Metadata.Name, err)
		}
		return envoytest.Walk(spec, tm.Kind)
	}
	return fmt.Errorf("kind %q is not decoded by this test", gvk)
}

func splitYAMLDocs(b []byte) ([][]byte, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(b)))
	var out [][]byte
	for {
		doc, err := r.Read()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		if len(bytes.TrimSpace(stripComments(doc))) > 0 {
			out = append(out, doc)
		}
	}
}

func stripComments(b []byte) []byte {
	var out []byte
	for _, l := range bytes.Split(b, []byte("\n")) {
		if !bytes.HasPrefix(bytes.TrimSpace(l), []byte("#")) {
			out = append(out, l...)
			out = append(out, '\n')
		}
	}
	return out
}

func loadIstio(t *testing.T, files map[string][]byte) (*istioObjects, error) {
	t.Helper()
	o := &istioObjects{policies: map[string]*securityv1.AuthorizationPolicy{}}
	var errs []error
	for name, b := range files {
		docs, err := splitYAMLDocs(b)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
			continue
		}
		for i, d := range docs {
			if err := o.decodeManifest(d); err != nil {
				errs = append(errs, fmt.Errorf("%s document %d: %w", name, i+1, err))
			}
		}
	}
	return o, errors.Join(errs...)
}

func readIstioFiles(t *testing.T) map[string][]byte {
	t.Helper()
	names, err := filepath.Glob("istio/*.yaml")
	if err != nil || len(names) == 0 {
		t.Fatalf("no istio manifests: %v", err)
	}
	out := map[string][]byte{}
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		out[n] = b
	}
	return out
}

// istioStringMatch is how Istio reads a value in an AuthorizationPolicy
// operation: "*" any, "*x" suffix, "x*" prefix, {*}/{**} templates, else exact.
func istioStringMatch(pattern, path string) bool {
	switch {
	case pattern == "*":
		return path != ""
	case strings.Contains(pattern, "{*}") || strings.Contains(pattern, "{**}"):
		var re strings.Builder
		re.WriteString("^")
		for i, seg := range strings.Split(pattern, "/") {
			if i > 0 {
				re.WriteString("/")
			}
			switch seg {
			case "{*}":
				re.WriteString("[^/]+")
			case "{**}":
				re.WriteString(".+")
			default:
				re.WriteString(regexp.QuoteMeta(seg))
			}
		}
		re.WriteString("$")
		return regexp.MustCompile(re.String()).MatchString(path)
	case strings.HasPrefix(pattern, "*"):
		return strings.HasSuffix(path, pattern[1:])
	case strings.HasSuffix(pattern, "*"):
		return strings.HasPrefix(path, pattern[:len(pattern)-1])
	}
	return path == pattern
}

// checkIstioCORS: an agent route answers a browser client's preflight
// (MCP Inspector's origin, the 2026-07-28 headers) and forwards none.
func checkIstioCORS(c *networkingv1.CorsPolicy) error {
	if c == nil {
		return errors.New("no corsPolicy: a browser client's preflight is never answered")
	}
	if !slices.ContainsFunc(c.GetAllowOrigins(), func(m *networkingv1.StringMatch) bool {
		return m.GetRegex() == ".*" || m.GetExact() == "http://localhost:6274"
	}) {
		return errors.New("corsPolicy does not admit http://localhost:6274")
	}
	for _, h := range browserClientHeaders {
		if !slices.Contains(c.GetAllowHeaders(), h) {
			return fmt.Errorf("corsPolicy allowHeaders lacks %s", h)
		}
	}
	for _, m := range []string{"GET", "POST", "DELETE"} {
		if !slices.Contains(c.GetAllowMethods(), m) {
			return fmt.Errorf("corsPolicy allowMethods lacks %s", m)
		}
	}
	if !slices.Contains(c.GetExposeHeaders(), "www-authenticate") || !slices.Contains(c.GetExposeHeaders(), "mcp-session-id") {
		return errors.New("corsPolicy must expose www-authenticate and mcp-session-id")
	}
	// The CUSTOM policy lets preflights through unchecked: none may reach an agent.
	if c.GetUnmatchedPreflights() != networkingv1.CorsPolicy_IGNORE {
		return errors.New("corsPolicy must not forward unmatched preflights (unmatchedPreflights: IGNORE)")
	}
	return nil
}

// policyRequest is what a CUSTOM policy's rules are matched against.
type policyRequest struct {
	method, path string
	headers      map[string]string // lower-case names
}

// checkedByCustom: does a CUSTOM policy's rule send this request to the
// provider? Rules are ORed; a rule's to and when are ANDed.
func checkedByCustom(p *securityv1.AuthorizationPolicy, path string) bool {
	return customChecks(p, policyRequest{method: "POST", path: path})
}

func customChecks(p *securityv1.AuthorizationPolicy, req policyRequest) bool {
	for _, r := range p.GetRules() {
		if !slices.ContainsFunc(r.GetWhen(), func(c *securityv1.Condition) bool { return !conditionHolds(c, req) }) &&
			(len(r.GetTo()) == 0 || slices.ContainsFunc(r.GetTo(), func(to *securityv1.Rule_To) bool { return operationMatches(to.GetOperation(), req) })) {
			return true
		}
	}
	return false
}

func operationMatches(op *securityv1.Operation, req policyRequest) bool {
	match := func(p string) bool { return istioStringMatch(p, req.path) }
	return (len(op.GetPaths()) == 0 || slices.ContainsFunc(op.GetPaths(), match)) &&
		!slices.ContainsFunc(op.GetNotPaths(), match) &&
		(len(op.GetMethods()) == 0 || slices.Contains(op.GetMethods(), req.method)) &&
		!slices.Contains(op.GetNotMethods(), req.method)
}

// conditionHolds simulates request.headers[...] conditions ("*": present);
// any other key fails the manifests' check.
func conditionHolds(c *securityv1.Condition, req policyRequest) bool {
	name, ok := strings.CutPrefix(c.GetKey(), "request.headers[")
	if !ok {
		panic("condition " + c.GetKey() + " is not simulated")
	}
	v, present := req.headers[strings.ToLower(strings.TrimSuffix(name, "]"))]
	match := func(want string) bool { return present && (want == "*" || istioStringMatch(want, v)) }
	return (len(c.GetValues()) == 0 || slices.ContainsFunc(c.GetValues(), match)) && !slices.ContainsFunc(c.GetNotValues(), match)
}

// vsRoute finds the VirtualService route for path: first HTTPRoute with a
// matching uri (Istio regexes match the whole path).
func vsRoute(vs *networkingv1.VirtualService, path string) (string, uint32, string, error) {
	for _, r := range vs.GetHttp() {
		for _, m := range r.GetMatch() {
			u := m.GetUri()
			var ok bool
			switch {
			case u.GetExact() != "":
				ok = path == u.GetExact()
			case u.GetPrefix() != "":
				ok = strings.HasPrefix(path, u.GetPrefix())
			case u.GetRegex() != "":
				re, err := regexp.Compile("^(?:" + u.GetRegex() + ")$")
				if err != nil {
					return "", 0, "", fmt.Errorf("route %s: %w", r.GetName(), err)
				}
				ok = re.MatchString(path)
			default:
				return "", 0, "", fmt.Errorf("route %s: match without a uri is not simulated", r.GetName())
			}
			if ok {
				d := r.GetRoute()[0].GetDestination()
				return d.GetHost(), d.GetPort().GetNumber(), r.GetName(), nil
			}
		}
	}
	return "", 0, "", nil
}

// checkIstio is the semantic part: what decoding cannot see.
func checkIstio(o *istioObjects) error {
	var errs []error
	fail := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }

	// Services by cluster-local DNS name.
	svcs := map[string]*corev1.Service{}
	for _, s := range o.services {
		svcs[s.Name+"."+s.Namespace+".svc.cluster.local"] = s
	}
	svcPort := func(host string, port uint32) bool {
		s := svcs[host]
		return s != nil && slices.ContainsFunc(s.Spec.Ports, func(p corev1.ServicePort) bool { return uint32(p.Port) == port })
	}

	// The mesh's ext_authz providers point at the gateway's Service.
	providers := map[string]bool{}
	for _, m := range o.mesh {
		for _, p := range m.GetExtensionProviders() {
			providers[p.GetName()] = true
			switch {
			case p.GetEnvoyExtAuthzGrpc() != nil:
				g := p.GetEnvoyExtAuthzGrpc()
				if !svcPort(g.GetService(), g.GetPort()) {
					fail("extension provider %s: no Service %s with port %d", p.GetName(), g.GetService(), g.GetPort())
				}
				if g.GetFailOpen() || g.GetStatusOnError() != "503" {
					fail("extension provider %s: want failOpen false and statusOnError 503", p.GetName())
				}
			case p.GetEnvoyExtAuthzHttp() != nil:
				h := p.GetEnvoyExtAuthzHttp()
				if !svcPort(h.GetService(), h.GetPort()) {
					fail("extension provider %s: no Service %s with port %d", p.GetName(), h.GetService(), h.GetPort())
				}
				if h.GetPathPrefix() != "/authz/check" || h.GetFailOpen() || h.GetStatusOnError() != "503" {
					fail("extension provider %s: want pathPrefix /authz/check, failOpen false, statusOnError 503", p.GetName())
				}
				// authorization: an agent's upstream_auth credential (issue 14 item 4).
				for _, hdr := range append(slices.Clone(envoytest.IdentityHeaders), "authorization") {
					if !slices.Contains(h.GetHeadersToUpstreamOnAllow(), hdr) {
						fail("extension provider %s: headersToUpstreamOnAllow lacks %s", p.GetName(), hdr)
					}
				}
				if !slices.Contains(h.GetHeadersToDownstreamOnDeny(), "www-authenticate") {
					fail("extension provider %s: headersToDownstreamOnDeny lacks www-authenticate", p.GetName())
				}
				if !slices.Contains(h.GetIncludeRequestHeadersInCheck(), "authorization") {
					fail("extension provider %s: includeRequestHeadersInCheck lacks authorization", p.GetName())
				}
				// The check removes the client's x-mcp-* headers it is shown;
				// one it is not shown reaches the agent (issue 10, item 7).
				if !slices.Contains(h.GetIncludeRequestHeadersInCheck(), "x-mcp-*") {
					fail("extension provider %s: includeRequestHeadersInCheck lacks \"x-mcp-*\"", p.GetName())
				}
				// The gateway refuses an Origin it does not admit (issue 16 item 8).
				if !slices.Contains(h.GetIncludeRequestHeadersInCheck(), "origin") {
					fail("extension provider %s: includeRequestHeadersInCheck lacks origin", p.GetName())
				}
			}
		}
	}

	// The CUSTOM policy: a known provider, and exactly the agent paths.
	var custom *securityv1.AuthorizationPolicy
	for name, p := range o.policies {
		if p.GetAction() == securityv1.AuthorizationPolicy_CUSTOM {
			custom = p
			if !providers[p.GetProvider().GetName()] {
				fail("AuthorizationPolicy %s: provider %q is not in meshConfig.extensionProviders", name, p.GetProvider().GetName())
			}
		}
	}
	if custom == nil {
		fail("no AuthorizationPolicy with action CUSTOM")
	} else {
		for _, p := range []string{"/demo/mcp", "/demo/mcp/", "/my.agent_2-x/mcp"} {
			for _, m := range []string{"POST", "GET", "DELETE", "PUT", "OPTIONS"} {
				if !customChecks(custom, policyRequest{method: m, path: p, headers: map[string]string{"origin": "http://localhost:6274"}}) {
					fail("CUSTOM policy does not check %s (%s)", p, m)
				}
			}
			// A browser's CORS preflight has no credential: the ingress's
			// corsPolicy answers it, unchecked (issue 16 item 7).
			preflight := policyRequest{method: "OPTIONS", path: p, headers: map[string]string{"origin": "http://localhost:6274", "access-control-request-method": "POST"}}
			if customChecks(custom, preflight) {
				fail("CUSTOM policy checks the CORS preflight to %s: a browser client gets 401", p)
			}
		}
		for _, p := range []string{"/oauth/token", "/oauth/register", "/.well-known/oauth-protected-resource/demo/mcp",
			"/.well-known/oauth-authorization-server", "/login", "/consent",
			// public_url with a path: the path follows the well-known suffix.
			"/.well-known/oauth-protected-resource/gw/demo/mcp", "/.well-known/oauth-authorization-server/gw"} {
			if checkedByCustom(custom, p) {
				fail("CUSTOM policy checks public path %s", p)
			}
		}
	}

	// Ingress routes: OAuth to the gateway's HTTP port, agents to agents, and
	// every agent route is one the CUSTOM policy checks.
	gw := "mcp-gateway.mcp-gateway.svc.cluster.local"
	for _, vs := range o.virtuals {
		for _, c := range []struct {
			path string
			host string
			port uint32
		}{
			{"/oauth/token", gw, 8080},
			{"/.well-known/oauth-protected-resource/demo/mcp", gw, 8080},
			{"/.well-known/oauth-authorization-server", gw, 8080},
			{"/.well-known/oauth-protected-resource/gw/demo/mcp", gw, 8080},
			{"/.well-known/oauth-authorization-server/gw", gw, 8080},
			{"/login", gw, 8080},
			{"/login/callback", gw, 8080},
			{"/consent", gw, 8080},
			{"/account", gw, 8080},
			{"/demo/mcp", "demo-agent.mcp-gateway.svc.cluster.local", 3000},
			{"/demo/mcp/", "demo-agent.mcp-gateway.svc.cluster.local", 3000},
			{"/loginx", "", 0},
			{"/authz/check", "", 0},
			{"/admin/v1/agents", "", 0},
		} {
			host, port, name, err := vsRoute(vs, c.path)
			if err != nil {
				fail("VirtualService: %v", err)
				continue
			}
			if host != c.host || port != c.port {
				fail("VirtualService: %s goes to %s:%d (route %q), want %s:%d", c.path, host, port, name, c.host, c.port)
			}
			if host != "" && !svcPort(host, port) {
				fail("VirtualService: %s goes to %s:%d, which no Service here offers", c.path, host, port)
			}
			if host != "" && host != gw && custom != nil && !checkedByCustom(custom, c.path) {
				fail("VirtualService: agent path %s is routed but not checked", c.path)
			}
		}
		for _, r := range vs.GetHttp() {
			if r.GetRoute()[0].GetDestination().GetHost() != gw && !slices.Contains(r.GetHeaders().GetRequest().GetRemove(), "authorization") {
				fail("VirtualService route %s: an agent route must remove authorization", r.GetName())
			}
			if r.GetRoute()[0].GetDestination().GetHost() != gw {
				if err := checkIstioCORS(r.GetCorsPolicy()); err != nil {
					fail("VirtualService route %s: %v", r.GetName(), err)
				}
			}
		}
	}

	for _, d := range o.deployments {
		if d.Name == "mcp-gateway" {
			errs = append(errs, checkGatewayDeployment(d, o)...)
		}
	}
	if !slices.ContainsFunc(o.deployments, func(d *appsv1.Deployment) bool { return d.Name == "mcp-gateway" }) {
		fail("no mcp-gateway Deployment")
	}
	return errors.Join(errs...)
}

func checkGatewayDeployment(d *appsv1.Deployment, o *istioObjects) []error {
	var errs []error
	fail := func(format string, a ...any) {
		errs = append(errs, fmt.Errorf("Deployment %s: "+format, append([]any{d.Name}, a...)...))
	}
	if d.Spec.Replicas == nil || *d.Spec.Replicas < 2 {
		fail("replicas must be ≥ 2")
	}
	if len(d.Spec.Template.Spec.Containers) != 1 {
		fail("want one container")
		return errs
	}
	c := d.Spec.Template.Spec.Containers[0]
	port := func(p intstr.IntOrString) int32 {
		if p.Type == intstr.Int {
			return p.IntVal
		}
		for _, cp := range c.Ports {
			if cp.Name == p.StrVal {
				return cp.ContainerPort
			}
		}
		return -1
	}
	probe := func(name string, p *corev1.Probe, path string) {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != path || port(p.HTTPGet.Port) != 9090 {
			fail("%s probe must be GET %s on the admin port 9090", name, path)
		}
	}
	probe("readiness", c.ReadinessProbe, "/readyz")
	probe("liveness", c.LivenessProbe, "/healthz")
	for _, want := range []int32{8080, 9191, 9090} {
		if !slices.ContainsFunc(c.Ports, func(p corev1.ContainerPort) bool { return p.ContainerPort == want }) {
			fail("no container port %d", want)
		}
	}

	// Environment as the config loader will see it; Secret values replaced
	// by stand-ins of the right shape.
	env := map[string]string{}
	secretEnv := map[string]string{
		"MCPGW_STORE_URL":   "rediss://:pw@redis.test:6380/0",
		"MCPGW_LOGIN_USERS": `[{"username":"alice","password_hash":"$2a$10$XyvXEsZur2cBHpHkjBJFIOpmGzhcV35iXOjC/IKwnyS5jfXMJSlmm"}]`,
		"MCPGW_ADMIN_TOKEN": "stand-in-admin-token-of-32-bytes-or-more",
	}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil:
			v, ok := secretEnv[e.Name]
			if !ok {
				fail("env %s from a Secret: no stand-in value in this test", e.Name)
			}
			env[e.Name] = v
		case e.ValueFrom == nil:
			env[e.Name] = e.Value
		}
	}
	if e := c.Env[slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "MCPGW_STORE_URL" })]; e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
		fail("MCPGW_STORE_URL must come from a Secret")
	}

	// The config file: mounted from the ConfigMap at the path in args.
	i := slices.Index(c.Args, "--config")
	if i < 0 || i+1 >= len(c.Args) {
		fail("args lack --config")
		return errs
	}
	cfgPath := c.Args[i+1]
	mounts := map[string]corev1.Volume{}
	for _, m := range c.VolumeMounts {
		for _, v := range d.Spec.Template.Spec.Volumes {
			if v.Name == m.Name {
				mounts[m.MountPath] = v
			}
		}
	}
	v, ok := mounts[filepath.Dir(cfgPath)]
	if !ok || v.ConfigMap == nil {
		fail("%s is not in a ConfigMap mount", cfgPath)
		return errs
	}
	var cm *corev1.ConfigMap
	for _, c := range o.configMaps {
		if c.Name == v.ConfigMap.Name && c.Namespace == d.Namespace {
			cm = c
		}
	}
	if cm == nil {
		fail("ConfigMap %s not in the manifests", v.ConfigMap.Name)
		return errs
	}
	raw, ok := cm.Data[filepath.Base(cfgPath)]
	if !ok {
		fail("ConfigMap %s has no key %s", cm.Name, filepath.Base(cfgPath))
		return errs
	}
	cfg, err := config.Parse(cfgPath, []byte(raw), mapLookup(env), false)
	if err != nil {
		fail("config: %v", err)
		return errs
	}
	if cfg.Store.URL == "memory" {
		fail("store is memory: replicas would not share state")
	}
	for _, k := range cfg.SigningKeys {
		sv, ok := mounts[filepath.Dir(k.SecretFile)]
		if k.SecretFile == "" || !ok || sv.Secret == nil {
			fail("signing key %s must be a secret_file in a Secret mount", k.ID)
		}
	}
	// The Service selects these pods and offers the three ports.
	for _, s := range o.services {
		if s.Name != d.Name {
			continue
		}
		for k, v := range s.Spec.Selector {
			if d.Spec.Template.Labels[k] != v {
				fail("Service %s selector %s=%s does not select the pods", s.Name, k, v)
			}
		}
		for _, p := range s.Spec.Ports {
			if port(p.TargetPort) != p.Port {
				fail("Service port %s: targetPort %s is not container port %d", p.Name, p.TargetPort.String(), p.Port)
			}
		}
	}
	return errs
}

// mapLookup is env as config.Parse's lookup: the environment a manifest sets.
func mapLookup(env map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := env[k]; return v, ok }
}

func TestIstioManifests(t *testing.T) {
	o, err := loadIstio(t, readIstioFiles(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(o.mesh) == 0 || len(o.policies) == 0 || len(o.virtuals) == 0 || len(o.deployments) == 0 {
		t.Fatalf("missing manifests: mesh %d, policies %d, virtual services %d, deployments %d",
			len(o.mesh), len(o.policies), len(o.virtuals), len(o.deployments))
	}
	if err := checkIstio(o); err != nil {
		t.Fatal(err)
	}
}

// TestIstioValidationBites edits the shipped manifests the way a hand edit
// goes wrong and requires each to fail for that reason.
func TestIstioValidationBites(t *testing.T) {
	cases := []struct {
		name, file, old, new, want string
	}{
		{"unknown field in a Deployment", "istio/mcp-gateway.yaml", "  replicas: 2\n", "  replicas: 2\n  replica: 2\n", `unknown field "replica"`},
		{"unknown field in an Istio spec", "istio/authorization-policy.yaml", "  action: CUSTOM\n", "  action: CUSTOM\n  actions: CUSTOM\n", `unknown field "actions"`},
		{"unknown field in meshConfig", "istio/mesh-config.yaml", "        failOpen: false\n        statusOnError: \"503\"\n    # The same",
			"        failOpen: false\n        statusOnError: \"503\"\n        includeRequestHeadersInCheck: [authorization]\n    # The same", `unknown field "includeRequestHeadersInCheck"`},
		{"deprecated Istio field", "istio/mesh-config.yaml", "includeRequestHeadersInCheck:", "includeHeadersInCheck:", "deprecated"},
		{"one replica", "istio/mcp-gateway.yaml", "replicas: 2", "replicas: 1", "replicas must be ≥ 2"},
		{"readiness on the wrong path", "istio/mcp-gateway.yaml", "path: /readyz", "path: /ready", "readiness probe"},
		{"Redis URL in plain env", "istio/mcp-gateway.yaml", "        - name: MCPGW_STORE_URL\n          valueFrom:\n            secretKeyRef: { name: mcp-gateway-redis, key: url }",
			"        - name: MCPGW_STORE_URL\n          value: redis://redis:6379/0", "must come from a Secret"},
		{"signing key inline", "istio/mcp-gateway.yaml", "secret_file: /var/run/secrets/mcp-gateway/signing/k1", "secret: 0123456789abcdef0123456789abcdef", "must be a secret_file"},
		{"config typo", "istio/mcp-gateway.yaml", "    scopes: [mcp]", "    scope: [mcp]", `unknown field "scope"`},
		{"wildcard in the middle", "istio/authorization-policy.yaml", `paths: ["*/mcp", "*/mcp/"]`, `paths: ["/*/mcp"]`, "does not check /demo/mcp"},
		{"PRM behind the check", "istio/authorization-policy.yaml", "        notPaths: [\"/.well-known/*\"]\n", "", "checks public path /.well-known/oauth-protected-resource/demo/mcp"},
		{"unknown provider", "istio/authorization-policy.yaml", "    name: mcp-gateway\n", "    name: mcp-gw\n", `provider "mcp-gw"`},
		{"provider to a wrong port", "istio/mesh-config.yaml", "port: 9191", "port: 9192", "no Service mcp-gateway.mcp-gateway.svc.cluster.local with port 9192"},
		{"agent route keeps the token", "istio/ingress.yaml", "        remove:\n        - authorization\n", "        remove:\n        - cookie\n", "must remove authorization"},
		{"client x-mcp-* headers not sent to the HTTP check", "istio/mesh-config.yaml", `, "x-mcp-*"]`, "]", "includeRequestHeadersInCheck lacks \"x-mcp-*\""},
		{"preflight checked", "istio/authorization-policy.yaml", "        notMethods: [\"OPTIONS\"]\n", "", "checks the CORS preflight to /demo/mcp"},
		{"OPTIONS unchecked", "istio/authorization-policy.yaml", "      notValues: [\"*\"]", "      values: [\"*\"]", "does not check /demo/mcp (OPTIONS)"},
		{"no CORS on an agent route", "istio/ingress.yaml", "  - corsPolicy:\n", "  - corsPolicyX:\n", "unknown field"},
		{"Mcp-Param-* refused by CORS", "istio/ingress.yaml", "      - '*'\n", "", "allowHeaders lacks *"},
		{"preflights forwarded", "istio/ingress.yaml", "unmatchedPreflights: IGNORE", "unmatchedPreflights: FORWARD", "unmatchedPreflights: IGNORE"},
		{"Origin not sent to the HTTP check", "istio/mesh-config.yaml", ", origin, ", ", ", "includeRequestHeadersInCheck lacks origin"},
		{"upstream credential dropped", "istio/mesh-config.yaml", "x-mcp-identity, authorization]", "x-mcp-identity]", "headersToUpstreamOnAllow lacks authorization"},
		{"agent route to a missing Service", "istio/ingress.yaml", "host: demo-agent.mcp-gateway.svc.cluster.local", "host: demo.mcp-gateway.svc.cluster.local", "which no Service here offers"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			files := readIstioFiles(t)
			if !bytes.Contains(files[c.file], []byte(c.old)) {
				t.Fatalf("%s no longer contains %q: update this case", c.file, c.old)
			}
			files[c.file] = bytes.Replace(files[c.file], []byte(c.old), []byte(c.new), 1)
			o, err := loadIstio(t, files)
			if err == nil {
				err = checkIstio(o)
			}
			if err == nil {
				t.Fatal("broken manifests passed")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error does not mention %q:\n%v", c.want, err)
			}
		})
	}
}
