// Package oauthsrv is the gateway's OAuth 2.1 authorization server: discovery
// (RFC 8414, RFC 9728), dynamic registration (RFC 7591), authorize with PKCE,
// login and consent pages, the token endpoint (code and refresh grants) and
// revocation (RFC 7009). Every path is mounted on one http.Handler shared by
// the serve and dev commands and the tests.
package oauthsrv

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/mcpgateway/mcp-gateway/config"
	"github.com/mcpgateway/mcp-gateway/internal/resource"
	"github.com/mcpgateway/mcp-gateway/store"
	"github.com/mcpgateway/mcp-gateway/token"
)

// Store is the part of store.Store the authorization server uses
// (memstore and redisstore both satisfy it).
type Store interface {
	store.Clients
	store.AuthRequests
	store.Codes
	store.Refresh
	store.Consents
	store.Sessions
	store.Revocations
	store.RateLimiter
	store.Keys // the account page's oag_ keys
}

// AgentLookup resolves an agent id; store.ErrNotFound for an unknown agent.
type AgentLookup interface {
	GetAgent(ctx context.Context, id string) (*store.Agent, error)
}

// Options configure New. Config, Store and Ring are required.
type Options struct {
	Config *config.Config
	Store  Store
	Ring   *token.Ring
	// Agents checks resource agents and per-user access. nil: no agent
	// checks (any valid agent id is accepted, every user allowed).
	Agents AgentLookup
	// Users are the built-in login's users: username → bcrypt hash.
	// nil: taken from Config.Login.Users.
	Users map[string]string
	// Login builds the login provider. nil: the built-in users when
	// Config.Login.Provider is "builtin" (or ""); "oidc" and "webapp" come
	// from package login: Options.Login = login.Provider(...).
	Login func(s *Server) (LoginProvider, error)
	// Logger for errors and audit lines; nil: slog.Default().
	Logger *slog.Logger
	// Now is the clock; nil: time.Now.
	Now func() time.Time
	// CIMDRootCAs are the trust roots for fetching Client ID Metadata
	// Documents; nil: the system roots (tests pass their TLS server's).
	CIMDRootCAs *x509.CertPool
	// Introspector answers /oauth/introspect (RFC 7662); nil: no endpoint.
	Introspector Introspector
	// Tracer, when set, traces every endpoint (tracing.go); nil: off.
	Tracer trace.Tracer
}

// Server is the authorization server. Build it with New.
type Server struct {
	cfg      *config.Config
	st       Store
	ring     *token.Ring
	agents   AgentLookup
	log      *slog.Logger
	now      func() time.Time
	issuer   string        // = cfg.PublicURL
	res      resource.Base // agents' resource URLs under the issuer, as the Check parses them
	base     *url.URL      // parsed issuer
	basePath string        // path of the issuer without trailing slash ("" at the root)
	secure   bool          // issuer is https: Secure + __Host- cookies
	tagged   bool          // codes and refresh tokens carry their family id (store.TagsSecrets)

	sessionCookie string
	browserCookie string

	scopes []string // supported scopes, config order
	// baseScopes are the gateway's scopes but those the config's agents'
	// tool policies require (asked for on demand, after a 403 names them):
	// granted when a gateway-wide request names none, listed by the root
	// resource metadata, and the base of every agent without its own scopes.
	baseScopes []string
	proxies    []netip.Prefix
	hops       int // trusted_hops: X-Forwarded-For entries our proxies append

	corsAny     bool
	corsOrigins map[string]bool

	login      LoginProvider
	introspect Introspector  // nil: no /oauth/introspect
	cimd       *cimdResolver // nil: URL client ids are looked up as registrations
	pages      *pages
	asMeta     []byte // RFC 8414 document, built once
	prmRoot    []byte // RFC 9728 document for the base URL

	tracer trace.Tracer // nil: tracing off
}

