package hostile

// The identity assertion under attack: a client's own x-mcp-identity (in
// any spelling, repeated) never reaches the agent; the one the gateway adds
// verifies for that agent only; a refused request carries none; and an
// assertion (or the access token) cannot pass for another.

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/mcpgateway/mcp-gateway/agentauth"
	"github.com/mcpgateway/mcp-gateway/assertion"
	"github.com/mcpgateway/mcp-gateway/authz"
	"github.com/mcpgateway/mcp-gateway/token"
)

// identityGW is a gateway signing assertions, and a verifier for agent
// alpha reading its published keys.
func identityGW(t *testing.T) (*gw, func(aud string) *agentauth.Verifier) {
	t.Helper()
	k, err := assertion.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	var signer *assertion.Signer
	g := newGWWith(t, backends(t)[0], gwOptions{authz: func(g *gw, o *authz.Options) {
		signer, err = assertion.New(assertion.Options{Issuer: g.url, Keys: []assertion.Key{{ID: "h1", Private: k}}})
		if err != nil {
			t.Fatal(err)
		}
		o.Assertions = signer
	}})
	jwks := httptest.NewServer(signer.JWKSHandler())
	t.Cleanup(jwks.Close)
	return g, func(aud string) *agentauth.Verifier {
		v, err := agentauth.New(agentauth.Options{Issuer: g.url, Audiences: []string{aud}, JWKSURL: jwks.URL})
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// upstreamHeaders is what the echoing upstream received.
func upstreamHeaders(t *testing.T, r *reply) map[string]string {
	t.Helper()
	var got struct {
		Headers map[string]string `json:"headers"`
	}
	if err := json.Unmarshal(r.body, &got); err != nil {
		t.Fatalf("upstream echo %s: %v", r.body, err)
	}
	return got.Headers
}

func TestIdentityAssertionHostile(t *testing.T) {
	g, verifier := identityGW(t)
	alpha := verifier(g.resource("alpha"))
	tok := g.good(func(c *token.Claims) { c.Audience = jwt.ClaimStrings{g.resource("alpha")} })
	forged := g.forge(jwt.SigningMethodHS256, []byte(signingSecret), signingKID, func(c *token.Claims) { c.Subject = "root" })
	init := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}`

	// Spoofed identity assertions in every spelling and repeated: the agent
	// sees exactly the gateway's.
	r := g.raw(http.MethodPost, "/alpha/mcp", [][2]string{
		{"Authorization", "Bearer " + tok}, {"Content-Type", "application/json"},
		{"X-Mcp-Identity", forged}, {"x-mcp-identity", forged}, {"X-MCP-IDENTITY", "x"}, {"X_Mcp_Identity", forged},
	}, init)
	if r.status != http.StatusOK {
		t.Fatalf("allowed request: %d %s", r.status, r.body)
	}
	h := upstreamHeaders(t, r)
	got := h["x-mcp-identity"]
	if got == "" || strings.Contains(got, ",") || got == forged {
		t.Fatalf("the agent got x-mcp-identity %q", got)
	}
	for k := range h {
		if strings.Contains(k, "identity") && k != "x-mcp-identity" {
			t.Errorf("a spoofed spelling reached the agent: %s", k)
		}
	}
	id, err := alpha.Verify(t.Context(), got)
	if err != nil || id.Subject != "alice" || id.Credential != "oauth" {
		t.Fatalf("the gateway's assertion: %+v %v", id, err)
	}

	// Replays: the assertion for alpha is nothing to another agent, and
	// neither the access token nor a token forged with the HS256 key
	// passes for an assertion.
	if _, err := verifier(g.resource("beta")).Verify(t.Context(), got); err == nil {
		t.Error("alpha's assertion verified at beta")
	}
	for name, raw := range map[string]string{"access token": tok, "HS256 forgery": forged} {
		if _, err := alpha.Verify(t.Context(), raw); err == nil {
			t.Errorf("%s verified as an assertion", name)
		}
	}

	// Refused requests carry none, in either adapter's answer, and the
	// agent is never reached.
	hits := g.up.hits.Load()
	for name, auth := range map[string]string{
		"no credential": "", "forged subject": "Bearer " + g.good(func(c *token.Claims) { c.Subject = "mallory" }),
		"other agent": "Bearer " + g.good(func(c *token.Claims) { c.Audience = jwt.ClaimStrings{g.resource("beta")} }),
		"expired":     "Bearer " + g.good(func(c *token.Claims) { c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(-time.Hour)) }),
	} {
		r := g.check("/alpha/mcp", auth, [2]string{"X-Mcp-Identity", forged})
		if r.status == http.StatusOK || r.hdr.Get("X-Mcp-Identity") != "" {
			t.Errorf("%s: %d with x-mcp-identity %q", name, r.status, r.hdr.Get("X-Mcp-Identity"))
		}
	}
	if n := g.up.hits.Load(); n != hits {
		t.Errorf("refused requests reached the agent %d times", n-hits)
	}
}
