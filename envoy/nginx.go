package envoy

import (
	_ "embed"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

//go:embed nginx/mcp-gateway.conf.template
var nginxTemplate string

// NginxParams fills the placeholders of nginx/mcp-gateway.conf.template.
type NginxParams struct {
	Listen        string // "127.0.0.1:8000"
	GatewayHTTP   string // the gateway's HTTP listener, host:port
	AgentUpstream string // the agents' MCP server, host:port
	AgentPath     string // its MCP path; "" means "/mcp"
}

// placeholder is how the template marks a value to fill: ${UPPER_CASE}.
// nginx's own variables are lower case and never braced in the template.
var placeholder = regexp.MustCompile(`\$\{([A-Z_]+)\}`)

// NginxSite renders the shipped nginx template: the http-level upstreams, maps
// and server block, ready for an nginx conf.d directory.
func NginxSite(p NginxParams) (string, error) {
	if p.AgentPath == "" {
		p.AgentPath = "/mcp"
	}
	vals := map[string]string{
		"LISTEN":         p.Listen,
		"GATEWAY_HTTP":   p.GatewayHTTP,
		"AGENT_UPSTREAM": p.AgentUpstream,
		"AGENT_PATH":     p.AgentPath,
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
	if !strings.HasPrefix(p.AgentPath, "/") {
		return "", fmt.Errorf("nginx template: AGENT_PATH=%q must start with /", p.AgentPath)
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
	site, err := NginxSite(p)
	if err != nil {
		return "", err
	}
	if !filepath.IsAbs(prefix) {
		return "", errors.New("nginx prefix must be an absolute path")
	}
	if strings.ContainsAny(prefix, ";{}'\"\\$#\n\r\t ") {
		return "", fmt.Errorf("nginx prefix %q has characters nginx syntax cannot take", prefix)
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
	return fmt.Sprintf(`%sdaemon off;
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
`, user, prefix, tmp, site), nil
}
