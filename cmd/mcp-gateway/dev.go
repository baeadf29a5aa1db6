package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/mcpgateway/mcp-gateway/agentauth"
	"github.com/mcpgateway/mcp-gateway/assertion"
	"github.com/mcpgateway/mcp-gateway/config"
	"github.com/mcpgateway/mcp-gateway/internal/demoagent"
	"github.com/mcpgateway/mcp-gateway/internal/proxy"
	"github.com/mcpgateway/mcp-gateway/internal/resource"
	"github.com/mcpgateway/mcp-gateway/internal/routes"
	"github.com/mcpgateway/mcp-gateway/store"
	"github.com/mcpgateway/mcp-gateway/token"
)

const (
	devUser  = "demo"
	devAgent = "demo"
	// devAdminScope guards the demo agent's admin_echo tool.
	devAdminScope = "mcp:admin"
)

// runDev is the all-in-one mode a new user starts with: one port serving the
// authorization server and, in place of Envoy, a reverse proxy that gates
// /<agent>/mcp with the same decision; a demo MCP agent; memory store.
func runDev(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	cfgPath := fs.String("config", os.Getenv("MCPGW_CONFIG"), "optional YAML config file; MCPGW_* variables override it")
	listen := fs.String("listen", "127.0.0.1:8000", "address of the one public port (authorization server + proxy)")
	publicURL := fs.String("public-url", "", "public base URL (default http://<listen>, or MCPGW_PUBLIC_URL)")
	grpcAddr := fs.String("grpc", "127.0.0.1:9191", "gRPC ext_authz Check for a local Envoy (\"\" disables)")
	adminAddr := fs.String("admin", "127.0.0.1:9090", "admin listener: /admin/v1, /metrics, /healthz, /readyz (\"\" disables)")
	redisURL := fs.String("redis", "", "use this Redis URL instead of the memory store")
	password := fs.String("password", os.Getenv("MCPGW_DEV_PASSWORD"), "the demo user's password (env MCPGW_DEV_PASSWORD; random when unset)")
	drain := fs.Duration("drain-delay", 0, "after SIGTERM, how long /readyz fails before listeners stop accepting")
	grace := fs.Duration("shutdown-timeout", 5*time.Second, "how long in-flight requests get to finish on shutdown (open streams are closed after 0.5s)")
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	cfg, err := config.Load(*cfgPath, true)
	if err != nil {
		return err
	}
	cfg.Listen = config.Listen{HTTP: *listen, GRPC: *grpcAddr, Admin: *adminAddr}
	// Dev mode is its own proxy: no ADS server. Agents on this machine
	// (the demo agent, one you run) are its normal upstreams.
	cfg.XDS.Listen = ""
	cfg.XDS.AllowedUpstreamHosts = append(cfg.XDS.AllowedUpstreamHosts, "127.0.0.0/8", "::1", "localhost")
	// Browser clients on this machine (MCP Inspector's web UI) may call agents.
	cfg.AgentOrigins = append(cfg.AgentOrigins, config.DevAgentOrigins...)
	if *publicURL != "" {
		cfg.PublicURL = *publicURL
	} else if _, set := os.LookupEnv("MCPGW_PUBLIC_URL"); !set {
		cfg.PublicURL = "http://" + *listen
	}
	if *redisURL != "" {
		cfg.Store.URL = *redisURL
	}
	var notes []string
	if len(cfg.SigningKeys) == 0 {
		cfg.SigningKeys = []config.SigningKey{{ID: "dev-" + token.Random(6), Secret: token.Random(32)}}
		notes = append(notes, "generated a signing key: tokens stop working when this process ends")
	}
	if cfg.AdminToken == "" {
		cfg.AdminToken = token.Random(32) // 256 bits, as serve's signing keys
	}
	if *password == "" {
		*password = token.Random(12)
	}
	if len(*password) > 72 {
		return fmt.Errorf("the demo password is longer than bcrypt's 72 bytes")
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(*password), bcrypt.DefaultCost)
	if err != nil {
		return fmt.Errorf("hash demo password: %w", err)
	}
	cfg.Login.Users = append(cfg.Login.Users, config.User{Username: devUser, PasswordHash: string(hash)})
	if err := cfg.Validate(true); err != nil {
		return err
	}

	log := newLogger()
	// The demo agent: a real MCP server on a private loopback port. It
	// verifies every request's assertion against the JWKS this process
	// serves on its public port.
	verifier, err := demoVerifier(cfg.PublicURL, "http://"+loopback(*listen)+assertion.JWKSPath, devAgent)
	if err != nil {
		return err
	}
	agentLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("demo agent: %w", err)
	}
	agentCtx, stopAgent := context.WithCancel(context.Background())
	agentDone := make(chan error, 1)
	go func() { agentDone <- demoagent.Serve(agentCtx, agentLn, log, verifier) }()
	defer func() { stopAgent(); <-agentDone }()
	if !hasAgent(cfg, devAgent) {
		// The demo's tool policy: admin_echo needs mcp:admin, which mcp
		// does not imply; every other tool needs the base scope mcp only.
		if !slices.Contains(cfg.ScopeNames(), devAdminScope) {
			cfg.Scopes = append(cfg.Scopes, config.Scope{Name: devAdminScope, Description: "Call the demo agent's administrative tools (admin_echo)"})
		}
		cfg.Agents = append(cfg.Agents, config.StaticAgent{AgentSpec: store.AgentSpec{
			ID: devAgent, Name: "Demo agent", Owner: devUser,
			Upstream: "http://" + agentLn.Addr().String() + "/mcp",
			Rules:    []store.Rule{{Name: "admin", Method: "tools/call", Target: "admin_*", Scopes: []string{devAdminScope}}},
		}})
	}

	g, err := newGateway(ctx, cfg, log, nil)
	if err != nil {
		return err
	}
	front := devHandler(g)
	return g.run(ctx, []listener{
		{name: "http", addr: cfg.Listen.HTTP, http: front},
		{name: "grpc", addr: cfg.Listen.GRPC},
		{name: "admin", addr: cfg.Listen.Admin, http: g.admin.Handler()},
	}, *drain, min(500*time.Millisecond, *grace/2), *grace, func(addrs map[string]net.Addr) {
		fmt.Fprintf(stdout, `
MCP Gateway dev mode
  MCP URL       %s/%s/mcp
  login         user %q, password %q
  admin API     http://%s/admin/v1  (Authorization: Bearer %s)
  gRPC Check    %s
  store         %s
`, cfg.PublicURL, devAgent, devUser, *password, addrs["admin"], cfg.AdminToken, addrOr(addrs["grpc"], "off"), cfg.Store.URL)
		for _, n := range notes {
			fmt.Fprintln(stdout, "  note:", n)
		}
		fmt.Fprintln(stdout)
	})
}

