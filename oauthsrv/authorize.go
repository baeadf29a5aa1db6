package oauthsrv

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/mcpgateway/mcp-gateway/internal/resource"
	"github.com/mcpgateway/mcp-gateway/store"
	"github.com/mcpgateway/mcp-gateway/token"
)

const (
	maxQueryLen    = 8 << 10
	maxClientIDLen = 2048 // room for URL client ids (Client ID Metadata Documents)
	maxStateLen    = 1024
	maxScopeLen    = 1024
	maxScopes      = 32
)

func (s *Server) handleAuthorize(w http.ResponseWriter, r *http.Request) {
	if !isGet(r) {
		s.pageMethodNotAllowed(w, "GET, HEAD")
		return
	}
	ctx := r.Context()
	if pass, _ := s.limitIP(w, r, "authorize", s.cfg.RateLimit.Authorize, true); !pass {
		return
	}
	if len(r.URL.RawQuery) > maxQueryLen {
		s.ErrorPage(w, http.StatusBadRequest, "Invalid request", "The authorization request is too large.")
		return
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		s.ErrorPage(w, http.StatusBadRequest, "Invalid request", "The authorization request is malformed.")
		return
	}
	// Until client and redirect URI are known good, errors must not
	// redirect (RFC 6749 §4.1.2.1): it would make us an open redirector.
	if len(q["client_id"]) > 1 || len(q["redirect_uri"]) > 1 {
		s.ErrorPage(w, http.StatusBadRequest, "Invalid request", "client_id and redirect_uri must be sent once.")
		return
	}
	clientID := q.Get("client_id")
	if clientID == "" || len(clientID) > maxClientIDLen {
		s.ErrorPage(w, http.StatusBadRequest, "Invalid request", "The request has no valid client_id.")
		return
	}
	client, err := s.lookupClient(ctx, clientID, true)
	if errors.Is(err, store.ErrNotFound) {
		s.ErrorPage(w, http.StatusBadRequest, "Unknown application", "The application asking for access is not registered with this gateway. Ask it to register again.")
		return
	}
	if desc, ok := s.clientRefusal(ctx, clientID, err); ok {
		s.ErrorPage(w, http.StatusBadRequest, "Application not accepted", desc)
		return
	}
	if err != nil {
		s.storeError(ctx, "get_client", err)
		s.pageUnavailable(w)
		return
	}
	redirectURI := q.Get("redirect_uri")
	if redirectURI == "" || !redirectAllowed(client.RedirectURIs, redirectURI) {
		msg := "The redirect URI does not match one registered by the application."
		if s.isCIMDClient(client.ID) {
			msg = "The redirect URI is not one listed in the application's client metadata document."
		}
		s.ErrorPage(w, http.StatusBadRequest, "Invalid redirect URI", msg)
		return
	}
	// Registered before the scheme rules tightened, or the scheme was
	// removed from clients.allowed_schemes since: never send anyone there.
	if why := s.checkRedirectURI(redirectURI); why != "" {
		s.ErrorPage(w, http.StatusBadRequest, "Invalid redirect URI", "The application's redirect URI is not accepted by this gateway: "+why+".")
		return
	}

	// From here on client and redirect URI are known, but anyone may have
	// registered them: failAuthorization redirects only to a redirect URI
	// the user has approved, and shows a page otherwise.
	state := q.Get("state")
	fail := func(code, desc string) {
		s.failAuthorization(w, r, &store.AuthRequest{ClientID: client.ID, RedirectURI: redirectURI, State: state}, "", code, desc)
	}
	if len(state) > maxStateLen {
		state = ""
		fail("invalid_request", "state is too long")
		return
	}
	for k, v := range q {
		if len(v) > 1 {
			fail("invalid_request", "parameter "+quote(k)+" is repeated")
			return
		}
	}
	switch rt := q.Get("response_type"); {
	case rt == "":
		fail("invalid_request", "response_type is required")
		return
	case rt != "code":
		fail("unsupported_response_type", "only response_type=code is supported")
		return
	case !slices.Contains(client.ResponseTypes, "code") || !slices.Contains(client.GrantTypes, grantCode):
		fail("unauthorized_client", "the client is not registered for the authorization code flow")
		return
	}
	challenge, method := q.Get("code_challenge"), q.Get("code_challenge_method")
	switch {
	case challenge == "":
		fail("invalid_request", "code_challenge is required (PKCE with S256)")
		return
	case method == "plain":
		fail("invalid_request", "code_challenge_method plain is not allowed; use S256")
		return
	case method != "S256":
		fail("invalid_request", "code_challenge_method must be S256")
		return
	case !validChallenge(challenge):
		fail("invalid_request", "code_challenge must be the 43-character base64url SHA-256 of the verifier")
		return
	}
	resource, agent, err := s.resolveResource(ctx, q.Get("resource"))
	if errors.Is(err, errBadTarget) {
		// Names the public URL: a client given another host name for this
		// gateway (localhost for 127.0.0.1) sees which one to use.
		fail("invalid_target", "resource must be this gateway's URL "+s.issuer+" or "+s.issuer+"/<agent>/mcp of a known agent")
		return
	}
	if err != nil {
		s.storeError(ctx, "get_agent", err)
		s.pageUnavailable(w)
		return
	}
	grantable, base := s.allowedScopes(agent)
	scope, ok := grantScope(q.Get("scope"), grantable, base)
	if !ok {
		fail("invalid_scope", "none of the requested scopes is allowed for this resource")
		return
	}

	now := s.now()
	browser := s.browserID(w, r)
	p := &store.AuthRequest{
		ID:            token.Random(16),
		ClientID:      client.ID,
		RedirectURI:   redirectURI,
		State:         state,
		Scope:         scope,
		Resource:      resource,
		CodeChallenge: challenge,
		CSRF:          token.Random(32),
		BrowserHash:   token.Hash(browser),
		CreatedAt:     now,
		ExpiresAt:     now.Add(s.cfg.TTL.AuthRequest.D()),
	}
	if err := s.st.PutAuthRequest(ctx, p, s.cfg.TTL.AuthRequest.D()); err != nil {
		s.storeError(ctx, "put_auth_request", err)
		s.pageUnavailable(w)
		return
	}
	user, groups, err := s.sessionLogin(r)
	if err != nil {
		s.storeError(ctx, "get_session", err)
		s.pageUnavailable(w)
		return
	}
	if user != "" {
		p.Groups = groups
		s.afterLogin(w, r, p, user)
		return
	}
	s.login.Start(w, r, p)
}

