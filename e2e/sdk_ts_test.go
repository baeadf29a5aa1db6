//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The official TypeScript SDK (@modelcontextprotocol/sdk, locked in
// e2e/package-lock.json) signs in through the whole MCP authorization flow:
// ts/oauth-client.mjs drives it and prints what it saw as one JSON line.

func TestTSSDKOAuthDevMode(t *testing.T) {
	node := requireNodeSDK(t)
	d := startDev(t)
	tsSDKOAuth(t, node, d.URL, d.MCPURL, d.AdminURL, d.User, d.Password)
}

func TestTSSDKOAuthThroughNginx(t *testing.T) {
	node := requireNodeSDK(t)
	gw := startServe(t, nil)
	base := startNginx(t, gw)
	tsSDKOAuth(t, node, base, gw.MCPURL("demo"), gw.AdminURL, "alice", gw.Users["alice"])

	// bob does not own the demo agent: the gateway answers the authorization
	// with access_denied after his login, and the SDK client fails cleanly.
	res, out := runTSClient(t, node, gw.MCPURL("demo"), "bob", gw.Users["bob"])
	if res.OK {
		t.Fatalf("bob signed in to alice's agent through the SDK:\n%s", out)
	}
	if !strings.Contains(res.Error, "access_denied") {
		t.Fatalf("bob's SDK run failed, but not with access_denied: %s", res.Error)
	}
}

// tsResult is the JSON line of ts/oauth-client.mjs.
type tsResult struct {
	OK    bool   `json:"ok"`
	Error string `json:"error"`
	Steps []struct {
		Method    string `json:"method"`
		Path      string `json:"path"`
		Status    int    `json:"status"`
		GrantType string `json:"grant_type"`
		RPC       string `json:"rpc"`
	} `json:"steps"`
	Browser []struct {
		Method string `json:"method"`
		Path   string `json:"path"`
		Status int    `json:"status"`
		Page   string `json:"page"`
	} `json:"browser"`
	ConsentNamesClient bool `json:"consent_page_names_client"`
	Redirect           struct {
		HasCode      bool   `json:"has_code"`
		StatePresent bool   `json:"state_present"`
		Iss          string `json:"iss"`
	} `json:"redirect"`
	Authorize struct {
		CodeChallengeMethod  string `json:"code_challenge_method"`
		CodeChallengePresent bool   `json:"code_challenge_present"`
		Resource             string `json:"resource"`
		Scope                string `json:"scope"`
		StatePresent         bool   `json:"state_present"`
	} `json:"authorize"`
	ClientID  string `json:"client_id"`
	Discovery struct {
		AuthorizationServer string `json:"authorization_server"`
		Resource            string `json:"resource"`
		Issuer              string `json:"issuer"`
	} `json:"discovery"`
	Token struct {
		TokenType       string `json:"token_type"`
		ExpiresIn       int    `json:"expires_in"`
		Scope           string `json:"scope"`
		HasRefreshToken bool   `json:"has_refresh_token"`
	} `json:"token"`
	Server             string   `json:"server"`
	Tools              []string `json:"tools"`
	Whoami             tsWhoami `json:"whoami"`
	WhoamiAfterRefresh tsWhoami `json:"whoami_after_refresh"`
	Refresh            struct {
		TokensSaved         int  `json:"tokens_saved"`
		NewAccessToken      bool `json:"new_access_token"`
		RefreshTokenRotated bool `json:"refresh_token_rotated"`
	} `json:"refresh"`
}

type tsWhoami struct {
	User                 string            `json:"user"`
	Agent                string            `json:"agent"`
	ClientID             string            `json:"client_id"`
	Scope                string            `json:"scope"`
	Credential           string            `json:"credential"`
	AuthorizationPresent *bool             `json:"authorization_present"`
	MCPHeaders           map[string]string `json:"mcp_headers"`
}

