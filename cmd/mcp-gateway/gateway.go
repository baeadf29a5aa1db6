package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/mcpgateway/mcp-gateway/admin"
	"github.com/mcpgateway/mcp-gateway/assertion"
	"github.com/mcpgateway/mcp-gateway/authz"
	"github.com/mcpgateway/mcp-gateway/config"
	"github.com/mcpgateway/mcp-gateway/internal/slowbody"
	"github.com/mcpgateway/mcp-gateway/internal/tracing"
	"github.com/mcpgateway/mcp-gateway/login"
	"github.com/mcpgateway/mcp-gateway/oauthsrv"
	"github.com/mcpgateway/mcp-gateway/store"
	"github.com/mcpgateway/mcp-gateway/store/storeopen"
	"github.com/mcpgateway/mcp-gateway/token"
	"github.com/mcpgateway/mcp-gateway/xds"
)

// gateway is every piece of one replica, wired from a config. serve and dev
// differ only in which listeners they open and what fronts /<agent>/mcp.
type gateway struct {
	cfg    *config.Config
	log    *slog.Logger
	store  store.Store
	ring   *token.Ring
	assert *assertion.Signer
	authz  *authz.Authorizer
	oauth  *oauthsrv.Server
	admin  *admin.Server
	grpc   *grpc.Server
	static []store.Agent
	// xds is the ADS server for Envoy; nil when xds.listen is empty.
	xds *xds.Server
	// tracing exports spans when the OTEL_* environment asks (else a no-op).
	tracing *tracing.Provider
}

func newLogger() *slog.Logger {
	level := slog.LevelInfo
	if os.Getenv("MCPGW_LOG_LEVEL") == "debug" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

func newGateway(ctx context.Context, cfg *config.Config, log *slog.Logger, loginOpt func(*oauthsrv.Server) (oauthsrv.LoginProvider, error)) (*gateway, error) {
	secrets, err := cfg.Secrets()
	if err != nil {
		return nil, err
	}
	tp, err := tracing.Setup(ctx, version, log)
	if err != nil {
		return nil, err
	}
	built := false
	defer func() {
		if !built {
			_ = tp.Shutdown(context.Background())
		}
	}()
	keys := make([]token.Key, len(secrets))
	for i, s := range secrets {
		keys[i] = token.Key{ID: cfg.SigningKeys[i].ID, Secret: s}
	}
	ring, err := token.NewRing(cfg.PublicURL, keys)
	if err != nil {
		return nil, err
	}
	signer, err := newAssertionSigner(cfg, keys, log)
	if err != nil {
		return nil, err
	}
	st, err := storeopen.Open(ctx, cfg.Store.URL, cfg.Store.Prefix)
	if err != nil {
		return nil, err // already "store: …" or "redisstore: …"
	}
	g := &gateway{cfg: cfg, log: log, store: st, ring: ring, assert: signer, static: staticAgents(cfg), tracing: tp}
	if loginOpt == nil {
		loginOpt = login.Provider(cfg, st, login.WithLogger(log))
	}
	g.authz, err = authz.New(authz.Options{
		PublicURL:    cfg.PublicURL,
		Scopes:       cfg.ScopeNames(),
		ScopeImplies: cfg.ScopeImplies(),
		Ring:         ring,
		Assertions:   signer,
		Store:        st,
		StaticAgents: g.static,
		AgentOrigins: cfg.AgentOrigins,
		CacheTTL:     cfg.Cache.TTL.D(),
		// Agents' upstream credentials (upstream_auth): only references
		// are stored; the secrets are read here.
		UpstreamSecretsDir:     cfg.UpstreamSecrets.Dir,
		UpstreamSecretsRefresh: cfg.UpstreamSecrets.Refresh.D(),
		CacheSize:              cfg.Cache.MaxSize,
		Logger:                 log,
		Tracer:                 tp.Tracer(),
	})
	if err != nil {
		st.Close()
		return nil, err
	}
	g.oauth, err = oauthsrv.New(oauthsrv.Options{
		Config: cfg,
		Store:  st,
		Ring:   ring,
		Agents: g.authz,
		Login:  loginOpt,
		// RFC 7662 introspection answers what the Check would decide.
		Introspector: g.authz,
		Logger:       log,
		Tracer:       tp.Tracer(),
	})
	if err != nil {
		st.Close()
		return nil, err
	}
	xo, err := xds.OptionsFromConfig(cfg)
	if err != nil {
		st.Close()
		return nil, err
	}
	for _, a := range g.static {
		if _, why := xds.RouteFor(a, xo.CheckUpstream); why != "" {
			log.Warn("agent not routed by Envoy", "agent", a.ID, "reason", why)
		}
	}
	if cfg.XDS.Listen != "" {
		g.xds, err = newXDSServer(cfg, xo, g.static, st, log)
		if err != nil {
			st.Close()
			return nil, err
		}
	}
	aopts := admin.Options{
		Token:         cfg.AdminToken,
		AuthFailLimit: cfg.RateLimit.AdminAuth,
		Store:         st,
		StaticAgents:  g.static,
		Ready:         g.authz.Ready,
		AccessTTL:     cfg.TTL.Access.D(),
		Logger:        log,
		CheckUpstream: xo.CheckUpstream,
		RouteNote: func(a store.Agent) (bool, string) {
			u, why := xds.RouteFor(a, xo.CheckUpstream)
			return u != nil, why
		},
	}
	if g.xds != nil {
		aopts.XDS = func() any { return g.xds.Status() }
	}
	g.admin = admin.New(aopts)
	g.grpc = authz.NewGRPCServer(g.authz)
	built = true
	return g, nil
}

func staticAgents(cfg *config.Config) []store.Agent {
	out := make([]store.Agent, len(cfg.Agents))
	for i := range cfg.Agents {
		out[i] = store.Agent{AgentSpec: cfg.Agents[i].AgentSpec, Static: true}
	}
	return out
}

// newAssertionSigner loads the assertion keys of the config or, when it
// has none, derives one from each signing key (kid "hs-<id>"), so replicas
// sharing signing keys share assertion keys and rotate with them.
func newAssertionSigner(cfg *config.Config, ring []token.Key, log *slog.Logger) (*assertion.Signer, error) {
	var keys []assertion.Key
	for i, k := range cfg.AssertionKeys {
		b, err := os.ReadFile(k.PrivateKeyFile)
		if err != nil {
			return nil, fmt.Errorf("config: assertion_keys[%d].private_key_file: %w", i, err)
		}
		pk, err := assertion.ParseKey(b)
		if err != nil {
			return nil, fmt.Errorf("config: assertion_keys[%d] (%s): %w", i, k.ID, err)
		}
		keys = append(keys, assertion.Key{ID: k.ID, Private: pk})
	}
	if len(keys) == 0 {
		for _, k := range ring {
			pk, err := assertion.DeriveKey(k.Secret)
			if err != nil {
				return nil, err
			}
			keys = append(keys, assertion.Key{ID: "hs-" + k.ID, Private: pk})
		}
		log.Info("identity assertion keys derived from signing_keys; set assertion_keys to manage them apart")
	}
	return assertion.New(assertion.Options{Issuer: cfg.PublicURL, Keys: keys, CacheSize: cfg.Cache.MaxSize})
}

// httpHandler is the authorization server plus the HTTP check adapter and
// the assertion keys (assertion.JWKSPath).
func (g *gateway) httpHandler() http.Handler {
	oauth, jwks := g.oauth.Handler(), g.assert.JWKSHandler()
	return authz.WithHTTPCheck(g.authz, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == assertion.JWKSPath {
			jwks.ServeHTTP(w, r)
			return
		}
		oauth.ServeHTTP(w, r)
	}))
}

