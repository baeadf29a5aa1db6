package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/mcpgateway/mcp-gateway/deploy/nginx"
	"github.com/mcpgateway/mcp-gateway/internal/routes"
)

// inspectorOrigin is MCP Inspector's web UI, which dev mode admits.
const inspectorOrigin = "http://localhost:6274"

// echoUpstream answers every request 200 and counts them; it sets its own
// CORS header, which the gateway's must replace.
func echoUpstream(t *testing.T) (*httptest.Server, *atomic.Int64) {
	n := new(atomic.Int64)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"jsonrpc":"2.0","id":1,"result":{}}`)
	}))
	t.Cleanup(ts.Close)
	return ts, n
}

func do(t *testing.T, method, u string, hdr map[string]string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(""))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// TestDevModeBrowserClient: a browser-based MCP client on MCP Inspector's
// origin gets through dev mode (issue 16 items 7, 8): its preflight, with the
// 2026-07-28 headers (Mcp-Method, Mcp-Name, Mcp-Param-*), is answered
// without a credential; the 401 challenge and the agent's answer are
// readable cross-origin. A page of another site is refused (403) before it
// reaches the agent, and gets no CORS.
func TestDevModeBrowserClient(t *testing.T) {
	up, hits := echoUpstream(t)
	base, admin := devGateway(t, up.URL+"/mcp")
	mcp := base + "/stream/mcp"

	pre := do(t, http.MethodOptions, mcp, map[string]string{
		"Origin": inspectorOrigin, "Access-Control-Request-Method": "POST",
		"Access-Control-Request-Headers": "authorization,content-type,mcp-protocol-version,mcp-method,mcp-name,mcp-param-region",
	})
	if pre.StatusCode/100 != 2 || pre.Header.Get("Access-Control-Allow-Origin") != inspectorOrigin {
		t.Fatalf("preflight: %d, Allow-Origin %q", pre.StatusCode, pre.Header.Get("Access-Control-Allow-Origin"))
	}
	allowed := pre.Header.Get("Access-Control-Allow-Headers")
	for _, h := range []string{"authorization", "content-type", "mcp-protocol-version", "mcp-session-id", "mcp-method", "mcp-name", "*"} {
		if !headerListHas(allowed, h) {
			t.Errorf("preflight Allow-Headers %q lacks %s", allowed, h)
		}
	}
	if m := pre.Header.Get("Access-Control-Allow-Methods"); !headerListHas(m, "POST") || !headerListHas(m, "DELETE") {
		t.Errorf("preflight Allow-Methods %q", m)
	}

	unauth := do(t, http.MethodPost, mcp, map[string]string{"Origin": inspectorOrigin})
	if unauth.StatusCode != http.StatusUnauthorized || unauth.Header.Get("Access-Control-Allow-Origin") != inspectorOrigin ||
		!headerListHas(unauth.Header.Get("Access-Control-Expose-Headers"), "www-authenticate") {
		t.Errorf("401 for the browser client: %d, CORS %v", unauth.StatusCode, unauth.Header)
	}

	key := agentKey(t, http.DefaultClient, admin, "stream")
	ok := do(t, http.MethodPost, mcp, map[string]string{"Origin": inspectorOrigin, "Authorization": "Bearer " + key, "Mcp-Method": "tools/list"})
	if ok.StatusCode != http.StatusOK || ok.Header.Values("Access-Control-Allow-Origin")[0] != inspectorOrigin || len(ok.Header.Values("Access-Control-Allow-Origin")) != 1 {
		t.Errorf("allowed request: %d, Allow-Origin %q", ok.StatusCode, ok.Header.Values("Access-Control-Allow-Origin"))
	}

	before := hits.Load()
	for _, origin := range []string{"http://evil.example.com", "null"} {
		evilPre := do(t, http.MethodOptions, mcp, map[string]string{"Origin": origin, "Access-Control-Request-Method": "POST"})
		if evilPre.StatusCode != http.StatusForbidden || evilPre.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("preflight from %s: %d, Allow-Origin %q, want 403 without CORS", origin, evilPre.StatusCode, evilPre.Header.Get("Access-Control-Allow-Origin"))
		}
		evil := do(t, http.MethodPost, mcp, map[string]string{"Origin": origin, "Authorization": "Bearer " + key})
		if evil.StatusCode != http.StatusForbidden || evil.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("request from %s with a valid key: %d, Allow-Origin %q, want 403 without CORS", origin, evil.StatusCode, evil.Header.Get("Access-Control-Allow-Origin"))
		}
	}
	if got := hits.Load(); got != before {
		t.Errorf("the agent received %d request(s) from a foreign origin", got-before)
	}
}

// TestDevModeFavicon: a browser's /favicon.ico is answered 204 by the front
// and is no decision: nothing counted as bad_path (issue 16 item 10).
func TestDevModeFavicon(t *testing.T) {
	up, _ := echoUpstream(t)
	base, admin := devGateway(t, up.URL+"/mcp")
	badPath := func() float64 { return metricSum(t, admin+"/metrics", `reason="bad_path"`) }
	before := badPath()
	for _, p := range []string{routes.Favicon, routes.Favicon + "?v=2"} {
		if r := do(t, http.MethodGet, base+p, nil); r.StatusCode != http.StatusNoContent {
			t.Errorf("GET %s: %d, want 204", p, r.StatusCode)
		}
	}
	if got := badPath(); got != before {
		t.Errorf("bad_path decisions went from %v to %v", before, got)
	}
	if r := do(t, http.MethodGet, base+"/favicon.icox", nil); r.StatusCode != http.StatusNotFound {
		t.Errorf("GET /favicon.icox: %d, want the usual 404", r.StatusCode)
	}
}

// metricSum adds up the samples of the Prometheus text at u whose line
// contains match.
func metricSum(t *testing.T, u, match string) float64 {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, "#") || !strings.Contains(l, match) {
			continue
		}
		f := strings.Fields(l)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", l, err)
		}
		sum += v
	}
	return sum
}

// headerListHas: a comma-separated header list names h (any case).
func headerListHas(list, h string) bool {
	for _, v := range strings.Split(list, ",") {
		if strings.EqualFold(strings.TrimSpace(v), h) {
			return true
		}
	}
	return false
}

// TestNginxConfigWritesNJSModule: `nginx-config --njs-out` installs the njs
// module the nginx template imports, next to the agents include.
func TestNginxConfigWritesNJSModule(t *testing.T) {
	dir := t.TempDir()
	njs, agents := filepath.Join(dir, "mcp-gateway.js"), filepath.Join(dir, "agents.conf")
	if err := runNginxConfig(context.Background(), []string{"--config", registryConfig(t, "memory", ""), "--out", agents, "--njs-out", njs}, io.Discard); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(njs)
	if err != nil || string(got) != nginx.NginxJS || !strings.Contains(string(got), "function clientIdentity") {
		t.Fatalf("njs module: %v %q", err, got)
	}
	if b, err := os.ReadFile(agents); err != nil || !strings.Contains(string(b), "map $mcp_agent $mcp_agent_url") {
		t.Fatalf("agents include: %v", err)
	}
}
