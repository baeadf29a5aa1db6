package envoy

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/bcrypt"
	"sigs.k8s.io/yaml"

	"github.com/mcpgateway/mcp-gateway/config"
	"github.com/mcpgateway/mcp-gateway/internal/metrics"
	"github.com/mcpgateway/mcp-gateway/store"
	"github.com/mcpgateway/mcp-gateway/xds"
)

// The compose demo's documented login password (compose.yaml, gateway.yaml).
const demoPassword = "mcp-demo-password"

// loadCompose loads compose.yaml with the compose-spec loader (the same code
// docker compose uses), with an empty environment so the result does not
// depend on the machine.
func loadCompose(t *testing.T, env ...string) *types.Project {
	t.Helper()
	opts, err := cli.NewProjectOptions([]string{filepath.Join("..", "compose.yaml")},
		cli.WithWorkingDirectory(".."), cli.WithEnv(env), cli.WithResolvedPaths(true))
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	return p
}

func service(t *testing.T, p *types.Project, name string) types.ServiceConfig {
	t.Helper()
	s, ok := p.Services[name]
	if !ok {
		t.Fatalf("compose.yaml has no service %q", name)
	}
	return s
}

// bindSource finds the host file a service mounts at target.
func bindSource(s types.ServiceConfig, target string) (string, bool) {
	for _, v := range s.Volumes {
		if v.Type == types.VolumeTypeBind && v.Target == target {
			return v.Source, true
		}
	}
	return "", false
}

