package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"syscall"
	"time"

	"google.golang.org/grpc"

	"github.com/mcpgateway/mcp-gateway/admin"
	"github.com/mcpgateway/mcp-gateway/authz"
	"github.com/mcpgateway/mcp-gateway/config"
	"github.com/mcpgateway/mcp-gateway/internal/slowbody"
	"github.com/mcpgateway/mcp-gateway/login"
	"github.com/mcpgateway/mcp-gateway/oauthsrv"
	"github.com/mcpgateway/mcp-gateway/store"
	"github.com/mcpgateway/mcp-gateway/store/storeopen"
	"github.com/mcpgateway/mcp-gateway/token"
)

// gateway is every piece of one replica, wired from a config. serve and dev
// differ only in which listeners they open and what fronts /<agent>/mcp.
type gateway struct {
	cfg    *config.Config
	log    *slog.Logger
	store  store.Store
	ring   *token.Ring
	authz  *authz.Authorizer
	oauth  *oauthsrv.Server
	admin  *admin.Server
	grpc   *grpc.Server
	static []store.Agent
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
	keys := make([]token.Key, len(secrets))
	for i, s := range secrets {
		keys[i] = token.Key{ID: cfg.SigningKeys[i].ID, Secret: s}
	}
	ring, err := token.NewRing(cfg.PublicURL, keys)
	if err != nil {
		return nil, err
	}
	st, err := storeopen.Open(ctx, cfg.Store.URL, cfg.Store.Prefix)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	g := &gateway{cfg: cfg, log: log, store: st, ring: ring, static: staticAgents(cfg)}
	if loginOpt == nil {
		loginOpt = login.Provider(cfg, st, login.WithLogger(log))
	}
	g.authz, err = authz.New(authz.Options{
		PublicURL:    cfg.PublicURL,
		Scopes:       cfg.ScopeNames(),
		ScopeImplies: cfg.ScopeImplies(),
		Ring:         ring,
		Store:        st,
		StaticAgents: g.static,
		CacheTTL:     cfg.Cache.TTL.D(),
		CacheSize:    cfg.Cache.MaxSize,
		Logger:       log,
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
		Logger: log,
	})
	if err != nil {
		st.Close()
		return nil, err
	}
	g.admin = admin.New(admin.Options{
		Token:         cfg.AdminToken,
		AuthFailLimit: cfg.RateLimit.AdminAuth,
		Store:         st,
		StaticAgents:  g.static,
		Ready:         g.authz.Ready,
		AccessTTL:     cfg.TTL.Access.D(),
		Logger:        log,
	})
	g.grpc = authz.NewGRPCServer(g.authz)
	return g, nil
}

func staticAgents(cfg *config.Config) []store.Agent {
	out := make([]store.Agent, len(cfg.Agents))
	for i, a := range cfg.Agents {
		out[i] = store.Agent{ID: a.ID, Name: a.Name, Owner: a.Owner, Users: a.Users, Upstream: a.Upstream, Scopes: a.Scopes, Rules: a.Rules, Limits: a.Limits, Static: true}
	}
	return out
}

// httpHandler is the authorization server plus the HTTP check adapter.
func (g *gateway) httpHandler() http.Handler {
	return authz.WithHTTPCheck(g.authz, g.oauth.Handler())
}

// listener is one server the gateway runs.
type listener struct {
	name string
	addr string
	http http.Handler // nil: the gRPC server
}

// run starts the authorizer and every listener, then on ctx's end shuts down
// in order: readiness fails first (so load balancers stop sending), new work
// drains for drainDelay, in-flight requests get shutdownTimeout to finish
// (request contexts, and so open streams, are cancelled after streamGrace),
// then everything closes.
func (g *gateway) run(ctx context.Context, ls []listener, drainDelay, streamGrace, shutdownTimeout time.Duration, started func(map[string]net.Addr)) error {
	defer g.store.Close()
	bg, stopBG := context.WithCancel(context.Background())
	defer stopBG()
	if err := g.authz.Start(bg); err != nil {
		return fmt.Errorf("authorizer: %w", err)
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
		if l.http == nil {
			grpcUsed = true
			go func() { errc <- g.grpc.Serve(ln) }()
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

// listenError explains the usual cause of a busy port: a gateway just
// stopped still holds it while it drains.
func listenError(name, addr string, err error) error {
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("%s listener: %w (another process holds %s; a gateway that was just stopped keeps its ports while it drains, --drain-delay (5s for serve) plus in-flight requests: wait for its \"stopped\" log line, then start again)", name, err, addr)
	}
	return fmt.Errorf("%s listener: %w", name, err)
}
