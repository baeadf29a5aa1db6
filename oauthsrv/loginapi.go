package oauthsrv

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"github.com/mcpgateway/mcp-gateway/store"
)

// What login providers outside this package (package login) call besides
// Pending, CompleteLogin and ErrorPage.

// FailLogin ends pending request p (obtained from Pending) without a user:
// it deletes the request, writes a "login_failed" audit line with attrs and
// answers the OAuth error code (access_denied, temporarily_unavailable) with
// description: a redirect to the client's redirect URI with state and iss
// when the user approved it before, else an error page linking back
// (failAuthorization).
func (s *Server) FailLogin(w http.ResponseWriter, r *http.Request, p *store.AuthRequest, code, description string, attrs ...slog.Attr) {
	ctx := r.Context()
	if _, err := s.st.TakeAuthRequest(ctx, p.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
		s.storeError(ctx, "take_auth_request", err)
	}
	s.audit(ctx, "login_failed", append([]slog.Attr{slog.String("client_id", p.ClientID), slog.String("ip", s.clientIP(r)),
		slog.String("error", code)}, attrs...)...)
	s.failAuthorization(w, r, p, "", code, description)
}

// Audit writes one audit line (msg "audit", event, attrs) on the server's
// logger. Never pass a secret.
func (s *Server) Audit(ctx context.Context, event string, attrs ...slog.Attr) {
	s.audit(ctx, event, attrs...)
}

// ClientIP is the request's client address as the server judges it
// (trusted proxies honoured), for audit lines.
func (s *Server) ClientIP(r *http.Request) string { return s.clientIP(r) }
