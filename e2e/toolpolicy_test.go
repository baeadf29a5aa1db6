//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
)

// stepUpResult is the JSON line of ts/stepup-client.mjs.
type stepUpResult struct {
	OK              bool   `json:"ok"`
	Error           string `json:"error"`
	ProtocolVersion string `json:"protocol_version"`
	FirstScope      string `json:"first_scope"`
	FinalScope      string `json:"final_scope"`
	Echo            string `json:"echo"`
	AdminEcho       string `json:"admin_echo"`
	Posts           []struct {
		RPC, Tool, Challenge string
		Status               int
		ProtocolVersion      string `json:"protocol_version"`
		MCPMethod            string `json:"mcp_method"`
		MCPName              string `json:"mcp_name"`
	} `json:"posts"`
	Authorizations []struct{ Scope string } `json:"authorizations"`
	Consents       []struct{ Added string } `json:"consents"`
}

// TestTSSDKv2StepUp: the TypeScript SDK v2 client signs in to the dev
// gateway's demo agent with its base scope, calls echo, is refused
// admin_echo with 403 insufficient_scope naming mcp and mcp:admin, steps up
// by itself (the union of scopes, through the real login and consent pages,
// which say in words what is added) and then calls admin_echo.
func TestTSSDKv2StepUp(t *testing.T) {
	node := requireNodeSDK(t)
	d := startDev(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "ts/stepup-client.mjs", d.MCPURL)
	cmd.Env = childEnv(map[string]string{"MCPGW_E2E_PASSWORD": d.Password})
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	var res stepUpResult
	if err := json.Unmarshal(bytes.TrimSpace(stdout.Bytes()), &res); err != nil || !res.OK || runErr != nil {
		t.Fatalf("step-up client: %v %v\nstdout %s\nstderr %s", runErr, err, stdout.String(), stderr.String())
	}
	t.Logf("TS SDK v2 negotiated %s; posts: %+v", res.ProtocolVersion, res.Posts)
	if res.FirstScope != "mcp" || res.Echo != "open" {
		t.Errorf("first grant %q, echo %q: want the base scope mcp and echo allowed", res.FirstScope, res.Echo)
	}
	var refused bool
	for _, p := range res.Posts {
		if p.Tool == "admin_echo" && p.Status == 403 {
			refused = true
			if !strings.Contains(p.Challenge, `error="insufficient_scope"`) || !strings.Contains(p.Challenge, `scope="mcp mcp:admin"`) {
				t.Errorf("403 challenge %q", p.Challenge)
			}
		}
	}
	if !refused {
		t.Error("admin_echo was never refused: no step-up happened")
	}
	if n := len(res.Authorizations); n != 2 || !strings.Contains(res.Authorizations[1].Scope, "mcp:admin") || !strings.Contains(res.Authorizations[1].Scope, "mcp") {
		t.Errorf("authorizations %+v: want a second one asking for mcp and mcp:admin", res.Authorizations)
	}
	if n := len(res.Consents); n != 2 || !strings.Contains(res.Consents[1].Added, "administrative tools") || strings.Contains(res.Consents[0].Added, "administrative") {
		t.Errorf("consent pages %+v: the second should list the administrative scope as added, in words", res.Consents)
	}
	if res.AdminEcho != "stepped up" || res.FinalScope != "mcp mcp:admin" {
		t.Errorf("after step-up: admin_echo %q, scope %q", res.AdminEcho, res.FinalScope)
	}
}

// headerLog is an http.RoundTripper that notes the standard MCP headers of
// every POST.
type headerLog struct {
	base http.RoundTripper
	mu   sync.Mutex
	seen []string // "<protocol version> <Mcp-Method> <Mcp-Name>"
}

func (h *headerLog) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodPost {
		h.mu.Lock()
		h.seen = append(h.seen, r.Header.Get("Mcp-Protocol-Version")+" "+r.Header.Get("Mcp-Method")+" "+r.Header.Get("Mcp-Name"))
		h.mu.Unlock()
	}
	return h.base.RoundTrip(r)
}

// TestGoSDKToolPolicyKeys: the Go SDK client (go.mod's version) with user
// keys on the dev demo agent: an unscoped key (the base scope mcp) calls
// echo but is refused admin_echo with 403 insufficient_scope; a key
// created with --scope mcp,mcp:admin calls both. It logs whether the client
// sent Mcp-Method/Mcp-Name (the header path) or not (the body path).
func TestGoSDKToolPolicyKeys(t *testing.T) {
	d := startDev(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	key := func(scope string) string {
		args := []string{"keys", "create", "--kind", "user", "--user", "demo", "--json"}
		if scope != "" {
			args = append(args, "--scope", scope)
		}
		var k CreatedKey
		if err := json.Unmarshal(runCLI(t, d.AdminURL, d.AdminToken, args...), &k); err != nil || k.Key == "" {
			t.Fatalf("keys create: %v", err)
		}
		return k.Key
	}
	for _, c := range []struct {
		scope   string
		adminOK bool
	}{{"", false}, {"mcp,mcp:admin", true}} {
		log := &headerLog{base: http.DefaultTransport}
		hc := bearerClient(key(c.scope), nil)
		hc.Transport.(*headerTransport).base = log
		cs := connectMCP(t, ctx, d.MCPURL, hc, nil)
		assertTools(t, ctx, cs)
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "admin_echo", Arguments: map[string]any{"text": "x"}})
		switch {
		case c.adminOK && (err != nil || res.IsError):
			t.Errorf("key %q: admin_echo: %v %+v", c.scope, err, res)
		case !c.adminOK && (err == nil || !strings.Contains(err.Error(), "Forbidden")):
			t.Errorf("key %q: admin_echo not refused with 403: %v", c.scope, err)
		}
		log.mu.Lock()
		t.Logf("Go SDK key %q POST headers (version method name): %q", c.scope, log.seen)
		log.mu.Unlock()
	}
}

