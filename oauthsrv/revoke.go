package oauthsrv

import (
	"errors"
	"log/slog"
	"net/http"
	"strings"

	"github.com/mcpgateway/mcp-gateway/metrics"
	"github.com/mcpgateway/mcp-gateway/store"
	"github.com/mcpgateway/mcp-gateway/token"
)

// handleRevoke implements RFC 7009 for public clients: holding the token is
// the proof. A refresh token revokes its whole family and every access
// token issued from it (RFC 7009 §2.1); an access token is denylisted by
// jti until it expires. Unknown tokens answer 200 like revoked ones.
func (s *Server) handleRevoke(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		writeMethodNotAllowed(w, "POST, OPTIONS")
		return
	}
	ctx := r.Context()
	form, ok := readForm(w, r)
	if !ok {
		return
	}
	tok := form.Get("token")
	if tok == "" {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "token is required")
		return
	}
	clientID := form.Get("client_id")
	if u, _, ok := r.BasicAuth(); ok && clientID == "" {
		clientID = u
	}
	done := func() {
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
	}
	if len(tok) > 8<<10 {
		done() // not one of ours
		return
	}
	// Our refresh tokens are opaque; access tokens are JWTs. The hint only
	// orders the lookups (RFC 7009 §2.1), so no answer depends on it.
	if strings.Count(tok, ".") != 2 {
		f, err := s.st.LookupRefresh(ctx, token.Address(tok))
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			s.storeError(ctx, "lookup_refresh", err)
			writeUnavailable(w)
			return
		}
		if err == nil {
			if clientID != "" && clientID != f.ClientID {
				writeOAuthError(w, http.StatusBadRequest, "unauthorized_client", "the token was not issued to this client")
				return
			}
			if !f.Revoked {
				if err := s.revokeGrant(ctx, f.ID, f.AccessExp.Add(token.Leeway), "client_request"); err != nil {
					s.storeError(ctx, "revoke_family", err)
					writeUnavailable(w)
					return
				}
				s.audit(ctx, "token_revoked", slog.String("kind", "refresh_family"), slog.String("user", f.UserID),
					slog.String("client_id", f.ClientID), slog.String("resource", f.Resource), slog.String("reason", "client_request"))
			}
		}
		done()
		return
	}
	c, err := s.ring.Verify(tok)
	if err != nil {
		done() // expired (nothing left to revoke) or not ours
		return
	}
	if clientID != "" && clientID != c.ClientID {
		writeOAuthError(w, http.StatusBadRequest, "unauthorized_client", "the token was not issued to this client")
		return
	}
	exp := c.ExpiresAt.Time.Add(token.Leeway) // verifiers accept it until exp + leeway
	if err := s.st.RevokeJTI(ctx, c.ID, exp); err != nil {
		s.storeError(ctx, "revoke_jti", err)
		writeUnavailable(w)
		return
	}
	metrics.TokensRevoked.WithLabelValues("access_token", "client_request").Inc()
	resource := ""
	if len(c.Audience) > 0 {
		resource = c.Audience[0]
	}
	s.audit(ctx, "token_revoked", slog.String("kind", "access_token"), slog.String("user", c.Subject),
		slog.String("client_id", c.ClientID), slog.String("resource", resource), slog.String("reason", "client_request"))
	done()
}