func TestCompose(t *testing.T) {
	p := loadCompose(t)
	root, _ := filepath.Abs("..")

	want := []string{"envoy", "gateway", "keygen", "redis", "demo-agent", "prometheus", "grafana"}
	for _, name := range want {
		service(t, p, name)
	}
	for name := range p.Services {
		if !slices.Contains(want, name) {
			t.Errorf("unexpected service %q: add it to this test", name)
		}
	}

	for name, s := range p.Services {
		// Every bind mount names a file or directory of this repository.
		for _, v := range s.Volumes {
			if v.Type != types.VolumeTypeBind {
				continue
			}
			rel, err := filepath.Rel(root, v.Source)
			if err != nil || strings.HasPrefix(rel, "..") {
				t.Errorf("%s mounts %s, outside the repository", name, v.Source)
				continue
			}
			if _, err := os.Stat(v.Source); err != nil {
				t.Errorf("%s mounts %s, which does not exist", name, rel)
			}
			if !v.ReadOnly {
				t.Errorf("%s mounts %s writable", name, rel)
			}
		}
		// Images are pinned, except the one this file builds.
		if s.Image != "mcp-gateway:latest" {
			tag := s.Image[strings.LastIndex(s.Image, ":")+1:]
			if !strings.Contains(s.Image, ":") || tag == "latest" || !regexp.MustCompile(`\d`).MatchString(tag) {
				t.Errorf("%s: image %q is not pinned to a version", name, s.Image)
			}
		} else if s.Build == nil && s.PullPolicy != types.PullPolicyNever {
			t.Errorf("%s uses the locally built image: needs build or pull_policy: never", name)
		}
		// Published ports bind the host's loopback: the demo has a known password.
		for _, port := range s.Ports {
			if port.HostIP != "127.0.0.1" {
				t.Errorf("%s publishes %s on %q, want 127.0.0.1", name, port.Published, port.HostIP)
			}
		}
	}

	envoySvc := service(t, p, "envoy")
	if !slices.ContainsFunc(envoySvc.Ports, func(p types.ServicePortConfig) bool { return p.Target == 8000 && p.Published == "8000" }) {
		t.Errorf("envoy must publish 8000:8000, has %+v", envoySvc.Ports)
	}
	// Envoy runs on the control plane: the ADS bootstrap, routes from the gateway.
	if src, ok := bindSource(envoySvc, "/etc/envoy/envoy-xds.yaml"); !ok || src != filepath.Join(root, "envoy", "envoy-xds.yaml") {
		t.Errorf("envoy must mount envoy/envoy-xds.yaml at /etc/envoy/envoy-xds.yaml, mounts %q", src)
	}
	if !slices.Contains(envoySvc.Command, "/etc/envoy/envoy-xds.yaml") {
		t.Errorf("envoy command %q does not load /etc/envoy/envoy-xds.yaml", envoySvc.Command)
	}

	gw := service(t, p, "gateway")
	if gw.Build == nil || gw.Build.Context != root {
		t.Errorf("gateway must build the repository's Dockerfile, build = %+v", gw.Build)
	}
	hc := gw.HealthCheck
	if hc == nil || len(hc.Test) < 2 || hc.Test[0] != "CMD" || hc.Test[1] != dockerBinary(t) || !slices.Contains(hc.Test, "healthcheck") {
		t.Errorf("gateway healthcheck must run %s healthcheck (distroless: no shell), is %q", dockerBinary(t), hc.Test)
	} else if u := hc.Test[len(hc.Test)-1]; !strings.HasSuffix(u, ":9090/healthz") {
		t.Errorf("gateway healthcheck URL %q is not the admin /healthz", u)
	}
	if r := service(t, p, "redis").HealthCheck; r == nil || !slices.Equal([]string(r.Test), []string{"CMD", "redis-cli", "ping"}) {
		t.Errorf("redis healthcheck must be redis-cli ping, is %+v", r)
	}
	for dep, cond := range map[string]string{"redis": types.ServiceConditionHealthy, "keygen": types.ServiceConditionCompletedSuccessfully} {
		if gw.DependsOn[dep].Condition != cond {
			t.Errorf("gateway must wait for %s (%s), has %q", dep, cond, gw.DependsOn[dep].Condition)
		}
	}
	if envoySvc.DependsOn["gateway"].Condition != types.ServiceConditionHealthy {
		t.Error("envoy must wait for a healthy gateway")
	}
	// The demo agent verifies the gateway's assertions: its issuer is the
	// gateway's public_url, its keys come from the gateway's HTTP listener.
	wantAgent := []string{"demo-agent", "--listen", ":3000", "--issuer", "http://localhost:8000", "--jwks-url", "http://gateway:8080/.well-known/jwks.json"}
	if agent := service(t, p, "demo-agent"); !slices.Equal([]string(agent.Command), wantAgent) || agent.Image != gw.Image {
		t.Errorf("demo-agent must run the gateway image's %q, is %q %q", wantAgent, agent.Image, agent.Command)
	}

	// The gateway's config as the container will load it.
	cfgFile := "/etc/mcp-gateway/config.yaml"
	if !slices.Equal([]string(gw.Command), []string{"serve", "--config", cfgFile}) {
		t.Errorf("gateway command %q", gw.Command)
	}
	src, ok := bindSource(gw, cfgFile)
	if !ok {
		t.Fatalf("gateway does not mount %s", cfgFile)
	}
	raw, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for k, v := range gw.Environment {
		if v != nil {
			env[k] = *v
		}
	}
	cfg, err := loadGatewayConfig(raw, env)
	if err != nil {
		t.Fatalf("%s: %v", src, err)
	}
	checkComposeGatewayConfig(t, p, gw, cfg)
}

