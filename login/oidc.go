package login

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
	"golang.org/x/sync/singleflight"

	"github.com/mcpgateway/mcp-gateway/config"
	"github.com/mcpgateway/mcp-gateway/oauthsrv"
	"github.com/mcpgateway/mcp-gateway/store"
	"github.com/mcpgateway/mcp-gateway/token"
)

// discoveryTTL: how long a discovered provider document is used before it
// is fetched again (a failed refresh keeps the old one).
const discoveryTTL = time.Hour

// oidcLogin sends the browser to an upstream OpenID Provider with
// authorization code + PKCE + state + nonce and verifies the ID token that
// comes back. State, nonce and verifier live in the pending request; the
// state sent upstream is "<pending id>.<secret>", and the callback accepts
// it only in the browser the pending request is bound to.
type oidcLogin struct {
	s        *oauthsrv.Server
	st       store.AuthRequests
	cfg      config.OIDCLogin
	secret   string
	client   *http.Client
	log      *slog.Logger
	now      func() time.Time
	redirect string
	domains  []string // lower-cased
	groups   map[string]bool

	sf     singleflight.Group
	mu     sync.Mutex
	prov   *oidc.Provider
	provAt time.Time
}

func newOIDC(s *oauthsrv.Server, cfg config.OIDCLogin, st store.AuthRequests, o options) (*oidcLogin, error) {
	secret, err := cfg.ResolveClientSecret()
	if err != nil {
		return nil, err
	}
	if cfg.Issuer == "" || cfg.ClientID == "" {
		return nil, errors.New("login: oidc needs login.oidc.issuer and login.oidc.client_id")
	}
	if cfg.UserClaim == "" {
		cfg.UserClaim = "sub"
	}
	if cfg.GroupsClaim == "" {
		cfg.GroupsClaim = "groups"
	}
	if len(cfg.Scopes) == 0 {
		cfg.Scopes = []string{oidc.ScopeOpenID, "email", "profile"}
	}
	l := &oidcLogin{
		s: s, st: st, cfg: cfg, secret: secret, client: o.client, log: o.log, now: o.now,
		redirect: s.Issuer() + OIDCCallbackPath,
		groups:   map[string]bool{},
	}
	for _, d := range cfg.AllowedEmailDomains {
		l.domains = append(l.domains, strings.ToLower(d))
	}
	for _, g := range cfg.AllowedGroups {
		l.groups[g] = true
	}
	return l, nil
}

func (l *oidcLogin) Routes() map[string]http.Handler {
	return map[string]http.Handler{OIDCCallbackPath: http.HandlerFunc(l.callback)}
}

// provider returns the discovered provider, discovering at most once at a
// time however many logins start together.
func (l *oidcLogin) provider(ctx context.Context) (*oidc.Provider, error) {
	l.mu.Lock()
	p, at := l.prov, l.provAt
	l.mu.Unlock()
	if p != nil && l.now().Sub(at) < discoveryTTL {
		return p, nil
	}
	v, err, _ := l.sf.Do("discover", func() (any, error) {
		// Not tied to one request: a cancelled browser must not fail the
		// discovery others wait for.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), upstreamTimeout)
		defer cancel()
		np, err := oidc.NewProvider(oidc.ClientContext(ctx, l.client), l.cfg.Issuer)
		if err != nil {
			return nil, err
		}
		l.mu.Lock()
		l.prov, l.provAt = np, l.now()
		l.mu.Unlock()
		return np, nil
	})
	if err != nil {
		if p != nil {
			l.log.Warn("oidc discovery refresh failed; keeping the previous document", "issuer", l.cfg.Issuer, "err", err)
			return p, nil
		}
		return nil, err
	}
	return v.(*oidc.Provider), nil
}

func (l *oidcLogin) oauth2Config(p *oidc.Provider) *oauth2.Config {
	return &oauth2.Config{
		ClientID:     l.cfg.ClientID,
		ClientSecret: l.secret,
		Endpoint:     p.Endpoint(),
		RedirectURL:  l.redirect,
		Scopes:       l.cfg.Scopes,
	}
}

// discoveryFailed: the provider is unknown or unreachable; a 502 page (the
// upstream failed, not us) that invites a retry.
func (l *oidcLogin) discoveryFailed(w http.ResponseWriter, err error) {
	l.log.Warn("oidc discovery failed", "issuer", l.cfg.Issuer, "err", err)
	w.Header().Set("Retry-After", "30")
	l.s.ErrorPage(w, http.StatusBadGateway, "Sign-in unavailable",
		"The identity provider could not be reached. Please try again in a moment.")
}

