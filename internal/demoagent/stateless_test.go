package demoagent

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// toolsList is the README's first MCP request, byte for byte.
const toolsList = `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`

// post sends body to url with the given Accept values (none: no header at all).
func post(t *testing.T, url, body string, accept ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for _, a := range accept {
		req.Header.Add("Accept", a)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// toolNames decodes a JSON (not SSE) tools/list answer.
func toolNames(t *testing.T, resp *http.Response, body []byte) []string {
	t.Helper()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("tools/list: %s: %s", resp.Status, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("tools/list Content-Type %q, want application/json (curl | jq reads it): %s", ct, body)
	}
	var out struct {
		Result struct {
			Tools []struct {
				Name string `json:"name"`
			} `json:"tools"`
		} `json:"result"`
		Error *struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatalf("tools/list body %q: %v", body, err)
	}
	if out.Error != nil {
		t.Fatalf("tools/list error: %s", out.Error.Message)
	}
	var names []string
	for _, tl := range out.Result.Tools {
		names = append(names, tl.Name)
	}
	slices.Sort(names)
	return names
}

// TestToolsListFirst: tools/list as the very first request, with no
// initialize, no session and no MCP-Protocol-Version, is answered with the
// tools, whatever Accept a plain HTTP client sends (none, curl's */*, the
// spec's pair).
func TestToolsListFirst(t *testing.T) {
	srv := httptest.NewServer(Handler(nil))
	t.Cleanup(srv.Close)
	for name, accept := range map[string][]string{
		"no Accept":        nil,
		"curl's */*":       {"*/*"},
		"the spec's pair":  {"application/json, text/event-stream"},
		"two Accept lines": {"application/json", "text/event-stream"},
	} {
		t.Run(name, func(t *testing.T) {
			resp, body := post(t, srv.URL+"/mcp", toolsList, accept...)
			if got := toolNames(t, resp, body); !slices.Equal(got, []string{"admin_echo", "echo", "whoami"}) {
				t.Fatalf("tools = %v", got)
			}
			if id := resp.Header.Get("Mcp-Session-Id"); id != "" {
				t.Fatalf("stateless agent sent Mcp-Session-Id %q", id)
			}
		})
	}
}

// TestNarrowAcceptStillRefused: only an absent Accept is read as "anything";
// one that rules out JSON is still the SDK's 400.
func TestNarrowAcceptStillRefused(t *testing.T) {
	srv := httptest.NewServer(Handler(nil))
	t.Cleanup(srv.Close)
	resp, body := post(t, srv.URL+"/mcp", toolsList, "text/html")
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("Accept: text/html: %s: %s", resp.Status, body)
	}
}

// TestToolsCallFirst: a tools/call needs no handshake either.
func TestToolsCallFirst(t *testing.T) {
	srv := httptest.NewServer(Handler(nil))
	t.Cleanup(srv.Close)
	resp, body := post(t, srv.URL+"/mcp", `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}}}`)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"structuredContent":{"text":"hi"}`) {
		t.Fatalf("tools/call: %s: %s", resp.Status, body)
	}
}

// TestEveryProtocolVersion: clients that initialize first get their own
// protocol version back (every version before 2026-07-28, which has no
// initialize) and no session id; a 2026-07-28 client's server/discover
// lists every version; GET (the standalone stream) is 405, which clients
// take as "no stream".
func TestEveryProtocolVersion(t *testing.T) {
	srv := httptest.NewServer(Handler(nil))
	t.Cleanup(srv.Close)
	versions := mcp.SupportedProtocolVersions()
	for _, v := range versions {
		if v >= "2026-07-28" {
			continue
		}
		body := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"` + v + `","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`
		resp, b := post(t, srv.URL+"/mcp", body, "application/json, text/event-stream")
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), `"protocolVersion":"`+v+`"`) {
			t.Errorf("initialize %s: %s: %s", v, resp.Status, b)
		}
		if id := resp.Header.Get("Mcp-Session-Id"); id != "" {
			t.Errorf("initialize %s: Mcp-Session-Id %q", v, id)
		}
	}

	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+"/mcp", strings.NewReader(
		`{"jsonrpc":"2.0","id":1,"method":"server/discover","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},"io.modelcontextprotocol/clientInfo":{"name":"t","version":"1"}}}}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("MCP-Protocol-Version", "2026-07-28")
	req.Header.Set("Mcp-Method", "server/discover")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var disc struct {
		Result struct {
			SupportedVersions []string `json:"supportedVersions"`
		} `json:"result"`
	}
	if err := json.Unmarshal(b, &disc); err != nil || !slices.Equal(disc.Result.SupportedVersions, versions) {
		t.Fatalf("server/discover: %s: %s (want supportedVersions %v)", resp.Status, b, versions)
	}

	resp, err = http.Get(srv.URL + "/mcp")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET: %s, want 405", resp.Status)
	}
}

// TestREADMENamesProtocolVersions keeps the README's list of the demo
// agent's protocol versions equal to what the SDK in go.mod speaks.
func TestREADMENamesProtocolVersions(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	line := regexp.MustCompile("(?m)^The demo agent speaks MCP (.*)$").FindSubmatch(b)
	if line == nil {
		t.Fatal("README lacks the line \"The demo agent speaks MCP …\"")
	}
	got := regexp.MustCompile(`\d{4}-\d{2}-\d{2}`).FindAllString(string(line[1]), -1)
	want := mcp.SupportedProtocolVersions()
	if !slices.Equal(got, want) {
		t.Fatalf("README names %v, the SDK speaks %v (newest first)", got, want)
	}
}

// TestShutdownEndsListenStreams: a subscriptions/listen stream open at
// shutdown is ended by the agent (a complete response), not cut when the
// grace period runs out (which would be an unexpected EOF).
func TestShutdownEndsListenStreams(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	v, sign := testGateway(t)
	go func() { done <- Serve(ctx, ln, nil, v) }()

	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, "http://"+ln.Addr().String()+"/mcp", strings.NewReader(
		`{"jsonrpc":"2.0","id":1,"method":"subscriptions/listen","params":{"notifications":{"toolsListChanged":true},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},"io.modelcontextprotocol/clientInfo":{"name":"t","version":"1"}}}}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("MCP-Protocol-Version", "2026-07-28")
	req.Header.Set("Mcp-Method", "subscriptions/listen")
	req.Header.Set("X-MCP-Identity", sign("alice"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("stream ended before its acknowledgement: %v", err)
		}
		if strings.Contains(line, "notifications/subscriptions/acknowledged") {
			break
		}
	}
	cancel()
	if _, err := io.Copy(io.Discard, br); err != nil {
		t.Fatalf("the listen stream was cut, not ended: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Serve: %v", err)
	}
}
