//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
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
