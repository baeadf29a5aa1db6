package main

import (
	"bytes"
	"context"
	"github.com/mcpgateway/mcp-gateway/internal/routes"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

func TestHashPassword(t *testing.T) {
	var out bytes.Buffer
	if err := hashPassword(strings.NewReader("correct horse battery\n"), &out); err != nil {
		t.Fatal(err)
	}
	h := strings.TrimSpace(out.String())
	if bcrypt.CompareHashAndPassword([]byte(h), []byte("correct horse battery")) != nil {
		t.Fatalf("hash %q does not match the password", h)
	}
	if bcrypt.CompareHashAndPassword([]byte(h), []byte("correct horse battery\n")) == nil {
		t.Fatal("the newline was hashed too")
	}
	for name, in := range map[string]string{"short": "short\n", "empty": "", "too long": strings.Repeat("x", 73)} {
		if err := hashPassword(strings.NewReader(in), &bytes.Buffer{}); err == nil {
			t.Errorf("%s password accepted", name)
		}
	}
	if err := runHashPassword(context.Background(), []string{"secret-in-argv"}, &bytes.Buffer{}); err == nil {
		t.Error("password taken from argv")
	}
}

func TestServeRefusesBadConfig(t *testing.T) {
	t.Setenv("MCPGW_SIGNING_KEYS", `[{"id":"k","secret":"too-short"}]`)
	err := runServe(context.Background(), nil, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "signing_keys[0]") {
		t.Fatalf("serve with a short secret: %v", err)
	}
	t.Setenv("MCPGW_SIGNING_KEYS", "")
	err = runServe(context.Background(), []string{"--config", "/nonexistent.yaml"}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "nonexistent") {
		t.Fatalf("serve with a missing file: %v", err)
	}
}

// TestDevRoutesTheContract: dev mode sends each path of the shared routing
// contract where the Envoy builder does (envoy/xds_test.go asserts the
// same table against the xDS output).
func TestDevRoutesTheContract(t *testing.T) {
	for _, e := range routes.Contract {
		if got := isGatewayPath(e.Path); got != (e.Gateway != "") {
			t.Errorf("dev: %s goes to the authorization server = %v, want %v", e.Path, got, e.Gateway != "")
		}
		if id, ok := routes.Agent(e.Path); e.Agent != "" && (!ok || id != e.Agent) {
			t.Errorf("dev: %s is not agent %s's path", e.Path, e.Agent)
		}
	}
}

func TestDevGatewayPaths(t *testing.T) {
	for p, want := range map[string]bool{
		"/oauth/token": true, "/.well-known/oauth-authorization-server": true, "/login": true,
		"/login/callback": true, "/consent": true, "/account/keys": true, "/authz/check/demo/mcp": true,
		"/demo/mcp": false, "/": false, "/oauthx/mcp": false,
		// Agents whose ids begin with a gateway path (issue 10, also found).
		"/accounting/mcp": false, "/loginx/mcp": false, "/consents/mcp": false, "/authz/checker/mcp": false,
	} {
		if isGatewayPath(p) != want {
			t.Errorf("isGatewayPath(%q) = %v", p, !want)
		}
	}
}
