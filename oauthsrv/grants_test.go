package oauthsrv

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpgateway/mcp-gateway/config"
	"github.com/mcpgateway/mcp-gateway/store"
	"github.com/mcpgateway/mcp-gateway/token"
)

// The grants are called here without HTTP: they return a token response or
// an error, which writeError alone turns into an answer.

// faultStore fails the calls of the grants with err while it is set.
type faultStore struct {
	store.Store
	mu  sync.Mutex
	err error
}

func (f *faultStore) fail(err error) {
	f.mu.Lock()
	f.err = err
	f.mu.Unlock()
}

func (f *faultStore) failure() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

func (f *faultStore) GetClient(ctx context.Context, id string) (*store.Client, error) {
	if err := f.failure(); err != nil {
		return nil, err
	}
	return f.Store.GetClient(ctx, id)
}

func (f *faultStore) RedeemCode(ctx context.Context, hash string, b store.CodeBinding) (*store.AuthCode, error) {
	if err := f.failure(); err != nil {
		return nil, err
	}
	return f.Store.RedeemCode(ctx, hash, b)
}

func (f *faultStore) LookupRefresh(ctx context.Context, hash string) (*store.RefreshFamily, error) {
	if err := f.failure(); err != nil {
		return nil, err
	}
	return f.Store.LookupRefresh(ctx, hash)
}

// grantEnv is an env whose store the test can break, with two registered
// clients.
type grantEnv struct {
	*env
	fs       *faultStore
	app, eve *store.Client
}

func newGrantEnv(t *testing.T) *grantEnv {
	t.Helper()
	g := &grantEnv{}
	g.env = newEnv(t, func(_ *config.Config, o *Options) {
		g.fs = &faultStore{Store: o.Store.(store.Store)}
		o.Store = g.fs
	})
	g.app = g.client(g.register("app"))
	g.eve = g.client(g.register("eve"))
	return g
}

func (g *grantEnv) client(id string) *store.Client {
	g.t.Helper()
	c, err := g.st.GetClient(context.Background(), id)
	if err != nil {
		g.t.Fatal(err)
	}
	return c
}

// code stores an authorization code for bob at agent demo issued to c, and
// returns it with its verifier.
func (g *grantEnv) code(c *store.Client, ttl time.Duration) (code, verifier string) {
	g.t.Helper()
	verifier, challenge := pkce()
	code = token.Random(32)
	err := g.st.PutCode(context.Background(), &store.AuthCode{
		Hash: token.Address(code), ClientID: c.ID, UserID: "bob", RedirectURI: loopbackRedirect, Scope: "",
		Resource: g.url + "/demo/mcp", CodeChallenge: challenge, FamilyID: token.Random(16),
		AuthTime: g.clock.Now(), ExpiresAt: g.clock.Now().Add(ttl),
	})
	if err != nil {
		g.t.Fatal(err)
	}
	return code, verifier
}

func codeForm(code, verifier string) url.Values {
	return url.Values{"code": {code}, "redirect_uri": {loopbackRedirect}, "code_verifier": {verifier}}
}

// redeem returns the tokens of a fresh code of c.
func (g *grantEnv) redeem(c *store.Client) *tokenResponse {
	g.t.Helper()
	resp, err := g.srv.codeGrant(context.Background(), codeForm(g.code(c, time.Minute)), c)
	if err != nil {
		g.t.Fatalf("codeGrant: %v", err)
	}
	return resp
}

// wantOAuthError fails unless err is an oauthError of status, code and
// description desc ("" for any).
func wantOAuthError(t *testing.T, err error, status int, code, desc string) {
	t.Helper()
	var oe *oauthError
	if !errors.As(err, &oe) {
		t.Fatalf("err = %v, want an oauthError %d %s", err, status, code)
	}
	if oe.status != status || oe.code != code || (desc != "" && oe.description != desc) {
		t.Fatalf("got %d %s %q, want %d %s %q", oe.status, oe.code, oe.description, status, code, desc)
	}
}

func TestCodeGrantIssuesOnce(t *testing.T) {
	g := newGrantEnv(t)
	ctx := context.Background()
	code, verifier := g.code(g.app, time.Minute)
	resp, err := g.srv.codeGrant(ctx, codeForm(code, verifier), g.app)
	if err != nil {
		t.Fatal(err)
	}
	if resp.TokenType != "Bearer" || resp.RefreshToken == "" || g.verify(resp.AccessToken).Subject != "bob" {
		t.Fatalf("response %+v", resp)
	}
	_, err = g.srv.codeGrant(ctx, codeForm(code, verifier), g.app)
	wantOAuthError(t, err, http.StatusBadRequest, "invalid_grant", "invalid authorization code")
	// The replay revoked what the first redemption issued.
	_, err = g.srv.refreshGrant(ctx, url.Values{"refresh_token": {resp.RefreshToken}}, g.app)
	wantOAuthError(t, err, http.StatusBadRequest, "invalid_grant", "invalid refresh token")
}

