// Command mcp-gateway is the whole gateway: the ext_authz Check server, the
// OAuth authorization server, the admin API, and an all-in-one dev mode.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

type command struct {
	run   func(ctx context.Context, args []string, stdout io.Writer) error
	usage string
}

var commands = map[string]command{
	"serve":         {runServe, "run the gateway (gRPC Check, HTTP authorization server, admin) from --config"},
	"dev":           {runDev, "all-in-one dev mode on one port with a demo agent and a built-in proxy"},
	"demo-agent":    {runDemoAgent, "run the demo MCP server on its own (--listen :3000)"},
	"agents":        {runAgents, "manage agents through the admin API (create, list, get, delete)"},
	"keys":          {runKeys, "manage API keys through the admin API (create, list, revoke); gen-assertion writes an identity-assertion key"},
	"clients":       {runClients, "list and delete registered OAuth clients through the admin API"},
	"nginx-config":  {runNginxConfig, "print the nginx agents include for the registry (--config, --out)"},
	"istio-config":  {runIstioConfig, "print the Istio VirtualService for the registry (--config, --host)"},
	"hash-password": {runHashPassword, "print a bcrypt hash for a built-in user's password (read from stdin)"},
	"envoy-config":  {runEnvoyConfig, "print an Envoy bootstrap for the registry (static, or --ads for the control plane)"},
	"healthcheck":   {runHealthcheck, "exit 0 when the admin /healthz answers 200 (for container healthchecks)"},
	"version":       {runVersion, "print the version"},
}

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	if len(os.Args) < 2 || os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help" {
		usage(os.Stderr)
		os.Exit(2)
	}
	cmd, ok := commands[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "mcp-gateway: unknown command %q\n\n", os.Args[1])
		usage(os.Stderr)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := cmd.run(ctx, os.Args[2:], os.Stdout); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		fmt.Fprintf(os.Stderr, "mcp-gateway %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: mcp-gateway <command> [flags]\n\ncommands:")
	for _, name := range []string{"serve", "dev", "demo-agent", "agents", "keys", "clients", "envoy-config", "nginx-config", "istio-config", "hash-password", "healthcheck", "version"} {
		fmt.Fprintf(w, "  %-14s %s\n", name, commands[name].usage)
	}
}

func runVersion(_ context.Context, _ []string, stdout io.Writer) error {
	_, err := fmt.Fprintln(stdout, "mcp-gateway", version)
	return err
}