// redirectAllowed reports whether got is a registered redirect URI, exactly
// or as a loopback redirect that differs only in port (RFC 8252 §7.3: native
// apps bind any free port).
func redirectAllowed(registered []string, got string) bool {
	if slices.Contains(registered, got) {
		return true
	}
	if strings.Contains(got, "#") {
		return false
	}
	gu, err := url.Parse(got)
	if err != nil || gu.Scheme != "http" || gu.User != nil || !isLoopbackHost(gu.Hostname()) {
		return false
	}
	for _, reg := range registered {
		ru, err := url.Parse(reg)
		if err != nil || ru.Scheme != "http" || ru.User != nil || !isLoopbackHost(ru.Hostname()) {
			continue
		}
		if strings.EqualFold(ru.Hostname(), gu.Hostname()) && ru.EscapedPath() == gu.EscapedPath() &&
			ru.RawQuery == gu.RawQuery && ru.ForceQuery == gu.ForceQuery {
			return true
		}
	}
	return false
}

// validChallenge reports whether c is an S256 challenge: base64url(SHA-256)
// without padding.
func validChallenge(c string) bool {
	if len(c) != 43 {
		return false
	}
	for i := 0; i < len(c); i++ {
		if !isB64URL(c[i]) {
			return false
		}
	}
	return true
}

func isB64URL(b byte) bool {
	return b >= 'A' && b <= 'Z' || b >= 'a' && b <= 'z' || b >= '0' && b <= '9' || b == '-' || b == '_'
}

var errBadTarget = errors.New("invalid resource")

