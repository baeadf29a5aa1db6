package oauthsrv

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/mcpgateway/mcp-gateway/metrics"
	"github.com/mcpgateway/mcp-gateway/store"
	"github.com/mcpgateway/mcp-gateway/token"
)

const maxSecretLen = 512 // codes and refresh tokens we mint are 43 characters

type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	RefreshToken string `json:"refresh_token,omitempty"`
	Scope        string `json:"scope,omitempty"`
}

func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		writeMethodNotAllowed(w, "POST, OPTIONS")
		return
	}
	if pass, _ := s.limitIP(w, r, "token", s.cfg.RateLimit.Token, false); !pass {
		return
	}
	form, ok := readForm(w, r)
	if !ok {
		return
	}
	gt := form.Get("grant_type")
	switch gt {
	case "":
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "grant_type is required")
		return
	case grantCode, grantRefresh:
	default:
		writeOAuthError(w, http.StatusBadRequest, "unsupported_grant_type", "grant_type must be authorization_code or refresh_token")
		return
	}
	client, ok := s.tokenClient(w, r, form)
	if !ok {
		return
	}
	if !slices.Contains(client.GrantTypes, gt) {
		writeOAuthError(w, http.StatusBadRequest, "unauthorized_client", "the client is not registered for this grant type")
		return
	}
	if gt == grantCode {
		s.codeGrant(w, r, form, client)
	} else {
		s.refreshGrant(w, r, form, client)
	}
}

// tokenClient identifies the public client by client_id (form, or the user
// name of HTTP Basic for clients that send it there).
func (s *Server) tokenClient(w http.ResponseWriter, r *http.Request, form url.Values) (*store.Client, bool) {
	id := form.Get("client_id")
	if u, _, ok := r.BasicAuth(); ok {
		bu, err := url.QueryUnescape(u) // RFC 6749 §2.3.1 form-encodes Basic credentials
		if err != nil || (id != "" && bu != id) {
			writeOAuthError(w, http.StatusBadRequest, "invalid_request", "client_id in the form and in Authorization differ")
			return nil, false
		}
		id = bu
	}
	if id == "" {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "client_id is required")
		return nil, false
	}
	if len(id) > maxClientIDLen {
		writeOAuthError(w, http.StatusUnauthorized, "invalid_client", "unknown client")
		return nil, false
	}
	c, err := s.lookupClient(r.Context(), id, true)
	var ce *cimdError
	if errors.As(err, &ce) {
		writeOAuthError(w, http.StatusUnauthorized, "invalid_client", "client metadata document rejected: "+ce.msg)
		return nil, false
	}
	if errors.Is(err, store.ErrNotFound) {
		if _, _, basic := r.BasicAuth(); basic { // RFC 6749 §5.2
			w.Header().Set("WWW-Authenticate", `Basic realm="oauth"`)
		}
		writeOAuthError(w, http.StatusUnauthorized, "invalid_client", "unknown client")
		return nil, false
	}
	if err != nil {
		s.storeError(r.Context(), "get_client", err)
		writeUnavailable(w)
		return nil, false
	}
	return c, true
}

// validVerifier: RFC 7636 §4.1, 43–128 unreserved characters.
func validVerifier(v string) bool {
	if len(v) < 43 || len(v) > 128 {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !isB64URL(c) && c != '.' && c != '~' {
			return false
		}
	}
	return true
}