// requireNodeSDK returns node's path once node and the locked npm packages
// are installed; otherwise it skips (CI unset) or fails (CI=true), naming
// what is missing.
func requireNodeSDK(t *testing.T) string {
	t.Helper()
	node := requireTool(t, "node")
	if _, err := os.Stat(filepath.Join("node_modules", "@modelcontextprotocol", "sdk", "package.json")); err != nil {
		missing(t, "e2e/node_modules/@modelcontextprotocol/sdk is missing: run `npm ci` in e2e/")
	}
	return node
}

// runTSClient runs the SDK client for user against mcpURL and returns its
// parsed result line and its whole output (for failure messages).
func runTSClient(t *testing.T, node, mcpURL, user, pass string) (tsResult, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "ts/oauth-client.mjs", "--url", mcpURL, "--user", user, "--timeout-ms", "45000")
	cmd.Env = childEnv(map[string]string{"MCPGW_E2E_PASSWORD": pass})
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	out := fmt.Sprintf("exit: %v\nstdout:\n%s\nstderr:\n%s", runErr, stdout.String(), stderr.String())
	var last string
	sc := bufio.NewScanner(bytes.NewReader(stdout.Bytes()))
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			last = l
		}
	}
	var res tsResult
	if err := json.Unmarshal([]byte(last), &res); err != nil {
		t.Fatalf("the SDK client printed no JSON result line (%v):\n%s", err, out)
	}
	if (runErr == nil) != res.OK {
		t.Fatalf("the SDK client's exit status and its ok field disagree:\n%s", out)
	}
	return res, out
}