// TestToolPolicyThroughNginx: serve + nginx (auth_request: headers only, no
// body) in front of an agent with a tool policy. The Go SDK client (protocol
// 2026-07-28, Mcp-Method/Mcp-Name) calls echo and is refused admin_echo with
// 403 insufficient_scope; a client without those headers is refused with a
// 403 whose body says why (the policy cannot read its method).
func TestToolPolicyThroughNginx(t *testing.T) {
	gw := startServe(t, nil)
	// A demo agent of its own, accepting the identity assertion for "ruled".
	addr := freeAddr(t)
	p := startProc(t, "ruled-agent", filepath.Join(gw.Dir, "ruled-agent.log"), childEnv(nil), gatewayBin(), "demo-agent", "--listen", addr,
		"--issuer", gw.PublicURL, "--agents", "ruled", "--jwks-url", gw.HTTPURL+"/.well-known/jwks.json")
	waitReady(t, p, "/healthz", httpOK("http://"+addr+"/healthz"))
	body := `{"id":"ruled","owner":"alice","upstream":"http://` + addr + `/mcp","rules":[{"name":"admin","method":"tools/call","target":"admin_*","scopes":["mcp:admin"]}]}`
	req, _ := http.NewRequest(http.MethodPost, gw.AdminURL+"/admin/v1/agents", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+gw.AdminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("create agent: %v %v", err, resp)
	}
	resp.Body.Close()
	base := startNginx(t, gw)
	var k CreatedKey
	if err := json.Unmarshal(gw.CLI(t, "keys", "create", "--kind", "user", "--user", "alice", "--json"), &k); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ruled := base + "/ruled/mcp"
	cs := connectMCP(t, ctx, ruled, bearerClient(k.Key, nil), nil)
	if res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "hi"}}); err != nil || res.IsError {
		t.Fatalf("echo through nginx: %v %+v", err, res)
	}
	if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "admin_echo", Arguments: map[string]any{"text": "hi"}}); err == nil || !strings.Contains(err.Error(), "Forbidden") {
		t.Fatalf("admin_echo through nginx: %v, want 403", err)
	}
	status, h, b := rawInitialize(t, ruled, http.Header{"Authorization": {"Bearer " + k.Key}})
	if status != http.StatusForbidden || len(h.Values("WWW-Authenticate")) != 0 ||
		!strings.Contains(b, `"invalid_request"`) || !strings.Contains(b, "2026-07-28") {
		t.Fatalf("pre-2026-07-28 request through nginx: %d %v %s", status, h, b)
	}
	// The same client on an agent without rules is served as before.
	if status, _, b := rawInitialize(t, base+"/demo/mcp", http.Header{"Authorization": {"Bearer " + k.Key}}); status != http.StatusOK {
		t.Fatalf("agent without rules: %d %s", status, b)
	}
}

// TestGoSDKStepUp: the Go SDK's OAuth client (auth.AuthorizationCodeHandler)
// signs in to the dev demo agent, calls echo, is refused admin_echo with 403
// insufficient_scope and steps up by itself (the union of its granted scopes
// and the challenge's, through the real login and consent pages), after
// which admin_echo is served.
func TestGoSDKStepUp(t *testing.T) {
	d := startDev(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	redirect := "http://" + freeAddr(t) + "/callback"
	var asked []string // the scope of each authorization request
	h, err := auth.NewAuthorizationCodeHandler(&auth.AuthorizationCodeHandlerConfig{
		DynamicClientRegistrationConfig: &auth.DynamicClientRegistrationConfig{
			Metadata: &oauthex.ClientRegistrationMetadata{
				ClientName: "Go SDK step-up e2e", RedirectURIs: []string{redirect}, TokenEndpointAuthMethod: "none",
				GrantTypes: []string{"authorization_code", "refresh_token"}, ResponseTypes: []string{"code"},
			},
		},
		RedirectURL: redirect,
		AuthorizationCodeFetcher: func(ctx context.Context, args *auth.AuthorizationArgs) (*auth.AuthorizationResult, error) {
			u, _ := url.Parse(args.URL)
			asked = append(asked, u.Query().Get("scope"))
			r, err := browserLogin(ctx, args.URL, d.User, d.Password)
			if err != nil {
				return nil, err
			}
			return &auth.AuthorizationResult{Code: r.Code, State: r.State, Iss: r.Iss}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	cs := connectMCP(t, ctx, d.MCPURL, &http.Client{Timeout: 30 * time.Second}, h)
	assertTools(t, ctx, cs)
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "admin_echo", Arguments: map[string]any{"text": "stepped up"}})
	if err != nil || res.IsError {
		t.Fatalf("admin_echo after the SDK's step-up: %v %+v (authorizations asked %q)", err, res, asked)
	}
	if len(asked) != 2 || asked[0] != "mcp" || !strings.Contains(asked[1], "mcp:admin") || !strings.Contains(" "+asked[1]+" ", " mcp ") {
		t.Fatalf("authorizations asked for %q: want mcp, then the union with mcp:admin", asked)
	}
}