// New checks opts and builds the server.
func New(opts Options) (*Server, error) {
	cfg := opts.Config
	if cfg == nil || opts.Store == nil || opts.Ring == nil {
		return nil, errors.New("oauthsrv: Config, Store and Ring are required")
	}
	base, err := url.Parse(cfg.PublicURL)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" ||
		strings.HasSuffix(cfg.PublicURL, "/") || base.RawQuery != "" || base.Fragment != "" {
		return nil, fmt.Errorf("oauthsrv: public_url %q must be an absolute http(s) URL without trailing slash", cfg.PublicURL)
	}
	if opts.Ring.Issuer() != cfg.PublicURL {
		return nil, fmt.Errorf("oauthsrv: token ring issuer %q differs from public_url %q", opts.Ring.Issuer(), cfg.PublicURL)
	}
	if len(cfg.Scopes) == 0 {
		return nil, errors.New("oauthsrv: at least one scope is required")
	}
	s := &Server{
		cfg:    cfg,
		st:     opts.Store,
		ring:   opts.Ring,
		agents: opts.Agents,
		log:    opts.Logger,
		now:    opts.Now,
		issuer: cfg.PublicURL,
		res:    resource.New(cfg.PublicURL),
		base:   base,
		secure: base.Scheme == "https",
		scopes: cfg.ScopeNames(),

		introspect: opts.Introspector,
		tracer:     opts.Tracer,
		tagged:     store.TagsSecrets(opts.Store),
	}
	s.baseScopes = store.GatewayBaseScopes(s.scopes, cfg.Agents)
	s.basePath = strings.TrimSuffix(base.Path, "/")
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.sessionCookie, s.browserCookie = "mcpgw_session", "mcpgw_browser"
	if s.secure {
		// __Host-: only settable by this exact host over https, Path=/.
		s.sessionCookie, s.browserCookie = "__Host-"+s.sessionCookie, "__Host-"+s.browserCookie
	}
	s.hops = max(cfg.TrustedHops, 1)
	for i, p := range cfg.TrustedProxies {
		pfx, err := netip.ParsePrefix(p)
		if err != nil {
			return nil, fmt.Errorf("oauthsrv: trusted_proxies[%d]: %w", i, err)
		}
		s.proxies = append(s.proxies, pfx.Masked())
	}
	s.corsOrigins = map[string]bool{}
	for _, o := range cfg.CORS.AllowedOrigins {
		if o == "*" {
			s.corsAny = true
		}
		s.corsOrigins[o] = true
	}
	if s.pages, err = loadPages(); err != nil {
		return nil, err
	}
	if err := s.buildMetadata(); err != nil {
		return nil, err
	}
	if cfg.CIMD.Enabled {
		if s.cimd, err = newCIMDResolver(s, cfg.CIMD, opts.CIMDRootCAs); err != nil {
			return nil, err
		}
	}
	newLogin := opts.Login
	if newLogin == nil {
		switch cfg.Login.Provider {
		case "", "builtin":
			users := opts.Users
			if users == nil {
				users = map[string]string{}
				for _, u := range cfg.Login.Users {
					users[u.Username] = u.PasswordHash
				}
			}
			groups := map[string][]string{}
			for _, u := range cfg.Login.Users {
				groups[u.Username] = u.Groups
			}
			newLogin = func(s *Server) (LoginProvider, error) { return newBuiltinLogin(s, users, groups) }
		case config.LoginOIDC, config.LoginWebApp:
			// Implemented in package login, which imports this one.
			return nil, fmt.Errorf("oauthsrv: login provider %q needs Options.Login (login.Provider)", cfg.Login.Provider)
		default:
			return nil, fmt.Errorf("oauthsrv: unknown login provider %q (want builtin, oidc or webapp)", cfg.Login.Provider)
		}
	}
	if s.login, err = newLogin(s); err != nil {
		return nil, fmt.Errorf("oauthsrv: login provider: %w", err)
	}
	return s, nil
}

// Issuer is the authorization server's issuer (the public URL).
func (s *Server) Issuer() string { return s.issuer }

// Handler mounts every path of the authorization server. Unknown paths
// answer 404 with a JSON body.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	get := "GET, HEAD, OPTIONS"
	post := "POST, OPTIONS"
	handle := func(path, endpoint string, h http.Handler) {
		if s.tracer == nil {
			h = instrument(endpoint, h)
		} else {
			h = s.traced(path, endpoint, h) // counts the request too
		}
		mux.Handle(path, h)
	}

	// Each document at its well-known path and below it: an issuer's or
	// resource's path follows the name (resource.Base.WellKnown).
	as, prm := resource.WellKnownPath(resource.AuthorizationServer), resource.WellKnownPath(resource.ProtectedResource)
	handle(as, "as_metadata", s.cors(get, http.HandlerFunc(s.handleASMetadata)))
	handle(as+"/", "as_metadata", s.cors(get, http.HandlerFunc(s.handleASMetadata)))
	handle(prm, "prm", s.cors(get, http.HandlerFunc(s.handlePRM)))
	handle(prm+"/", "prm", s.cors(get, http.HandlerFunc(s.handlePRM)))
	handle("/.well-known/", "not_found", s.cors(get, http.HandlerFunc(s.handleNotFound)))
	handle("/oauth/register", "register", s.cors(post, http.HandlerFunc(s.handleRegister)))
	handle("/oauth/token", "token", s.cors(post, http.HandlerFunc(s.handleToken)))
	handle("/oauth/revoke", "revoke", s.cors(post, http.HandlerFunc(s.handleRevoke)))
	if s.introspect != nil {
		handle("/oauth/introspect", "introspect", http.HandlerFunc(s.handleIntrospect))
	}
	handle("/oauth/authorize", "authorize", http.HandlerFunc(s.handleAuthorize))
	handle("/consent", "consent", http.HandlerFunc(s.handleConsent))
	handle("/account", "account", http.HandlerFunc(s.handleAccount))
	handle("/account/", "account", http.HandlerFunc(s.handleAccountAction))
	for path, h := range s.login.Routes() {
		handle(path, strings.Trim(strings.ReplaceAll(path, "/", "_"), "_"), h)
	}
	handle("/", "not_found", http.HandlerFunc(s.handleNotFound))
	return mux
}

