package proxy

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpgateway/mcp-gateway/authz"
	"github.com/mcpgateway/mcp-gateway/internal/demoagent"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

const goodToken = "Bearer good-token"

// fakeDecider allows "/<agent>/mcp" (any query) for the agents it knows when
// the good token is presented, and denies everything else with a challenge.
type fakeDecider struct {
	agents map[string]authz.Identity

	mu    sync.Mutex
	paths []string
	auth  []string
	hosts []string
}

func (f *fakeDecider) Decide(_ context.Context, r *authz.Request) *authz.Decision {
	f.mu.Lock()
	f.paths = append(f.paths, r.Path)
	f.auth = append(f.auth, r.Header("authorization"))
	f.hosts = append(f.hosts, r.Header("host"))
	f.mu.Unlock()

	path, _, _ := strings.Cut(r.Path, "?")
	agent, ok := strings.CutSuffix(strings.TrimPrefix(path, "/"), "/mcp")
	id, known := f.agents[agent]
	if !ok || !known || strings.Contains(agent, "/") || r.Header("authorization") != goodToken {
		return &authz.Decision{
			Status: http.StatusUnauthorized,
			Reason: "missing_token",
			Headers: []authz.HeaderValue{
				{Key: "www-authenticate", Value: `Bearer realm="MCP", resource_metadata="http://127.0.0.1:8000/.well-known/oauth-protected-resource/demo/mcp"`},
				{Key: "content-type", Value: "application/json; charset=utf-8"},
			},
			Body: []byte(`{"error":"invalid_token","error_description":"no credential"}`),
		}
	}
	return &authz.Decision{
		Allow:    true,
		Status:   http.StatusOK,
		Reason:   "ok",
		Identity: id,
		UpstreamHeaders: []authz.HeaderValue{
			{Key: "x-mcp-user", Value: id.User},
			{Key: "x-mcp-agent", Value: id.Agent},
			{Key: "x-mcp-client-id", Value: id.ClientID},
			{Key: "x-mcp-scope", Value: id.Scope},
			{Key: "x-mcp-credential", Value: id.Credential},
		},
		RemoveHeaders: []string{"authorization", "cookie"},
	}
}

func (f *fakeDecider) seen() (paths, auth, hosts []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.paths...), append([]string(nil), f.auth...), append([]string(nil), f.hosts...)
}

func ident(agent string) authz.Identity {
	return authz.Identity{User: "alice", Agent: agent, ClientID: "client-1", Scope: "mcp", Credential: authz.CredOAuth}
}

// env is a proxy in front of named upstreams.
type env struct {
	dec       *fakeDecider
	upstreams map[string]string
	proxy     *httptest.Server
}

func newEnv(t *testing.T, upstreams map[string]string, mod func(*Options)) *env {
	t.Helper()
	e := &env{dec: &fakeDecider{agents: map[string]authz.Identity{}}, upstreams: upstreams}
	for name := range upstreams {
		e.dec.agents[name] = ident(name)
	}
	e.dec.agents["nowhere"] = ident("nowhere") // allowed, but Upstream fails
	opts := Options{
		Decider: e.dec,
		Upstream: func(_ context.Context, agent string) (*url.URL, error) {
			raw, ok := e.upstreams[agent]
			if !ok {
				return nil, fmt.Errorf("agent %q has no upstream", agent)
			}
			return url.Parse(raw)
		},
	}
	if mod != nil {
		mod(&opts)
	}
	e.proxy = httptest.NewServer(New(opts))
	t.Cleanup(e.proxy.Close)
	return e
}

// authTransport adds the good token plus spoofing attempts to every request.
type authTransport struct{ base http.RoundTripper }

func (a authTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", goodToken)
	r.Header.Set("X-Mcp-User", "mallory")
	r.Header.Set("X-Mcp-Admin", "true")
	r.Header["X_mcp_user"] = []string{"mallory2"} // underscore spelling, folded by CGI-style servers
	return a.base.RoundTrip(r)
}

