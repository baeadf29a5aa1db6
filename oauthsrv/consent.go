package oauthsrv

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/mcpgateway/mcp-gateway/store"
)

type consentData struct {
	ClientName, RedirectHost, Resource, ResourceLabel, User, RequestID, CSRF string
	Scopes                                                                   []scopeView
	// Added: when the user already granted this client some of the asked
	// scopes for this resource (a step-up), the ones this approval adds.
	Added []scopeView
	// AccessFor and Until: how long a grant lasts (the refresh token
	// family's lifetime); AccountURL: where to revoke it.
	AccessFor, Until string
	AccountURL       string
	// ClientHost: for a Client ID Metadata Document client, the host that
	// vouches for it; LoopbackOnly: all its redirect URIs are on this device.
	ClientHost   string
	LoopbackOnly bool
	// Remembered: approving skips this page next time (an https redirect).
	Remembered bool
}

func (s *Server) handleConsent(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		s.showConsent(w, r)
	case http.MethodPost:
		s.decideConsent(w, r)
	default:
		s.pageMethodNotAllowed(w, "GET, HEAD, POST")
	}
}

// consentUser is the user a consent page acts for: the pending request's
// user, who must still be this browser's session user.
func (s *Server) consentUser(w http.ResponseWriter, r *http.Request, p *store.AuthRequest) (string, bool) {
	if p.UserID == "" {
		s.login.Start(w, r, p)
		return "", false
	}
	user, err := s.sessionUser(r)
	if err != nil {
		s.storeError(r.Context(), "get_session", err)
		s.pageUnavailable(w)
		return "", false
	}
	if user != p.UserID {
		s.login.Start(w, r, p)
		return "", false
	}
	return user, true
}

func (s *Server) showConsent(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	p, ok := s.Pending(w, r, r.URL.Query().Get("request"))
	if !ok {
		return
	}
	if p.ClientID == accountClientID {
		s.ErrorPage(w, http.StatusBadRequest, "Invalid request", "This sign-in request has nothing to approve.")
		return
	}
	user, ok := s.consentUser(w, r, p)
	if !ok {
		return
	}
	client, err := s.lookupClient(ctx, p.ClientID, false)
	if errors.Is(err, store.ErrNotFound) {
		s.ErrorPage(w, http.StatusBadRequest, "Unknown application", "The application asking for access is no longer registered.")
		return
	}
	if desc, ok := s.clientRefusal(ctx, p.ClientID, err); ok {
		s.ErrorPage(w, http.StatusBadRequest, "Application not accepted", desc)
		return
	}
	if err != nil {
		s.storeError(ctx, "get_client", err)
		s.pageUnavailable(w)
		return
	}
	label := "all agents you may use on this gateway"
	if id := s.resourceAgent(p.Resource); id != "" {
		label = "the agent " + id
	}
	host := s.clientHost(client.ID)
	s.render(w, http.StatusOK, s.pages.consent, consentData{
		ClientHost:    host,
		LoopbackOnly:  host != "" && onlyLoopbackRedirects(client.RedirectURIs),
		ClientName:    displayName(client),
		RedirectHost:  redirectHost(p.RedirectURI),
		Resource:      p.Resource,
		ResourceLabel: label,
		User:          user,
		RequestID:     p.ID,
		CSRF:          p.CSRF,
		Scopes:        s.scopeViews(p.Scope),
		Added:         s.scopeViews(s.addedScopes(r.Context(), user, p)),
		Remembered:    rememberable(p.RedirectURI),
		AccessFor:     humanDuration(s.cfg.TTL.Refresh.D()),
		Until:         s.now().Add(s.cfg.TTL.Refresh.D()).UTC().Format("2 January 2006"),
		AccountURL:    s.pathURL("/account"),
	})
}

// addedScopes is what p asks for beyond what user already granted its
// client for its resource (remembered consents for the same redirect URI,
// live sign-ins): a step-up's new scopes. "" when nothing was granted
// before (then everything is new and the page lists it all anyway) or on a
// store error (the page is informational; the grant is decided elsewhere).
func (s *Server) addedScopes(ctx context.Context, user string, p *store.AuthRequest) string {
	held := map[string]bool{}
	if cs, err := s.st.ListConsents(ctx, user); err == nil {
		for _, c := range cs {
			if c.ClientID == p.ClientID && c.RedirectURI == p.RedirectURI && c.Resource == p.Resource {
				for _, sc := range strings.Fields(c.Scope) {
					held[sc] = true
				}
			}
		}
	}
	if fs, err := s.st.ListFamilies(ctx, user); err == nil {
		for _, f := range fs {
			if f.ClientID == p.ClientID && f.Resource == p.Resource {
				for _, sc := range strings.Fields(f.Scope) {
					held[sc] = true
				}
			}
		}
	}
	if len(held) == 0 {
		return ""
	}
	var added []string
	for _, sc := range strings.Fields(p.Scope) {
		if !held[sc] {
			added = append(added, sc)
		}
	}
	return strings.Join(added, " ")
}

