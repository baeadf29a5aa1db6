package oauthsrv

import (
	"context"
	"crypto/subtle"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/mcpgateway/mcp-gateway/internal/metrics"
	"github.com/mcpgateway/mcp-gateway/store"
	"github.com/mcpgateway/mcp-gateway/token"
)

// The account page (/account) lets a signed-in user see and revoke what
// they granted: approved clients (consents), live refresh-token families, and
// their own oag_ keys (create shows the key once). Signing in for it reuses
// the authorization login: /account/login stores a pending request without
// a client (accountClientID) and hands it to the login provider, whatever it
// is; CompleteLogin → afterLogin → accountLoggedIn sends the browser back
// here. A failed provider login comes back as /account?error=…, which shows a
// sign-in link instead of starting again (no redirect loop).
//
// Forms carry a CSRF token derived from the session secret, so a token is
// bound to one session and dies with it.

// accountClientID marks a pending request made by /account/login. Real
// client ids are never empty (authorize refuses an empty one).
const accountClientID = ""

const (
	maxAccountKeys  = 20  // live oag_ keys a user may create here
	maxAccountItems = 200 // rows shown per list
	maxKeyNameLen   = 100
)

// keyLifetimes are the choices of the create-key form, in days (0: never).
var keyLifetimes = map[string]time.Duration{"30": 30 * 24 * time.Hour, "90": 90 * 24 * time.Hour, "365": 365 * 24 * time.Hour, "0": 0}

type accountClient struct {
	ID, Name, Host string
	Resources      []string
	Scopes         string
}

type accountFamily struct {
	ID, Client, Resource, Scope, Created, Expires string
}

type accountKey struct {
	ID, Name, Created, Expires, LastUsed string
	Scopes                               string // "" when unrestricted (the agents' base scopes)
}

type accountData struct {
	// Base is public_url's path ("" at the root): the forms post below it
	// from any page URL (/account, /account/keys).
	Base            string
	SignedOut       bool
	User, CSRF      string
	Notice, Problem string
	NewKey, NewName string
	Clients         []accountClient
	Families        []accountFamily
	Keys            []accountKey
	More            bool // a list was cut at maxAccountItems
	CanCreateKey    bool
	// KeyScopes are the declared scopes a new key may be restricted to.
	KeyScopes []scopeView
}

var accountNotices = map[string]string{
	"client":      "The application's access was revoked.",
	"family":      "The sign-in was revoked.",
	"key":         "The key was revoked.",
	"key_created": "Your new key is below. Copy it now: it is not shown again.",
	"signed_out":  "You are signed out.",
}

// accountSession returns the signed-in user and the session secret ("" when
// signed out).
func (s *Server) accountSession(r *http.Request) (user, sid string, err error) {
	user, err = s.sessionUser(r)
	if err != nil || user == "" {
		return "", "", err
	}
	c, err := r.Cookie(s.sessionCookie)
	if err != nil {
		return "", "", nil
	}
	return user, c.Value, nil
}

// accountCSRF binds the account forms to the session: a hash of its secret
// (which never leaves the HttpOnly cookie), domain-separated from the
// session's store key.
func accountCSRF(sid string) string { return token.Hash("mcpgw-account-csrf\x00" + sid) }

func (s *Server) handleAccount(w http.ResponseWriter, r *http.Request) {
	if !isGet(r) {
		s.pageMethodNotAllowed(w, "GET, HEAD")
		return
	}
	ctx := r.Context()
	user, sid, err := s.accountSession(r)
	if err != nil {
		s.storeError(ctx, "get_session", err)
		s.pageUnavailable(w)
		return
	}
	q := r.URL.Query()
	if user == "" {
		d := accountData{Base: s.basePath, SignedOut: true}
		if done := q.Get("done"); done == "signed_out" {
			d.Notice = accountNotices[done]
		}
		if q.Get("error") != "" { // a failed provider login: fixed text, never the reflected description
			d.Problem = "Sign-in did not complete. You can try again."
		}
		s.render(w, http.StatusOK, s.pages.account, d)
		return
	}
	notice := accountNotices[q.Get("done")]
	key, name, ok := s.takeNewKeyFlash(w, r, sid, user)
	switch {
	case ok:
		notice = accountNotices["key_created"]
	case q.Get("done") == "key_created": // a reload: the key was shown once already
		notice = "Your new key was created and shown once. If you did not copy it, revoke it and create another."
	}
	s.showAccount(w, r, user, sid, http.StatusOK, notice, key, name)
}

