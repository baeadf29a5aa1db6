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
	"github.com/mcpgateway/mcp-gateway/store/storeopen"
)

// registryAgents is the agent registry serve and dev route, read once: the
// config's agents (staticAgents, as serve builds them), then the store's,
// a store agent shadowed by a static one of the same id dropped, since the
// config wins there too (authz, admin API).
func registryAgents(ctx context.Context, cfg *config.Config) ([]store.Agent, error) {
	st, err := storeopen.Open(ctx, cfg.Store.URL, cfg.Store.Prefix)
	if err != nil {
		return nil, err // already "store: …" or "redisstore: …"
	}
	defer st.Close()
	dyn, err := st.ListAgents(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing the store's agents: %w", err)
	}
	out := staticAgents(cfg)
	static := make(map[string]bool, len(out))
	for _, a := range out {
		static[a.ID] = true
	}
	for _, a := range dyn {
		if !static[a.ID] {
			out = append(out, *a)
		}
	}
	return out, nil
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
	routes, errs := envoy.AgentRoutes(agents)
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
