package oauthsrv

import (
	"context"
	"html/template"
	"net/http"
	"net/url"

	"github.com/mcpgateway/mcp-gateway/store"
)

// Which redirect URIs the gateway trusts, in one place.
//
// Anyone can register a client (RFC 7591, anonymously) or publish a client
// metadata document, so "registered" says nothing about who receives what
// is sent to a redirect URI. The user's approval does:
//
//   - Remembered consent skips the consent page only for an https redirect
//     URI byte-equal to the one approved (rememberable). A loopback or
//     private-use-scheme redirect reaches whatever program listens on that
//     port or claims that scheme on the device (RFC 8252 §8.6), so its
//     consent is never remembered: the page is shown every time (one click;
//     the login session still spares the password).
//   - Authorization errors are redirected to the client only when the
//     redirect URI is trusted (RFC 9700 §4.11.2): the user approved this
//     client at this exact redirect URI, on this request's consent page
//     (Deny, or a failure after Approve: the page showed where it returns)
//     or earlier (a remembered consent of the browser's signed-in user).
//     Before that, every error, whether a malformed request, an agent the
//     user may not use or a failed login, is an HTML page; its link back
//     carries the same error, so the user, not the gateway, decides to go
//     there.

// rememberable reports whether an approval for redirectURI may be
// remembered and reused without asking: https only.
func rememberable(redirectURI string) bool {
	u, err := url.Parse(redirectURI)
	return err == nil && u.Scheme == "https" && u.Host != ""
}

// rememberedConsent reports whether user approved p's client at p's exact
// redirect URI for p's resource and every scope of p before.
func (s *Server) rememberedConsent(ctx context.Context, user string, p *store.AuthRequest) (bool, error) {
	if !rememberable(p.RedirectURI) {
		return false, nil
	}
	return s.st.HasConsent(ctx, &store.Consent{UserID: user, ClientID: p.ClientID, RedirectURI: p.RedirectURI, Resource: p.Resource, Scope: p.Scope})
}

// trustedRedirect reports whether user has a remembered consent for
// clientID at exactly redirectURI (any resource, any scope).
func (s *Server) trustedRedirect(ctx context.Context, user, clientID, redirectURI string) (bool, error) {
	if user == "" || !rememberable(redirectURI) {
		return false, nil
	}
	cs, err := s.st.ListConsents(ctx, user)
	if err != nil {
		return false, err
	}
	for _, c := range cs {
		if c.ClientID == clientID && c.RedirectURI == redirectURI {
			return true, nil
		}
	}
	return false, nil
}

// failAuthorization answers an OAuth error for pending request p (client
// and redirect URI validated): a redirect to the client when the redirect
// URI is trusted for user (the browser's session user when ""), else an
// error page with a link back. The account login returns to our own page.
func (s *Server) failAuthorization(w http.ResponseWriter, r *http.Request, p *store.AuthRequest, user, code, desc string) {
	ctx := r.Context()
	if p.ClientID == accountClientID {
		s.redirectError(w, r, p.RedirectURI, p.State, code, desc)
		return
	}
	if user == "" {
		u, err := s.sessionUser(r)
		if err != nil {
			s.storeError(ctx, "get_session", err) // untrusted then: the page is the safe answer
		}
		user = u
	}
	trusted, err := s.trustedRedirect(ctx, user, p.ClientID, p.RedirectURI)
	if err != nil {
		s.storeError(ctx, "list_consents", err)
	}
	if trusted {
		s.redirectError(w, r, p.RedirectURI, p.State, code, desc)
		return
	}
	s.authorizationErrorPage(w, p, code, desc)
}

// authorizationErrorPage shows an OAuth error as a page: what went wrong,
// that the application was not approved, and a link back to it carrying
// the error (the registration rules keep that link's scheme harmless).
func (s *Server) authorizationErrorPage(w http.ResponseWriter, p *store.AuthRequest, code, desc string) {
	status, title := http.StatusBadRequest, "Sign-in cannot continue"
	msg := "The application's sign-in request has a problem, so it cannot go on. Its developer can see why below."
	switch code {
	case "access_denied":
		status, title = http.StatusForbidden, "Access denied"
		msg = "You may not use what this application asked for. Ask the owner of the agent for access if you need it."
	case "temporarily_unavailable":
		status, title = http.StatusServiceUnavailable, "Temporarily unavailable"
		msg = "The service is temporarily unavailable. Go back to the application and try again in a moment."
		w.Header().Set("Retry-After", "5")
	case "invalid_scope":
		title = "Permissions not available"
		msg = "The application asked for permissions this gateway does not grant."
	case "invalid_target":
		title = "Unknown resource"
		msg = "The application asked for an agent this gateway does not know."
	}
	detail := code + ": " + desc
	back, err := withParams(p.RedirectURI, s.errorParams(p.State, code, desc))
	if err != nil { // validated URIs parse; defensive only
		s.render(w, status, s.pages.errorPage, errorPageData{Title: title, Message: msg, Detail: detail, AccountURL: s.pathURL("/account")})
		return
	}
	s.render(w, status, s.pages.errorPage, errorPageData{
		Title: title, Message: msg, Detail: detail, AccountURL: s.pathURL("/account"),
		// template.URL: html/template would blank a private-use scheme
		// (cursor://, com.example.app:); checkRedirectURI vetted it.
		Back:      template.URL(back),
		BackLabel: redirectHost(p.RedirectURI),
	})
}
