package oauthsrv

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/mcpgateway/mcp-gateway/config"
	"github.com/mcpgateway/mcp-gateway/token"
)

// TestMetadataUnderPublicPath: with public_url https://h/gw the metadata
// documents are served where RFC 9728 §3.1 and RFC 8414 §3.1 put them, the
// well-known suffix between the host and /gw, each naming the resource (or
// issuer) the URL was built from. The bare root document, whose resource
// would be https://h, and the agent metadata without /gw are not ours.
func TestMetadataUnderPublicPath(t *testing.T) {
	e := newEnv(t, func(cfg *config.Config, o *Options) {
		cfg.PublicURL += "/gw"
		ring, err := token.NewRing(cfg.PublicURL, []token.Key{{ID: "k1", Secret: []byte(testSecret)}})
		if err != nil {
			t.Fatal(err)
		}
		o.Ring = ring
	})
	pub := e.url + "/gw"
	for path, res := range map[string]string{
		"/.well-known/oauth-protected-resource/gw":           pub,
		"/.well-known/oauth-protected-resource/gw/demo/mcp":  pub + "/demo/mcp",
		"/.well-known/oauth-protected-resource/gw/demo/mcp/": pub + "/demo/mcp/",
	} {
		resp := e.get(path)
		m := readJSON(t, resp)
		if resp.StatusCode != http.StatusOK || m["resource"] != res || !slices.Equal(toStrings(m["authorization_servers"]), []string{pub}) {
			t.Errorf("%s: %d %v, want resource %s", path, resp.StatusCode, m, res)
		}
	}
	resp := e.get("/.well-known/oauth-authorization-server/gw")
	if m := readJSON(t, resp); resp.StatusCode != http.StatusOK || m["issuer"] != pub || m["token_endpoint"] != pub+"/oauth/token" {
		t.Errorf("AS metadata: %d %v", resp.StatusCode, m)
	}
	// The account page's forms post below the path, not to the host's root.
	if body := readBodyString(e.get("/account")); !strings.Contains(body, `action="/gw/account/login"`) {
		t.Errorf("signed-out account page: %s", body)
	}
	for _, path := range []string{
		"/.well-known/oauth-protected-resource",
		"/.well-known/oauth-protected-resource/demo/mcp",
		"/.well-known/oauth-protected-resource/gwx/demo/mcp",
		"/.well-known/oauth-protected-resource/gw/ghost/mcp",
	} {
		expectOAuthError(t, e.get(path), http.StatusNotFound, "not_found")
	}
}
