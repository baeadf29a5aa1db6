package main

import (
	"context"
	"flag"
	"io"
	"os"
	"time"

	"github.com/mcpgateway/mcp-gateway/config"
)

// runServe runs the production gateway: the gRPC Check for Envoy/Istio, the
// HTTP authorization server and check endpoint, the admin listener, and the
// ADS server that gives Envoy its routes (xds.listen).
func runServe(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	cfgPath := fs.String("config", os.Getenv("MCPGW_CONFIG"), "YAML config file (env MCPGW_CONFIG); MCPGW_* variables override its fields")
	drain := fs.Duration("drain-delay", 5*time.Second, "after SIGTERM, how long /readyz fails before listeners stop accepting")
	grace := fs.Duration("shutdown-timeout", 20*time.Second, "how long in-flight requests get to finish on shutdown")
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	cfg, err := config.Load(*cfgPath, false)
	if err != nil {
		return err
	}
	log := newLogger()
	g, err := newGateway(ctx, cfg, log, nil)
	if err != nil {
		return err
	}
	ls := []listener{
		{name: "http", addr: cfg.Listen.HTTP, http: g.httpHandler()},
		{name: "grpc", addr: cfg.Listen.GRPC},
		{name: "admin", addr: cfg.Listen.Admin, http: g.admin.Handler()},
	}
	if g.xds != nil {
		ls = append(ls, listener{name: "xds", addr: cfg.XDS.Listen, serve: g.xds.Serve})
	}
	return g.run(ctx, ls, *drain, *grace/2, *grace, nil)
}