// showAccount renders the signed-in page; newKey is shown once after create.
func (s *Server) showAccount(w http.ResponseWriter, r *http.Request, user, sid string, status int, notice, newKey, newName string) {
	ctx := r.Context()
	d := accountData{Base: s.basePath, User: user, CSRF: accountCSRF(sid), Notice: notice, NewKey: newKey, NewName: newName}
	consents, err := s.st.ListConsents(ctx, user)
	if err != nil {
		s.storeError(ctx, "list_consents", err)
		s.pageUnavailable(w)
		return
	}
	families, err := s.st.ListFamilies(ctx, user)
	if err != nil {
		s.storeError(ctx, "list_families", err)
		s.pageUnavailable(w)
		return
	}
	keys, err := s.userKeys(ctx, user)
	if err != nil {
		s.storeError(ctx, "list_keys", err)
		s.pageUnavailable(w)
		return
	}
	labels := map[string][2]string{} // client id → name, host
	label := func(id string) ([2]string, error) {
		if l, ok := labels[id]; ok {
			return l, nil
		}
		name, err := s.accountClientName(ctx, id)
		if err != nil {
			return [2]string{}, err
		}
		labels[id] = [2]string{name, s.clientHost(id)}
		return labels[id], nil
	}
	// Approved clients: remembered consents, and clients holding a live
	// sign-in although their consent is not remembered (loopback, custom
	// scheme: asked each time), so that every one can be revoked here.
	byClient := map[string]int{} // client id → index in d.Clients
	entry := func(id string) (*accountClient, bool, error) {
		if i, ok := byClient[id]; ok {
			return &d.Clients[i], true, nil
		}
		if len(d.Clients) == maxAccountItems {
			d.More = true
			return nil, false, nil
		}
		l, err := label(id)
		if err != nil {
			return nil, false, err
		}
		byClient[id] = len(d.Clients)
		d.Clients = append(d.Clients, accountClient{ID: id, Name: l[0], Host: l[1]})
		return &d.Clients[len(d.Clients)-1], true, nil
	}
	resLabel := func(res string) string {
		if res == s.issuer {
			return "all agents you may use"
		}
		return res
	}
	for _, c := range consents {
		ac, ok, err := entry(c.ClientID)
		if err != nil {
			s.storeError(ctx, "get_client", err)
			s.pageUnavailable(w)
			return
		}
		if ok {
			ac.Resources = append(ac.Resources, s.consentLabel(resLabel(c.Resource), c))
		}
	}
	remembered := len(byClient)
	for _, f := range families {
		if i, ok := byClient[f.ClientID]; ok && i < remembered {
			continue // listed by its consents
		}
		ac, ok, err := entry(f.ClientID)
		if err != nil {
			s.storeError(ctx, "get_client", err)
			s.pageUnavailable(w)
			return
		}
		if l := resLabel(f.Resource) + " (" + s.scopeText(f.Scope) + "), asked at each sign-in"; ok && !slices.Contains(ac.Resources, l) {
			ac.Resources = append(ac.Resources, l)
		}
	}
	for _, f := range families {
		if len(d.Families) == maxAccountItems {
			d.More = true
			break
		}
		l, err := label(f.ClientID)
		if err != nil {
			s.storeError(ctx, "get_client", err)
			s.pageUnavailable(w)
			return
		}
		d.Families = append(d.Families, accountFamily{ID: f.ID, Client: l[0], Resource: f.Resource, Scope: s.scopeText(f.Scope),
			Created: day(f.CreatedAt), Expires: day(f.ExpiresAt)})
	}
	for _, k := range keys {
		ak := accountKey{ID: k.ID, Name: k.Name, Created: day(k.CreatedAt), Expires: "never", LastUsed: "never", Scopes: strings.Join(k.Scopes, " ")}
		if !k.ExpiresAt.IsZero() {
			ak.Expires = day(k.ExpiresAt)
		}
		if !k.LastUsed.IsZero() {
			ak.LastUsed = day(k.LastUsed)
		}
		d.Keys = append(d.Keys, ak)
	}
	d.CanCreateKey = len(keys) < maxAccountKeys
	d.KeyScopes = s.scopeViews(strings.Join(s.scopes, " "))
	s.render(w, status, s.pages.account, d)
}