// canonicalResource validates an RFC 8707 resource and returns its canonical
// form (the audience): the issuer, or the issuer + "/<agent>/mcp" or
// "/<agent>/mcp/" (the endpoint's two paths, each its own resource), and the
// agent id ("" for the gateway-wide audience). Scheme and host compare
// case-insensitively, the path exactly. "" → the issuer.
func (s *Server) canonicalResource(raw string) (canon, agentID string, ok bool) {
	if raw == "" {
		return s.issuer, "", true
	}
	if len(raw) > maxURILen {
		return "", "", false
	}
	u, err := url.Parse(raw)
	if err != nil || u.Opaque != "" || u.User != nil || u.RawQuery != "" || u.ForceQuery ||
		u.Fragment != "" || strings.Contains(raw, "#") || u.RawPath != "" ||
		!strings.EqualFold(u.Scheme, s.base.Scheme) || !strings.EqualFold(u.Host, s.base.Host) {
		return "", "", false
	}
	if u.Path == s.basePath || u.Path == s.basePath+"/" {
		return s.issuer, "", true
	}
	rest, ok := strings.CutPrefix(u.Path, s.basePath+"/")
	id, slash, ok2 := resource.ParsePath(rest)
	if !ok || !ok2 {
		return "", "", false
	}
	// The slash form stays itself: the token's aud then names exactly the
	// URL the client connects to, and the Check accepts either form.
	return s.res.Form(id, slash), id, true
}

// resolveResource is canonicalResource plus the agent lookup: an unknown
// agent is errBadTarget, a store failure is returned as is.
func (s *Server) resolveResource(ctx context.Context, raw string) (string, *store.Agent, error) {
	res, id, ok := s.canonicalResource(raw)
	if !ok {
		return "", nil, errBadTarget
	}
	if id == "" || s.agents == nil {
		return res, nil, nil
	}
	a, err := s.agents.GetAgent(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return "", nil, errBadTarget
	}
	if err != nil {
		return "", nil, err
	}
	return res, a, nil
}

// allowedScopes are the scopes authorize may grant for a resource (an
// agent's base and rule scopes) and those it grants when none are asked
// for (the base scopes, which its metadata lists).
func (s *Server) allowedScopes(a *store.Agent) (grantable, base []string) {
	if a == nil {
		return s.scopes, s.baseScopes
	}
	return a.GrantableScopes(s.baseScopes), a.BaseScopes(s.baseScopes)
}

// grantScope is the scope authorize grants: the requested scopes that are
// grantable (RFC 6749 §3.3 lets the server grant less than asked; the
// token response names what was granted), sorted and de-duplicated; base
// when none is asked for. ok is false when the request is malformed or
// nothing of it can be granted. Clients stepping up ask for the union of
// what they hold and what a challenge named, which may include scopes this
// resource does not grant: those are dropped, not fatal.
func grantScope(raw string, grantable, base []string) (string, bool) {
	if raw == "" {
		return strings.Join(slices.Compact(slices.Sorted(slices.Values(base))), " "), len(base) > 0
	}
	if len(raw) > maxScopeLen {
		return "", false
	}
	f := strings.Fields(raw)
	if len(f) == 0 || len(f) > maxScopes {
		return "", false
	}
	f = slices.DeleteFunc(f, func(sc string) bool { return !slices.Contains(grantable, sc) })
	if len(f) == 0 {
		return "", false
	}
	slices.Sort(f)
	return strings.Join(slices.Compact(f), " "), true
}

// parseScope checks a space-separated scope against allowed and returns it
// sorted and de-duplicated; "" means every allowed scope.
func (s *Server) parseScope(raw string, allowed []string) (string, bool) {
	if raw == "" {
		return strings.Join(slices.Compact(slices.Sorted(slices.Values(allowed))), " "), true
	}
	if len(raw) > maxScopeLen {
		return "", false
	}
	f := strings.Fields(raw)
	if len(f) == 0 || len(f) > maxScopes {
		return "", false
	}
	for _, sc := range f {
		if !slices.Contains(allowed, sc) {
			return "", false
		}
	}
	slices.Sort(f)
	return strings.Join(slices.Compact(f), " "), true
}

