package oauthsrv

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/mcpgateway/mcp-gateway/store"
	"github.com/mcpgateway/mcp-gateway/token"
)

// Introspector decides whether an access token is active for an agent
// ("" for the admin: any agent). authz.Authorizer implements it, so an
// introspection answers exactly what the Check would decide.
type Introspector interface {
	Introspect(ctx context.Context, raw, agent string) (*token.Claims, bool)
}

// introspection is the RFC 7662 §2.2 answer.
type introspection struct {
	Active    bool     `json:"active"`
	Scope     string   `json:"scope,omitempty"`
	ClientID  string   `json:"client_id,omitempty"`
	Username  string   `json:"username,omitempty"`
	TokenType string   `json:"token_type,omitempty"`
	Exp       int64    `json:"exp,omitempty"`
	Iat       int64    `json:"iat,omitempty"`
	Nbf       int64    `json:"nbf,omitempty"`
	Sub       string   `json:"sub,omitempty"`
	Aud       []string `json:"aud,omitempty"`
	Iss       string   `json:"iss,omitempty"`
	Jti       string   `json:"jti,omitempty"`
}

func (s *Server) introspectionURL() string {
	if s.introspect == nil {
		return ""
	}
	return s.pathURL("/oauth/introspect")
}

func (s *Server) introspectionAuthMethods() []string {
	if s.introspect == nil {
		return nil
	}
	// An agent's bak_ key (or the admin token) as a Bearer credential.
	return []string{"bearer"}
}

// maxIntrospectToken bounds the token parameter; longer is not ours.
const maxIntrospectToken = 8 << 10

// handleIntrospect implements RFC 7662 for resource servers: the caller
// authenticates with an agent's bak_ key and learns about access tokens
// issued for that agent only — any other token, or one the Check would
// refuse there, is {"active": false}. The admin token sees every token.
func (s *Server) handleIntrospect(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		writeMethodNotAllowed(w, "POST")
		return
	}
	if pass, _ := s.limitIP(w, r, "introspect", s.cfg.RateLimit.Introspect, false); !pass {
		return
	}
	ctx := r.Context()
	agent, ok, err := s.introspectCaller(ctx, r.Header.Get("Authorization"))
	if err != nil {
		s.writeError(ctx, w, fmt.Errorf("get key: %w", err))
		return
	}
	if !ok {
		s.writeError(ctx, w, &oauthError{status: http.StatusUnauthorized, code: "invalid_client",
			description: "introspection needs an agent API key (bak_…) or the admin token as a Bearer credential",
			header:      map[string]string{"WWW-Authenticate": `Bearer realm="introspection"`}})
		return
	}
	form, err := readForm(w, r)
	if err != nil {
		s.writeError(ctx, w, err)
		return
	}
	raw := form.Get("token")
	if raw == "" {
		s.writeError(ctx, w, badRequest("invalid_request", "token is required"))
		return
	}
	var out introspection
	if len(raw) <= maxIntrospectToken {
		if c, active := s.introspect.Introspect(ctx, raw, agent); active {
			out = introspection{
				Active: true, Scope: c.Scope, ClientID: c.ClientID, Username: c.Subject, TokenType: "Bearer",
				Sub: c.Subject, Aud: c.Audience, Iss: c.Issuer, Jti: c.ID,
			}
			if c.ExpiresAt != nil {
				out.Exp = c.ExpiresAt.Unix()
			}
			if c.IssuedAt != nil {
				out.Iat = c.IssuedAt.Unix()
			}
			if c.NotBefore != nil {
				out.Nbf = c.NotBefore.Unix()
			}
		}
	}
	s.log.LogAttrs(ctx, slog.LevelDebug, "introspection", slog.String("caller_agent", agent), slog.Bool("active", out.Active))
	writeJSON(w, http.StatusOK, out)
}

// introspectCaller authenticates the caller: an agent key gives its agent,
// the admin token "" (every agent). ok false: no valid credential.
func (s *Server) introspectCaller(ctx context.Context, authz string) (agent string, ok bool, err error) {
	scheme, cred, found := strings.Cut(strings.TrimSpace(authz), " ")
	cred = strings.TrimSpace(cred)
	if !found || !strings.EqualFold(scheme, "bearer") || cred == "" || len(cred) > 256 {
		return "", false, nil
	}
	// Digests of equal length: comparing the raw strings would tell the
	// token's length by how fast unequal lengths are refused.
	if admin := s.cfg.AdminToken; admin != "" && subtle.ConstantTimeCompare([]byte(token.Hash(cred)), []byte(token.Hash(admin))) == 1 {
		return "", true, nil
	}
	if !strings.HasPrefix(cred, token.PrefixAgentKey) {
		return "", false, nil
	}
	// Looked up by hash: the comparison is the store's exact match of a
	// SHA-256 digest, never of the secret itself.
	k, err := s.st.GetKeyByHash(ctx, token.Hash(cred))
	if errors.Is(err, store.ErrNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	if k.Kind != store.KeyAgent || k.Agent == "" || k.Revoked || (!k.ExpiresAt.IsZero() && !s.now().Before(k.ExpiresAt)) {
		return "", false, nil
	}
	return k.Agent, true, nil
}
