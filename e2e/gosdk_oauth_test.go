//go:build e2e

package e2e

// The official Go SDK's OAuth client (auth.AuthorizationCodeHandler +
// mcp.StreamableClientTransport) against the gateway, once behind real nginx
// (serve + nginx + demo-agent) and once against dev mode: 401 → protected
// resource metadata → AS metadata → dynamic registration → authorize (the
// real login and consent forms) → token with PKCE → tools/list and tool
// calls → a refresh done by the SDK's own oauth2 config.

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
	"golang.org/x/oauth2"
)

func TestGoSDKOAuthThroughNginx(t *testing.T) {
	gw := startServe(t, nil)
	base := startNginx(t, gw)
	goSDKOAuth(t, base, gw.MCPURL("demo"), "alice", gw.Users["alice"], "demo")
}

func TestGoSDKOAuthDevMode(t *testing.T) {
	d := startDev(t)
	goSDKOAuth(t, d.URL, d.MCPURL, d.User, d.Password, "demo")
}

// expirableSource is the token source the SDK's handler gets (through its
// NewTokenSource hook): it hands out the current token while valid and
// refreshes through the SDK-built oauth2.Config otherwise; expire() makes
// the next use refresh, so the test need not wait out a TTL.
type expirableSource struct {
	mu        sync.Mutex
	ctx       context.Context
	cfg       *oauth2.Config
	tok       *oauth2.Token
	refreshed int
}

func (s *expirableSource) Token() (*oauth2.Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tok.Valid() {
		return s.tok, nil
	}
	// An expired token makes x/oauth2 use its refresh token.
	nt, err := s.cfg.TokenSource(s.ctx, s.tok).Token()
	if err != nil {
		return nil, err
	}
	s.tok = nt
	s.refreshed++
	return nt, nil
}

func (s *expirableSource) expire() {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := *s.tok
	t.Expiry = time.Now().Add(-time.Minute)
	s.tok = &t
}

func (s *expirableSource) current() (oauth2.Token, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return *s.tok, s.refreshed
}

