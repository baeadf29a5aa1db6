package grafana

import (
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/yaml"

	"github.com/mcpgateway/mcp-gateway/deploy/deploytest"
	"github.com/mcpgateway/mcp-gateway/internal/metrics"
)

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

// grafanaDashboard is the part of a dashboard JSON the test reads.
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

// TestGrafanaDashboard: Grafana's provisioning reads compose's Prometheus and
// the mounted dashboards, and every panel queries series internal/metrics
// defines, with balanced PromQL.
func TestGrafanaDashboard(t *testing.T) {
	p := deploytest.LoadCompose(t)
	g := deploytest.Service(t, p, "grafana")
	dashDir, ok := deploytest.BindSource(g, "/var/lib/grafana/dashboards")
	if !ok {
		t.Fatal("grafana does not mount the dashboards")
	}
	provDir, ok := deploytest.BindSource(g, "/etc/grafana/provisioning")
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

// readYAML decodes file into v strictly: an unknown key fails.
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
