package oauthsrv

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/mcpgateway/mcp-gateway/internal/metrics"
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

// handleToken is the token endpoint (RFC 6749 §3.2): it authenticates
// the public client, runs its grant and renders the answer.
func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		writeMethodNotAllowed(w, "POST, OPTIONS")
		return
	}
	if pass, _ := s.limitIP(w, r, "token", s.cfg.RateLimit.Token, false); !pass {
		return
	}
	form, err := readForm(w, r)
	if err != nil {
		s.writeError(r.Context(), w, err)
		return
	}
	user, basic := basicUser(r)
	resp, err := s.token(r.Context(), form, user, basic)
	if err != nil {
		s.writeError(r.Context(), w, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// basicUser returns the user name of the request's HTTP Basic credentials
// and whether it sent any.
func basicUser(r *http.Request) (user string, basic bool) {
	u, _, ok := r.BasicAuth()
	return u, ok
}

// token runs the grant of form for the client it names (form, or the user
// name basic of HTTP Basic when sent is true).
func (s *Server) token(ctx context.Context, form url.Values, basic string, sent bool) (*tokenResponse, error) {
	gt := form.Get("grant_type")
	switch gt {
	case "":
		return nil, badRequest("invalid_request", "grant_type is required")
	case grantCode, grantRefresh:
	default:
		return nil, badRequest("unsupported_grant_type", "grant_type must be authorization_code or refresh_token")
	}
	client, err := s.tokenClient(ctx, form.Get("client_id"), basic, sent)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(client.GrantTypes, gt) {
		return nil, badRequest("unauthorized_client", "the client is not registered for this grant type")
	}
	if gt == grantCode {
		return s.codeGrant(ctx, form, client)
	}
	return s.refreshGrant(ctx, form, client)
}

// tokenClient identifies the public client by client_id id, or by basic,
// the user name of HTTP Basic for clients that send it there (sent).
func (s *Server) tokenClient(ctx context.Context, id, basic string, sent bool) (*store.Client, error) {
	if sent {
		bu, err := url.QueryUnescape(basic) // RFC 6749 §2.3.1 form-encodes Basic credentials
		if err != nil || (id != "" && bu != id) {
			return nil, badRequest("invalid_request", "client_id in the form and in Authorization differ")
		}
		id = bu
	}
	if id == "" {
		return nil, badRequest("invalid_request", "client_id is required")
	}
	unknown := &oauthError{status: http.StatusUnauthorized, code: "invalid_client", description: "unknown client"}
	if len(id) > maxClientIDLen {
		return nil, unknown
	}
	c, err := s.lookupClient(ctx, id, true)
	var ce *cimdError
	switch {
	case errors.As(err, &ce):
		return nil, errOAuth(http.StatusUnauthorized, "invalid_client", "client metadata document rejected: "+ce.msg)
	case errors.Is(err, store.ErrNotFound):
		if sent { // RFC 6749 §5.2
			unknown.header = map[string]string{"WWW-Authenticate": `Basic realm="oauth"`}
		}
		return nil, unknown
	case err != nil:
		return nil, fmt.Errorf("get client: %w", err)
	}
	return c, nil
}

// validVerifier reports whether v is an RFC 7636 §4.1 code verifier:
// 43–128 unreserved characters.
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

// s256 is the RFC 7636 S256 code challenge of verifier.
func s256(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// codeGrant redeems the authorization code of form for client (RFC 6749
// §4.1.3 with PKCE, RFC 7636 §4.6) and returns the tokens it grants.
func (s *Server) codeGrant(ctx context.Context, form url.Values, client *store.Client) (*tokenResponse, error) {
	code, redirectURI, verifier := form.Get("code"), form.Get("redirect_uri"), form.Get("code_verifier")
	switch {
	case code == "":
		return nil, badRequest("invalid_request", "code is required")
	case redirectURI == "":
		return nil, badRequest("invalid_request", "redirect_uri is required")
	case verifier == "":
		return nil, badRequest("invalid_request", "code_verifier is required")
	case !validVerifier(verifier):
		return nil, badRequest("invalid_request", "code_verifier must be 43-128 unreserved characters")
	case len(code) > maxSecretLen:
		return nil, errBadCode
	}
	resource := ""
	if raw, sent := form["resource"]; sent {
		res, _, ok := s.canonicalResource(raw[0])
		if !ok || raw[0] == "" {
			return nil, badRequest("invalid_target", "resource must be this gateway's URL "+s.issuer+" or "+s.issuer+"/<agent>/mcp")
		}
		resource = res
	}
	// The binding is checked before the code is consumed, in the same
	// atomic step: a redemption by another client, or with a wrong
	// verifier or redirect URI, leaves the code to its client.
	bind := store.CodeBinding{ClientID: client.ID, RedirectURI: redirectURI, CodeChallenge: s256(verifier), Resource: resource}
	c, err := s.st.RedeemCode(ctx, token.Address(code), bind)
	switch {
	case errors.Is(err, store.ErrCodeMismatch):
		return nil, s.misbound(ctx, c, bind)
	case errors.Is(err, store.ErrCodeReused):
		s.codeReplay(ctx, c, client.ID)
		return nil, errBadCode
	case errors.Is(err, store.ErrNotFound):
		return nil, errBadCode
	case err != nil:
		return nil, fmt.Errorf("redeem code: %w", err)
	}
	now := s.now()
	if !now.Before(c.ExpiresAt) {
		return nil, badRequest("invalid_grant", "authorization code expired")
	}
	access, jti, exp, err := s.mint(c.UserID, c.Groups, client.ID, c.Scope, c.Resource, c.FamilyID, now)
	if err != nil {
		return nil, fmt.Errorf("mint access token: %w", err)
	}
	// The family exists even for clients without the refresh grant: its id
	// is in the access token so a replayed code can revoke it.
	refresh := s.secret(c.FamilyID)
	refreshTTL := s.cfg.TTL.Refresh.D()
	f := &store.RefreshFamily{
		ID: c.FamilyID, ClientID: client.ID, UserID: c.UserID, Scope: c.Scope, Resource: c.Resource,
		CurrentHash: token.Address(refresh), AccessJTI: jti, AccessExp: exp, CreatedAt: now, ExpiresAt: now.Add(refreshTTL),
		Groups: c.Groups,
	}
	err = s.st.CreateFamily(ctx, f, refreshTTL)
	switch {
	case errors.Is(err, store.ErrFamilyRevoked):
		// A replay of the code overtook this redemption (codeReplay): the
		// family was stored revoked; make sure the denial outlives the
		// access token too. The answer still goes out, as it would had the
		// replay come a moment later: its tokens are dead either way.
		if err := s.denyAccess(ctx, f, time.Time{}, "code_replay"); err != nil {
			s.storeError(ctx, "revoke_family_access", err)
		}
	case err != nil:
		return nil, fmt.Errorf("create family: %w", err)
	}
	if !slices.Contains(client.GrantTypes, grantRefresh) {
		refresh = ""
	}
	return s.issued(ctx, grantCode, c.UserID, client.ID, c.Resource, c.Scope, access, refresh), nil
}

// misbound returns the refusal of a redemption whose client, redirect URI,
// verifier or resource differs from the code's; the store left the code
// unconsumed.
func (s *Server) misbound(ctx context.Context, c *store.AuthCode, b store.CodeBinding) error {
	switch {
	case c == nil:
		return errBadCode
	case c.ClientID != b.ClientID:
		s.audit(ctx, "code_misuse", slog.String("client_id", b.ClientID), slog.String("reason", "code issued to another client"))
		return errBadCode
	case c.RedirectURI != b.RedirectURI:
		return badRequest("invalid_grant", "redirect_uri does not match the authorization request")
	case c.CodeChallenge != b.CodeChallenge:
		return badRequest("invalid_grant", "code_verifier does not match the code_challenge")
	default:
		return badRequest("invalid_target", "resource differs from the one authorized")
	}
}

// codeReplay revokes what the first redemption of a code issued (OAuth 2.1
// §4.1.3): its refresh family and every access token of it. Only a replay
// bound as the code is gets here (same client, redirect URI and a verifier
// matching the challenge), and it revokes always, even within the same
// second from the same client: the verifier proves possession, so this is
// either the client retrying after a lost response (whose tokens it never
// got: nothing is lost) or someone holding code and verifier who raced it
// (whose tokens must die, and only revoking kills them, whoever won). Of
// parallel redemptions one gets tokens, which the others then revoke. The
// family may still be in the making when the replay lands: its denial is
// written first, from now for an access token's lifetime, and CreateFamily
// stores a denied family revoked (store.ErrFamilyRevoked).
func (s *Server) codeReplay(ctx context.Context, c *store.AuthCode, clientID string) {
	attrs := []slog.Attr{slog.String("client_id", clientID), slog.String("reason", "authorization code used twice")}
	if c != nil {
		attrs = append(attrs, slog.String("user", c.UserID), slog.String("resource", c.Resource))
		until := s.now().Add(s.cfg.TTL.Access.D() + token.Leeway)
		if err := s.revokeGrant(ctx, c.FamilyID, until, "code_replay"); err != nil {
			s.storeError(ctx, "revoke_family", err)
		}
	}
	s.audit(ctx, "code_replay", attrs...)
}

// revokeGrant revokes refresh family id and every access token issued from
// it. until bounds the expiry (with leeway) of the family's access tokens
// as the caller knows them. The denial is written first: should a later
// step fail, the caller can retry against a family still live, and a
// family created meanwhile is stored revoked.
func (s *Server) revokeGrant(ctx context.Context, id string, until time.Time, reason string) error {
	if err := s.st.RevokeJTI(ctx, store.RevokedFamilyJTI(id), until); err != nil {
		return fmt.Errorf("deny family: %w", err)
	}
	f, err := s.st.RevokeFamily(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil // never created (first redemption failed) or expired
	}
	if err != nil {
		return fmt.Errorf("revoke family: %w", err)
	}
	metrics.TokensRevoked.WithLabelValues("refresh_family", reason).Inc()
	return s.denyAccess(ctx, f, until, reason)
}

// denyAccess denylists every access token of family f until its newest one
// has expired: the family's entry, which matches their fam claim (denied
// is how long that entry already lasts, zero for none; it is raised when
// f's newest token expires later), and the newest token's jti, for a token
// minted before the claim existed (by a replica not yet upgraded). Older
// tokens without the claim keep working until they expire, as before.
func (s *Server) denyAccess(ctx context.Context, f *store.RefreshFamily, denied time.Time, reason string) error {
	if f == nil {
		return nil
	}
	end := f.AccessExp.Add(token.Leeway) // verifiers accept a token until exp + leeway
	if !s.now().Before(end) {
		return nil
	}
	if end.After(denied) {
		if err := s.st.RevokeJTI(ctx, store.RevokedFamilyJTI(f.ID), end); err != nil {
			return fmt.Errorf("deny family: %w", err)
		}
	}
	if f.AccessJTI != "" {
		if err := s.st.RevokeJTI(ctx, f.AccessJTI, end); err != nil {
			return fmt.Errorf("deny newest access token: %w", err)
		}
	}
	metrics.TokensRevoked.WithLabelValues("access_token", reason).Inc()
	return nil
}

// refreshGrant rotates the refresh token of form for client (RFC 6749 §6,
// OAuth 2.1 §4.3.1) and returns the tokens it grants.
func (s *Server) refreshGrant(ctx context.Context, form url.Values, client *store.Client) (*tokenResponse, error) {
	rt := form.Get("refresh_token")
	if rt == "" {
		return nil, badRequest("invalid_request", "refresh_token is required")
	}
	if len(rt) > maxSecretLen {
		return nil, errBadRefresh
	}
	hash := token.Address(rt)
	f, err := s.st.LookupRefresh(ctx, hash)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errBadRefresh
	}
	if err != nil {
		return nil, fmt.Errorf("lookup refresh: %w", err)
	}
	// Check the binding before rotating: another client must not be able
	// to burn (or trigger reuse detection on) a token it stole.
	if f.ClientID != client.ID || f.Revoked {
		return nil, errBadRefresh
	}
	scope := f.Scope
	if raw, sent := form["scope"]; sent && raw[0] != "" {
		sc, ok := s.parseScope(raw[0], strings.Fields(f.Scope))
		if !ok {
			return nil, badRequest("invalid_scope", "scope must be a subset of the granted scope")
		}
		scope = sc
	}
	if raw, sent := form["resource"]; sent {
		res, _, ok := s.canonicalResource(raw[0])
		if !ok || raw[0] == "" || res != f.Resource {
			return nil, badRequest("invalid_target", "resource differs from the one authorized")
		}
	}
	now := s.now()
	access, jti, exp, err := s.mint(f.UserID, f.Groups, client.ID, scope, f.Resource, f.ID, now)
	if err != nil {
		return nil, fmt.Errorf("mint access token: %w", err)
	}
	next := s.secret(f.ID)
	nf, err := s.st.Rotate(ctx, store.Rotation{
		OldHash: hash, NewHash: token.Address(next), AccessJTI: jti, AccessExp: exp, Now: now, FamilyID: f.ID,
		Grace: s.cfg.TTL.RefreshGrace.D(), TokenTTL: s.cfg.TTL.Refresh.D(),
	})
	switch {
	case errors.Is(err, store.ErrRefreshReused):
		// The store revoked the family; also kill its access tokens.
		metrics.TokensRevoked.WithLabelValues("refresh_family", "refresh_reuse").Inc()
		if err := s.denyAccess(ctx, nf, time.Time{}, "refresh_reuse"); err != nil {
			s.storeError(ctx, "revoke_family_access", err)
		}
		s.audit(ctx, "refresh_reuse", slog.String("user", f.UserID), slog.String("client_id", client.ID),
			slog.String("resource", f.Resource), slog.String("reason", "rotated refresh token presented again"))
		return nil, errBadRefresh
	case errors.Is(err, store.ErrRefreshRace):
		return nil, badRequest("invalid_grant", "refresh token was just rotated by a concurrent request")
	case errors.Is(err, store.ErrNotFound):
		return nil, errBadRefresh
	case err != nil:
		return nil, fmt.Errorf("rotate refresh: %w", err)
	}
	return s.issued(ctx, grantRefresh, f.UserID, client.ID, f.Resource, scope, access, next), nil
}

// secret mints an authorization code or refresh token of family; a store
// that needs it (Redis Cluster) gets the family id inside (token.Tagged).
func (s *Server) secret(family string) string {
	if s.tagged {
		return token.Tagged(family)
	}
	return token.Random(32)
}

// mint signs an access token for user (in groups, from the login
// provider) at resource, issued from refresh family familyID.
func (s *Server) mint(user string, groups []string, clientID, scope, resource, familyID string, now time.Time) (raw, jti string, exp time.Time, err error) {
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
		Family:   familyID,
		Groups:   groups,
	})
	return raw, jti, exp, err
}

// issued counts and audits a grant and returns its token response.
func (s *Server) issued(ctx context.Context, grant, user, clientID, resource, scope, access, refresh string) *tokenResponse {
	metrics.TokensIssued.WithLabelValues(grant).Inc()
	s.audit(ctx, "token_issued", slog.String("grant_type", grant), slog.String("user", user), slog.String("client_id", clientID),
		slog.String("resource", resource), slog.String("scope", scope))
	return &tokenResponse{
		AccessToken:  access,
		TokenType:    "Bearer",
		ExpiresIn:    int64(s.cfg.TTL.Access.D() / time.Second),
		RefreshToken: refresh,
		Scope:        scope,
	}
}