func s256(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func (s *Server) codeGrant(w http.ResponseWriter, r *http.Request, form url.Values, client *store.Client) {
	ctx := r.Context()
	code, redirectURI, verifier := form.Get("code"), form.Get("redirect_uri"), form.Get("code_verifier")
	switch {
	case code == "":
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "code is required")
		return
	case redirectURI == "":
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "redirect_uri is required")
		return
	case verifier == "":
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "code_verifier is required")
		return
	case !validVerifier(verifier):
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "code_verifier must be 43-128 unreserved characters")
		return
	case len(code) > maxSecretLen:
		writeOAuthError(w, http.StatusBadRequest, "invalid_grant", "invalid authorization code")
		return
	}
	resource := ""
	if raw, sent := form["resource"]; sent {
		res, _, ok := s.canonicalResource(raw[0])
		if !ok || raw[0] == "" {
			writeOAuthError(w, http.StatusBadRequest, "invalid_target", "resource is not valid here")
			return
		}
		resource = res
	}
	c, err := s.st.RedeemCode(ctx, token.Hash(code))
	switch {
	case errors.Is(err, store.ErrCodeReused):
		s.codeReplay(ctx, c, client.ID)
		writeOAuthError(w, http.StatusBadRequest, "invalid_grant", "invalid authorization code")
		return
	case errors.Is(err, store.ErrNotFound):
		writeOAuthError(w, http.StatusBadRequest, "invalid_grant", "invalid authorization code")
		return
	case err != nil:
		s.storeError(ctx, "redeem_code", err)
		writeUnavailable(w)
		return
	}
	now := s.now()
	switch {
	case c.ClientID != client.ID:
		s.audit(ctx, "code_misuse", slog.String("client_id", client.ID), slog.String("reason", "code issued to another client"))
		writeOAuthError(w, http.StatusBadRequest, "invalid_grant", "invalid authorization code")
		return
	case !now.Before(c.ExpiresAt):
		writeOAuthError(w, http.StatusBadRequest, "invalid_grant", "authorization code expired")
		return
	case c.RedirectURI != redirectURI:
		writeOAuthError(w, http.StatusBadRequest, "invalid_grant", "redirect_uri does not match the authorization request")
		return
	case subtle.ConstantTimeCompare([]byte(s256(verifier)), []byte(c.CodeChallenge)) != 1:
		writeOAuthError(w, http.StatusBadRequest, "invalid_grant", "code_verifier does not match the code_challenge")
		return
	case resource != "" && resource != c.Resource:
		writeOAuthError(w, http.StatusBadRequest, "invalid_target", "resource differs from the one authorized")
		return
	}
	access, jti, exp, err := s.mint(c.UserID, client.ID, c.Scope, c.Resource, now)
	if err != nil {
		s.log.Error("mint access token", "err", err)
		writeUnavailable(w)
		return
	}
	// The family exists even for clients without the refresh grant: it
	// records the access token so a replayed code can revoke it.
	refresh := token.Random(32)
	refreshTTL := s.cfg.TTL.Refresh.D()
	f := &store.RefreshFamily{
		ID: c.FamilyID, ClientID: client.ID, UserID: c.UserID, Scope: c.Scope, Resource: c.Resource,
		CurrentHash: token.Hash(refresh), AccessJTI: jti, AccessExp: exp, CreatedAt: now, ExpiresAt: now.Add(refreshTTL),
	}
	if err := s.st.CreateFamily(ctx, f, refreshTTL); err != nil {
		s.storeError(ctx, "create_family", err)
		writeUnavailable(w)
		return
	}
	if !slices.Contains(client.GrantTypes, grantRefresh) {
		refresh = ""
	}
	s.issued(ctx, w, grantCode, c.UserID, client.ID, c.Resource, c.Scope, access, refresh)
}

// codeReplay revokes what the first redemption of a code issued (OAuth 2.1
// §4.1.3): the refresh family and its newest access token.
func (s *Server) codeReplay(ctx context.Context, c *store.AuthCode, clientID string) {
	attrs := []slog.Attr{slog.String("client_id", clientID), slog.String("reason", "authorization code used twice")}
	if c != nil {
		attrs = append(attrs, slog.String("user", c.UserID), slog.String("resource", c.Resource))
		s.revokeFamily(ctx, c.FamilyID, "code_replay")
	}
	s.audit(ctx, "code_replay", attrs...)
}

// revokeFamily revokes a refresh family and its newest access token.
func (s *Server) revokeFamily(ctx context.Context, familyID, reason string) {
	f, err := s.st.RevokeFamily(ctx, familyID)
	if errors.Is(err, store.ErrNotFound) {
		return // never created (first redemption failed) or expired
	}
	if err != nil {
		s.storeError(ctx, "revoke_family", err)
		return
	}
	metrics.TokensRevoked.WithLabelValues("refresh_family", reason).Inc()
	s.revokeAccess(ctx, f, reason)
}

// revokeAccess denylists the family's newest access token until it expires.
func (s *Server) revokeAccess(ctx context.Context, f *store.RefreshFamily, reason string) {
	if f == nil || f.AccessJTI == "" || !s.now().Before(f.AccessExp.Add(token.Leeway)) {
		return
	}
	if err := s.st.RevokeJTI(ctx, f.AccessJTI, f.AccessExp.Add(token.Leeway)); err != nil {
		s.storeError(ctx, "revoke_jti", err)
		return
	}
	metrics.TokensRevoked.WithLabelValues("access_token", reason).Inc()
}

