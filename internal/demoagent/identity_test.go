package demoagent

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mcpgateway/mcp-gateway/agentauth"
	"github.com/mcpgateway/mcp-gateway/assertion"
)

const testIssuer = "http://gw.test"

// testGateway is the gateway's side of the assertion for the demo agent's
// tests: a signer and its JWKS, and a verifier fetching it.
func testGateway(t *testing.T) (*agentauth.Verifier, func(user string) string) {
	t.Helper()
	k, err := assertion.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	s, err := assertion.New(assertion.Options{Issuer: testIssuer, Keys: []assertion.Key{{ID: "t1", Private: k}}})
	if err != nil {
		t.Fatal(err)
	}
	jwks := httptest.NewServer(s.JWKSHandler())
	t.Cleanup(jwks.Close)
	v, err := agentauth.New(agentauth.Options{Issuer: testIssuer, Audiences: []string{testIssuer + "/demo/mcp"}, JWKSURL: jwks.URL})
	if err != nil {
		t.Fatal(err)
	}
	return v, func(user string) string {
		raw, err := s.Sign(assertion.Identity{Subject: user, ClientID: "c1", Scope: "mcp", Credential: "oauth"}, testIssuer+"/demo/mcp", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
}

// TestServeRefusesWithoutAssertion: plain x-mcp-* headers, however
// plausible, do not get a request to the tools; /healthz stays open.
func TestServeRefusesWithoutAssertion(t *testing.T) {
	v, sign := testGateway(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	ctx, cancel := context.WithCancel(t.Context())
	go func() { done <- Serve(ctx, ln, nil, v) }()
	t.Cleanup(func() { cancel(); <-done })
	base := "http://" + ln.Addr().String()
	init := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`
	post := func(hdr map[string]string) int {
		req, _ := http.NewRequest("POST", base+"/mcp", strings.NewReader(init))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	forged := map[string]string{"X-Mcp-User": "alice", "X-Mcp-Agent": "demo", "X-Mcp-Credential": "oauth", "X-Mcp-Scope": "mcp"}
	if c := post(forged); c != http.StatusForbidden {
		t.Fatalf("forged x-mcp-* headers: %d, want 403", c)
	}
	forged["X-Mcp-Identity"] = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbGljZSJ9."
	if c := post(forged); c != http.StatusForbidden {
		t.Fatalf("forged assertion: %d, want 403", c)
	}
	if c := post(map[string]string{"X-Mcp-Identity": sign("alice")}); c != http.StatusOK {
		t.Fatalf("the gateway's assertion: %d, want 200", c)
	}
	if resp, err := http.Get(base + "/healthz"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz: %v %v", resp, err)
	}
	ln2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := Serve(ctx, ln2, nil, nil); err == nil {
		t.Fatal("Serve without a verifier started")
	}
}