// scopeView is one permission as the pages show it.
type scopeView struct{ Name, Description string }

// scopeViews describes a space-separated scope string from the config's
// scope descriptions (a scope without one shows its name).
func (s *Server) scopeViews(scope string) []scopeView {
	var out []scopeView
	for _, n := range strings.Fields(scope) {
		out = append(out, scopeView{Name: n, Description: s.cfg.ScopeDescription(n)})
	}
	return out
}

// scopeText is scopeViews as one line of text: descriptions, else names.
func (s *Server) scopeText(scope string) string {
	var parts []string
	for _, v := range s.scopeViews(scope) {
		if v.Description != "" {
			parts = append(parts, v.Description)
		} else {
			parts = append(parts, v.Name)
		}
	}
	return strings.Join(parts, "; ")
}

// humanDuration says d in the largest whole unit: "30 days", "12 hours".
func humanDuration(d time.Duration) string {
	unit := func(n int64, one string) string {
		if n == 1 {
			return "1 " + one
		}
		return strconv.FormatInt(n, 10) + " " + one + "s"
	}
	switch {
	case d >= 24*time.Hour && d%(24*time.Hour) == 0:
		return unit(int64(d/(24*time.Hour)), "day")
	case d >= time.Hour && d%time.Hour == 0:
		return unit(int64(d/time.Hour), "hour")
	case d >= time.Minute:
		return unit(int64(d/time.Minute), "minute")
	}
	return unit(int64(d/time.Second), "second")
}

// redirectHost names where the browser goes after consent: a host, or the
// private-use scheme of a native app.
func redirectHost(raw string) string {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return raw
	case u.Scheme == "http" || u.Scheme == "https":
		return u.Host
	default:
		return "the app handling " + u.Scheme + ": links on this device"
	}
}

func (s *Server) decideConsent(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	f, ok := s.parsePageForm(w, r)
	if !ok {
		return
	}
	p, ok := s.Pending(w, r, f.Get("request"))
	if !ok {
		return
	}
	if !validCSRF(p, f.Get("csrf")) || p.ClientID == accountClientID {
		s.ErrorPage(w, http.StatusForbidden, "Form expired", "The consent form was not sent by this page or has expired. Go back to the application and start again.")
		return
	}
	decision := f.Get("decision")
	if decision != "approve" && decision != "deny" {
		s.ErrorPage(w, http.StatusBadRequest, "Invalid request", "Choose Approve or Deny.")
		return
	}
	user, ok := s.consentUser(w, r, p)
	if !ok {
		return
	}
	// Take: one pending request yields at most one code, even if the form
	// is posted twice.
	p, ok = s.takePending(w, r, p.ID, "This request was already answered.")
	if !ok {
		return
	}
	if p.UserID != user {
		s.ErrorPage(w, http.StatusForbidden, "Sign-in changed", "You signed in as someone else meanwhile. Go back to the application and start again.")
		return
	}
	attrs := []slog.Attr{slog.String("user", user), slog.String("client_id", p.ClientID), slog.String("resource", p.Resource), slog.String("scope", p.Scope)}
	if decision == "deny" {
		s.audit(ctx, "consent_denied", attrs...)
		s.redirectError(w, r, p.RedirectURI, p.State, "access_denied", "the user denied the request")
		return
	}
	// Only an https redirect is remembered (trust.go): a record for a
	// loopback port or a custom scheme would never be used.
	if rememberable(p.RedirectURI) {
		c := &store.Consent{UserID: user, ClientID: p.ClientID, RedirectURI: p.RedirectURI, Scope: p.Scope, Resource: p.Resource, CreatedAt: s.now()}
		if err := s.st.SaveConsent(ctx, c); err != nil {
			s.storeError(ctx, "save_consent", err)
			s.redirectError(w, r, p.RedirectURI, p.State, "temporarily_unavailable", "the service is temporarily unavailable")
			return
		}
	}
	s.audit(ctx, "consent_granted", attrs...)
	s.issueCode(w, r, p, user)
}

// takePending takes the pending authorization request id for good: one
// request yields at most one code. When it is gone already (used) or the
// store fails, it has answered with a page and returns false; used says
// how this page names the first use.
func (s *Server) takePending(w http.ResponseWriter, r *http.Request, id, used string) (*store.AuthRequest, bool) {
	p, err := s.st.TakeAuthRequest(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		s.ErrorPage(w, http.StatusBadRequest, "Request already used", used+" Go back to the application and start again.")
		return nil, false
	}
	if err != nil {
		s.storeError(r.Context(), "take_auth_request", err)
		s.pageUnavailable(w)
		return nil, false
	}
	return p, true
}
