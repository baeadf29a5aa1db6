package oauthsrv

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/mcpgateway/mcp-gateway/store"
	"github.com/mcpgateway/mcp-gateway/token"
)

// LoginProvider authenticates the user of a pending authorization request.
// The built-in users are one provider; upstream OIDC and a web-app hand-off
// plug in the same way. A provider ends a successful login by calling
// Server.CompleteLogin, which sets the session cookie, checks agent access
// and moves on to consent.
type LoginProvider interface {
	// Start begins the login for pending request p. It writes the whole
	// response: a login page or a redirect to an identity provider.
	Start(w http.ResponseWriter, r *http.Request, p *store.AuthRequest)
	// Routes are the provider's own paths (e.g. "/login",
	// "/login/callback"); Handler mounts them with request metrics.
	Routes() map[string]http.Handler
}

const (
	maxUsernameLen = 256
	maxPasswordLen = 1024
	userLockWindow = 15 * time.Minute
)

// cookie builds one of our cookies: never readable by scripts, not sent on
// cross-site subrequests, host-only.
func (s *Server) cookie(name, value string, maxAge time.Duration) *http.Cookie {
	c := &http.Cookie{Name: name, Value: value, Path: "/", HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode}
	if maxAge > 0 {
		c.MaxAge = int(maxAge / time.Second)
	}
	return c
}

// validSecret reports whether v looks like a value minted by token.Random(32).
func validSecret(v string) bool {
	if len(v) != 43 {
		return false
	}
	for i := 0; i < len(v); i++ {
		if !isB64URL(v[i]) {
			return false
		}
	}
	return true
}

// browserID returns this browser's binding id (a cookie), creating it on
// first use. Pending requests remember its hash, so a login or consent link
// only works in the browser that started the authorization.
func (s *Server) browserID(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(s.browserCookie); err == nil && validSecret(c.Value) {
		return c.Value
	}
	v := token.Random(32)
	http.SetCookie(w, s.cookie(s.browserCookie, v, 0))
	return v
}

// sessionUser is the logged-in user of the request's session cookie, or "".
func (s *Server) sessionUser(r *http.Request) (string, error) {
	u, _, err := s.sessionLogin(r)
	return u, err
}

// sessionLogin is the logged-in user of the request's session cookie (""
// when none) and the groups the login provider gave at login.
func (s *Server) sessionLogin(r *http.Request) (string, []string, error) {
	c, err := r.Cookie(s.sessionCookie)
	if err != nil || !validSecret(c.Value) {
		return "", nil, nil
	}
	sess, err := s.st.GetSession(r.Context(), token.Hash(c.Value))
	if errors.Is(err, store.ErrNotFound) {
		return "", nil, nil
	}
	if err != nil {
		return "", nil, fmt.Errorf("get session: %w", err)
	}
	if !s.now().Before(sess.ExpiresAt) {
		return "", nil, nil
	}
	return sess.UserID, sess.Groups, nil
}

// Pending loads pending request id for a login or consent page and checks
// that it belongs to this browser. On failure it has written an error page.
func (s *Server) Pending(w http.ResponseWriter, r *http.Request, id string) (*store.AuthRequest, bool) {
	ctx := r.Context()
	if id == "" || len(id) > 64 {
		s.ErrorPage(w, http.StatusBadRequest, "Invalid request", "This sign-in link is incomplete. Go back to the application and start again.")
		return nil, false
	}
	p, err := s.st.GetAuthRequest(ctx, id)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		s.storeError(ctx, "get_auth_request", err)
		s.pageUnavailable(w)
		return nil, false
	}
	if err != nil || !s.now().Before(p.ExpiresAt) {
		s.ErrorPage(w, http.StatusBadRequest, "Request expired", "This sign-in request has expired or was already used. Go back to the application and start again.")
		return nil, false
	}
	c, err := r.Cookie(s.browserCookie)
	if err != nil {
		// No binding cookie at all: most often the sign-in began at another
		// host name of this gateway (localhost for 127.0.0.1), whose cookie
		// this one never sees. Say so, with the address to use.
		s.ErrorPage(w, http.StatusBadRequest, "Different browser or address", "This browser has no sign-in cookie for "+s.issuer+
			". The sign-in was started in another browser, or at another address of this gateway (such as localhost instead of 127.0.0.1): browsers keep cookies per host name. Give the application the address "+s.issuer+" and start again.")
		return nil, false
	}
	if p.BrowserHash == "" ||
		subtle.ConstantTimeCompare([]byte(token.Hash(c.Value)), []byte(p.BrowserHash)) != 1 {
		s.ErrorPage(w, http.StatusBadRequest, "Different browser", "This sign-in request was started in another browser. Go back to the application and start again here.")
		return nil, false
	}
	return p, true
}

// validCSRF compares the form's token with the pending request's in
// constant time.
func validCSRF(p *store.AuthRequest, got string) bool {
	return p.CSRF != "" && subtle.ConstantTimeCompare([]byte(p.CSRF), []byte(got)) == 1
}