func TestSDKClientThroughProxy(t *testing.T) {
	agent := httptest.NewServer(demoagent.Handler(nil))
	t.Cleanup(agent.Close)
	e := newEnv(t, map[string]string{"demo": agent.URL + "/mcp"}, nil)

	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	c := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, nil)
	cs, err := c.Connect(ctx, &mcp.StreamableClientTransport{
		Endpoint:   e.proxy.URL + "/demo/mcp",
		HTTPClient: &http.Client{Transport: authTransport{http.DefaultTransport}},
	}, nil)
	if err != nil {
		t.Fatalf("connect through proxy: %v", err)
	}
	t.Cleanup(func() { _ = cs.Close() })
	// The demo agent is stateless: TestSSEStreaming checks that a session
	// id comes back through the proxy.

	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "whoami"})
	if err != nil {
		t.Fatalf("whoami: %v", err)
	}
	raw, _ := json.Marshal(res.StructuredContent)
	var w demoagent.WhoAmI
	if err := json.Unmarshal(raw, &w); err != nil {
		t.Fatalf("whoami output %s: %v", raw, err)
	}
	want := ident("demo")
	if w.User != want.User || w.Agent != want.Agent || w.ClientID != want.ClientID || w.Scope != want.Scope || w.Credential != want.Credential {
		t.Fatalf("whoami = %+v, want %+v", w, want)
	}
	if w.AuthorizationPresent {
		t.Fatal("Authorization reached the agent")
	}
	if len(w.MCPHeaders) != 5 {
		t.Fatalf("agent saw x-mcp-* headers %v; spoofed ones survived", w.MCPHeaders)
	}

	res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "through the proxy"}})
	if err != nil || res.IsError {
		t.Fatalf("echo: %v %+v", err, res)
	}
	if tc, ok := res.Content[0].(*mcp.TextContent); !ok || tc.Text != "through the proxy" {
		t.Fatalf("echo content %#v", res.Content[0])
	}

	// The decision saw the client's credential and the request target.
	paths, auth, _ := e.dec.seen()
	for i, p := range paths {
		if p != "/demo/mcp" || auth[i] != goodToken {
			t.Fatalf("decision %d saw path %q auth %q", i, p, auth[i])
		}
	}
}

// recorder is an upstream that records the last request it got.
type recorder struct {
	mu   sync.Mutex
	reqs []*http.Request
}

func (rc *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	rc.mu.Lock()
	rc.reqs = append(rc.reqs, r)
	rc.mu.Unlock()
	w.Header().Set("Mcp-Session-Id", "sess-123")
	w.Header().Set("Content-Type", "application/json")
	_, _ = fmt.Fprintf(w, `{"got":%q}`, body)
}

func (rc *recorder) last(t *testing.T) *http.Request {
	t.Helper()
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if len(rc.reqs) == 0 {
		t.Fatal("upstream got no request")
	}
	return rc.reqs[len(rc.reqs)-1]
}

func (rc *recorder) count() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.reqs)
}

// rawRequest sends bytes as-is so the request target is not normalised by a client.
func rawRequest(t *testing.T, addr, req string) *http.Response {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func TestRewrite(t *testing.T) {
	rec := &recorder{}
	up := httptest.NewServer(rec)
	t.Cleanup(up.Close)
	e := newEnv(t, map[string]string{"rec": up.URL + "/base/mcp?k=v"}, nil)
	addr := e.proxy.Listener.Addr().String()

	body := `{"jsonrpc":"2.0"}`
	resp := rawRequest(t, addr, "POST /rec/mcp?x=1&y=%2F HTTP/1.1\r\n"+
		"Host: evil.example\r\n"+
		"Authorization: "+goodToken+"\r\n"+
		"X-Mcp-User: mallory\r\n"+
		"x-mcp-credential: agent_key\r\n"+
		"X_Mcp_Scope: admin\r\n"+
		"X-Forwarded-For: 6.6.6.6\r\n"+
		"X-Forwarded-Host: spoofed.example\r\n"+
		"X-Forwarded-Prefix: /admin\r\n"+
		"Forwarded: for=6.6.6.6\r\n"+
		"X-Real-IP: 6.6.6.6\r\n"+
		"Cookie: session=secret\r\n"+
		"Connection: keep-alive, X-Hop\r\n"+
		"X-Hop: drop-me\r\n"+
		"Mcp-Protocol-Version: 2025-11-25\r\n"+
		"Content-Type: application/json\r\n"+
		fmt.Sprintf("Content-Length: %d\r\n\r\n%s", len(body), body))
	got, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, got)
	}
	if string(got) != fmt.Sprintf(`{"got":%q}`, body) {
		t.Fatalf("body %s", got)
	}
	if resp.Header.Get("Mcp-Session-Id") != "sess-123" {
		t.Errorf("Mcp-Session-Id = %q", resp.Header.Get("Mcp-Session-Id"))
	}

	r := rec.last(t)
	upURL, _ := url.Parse(up.URL)
	if r.Host != upURL.Host {
		t.Errorf("upstream Host = %q, want %q", r.Host, upURL.Host)
	}
	if r.URL.Path != "/base/mcp" || r.URL.RawQuery != "k=v&x=1&y=%2F" {
		t.Errorf("upstream target %q", r.RequestURI)
	}
	wantHdr := map[string]string{
		"X-Mcp-User":           "alice",
		"X-Mcp-Agent":          "rec",
		"X-Mcp-Client-Id":      "client-1",
		"X-Mcp-Scope":          "mcp",
		"X-Mcp-Credential":     "oauth",
		"X-Forwarded-For":      "127.0.0.1",
		"X-Forwarded-Host":     "evil.example",
		"X-Forwarded-Proto":    "http",
		"Mcp-Protocol-Version": "2025-11-25",
		"Content-Type":         "application/json",
	}
	for k, v := range wantHdr {
		if vs := r.Header.Values(k); len(vs) != 1 || vs[0] != v {
			t.Errorf("upstream %s = %q, want %q", k, vs, v)
		}
	}
	for _, k := range []string{"Authorization", "X_mcp_scope", "X-Forwarded-Prefix", "Forwarded", "X-Real-Ip", "Cookie", "X-Hop"} {
		if _, ok := r.Header[k]; ok {
			t.Errorf("upstream got %s: %q", k, r.Header[k])
		}
	}

	paths, auth, hosts := e.dec.seen()
	if paths[0] != "/rec/mcp?x=1&y=%2F" || auth[0] != goodToken || hosts[0] != "evil.example" {
		t.Errorf("decision input path %q auth %q host %q", paths[0], auth[0], hosts[0])
	}
}

