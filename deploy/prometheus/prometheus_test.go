package prometheus

import (
	"os"
	"strconv"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
	"sigs.k8s.io/yaml"

	"github.com/mcpgateway/mcp-gateway/deploy/deploytest"
	"github.com/mcpgateway/mcp-gateway/envoy/envoytest"
)

// TestPrometheus: the Prometheus compose runs scrapes the gateway's admin
// port and Envoy's stats listener, and that listener serves Envoy's
// Prometheus stats and nothing else of its admin interface.
func TestPrometheus(t *testing.T) {
	p := deploytest.LoadCompose(t)
	cfg := deploytest.GatewayConfig(t, deploytest.Service(t, p, "gateway"))
	b, _ := deploytest.GatewayBootstrap(t, cfg)
	prom := promConfig(t, p)
	targets := map[string]string{}
	for _, sc := range prom.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			for _, tg := range st.Targets {
				targets[tg] = sc.MetricsPath
			}
		}
	}
	_, adminPort := deploytest.HostPort(t, cfg.Listen.Admin)
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
	hcms, err := envoytest.ConnectionManagers(b)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hcms {
		if h.Listener != "envoy_stats" {
			continue
		}
		for p, want := range map[string]string{"/stats/prometheus": "envoy_admin", "/config_dump": "", "/quitquitquit": ""} {
			got, err := envoytest.Route(h, "envoy:9902", p)
			if err != nil {
				t.Errorf("envoy stats listener: %s: %v", p, err)
			} else if got.Cluster != want {
				t.Errorf("envoy stats listener: %s goes to %q, want %q", p, got.Cluster, want)
			}
		}
	}
}

// promFile is prometheus.yml, as much of it as the demo uses (strict: an
// unknown key fails).
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

// promConfig reads the prometheus.yml the prometheus service mounts.
func promConfig(t *testing.T, p *types.Project) promFile {
	t.Helper()
	src, ok := deploytest.BindSource(deploytest.Service(t, p, "prometheus"), "/etc/prometheus/prometheus.yml")
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
