package oauthsrv

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"github.com/mcpgateway/mcp-gateway/store"
)

// oauthError is a refusal the client is told about: the status and the
// RFC 6749 §5.2 error code and description of the JSON answer. Endpoint
// logic returns it; writeError alone renders it.
type oauthError struct {
	status      int
	code        string
	description string
	// header holds response headers the answer needs (WWW-Authenticate,
	// Retry-After, Allow, Connection).
	header map[string]string
}

// write renders e: its headers, then its JSON body.
func (e *oauthError) write(w http.ResponseWriter) {
	for k, v := range e.header {
		w.Header().Set(k, v)
	}
	writeOAuthError(w, e.status, e.code, e.description)
}

// Error implements error.
func (e *oauthError) Error() string { return e.code + ": " + e.description }

// errOAuth returns an oauthError answering status with code and desc.
func errOAuth(status int, code, desc string) error {
	return &oauthError{status: status, code: code, description: desc}
}

// badRequest returns a 400 oauthError with code and desc.
func badRequest(code, desc string) error { return errOAuth(http.StatusBadRequest, code, desc) }

// Refusals returned more than once.
var (
	errBadCode    = badRequest("invalid_grant", "invalid authorization code")
	errBadRefresh = badRequest("invalid_grant", "invalid refresh token")
	errNotTheirs  = badRequest("unauthorized_client", "the token was not issued to this client")
)

// writeError answers err as an OAuth JSON error. An oauthError is sent as
// it is; a store outage (store.ErrUnavailable) is 503
// temporarily_unavailable with Retry-After, the client being right to
// retry; anything else is a bug or a corrupt record, logged and answered
// 500 server_error without its text, which may name internals.
func (s *Server) writeError(ctx context.Context, w http.ResponseWriter, err error) {
	var oe *oauthError
	switch {
	case errors.As(err, &oe):
		oe.write(w)
	case errors.Is(err, store.ErrUnavailable):
		s.log.LogAttrs(ctx, slog.LevelWarn, "store unavailable", slog.String("err", err.Error()))
		writeUnavailable(w)
	default:
		s.log.LogAttrs(ctx, slog.LevelError, "internal error", slog.String("err", err.Error()))
		writeOAuthError(w, http.StatusInternalServerError, "server_error", "internal error")
	}
}