// checkComposeGatewayConfig ties the gateway's config to the other services:
// addresses, ports, the key volume, Envoy's clusters, Prometheus' targets.
func checkComposeGatewayConfig(t *testing.T, p *types.Project, gw types.ServiceConfig, cfg *config.Config) {
	t.Helper()
	hostPort := func(addr string) (string, string) {
		h, port, err := net.SplitHostPort(addr)
		if err != nil {
			t.Fatalf("%q: %v", addr, err)
		}
		return h, port
	}
	// One host name end to end (issue 16 item 5): the one Envoy publishes,
	// dev mode's and the README's, so a newcomer mixing them is impossible.
	if cfg.PublicURL != "http://127.0.0.1:8000" || cfg.PublicURL != config.Default().PublicURL {
		t.Errorf("public_url %q: clients reach Envoy at http://127.0.0.1:8000, dev mode's address", cfg.PublicURL)
	}
	// MCP Inspector's web UI may call the agents (issue 16 items 7, 8).
	if !slices.Contains(cfg.AgentOrigins, "http://localhost:6274") {
		t.Errorf("agent_origins %q: MCP Inspector's web UI (http://localhost:6274) would be refused", cfg.AgentOrigins)
	}
	if h, port := hostPort(cfg.Listen.Admin); h != "0.0.0.0" || port != "9090" {
		t.Errorf("admin listens on %q: Prometheus and the healthcheck need 0.0.0.0:9090", cfg.Listen.Admin)
	}
	u, err := url.Parse(cfg.Store.URL)
	if err != nil || u.Scheme != "redis" || p.Services[u.Hostname()].Name == "" {
		t.Errorf("store.url %q does not point at a compose service", cfg.Store.URL)
	}
	for _, k := range cfg.SigningKeys {
		if k.SecretFile == "" || !slices.ContainsFunc(gw.Volumes, func(v types.ServiceVolumeConfig) bool {
			return v.Type == types.VolumeTypeVolume && v.Target == path.Dir(k.SecretFile) && v.ReadOnly
		}) {
			t.Errorf("signing key %s: secret_file %q is not in a read-only volume the gateway mounts", k.ID, k.SecretFile)
		}
	}
	if keygen := service(t, p, "keygen"); !slices.ContainsFunc(keygen.Volumes, func(v types.ServiceVolumeConfig) bool {
		return slices.ContainsFunc(gw.Volumes, func(g types.ServiceVolumeConfig) bool {
			return g.Type == types.VolumeTypeVolume && g.Source == v.Source
		})
	}) {
		t.Error("keygen does not write into the gateway's key volume")
	}
	// The documented demo login works.
	if len(cfg.Login.Users) != 1 || cfg.Login.Users[0].Username != "demo" ||
		bcrypt.CompareHashAndPassword([]byte(cfg.Login.Users[0].PasswordHash), []byte(demoPassword)) != nil {
		t.Errorf("the demo user must be demo / %s", demoPassword)
	}
	if cost, err := bcrypt.Cost([]byte(cfg.Login.Users[0].PasswordHash)); err != nil || cost < 10 {
		t.Errorf("bcrypt cost %d, want ≥ 10", cost)
	}
	compose, _ := os.ReadFile(filepath.Join("..", "compose.yaml"))
	if !strings.Contains(string(compose), demoPassword) {
		t.Error("compose.yaml does not document the demo password")
	}
	i := slices.IndexFunc(cfg.Agents, func(a config.StaticAgent) bool { return a.ID == "demo" })
	if i < 0 || cfg.Agents[i].Owner != "demo" {
		t.Fatal("config needs agent demo owned by demo")
	}

	// Envoy's one static cluster is the gateway's ADS listener.
	y, err := os.ReadFile("envoy-xds.yaml")
	if err != nil {
		t.Fatal(err)
	}
	adsBoot, err := decodeBootstrap(y)
	if err != nil {
		t.Fatal(err)
	}
	_, xdsPort := hostPort(cfg.XDS.Listen)
	if cs := adsBoot.GetStaticResources().GetClusters(); len(cs) != 1 || len(cs[0].GetLoadAssignment().GetEndpoints()) != 1 {
		t.Fatalf("envoy-xds.yaml must have exactly one cluster (the ADS server), has %d", len(cs))
	} else if sa := cs[0].GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress(); sa.GetAddress() != "gateway" || strconv.Itoa(int(sa.GetPortValue())) != xdsPort {
		t.Errorf("envoy-xds.yaml's ADS cluster goes to %s:%d, want gateway:%s (xds.listen)", sa.GetAddress(), sa.GetPortValue(), xdsPort)
	}

	// What the gateway serves over ADS reaches these services on the ports
	// the config listens on.
	opts, err := xds.OptionsFromConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var static []store.Agent
	for _, a := range cfg.Agents {
		static = append(static, store.Agent{AgentSpec: a.AgentSpec})
	}
	b, res, err := xds.StaticBootstrap(opts, static)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Unrouted) > 0 {
		t.Errorf("compose agents without a route: %v", res.Unrouted)
	}
	endpoints := map[string]string{}
	for _, c := range b.GetStaticResources().GetClusters() {
		for _, e := range c.GetLoadAssignment().GetEndpoints() {
			for _, le := range e.GetLbEndpoints() {
				sa := le.GetEndpoint().GetAddress().GetSocketAddress()
				endpoints[c.GetName()] = net.JoinHostPort(sa.GetAddress(), strconv.Itoa(int(sa.GetPortValue())))
			}
		}
	}
	_, httpPort := hostPort(cfg.Listen.HTTP)
	_, grpcPort := hostPort(cfg.Listen.GRPC)
	agentURL, _ := url.Parse(cfg.Agents[i].Upstream)
	for cluster, want := range map[string]string{
		"mcp_gateway_http":       "gateway:" + httpPort,
		"mcp_gateway_authz":      "gateway:" + grpcPort,
		xds.AgentCluster("demo"): agentURL.Host,
	} {
		if endpoints[cluster] != want {
			t.Errorf("envoy cluster %s goes to %q, want %q", cluster, endpoints[cluster], want)
		}
		if h, _ := hostPort(want); p.Services[h].Name == "" {
			t.Errorf("envoy cluster %s: %q is not a compose service", cluster, h)
		}
	}
	if agentURL.Path != "/mcp" {
		t.Errorf("demo agent upstream path %q: Envoy rewrites /demo/mcp to /mcp", agentURL.Path)
	}
	if _, port := hostPort(agentURL.Host); !slices.Contains(service(t, p, "demo-agent").Command, ":"+port) {
		t.Errorf("demo-agent does not listen on port %s", port)
	}

	// Prometheus scrapes the gateway's admin port and Envoy's stats listener.
	prom := promConfig(t, p)
	targets := map[string]string{}
	for _, sc := range prom.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			for _, tg := range st.Targets {
				targets[tg] = sc.MetricsPath
			}
		}
	}
	_, adminPort := hostPort(cfg.Listen.Admin)
	statsPort := ""
	for _, l := range b.GetStaticResources().GetListeners() {
		if l.GetName() == "envoy_stats" {
			statsPort = strconv.Itoa(int(l.GetAddress().GetSocketAddress().GetPortValue()))
		}
	}
	for target, mp := range map[string]string{"gateway:" + adminPort: "/metrics", "envoy:" + statsPort: "/stats/prometheus"} {
		if targets[target] != mp {
			t.Errorf("prometheus must scrape %s%s, targets %v", target, mp, targets)
		}
	}
	hcms, err := connectionManagers(b)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hcms {
		if h.listener != "envoy_stats" {
			continue
		}
		for p, want := range map[string]string{"/stats/prometheus": "envoy_admin", "/config_dump": "", "/quitquitquit": ""} {
			got, err := route(h, "envoy:9902", p)
			if err != nil || got.cluster != want {
				t.Errorf("envoy stats listener: %s goes to %q (%v), want %q", p, got.cluster, err, want)
			}
		}
	}
}