// withParams returns redirectURI with params merged into its query.
func withParams(redirectURI string, params url.Values) (string, error) {
	u, err := url.Parse(redirectURI)
	if err != nil {
		return "", err
	}
	q := u.Query()
	for k, v := range params {
		q[k] = v
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// redirectTo sends the browser to the client's redirect URI with params
// merged into its query. The URI was validated at registration.
func redirectTo(w http.ResponseWriter, redirectURI string, params url.Values) {
	loc, err := withParams(redirectURI, params)
	if err != nil { // registered URIs parse; defensive only
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	h := w.Header()
	h.Set("Location", loc)
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(http.StatusFound)
}

// redirectError returns an authorization error to the client with state and
// iss (RFC 6749 §4.1.2.1, RFC 9207).
func (s *Server) redirectError(w http.ResponseWriter, r *http.Request, redirectURI, state, code, desc string) {
	redirectTo(w, redirectURI, s.errorParams(state, code, desc))
}

func (s *Server) errorParams(state, code, desc string) url.Values {
	v := url.Values{"error": {code}, "iss": {s.issuer}}
	if desc != "" {
		v.Set("error_description", desc)
	}
	if state != "" {
		v.Set("state", state)
	}
	return v
}

// afterLogin continues a pending request once the user is known: agent
// access, then remembered consent (→ code) or the consent page.
func (s *Server) afterLogin(w http.ResponseWriter, r *http.Request, p *store.AuthRequest, user string) {
	ctx := r.Context()
	if p.ClientID == accountClientID {
		s.accountLoggedIn(w, r, p, user)
		return
	}
	if id := s.resourceAgent(p.Resource); id != "" && s.agents != nil {
		a, err := s.agents.GetAgent(ctx, id)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			s.storeError(ctx, "get_agent", err)
			s.pageUnavailable(w)
			return
		}
		if err != nil || !a.Allows(user) {
			if _, err := s.st.TakeAuthRequest(ctx, p.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
				s.storeError(ctx, "take_auth_request", err)
			}
			s.audit(ctx, "access_denied", slog.String("user", user), slog.String("client_id", p.ClientID),
				slog.String("resource", p.Resource), slog.String("reason", "user not allowed on agent"))
			s.failAuthorization(w, r, p, user, "access_denied", "the user may not use this agent")
			return
		}
	}
	ok, err := s.rememberedConsent(ctx, user, p)
	if err != nil {
		s.storeError(ctx, "has_consent", err)
		s.pageUnavailable(w)
		return
	}
	if ok {
		taken, ok := s.takePending(w, r, p.ID, "This sign-in request was already completed.")
		if !ok {
			return
		}
		taken.Groups = p.Groups // the stored request predates the login
		s.issueCode(w, r, taken, user)
		return
	}
	p.UserID = user
	ttl := p.ExpiresAt.Sub(s.now())
	if ttl <= 0 {
		s.ErrorPage(w, http.StatusBadRequest, "Request expired", "This sign-in request has expired. Go back to the application and start again.")
		return
	}
	if err := s.st.PutAuthRequest(ctx, p, ttl); err != nil {
		s.storeError(ctx, "put_auth_request", err)
		s.pageUnavailable(w)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, s.pathURL("/consent?request="+url.QueryEscape(p.ID)), http.StatusFound)
}

// issueCode stores a fresh authorization code for the (already taken)
// pending request and redirects to the client with code, state and iss.
func (s *Server) issueCode(w http.ResponseWriter, r *http.Request, p *store.AuthRequest, user string) {
	ctx := r.Context()
	now := s.now()
	family := token.Random(16)
	code := s.secret(family)
	c := &store.AuthCode{
		Hash:          token.Address(code),
		ClientID:      p.ClientID,
		UserID:        user,
		RedirectURI:   p.RedirectURI,
		Scope:         p.Scope,
		Resource:      p.Resource,
		CodeChallenge: p.CodeChallenge,
		FamilyID:      family,
		AuthTime:      now,
		ExpiresAt:     now.Add(s.cfg.TTL.Code.D()),
		Groups:        p.Groups,
	}
	if err := s.st.PutCode(ctx, c); err != nil {
		s.storeError(ctx, "put_code", err)
		s.redirectError(w, r, p.RedirectURI, p.State, "temporarily_unavailable", "the service is temporarily unavailable")
		return
	}
	s.audit(ctx, "code_issued", slog.String("user", user), slog.String("client_id", p.ClientID),
		slog.String("resource", p.Resource), slog.String("scope", p.Scope))
	v := url.Values{"code": {code}, "iss": {s.issuer}}
	if p.State != "" {
		v.Set("state", p.State)
	}
	redirectTo(w, p.RedirectURI, v)
}
