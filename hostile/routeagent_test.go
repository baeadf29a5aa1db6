package hostile

import (
	"context"
	"net/http"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/mcpgateway/mcp-gateway/token"
)

// TestRouteAgentMismatch: an Envoy route built for one agent (its
// ext_authz context_extensions name it) receives a path for another, e.g.
// when Envoy and the gateway normalise a path differently. Bob may use beta,
// so the Check alone would allow /beta/mcp, and Envoy would send bob to
// alpha's upstream as "beta". The Check refuses it, before the credential
// (issue 12); a route's own agent is still allowed.
func TestRouteAgentMismatch(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			g := newGW(t, b, nil)
			bob := "Bearer " + g.good(func(c *token.Claims) { c.Subject = "bob" })
			check := func(route, path string) (int32, string) {
				t.Helper()
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				resp, err := g.grpc.Check(ctx, &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
					ContextExtensions: map[string]string{"agent": route},
					Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
						Method: http.MethodPost, Path: path,
						Headers: map[string]string{":path": path, ":method": http.MethodPost, "authorization": bob, "x-mcp-agent": route},
					}},
				}})
				if err != nil {
					t.Fatal(err)
				}
				return resp.GetStatus().GetCode(), resp.GetDynamicMetadata().GetFields()["reason"].GetStringValue()
			}
			if code, _ := check("beta", "/beta/mcp"); code != 0 {
				t.Fatalf("bob at beta on beta's route: code %d, want OK", code)
			}
			for _, c := range [][2]string{{"alpha", "/beta/mcp"}, {"private", "/beta/mcp/"}, {"BETA", "/beta/mcp"}, {"", "/beta/mcp"}} {
				if code, reason := check(c[0], c[1]); code != 5 || reason != "route_mismatch" {
					t.Errorf("route %q, path %s: code %d reason %q, want NOT_FOUND route_mismatch", c[0], c[1], code, reason)
				}
			}
		})
	}
}
