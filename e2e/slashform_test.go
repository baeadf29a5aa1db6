//go:build e2e

package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
)

// The slash form of an MCP endpoint (issue 16 item 9): the Go SDK, which
// requires the metadata's resource to equal the URL it connects to (RFC 9728
// §3.3), connects to http://…/demo/mcp/ and must get a token for that one
// agent — before the fix it fell back to the root metadata and got a
// gateway-wide token, valid for every agent of the user.
func TestGoSDKSlashFormDevMode(t *testing.T) {
	d := startDev(t)
	goSDKSlashForm(t, d.MCPURL+"/", d.User, d.Password)
}

func TestGoSDKSlashFormThroughNginx(t *testing.T) {
	gw := startServe(t, nil)
	startNginx(t, gw)
	goSDKSlashForm(t, gw.MCPURL("demo")+"/", "alice", gw.Users["alice"])
}

func goSDKSlashForm(t *testing.T, mcpURL, user, pass string) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rec := newRecorder(nil)
	hc := &http.Client{Transport: rec, Timeout: 30 * time.Second}
	redirect := "http://" + freeAddr(t) + "/callback"
	h, err := auth.NewAuthorizationCodeHandler(&auth.AuthorizationCodeHandlerConfig{
		DynamicClientRegistrationConfig: &auth.DynamicClientRegistrationConfig{
			Metadata: &oauthex.ClientRegistrationMetadata{
				ClientName: "Go SDK slash form", RedirectURIs: []string{redirect},
				TokenEndpointAuthMethod: "none", GrantTypes: []string{"authorization_code"}, ResponseTypes: []string{"code"},
			},
		},
		RedirectURL: redirect,
		Client:      hc,
		AuthorizationCodeFetcher: func(ctx context.Context, args *auth.AuthorizationArgs) (*auth.AuthorizationResult, error) {
			r, err := browserLogin(ctx, args.URL, user, pass)
			if err != nil {
				return nil, err
			}
			return &auth.AuthorizationResult{Code: r.Code, State: r.State, Iss: r.Iss}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	cs := connectMCP(t, ctx, mcpURL, hc, h)
	assertIdentity(t, whoami(t, ctx, cs), user, "demo", "oauth")

	var exch *exchange
	for _, e := range rec.exchanges() {
		if e.Method == "POST" && e.Path == "/oauth/token" && e.Form.Get("grant_type") == "authorization_code" {
			exch = &e
		}
	}
	if exch == nil || exch.Status != http.StatusOK {
		t.Fatalf("no successful code exchange:\n%s", rec.trail())
	}
	if got := exch.Form.Get("resource"); got != mcpURL {
		t.Fatalf("the SDK asked for resource %q, want %q (it fell back to the root metadata)", got, mcpURL)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(exch.RespBody, &tok); err != nil {
		t.Fatal(err)
	}
	if aud := audience(t, tok.AccessToken); len(aud) != 1 || aud[0] != mcpURL {
		t.Fatalf("token aud %q, want only %q: a token for this agent, not the gateway", aud, mcpURL)
	}
}

// audience reads the aud claim of a JWT without verifying it.
func audience(t *testing.T, jwt string) []string {
	t.Helper()
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Fatalf("access token is not a JWT")
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Aud json.RawMessage `json:"aud"`
	}
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	var one string
	if json.Unmarshal(c.Aud, &one) == nil {
		return []string{one}
	}
	var many []string
	_ = json.Unmarshal(c.Aud, &many)
	return many
}
