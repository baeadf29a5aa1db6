//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"
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
