// Package admin serves the admin listener (default 127.0.0.1:9090): the
// bearer-protected JSON API under /admin/v1 for agents, API keys and OAuth
// clients, plus the unauthenticated /metrics, /healthz and /readyz. It also
// holds the Client and the CLI subcommands (agents, keys, clients,
// healthcheck) that talk to it.
package admin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/pprof"
	runtimepprof "runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mcpgateway/mcp-gateway/internal/metrics"
	"github.com/mcpgateway/mcp-gateway/store"
)

// MaxBodyBytes caps every JSON request body.
const MaxBodyBytes = 64 << 10

// readyTimeout bounds the store ping of /readyz.
const readyTimeout = time.Second

// Store is what the admin API needs from a backend.
type Store interface {
	store.Agents
	CreateKey(ctx context.Context, k *store.APIKey) error
	ListKeys(ctx context.Context) ([]*store.APIKey, error)
	// RevokeKey marks the key revoked and publishes store.EventKey.
	RevokeKey(ctx context.Context, id string) (*store.APIKey, error)
	ListClients(ctx context.Context) ([]*store.Client, error)
	DeleteClient(ctx context.Context, id string) error
	// RevokeJTI denylists; with store.RevokedClientJTI, a client's tokens.
	RevokeJTI(ctx context.Context, jti string, exp time.Time) error
	Ping(ctx context.Context) error
	// Allow and Refund throttle failed admin authentications per IP.
	store.RateLimiter
}

// Options configure New.
type Options struct {
	// Token is the admin bearer token. Empty disables /admin/v1 (503).
	Token string
	// AuthFailLimit caps failed authentications per client IP per minute;
	// beyond it /admin/v1 answers 429 whatever the token. 0: no cap.
	AuthFailLimit int
	Store         Store
	// StaticAgents come from the config file: listed with "static": true,
	// never deletable, and their ids cannot be created again.
	StaticAgents []store.Agent
	// Ready reports whether in-process state (e.g. the revocation mirror) is
	// loaded; nil means always ready.
	Ready func() bool
	// AccessTTL is the access-token lifetime: deleting a client revokes its
	// tokens for that long (plus the clock leeway), by when the last one
	// has expired. Zero: 24 hours.
	AccessTTL time.Duration
	Logger    *slog.Logger
	Now       func() time.Time
	// CheckUpstream refuses an agent's upstream URL at creation (the xds
	// guard: scheme, userinfo, loopback/link-local/metadata); nil: none.
	CheckUpstream func(string) error
	// RouteNote says whether proxies route an agent and, if not, why; the
	// agent answers carry it. nil: no "route" field.
	RouteNote func(store.Agent) (routed bool, note string)
	// XDS is the ADS server's status for GET /admin/v1/xds; nil: off.
	XDS func() any
}

// Server is the admin listener's handler.
type Server struct {
	tokenSum  [sha256.Size]byte
	enabled   bool
	authLimit int
	store     Store
	static    map[string]store.Agent
	ready     func() bool
	accessTTL time.Duration
	log       *slog.Logger
	now       func() time.Time
	handler   http.Handler
	checkUp   func(string) error
	routeNote func(store.Agent) (bool, string)
	xds       func() any
}