// consentLabel describes one remembered approval: resource, scopes and
// where it returns. A record from before redirect URIs were remembered
// still shows (and is revoked with its client) but approves nothing.
func (s *Server) consentLabel(res string, c *store.Consent) string {
	if c.RedirectURI == "" {
		return res + " (" + s.scopeText(c.Scope) + "), from an earlier version: no longer used, you will be asked again"
	}
	return res + " (" + s.scopeText(c.Scope) + "), returns to " + redirectHost(c.RedirectURI)
}

func day(t time.Time) string { return t.UTC().Format("2006-01-02") }

// accountClientName names a client without network access: a CIMD client by
// its cached document or its host, a registered one by its record.
func (s *Server) accountClientName(ctx context.Context, id string) (string, error) {
	if s.isCIMDClient(id) {
		if c := s.cimd.cached(id); c != nil {
			return displayName(c), nil
		}
		return "the application at " + s.clientHost(id), nil
	}
	c, err := s.st.GetClient(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return "an application no longer registered (" + trunc(id, 64) + ")", nil
	}
	if err != nil {
		return "", err
	}
	return displayName(c), nil
}

// userKeys are the user's live, unrevoked oag_ keys, oldest first.
func (s *Server) userKeys(ctx context.Context, user string) ([]*store.APIKey, error) {
	all, err := s.st.ListKeys(ctx)
	if err != nil {
		return nil, err
	}
	var out []*store.APIKey
	for _, k := range all {
		if k.Kind == store.KeyUser && k.User == user && !k.Revoked {
			out = append(out, k)
		}
	}
	return out, nil
}

// handleAccountAction serves /account/login (GET) and the POST forms
// /account/revoke, /account/keys and /account/logout.
func (s *Server) handleAccountAction(w http.ResponseWriter, r *http.Request) {
	action := strings.TrimPrefix(r.URL.Path, "/account/")
	switch action {
	case "login":
		if !isGet(r) {
			s.pageMethodNotAllowed(w, "GET, HEAD")
			return
		}
		s.accountLogin(w, r)
		return
	case "revoke", "keys", "logout":
	default:
		s.ErrorPage(w, http.StatusNotFound, "Not found", "There is no such page.")
		return
	}
	if isGet(r) { // a reload or a bookmark of a form's address: the page itself
		s.accountDone(w, r, "")
		return
	}
	if r.Method != http.MethodPost {
		s.pageMethodNotAllowed(w, "GET, HEAD, POST")
		return
	}
	ctx := r.Context()
	if o := r.Header.Get("Origin"); o != "" && o != s.base.Scheme+"://"+s.base.Host {
		s.accountError(w, http.StatusForbidden, "Form expired", "This form was sent from another site.")
		return
	}
	f, ok := s.parsePageForm(w, r)
	if !ok {
		return
	}
	user, sid, err := s.accountSession(r)
	if err != nil {
		s.storeError(ctx, "get_session", err)
		s.pageUnavailable(w)
		return
	}
	if user == "" {
		s.accountError(w, http.StatusForbidden, "Signed out", "Your session has ended. Sign in on the account page again.")
		return
	}
	if got := f.Get("csrf"); subtle.ConstantTimeCompare([]byte(got), []byte(accountCSRF(sid))) != 1 {
		s.accountError(w, http.StatusForbidden, "Form expired", "This form was not sent by your account page or has expired. Reload the account page and try again.")
		return
	}
	switch action {
	case "revoke":
		s.accountRevoke(w, r, f, user)
	case "keys":
		s.accountCreateKey(w, r, f, user, sid)
	case "logout":
		if err := s.st.DeleteSession(ctx, token.Hash(sid)); err != nil && !errors.Is(err, store.ErrNotFound) {
			s.storeError(ctx, "delete_session", err)
			s.pageUnavailable(w)
			return
		}
		c := s.cookie(s.sessionCookie, "", 0)
		c.MaxAge = -1
		http.SetCookie(w, c)
		s.audit(ctx, "logout", slog.String("user", user), slog.String("ip", s.clientIP(r)))
		s.accountDone(w, r, "signed_out")
	}
}