// CompleteLogin is called by a login provider once it has authenticated
// userID for pending request pendingID: it starts a session (cookie + a
// hash of it in the store), then checks agent access and shows consent or
// issues the code.
func (s *Server) CompleteLogin(w http.ResponseWriter, r *http.Request, pendingID, userID string) {
	s.CompleteLoginGroups(w, r, pendingID, userID, nil)
}

// CompleteLoginGroups is CompleteLogin for a provider that knows the
// user's groups: they are kept in the session and travel through the code
// and the refresh family into every access token's groups claim, where
// tool-policy rules naming groups match them. The provider has bounded them
// (store.NormalizeGroups); groups that fail it here end the login.
func (s *Server) CompleteLoginGroups(w http.ResponseWriter, r *http.Request, pendingID, userID string, groups []string) {
	ctx := r.Context()
	if userID == "" {
		s.ErrorPage(w, http.StatusForbidden, "Sign-in failed", "The identity provider did not name a user.")
		return
	}
	groups, err := store.NormalizeGroups(groups)
	if err != nil {
		s.ErrorPage(w, http.StatusForbidden, "Sign-in failed", "The identity provider sent unusable groups for the user.")
		return
	}
	p, ok := s.Pending(w, r, pendingID)
	if !ok {
		return
	}
	now := s.now()
	sid := token.Random(32)
	ttl := s.cfg.TTL.Session.D()
	if err := s.st.PutSession(ctx, token.Hash(sid), &store.Session{UserID: userID, Groups: groups, CreatedAt: now, ExpiresAt: now.Add(ttl)}); err != nil {
		s.storeError(ctx, "put_session", err)
		s.pageUnavailable(w)
		return
	}
	if old, err := r.Cookie(s.sessionCookie); err == nil && validSecret(old.Value) {
		if err := s.st.DeleteSession(ctx, token.Hash(old.Value)); err != nil && !errors.Is(err, store.ErrNotFound) {
			s.storeError(ctx, "delete_session", err)
		}
	}
	http.SetCookie(w, s.cookie(s.sessionCookie, sid, ttl))
	s.audit(ctx, "login", slog.String("user", userID), slog.String("client_id", p.ClientID), slog.String("ip", s.clientIP(r)))
	p.Groups = groups
	s.afterLogin(w, r, p, userID)
}

// parsePageForm reads a login/consent form post (readForm). On failure it
// has written an error page: 413 for a form too large, else 400.
func (s *Server) parsePageForm(w http.ResponseWriter, r *http.Request) (url.Values, bool) {
	f, err := readForm(w, r)
	if err == nil {
		return f, true
	}
	if oe := (*oauthError)(nil); errors.As(err, &oe) && oe.status == http.StatusRequestEntityTooLarge {
		s.ErrorPage(w, http.StatusRequestEntityTooLarge, "Invalid request", "The form is too large.")
	} else {
		s.ErrorPage(w, http.StatusBadRequest, "Invalid request", "The form was not sent correctly.")
	}
	return nil, false
}

func (s *Server) clientName(ctx context.Context, clientID string) (string, error) {
	return s.clientLabel(ctx, clientID) // clients.go: CIMD documents and the account login too
}

// builtinLogin checks usernames and bcrypt hashes from the configuration.
type builtinLogin struct {
	s     *Server
	users map[string][]byte
	// groups are login.users[].groups, by username.
	groups map[string][]string
	dummy  []byte // compared for unknown users so timing does not reveal them
}

func newBuiltinLogin(s *Server, users map[string]string, groups map[string][]string) (*builtinLogin, error) {
	b := &builtinLogin{s: s, users: make(map[string][]byte, len(users)), groups: groups}
	cost := bcrypt.MinCost
	for name, h := range users {
		c, err := bcrypt.Cost([]byte(h))
		if err != nil {
			return nil, fmt.Errorf("user %q: password hash is not bcrypt: %w", name, err)
		}
		cost = max(cost, c)
		b.users[name] = []byte(h)
	}
	dummy, err := bcrypt.GenerateFromPassword([]byte(token.Random(16)), cost)
	if err != nil {
		return nil, fmt.Errorf("dummy hash: %w", err)
	}
	b.dummy = dummy
	return b, nil
}

func (b *builtinLogin) Start(w http.ResponseWriter, r *http.Request, p *store.AuthRequest) {
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, b.s.pathURL("/login?request="+url.QueryEscape(p.ID)), http.StatusFound)
}

func (b *builtinLogin) Routes() map[string]http.Handler {
	return map[string]http.Handler{"/login": http.HandlerFunc(b.handle)}
}

func (b *builtinLogin) handle(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		p, ok := b.s.Pending(w, r, r.URL.Query().Get("request"))
		if ok {
			b.form(w, r, http.StatusOK, p, "", "")
		}
	case http.MethodPost:
		b.submit(w, r)
	default:
		b.s.pageMethodNotAllowed(w, "GET, HEAD, POST")
	}
}

type loginData struct {
	ClientName, RequestID, CSRF, Username, Error string
	// ClientHost: a CIMD client's verified domain; Unverified: the name is
	// whatever a dynamic registration claimed.
	ClientHost string
	Unverified bool
}