// tsSDKOAuth runs the SDK client for user against mcpURL (public base
// publicURL, admin listener adminURL) and checks every step it reports and
// the gateway's token counters.
func tsSDKOAuth(t *testing.T, node, publicURL, mcpURL, adminURL, user, pass string) {
	t.Helper()
	codeBefore := tokensIssued(t, adminURL, "authorization_code")
	refreshBefore := tokensIssued(t, adminURL, "refresh_token")

	res, out := runTSClient(t, node, mcpURL, user, pass)
	if !res.OK {
		t.Fatalf("the SDK client failed: %s\n%s", res.Error, out)
	}
	t.Logf("SDK steps: %s", tsTrail(res))

	// The order the spec prescribes: challenge, PRM (path-aware), AS
	// metadata, registration, code exchange, MCP calls; then the spoiled
	// token's 401 and a refresh grant before the retried call succeeds.
	resourcePath := strings.TrimPrefix(mcpURL, publicURL)
	want := []string{
		"POST " + resourcePath + " initialize 401",
		"GET /.well-known/oauth-protected-resource" + resourcePath + " 200",
		"GET /.well-known/oauth-authorization-server 200",
		"POST /oauth/register 201",
		"POST /oauth/token authorization_code 200",
		"POST " + resourcePath + " initialize 200",
		"POST " + resourcePath + " tools/list 200",
		"POST " + resourcePath + " tools/call 200",
		"POST " + resourcePath + " tools/call 401",
		"POST /oauth/token refresh_token 200",
		"POST " + resourcePath + " tools/call 200",
	}
	if missing := subsequence(tsSteps(res), want); missing != "" {
		t.Fatalf("SDK steps lack %q in order; got:\n%s", missing, tsTrail(res))
	}
	var pages []string
	for _, b := range res.Browser {
		if b.Page != "" {
			pages = append(pages, b.Page)
		}
	}
	if strings.Join(pages, ",") != "login,consent" {
		t.Fatalf("browser step saw pages %q, want the login then the consent page", pages)
	}
	if !res.ConsentNamesClient {
		t.Error("the consent page does not name the registered client")
	}

	if res.Authorize.CodeChallengeMethod != "S256" || !res.Authorize.CodeChallengePresent {
		t.Errorf("authorize: code_challenge_method %q present %v, want S256 PKCE", res.Authorize.CodeChallengeMethod, res.Authorize.CodeChallengePresent)
	}
	if res.Authorize.Resource != mcpURL {
		t.Errorf("authorize: resource %q, want %q (RFC 8707)", res.Authorize.Resource, mcpURL)
	}
	if res.Authorize.Scope != "mcp" || !res.Authorize.StatePresent {
		t.Errorf("authorize: scope %q state %v, want mcp and a state", res.Authorize.Scope, res.Authorize.StatePresent)
	}
	if !res.Redirect.HasCode || !res.Redirect.StatePresent || res.Redirect.Iss != publicURL {
		t.Errorf("redirect: %+v, want a code, the state and iss=%q (RFC 9207)", res.Redirect, publicURL)
	}
	if res.Discovery.AuthorizationServer != publicURL || res.Discovery.Issuer != publicURL || res.Discovery.Resource != mcpURL {
		t.Errorf("discovery: %+v, want AS and issuer %q, resource %q", res.Discovery, publicURL, mcpURL)
	}
	if !strings.EqualFold(res.Token.TokenType, "bearer") || res.Token.ExpiresIn <= 0 || res.Token.Scope != "mcp" {
		t.Errorf("token response: %+v", res.Token)
	}
	if res.Server != "mcp-gateway-demo" {
		t.Errorf("server name %q, want the demo agent", res.Server)
	}
	if strings.Join(res.Tools, ",") != "admin_echo,echo,whoami" {
		t.Errorf("tools %q, want admin_echo, echo and whoami", res.Tools)
	}
	if res.ClientID == "" {
		t.Fatal("no client_id from registration")
	}
	for name, w := range map[string]tsWhoami{"whoami": res.Whoami, "whoami after refresh": res.WhoamiAfterRefresh} {
		if w.User != user || w.Agent != "demo" || w.Credential != "oauth" || w.ClientID != res.ClientID || w.Scope != "mcp" {
			t.Errorf("%s: %+v, want user %q, agent demo, credential oauth, client %q, scope mcp", name, w, user, res.ClientID)
		}
		if w.AuthorizationPresent == nil || *w.AuthorizationPresent {
			t.Errorf("%s: authorization_present %v: the client's token reached the agent", name, w.AuthorizationPresent)
		}
	}
	if res.Refresh.TokensSaved != 1 || !res.Refresh.NewAccessToken || !res.Refresh.RefreshTokenRotated {
		t.Errorf("refresh: %+v, want one new token set with a new access token and a rotated refresh token", res.Refresh)
	}

	if got := tokensIssued(t, adminURL, "authorization_code") - codeBefore; got != 1 {
		t.Errorf("authorization_code tokens issued went up by %v, want 1", got)
	}
	if got := tokensIssued(t, adminURL, "refresh_token") - refreshBefore; got != 1 {
		t.Errorf("refresh_token tokens issued went up by %v, want 1", got)
	}
}

func tsSteps(res tsResult) []string {
	out := make([]string, 0, len(res.Steps))
	for _, s := range res.Steps {
		f := []string{s.Method, s.Path}
		if s.GrantType != "" {
			f = append(f, s.GrantType)
		}
		if s.RPC != "" {
			f = append(f, s.RPC)
		}
		out = append(out, strings.Join(append(f, strconv.Itoa(s.Status)), " "))
	}
	return out
}

func tsTrail(res tsResult) string { return strings.Join(tsSteps(res), "\n  ") }

// subsequence returns the first of want not found, in order, in got ("" if
// all are).
func subsequence(got, want []string) string {
	i := 0
	for _, g := range got {
		if i < len(want) && g == want[i] {
			i++
		}
	}
	if i < len(want) {
		return want[i]
	}
	return ""
}

// tokensIssued reads mcp_gateway_tokens_issued_total{grant_type=grant}
// from the admin listener's /metrics (0 before the first issue).
func tokensIssued(t *testing.T, adminURL, grant string) float64 {
	t.Helper()
	resp, err := quickClient.Get(adminURL + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %s %v", resp.Status, err)
	}
	prefix := `mcp_gateway_tokens_issued_total{grant_type="` + grant + `"} `
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, prefix); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("metrics line %q: %v", line, err)
			}
			return f
		}
	}
	return 0
}
