package main

import (
	"context"
	"flag"
	"io"
	"os"

	"github.com/mcpgateway/mcp-gateway/deploy/nginx"
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
	routes, err := registryRoutes(ctx, *cfgPath, newLogger())
	if err != nil {
		return err
	}
	conf, err := nginx.NginxAgents(routes, nginx.NginxAgentsOptions{CAFile: *caFile})
	if err != nil {
		return err
	}
	return writeOutput(*out, []byte(conf), stdout)
}
