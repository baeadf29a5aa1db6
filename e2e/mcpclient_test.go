//go:build e2e

package e2e

// Helpers around the official Go MCP SDK client, shared by the suites:
//
//	connectMCP(t, ctx, endpoint, httpClient, oauth) *mcp.ClientSession
//	whoami(t, ctx, session) demoagent.WhoAmI
//	bearerClient(token, extra http.Header) *http.Client
//	rawInitialize(t, endpoint, header) (status int, h http.Header, body string)
//	newRecorder(base http.RoundTripper) *recorder

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpgateway/mcp-gateway/internal/demoagent"
)

// connectMCP connects the SDK client over Streamable HTTP; the session is
// closed at cleanup.
func connectMCP(t testing.TB, ctx context.Context, endpoint string, hc *http.Client, oauth auth.OAuthHandler) *mcp.ClientSession {
	t.Helper()
	cs, err := dialMCP(ctx, endpoint, hc, oauth)
	if err != nil {
		t.Fatalf("MCP connect %s: %v", endpoint, err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

func dialMCP(ctx context.Context, endpoint string, hc *http.Client, oauth auth.OAuthHandler) (*mcp.ClientSession, error) {
	client := mcp.NewClient(&mcp.Implementation{Name: "mcp-gateway-e2e", Version: "1.0.0"}, nil)
	return client.Connect(ctx, &mcp.StreamableClientTransport{
		Endpoint:     endpoint,
		HTTPClient:   hc,
		OAuthHandler: oauth,
		MaxRetries:   -1, // a failure must show, not be retried away
		// The standalone GET stream would outlive calls and only adds noise.
		DisableStandaloneSSE: true,
	}, nil)
}

// whoami calls the demo agent's whoami tool and decodes its structured output.
func whoami(t testing.TB, ctx context.Context, cs *mcp.ClientSession) demoagent.WhoAmI {
	t.Helper()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "whoami"})
	if err != nil {
		t.Fatalf("call whoami: %v", err)
	}
	if res.IsError {
		t.Fatalf("whoami returned an error: %+v", res.Content)
	}
	b, err := json.Marshal(res.StructuredContent)
	if err != nil {
		t.Fatal(err)
	}
	var w demoagent.WhoAmI
	if err := json.Unmarshal(b, &w); err != nil {
		t.Fatalf("whoami output %s: %v", b, err)
	}
	return w
}

// assertTools checks tools/list names the demo agent's tools and echo works.
func assertTools(t testing.TB, ctx context.Context, cs *mcp.ClientSession) {
	t.Helper()
	lt, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatalf("tools/list: %v", err)
	}
	var names []string
	for _, tool := range lt.Tools {
		names = append(names, tool.Name)
	}
	if !slices.Contains(names, "whoami") || !slices.Contains(names, "echo") {
		t.Fatalf("tools/list: %v, want whoami and echo", names)
	}
	text := "hello " + randomString(6)
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": text}})
	if err != nil {
		t.Fatalf("call echo: %v", err)
	}
	if len(res.Content) != 1 {
		t.Fatalf("echo: %d contents", len(res.Content))
	}
	if tc, ok := res.Content[0].(*mcp.TextContent); !ok || tc.Text != text {
		t.Fatalf("echo: got %#v, want %q", res.Content[0], text)
	}
}

// assertIdentity checks what the agent received.
func assertIdentity(t testing.TB, w demoagent.WhoAmI, user, agent, credential string) {
	t.Helper()
	if w.User != user || w.Agent != agent || w.Credential != credential {
		t.Fatalf("agent saw user=%q agent=%q credential=%q, want %q %q %q", w.User, w.Agent, w.Credential, user, agent, credential)
	}
	if w.AuthorizationPresent {
		t.Fatal("an Authorization header reached the agent")
	}
	for k, v := range w.MCPHeaders {
		if strings.Contains(v, "mallory") {
			t.Fatalf("a spoofed header reached the agent: %s: %s", k, v)
		}
	}
}

// headerTransport adds fixed headers to every request.
type headerTransport struct {
	base http.RoundTripper
	h    http.Header
}

func (ht *headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for k, vs := range ht.h {
		r.Header.Del(k)
		for _, v := range vs {
			r.Header.Add(k, v)
		}
	}
	return ht.base.RoundTrip(r)
}