func (l *oidcLogin) Start(w http.ResponseWriter, r *http.Request, p *store.AuthRequest) {
	ctx := r.Context()
	prov, err := l.provider(ctx)
	if err != nil {
		l.discoveryFailed(w, err)
		return
	}
	ttl := p.ExpiresAt.Sub(l.now())
	if ttl <= 0 {
		l.s.ErrorPage(w, http.StatusBadRequest, "Request expired", "This sign-in request has expired. Go back to the application and start again.")
		return
	}
	state, nonce, verifier := token.Random(32), token.Random(32), oauth2.GenerateVerifier()
	p.LoginStateHash, p.LoginNonce, p.LoginVerifier = token.Hash(state), nonce, verifier
	if err := l.st.PutAuthRequest(ctx, p, ttl); err != nil {
		l.log.Error("store operation failed", "op", "put_auth_request", "err", err)
		unavailable(l.s, w)
		return
	}
	u := l.oauth2Config(prov).AuthCodeURL(p.ID+"."+state, oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier))
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
	http.Redirect(w, r, u, http.StatusFound)
}

// callback is the redirect back from the provider: ?code&state or
// ?error&state.
func (l *oidcLogin) callback(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet { // not HEAD either: the callback has effects
		methodNotAllowed(l.s, w, "GET")
		return
	}
	ctx := r.Context()
	q, ok := singleQuery(l.s, w, r)
	if !ok {
		return
	}
	// RFC 9207: a provider that names itself must be ours (mix-up defence).
	if iss, ok := q["iss"]; ok && iss != l.cfg.Issuer {
		l.badState(w, r, "iss names another provider")
		return
	}
	id, secret, found := strings.Cut(q["state"], ".")
	if !found || id == "" || !validRandom(secret) {
		l.badState(w, r, "malformed state")
		return
	}
	p, ok := l.s.Pending(w, r, id) // also: this browser started it
	if !ok {
		return
	}
	if p.LoginStateHash == "" || subtle.ConstantTimeCompare([]byte(token.Hash(secret)), []byte(p.LoginStateHash)) != 1 {
		l.badState(w, r, "state mismatch")
		return
	}
	// The state is single use: clear it before anything else can fail.
	nonce, verifier := p.LoginNonce, p.LoginVerifier
	p.LoginStateHash, p.LoginNonce, p.LoginVerifier = "", "", ""
	ttl := p.ExpiresAt.Sub(l.now())
	if ttl <= 0 {
		l.s.ErrorPage(w, http.StatusBadRequest, "Request expired", "This sign-in request has expired. Go back to the application and start again.")
		return
	}
	if err := l.st.PutAuthRequest(ctx, p, ttl); err != nil {
		l.log.Error("store operation failed", "op", "put_auth_request", "err", err)
		unavailable(l.s, w)
		return
	}
	attrs := []slog.Attr{slog.String("provider", config.LoginOIDC)}
	if e := q["error"]; e != "" {
		code := "access_denied"
		if e == "temporarily_unavailable" || e == "server_error" {
			code = "temporarily_unavailable"
		}
		l.s.FailLogin(w, r, p, code, "the identity provider did not sign the user in",
			append(attrs, slog.String("reason", "upstream_error"), slog.String("upstream_error", trunc(e, 64)))...)
		return
	}
	code := q["code"]
	if code == "" || len(code) > 4096 {
		l.s.ErrorPage(w, http.StatusBadRequest, "Invalid sign-in response", "The identity provider sent no authorization code. Go back to the application and start again.")
		return
	}
	user, deny, err := l.identify(ctx, code, verifier, nonce)
	if err != nil {
		var disc discoveryError
		if errors.As(err, &disc) {
			l.discoveryFailed(w, disc.err)
			return
		}
		l.log.Warn("oidc login failed", "issuer", l.cfg.Issuer, "client_id", p.ClientID, "err", err)
		l.s.Audit(ctx, "login_failed", slog.String("provider", config.LoginOIDC), slog.String("client_id", p.ClientID),
			slog.String("ip", l.s.ClientIP(r)), slog.String("reason", "upstream_response_invalid"))
		l.s.ErrorPage(w, http.StatusBadGateway, "Sign-in failed",
			"The identity provider's answer could not be verified. Go back to the application and start again.")
		return
	}
	if deny != nil {
		l.s.FailLogin(w, r, p, "access_denied", deny.description,
			append(attrs, slog.String("reason", deny.reason), slog.String("user", trunc(deny.who, maxUserIDLen)))...)
		return
	}
	l.s.CompleteLogin(w, r, p.ID, user)
}

func (l *oidcLogin) badState(w http.ResponseWriter, r *http.Request, why string) {
	l.s.Audit(r.Context(), "login_failed", slog.String("provider", config.LoginOIDC), slog.String("ip", l.s.ClientIP(r)),
		slog.String("reason", "bad_state"), slog.String("detail", why))
	l.s.ErrorPage(w, http.StatusBadRequest, "Invalid sign-in response",
		"This answer from the identity provider does not belong to a sign-in started in this browser. Go back to the application and start again.")
}

type discoveryError struct{ err error }

func (e discoveryError) Error() string { return "discovery: " + e.err.Error() }

