package oauthsrv

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/mcpgateway/mcp-gateway/store"
)

// touchSlack is how close to a full idle period a client's expiry may be
// without a renewal: such a client was renewed moments ago, and skipping
// the write keeps hot clients cheap.
const touchSlack = time.Minute

// lookupClient resolves a client_id: a Client ID Metadata Document for URL
// ids (when CIMD is enabled), else the registration record. touch renews an
// expiring registered client (any use of it counts). Errors: ErrNotFound,
// a *cimdError (explainable refusal) or a store failure.
func (s *Server) lookupClient(ctx context.Context, id string, touch bool) (*store.Client, error) {
	if s.cimd != nil && isURLClientID(id) {
		return s.cimd.resolve(ctx, id)
	}
	c, err := s.st.GetClient(ctx, id)
	if err != nil {
		return nil, err
	}
	idle := s.cfg.Clients.IdleTTL.D()
	if touch && idle > 0 && !c.ExpiresAt.IsZero() && c.ExpiresAt.Sub(s.now()) < idle-touchSlack {
		err := s.st.TouchClient(ctx, c.ID, idle)
		if errors.Is(err, store.ErrNotFound) {
			return nil, err // expired between the two calls
		}
		if err != nil { // the client is valid; renewal is retried on its next use
			s.storeError(ctx, "touch_client", err)
		}
	}
	return c, nil
}

// isCIMDClient reports whether client id was described by a metadata document.
func (s *Server) isCIMDClient(id string) bool { return s.cimd != nil && isURLClientID(id) }

// clientHost is the host serving a CIMD client's document ("" otherwise):
// the identity the user can check on the consent page.
func (s *Server) clientHost(id string) string {
	if !s.isCIMDClient(id) {
		return ""
	}
	u, err := url.Parse(id)
	if err != nil {
		return ""
	}
	return u.Host
}

// unverifiedName reports whether the name of client id is only what an
// anonymous dynamic registration (RFC 7591) claimed, so a curl-registered "Claude Desktop"
// must not look like the real one. A CIMD client is vouched for by the host
// of its document (shown instead); the account login has no client.
func (s *Server) unverifiedName(id string) bool {
	return id != accountClientID && !s.isCIMDClient(id)
}

// onlyLoopbackRedirects reports whether every redirect URI stays on this
// device, so that any local program could claim to be this client (CIMD
// security considerations).
func onlyLoopbackRedirects(uris []string) bool {
	if len(uris) == 0 {
		return false
	}
	for _, raw := range uris {
		u, err := url.Parse(raw)
		if err != nil || !isLoopbackHost(u.Hostname()) {
			return false
		}
	}
	return true
}

// displayName names a client for pages: its name, else its id.
func displayName(c *store.Client) string {
	if c.Name != "" {
		return c.Name
	}
	return "an unnamed application (" + c.ID + ")"
}

// clientLabel names a client for the login page and the account page
// without failing: the account login has no client.
func (s *Server) clientLabel(ctx context.Context, id string) (string, error) {
	if id == accountClientID {
		return "your account", nil
	}
	c, err := s.lookupClient(ctx, id, false)
	var ce *cimdError
	if errors.As(err, &ce) { // the document broke since authorize: still name its host
		return "the application at " + s.clientHost(id), nil
	}
	if err != nil {
		return "", err
	}
	return displayName(c), nil
}

// clientRefusal logs why a client could not be used and returns the text
// shown to the user or the client.
func (s *Server) clientRefusal(ctx context.Context, id string, err error) (desc string, ok bool) {
	var ce *cimdError
	if errors.As(err, &ce) {
		s.audit(ctx, "client_metadata_rejected", slog.String("client_id", trunc(id, 256)), slog.String("reason", ce.msg))
		return fmt.Sprintf("The application's client metadata document at %s cannot be used: %s.", trunc(id, 256), ce.msg), true
	}
	return "", false
}
