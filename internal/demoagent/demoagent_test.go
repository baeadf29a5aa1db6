package demoagent

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// headerTransport adds fixed headers to every request, like the gateway does.
type headerTransport struct {
	base http.RoundTripper
	set  map[string]string
}

func (t headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for k, v := range t.set {
		r.Header.Set(k, v)
	}
	return t.base.RoundTrip(r)
}

func connect(t *testing.T, endpoint string, set map[string]string) *mcp.ClientSession {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	hc := &http.Client{Transport: headerTransport{base: http.DefaultTransport, set: set}}
	c := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, nil)
	cs, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: endpoint, HTTPClient: hc}, nil)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { _ = cs.Close() })
	return cs
}

func callWhoAmI(t *testing.T, cs *mcp.ClientSession) (WhoAmI, string) {
	t.Helper()
	res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "whoami"})
	if err != nil {
		t.Fatalf("whoami: %v", err)
	}
	if res.IsError {
		t.Fatalf("whoami returned a tool error: %+v", res.Content)
	}
	raw, err := json.Marshal(res.StructuredContent)
	if err != nil {
		t.Fatal(err)
	}
	var w WhoAmI
	if err := json.Unmarshal(raw, &w); err != nil {
		t.Fatalf("structured content %s: %v", raw, err)
	}
	var text string
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			text += tc.Text
		}
	}
	return w, text
}

func TestToolsAndWhoAmI(t *testing.T) {
	srv := httptest.NewServer(Handler(nil))
	t.Cleanup(srv.Close)

	set := map[string]string{
		"x-mcp-user":       "alice",
		"x-mcp-agent":      "demo",
		"x-mcp-client-id":  "client-123",
		"x-mcp-scope":      "mcp:tools read",
		"x-mcp-credential": "oauth",
	}
	cs := connect(t, srv.URL+"/mcp", set)

	tools, err := cs.ListTools(t.Context(), nil)
	if err != nil {
		t.Fatalf("list tools: %v", err)
	}
	var names []string
	for _, tool := range tools.Tools {
		names = append(names, tool.Name)
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"admin_echo", "echo", "whoami"}) {
		t.Fatalf("tools = %v", names)
	}

	w, text := callWhoAmI(t, cs)
	want := WhoAmI{User: "alice", Agent: "demo", ClientID: "client-123", Scope: "mcp:tools read", Credential: "oauth"}
	if w.User != want.User || w.Agent != want.Agent || w.ClientID != want.ClientID || w.Scope != want.Scope || w.Credential != want.Credential {
		t.Fatalf("whoami = %+v, want %+v", w, want)
	}
	if w.AuthorizationPresent {
		t.Fatal("authorization_present = true without an Authorization header")
	}
	for k, v := range set {
		if w.MCPHeaders[k] != v {
			t.Errorf("mcp_headers[%s] = %q, want %q", k, w.MCPHeaders[k], v)
		}
	}
	if len(w.MCPHeaders) != len(set) {
		t.Errorf("mcp_headers = %v, want exactly %v", w.MCPHeaders, set)
	}
	for _, s := range []string{`"alice"`, `"demo"`, `"oauth"`, "x-mcp-client-id: client-123", "No Authorization header"} {
		if !strings.Contains(text, s) {
			t.Errorf("text %q lacks %q", text, s)
		}
	}
}

func TestWhoAmIReportsAuthorization(t *testing.T) {
	srv := httptest.NewServer(Handler(nil))
	t.Cleanup(srv.Close)
	// Mounted at an arbitrary path: the handler does not care.
	cs := connect(t, srv.URL+"/some/where", map[string]string{"Authorization": "Bearer leaked"})
	w, text := callWhoAmI(t, cs)
	if !w.AuthorizationPresent {
		t.Fatal("authorization_present = false with an Authorization header")
	}
	if w.User != "" || len(w.MCPHeaders) != 0 {
		t.Fatalf("identity without identity headers: %+v", w)
	}
	if strings.Contains(text, "leaked") {
		t.Fatal("whoami echoed the Authorization value")
	}
	if !strings.Contains(text, "WARNING") || !strings.Contains(text, "did not come through") {
		t.Errorf("text %q", text)
	}
}

func TestEcho(t *testing.T) {
	srv := httptest.NewServer(Handler(nil))
	t.Cleanup(srv.Close)
	cs := connect(t, srv.URL+"/mcp", nil)
	const msg = "hello, gateway ✓"
	res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": msg}})
	if err != nil {
		t.Fatalf("echo: %v", err)
	}
	if res.IsError || len(res.Content) != 1 {
		t.Fatalf("echo result %+v", res)
	}
	if tc, ok := res.Content[0].(*mcp.TextContent); !ok || tc.Text != msg {
		t.Fatalf("echo content %#v", res.Content[0])
	}
	raw, _ := json.Marshal(res.StructuredContent)
	var out EchoOutput
	if err := json.Unmarshal(raw, &out); err != nil || out.Text != msg {
		t.Fatalf("echo structured %s (%v)", raw, err)
	}

	// Missing required input is rejected by schema validation.
	res, err = cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": 42}})
	if err == nil && !res.IsError {
		t.Fatalf("echo with a number succeeded: %+v", res)
	}
	// Oversized input is a tool error, not a crash.
	res, err = cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": strings.Repeat("a", maxEchoBytes+1)}})
	if err != nil {
		t.Fatalf("echo oversized: %v", err)
	}
	if !res.IsError {
		t.Fatal("oversized echo was not a tool error")
	}
}

func TestServeAndShutdown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	v, sign := testGateway(t)
	go func() { done <- Serve(ctx, ln, nil, v) }()
	base := "http://" + ln.Addr().String()

	resp, err := http.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "ok\n" {
		t.Fatalf("healthz %d %q", resp.StatusCode, body)
	}

	for _, path := range []string{"/mcp", "/"} {
		cs := connect(t, base+path, map[string]string{"x-mcp-user": "bob", "x-mcp-identity": sign("bob")})
		if w, _ := callWhoAmI(t, cs); w.User != "bob" {
			t.Fatalf("%s: whoami user %q", path, w.User)
		}
		// Keep the client session open across the shutdown: Serve must
		// still return.
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Fatal("server still answering after shutdown")
	}
}

func TestListenAndServeBadAddr(t *testing.T) {
	if err := ListenAndServe(t.Context(), "127.0.0.1:notaport", nil); err == nil {
		t.Fatal("ListenAndServe accepted a bad address")
	}
}
