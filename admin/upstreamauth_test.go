package admin

import (
	"strings"
	"testing"

	"github.com/mcpgateway/mcp-gateway/store"
)

// TestAgentUpstreamAuth: an agent's upstream credential is stored and shown
// as a reference only; a reference that could reach the gateway's own
// secrets, or a header the gateway owns, is refused.
func TestAgentUpstreamAuth(t *testing.T) {
	e := newEnv(t, nil)
	b := e.api(t, "POST", "/admin/v1/agents", `{"id":"weather","owner":"alice","upstream_auth":{"header":"Authorization","prefix":"Bearer ","secret_file":"weather.token"}}`, 201)
	got := decode[store.Agent](t, b)
	want := store.UpstreamAuth{Header: "authorization", Prefix: "Bearer ", SecretFile: "weather.token"}
	if got.UpstreamAuth == nil || *got.UpstreamAuth != want {
		t.Fatalf("created %+v", got.UpstreamAuth)
	}
	got = decode[store.Agent](t, e.api(t, "GET", "/admin/v1/agents/weather", "", 200))
	if got.UpstreamAuth == nil || *got.UpstreamAuth != want {
		t.Fatalf("read back %+v", got.UpstreamAuth)
	}
	for name, body := range map[string]string{
		"gateway env":      `{"header":"x-api-key","secret_env":"MCPGW_ADMIN_TOKEN"}`,
		"path":             `{"header":"x-api-key","secret_file":"../keys/signing-key"}`,
		"absolute path":    `{"header":"x-api-key","secret_file":"/run/secrets/k"}`,
		"both":             `{"header":"x-api-key","secret_file":"a","secret_env":"MCPGW_UPSTREAM_SECRET_A"}`,
		"neither":          `{"header":"x-api-key"}`,
		"identity header":  `{"header":"X-MCP-User","secret_file":"a"}`,
		"host":             `{"header":"host","secret_file":"a"}`,
		"bad header name":  `{"header":"x api key","secret_file":"a"}`,
		"prefix with CRLF": `{"header":"x-api-key","prefix":"a\r\nX-Evil: 1","secret_file":"a"}`,
	} {
		t.Run(name, func(t *testing.T) {
			errorMessage(t, e.api(t, "POST", "/admin/v1/agents", `{"id":"bad","owner":"alice","upstream_auth":`+body+`}`, 400), "upstream_auth")
		})
	}
	// The API has no field for the secret itself.
	errorMessage(t, e.api(t, "POST", "/admin/v1/agents", `{"id":"bad","owner":"alice","upstream_auth":{"header":"x-api-key","secret":"s3cret"}}`, 400), `unknown field "secret"`)
	e.api(t, "GET", "/admin/v1/agents/bad", "", 404)
	if strings.Contains(string(e.api(t, "GET", "/admin/v1/agents", "", 200)), "s3cret") {
		t.Fatal("a secret is shown")
	}
}