func (s *Server) handleNotFound(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusNotFound, errorBody{Error: "not_found", Description: "no such endpoint"})
}

// clientIP is the request's peer address or, when the peer is a trusted
// proxy, the X-Forwarded-For entry trusted_hops from the right: each of our
// proxies appends the address it saw, so only those last entries were
// written by them; anything further left came from the client, who can
// write any address, private or not. A list too short for the hops, or an
// entry that is not an address, leaves the peer's address.
func (s *Server) clientIP(r *http.Request) string {
	peer, err := netip.ParseAddrPort(r.RemoteAddr)
	var addr netip.Addr
	if err == nil {
		addr = peer.Addr().Unmap()
	} else if a, err := netip.ParseAddr(r.RemoteAddr); err == nil {
		addr = a.Unmap()
	} else {
		return r.RemoteAddr
	}
	if !s.trusted(addr) {
		return addr.String()
	}
	lines := r.Header.Values("X-Forwarded-For")
	if len(lines) == 0 {
		return addr.String()
	}
	hops := strings.Split(strings.Join(lines, ","), ",")
	if len(hops) < s.hops {
		return addr.String()
	}
	if a, ok := parseHop(hops[len(hops)-s.hops]); ok {
		return a.String()
	}
	return addr.String()
}

// parseHop reads one X-Forwarded-For entry: an address, or an address with
// a port as some load balancers write it.
func parseHop(v string) (netip.Addr, bool) {
	v = strings.TrimSpace(v)
	if a, err := netip.ParseAddr(v); err == nil {
		return a.Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(v); err == nil {
		return ap.Addr().Unmap(), true
	}
	return netip.Addr{}, false
}

func (s *Server) trusted(a netip.Addr) bool {
	for _, p := range s.proxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// rateLimit counts one hit on key. limited reports a refusal with the time
// until the window ends; limit ≤ 0 disables the check.
func (s *Server) rateLimit(ctx context.Context, key string, limit int, window time.Duration) (limited bool, retry time.Duration, err error) {
	if limit <= 0 {
		return false, 0, nil
	}
	ok, retry, err := s.st.Allow(ctx, key, limit, window)
	if err != nil {
		return false, 0, fmt.Errorf("rate limit: %w", err)
	}
	return !ok, retry, nil
}

// limitIP counts one request from the client's IP against endpoint's
// per-minute limit. When the request may not go on — over the limit (429
// with Retry-After) or the store failing (503) — it has answered, as an
// HTML page or as an OAuth JSON error, and returns pass false; limited
// tells the two apart.
func (s *Server) limitIP(w http.ResponseWriter, r *http.Request, endpoint string, limit int, page bool) (pass, limited bool) {
	ctx := r.Context()
	limited, retry, err := s.rateLimit(ctx, "rl:"+endpoint+":"+s.clientIP(r), limit, time.Minute)
	switch {
	case err != nil && page:
		s.storeError(ctx, "rate_limit", err)
		s.pageUnavailable(w)
	case err != nil:
		s.writeError(ctx, w, err)
	case limited && page:
		s.pageRateLimited(w, endpoint, retry)
	case limited:
		writeRateLimited(w, endpoint, retry)
	default:
		return true, false
	}
	return false, limited
}

// audit writes one audit line. Never pass a secret.
func (s *Server) audit(ctx context.Context, event string, attrs ...slog.Attr) {
	s.log.LogAttrs(ctx, slog.LevelInfo, "audit", append([]slog.Attr{slog.String("event", event)}, attrs...)...)
}

// storeError logs a failed store operation; the caller answers 503.
func (s *Server) storeError(ctx context.Context, op string, err error) {
	lvl := slog.LevelError
	if errors.Is(err, store.ErrUnavailable) {
		lvl = slog.LevelWarn
	}
	s.log.LogAttrs(ctx, lvl, "store operation failed", slog.String("op", op), slog.String("err", err.Error()))
}

// resourceAgent returns the agent id of a canonical resource URL, or "" for
// the gateway-wide audience.
func (s *Server) resourceAgent(u string) string {
	id, _, _ := s.res.Parse(u)
	return id
}

// pathURL is an absolute URL of one of our paths.
func (s *Server) pathURL(path string) string { return s.issuer + path }