type promFile struct {
	Global        map[string]string `json:"global"`
	ScrapeConfigs []struct {
		JobName       string `json:"job_name"`
		MetricsPath   string `json:"metrics_path"`
		StaticConfigs []struct {
			Targets []string `json:"targets"`
		} `json:"static_configs"`
	} `json:"scrape_configs"`
}

func promConfig(t *testing.T, p *types.Project) promFile {
	t.Helper()
	src, ok := bindSource(service(t, p, "prometheus"), "/etc/prometheus/prometheus.yml")
	if !ok {
		t.Fatal("prometheus does not mount /etc/prometheus/prometheus.yml")
	}
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	var f promFile
	if err := yaml.UnmarshalStrict(b, &f); err != nil {
		t.Fatalf("prometheus.yml: %v", err)
	}
	return f
}

// dockerBinary is where the Dockerfile puts the binary (the final COPY).
func dockerBinary(t *testing.T) string {
	t.Helper()
	lines := dockerfileLines(t)
	bin := ""
	for _, l := range lines {
		if f := strings.Fields(l); len(f) >= 3 && f[0] == "COPY" && strings.HasPrefix(f[1], "--from=") {
			bin = f[len(f)-1]
		}
	}
	return bin
}

// dockerfileLines: instructions with continuations joined, comments dropped.
func dockerfileLines(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	cur := ""
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "#") {
			continue
		}
		if strings.HasSuffix(l, "\\") {
			cur += strings.TrimSuffix(l, "\\") + " "
			continue
		}
		if s := strings.TrimSpace(cur + l); s != "" {
			out = append(out, s)
		}
		cur = ""
	}
	return out
}