// New builds the server. Static agents are copied and marked Static.
func New(opts Options) *Server {
	s := &Server{
		enabled: opts.Token != "",
		// Compare digests so neither the token's bytes nor its length leak
		// through timing.
		tokenSum:  sha256.Sum256([]byte(opts.Token)),
		authLimit: opts.AuthFailLimit,
		store:     opts.Store,
		static:    make(map[string]store.Agent, len(opts.StaticAgents)),
		ready:     opts.Ready,
		accessTTL: opts.AccessTTL,
		log:       opts.Logger,
		now:       opts.Now,
		checkUp:   opts.CheckUpstream,
		routeNote: opts.RouteNote,
		xds:       opts.XDS,
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.ready == nil {
		s.ready = func() bool { return true }
	}
	if s.accessTTL <= 0 {
		s.accessTTL = 24 * time.Hour
	}
	for _, a := range opts.StaticAgents {
		c := a.Clone() // the caller's slices stay theirs
		c.Static = true
		s.static[a.ID] = *c
	}

	api := http.NewServeMux()
	api.HandleFunc("GET /admin/v1/agents", s.listAgents)
	api.HandleFunc("POST /admin/v1/agents", s.createAgent)
	api.Handle("/admin/v1/agents", methodNotAllowed("GET, HEAD, POST"))
	api.HandleFunc("GET /admin/v1/agents/{id}", s.getAgent)
	api.HandleFunc("DELETE /admin/v1/agents/{id}", s.deleteAgent)
	api.Handle("/admin/v1/agents/{id}", methodNotAllowed("DELETE, GET, HEAD"))
	api.HandleFunc("GET /admin/v1/keys", s.listKeys)
	api.HandleFunc("POST /admin/v1/keys", s.createKey)
	api.Handle("/admin/v1/keys", methodNotAllowed("GET, HEAD, POST"))
	api.HandleFunc("DELETE /admin/v1/keys/{id}", s.revokeKey)
	api.Handle("/admin/v1/keys/{id}", methodNotAllowed("DELETE"))
	api.HandleFunc("GET /admin/v1/xds", s.xdsStatus)
	api.Handle("/admin/v1/xds", methodNotAllowed("GET, HEAD"))
	api.HandleFunc("GET /admin/v1/clients", s.listClients)
	api.Handle("/admin/v1/clients", methodNotAllowed("GET, HEAD"))
	api.HandleFunc("DELETE /admin/v1/clients/{id}", s.deleteClient)
	api.Handle("/admin/v1/clients/{id}", methodNotAllowed("DELETE"))
	// Profiles of the running gateway (go tool pprof -H 'Authorization: …'
	// or curl), behind the admin token: a CPU profile under load is how
	// the Check's hot path is tuned (BENCHMARKS.md).
	api.HandleFunc("GET /admin/v1/debug/pprof/profile", pprof.Profile)
	api.HandleFunc("GET /admin/v1/debug/pprof/trace", pprof.Trace)
	api.HandleFunc("GET /admin/v1/debug/pprof/{profile}", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("profile")
		if runtimepprof.Lookup(name) == nil {
			writeError(w, http.StatusNotFound, "no such profile: "+name)
			return
		}
		pprof.Handler(name).ServeHTTP(w, r)
	})
	api.HandleFunc("/admin/v1/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such admin endpoint: "+r.URL.Path)
	})

	root := http.NewServeMux()
	root.Handle("GET /metrics", promhttp.HandlerFor(metrics.Registry, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelError),
	}))
	root.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	root.HandleFunc("GET /readyz", s.readyz)
	root.Handle("/admin/v1/", s.authenticate(api))
	s.handler = root
	return s
}

// Handler serves the whole admin listener.
func (s *Server) Handler() http.Handler { return s.handler }