// bearerClient is an HTTP client that sends Authorization: Bearer token
// (unless token is "") and extra on every request: a plain MCP client with
// a static credential.
func bearerClient(token string, extra http.Header) *http.Client {
	h := http.Header{}
	for k, vs := range extra {
		h[k] = vs
	}
	if token != "" {
		h.Set("Authorization", "Bearer "+token)
	}
	return &http.Client{Timeout: 30 * time.Second, Transport: &headerTransport{base: http.DefaultTransport, h: h}}
}

// rawInitialize POSTs an MCP initialize to endpoint with header and
// returns the status, response headers and body.
func rawInitialize(t testing.TB, endpoint string, header http.Header) (int, http.Header, string) {
	t.Helper()
	body := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`
	req, err := http.NewRequest(http.MethodPost, endpoint, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	resp, err := quickClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", endpoint, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, resp.Header, string(b)
}

// wantChallenge checks a 401/403's WWW-Authenticate names the agent's PRM.
func wantChallenge(t testing.TB, h http.Header, publicURL, agent, errCode string) {
	t.Helper()
	got := h.Values("WWW-Authenticate")
	if len(got) != 1 {
		t.Fatalf("WWW-Authenticate: %q, want exactly one challenge", got)
	}
	c := got[0]
	prm := fmt.Sprintf(`resource_metadata="%s/.well-known/oauth-protected-resource/%s/mcp"`, publicURL, agent)
	if !strings.HasPrefix(c, "Bearer ") || !strings.Contains(c, `realm="MCP"`) || !strings.Contains(c, prm) {
		t.Fatalf("WWW-Authenticate %q: want Bearer realm=\"MCP\" and %s", c, prm)
	}
	if errCode != "" && !strings.Contains(c, `error="`+errCode+`"`) {
		t.Fatalf("WWW-Authenticate %q: want error=%q", c, errCode)
	}
}

// exchange is one HTTP round trip seen by a recorder.
type exchange struct {
	Method, Path string
	Query        url.Values
	Form         url.Values // form bodies (token, revoke)
	Status       int
	Auth         string      // the Authorization header sent
	RespHeader   http.Header // response headers
	RespBody     []byte      // JSON answers of /oauth/* (bounded)
}

// recorder is an http.RoundTripper that keeps every exchange, so a test can
// check the order of the OAuth discovery steps the SDK took.
type recorder struct {
	base http.RoundTripper
	mu   sync.Mutex
	log  []exchange
}

func newRecorder(base http.RoundTripper) *recorder {
	if base == nil {
		base = http.DefaultTransport
	}
	return &recorder{base: base}
}

func (rc *recorder) RoundTrip(r *http.Request) (*http.Response, error) {
	ex := exchange{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Auth: r.Header.Get("Authorization")}
	if r.Body != nil && strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		b, err := io.ReadAll(r.Body)
		r.Body.Close()
		if err != nil {
			return nil, err
		}
		ex.Form, _ = url.ParseQuery(string(b))
		r = r.Clone(r.Context())
		r.Body = io.NopCloser(bytes.NewReader(b))
		r.ContentLength = int64(len(b))
	}
	resp, err := rc.base.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	ex.Status = resp.StatusCode
	ex.RespHeader = resp.Header.Clone()
	if strings.HasPrefix(r.URL.Path, "/oauth/") {
		b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		ex.RespBody = b
		resp.Body = io.NopCloser(bytes.NewReader(b))
	}
	rc.mu.Lock()
	rc.log = append(rc.log, ex)
	rc.mu.Unlock()
	return resp, nil
}

func (rc *recorder) exchanges() []exchange {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.log)
}

// trail is the log as "METHOD path status" lines, for failure messages.
func (rc *recorder) trail() string {
	var b strings.Builder
	for _, ex := range rc.exchanges() {
		fmt.Fprintf(&b, "  %s %s → %d\n", ex.Method, ex.Path, ex.Status)
	}
	return b.String()
}

// mustParseQuery splits u into its URL without query and its query.
func mustParseQuery(t testing.TB, u string) (string, url.Values) {
	t.Helper()
	p, err := url.Parse(u)
	if err != nil {
		t.Fatalf("parse %q: %v", u, err)
	}
	q := p.Query()
	p.RawQuery = ""
	return p.String(), q
}

// redactQuery hides codes and challenges in failure messages.
func redactQuery(q url.Values) url.Values {
	out := url.Values{}
	for k, v := range q {
		switch k {
		case "code", "code_challenge", "code_verifier", "state":
			out[k] = []string{"…"}
		default:
			out[k] = v
		}
	}
	return out
}
