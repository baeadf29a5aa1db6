package compose

import (
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

	"github.com/compose-spec/compose-go/v2/types"
	"golang.org/x/crypto/bcrypt"

	"github.com/mcpgateway/mcp-gateway/config"
	"github.com/mcpgateway/mcp-gateway/deploy/deploytest"
	"github.com/mcpgateway/mcp-gateway/envoy/envoytest"
	"github.com/mcpgateway/mcp-gateway/xds"
)

// The compose demo's documented login password (compose.yaml, gateway.yaml).
const demoPassword = "mcp-demo-password"

func TestCompose(t *testing.T) {
	p := deploytest.LoadCompose(t)
	root := deploytest.Root(t)

	want := []string{"envoy", "gateway", "keygen", "redis", "demo-agent", "prometheus", "grafana"}
	for _, name := range want {
		deploytest.Service(t, p, name)
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

	envoySvc := deploytest.Service(t, p, "envoy")
	if !slices.ContainsFunc(envoySvc.Ports, func(p types.ServicePortConfig) bool { return p.Target == 8000 && p.Published == "8000" }) {
		t.Errorf("envoy must publish 8000:8000, has %+v", envoySvc.Ports)
	}
	// Envoy runs on the control plane: the ADS bootstrap, routes from the gateway.
	if src, ok := deploytest.BindSource(envoySvc, "/etc/envoy/envoy-xds.yaml"); !ok || src != filepath.Join(root, "envoy", "envoy-xds.yaml") {
		t.Errorf("envoy must mount envoy/envoy-xds.yaml at /etc/envoy/envoy-xds.yaml, mounts %q", src)
	}
	if !slices.Contains(envoySvc.Command, "/etc/envoy/envoy-xds.yaml") {
		t.Errorf("envoy command %q does not load /etc/envoy/envoy-xds.yaml", envoySvc.Command)
	}

	gw := deploytest.Service(t, p, "gateway")
	if gw.Build == nil || gw.Build.Context != root {
		t.Errorf("gateway must build the repository's Dockerfile, build = %+v", gw.Build)
	}
	hc := gw.HealthCheck
	if hc == nil || len(hc.Test) < 2 || hc.Test[0] != "CMD" || hc.Test[1] != deploytest.DockerBinary(t) || !slices.Contains(hc.Test, "healthcheck") {
		t.Errorf("gateway healthcheck must run %s healthcheck (distroless: no shell), is %q", deploytest.DockerBinary(t), hc.Test)
	} else if u := hc.Test[len(hc.Test)-1]; !strings.HasSuffix(u, ":9090/healthz") {
		t.Errorf("gateway healthcheck URL %q is not the admin /healthz", u)
	}
	if r := deploytest.Service(t, p, "redis").HealthCheck; r == nil || !slices.Equal([]string(r.Test), []string{"CMD", "redis-cli", "ping"}) {
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
	if agent := deploytest.Service(t, p, "demo-agent"); !slices.Equal([]string(agent.Command), wantAgent) || agent.Image != gw.Image {
		t.Errorf("demo-agent must run the gateway image's %q, is %q %q", wantAgent, agent.Image, agent.Command)
	}

	// The gateway's config as the container will load it.
	if !slices.Equal([]string(gw.Command), []string{"serve", "--config", deploytest.GatewayConfigPath}) {
		t.Errorf("gateway command %q", gw.Command)
	}
	checkComposeGatewayConfig(t, p, gw, deploytest.GatewayConfig(t, gw))
}

// checkComposeGatewayConfig ties the gateway's config to the other services:
// addresses, ports, the key volume, Envoy's clusters (Prometheus' targets:
// deploy/prometheus).
func checkComposeGatewayConfig(t *testing.T, p *types.Project, gw types.ServiceConfig, cfg *config.Config) {
	t.Helper()
	root := deploytest.Root(t)
	// One host name end to end (issue 16 item 5): the one Envoy publishes,
	// dev mode's and the README's, so a newcomer mixing them is impossible.
	if cfg.PublicURL != "http://127.0.0.1:8000" || cfg.PublicURL != config.Default().PublicURL {
		t.Errorf("public_url %q: clients reach Envoy at http://127.0.0.1:8000, dev mode's address", cfg.PublicURL)
	}
	// MCP Inspector's web UI may call the agents (issue 16 items 7, 8).
	if !slices.Contains(cfg.AgentOrigins, "http://localhost:6274") {
		t.Errorf("agent_origins %q: MCP Inspector's web UI (http://localhost:6274) would be refused", cfg.AgentOrigins)
	}
	if h, port := deploytest.HostPort(t, cfg.Listen.Admin); h != "0.0.0.0" || port != "9090" {
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
	if keygen := deploytest.Service(t, p, "keygen"); !slices.ContainsFunc(keygen.Volumes, func(v types.ServiceVolumeConfig) bool {
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
	compose, _ := os.ReadFile(filepath.Join(root, "compose.yaml"))
	if !strings.Contains(string(compose), demoPassword) {
		t.Error("compose.yaml does not document the demo password")
	}
	i := slices.IndexFunc(cfg.Agents, func(a config.StaticAgent) bool { return a.ID == "demo" })
	if i < 0 || cfg.Agents[i].Owner != "demo" {
		t.Fatal("config needs agent demo owned by demo")
	}

	// Envoy's one static cluster is the gateway's ADS listener.
	y, err := os.ReadFile(filepath.Join(root, "envoy", "envoy-xds.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	adsBoot, err := envoytest.DecodeBootstrap(y)
	if err != nil {
		t.Fatal(err)
	}
	_, xdsPort := deploytest.HostPort(t, cfg.XDS.Listen)
	if cs := adsBoot.GetStaticResources().GetClusters(); len(cs) != 1 || len(cs[0].GetLoadAssignment().GetEndpoints()) != 1 {
		t.Fatalf("envoy-xds.yaml must have exactly one cluster (the ADS server), has %d", len(cs))
	} else if sa := cs[0].GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress(); sa.GetAddress() != "gateway" || strconv.Itoa(int(sa.GetPortValue())) != xdsPort {
		t.Errorf("envoy-xds.yaml's ADS cluster goes to %s:%d, want gateway:%s (xds.listen)", sa.GetAddress(), sa.GetPortValue(), xdsPort)
	}

	// What the gateway serves over ADS reaches these services on the ports
	// the config listens on.
	b, res := deploytest.GatewayBootstrap(t, cfg)
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
	_, httpPort := deploytest.HostPort(t, cfg.Listen.HTTP)
	_, grpcPort := deploytest.HostPort(t, cfg.Listen.GRPC)
	agentURL, _ := url.Parse(cfg.Agents[i].Upstream)
	for cluster, want := range map[string]string{
		"mcp_gateway_http":       "gateway:" + httpPort,
		"mcp_gateway_authz":      "gateway:" + grpcPort,
		xds.AgentCluster("demo"): agentURL.Host,
	} {
		if endpoints[cluster] != want {
			t.Errorf("envoy cluster %s goes to %q, want %q", cluster, endpoints[cluster], want)
		}
		if h, _ := deploytest.HostPort(t, want); p.Services[h].Name == "" {
			t.Errorf("envoy cluster %s: %q is not a compose service", cluster, h)
		}
	}
	if agentURL.Path != "/mcp" {
		t.Errorf("demo agent upstream path %q: Envoy rewrites /demo/mcp to /mcp", agentURL.Path)
	}
	if _, port := deploytest.HostPort(t, agentURL.Host); !slices.Contains(deploytest.Service(t, p, "demo-agent").Command, ":"+port) {
		t.Errorf("demo-agent does not listen on port %s", port)
	}
}
