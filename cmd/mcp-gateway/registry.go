package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/mcpgateway/mcp-gateway/config"
	"github.com/mcpgateway/mcp-gateway/envoy"
	"github.com/mcpgateway/mcp-gateway/store"
	"github.com/mcpgateway/mcp-gateway/xds"
)

// registryAgents is the agent registry read once: the config's agents,
// then the store's (mergeAgents: the config wins on a shared id).
func registryAgents(ctx context.Context, cfg *config.Config) ([]store.Agent, error) {
	dyn, err := storeAgents(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return mergeAgents(staticAgents(cfg), dyn), nil
}

// registryRoutes loads the config at path and turns its registry into
// routes; agents that cannot be routed are logged as warnings and left out.
func registryRoutes(ctx context.Context, path string, log *slog.Logger) ([]envoy.AgentRoute, error) {
	cfg, err := config.Load(path, false)
	if err != nil {
		return nil, err
	}
	agents, err := registryAgents(ctx, cfg)
	if err != nil {
		return nil, err
	}
	// The upstreams Envoy's builder refuses (internal addresses not in
	// xds.allowed_upstream_hosts) get no nginx or Istio route either.
	opts, err := xds.OptionsFromConfig(cfg)
	if err != nil {
		return nil, err
	}
	routable := agents[:0]
	for _, a := range agents {
		if _, why := xds.RouteFor(a, opts.CheckUpstream); why != "" && a.Upstream != "" {
			log.Warn("agent not routed", "agent", a.ID, "reason", why)
			continue
		}
		routable = append(routable, a)
	}
	routes, errs := envoy.AgentRoutes(routable)
	for _, e := range errs {
		log.Warn("agent not routed", "err", e)
	}
	return routes, nil
}

// writeOutput writes b to path atomically (a proxy reloading meanwhile reads
// the old file or the new one, never half of one), or to stdout for "" or "-".
func writeOutput(path string, b []byte, stdout io.Writer) error {
	if path == "" || path == "-" {
		_, err := stdout.Write(b)
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("output: %w", err)
	}
	defer os.Remove(f.Name()) // after a successful rename, a no-op
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("output: %w", err)
	}
	if err := f.Chmod(0o644); err != nil { // the proxy's user reads it
		f.Close()
		return fmt.Errorf("output: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("output: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("output: %w", err)
	}
	return nil
}
