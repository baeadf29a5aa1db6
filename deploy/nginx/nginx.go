package nginx

import (
	_ "embed"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/mcpgateway/mcp-gateway/envoy"
)

//go:embed mcp-gateway.conf.template
var nginxTemplate string

// NginxJS is the njs module the template imports (mcp-gateway.js):
// install it where NginxParams.NJSModule says.
//
//go:embed mcp-gateway.js
var NginxJS string

// nginxJSModules are where distributions keep nginx's JavaScript module
// (Debian's libnginx-mod-http-js, the official image's).
var nginxJSModules = []string{"/usr/lib/nginx/modules/ngx_http_js_module.so", "/etc/nginx/modules/ngx_http_js_module.so", "/usr/lib64/nginx/modules/ngx_http_js_module.so"}

// NginxParams fills the placeholders of nginx/mcp-gateway.conf.template.
type NginxParams struct {
	Listen      string // "127.0.0.1:8000"
	GatewayHTTP string // the gateway's HTTP listener, host:port
	AgentsConf  string // the agents include (NginxAgents, `mcp-gateway nginx-config`)
	NJSModule   string // where NginxJS is installed (`mcp-gateway nginx-config --njs-out`)
}

// placeholder is how the template marks a value to fill: ${UPPER_CASE}.
// nginx's own variables are lower case and never braced in the template.
var placeholder = regexp.MustCompile(`\$\{([A-Z_]+)\}`)

// NginxSite renders the shipped nginx template: the http-level upstreams, maps
// and server block, ready for an nginx conf.d directory.
func NginxSite(p NginxParams) (string, error) {
	vals := map[string]string{
		"LISTEN":       p.Listen,
		"GATEWAY_HTTP": p.GatewayHTTP,
		"AGENTS_CONF":  p.AgentsConf,
		"NJS_MODULE":   p.NJSModule,
	}
	for k, v := range vals {
		// A value is pasted into nginx syntax: refuse what could end a
		// directive or start another. LISTEN alone may hold words ("443 ssl").
		bad := ";{}'\"\\$#\n\r\t "
		if k == "LISTEN" {
			bad = ";{}'\"\\$#\n\r"
		}
		if strings.TrimSpace(v) == "" || strings.ContainsAny(v, bad) {
			return "", fmt.Errorf("nginx template: %s=%q is empty or not a plain value", k, v)
		}
	}
	var missing []string
	lines := strings.SplitAfter(nginxTemplate, "\n")
	for i, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), "#") {
			continue // comments keep naming the placeholders
		}
		lines[i] = placeholder.ReplaceAllStringFunc(l, func(m string) string {
			name := placeholder.FindStringSubmatch(m)[1]
			v, ok := vals[name]
			if !ok {
				missing = append(missing, name)
			}
			return v
		})
	}
	if len(missing) > 0 {
		return "", fmt.Errorf("nginx template: unknown placeholders %v", missing)
	}
	return strings.Join(lines, ""), nil
}

// NginxStandalone renders a complete nginx.conf around NginxSite that keeps
// every file (pid, temp files, logs) under prefix and runs in the foreground:
// for tests that start nginx themselves with `nginx -p prefix -c <file>`. It
// creates the directories it names. Errors go to stderr, access logs to
// prefix/access.log.
func NginxStandalone(p NginxParams, prefix string) (string, error) {
	if !filepath.IsAbs(prefix) {
		return "", errors.New("nginx prefix must be an absolute path")
	}
	if strings.ContainsAny(prefix, ";{}'\"\\$#\n\r\t ") {
		return "", fmt.Errorf("nginx prefix %q has characters nginx syntax cannot take", prefix)
	}
	// The njs module next to the config, and nginx's JavaScript module
	// loaded (a system nginx.conf does so from modules-enabled; this one
	// stands alone).
	if p.NJSModule == "" {
		p.NJSModule = filepath.Join(prefix, "mcp-gateway.js")
		if err := os.WriteFile(p.NJSModule, []byte(NginxJS), 0o644); err != nil {
			return "", fmt.Errorf("nginx prefix: %w", err)
		}
	}
	jsModule := ""
	for _, m := range nginxJSModules {
		if _, err := os.Stat(m); err == nil {
			jsModule = m
			break
		}
	}
	if jsModule == "" {
		return "", fmt.Errorf("nginx's JavaScript module is not installed (looked at %v): apt-get install libnginx-mod-http-js", nginxJSModules)
	}
	site, err := NginxSite(p)
	if err != nil {
		return "", err
	}
	tmp := filepath.Join(prefix, "tmp")
	for _, d := range []string{"body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		if err := os.MkdirAll(filepath.Join(tmp, d), 0o755); err != nil {
			return "", fmt.Errorf("nginx prefix: %w", err)
		}
	}
	user := ""
	if os.Geteuid() == 0 {
		// As root nginx would switch its workers to nobody, who cannot enter
		// a test's private temp directory.
		user = "user root;\n"
	}
	return fmt.Sprintf(`%sload_module %[5]s;
daemon off;
worker_processes 1;
pid %[2]s/nginx.pid;
error_log stderr notice;
events { worker_connections 256; }
http {
    access_log %[2]s/access.log;
    client_body_temp_path %[3]s/body;
    proxy_temp_path %[3]s/proxy;
    fastcgi_temp_path %[3]s/fastcgi;
    uwsgi_temp_path %[3]s/uwsgi;
    scgi_temp_path %[3]s/scgi;
%[4]s
}
`, user, prefix, tmp, site, jsModule), nil
}