// authenticate checks the admin token before any routing so an anonymous
// caller learns nothing about the API's shape. Every attempt first takes a
// hit on its IP's budget of failures, so parallel guesses cannot all get
// past it, and a good token gives the hit back. Over the budget the answer
// is 429 without looking at the token, so a throttled guess learns nothing.
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		if !s.enabled {
			writeError(w, http.StatusServiceUnavailable, "admin API disabled: no admin token")
			return
		}
		key, ok := s.takeAuthHit(w, r)
		if !ok {
			return
		}
		scheme, presented, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		presented = strings.TrimSpace(presented)
		if !strings.EqualFold(scheme, "Bearer") || presented == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="mcp-gateway-admin"`)
			writeError(w, http.StatusUnauthorized, "admin token required (Authorization: Bearer <token>)")
			return
		}
		sum := sha256.Sum256([]byte(presented))
		if subtle.ConstantTimeCompare(sum[:], s.tokenSum[:]) != 1 {
			s.log.Warn("admin token rejected", "remote", r.RemoteAddr, "method", r.Method, "path", r.URL.Path)
			w.Header().Set("WWW-Authenticate", `Bearer realm="mcp-gateway-admin", error="invalid_token"`)
			writeError(w, http.StatusUnauthorized, "invalid admin token")
			return
		}
		s.refundAuthHit(r.Context(), key)
		next.ServeHTTP(w, r)
	})
}

// takeAuthHit counts one authentication attempt against the peer's budget
// of failures ("" key: no budget). The admin listener is never behind a
// proxy, so the peer address is the client and X-Forwarded-For is not read.
// When the attempt may not go on (over the budget: 429 with Retry-After;
// the store failing: 503) it has answered and returns false.
func (s *Server) takeAuthHit(w http.ResponseWriter, r *http.Request) (key string, ok bool) {
	if s.authLimit <= 0 {
		return "", true
	}
	ip := r.RemoteAddr
	if host, _, err := net.SplitHostPort(ip); err == nil {
		ip = host
	}
	key = "admin_auth:" + ip
	allowed, retry, err := s.store.Allow(r.Context(), key, s.authLimit, time.Minute)
	switch {
	case err != nil:
		s.log.Error("admin: rate limit unavailable", "err", err)
		writeError(w, http.StatusServiceUnavailable, "store unavailable, try again")
		return "", false
	case !allowed:
		// Not checked, so not a failure: the count stays at the budget.
		s.refundAuthHit(r.Context(), key)
		s.log.Warn("admin authentication throttled", "remote", r.RemoteAddr, "method", r.Method, "path", r.URL.Path)
		metrics.RateLimited.WithLabelValues("admin_auth").Inc()
		w.Header().Set("Retry-After", strconv.Itoa(max(1, int(math.Ceil(retry.Seconds())))))
		writeError(w, http.StatusTooManyRequests, "too many failed admin authentications from this address; try again later")
		return "", false
	}
	return key, true
}

// refundAuthHit gives back an attempt's hit; key "" is no budget.
func (s *Server) refundAuthHit(ctx context.Context, key string) {
	if key == "" {
		return
	}
	if err := s.store.Refund(ctx, key); err != nil {
		// The request stands; the budget is one lower until the window ends.
		s.log.Warn("admin: rate limit refund failed", "err", err)
	}
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
	defer cancel()
	if err := s.store.Ping(ctx); err != nil {
		s.log.Warn("readyz: store ping failed", "err", err)
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unready", "reason": "store unreachable"})
		return
	}
	if !s.ready() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unready", "reason": "state not loaded yet, or shutting down"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// audit writes one line per change made through the API. Never pass a secret.
func (s *Server) audit(r *http.Request, event, id string, attrs ...any) {
	args := append([]any{"event", event, "id", id, "who", "admin", "remote", r.RemoteAddr}, attrs...)
	s.log.Info("audit", args...)
}

// storeError answers a failed store call: 404/409 for the contract's
// sentinel errors, 503 when the backend is unreachable, else 500.
func (s *Server) storeError(w http.ResponseWriter, op string, err error, notFound string) {
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, notFound)
	case errors.Is(err, store.ErrConflict):
		writeError(w, http.StatusConflict, "already exists")
	case errors.Is(err, store.ErrUnavailable):
		s.log.Error("admin: store unavailable", "op", op, "err", err)
		writeError(w, http.StatusServiceUnavailable, "store unavailable, try again")
	default:
		s.log.Error("admin: store error", "op", op, "err", err)
		writeError(w, http.StatusInternalServerError, "internal error")
	}
}

func methodNotAllowed(allow string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed (allowed: %s)", r.Method, allow))
	})
}

// ErrorBody is every error response of /admin/v1.
type ErrorBody struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, ErrorBody{Error: msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil { // only our own record types are marshalled
		status, b = http.StatusInternalServerError, []byte(`{"error":"internal error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
