package oauthsrv

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/mcpgateway/mcp-gateway/internal/metrics"
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
	form, err := readForm(w, r)
	if err != nil {
		s.writeError(r.Context(), w, err)
		return
	}
	clientID := form.Get("client_id")
	if u, basic := basicUser(r); basic && clientID == "" {
		clientID = u
	}
	if err = s.revoke(r.Context(), form.Get("token"), clientID); err != nil {
		s.writeError(r.Context(), w, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
}

// revoke revokes tok on behalf of clientID ("" when the client did not say
// who it is). A token that is not ours, or no longer live, is no error.
func (s *Server) revoke(ctx context.Context, tok, clientID string) error {
	if tok == "" {
		return badRequest("invalid_request", "token is required")
	}
	if len(tok) > 8<<10 {
		return nil // not one of ours
	}
	// Our refresh tokens are opaque; access tokens are JWTs. The hint only
	// orders the lookups (RFC 7009 §2.1), so no answer depends on it.
	if strings.Count(tok, ".") != 2 {
		return s.revokeRefresh(ctx, tok, clientID)
	}
	c, err := s.ring.Verify(tok)
	if err != nil {
		return nil // expired (nothing left to revoke) or not ours
	}
	if clientID != "" && clientID != c.ClientID {
		return errNotTheirs
	}
	exp := c.ExpiresAt.Time.Add(token.Leeway) // verifiers accept it until exp + leeway
	if err := s.st.RevokeJTI(ctx, c.ID, exp); err != nil {
		return fmt.Errorf("revoke jti: %w", err)
	}
	metrics.TokensRevoked.WithLabelValues("access_token", "client_request").Inc()
	resource := ""
	if len(c.Audience) > 0 {
		resource = c.Audience[0]
	}
	s.audit(ctx, "token_revoked", slog.String("kind", "access_token"), slog.String("user", c.Subject),
		slog.String("client_id", c.ClientID), slog.String("resource", resource), slog.String("reason", "client_request"))
	return nil
}

// revokeRefresh revokes the family of refresh token tok, and every access
// token of it, on behalf of clientID.
func (s *Server) revokeRefresh(ctx context.Context, tok, clientID string) error {
	f, err := s.st.LookupRefresh(ctx, token.Address(tok))
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("lookup refresh: %w", err)
	}
	if clientID != "" && clientID != f.ClientID {
		return errNotTheirs
	}
	if f.Revoked {
		return nil
	}
	if err := s.revokeGrant(ctx, f.ID, f.AccessExp.Add(token.Leeway), "client_request"); err != nil {
		return fmt.Errorf("revoke family: %w", err)
	}
	s.audit(ctx, "token_revoked", slog.String("kind", "refresh_family"), slog.String("user", f.UserID),
		slog.String("client_id", f.ClientID), slog.String("resource", f.Resource), slog.String("reason", "client_request"))
	return nil
}