// UpstreamAuthHeader is the only upstream_auth header the template passes
// from the check's answer to the agent: nginx must name each header it
// sets in its config, and cannot set one whose name is known at run time.
const UpstreamAuthHeader = "authorization"

// DefaultCAFile is where Debian and the official nginx images keep the
// system CA bundle; NginxAgents verifies https agents against it by default.
const DefaultCAFile = "/etc/ssl/certs/ca-certificates.crt"

// NginxAgentsOptions tunes NginxAgents.
type NginxAgentsOptions struct {
	// CAFile verifies the certificates of https agents ("" = DefaultCAFile).
	CAFile string
}

// NginxAgents renders the per-agent include the nginx template loads
// (${AGENTS_CONF}): one upstream block per agent server, and the maps from
// the agent id in the URL to the agent it routes ($mcp_agent_id), its MCP
// endpoint ($mcp_agent_url), the Host ($mcp_agent_host) and TLS server name
// ($mcp_agent_sni) it expects. Ids map by exact string, except that
// nginx's map ignores case: ids equal but for case become case-sensitive
// regexes, and the template answers 404 unless $mcp_agent_id is exactly the
// id in the URL. Unknown ids map to "" (404 too). The output depends only on
// routes, so regenerating an unchanged registry changes nothing.
func NginxAgents(routes []envoy.AgentRoute, opt NginxAgentsOptions) (string, error) {
	if opt.CAFile == "" {
		opt.CAFile = DefaultCAFile
	}
	if !filepath.IsAbs(opt.CAFile) || strings.ContainsAny(opt.CAFile, ";{}'\"\\$#\n\r\t ") {
		return "", fmt.Errorf("nginx agents: CA file %q must be an absolute path nginx syntax can carry", opt.CAFile)
	}
	upstreams := map[string]string{} // authority → upstream name
	var auths []string
	folded := map[string]int{} // lower-case id → ids spelled so
	https := false
	for _, r := range routes {
		if _, ok := upstreams[r.Authority()]; !ok {
			upstreams[r.Authority()] = ""
			auths = append(auths, r.Authority())
		}
		folded[strings.ToLower(r.ID)]++
		https = https || r.Scheme == "https"
	}
	slices.Sort(auths)
	var b strings.Builder
	fmt.Fprintf(&b, "# Generated by `mcp-gateway nginx-config` from the agent registry: %d routed agents.\n", len(routes))
	b.WriteString("# Do not edit: regenerate, then `nginx -t && nginx -s reload`.\n\n")
	for i, a := range auths {
		upstreams[a] = fmt.Sprintf("mcp_agent_%d", i+1)
		fmt.Fprintf(&b, "upstream %s {\n    server %s;\n    keepalive 16;\n}\n\n", upstreams[a], a)
	}
	// nginx's defaults (2048 entries, 64-byte buckets) fit neither many
	// agents nor 128-character ids.
	fmt.Fprintf(&b, "map_hash_max_size %d;\nmap_hash_bucket_size 256;\n\n", max(2048, 4*len(routes)))
	entries := func(variable string, value func(envoy.AgentRoute) string) {
		fmt.Fprintf(&b, "map $mcp_agent %s {\n    default \"\";\n", variable)
		for _, r := range routes {
			key := r.ID
			if folded[strings.ToLower(r.ID)] > 1 {
				key = `"~^` + strings.ReplaceAll(r.ID, ".", "[.]") + `$"`
			}
			fmt.Fprintf(&b, "    %s %s;\n", key, value(r))
		}
		b.WriteString("}\n")
	}
	entries("$mcp_agent_id", func(r envoy.AgentRoute) string { return r.ID })
	entries("$mcp_agent_url", func(r envoy.AgentRoute) string { return r.Scheme + "://" + upstreams[r.Authority()] + r.Path })
	entries("$mcp_agent_host", func(r envoy.AgentRoute) string { return r.HostHeader })
	entries("$mcp_agent_sni", func(r envoy.AgentRoute) string { return r.Host })
	if https {
		fmt.Fprintf(&b, "\n# https agents: their certificate must verify for the name in their URL.\nproxy_ssl_verify on;\nproxy_ssl_verify_depth 4;\nproxy_ssl_trusted_certificate %s;\n", opt.CAFile)
	}
	return b.String(), nil
}
