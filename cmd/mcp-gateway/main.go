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

	"github.com/redis/go-redis/v9"
)

type command struct {
	run   func(ctx context.Context, args []string, stdout io.Writer) error
	usage string
	// env lists the environment variables the command reads, for its -h.
	env []string
}

// Environment variables, described once for every command's -h.
var (
	envConfig    = "MCPGW_CONFIG        the YAML config file (as --config)"
	envOverrides = "MCPGW_<FIELD>       overrides a config field, e.g. MCPGW_STORE_URL, MCPGW_SIGNING_KEYS (README.md, section Configuration)"
	envLogLevel  = "MCPGW_LOG_LEVEL     \"debug\" for debug logs"
	envAdmin     = []string{
		"MCPGW_ADMIN_URL     the admin listener (as --admin-url; default http://127.0.0.1:9090)",
		"MCPGW_ADMIN_TOKEN   the admin bearer token (as --admin-token)",
	}
	configEnv = []string{envConfig, envOverrides}
)

var commands = map[string]command{
	"serve":         {runServe, "run the gateway (gRPC Check, HTTP authorization server, admin) from --config", []string{envConfig, envOverrides, envLogLevel}},
	"dev":           {runDev, "all-in-one dev mode on one port with a demo agent and a built-in proxy", []string{envConfig, envOverrides, envLogLevel, "MCPGW_DEV_PASSWORD  the demo user's password (as --password)"}},
	"demo-agent":    {runDemoAgent, "run the demo MCP server on its own (--listen :3000)", []string{"MCPGW_PUBLIC_URL    the gateway whose identity assertions are required (as --issuer)"}},
	"agents":        {runAgents, "manage agents through the admin API (create, list, get, delete)", envAdmin},
	"keys":          {runKeys, "manage API keys through the admin API (create, list, revoke); gen-assertion writes an identity-assertion key", envAdmin},
	"clients":       {runClients, "list and delete registered OAuth clients through the admin API", envAdmin},
	"nginx-config":  {runNginxConfig, "print the nginx agents include for the registry (--config, --out)", configEnv},
	"istio-config":  {runIstioConfig, "print the Istio VirtualService for the registry (--config, --host)", configEnv},
	"hash-password": {runHashPassword, "print a bcrypt hash for a built-in user's password (read from stdin)", nil},
	"envoy-config":  {runEnvoyConfig, "print an Envoy bootstrap for the registry (static, or --ads for the control plane)", configEnv},
	"healthcheck":   {runHealthcheck, "exit 0 when the admin /healthz answers 200 (for container healthchecks)", nil},
	"version":       {runVersion, "print the version", nil},
}

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	redis.SetLogger(redisLogger{newLogger()})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run runs the command args name and returns the exit code: 0 on success
// and for -h, 1 when the command fails, 2 for a usage error.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		usage(stdout)
		return 0
	case "-v", "-version", "--version":
		args[0] = "version"
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "mcp-gateway: unknown command %q\n\n", args[0])
		usage(stderr)
		return 2
	}
	err := cmd.run(ctx, args[1:], stdout)
	switch {
	case err == nil:
		if len(cmd.env) > 0 && askedHelp(args[1:]) {
			printEnv(stdout, cmd.env)
		}
		return 0
	case errors.Is(err, flag.ErrHelp):
		printEnv(stdout, cmd.env) // parseFlags printed the flags
		return 0
	}
	fmt.Fprintf(stderr, "mcp-gateway %s: %v\n", args[0], err)
	return 1
}

// askedHelp reports whether args ask for help: the admin commands print
// their usage to stdout and succeed rather than return flag.ErrHelp.
func askedHelp(args []string) bool {
	for _, a := range args {
		switch a {
		case "-h", "-help", "--help":
			return true
		case "--":
			return false
		}
	}
	return false
}

// parseFlags parses args into fs; -h prints fs's usage to stdout and
// returns flag.ErrHelp (run then adds the environment and exits 0). A
// parse error is returned alone, for run to print once.
func parseFlags(fs *flag.FlagSet, args []string, stdout io.Writer) error {
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		fs.SetOutput(stdout)
		fs.Usage()
	}
	return err
}

// printEnv lists the environment variables a command reads.
func printEnv(w io.Writer, env []string) {
	if len(env) == 0 {
		return
	}
	fmt.Fprintln(w, "\nEnvironment:")
	for _, e := range env {
		fmt.Fprintln(w, "  "+e)
	}
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "usage: mcp-gateway <command> [flags]\n       mcp-gateway --version\n\ncommands:\n")
	for _, name := range []string{"serve", "dev", "demo-agent", "agents", "keys", "clients", "envoy-config", "nginx-config", "istio-config", "hash-password", "healthcheck", "version"} {
		fmt.Fprintf(w, "  %-14s %s\n", name, commands[name].usage)
	}
	fmt.Fprintln(w, "\nRun 'mcp-gateway <command> -h' for a command's flags and environment.")
}

func runVersion(_ context.Context, _ []string, stdout io.Writer) error {
	_, err := fmt.Fprintln(stdout, "mcp-gateway", version)
	return err
}