func (s *Server) refreshGrant(w http.ResponseWriter, r *http.Request, form url.Values, client *store.Client) {
	ctx := r.Context()
	rt := form.Get("refresh_token")
	if rt == "" {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "refresh_token is required")
		return
	}
	if len(rt) > maxSecretLen {
		writeOAuthError(w, http.StatusBadRequest, "invalid_grant", "invalid refresh token")
		return
	}
	hash := token.Hash(rt)
	f, err := s.st.LookupRefresh(ctx, hash)
	if errors.Is(err, store.ErrNotFound) {
		writeOAuthError(w, http.StatusBadRequest, "invalid_grant", "invalid refresh token")
		return
	}
	if err != nil {
		s.storeError(ctx, "lookup_refresh", err)
		writeUnavailable(w)
		return
	}
	// Check the binding before rotating: another client must not be able
	// to burn (or trigger reuse detection on) a token it stole.
	if f.ClientID != client.ID || f.Revoked {
		writeOAuthError(w, http.StatusBadRequest, "invalid_grant", "invalid refresh token")
		return
	}
	scope := f.Scope
	if raw, sent := form["scope"]; sent && raw[0] != "" {
		sc, ok := s.parseScope(raw[0], strings.Fields(f.Scope))
		if !ok {
			writeOAuthError(w, http.StatusBadRequest, "invalid_scope", "scope must be a subset of the granted scope")
			return
		}
		scope = sc
	}
	if raw, sent := form["resource"]; sent {
		res, _, ok := s.canonicalResource(raw[0])
		if !ok || raw[0] == "" || res != f.Resource {
			writeOAuthError(w, http.StatusBadRequest, "invalid_target", "resource differs from the one authorized")
			return
		}
	}
	now := s.now()
	access, jti, exp, err := s.mint(f.UserID, client.ID, scope, f.Resource, now)
	if err != nil {
		s.log.Error("mint access token", "err", err)
		writeUnavailable(w)
		return
	}
	next := token.Random(32)
	nf, err := s.st.Rotate(ctx, store.Rotation{
		OldHash: hash, NewHash: token.Hash(next), AccessJTI: jti, AccessExp: exp, Now: now,
		Grace: s.cfg.TTL.RefreshGrace.D(), TokenTTL: s.cfg.TTL.Refresh.D(),
	})
	switch {
	case errors.Is(err, store.ErrRefreshReused):
		// The store revoked the family; also kill its newest access token.
		metrics.TokensRevoked.WithLabelValues("refresh_family", "refresh_reuse").Inc()
		s.revokeAccess(ctx, nf, "refresh_reuse")
		s.audit(ctx, "refresh_reuse", slog.String("user", f.UserID), slog.String("client_id", client.ID),
			slog.String("resource", f.Resource), slog.String("reason", "rotated refresh token presented again"))
		writeOAuthError(w, http.StatusBadRequest, "invalid_grant", "invalid refresh token")
		return
	case errors.Is(err, store.ErrRefreshRace):
		writeOAuthError(w, http.StatusBadRequest, "invalid_grant", "refresh token was just rotated by a concurrent request")
		return
	case errors.Is(err, store.ErrNotFound):
		writeOAuthError(w, http.StatusBadRequest, "invalid_grant", "invalid refresh token")
		return
	case err != nil:
		s.storeError(ctx, "rotate_refresh", err)
		writeUnavailable(w)
		return
	}
	s.issued(ctx, w, grantRefresh, f.UserID, client.ID, f.Resource, scope, access, next)
}

// mint signs an access token for user at resource.
func (s *Server) mint(user, clientID, scope, resource string, now time.Time) (raw, jti string, exp time.Time, err error) {
	jti = token.Random(16)
	exp = now.Add(s.cfg.TTL.Access.D()).Truncate(time.Second)
	raw, err = s.ring.Mint(&token.Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   user,
			Audience:  jwt.ClaimStrings{resource},
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(exp),
			ID:        jti,
		},
		ClientID: clientID,
		Scope:    scope,
	})
	return raw, jti, exp, err
}

func (s *Server) issued(ctx context.Context, w http.ResponseWriter, grant, user, clientID, resource, scope, access, refresh string) {
	metrics.TokensIssued.WithLabelValues(grant).Inc()
	s.audit(ctx, "token_issued", slog.String("grant_type", grant), slog.String("user", user), slog.String("client_id", clientID),
		slog.String("resource", resource), slog.String("scope", scope))
	writeJSON(w, http.StatusOK, tokenResponse{
		AccessToken:  access,
		TokenType:    "Bearer",
		ExpiresIn:    int64(s.cfg.TTL.Access.D() / time.Second),
		RefreshToken: refresh,
		Scope:        scope,
	})
}