// listener is one server the gateway runs.
type listener struct {
	name string
	addr string
	http http.Handler // nil: the gRPC server, unless serve is set
	// serve runs a server of its own on the listener (the ADS server).
	serve func(net.Listener) error
}

// run starts the authorizer and every listener, then on ctx's end shuts down
// in order: readiness fails first (so load balancers stop sending), new work
// drains for drainDelay, in-flight requests get shutdownTimeout to finish
// (request contexts, and so open streams, are cancelled after streamGrace),
// then everything closes.
func (g *gateway) run(ctx context.Context, ls []listener, drainDelay, streamGrace, shutdownTimeout time.Duration, started func(map[string]net.Addr)) error {
	defer g.store.Close()
	defer g.flushSpans()
	bg, stopBG := context.WithCancel(context.Background())
	defer stopBG()
	if err := g.authz.Start(bg); err != nil {
		return fmt.Errorf("authorizer: %w", err)
	}
	if g.xds != nil {
		if err := g.xds.Start(bg); err != nil {
			return fmt.Errorf("xds: %w", err)
		}
		defer g.xds.Stop()
	}

	baseCtx, cancelStreams := context.WithCancel(context.Background())
	defer cancelStreams()
	errc := make(chan error, len(ls))
	var servers []*http.Server
	var grpcUsed bool
	addrs := map[string]net.Addr{}
	for _, l := range ls {
		if l.addr == "" {
			continue
		}
		ln, err := net.Listen("tcp", l.addr)
		if err != nil {
			for _, s := range servers {
				s.Close()
			}
			return listenError(l.name, l.addr, err)
		}
		addrs[l.name] = ln.Addr()
		if l.serve != nil {
			go func() {
				if err := l.serve(ln); err != nil {
					errc <- fmt.Errorf("%s: %w", l.name, err)
				}
			}()
			g.log.Info("listening", "listener", l.name, "addr", ln.Addr().String())
			continue
		}
		if l.http == nil {
			grpcUsed = true
			go func() { errc <- g.grpc.Serve(ln) }()
			g.log.Info("listening", "listener", l.name, "addr", ln.Addr().String())
			continue
		}
		// Bodies are bounded by the guard (time and number; ReadTimeout has
		// no cap), one per listener so a flood on the public port leaves
		// the admin listener alone. No WriteTimeout: responses may stream.
		lim := g.cfg.HTTPLimits
		srv := &http.Server{
			Handler:           slowbody.New(lim.BodyTimeout.D(), lim.MaxBodyReads).Wrap(l.http),
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       lim.IdleTimeout.D(),
			MaxHeaderBytes:    32 << 10,
			BaseContext:       func(net.Listener) context.Context { return baseCtx },
			ErrorLog:          slog.NewLogLogger(g.log.Handler(), slog.LevelWarn),
		}
		servers = append(servers, srv)
		go func() {
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("%s: %w", l.name, err)
			}
		}()
		g.log.Info("listening", "listener", l.name, "addr", ln.Addr().String())
	}
	if started != nil {
		started(addrs)
	}

	select {
	case <-ctx.Done():
	case err := <-errc:
		g.log.Error("listener failed", "err", err)
		for _, s := range servers {
			s.Close()
		}
		g.grpc.Stop()
		return err
	}

	// The ports stay bound through the drain on purpose (load balancers
	// still send while they notice /readyz): say so, since a restart
	// meanwhile fails with "address already in use".
	g.log.Info("shutting down: readiness off; the listeners keep their ports until the drain delay and in-flight requests end, so a new process cannot bind them before",
		"drain", drainDelay.String(), "shutdown_timeout", shutdownTimeout.String())
	g.authz.Drain()
	time.Sleep(drainDelay)
	if g.xds != nil {
		// ADS streams never end by themselves: close them now; each Envoy
		// reconnects to another replica and keeps its configuration.
		g.xds.Stop()
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	streams := time.AfterFunc(streamGrace, cancelStreams)
	defer streams.Stop()
	done := make(chan struct{})
	if grpcUsed {
		go func() { g.grpc.GracefulStop(); close(done) }()
	} else {
		close(done)
	}
	var errs []error
	for _, s := range servers {
		if err := s.Shutdown(sctx); err != nil {
			s.Close()
			errs = append(errs, err)
		}
	}
	select {
	case <-done:
	case <-sctx.Done():
		g.grpc.Stop()
	}
	stopBG()
	g.authz.Wait() // its last write must land before the store closes
	if len(errs) > 0 {
		g.log.Warn("shutdown deadline passed; connections closed", "err", errors.Join(errs...))
	}
	g.log.Info("stopped")
	return nil
}