func goSDKOAuth(t *testing.T, base, mcpURL, user, pass, agent string) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	rec := newRecorder(nil)
	hc := &http.Client{Transport: rec, Timeout: 30 * time.Second}
	redirect := "http://" + freeAddr(t) + "/callback" // never served: the code is captured
	var (
		authorizeURL string
		src          *expirableSource
	)
	h, err := auth.NewAuthorizationCodeHandler(&auth.AuthorizationCodeHandlerConfig{
		DynamicClientRegistrationConfig: &auth.DynamicClientRegistrationConfig{
			Metadata: &oauthex.ClientRegistrationMetadata{
				ClientName:              "Go SDK e2e",
				RedirectURIs:            []string{redirect},
				TokenEndpointAuthMethod: "none",
				GrantTypes:              []string{"authorization_code", "refresh_token"},
				ResponseTypes:           []string{"code"},
			},
		},
		RedirectURL:         redirect,
		RequestRefreshToken: true,
		Client:              hc,
		AuthorizationCodeFetcher: func(ctx context.Context, args *auth.AuthorizationArgs) (*auth.AuthorizationResult, error) {
			authorizeURL = args.URL
			r, err := browserLogin(ctx, args.URL, user, pass)
			if err != nil {
				return nil, err
			}
			if got := r.Redirect.Scheme + "://" + r.Redirect.Host + r.Redirect.Path; got != redirect {
				t.Errorf("redirected to %s, want %s", got, redirect)
			}
			return &auth.AuthorizationResult{Code: r.Code, State: r.State, Iss: r.Iss}, nil
		},
		NewTokenSource: func(ctx context.Context, cfg *oauth2.Config, tok *oauth2.Token) (oauth2.TokenSource, error) {
			src = &expirableSource{ctx: ctx, cfg: cfg, tok: tok}
			return src, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}

	cs := connectMCP(t, ctx, mcpURL, hc, h)
	if src == nil {
		t.Fatalf("connected without the OAuth flow:\n%s", rec.trail())
	}
	assertTools(t, ctx, cs)
	w := whoami(t, ctx, cs)
	assertIdentity(t, w, user, agent, "oauth")

	// The discovery steps, in order, as the SDK took them.
	log := rec.exchanges()
	step := 0
	next := func(what string, ok func(exchange) bool) exchange {
		t.Helper()
		for ; step < len(log); step++ {
			if ok(log[step]) {
				step++
				return log[step-1]
			}
		}
		t.Fatalf("no %s in the client's requests (in order):\n%s", what, rec.trail())
		return exchange{}
	}
	first := next("401 from the MCP endpoint", func(e exchange) bool { return e.Path == "/"+agent+"/mcp" })
	if first.Status != http.StatusUnauthorized || first.Auth != "" {
		t.Fatalf("first MCP request: %d (auth %t), want 401 without a credential", first.Status, first.Auth != "")
	}
	wantChallenge(t, first.RespHeader, base, agent, "")
	next("path-aware PRM", func(e exchange) bool {
		return e.Method == "GET" && e.Path == "/.well-known/oauth-protected-resource/"+agent+"/mcp" && e.Status == 200
	})
	next("AS metadata", func(e exchange) bool {
		return e.Method == "GET" && strings.HasPrefix(e.Path, "/.well-known/oauth-authorization-server") && e.Status == 200
	})
	reg := next("dynamic registration", func(e exchange) bool { return e.Method == "POST" && e.Path == "/oauth/register" })
	if reg.Status != http.StatusCreated {
		t.Fatalf("register: %d %s", reg.Status, reg.RespBody)
	}
	var client struct {
		ClientID   string `json:"client_id"`
		AuthMethod string `json:"token_endpoint_auth_method"`
	}
	if err := json.Unmarshal(reg.RespBody, &client); err != nil || client.ClientID == "" {
		t.Fatalf("register answer %s: %v", reg.RespBody, err)
	}
	if client.AuthMethod != "none" {
		t.Fatalf("registered token_endpoint_auth_method %q, want none", client.AuthMethod)
	}
	exch := next("code exchange", func(e exchange) bool {
		return e.Method == "POST" && e.Path == "/oauth/token" && e.Form.Get("grant_type") == "authorization_code"
	})
	if exch.Status != http.StatusOK || exch.Form.Get("code_verifier") == "" || exch.Form.Get("resource") != mcpURL {
		t.Fatalf("code exchange: %d, verifier sent %t, resource %q", exch.Status, exch.Form.Get("code_verifier") != "", exch.Form.Get("resource"))
	}
	retried := next("the retried MCP request", func(e exchange) bool { return e.Path == "/"+agent+"/mcp" })
	if retried.Status != http.StatusOK || !strings.HasPrefix(retried.Auth, "Bearer ") {
		t.Fatalf("retried MCP request: %d, authorization sent %t", retried.Status, retried.Auth != "")
	}

	// The authorize request carried PKCE S256, the resource and our client.
	au, q := mustParseQuery(t, authorizeURL)
	if au != base+"/oauth/authorize" || q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" ||
		q.Get("resource") != mcpURL || q.Get("client_id") != client.ClientID || q.Get("response_type") != "code" {
		t.Fatalf("authorize URL %s ? %v", au, redactQuery(q))
	}
	if w.ClientID != client.ClientID {
		t.Fatalf("agent saw client %q, want the registered %q", w.ClientID, client.ClientID)
	}
	if !strings.Contains(" "+w.Scope+" ", " mcp ") {
		t.Fatalf("agent saw scope %q, want mcp", w.Scope)
	}

	// Refresh: the SDK's oauth2 config redeems the refresh token; the new
	// access token is used for the next call and works.
	before, _ := src.current()
	if before.RefreshToken == "" {
		t.Fatal("no refresh token was issued")
	}
	src.expire()
	w = whoami(t, ctx, cs)
	assertIdentity(t, w, user, agent, "oauth")
	after, n := src.current()
	if n != 1 {
		t.Fatalf("%d refreshes, want 1", n)
	}
	if after.AccessToken == before.AccessToken || after.RefreshToken == before.RefreshToken || after.RefreshToken == "" {
		t.Fatal("refresh did not give a new access token and a rotated refresh token")
	}
	log = rec.exchanges()
	var refreshed, usedNew bool
	for _, e := range log {
		if e.Path == "/oauth/token" && e.Form.Get("grant_type") == "refresh_token" {
			if e.Status != http.StatusOK || e.Form.Get("client_id") != client.ClientID {
				t.Fatalf("refresh: %d for client %q", e.Status, e.Form.Get("client_id"))
			}
			refreshed = true
		}
		if refreshed && e.Path == "/"+agent+"/mcp" && e.Auth == "Bearer "+after.AccessToken && e.Status == http.StatusOK {
			usedNew = true
		}
	}
	if !refreshed || !usedNew {
		t.Fatalf("refresh grant seen %t, new token used with 200 %t:\n%s", refreshed, usedNew, rec.trail())
	}

	// The rotated refresh token works once more, by hand at the token
	// endpoint, and its access token is accepted at the MCP endpoint.
	// (Reuse detection of rotated-out tokens is the oauthsrv suite's job.)
	var tok struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
	}
	st := postForm(t, base+"/oauth/token", map[string][]string{
		"grant_type": {"refresh_token"}, "client_id": {client.ClientID}, "refresh_token": {after.RefreshToken},
	}, &tok)
	if st != http.StatusOK || tok.AccessToken == "" || tok.RefreshToken == after.RefreshToken {
		t.Fatalf("manual refresh: %d, rotated %t", st, tok.RefreshToken != after.RefreshToken)
	}
	status, _, _ := rawInitialize(t, mcpURL, http.Header{"Authorization": {"Bearer " + tok.AccessToken}})
	if status != http.StatusOK {
		t.Fatalf("MCP initialize with the manually refreshed token: %d", status)
	}
}