func TestCodeGrantRefusals(t *testing.T) {
	g := newGrantEnv(t)
	ctx := context.Background()
	t.Run("unknown code", func(t *testing.T) {
		_, verifier := pkce()
		_, err := g.srv.codeGrant(ctx, codeForm(token.Random(32), verifier), g.app)
		wantOAuthError(t, err, http.StatusBadRequest, "invalid_grant", "invalid authorization code")
	})
	t.Run("expired code", func(t *testing.T) {
		code, verifier := g.code(g.app, time.Minute)
		g.clock.Advance(61 * time.Second)
		_, err := g.srv.codeGrant(ctx, codeForm(code, verifier), g.app)
		// memstore drops the expired code itself (invalid authorization
		// code); Redis may still hold it within its TTL's granularity.
		wantOAuthError(t, err, http.StatusBadRequest, "invalid_grant", "")
	})
	t.Run("other client", func(t *testing.T) {
		code, verifier := g.code(g.app, time.Minute)
		_, err := g.srv.codeGrant(ctx, codeForm(code, verifier), g.eve)
		wantOAuthError(t, err, http.StatusBadRequest, "invalid_grant", "invalid authorization code")
		if _, err := g.srv.codeGrant(ctx, codeForm(code, verifier), g.app); err != nil {
			t.Fatalf("the code's own client after a misbound try: %v", err)
		}
	})
	t.Run("wrong verifier", func(t *testing.T) {
		code, _ := g.code(g.app, time.Minute)
		other, _ := pkce()
		_, err := g.srv.codeGrant(ctx, codeForm(code, other), g.app)
		wantOAuthError(t, err, http.StatusBadRequest, "invalid_grant", "code_verifier does not match the code_challenge")
	})
	t.Run("missing verifier", func(t *testing.T) {
		code, _ := g.code(g.app, time.Minute)
		_, err := g.srv.codeGrant(ctx, url.Values{"code": {code}, "redirect_uri": {loopbackRedirect}}, g.app)
		wantOAuthError(t, err, http.StatusBadRequest, "invalid_request", "code_verifier is required")
	})
}

func TestRefreshGrantRotatesAndDetectsReuse(t *testing.T) {
	g := newGrantEnv(t)
	ctx := context.Background()
	first := g.redeem(g.app)
	second, err := g.srv.refreshGrant(ctx, url.Values{"refresh_token": {first.RefreshToken}}, g.app)
	if err != nil {
		t.Fatal(err)
	}
	if second.RefreshToken == first.RefreshToken || second.AccessToken == "" {
		t.Fatalf("not rotated: %+v", second)
	}
	g.clock.Advance(g.cfg.TTL.RefreshGrace.D() + time.Second)
	_, err = g.srv.refreshGrant(ctx, url.Values{"refresh_token": {first.RefreshToken}}, g.app)
	wantOAuthError(t, err, http.StatusBadRequest, "invalid_grant", "invalid refresh token")
	if len(g.auditEvents("refresh_reuse")) != 1 {
		t.Fatal("reuse not audited")
	}
	// Reuse revoked the family: the newest token is dead too.
	_, err = g.srv.refreshGrant(ctx, url.Values{"refresh_token": {second.RefreshToken}}, g.app)
	wantOAuthError(t, err, http.StatusBadRequest, "invalid_grant", "invalid refresh token")
}

func TestRefreshGrantRefusals(t *testing.T) {
	g := newGrantEnv(t)
	ctx := context.Background()
	rt := g.redeem(g.app).RefreshToken
	_, err := g.srv.refreshGrant(ctx, url.Values{"refresh_token": {rt}}, g.eve)
	wantOAuthError(t, err, http.StatusBadRequest, "invalid_grant", "invalid refresh token")
	_, err = g.srv.refreshGrant(ctx, url.Values{"refresh_token": {token.Random(32)}}, g.app)
	wantOAuthError(t, err, http.StatusBadRequest, "invalid_grant", "invalid refresh token")
	_, err = g.srv.refreshGrant(ctx, url.Values{"refresh_token": {rt}, "scope": {"admin"}}, g.app)
	wantOAuthError(t, err, http.StatusBadRequest, "invalid_scope", "")
	_, err = g.srv.refreshGrant(ctx, url.Values{"refresh_token": {rt}, "resource": {g.url + "/private/mcp"}}, g.app)
	wantOAuthError(t, err, http.StatusBadRequest, "invalid_target", "")
	// None of the refusals burnt the token of its own client.
	if _, err := g.srv.refreshGrant(ctx, url.Values{"refresh_token": {rt}}, g.app); err != nil {
		t.Fatalf("refresh after refusals: %v", err)
	}
}