func TestDenyAndPathTricks(t *testing.T) {
	rec := &recorder{}
	up := httptest.NewServer(rec)
	t.Cleanup(up.Close)
	e := newEnv(t, map[string]string{"demo": up.URL + "/mcp"}, nil)
	addr := e.proxy.Listener.Addr().String()

	tricks := []string{
		"/demo%2Fmcp",
		"/x/../demo/mcp",
		"/demo/./mcp",
		"//demo/mcp",
		"/demo/mcp/../../admin",
		"/%64emo/mcp",
	}
	for _, target := range tricks {
		resp := rawRequest(t, addr, "GET "+target+" HTTP/1.1\r\nHost: x\r\nAuthorization: "+goodToken+"\r\n\r\n")
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s: status %d", target, resp.StatusCode)
		}
		if string(body) != `{"error":"invalid_token","error_description":"no credential"}` {
			t.Errorf("%s: body %s", target, body)
		}
		paths, _, _ := e.dec.seen()
		if last := paths[len(paths)-1]; last != target {
			t.Errorf("decision saw %q, client sent %q", last, target)
		}
	}

	// No credential: the decision's status, headers and body, verbatim.
	resp, err := http.Post(e.proxy.URL+"/demo/mcp", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized ||
		resp.Header.Get("Www-Authenticate") != `Bearer realm="MCP", resource_metadata="http://127.0.0.1:8000/.well-known/oauth-protected-resource/demo/mcp"` ||
		resp.Header.Get("Content-Type") != "application/json; charset=utf-8" ||
		string(body) != `{"error":"invalid_token","error_description":"no credential"}` {
		t.Fatalf("deny: %d %v %s", resp.StatusCode, resp.Header, body)
	}
	if n := rec.count(); n != 0 {
		t.Fatalf("upstream reached %d times on denied requests", n)
	}
}

// staticDecider always returns d.
type staticDecider struct{ d *authz.Decision }

func (s staticDecider) Decide(context.Context, *authz.Request) *authz.Decision { return s.d }

func TestOddDecisions(t *testing.T) {
	noUpstream := func(context.Context, string) (*url.URL, error) {
		return nil, errors.New("must not be called")
	}
	cases := []struct {
		name   string
		d      *authz.Decision
		status int
	}{
		{"nil decision fails closed", nil, http.StatusServiceUnavailable},
		{"deny without a status is still a deny", &authz.Decision{Allow: false, Status: 200}, http.StatusForbidden},
		{"allow without an agent", &authz.Decision{Allow: true, Status: 200}, http.StatusBadGateway},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := New(Options{Decider: staticDecider{tc.d}, Upstream: noUpstream})
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/demo/mcp", nil))
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d", w.Code, tc.status)
			}
		})
	}
}

func TestUpstreamErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	downURL := "http://" + ln.Addr().String() + "/mcp"
	ln.Close() // nothing listens there now

	rec := &recorder{}
	up := httptest.NewServer(rec)
	t.Cleanup(up.Close)
	e := newEnv(t, map[string]string{
		"down":   downURL,
		"badurl": "ftp://example.com/mcp",
		"rec":    up.URL + "/mcp",
	}, func(o *Options) { o.MaxRequestBytes = 64 })

	check := func(path string, body io.Reader, status int, code string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, e.proxy.URL+path, body)
		req.Header.Set("Authorization", goodToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]string
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			t.Fatalf("%s: body is not JSON: %v", path, err)
		}
		if resp.StatusCode != status || out["error"] != code || resp.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("%s: %d %v", path, resp.StatusCode, out)
		}
	}
	check("/down/mcp", strings.NewReader("{}"), http.StatusBadGateway, "bad_gateway")
	check("/nowhere/mcp", strings.NewReader("{}"), http.StatusBadGateway, "bad_gateway")
	check("/badurl/mcp", strings.NewReader("{}"), http.StatusBadGateway, "bad_gateway")
	check("/rec/mcp", strings.NewReader(strings.Repeat("a", 1000)), http.StatusRequestEntityTooLarge, "request_too_large")
	check("/rec/mcp", io.MultiReader(strings.NewReader(strings.Repeat("a", 1000))), http.StatusRequestEntityTooLarge, "request_too_large") // chunked
	if n := rec.count(); n != 0 {
		t.Fatalf("upstream handled %d oversized requests", n)
	}
}

// streamer is an SSE upstream: it sends one event, then waits for release
// before the second and last.
type streamer struct {
	sent    chan struct{}
	release chan struct{}
}

func (s *streamer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Mcp-Session-Id", "stream-session")
	_, _ = io.WriteString(w, "event: message\ndata: first\n\n")
	http.NewResponseController(w).Flush()
	s.sent <- struct{}{}
	select {
	case <-s.release:
	case <-r.Context().Done():
		return
	}
	_, _ = io.WriteString(w, "event: message\ndata: second\n\n")
}

func readEvent(t *testing.T, br *bufio.Reader) string {
	t.Helper()
	var data string
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("reading event: %v (so far %q)", err, data)
		}
		line = strings.TrimRight(line, "\n")
		if line == "" {
			return data
		}
		if v, ok := strings.CutPrefix(line, "data: "); ok {
			data = v
		}
	}
}

func TestSSEStreaming(t *testing.T) {
	s := &streamer{sent: make(chan struct{}, 1), release: make(chan struct{})}
	up := httptest.NewServer(s)
	t.Cleanup(up.Close)
	rec := &recorder{}
	recUp := httptest.NewServer(rec)
	t.Cleanup(recUp.Close)
	e := newEnv(t, map[string]string{"sse": up.URL + "/mcp", "rec": recUp.URL + "/mcp"}, nil)

	// A safety net so a buffering proxy fails the test instead of hanging it;
	// nothing below depends on timing.
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.proxy.URL+"/sse/mcp", nil)
	req.Header.Set("Authorization", goodToken)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" || resp.Header.Get("Mcp-Session-Id") != "stream-session" {
		t.Fatalf("stream response %d %v", resp.StatusCode, resp.Header)
	}
	<-s.sent
	br := bufio.NewReader(resp.Body)
	// The upstream is blocked on release: this event can only arrive if the
	// proxy flushed it.
	if ev := readEvent(t, br); ev != "first" {
		t.Fatalf("first event %q", ev)
	}

	// Other requests pass while the stream stays open.
	for range 3 {
		r2, _ := http.NewRequestWithContext(ctx, http.MethodPost, e.proxy.URL+"/rec/mcp", strings.NewReader("{}"))
		r2.Header.Set("Authorization", goodToken)
		resp2, err := http.DefaultClient.Do(r2)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp2.Body)
		resp2.Body.Close()
		if resp2.StatusCode != 200 {
			t.Fatalf("request beside the stream: %d", resp2.StatusCode)
		}
	}
	// Hold the idle stream open a while: no proxy timeout may cut it.
	time.Sleep(400 * time.Millisecond)
	close(s.release)
	if ev := readEvent(t, br); ev != "second" {
		t.Fatalf("second event %q", ev)
	}
	if rest, err := io.ReadAll(br); err != nil || len(rest) != 0 {
		t.Fatalf("stream end: %q %v", rest, err)
	}
}

func TestNewRequiresDeciderAndUpstream(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("New without a Decider did not panic")
		}
	}()
	New(Options{})
}