// devHandler routes the authorization server's paths to it and everything
// else through the gated proxy, as envoy/envoy.yaml does.
func devHandler(g *gateway) http.Handler {
	oauth := g.httpHandler()
	gated := proxy.New(proxy.Options{
		Decider: g.authz.TracingDecider(),
		Upstream: func(ctx context.Context, id string) (*url.URL, error) {
			a, err := g.authz.GetAgent(ctx, id)
			if err != nil {
				return nil, err
			}
			if a.Upstream == "" {
				return nil, fmt.Errorf("agent %q has no upstream", id)
			}
			return url.Parse(a.Upstream)
		},
		Logger:        g.log,
		OriginAllowed: g.authz.OriginAllowed,
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isGatewayPath(r.URL.Path) {
			oauth.ServeHTTP(w, r)
			return
		}
		gated.ServeHTTP(w, r)
	})
}

// isGatewayPath: the shared route table (internal/routes), which the Envoy
// builder uses too, so /accounting/mcp is an agent here as it is in Envoy.
func isGatewayPath(p string) bool {
	_, ok := routes.GatewayRoute(p, true)
	return ok
}

func hasAgent(cfg *config.Config, id string) bool {
	for _, a := range cfg.Agents {
		if a.ID == id {
			return true
		}
	}
	return false
}

func addrOr(a net.Addr, def string) string {
	if a == nil {
		return def
	}
	return a.String()
}

func runDemoAgent(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("demo-agent", flag.ContinueOnError)
	addr := fs.String("listen", ":3000", "listen address; the MCP endpoint is /mcp")
	issuer := fs.String("issuer", os.Getenv("MCPGW_PUBLIC_URL"), "the gateway's public URL, whose x-mcp-identity assertions are required (env MCPGW_PUBLIC_URL)")
	agents := fs.String("agents", devAgent, "comma-separated agent ids this server backs (the assertion's audience is <issuer>/<id>/mcp)")
	jwksURL := fs.String("jwks-url", "", "where to fetch the gateway's public keys (default <issuer>"+assertion.JWKSPath+")")
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	if *issuer == "" {
		return errors.New("--issuer (or MCPGW_PUBLIC_URL) is required: the demo agent accepts only requests carrying the gateway's identity assertion")
	}
	v, err := demoVerifier(*issuer, *jwksURL, strings.Split(*agents, ",")...)
	if err != nil {
		return err
	}
	return demoagent.ListenAndServe(ctx, *addr, v)
}

// demoVerifier checks assertions from the gateway at issuer for the agents.
func demoVerifier(issuer, jwksURL string, agents ...string) (*agentauth.Verifier, error) {
	base := resource.New(issuer)
	var auds []string
	for _, a := range agents {
		if a = strings.TrimSpace(a); a != "" {
			auds = append(auds, base.For(a))
		}
	}
	return agentauth.New(agentauth.Options{Issuer: base.String(), Audiences: auds, JWKSURL: jwksURL})
}

// loopback turns a listen address into one to dial: an unspecified host
// (":8000", "0.0.0.0:8000") is reached on 127.0.0.1.
func loopback(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}
