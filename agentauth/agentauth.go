// Package agentauth is for the authors of agents (MCP servers) behind MCP
// Gateway: it verifies the identity assertion the gateway adds to every
// request it lets through (the x-mcp-identity header, an ES256 JWT), so an
// agent trusts the gateway's word rather than whatever reached its port.
//
//	v, err := agentauth.New(agentauth.Options{
//		Issuer:   "https://mcp.example.com",              // the gateway's public_url
//		Audiences: []string{"https://mcp.example.com/weather/mcp"}, // this agent's MCP URL
//	})
//	http.Handle("/mcp", v.Middleware(mcpHandler))
//	// in a handler: id, _ := agentauth.FromContext(r.Context()); id.Subject …
//
// The public keys come from the gateway's /.well-known/jwks.json, fetched
// on first use, refreshed periodically and on an unknown kid (rate-limited).
package agentauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Header is the request header carrying the assertion.
const Header = "X-Mcp-Identity"

// Type is the assertion's JOSE "typ" header (RFC 8725 §3.11 explicit
// typing): no other JWT of the gateway's — its HS256 access tokens have the
// same iss and aud — can pass for an assertion.
const Type = "mcp-identity+jwt"

// Alg is the one signature algorithm an assertion may use.
const Alg = "ES256"

// MaxLen bounds the header value parsed at all.
const MaxLen = 4096

// Claims are an assertion's claims as the gateway writes them.
type Claims struct {
	jwt.RegisteredClaims
	ClientID   string `json:"client_id,omitempty"`
	Scope      string `json:"scope,omitempty"`
	Credential string `json:"credential"`
}

// Identity is a verified assertion: who the gateway let through.
type Identity struct {
	Issuer     string
	Audience   string
	Subject    string // the user ("" for an agent key issued without one)
	ClientID   string // the OAuth client, or the API key's id
	Scope      string // space-separated granted scopes
	Credential string // oauth, agent_key or user_key
	ID         string // jti
	IssuedAt   time.Time
	ExpiresAt  time.Time
}

// Errors Verify wraps; the middleware answers 403 to all of them.
var (
	ErrMissing = errors.New("agentauth: no identity assertion")
	ErrInvalid = errors.New("agentauth: invalid identity assertion")
)

// Options configure a Verifier. Issuer and Audiences are required.
type Options struct {
	// Issuer is the gateway's public URL (its config public_url).
	Issuer string
	// Audiences are this agent's resource URLs, <public_url>/<agent id>/mcp:
	// usually one; more when one server backs several agent ids. An
	// assertion for any other agent is refused.
	Audiences []string
	// JWKSURL is where the public keys are fetched; default
	// <Issuer>/.well-known/jwks.json. Set it when the agent reaches the
	// gateway by another (internal) address.
	JWKSURL string
	// HTTPClient fetches the JWKS; default a client with a 5s timeout.
	HTTPClient *http.Client
	// Leeway tolerated on exp and iat for clock skew; default 30s.
	Leeway time.Duration
	// RefreshInterval: how long a fetched key set is used before it is
	// fetched again; default 10m.
	RefreshInterval time.Duration
	// MinRefetchInterval bounds fetches triggered by an unknown kid, so
	// tokens with made-up kids cannot make the agent hammer the gateway;
	// default 30s.
	MinRefetchInterval time.Duration
	// Logger receives JWKS fetch failures; default slog.Default().
	Logger *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Verifier checks assertions. It is safe for concurrent use.
type Verifier struct {
	issuer string
	keys   *keySet
	parser *jwt.Parser
	log    *slog.Logger
}

// New checks opts and returns a Verifier. It fetches nothing yet.
func New(opts Options) (*Verifier, error) {
	if err := absURL(opts.Issuer); err != nil {
		return nil, fmt.Errorf("agentauth: Issuer: %w", err)
	}
	if len(opts.Audiences) == 0 {
		return nil, errors.New("agentauth: Audiences: at least one is required")
	}
	for _, a := range opts.Audiences {
		if err := absURL(a); err != nil {
			return nil, fmt.Errorf("agentauth: Audiences: %w", err)
		}
	}
	issuer := strings.TrimRight(opts.Issuer, "/")
	if opts.JWKSURL == "" {
		opts.JWKSURL = issuer + "/.well-known/jwks.json"
	} else if err := absURL(opts.JWKSURL); err != nil {
		return nil, fmt.Errorf("agentauth: JWKSURL: %w", err)
	}
	def := func(d, v time.Duration) time.Duration {
		if d > 0 {
			return d
		}
		return v
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: 5 * time.Second}
	}
	v := &Verifier{
		issuer: issuer,
		log:    opts.Logger,
		keys: &keySet{
			url: opts.JWKSURL, client: opts.HTTPClient, now: opts.Now, log: opts.Logger,
			refresh: def(opts.RefreshInterval, 10*time.Minute), minRefetch: def(opts.MinRefetchInterval, 30*time.Second),
		},
	}
	v.parser = jwt.NewParser(
		jwt.WithValidMethods([]string{Alg}),
		jwt.WithIssuer(issuer),
		jwt.WithAudience(opts.Audiences...), // any one of them
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(def(opts.Leeway, 30*time.Second)),
		jwt.WithStrictDecoding(),
		jwt.WithTimeFunc(opts.Now),
	)
	return v, nil
}

func absURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an absolute http(s) URL", s)
	}
	return nil
}

// Verify checks one assertion: ES256 signature by a key of the gateway's
// JWKS, typ, iss, aud (this agent only), exp and iat.
func (v *Verifier) Verify(ctx context.Context, raw string) (*Identity, error) {
	if raw == "" {
		return nil, ErrMissing
	}
	if len(raw) > MaxLen {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrInvalid, MaxLen)
	}
	var c Claims
	_, err := v.parser.ParseWithClaims(raw, &c, func(t *jwt.Token) (any, error) {
		if typ, _ := t.Header["typ"].(string); typ != Type {
			return nil, fmt.Errorf("typ %q is not %q", typ, Type)
		}
		kid, _ := t.Header["kid"].(string)
		return v.keys.get(ctx, kid)
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if c.IssuedAt == nil || len(c.Audience) != 1 || c.Credential == "" {
		return nil, fmt.Errorf("%w: iat, credential and exactly one aud are required", ErrInvalid)
	}
	return &Identity{
		Issuer: c.Issuer, Audience: c.Audience[0], Subject: c.Subject, ClientID: c.ClientID,
		Scope: c.Scope, Credential: c.Credential, ID: c.ID,
		IssuedAt: c.IssuedAt.Time, ExpiresAt: c.ExpiresAt.Time,
	}, nil
}

type ctxKey struct{}

// NewContext returns ctx carrying id.
func NewContext(ctx context.Context, id *Identity) context.Context {
	return context.WithValue(ctx, ctxKey{}, id)
}

// FromContext returns the identity the middleware verified.
func FromContext(ctx context.Context) (*Identity, bool) {
	id, ok := ctx.Value(ctxKey{}).(*Identity)
	return id, ok && id != nil
}

// Middleware verifies the assertion of every request and passes it on with
// the identity in its context (FromContext); a request whose assertion is
// missing or invalid gets 403 and never reaches next.
func (v *Verifier) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := v.Verify(r.Context(), r.Header.Get(Header))
		if err != nil {
			v.log.LogAttrs(r.Context(), slog.LevelInfo, "agentauth: request refused", slog.String("err", err.Error()))
			refuse(w, "missing or invalid "+strings.ToLower(Header)+" assertion: this agent is reached through MCP Gateway only")
			return
		}
		next.ServeHTTP(w, r.WithContext(NewContext(r.Context(), id)))
	})
}

func refuse(w http.ResponseWriter, desc string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusForbidden)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": "forbidden", "error_description": desc})
}