func TestTokenClientRefusals(t *testing.T) {
	g := newGrantEnv(t)
	ctx := context.Background()
	_, err := g.srv.tokenClient(ctx, "", "", false)
	wantOAuthError(t, err, http.StatusBadRequest, "invalid_request", "client_id is required")
	_, err = g.srv.tokenClient(ctx, g.app.ID, g.eve.ID, true)
	wantOAuthError(t, err, http.StatusBadRequest, "invalid_request", "")
	_, err = g.srv.tokenClient(ctx, "", "nobody", true)
	wantOAuthError(t, err, http.StatusUnauthorized, "invalid_client", "unknown client")
	var oe *oauthError
	if errors.As(err, &oe); oe.header["WWW-Authenticate"] != `Basic realm="oauth"` {
		t.Fatalf("unknown Basic client: no challenge in %v", oe.header)
	}
	_, err = g.srv.token(ctx, url.Values{"grant_type": {"password"}, "client_id": {g.app.ID}}, "", false)
	wantOAuthError(t, err, http.StatusBadRequest, "unsupported_grant_type", "")
}

// render answers err the way the endpoints do.
func (g *grantEnv) render(err error) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	g.srv.writeError(context.Background(), rec, err)
	return rec
}

func TestGrantStoreDownIs503(t *testing.T) {
	g := newGrantEnv(t)
	ctx := context.Background()
	rt := g.redeem(g.app).RefreshToken
	code, verifier := g.code(g.app, time.Minute)
	g.fs.fail(errDown)
	defer g.fs.fail(nil)
	_, codeErr := g.srv.codeGrant(ctx, codeForm(code, verifier), g.app)
	_, refreshErr := g.srv.refreshGrant(ctx, url.Values{"refresh_token": {rt}}, g.app)
	_, clientErr := g.srv.tokenClient(ctx, g.app.ID, "", false)
	for name, err := range map[string]error{"code": codeErr, "refresh": refreshErr, "client": clientErr} {
		if !errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("%s: err = %v, want store.ErrUnavailable", name, err)
		}
		rec := g.render(err)
		if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") != "5" ||
			!strings.Contains(rec.Body.String(), `"temporarily_unavailable"`) {
			t.Fatalf("%s: %d %v %s", name, rec.Code, rec.Header(), rec.Body)
		}
	}
}

// TestUnexpectedErrorIs500: a failure that is neither a refusal nor a
// store outage (here a corrupt record) answers 500 server_error, logged,
// its text kept from the client.
func TestUnexpectedErrorIs500(t *testing.T) {
	g := newGrantEnv(t)
	ctx := context.Background()
	corrupt := errors.New("redisstore: redeem_code: corrupt record: secret-detail")
	code, verifier := g.code(g.app, time.Minute)
	g.fs.fail(corrupt)
	_, err := g.srv.codeGrant(ctx, codeForm(code, verifier), g.app)
	if !errors.Is(err, corrupt) {
		t.Fatalf("err = %v, want the store's error wrapped", err)
	}
	rec := g.render(err)
	if rec.Code != http.StatusInternalServerError || !strings.Contains(rec.Body.String(), `"server_error"`) ||
		strings.Contains(rec.Body.String(), "secret-detail") || rec.Header().Get("Retry-After") != "" {
		t.Fatalf("%d %v %s", rec.Code, rec.Header(), rec.Body)
	}
	if !strings.Contains(g.logs.String(), "secret-detail") {
		t.Fatal("the unexpected error was not logged")
	}
	// Over HTTP, at the token, revocation and introspection endpoints.
	expectOAuthError(t, g.exchange(g.app.ID, code, verifier), http.StatusInternalServerError, "server_error")
	expectOAuthError(t, g.postForm("/oauth/revoke", url.Values{"token": {"opaque-refresh"}}), http.StatusInternalServerError, "server_error")
	g.fs.fail(fmt.Errorf("redis: %w", errDown))
	expectOAuthError(t, g.exchange(g.app.ID, code, verifier), http.StatusServiceUnavailable, "temporarily_unavailable")
}
