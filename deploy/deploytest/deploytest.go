// Package deploytest loads the shipped deployment files for their tests the
// way the tools that run them do: compose.yaml through the compose-spec loader
// (the code docker compose uses), the gateway's config as its container
// loads it, what that gateway serves Envoy, the Dockerfile's instructions.
//
// It is test support: no production code imports it. The tests sit beside
// the files they check (deploy/compose, deploy/prometheus, deploy/grafana,
// and deploy for the root's Dockerfile).
package deploytest

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"

	"github.com/mcpgateway/mcp-gateway/config"
	"github.com/mcpgateway/mcp-gateway/store"
	"github.com/mcpgateway/mcp-gateway/xds"
)

// GatewayConfigPath is where the gateway's container reads its config.
const GatewayConfigPath = "/etc/mcp-gateway/config.yaml"

// Root returns the repository's root as an absolute path: the nearest folder
// at or above the working directory (a test's package folder) with go.mod.
func Root(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the working directory")
		}
		dir = parent
	}
}

// LoadCompose loads compose.yaml with the compose-spec loader, with only env
// as the environment so the result does not depend on the machine.
func LoadCompose(t testing.TB, env ...string) *types.Project {
	t.Helper()
	root := Root(t)
	opts, err := cli.NewProjectOptions([]string{filepath.Join(root, "compose.yaml")},
		cli.WithWorkingDirectory(root), cli.WithEnv(env), cli.WithResolvedPaths(true))
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	return p
}

// Service returns p's service name, failing t when compose.yaml has none.
func Service(t testing.TB, p *types.Project, name string) types.ServiceConfig {
	t.Helper()
	s, ok := p.Services[name]
	if !ok {
		t.Fatalf("compose.yaml has no service %q", name)
	}
	return s
}

// BindSource finds the host file a service mounts at target.
func BindSource(s types.ServiceConfig, target string) (string, bool) {
	for _, v := range s.Volumes {
		if v.Type == types.VolumeTypeBind && v.Target == target {
			return v.Source, true
		}
	}
	return "", false
}

// GatewayConfig loads the config the gateway service gw mounts at
// GatewayConfigPath, with the environment compose gives the container.
func GatewayConfig(t testing.TB, gw types.ServiceConfig) *config.Config {
	t.Helper()
	src, ok := BindSource(gw, GatewayConfigPath)
	if !ok {
		t.Fatalf("gateway does not mount %s", GatewayConfigPath)
	}
	raw, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for k, v := range gw.Environment {
		if v != nil {
			env[k] = *v
		}
	}
	cfg, err := config.Parse(src, raw, func(k string) (string, bool) { v, ok := env[k]; return v, ok }, false)
	if err != nil {
		t.Fatalf("%s: %v", src, err)
	}
	return cfg
}

// GatewayBootstrap is what a gateway with cfg serves Envoy over ADS, as one
// static bootstrap, with the agents it routes and refuses.
func GatewayBootstrap(t testing.TB, cfg *config.Config) (*bootstrapv3.Bootstrap, *xds.Resources) {
	t.Helper()
	opts, err := xds.OptionsFromConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var static []store.Agent
	for _, a := range cfg.Agents {
		static = append(static, store.Agent{AgentSpec: a.AgentSpec})
	}
	b, res, err := xds.StaticBootstrap(opts, static)
	if err != nil {
		t.Fatal(err)
	}
	return b, res
}

// HostPort splits a listen address, failing t when it is not host:port.
func HostPort(t testing.TB, addr string) (host, port string) {
	t.Helper()
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("%q: %v", addr, err)
	}
	return h, p
}

// DockerfileLines returns the root Dockerfile's instructions, continuations
// joined and comments dropped.
func DockerfileLines(t testing.TB) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(Root(t), "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	cur := ""
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "#") {
			continue
		}
		if strings.HasSuffix(l, "\\") {
			cur += strings.TrimSuffix(l, "\\") + " "
			continue
		}
		if s := strings.TrimSpace(cur + l); s != "" {
			out = append(out, s)
		}
		cur = ""
	}
	return out
}

// DockerBinary is where the Dockerfile puts the binary (the final COPY).
func DockerBinary(t testing.TB) string {
	t.Helper()
	bin := ""
	for _, l := range DockerfileLines(t) {
		if f := strings.Fields(l); len(f) >= 3 && f[0] == "COPY" && strings.HasPrefix(f[1], "--from=") {
			bin = f[len(f)-1]
		}
	}
	return bin
}