// accountDone redirects back to the page (post/redirect/get).
func (s *Server) accountDone(w http.ResponseWriter, r *http.Request, done string) {
	w.Header().Set("Cache-Control", "no-store")
	to := "/account"
	if done != "" {
		to += "?done=" + url.QueryEscape(done)
	}
	http.Redirect(w, r, s.pathURL(to), http.StatusSeeOther)
}

// accountLogin starts a login whose only purpose is this page.
func (s *Server) accountLogin(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	user, err := s.sessionUser(r)
	if err != nil {
		s.storeError(ctx, "get_session", err)
		s.pageUnavailable(w)
		return
	}
	if user != "" {
		s.accountDone(w, r, "")
		return
	}
	if pass, _ := s.limitIP(w, r, "authorize", s.cfg.RateLimit.Authorize, true); !pass {
		return
	}
	now := s.now()
	ttl := s.cfg.TTL.AuthRequest.D()
	p := &store.AuthRequest{
		ID:          token.Random(16),
		ClientID:    accountClientID,
		RedirectURI: s.pathURL("/account"), // where FailLogin sends the browser
		CSRF:        token.Random(32),
		BrowserHash: token.Hash(s.browserID(w, r)),
		CreatedAt:   now,
		ExpiresAt:   now.Add(ttl),
	}
	if err := s.st.PutAuthRequest(ctx, p, ttl); err != nil {
		s.storeError(ctx, "put_auth_request", err)
		s.pageUnavailable(w)
		return
	}
	s.login.Start(w, r, p)
}

// accountLoggedIn ends an account login (called by afterLogin once the
// session cookie is set).
func (s *Server) accountLoggedIn(w http.ResponseWriter, r *http.Request, p *store.AuthRequest, user string) {
	ctx := r.Context()
	if _, err := s.st.TakeAuthRequest(ctx, p.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
		s.storeError(ctx, "take_auth_request", err)
	}
	s.audit(ctx, "account_login", slog.String("user", user), slog.String("ip", s.clientIP(r)))
	s.accountDone(w, r, "")
}

// accountRevoke revokes one client (its consents and refresh families), one
// family or one key, all of them the user's own.
func (s *Server) accountRevoke(w http.ResponseWriter, r *http.Request, f url.Values, user string) {
	ctx := r.Context()
	clientID, familyID, keyID := f.Get("client"), f.Get("family"), f.Get("key")
	set := 0
	for _, v := range []string{clientID, familyID, keyID} {
		if v != "" {
			set++
		}
	}
	if set != 1 || len(clientID) > maxClientIDLen || len(familyID) > 64 || len(keyID) > 64 {
		s.ErrorPage(w, http.StatusBadRequest, "Invalid request", "Choose one item to revoke.")
		return
	}
	if keyID != "" {
		keys, err := s.userKeys(ctx, user)
		if err != nil {
			s.storeError(ctx, "list_keys", err)
			s.pageUnavailable(w)
			return
		}
		if !slices.ContainsFunc(keys, func(k *store.APIKey) bool { return k.ID == keyID }) {
			s.ErrorPage(w, http.StatusNotFound, "Not found", "You have no such key (it may already be revoked).")
			return
		}
		if _, err := s.st.RevokeKey(ctx, keyID); err != nil && !errors.Is(err, store.ErrNotFound) {
			s.storeError(ctx, "revoke_key", err)
			s.pageUnavailable(w)
			return
		}
		metrics.TokensRevoked.WithLabelValues("api_key", "user_request").Inc()
		s.audit(ctx, "key_revoked", slog.String("user", user), slog.String("key_id", keyID), slog.String("reason", "user_request"))
		s.accountDone(w, r, "key")
		return
	}
	families, err := s.st.ListFamilies(ctx, user)
	if err != nil {
		s.storeError(ctx, "list_families", err)
		s.pageUnavailable(w)
		return
	}
	var revoke []*store.RefreshFamily
	for _, fam := range families {
		if (familyID != "" && fam.ID == familyID) || (clientID != "" && fam.ClientID == clientID) {
			revoke = append(revoke, fam)
		}
	}
	if familyID != "" && len(revoke) == 0 {
		s.ErrorPage(w, http.StatusNotFound, "Not found", "You have no such sign-in (it may already be revoked or expired).")
		return
	}
	if clientID != "" {
		if err := s.st.DeleteConsents(ctx, user, clientID); err != nil {
			s.storeError(ctx, "delete_consents", err)
			s.pageUnavailable(w)
			return
		}
	}
	for _, fam := range revoke {
		if err := s.revokeGrant(ctx, fam.ID, fam.AccessExp.Add(token.Leeway), "user_request"); err != nil {
			s.storeError(ctx, "revoke_family", err)
			s.pageUnavailable(w)
			return
		}
	}
	if clientID != "" {
		s.audit(ctx, "client_access_revoked", slog.String("user", user), slog.String("client_id", trunc(clientID, 256)),
			slog.Int("families", len(revoke)), slog.String("reason", "user_request"))
		s.accountDone(w, r, "client")
		return
	}
	s.audit(ctx, "token_revoked", slog.String("kind", "refresh_family"), slog.String("user", user),
		slog.String("client_id", revoke[0].ClientID), slog.String("resource", revoke[0].Resource), slog.String("reason", "user_request"))
	s.accountDone(w, r, "family")
}

