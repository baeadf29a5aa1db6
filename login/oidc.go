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
	"sync/atomic"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/net/idna"
	"golang.org/x/oauth2"

	"github.com/mcpgateway/mcp-gateway/config"
	"github.com/mcpgateway/mcp-gateway/internal/metrics"
	"github.com/mcpgateway/mcp-gateway/internal/ttlcache"
	"github.com/mcpgateway/mcp-gateway/oauthsrv"
	"github.com/mcpgateway/mcp-gateway/store"
	"github.com/mcpgateway/mcp-gateway/token"
)

// discoveryTTL is how long a discovered provider document is used before it
// is fetched again (a failed refresh keeps the old one).
const discoveryTTL = time.Hour

// idTokenSkew is the clock skew tolerated on an ID token's iat.
const idTokenSkew = time.Minute

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
	domains  []string // canonical: ASCII, lower case (see emailDomain)
	groups   map[string]bool

	// disc holds the discovered provider for discoveryTTL; last is the
	// newest one discovered, used while a refresh fails.
	disc *ttlcache.Cache[oidc.Provider]
	last atomic.Pointer[oidc.Provider]
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
		disc: ttlcache.New(ttlcache.Options[oidc.Provider]{
			TTL: discoveryTTL, Max: 1,
			Hit:  metrics.CacheLookups.WithLabelValues("oidc_discovery", "hit"),
			Miss: metrics.CacheLookups.WithLabelValues("oidc_discovery", "miss"),
		}),
	}
	for i, d := range cfg.AllowedEmailDomains {
		// The operator's list may be written in any case or in Unicode
		// (Bücher.de): map it the lenient UTS #46 way, once.
		a, err := idna.Lookup.ToASCII(d)
		if err != nil {
			return nil, fmt.Errorf("login: login.oidc.allowed_email_domains[%d] %q: %w", i, d, err)
		}
		l.domains = append(l.domains, a)
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
	// The load is not tied to one request: a cancelled browser must not
	// fail the discovery others wait for.
	p, err := l.disc.Get(ctx, l.cfg.Issuer, l.now(), func(ctx context.Context) (*oidc.Provider, error) {
		ctx, cancel := context.WithTimeout(ctx, upstreamTimeout)
		defer cancel()
		np, err := oidc.NewProvider(oidc.ClientContext(ctx, l.client), l.cfg.Issuer)
		if err != nil {
			return nil, err
		}
		l.last.Store(np)
		return np, nil
	})
	if err != nil {
		if last := l.last.Load(); last != nil {
			l.log.Warn("oidc discovery refresh failed; keeping the previous document", "issuer", l.cfg.Issuer, "err", errText(err))
			return last, nil
		}
		return nil, err
	}
	return p, nil
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

// discoveryFailed answers a provider that is unknown or unreachable with a
// 502 page (the upstream failed, not us) that invites a retry.
func (l *oidcLogin) discoveryFailed(w http.ResponseWriter, err error) {
	l.log.Warn("oidc discovery failed", "issuer", l.cfg.Issuer, "err", errText(err))
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
	user, groups, deny, err := l.identify(ctx, code, verifier, nonce)
	if err != nil {
		var disc discoveryError
		if errors.As(err, &disc) {
			l.discoveryFailed(w, disc.err)
			return
		}
		l.log.Warn("oidc login failed", "issuer", l.cfg.Issuer, "client_id", p.ClientID, "err", errText(err))
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
	l.s.CompleteLoginGroups(w, r, p.ID, user, groups)
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
func (l *oidcLogin) identify(ctx context.Context, code, verifier, nonce string) (string, []string, *denial, error) {
	ctx, cancel := context.WithTimeout(ctx, upstreamTimeout)
	defer cancel()
	prov, err := l.provider(ctx)
	if err != nil {
		return "", nil, nil, discoveryError{err}
	}
	ctx = oidc.ClientContext(ctx, l.client)
	tok, err := l.oauth2Config(prov).Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		return "", nil, nil, fmt.Errorf("code exchange: %w", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return "", nil, nil, errors.New("token response has no id_token")
	}
	idt, err := prov.Verifier(&oidc.Config{ClientID: l.cfg.ClientID, Now: l.now}).Verify(ctx, raw)
	if err != nil {
		return "", nil, nil, fmt.Errorf("id token: %w", err)
	}
	if nonce == "" || subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(nonce)) != 1 {
		return "", nil, nil, errors.New("id token: nonce mismatch")
	}
	if idt.AccessTokenHash != "" {
		if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
			return "", nil, nil, fmt.Errorf("id token: %w", err)
		}
	}
	claims := map[string]any{}
	if err := idt.Claims(&claims); err != nil {
		return "", nil, nil, fmt.Errorf("id token claims: %w", err)
	}
	if err := l.checkIDToken(idt, claims); err != nil {
		return "", nil, nil, fmt.Errorf("id token: %w", err)
	}
	if l.needUserInfo(claims) && prov.UserInfoEndpoint() != "" {
		// Providers may keep email and groups out of the ID token when an
		// access token is issued (OIDC Core §5.4): ask the userinfo
		// endpoint, whose subject must be the ID token's (§5.3.2).
		ui, err := prov.UserInfo(ctx, oauth2.StaticTokenSource(tok))
		if err != nil {
			return "", nil, nil, fmt.Errorf("userinfo: %w", err)
		}
		if ui.Subject != idt.Subject {
			return "", nil, nil, errors.New("userinfo: subject differs from the id token's")
		}
		extra := map[string]any{}
		if err := ui.Claims(&extra); err != nil {
			return "", nil, nil, fmt.Errorf("userinfo claims: %w", err)
		}
		if err := mergeUserInfo(claims, extra); err != nil {
			return "", nil, nil, fmt.Errorf("userinfo: %w", err)
		}
	}
	user, deny := l.decide(idt.Subject, claims)
	return user, l.userGroups(claims[l.cfg.GroupsClaim]), deny, nil
}

// checkIDToken makes the checks of OIDC Core §3.1.3.7 that go-oidc's
// verifier leaves out (it checks signature, iss, that aud contains us, exp
// and nbf): a subject (§2), azp when several audiences or an azp are given
// (steps 3 to 5), an iat that is not in the future (step 10) and
// NumericDates that are JSON numbers (go-oidc also takes "123" strings).
func (l *oidcLogin) checkIDToken(idt *oidc.IDToken, claims map[string]any) error {
	if idt.Subject == "" {
		return errors.New("no sub")
	}
	azp, hasAZP := claims["azp"]
	switch {
	case hasAZP && !sameString(azp, l.cfg.ClientID):
		return fmt.Errorf("azp %q is not our client_id (audience mix-up)", trunc(fmt.Sprint(azp), 64))
	case len(idt.Audience) > 1 && !hasAZP:
		return fmt.Errorf("several audiences %q and no azp naming us", trunc(fmt.Sprint(idt.Audience), 256))
	}
	if err := numericDates(claims); err != nil {
		return err
	}
	if _, ok := claims["iat"]; !ok {
		return errors.New("no iat")
	}
	if idt.IssuedAt.After(l.now().Add(idTokenSkew)) {
		return fmt.Errorf("iat %s is in the future", idt.IssuedAt.UTC().Format(time.RFC3339))
	}
	return nil
}

// mergeUserInfo adds the userinfo claims the ID token lacks. email and
// email_verified travel as a pair (OIDC Core §5.1: email_verified speaks of
// the email in the same answer): the ID token's pair is kept when complete,
// otherwise userinfo's is taken whole when it names an email, never one
// claim from each. A userinfo email other than the ID token's is refused.
func mergeUserInfo(claims, ui map[string]any) error {
	if e, ok := ui["email"]; ok {
		own, hasOwn := claims["email"]
		if hasOwn && !sameString(own, e) {
			return errors.New("email differs from the id token's")
		}
		if _, complete := claims["email_verified"]; !hasOwn || !complete {
			claims["email"] = e
			delete(claims, "email_verified")
			if v, ok := ui["email_verified"]; ok {
				claims["email_verified"] = v
			}
		}
	}
	for k, v := range ui {
		if _, ok := claims[k]; !ok && k != "email" && k != "email_verified" {
			claims[k] = v
		}
	}
	return nil
}

// sameString reports whether a and b are the same string (JSON values of
// any type compare safely: a list or object is never equal).
func sameString(a, b any) bool {
	x, ok1 := a.(string)
	y, ok2 := b.(string)
	return ok1 && ok2 && x == y
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
		d, ok := "", at >= 0
		if ok {
			d, ok = emailDomain(email[at+1:])
		}
		if !ok || !slices.Contains(l.domains, d) {
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

// userGroups returns the groups of groups claim v (a string or a list of
// strings) for the access token: sorted, deduplicated, entries that are
// not store.ValidGroup left out and, past store.MaxGroups, the rest
// dropped with a warning. Leaving a group out only ever admits less: rules
// match groups to allow, never to deny.
func (l *oidcLogin) userGroups(v any) []string {
	var in []string
	switch g := v.(type) {
	case string:
		in = []string{g}
	case []any:
		for _, e := range g {
			if s, ok := e.(string); ok {
				in = append(in, s)
			}
		}
	}
	in = slices.DeleteFunc(in, func(g string) bool { return !store.ValidGroup(g) })
	out := slices.Compact(slices.Sorted(slices.Values(in)))
	if len(out) > store.MaxGroups {
		l.log.Warn("oidc groups claim has too many groups; the access token keeps the first in sorted order",
			"claim", l.cfg.GroupsClaim, "groups", len(out), "kept", store.MaxGroups)
		out = out[:store.MaxGroups]
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// inAllowedGroup reports whether groups claim v, a string or a list of
// strings, names an allowed group.
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

// emailDomain returns the canonical ASCII form of an email's domain, to
// compare with the allow-list. Only ASCII letters are folded: full Unicode
// folding (strings.ToLower, or UTS #46 mapping) would turn a Kelvin sign
// U+212A into "k", so that "\u212Aite.io" passed "kite.io". A non-ASCII
// domain must already be in its IDNA2008 registration form (no character
// that UTS #46 would map or disallow) and is compared as its xn-- A-label;
// anything else is no domain of the list.
func emailDomain(d string) (string, bool) {
	b := []byte(d)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + ('a' - 'A')
		}
	}
	a, err := idna.Registration.ToASCII(string(b))
	if err != nil {
		return "", false
	}
	return a, true
}