func TestDockerfile(t *testing.T) {
	lines := dockerfileLines(t)
	var froms []int
	for i, l := range lines {
		if strings.HasPrefix(l, "FROM ") {
			froms = append(froms, i)
		}
	}
	if len(froms) < 2 {
		t.Fatalf("want a multi-stage build, have %d FROM", len(froms))
	}
	if !strings.HasPrefix(lines[froms[0]], "FROM golang:1.26") {
		t.Errorf("builder is %q, want golang:1.26", lines[froms[0]])
	}
	final := lines[froms[len(froms)-1]:]
	if !strings.Contains(final[0], "distroless/static") || !strings.HasSuffix(final[0], ":nonroot") {
		t.Errorf("final stage %q, want distroless static :nonroot", final[0])
	}
	has := func(lines []string, prefix string) string {
		for _, l := range lines {
			if strings.HasPrefix(l, prefix) {
				return l
			}
		}
		return ""
	}
	if u := has(final, "USER "); !strings.HasPrefix(u, "USER nonroot") {
		t.Errorf("final stage runs as %q, want USER nonroot", u)
	}
	if e := has(final, "ENTRYPOINT "); e != `ENTRYPOINT ["/mcp-gateway"]` || dockerBinary(t) != "/mcp-gateway" {
		t.Errorf("entrypoint %q, binary at %q", e, dockerBinary(t))
	}
	if c := has(final, "CMD "); c != `CMD ["serve", "--config", "/etc/mcp-gateway/config.yaml"]` {
		t.Errorf("CMD %q", c)
	}
	exposed := strings.Fields(strings.TrimPrefix(has(final, "EXPOSE "), "EXPOSE "))
	for _, p := range []string{"8080", "9191", "9090", "18000"} {
		if !slices.Contains(exposed, p) {
			t.Errorf("EXPOSE lacks %s", p)
		}
	}
	build := has(lines[:froms[len(froms)-1]], "RUN --mount=type=cache,target=/go/pkg/mod --mount")
	if !strings.Contains(build, "CGO_ENABLED=0") || !strings.Contains(build, "./cmd/mcp-gateway") {
		t.Errorf("build step %q: want a static (CGO_ENABLED=0) build of ./cmd/mcp-gateway", build)
	}
	if _, err := os.Stat(filepath.Join("..", "cmd", "mcp-gateway")); err != nil {
		t.Errorf("./cmd/mcp-gateway: %v", err)
	}

	// .dockerignore must keep what the build needs.
	ig, err := os.ReadFile(filepath.Join("..", ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	for _, pat := range strings.Split(string(ig), "\n") {
		pat = strings.TrimSpace(pat)
		if pat == "" || strings.HasPrefix(pat, "#") {
			continue
		}
		for _, need := range []string{"go.mod", "go.sum", "cmd", "cmd/mcp-gateway", "config", "envoy", "deploy/nginx", "deploy/nginx/mcp-gateway.conf.template"} {
			dir := strings.TrimSuffix(pat, "/")
			if ok, _ := path.Match(strings.TrimPrefix(pat, "**/"), need); ok || dir == need || strings.HasPrefix(need, dir+"/") {
				t.Errorf(".dockerignore pattern %q excludes %s, which the build needs", pat, need)
			}
		}
	}
}

// metricNames lists the series names the metrics package exposes.
func metricNames(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	ch := make(chan *prometheus.Desc, 16)
	go func() {
		for _, c := range []prometheus.Collector{metrics.Decisions, metrics.DecisionSeconds, metrics.OAuthRequests,
			metrics.TokensIssued, metrics.TokensRevoked, metrics.Registrations, metrics.StoreErrors, metrics.StoreSeconds,
			metrics.CacheLookups, metrics.RateLimited, metrics.SlowBodies, metrics.AgentDecisions, metrics.PolicyDecisions} {
			c.Describe(ch)
		}
		close(ch)
	}()
	fq := regexp.MustCompile(`fqName: "([^"]+)"`)
	for d := range ch {
		m := fq.FindStringSubmatch(d.String())
		if m == nil {
			t.Fatalf("cannot read the name of %s", d)
		}
		names[m[1]] = true
	}
	return names
}

type grafanaDashboard struct {
	UID        string `json:"uid"`
	Title      string `json:"title"`
	Templating struct {
		List []struct {
			Name, Type, Query string
		} `json:"list"`
	} `json:"templating"`
	Panels []struct {
		ID         int    `json:"id"`
		Type       string `json:"type"`
		Title      string `json:"title"`
		Datasource *struct {
			Type, UID string
		} `json:"datasource"`
		GridPos struct{ H, W, X, Y int } `json:"gridPos"`
		Targets []struct {
			Expr, RefID string
		} `json:"targets"`
	} `json:"panels"`
}

func TestGrafanaDashboard(t *testing.T) {
	p := loadCompose(t)
	g := service(t, p, "grafana")
	dashDir, ok := bindSource(g, "/var/lib/grafana/dashboards")
	if !ok {
		t.Fatal("grafana does not mount the dashboards")
	}
	provDir, ok := bindSource(g, "/etc/grafana/provisioning")
	if !ok {
		t.Fatal("grafana does not mount its provisioning")
	}

	// Provisioning: the data source is compose's Prometheus, the dashboard
	// provider reads the mounted directory.
	var ds struct {
		APIVersion  int `json:"apiVersion"`
		Datasources []struct {
			Name, UID, Type, Access, URL string
			IsDefault                    bool `json:"isDefault"`
			Editable                     bool `json:"editable"`
		} `json:"datasources"`
	}
	readYAML(t, filepath.Join(provDir, "datasources", "prometheus.yaml"), &ds)
	if len(ds.Datasources) != 1 || ds.Datasources[0].Type != "prometheus" || ds.Datasources[0].URL != "http://prometheus:9090" {
		t.Errorf("datasource %+v, want compose's prometheus at http://prometheus:9090", ds.Datasources)
	}
	var prov struct {
		APIVersion int `json:"apiVersion"`
		Providers  []struct {
			Name, Folder, Type string
			DisableDeletion    bool `json:"disableDeletion"`
			AllowUIUpdates     bool `json:"allowUiUpdates"`
			Options            struct {
				Path                      string `json:"path"`
				FoldersFromFilesStructure bool   `json:"foldersFromFilesStructure"`
			} `json:"options"`
		} `json:"providers"`
	}
	readYAML(t, filepath.Join(provDir, "dashboards", "mcp-gateway.yaml"), &prov)
	if len(prov.Providers) != 1 || prov.Providers[0].Options.Path != "/var/lib/grafana/dashboards" {
		t.Errorf("dashboard provider %+v does not read /var/lib/grafana/dashboards", prov.Providers)
	}
	home := g.Environment["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
	if home == nil || path.Dir(*home) != "/var/lib/grafana/dashboards" {
		t.Errorf("home dashboard %v is not in the mounted directory", home)
	} else if _, err := os.Stat(filepath.Join(dashDir, path.Base(*home))); err != nil {
		t.Errorf("home dashboard: %v", err)
	}

	raw, err := os.ReadFile(filepath.Join(dashDir, "mcp-gateway.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d grafanaDashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	if d.UID == "" || d.Title == "" || len(d.Templating.List) == 0 || d.Templating.List[0].Name != "datasource" {
		t.Fatalf("dashboard needs a uid, a title and a datasource variable")
	}

	known := metricNames(t)
	used := map[string]bool{}
	ids := map[int]bool{}
	series := regexp.MustCompile(`\bmcp_gateway_[a-z_]+`)
	for _, pn := range d.Panels {
		if ids[pn.ID] {
			t.Errorf("panel id %d used twice", pn.ID)
		}
		ids[pn.ID] = true
		if pn.GridPos.X+pn.GridPos.W > 24 || pn.GridPos.W == 0 || pn.GridPos.H == 0 {
			t.Errorf("panel %q: gridPos %+v", pn.Title, pn.GridPos)
		}
		if pn.Type == "row" {
			continue
		}
		if pn.Datasource == nil || pn.Datasource.UID != "${datasource}" || len(pn.Targets) == 0 {
			t.Errorf("panel %q: needs targets on the ${datasource} variable", pn.Title)
		}
		for _, tg := range pn.Targets {
			if err := balanced(tg.Expr); err != nil {
				t.Errorf("panel %q: %q: %v", pn.Title, tg.Expr, err)
			}
			for _, name := range series.FindAllString(tg.Expr, -1) {
				base := name
				for _, suf := range []string{"_bucket", "_sum", "_count"} {
					if b, ok := strings.CutSuffix(name, suf); ok && known[b] {
						base = b
					}
				}
				if !known[base] {
					t.Errorf("panel %q uses %s, which internal/metrics/metrics.go does not define", pn.Title, name)
				}
				used[base] = true
				if strings.HasSuffix(base, "_seconds") && name == base {
					t.Errorf("panel %q uses the histogram %s without _bucket/_sum/_count", pn.Title, name)
				}
			}
		}
	}
	for _, m := range []string{"mcp_gateway_decisions_total", "mcp_gateway_decision_duration_seconds", "mcp_gateway_tokens_issued_total",
		"mcp_gateway_store_errors_total", "mcp_gateway_cache_lookups_total", "mcp_gateway_oauth_requests_total"} {
		if !used[m] {
			t.Errorf("the dashboard shows nothing from %s", m)
		}
	}
}

// balanced catches the commonest hand-edit slip in PromQL: brackets.
func balanced(expr string) error {
	var stack []rune
	pairs := map[rune]rune{')': '(', ']': '[', '}': '{'}
	inString := false
	for _, r := range expr {
		switch {
		case r == '"':
			inString = !inString
		case inString:
		case r == '(' || r == '[' || r == '{':
			stack = append(stack, r)
		case pairs[r] != 0:
			if len(stack) == 0 || stack[len(stack)-1] != pairs[r] {
				return fmt.Errorf("unbalanced %q", r)
			}
			stack = stack[:len(stack)-1]
		}
	}
	if len(stack) > 0 || inString {
		return fmt.Errorf("unclosed %q", stack)
	}
	return nil
}

func readYAML(t *testing.T, file string, v any) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(b, v); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}
