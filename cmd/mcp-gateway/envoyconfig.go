package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/mcpgateway/mcp-gateway/config"
	"github.com/mcpgateway/mcp-gateway/store"
	"github.com/mcpgateway/mcp-gateway/store/storeopen"
	"github.com/mcpgateway/mcp-gateway/xds"
)

// runEnvoyConfig prints an Envoy bootstrap from the same builder the ADS
// server uses: a complete static one for the current registry (config
// agents plus the store's), or with --ads the bootstrap that gets
// everything from the gateway's ADS server.
func runEnvoyConfig(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("envoy-config", flag.ContinueOnError)
	cfgPath := fs.String("config", os.Getenv("MCPGW_CONFIG"), "YAML config file (env MCPGW_CONFIG): agents, store, xds.* addresses")
	mode := fs.String("mode", "", "ext_authz mode: grpc or http-service (default: xds.mode)")
	noStore := fs.Bool("no-store", false, "only the config file's agents; do not read the store")
	ads := fs.Bool("ads", false, "print the ADS bootstrap (node, admin, one ADS cluster) instead")
	server := fs.String("server", "gateway:18000", "with --ads: host:port of the gateway's xds.listen")
	nodeID := fs.String("node-id", "envoy", "with --ads: node.id (Envoy's --service-node overrides it)")
	nodeCluster := fs.String("node-cluster", "mcp-gateway", "with --ads: node.cluster, the snapshot key shared by one deployment's Envoys")
	tlsOn := fs.Bool("tls", false, "with --ads: connect to the ADS server with TLS")
	caFile := fs.String("ca-file", "", "with --ads --tls: CA bundle for the ADS server (default: system roots)")
	certFile := fs.String("cert-file", "", "with --ads --tls: client certificate for mutual TLS")
	keyFile := fs.String("key-file", "", "with --ads --tls: client key for mutual TLS")
	delta := fs.Bool("delta", false, "with --ads: incremental (delta) xDS, for many agents")
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	regen := strings.TrimSpace("mcp-gateway envoy-config " + strings.Join(args, " "))
	if *ads {
		out, err := xds.RenderADS(xds.ADSBootstrapOptions{
			NodeID: *nodeID, NodeCluster: *nodeCluster, Server: *server,
			TLS: *tlsOn, CAFile: *caFile, CertFile: *certFile, KeyFile: *keyFile, Delta: *delta,
		}, regen)
		if err != nil {
			return err
		}
		_, err = stdout.Write(out)
		return err
	}
	cfg, err := config.Load(*cfgPath, true)
	if err != nil {
		return err
	}
	if *mode != "" {
		cfg.XDS.Mode = *mode
		if err := cfg.Validate(true); err != nil {
			return err
		}
	}
	opts, err := xds.OptionsFromConfig(cfg)
	if err != nil {
		return err
	}
	agents := staticAgents(cfg)
	if !*noStore {
		more, err := storeAgents(ctx, cfg)
		if err != nil {
			return err
		}
		agents = mergeAgents(agents, more)
	}
	out, res, err := xds.RenderStatic(opts, agents, regen)
	if err != nil {
		return err
	}
	for _, id := range sortedKeys(res.Unrouted) {
		fmt.Fprintf(os.Stderr, "envoy-config: agent %q not routed: %s\n", id, res.Unrouted[id])
	}
	_, err = stdout.Write(out)
	return err
}

// storeAgents lists the store's agents (a memory store has none).
func storeAgents(ctx context.Context, cfg *config.Config) ([]*store.Agent, error) {
	if cfg.Store.URL == "memory" {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	st, err := storeopen.Open(ctx, cfg.Store.URL, cfg.Store.Prefix)
	if err != nil {
		return nil, err // already "store: …" or "redisstore: …"
	}
	defer st.Close()
	as, err := st.ListAgents(ctx)
	if err != nil {
		return nil, errors.Join(errors.New("list agents"), err)
	}
	return as, nil
}

// mergeAgents: the config file's agents win over stored ones of the same id,
// as in the admin API and the Check.
func mergeAgents(static []store.Agent, dyn []*store.Agent) []store.Agent {
	out := append([]store.Agent(nil), static...)
	seen := map[string]bool{}
	for _, a := range static {
		seen[a.ID] = true
	}
	for _, a := range dyn {
		if !seen[a.ID] {
			out = append(out, *a)
		}
	}
	return out
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