// denial is a verified user the allow-lists refuse.
type denial struct {
	reason, description, who string
}

// identify redeems the code, verifies the ID token and returns the user id,
// or a denial, or an error for a failed or unverifiable upstream answer.
func (l *oidcLogin) identify(ctx context.Context, code, verifier, nonce string) (string, *denial, error) {
	ctx, cancel := context.WithTimeout(ctx, upstreamTimeout)
	defer cancel()
	prov, err := l.provider(ctx)
	if err != nil {
		return "", nil, discoveryError{err}
	}
	ctx = oidc.ClientContext(ctx, l.client)
	tok, err := l.oauth2Config(prov).Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		return "", nil, fmt.Errorf("code exchange: %w", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return "", nil, errors.New("token response has no id_token")
	}
	idt, err := prov.Verifier(&oidc.Config{ClientID: l.cfg.ClientID, Now: l.now}).Verify(ctx, raw)
	if err != nil {
		return "", nil, fmt.Errorf("id token: %w", err)
	}
	if nonce == "" || subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(nonce)) != 1 {
		return "", nil, errors.New("id token: nonce mismatch")
	}
	if idt.AccessTokenHash != "" {
		if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
			return "", nil, fmt.Errorf("id token: %w", err)
		}
	}
	claims := map[string]any{}
	if err := idt.Claims(&claims); err != nil {
		return "", nil, fmt.Errorf("id token claims: %w", err)
	}
	// OIDC Core §3.1.3.7: an azp, if present, must be us (go-oidc only
	// checks that aud contains us).
	if azp, ok := claims["azp"]; ok && azp != l.cfg.ClientID {
		return "", nil, fmt.Errorf("id token: azp %q is not our client_id (audience mix-up)", trunc(fmt.Sprint(azp), 64))
	}
	if l.needUserInfo(claims) && prov.UserInfoEndpoint() != "" {
		// Providers may keep email and groups out of the ID token when an
		// access token is issued (OIDC Core §5.4): ask the userinfo
		// endpoint, whose subject must be the ID token's (§5.3.2).
		ui, err := prov.UserInfo(ctx, oauth2.StaticTokenSource(tok))
		if err != nil {
			return "", nil, fmt.Errorf("userinfo: %w", err)
		}
		if ui.Subject != idt.Subject {
			return "", nil, errors.New("userinfo: subject differs from the id token's")
		}
		extra := map[string]any{}
		if err := ui.Claims(&extra); err != nil {
			return "", nil, fmt.Errorf("userinfo claims: %w", err)
		}
		for k, v := range extra {
			if _, ok := claims[k]; !ok {
				claims[k] = v
			}
		}
	}
	user, deny := l.decide(idt.Subject, claims)
	return user, deny, nil
}

func (l *oidcLogin) needEmail() bool { return l.cfg.UserClaim == "email" || len(l.domains) > 0 }

func (l *oidcLogin) needUserInfo(claims map[string]any) bool {
	_, hasEmail := claims["email"]
	_, hasVerified := claims["email_verified"]
	_, hasGroups := claims[l.cfg.GroupsClaim]
	return l.needEmail() && (!hasEmail || !hasVerified) || len(l.groups) > 0 && !hasGroups
}

// decide applies user_claim and the allow-lists to verified claims.
func (l *oidcLogin) decide(sub string, claims map[string]any) (string, *denial) {
	email, _ := claims["email"].(string)
	verified := false
	switch v := claims["email_verified"].(type) {
	case bool:
		verified = v
	case string: // some providers send "true"
		verified = v == "true"
	}
	who := sub
	if email != "" {
		who = email
	}
	if l.needEmail() {
		switch {
		case email == "":
			return "", &denial{"email_missing", "the identity provider sent no email address for the user", who}
		case !verified:
			return "", &denial{"email_not_verified", "the user's email address is not verified", who}
		}
	}
	if len(l.domains) > 0 {
		at := strings.LastIndexByte(email, '@')
		if at < 0 || !slices.Contains(l.domains, strings.ToLower(email[at+1:])) {
			return "", &denial{"email_domain_not_allowed", "the user's email domain is not allowed", who}
		}
	}
	if len(l.groups) > 0 && !l.inAllowedGroup(claims[l.cfg.GroupsClaim]) {
		return "", &denial{"group_not_allowed", "the user is not in a group allowed to use this gateway", who}
	}
	user := sub
	if l.cfg.UserClaim == "email" {
		user = email
	}
	if !validUserID(user) {
		return "", &denial{"invalid_user_id", "the identity provider's user id is not usable", who}
	}
	return user, nil
}

// inAllowedGroup: the claim is a string or a list of strings.
func (l *oidcLogin) inAllowedGroup(v any) bool {
	switch g := v.(type) {
	case string:
		return l.groups[g]
	case []any:
		for _, e := range g {
			if s, ok := e.(string); ok && l.groups[s] {
				return true
			}
		}
	}
	return false
}
