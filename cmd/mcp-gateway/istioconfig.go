package main

import (
	"context"
	"flag"
	"io"
	"os"
	"strings"

	"github.com/mcpgateway/mcp-gateway/envoy"
)

// runIstioConfig is `mcp-gateway istio-config`: the ingress VirtualService
// (and a DestinationRule per https agent server) for the registry of the
// gateway configured by --config. Regenerate and `kubectl apply` it after
// agents change; the CUSTOM AuthorizationPolicy needs no change.
func runIstioConfig(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("istio-config", flag.ContinueOnError)
	cfgPath := fs.String("config", os.Getenv("MCPGW_CONFIG"), "the gateway's YAML config (env MCPGW_CONFIG); MCPGW_* variables override its fields")
	out := fs.String("out", "", "write the manifests to this file, atomically (default: stdout)")
	var o envoy.IstioOptions
	hosts := fs.String("host", "mcp.example.com", "public host names, comma-separated")
	gateways := fs.String("gateway", "mcp", "Istio Gateways the VirtualService binds to, comma-separated")
	fs.StringVar(&o.Name, "name", "mcp", "the VirtualService's name")
	fs.StringVar(&o.Namespace, "namespace", "mcp-gateway", "the namespace of the generated resources")
	fs.StringVar(&o.GatewayService, "gateway-service", "", "the MCP Gateway's HTTP Service host (default mcp-gateway.<namespace>.svc.cluster.local)")
	port := fs.Uint("gateway-port", 8080, "the MCP Gateway's HTTP Service port")
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	o.Hosts, o.Gateways, o.GatewayPort = strings.Split(*hosts, ","), strings.Split(*gateways, ","), uint32(*port)
	routes, err := registryRoutes(ctx, *cfgPath, newLogger())
	if err != nil {
		return err
	}
	y, err := envoy.IstioConfig(routes, o)
	if err != nil {
		return err
	}
	return writeOutput(*out, []byte(y), stdout)
}
