//go:build e2e

package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// inspectorOrigin is MCP Inspector's web UI.
const inspectorOrigin = "http://localhost:6274"

// corsRequestHeaders are what a 2026-07-28 browser client asks to send.
var corsRequestHeaders = []string{"authorization", "content-type", "mcp-protocol-version", "mcp-session-id", "mcp-method", "mcp-name", "mcp-param-region"}

// TestBrowserClientThroughNginx: a browser-based MCP client (MCP Inspector's
// web UI) gets through real nginx in front of serve (issue 16 item 7): its
// preflight with Mcp-Method, Mcp-Name and Mcp-Param-* is answered without a
// check, and a request from an origin in agent_origins works. A page of
// another site with a valid key is refused, saying why (item 8). A
// browser's /favicon.ico is answered 204 (item 10).
func TestBrowserClientThroughNginx(t *testing.T) {
	gw := startServe(t, &ServeOptions{Env: map[string]string{"MCPGW_AGENT_ORIGINS": inspectorOrigin}})
	base := startNginx(t, gw)
	key := gw.CreateKey(t, "agent", "demo", "browser").Key
	mcpURL := gw.MCPURL("demo")

	for _, u := range []string{mcpURL, mcpURL + "/"} {
		req, _ := http.NewRequest(http.MethodOptions, u, nil)
		req.Header.Set("Origin", inspectorOrigin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", strings.Join(corsRequestHeaders, ","))
		resp := send(t, req)
		if resp.StatusCode/100 != 2 || !originAllowed(resp.Header.Get("Access-Control-Allow-Origin"), inspectorOrigin) {
			t.Fatalf("preflight %s: %d, Allow-Origin %q", u, resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
		}
		if err := preflightCovers(resp.Header.Get("Access-Control-Allow-Headers"), corsRequestHeaders); err != "" {
			t.Errorf("preflight %s: %s", u, err)
		}
	}

	status, h, body := rawInitialize(t, mcpURL, http.Header{"Origin": {inspectorOrigin}, "Authorization": {"Bearer " + key}})
	if status != http.StatusOK || !originAllowed(h.Get("Access-Control-Allow-Origin"), inspectorOrigin) {
		t.Fatalf("initialize from %s: %d, Allow-Origin %q: %s", inspectorOrigin, status, h.Get("Access-Control-Allow-Origin"), body)
	}
	if status, _, body := rawInitialize(t, mcpURL, http.Header{"Origin": {base}, "Authorization": {"Bearer " + key}}); status != http.StatusOK {
		t.Fatalf("initialize from the public URL's origin: %d %s", status, body)
	}
	status, h, body = rawInitialize(t, mcpURL, http.Header{"Origin": {"http://evil.example.com"}, "Authorization": {"Bearer " + key}})
	var e struct {
		Error string `json:"error"`
	}
	_ = json.Unmarshal([]byte(body), &e)
	if status != http.StatusForbidden || e.Error != "origin_not_allowed" || h.Get("WWW-Authenticate") != "" {
		t.Fatalf("initialize from another site: %d %q challenge %q, want 403 origin_not_allowed", status, body, h.Get("WWW-Authenticate"))
	}

	resp := send(t, mustRequest(t, http.MethodGet, base+"/favicon.ico"))
	if resp.StatusCode != http.StatusNoContent {
		t.Errorf("/favicon.ico: %d, want 204", resp.StatusCode)
	}
}

func mustRequest(t *testing.T, method, u string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func send(t *testing.T, req *http.Request) *http.Response {
	t.Helper()
	resp, err := quickClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

func originAllowed(acao, origin string) bool { return acao == "*" || acao == origin }

// preflightCovers: Access-Control-Allow-Headers admits every requested
// header as the Fetch standard reads it: by name, or by "*" for any but
// Authorization (which must be named).
func preflightCovers(allow string, requested []string) string {
	names := map[string]bool{}
	for _, f := range strings.Split(allow, ",") {
		names[strings.ToLower(strings.TrimSpace(f))] = true
	}
	for _, h := range requested {
		if !names[h] && (h == "authorization" || !names["*"]) {
			return "Access-Control-Allow-Headers " + allow + " does not admit " + h
		}
	}
	return ""
}
