package main

import (
	"context"
	"flag"
	"io"
	"log/slog"
	"os"

	"github.com/mcpgateway/mcp-gateway/deploy/nginx"
	"github.com/mcpgateway/mcp-gateway/envoy"
)

// runNginxConfig is `mcp-gateway nginx-config`: the agents include of the
// shipped nginx template (deploy/nginx/), for the registry of the gateway
// configured by --config (its agents and its store's). Regenerate it after
// agents change, then `nginx -t && nginx -s reload`.
func runNginxConfig(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("nginx-config", flag.ContinueOnError)
	cfgPath := fs.String("config", os.Getenv("MCPGW_CONFIG"), "the gateway's YAML config (env MCPGW_CONFIG); MCPGW_* variables override its fields")
	out := fs.String("out", "", "write the include to this file, atomically (default: stdout)")
	caFile := fs.String("ca-file", nginx.DefaultCAFile, "CA bundle nginx verifies https agents against")
	njsOut := fs.String("njs-out", "", "also write the template's njs module (mcp-gateway.js) to this file, the template's ${NJS_MODULE}")
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	if *njsOut != "" {
		if err := writeOutput(*njsOut, []byte(nginx.NginxJS), stdout); err != nil {
			return err
		}
	}
	log := newLogger()
	routes, err := registryRoutes(ctx, *cfgPath, log)
	if err != nil {
		return err
	}
	warnUnforwardedUpstreamHeaders(log, routes)
	conf, err := nginx.NginxAgents(routes, nginx.NginxAgentsOptions{CAFile: *caFile})
	if err != nil {
		return err
	}
	return writeOutput(*out, []byte(conf), stdout)
}

// warnUnforwardedUpstreamHeaders warns about each agent whose upstream_auth
// header the nginx template cannot pass on: nginx names every header it sets
// in its config, so it forwards the check's Authorization only; such an
// agent's requests reach it without its credential.
func warnUnforwardedUpstreamHeaders(log *slog.Logger, routes []envoy.AgentRoute) {
	for _, r := range routes {
		if r.UpstreamHeader != "" && r.UpstreamHeader != nginx.UpstreamAuthHeader {
			log.Warn("nginx-config: nginx forwards only an Authorization upstream credential; this agent's requests reach it without its upstream_auth header (use Authorization, or Envoy)",
				"agent", r.ID, "header", r.UpstreamHeader)
		}
	}
}