// flushSpans exports the spans still queued and stops the exporter.
func (g *gateway) flushSpans() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := g.tracing.Shutdown(ctx); err != nil {
		g.log.Warn("tracing: spans not exported at shutdown", "err", err)
	}
}

// listenError explains the usual cause of a busy port: a gateway just
// stopped still holds it while it drains.
func listenError(name, addr string, err error) error {
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("%s listener: %w (another process holds %s; a gateway that was just stopped keeps its ports while it drains, --drain-delay (5s for serve) plus in-flight requests: wait for its \"stopped\" log line, then start again)", name, err, addr)
	}
	return fmt.Errorf("%s listener: %w", name, err)
}

// newXDSServer is the ADS server on xds.listen, with TLS (and mutual TLS
// when xds.tls.client_ca_file is set).
func newXDSServer(cfg *config.Config, opts xds.Options, static []store.Agent, st store.Store, log *slog.Logger) (*xds.Server, error) {
	so := xds.ServerOptions{Build: opts, Static: static, Store: st, Logger: log}
	if t := cfg.XDS.TLS; t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("xds.tls: %w", err)
		}
		tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		if t.ClientCAFile != "" {
			pem, err := os.ReadFile(t.ClientCAFile)
			if err != nil {
				return nil, fmt.Errorf("xds.tls.client_ca_file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("xds.tls.client_ca_file: no PEM certificate in %s", t.ClientCAFile)
			}
			tc.ClientCAs, tc.ClientAuth = pool, tls.RequireAndVerifyClientCert
		}
		so.GRPCOptions = append(so.GRPCOptions, grpc.Creds(credentials.NewTLS(tc)))
	}
	return xds.NewServer(so), nil
}