func (b *builtinLogin) form(w http.ResponseWriter, r *http.Request, status int, p *store.AuthRequest, username, msg string) {
	name, err := b.s.clientName(r.Context(), p.ClientID)
	if errors.Is(err, store.ErrNotFound) {
		b.s.ErrorPage(w, http.StatusBadRequest, "Unknown application", "The application asking for access is no longer registered.")
		return
	}
	if err != nil {
		b.s.storeError(r.Context(), "get_client", err)
		b.s.pageUnavailable(w)
		return
	}
	b.s.render(w, status, b.s.pages.login, loginData{ClientName: name, RequestID: p.ID, CSRF: p.CSRF, Username: username, Error: msg,
		ClientHost: b.s.clientHost(p.ClientID), Unverified: b.s.unverifiedName(p.ClientID)})
}

func (b *builtinLogin) submit(w http.ResponseWriter, r *http.Request) {
	s := b.s
	ctx := r.Context()
	f, ok := s.parsePageForm(w, r)
	if !ok {
		return
	}
	p, ok := s.Pending(w, r, f.Get("request"))
	if !ok {
		return
	}
	if !validCSRF(p, f.Get("csrf")) {
		s.ErrorPage(w, http.StatusForbidden, "Form expired", "The sign-in form was not sent by this page or has expired. Go back to the application and start again.")
		return
	}
	ip := s.clientIP(r)
	username, password := f.Get("username"), f.Get("password")
	fail := func(reason string) {
		s.audit(ctx, "login_failed", slog.String("user", trunc(username, maxUsernameLen)), slog.String("client_id", p.ClientID),
			slog.String("ip", ip), slog.String("reason", reason))
	}
	if pass, limited := s.limitIP(w, r, "login", s.cfg.RateLimit.Login, true); !pass {
		if limited {
			fail("rate_limited")
		}
		return
	}
	if username == "" || password == "" {
		b.form(w, r, http.StatusBadRequest, p, trunc(username, maxUsernameLen), "Enter your username and password.")
		return
	}
	// A throttled attempt is answered before its password is looked at: the
	// same 429 whether it was right or wrong, and no bcrypt work for an
	// attacker to spend.
	keys, ok := b.takeFailureHits(w, r, ip, username, fail)
	if !ok {
		return
	}
	if !b.verify(username, password) {
		fail("bad_credentials")
		b.form(w, r, http.StatusUnauthorized, p, trunc(username, maxUsernameLen), "Wrong username or password.")
		return
	}
	b.refund(r, keys)
	s.setDeviceCookie(w, username)
	s.CompleteLoginGroups(w, r, p.ID, username, b.groups[username])
}

// takeFailureHits takes one hit on each budget of failed logins (15-minute
// windows of rate_limit.login_per_user) that binds this attempt: per
// (IP, username) always; per username from a browser that never signed in
// as that user, and per device from one that did (OWASP's device cookies).
// Strangers who use up a user's budget so lock out only browsers that never
// signed in as them, and a stolen device cookie guesses no faster than a
// stranger, from however many addresses.
// The hit comes before the password check, so that parallel guesses cannot
// all get past a budget; a success, or a refusal (nothing was checked),
// gives it back. When the attempt may not go on (over a budget: 429; the
// store failing: 503) it has answered and returns false.
func (b *builtinLogin) takeFailureHits(w http.ResponseWriter, r *http.Request, ip, username string, fail func(string)) (keys []string, ok bool) {
	s := b.s
	limit := s.cfg.RateLimit.LoginPerUser
	if limit <= 0 {
		return nil, true
	}
	user := strings.ToLower(username)
	budgets := []string{"rl:login_ip_user:" + token.Hash(ip+"\x00"+user)}
	if dev := s.knownDevice(r, user); dev != "" {
		budgets = append(budgets, "rl:login_device:"+token.Hash(dev))
	} else {
		budgets = append(budgets, "rl:login_user:"+token.Hash(user))
	}
	for _, key := range budgets {
		limited, retry, err := s.rateLimit(r.Context(), key, limit, userLockWindow)
		if err != nil {
			b.refund(r, keys)
			s.storeError(r.Context(), "rate_limit", err)
			s.pageUnavailable(w)
			return nil, false
		}
		keys = append(keys, key)
		if limited {
			b.refund(r, keys)
			fail("rate_limited")
			s.pageRateLimited(w, "login", retry)
			return nil, false
		}
	}
	return keys, true
}

// refund gives back the hits an attempt took on budgets of failures.
func (b *builtinLogin) refund(r *http.Request, keys []string) {
	for _, key := range keys {
		if err := b.s.st.Refund(r.Context(), key); err != nil {
			// The answer stands; the budget is one lower until its window ends.
			b.s.storeError(r.Context(), "rate_limit_refund", err)
		}
	}
}

func (b *builtinLogin) verify(username, password string) bool {
	h, known := b.users[username]
	if !known || len(username) > maxUsernameLen {
		h, known = b.dummy, false
	}
	if len(password) > maxPasswordLen {
		password = password[:maxPasswordLen] // still hash: no early, faster answer
		known = false
	}
	return bcrypt.CompareHashAndPassword(h, []byte(password)) == nil && known
}