// accountCreateKey makes an oag_ key for the user and shows it once.
func (s *Server) accountCreateKey(w http.ResponseWriter, r *http.Request, f url.Values, user, sid string) {
	ctx := r.Context()
	name := strings.TrimSpace(f.Get("name"))
	if !cleanText(name, maxKeyNameLen) {
		s.accountError(w, http.StatusBadRequest, "Key not created", "The key name is too long or contains control characters.")
		return
	}
	life, ok := keyLifetimes[f.Get("expires")]
	if !ok {
		s.accountError(w, http.StatusBadRequest, "Key not created", "Choose how long the key lasts.")
		return
	}
	keys, err := s.userKeys(ctx, user)
	if err != nil {
		s.storeError(ctx, "list_keys", err)
		s.pageUnavailable(w)
		return
	}
	if len(keys) >= maxAccountKeys {
		s.accountError(w, http.StatusConflict, "Too many keys", "You already have the most keys allowed. Revoke one you no longer use first.")
		return
	}
	// Ticked scopes restrict the key (tool policies apply to them); none
	// leaves it the agents' base scopes.
	// One checkbox per scope, "scope:<name>" (page forms refuse repeats).
	var scopes []string
	for field := range f {
		sc, ok := strings.CutPrefix(field, "scope:")
		if !ok {
			continue
		}
		if !slices.Contains(s.scopes, sc) {
			s.accountError(w, http.StatusBadRequest, "Key not created", "Choose scopes from the list.")
			return
		}
		scopes = append(scopes, sc)
	}
	slices.Sort(scopes)
	now := s.now().UTC()
	key, hash := token.NewAPIKey(token.PrefixUserKey)
	k := &store.APIKey{ID: "key_" + token.Random(12), Hash: hash, Kind: store.KeyUser, User: user, Name: name, Scopes: scopes, CreatedAt: now}
	if life > 0 {
		k.ExpiresAt = now.Add(life)
	}
	if err := s.st.CreateKey(ctx, k); err != nil {
		s.storeError(ctx, "create_key", err)
		s.pageUnavailable(w)
		return
	}
	s.audit(ctx, "key_created", slog.String("user", user), slog.String("key_id", k.ID), slog.String("kind", string(k.Kind)),
		slog.String("name", name), slog.String("scope", strings.Join(scopes, " ")), slog.String("via", "account"))
	if err := s.setNewKeyFlash(w, sid, user, key, name); err != nil { // AES and JSON of a string: never fails
		s.log.Error("new key flash", "err", err)
		s.pageUnavailable(w)
		return
	}
	s.accountDone(w, r, "key_created")
}
