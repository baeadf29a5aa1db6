package nginx

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mcpgateway/mcp-gateway/envoy"
	"github.com/mcpgateway/mcp-gateway/store"
)

func TestNginxSiteRender(t *testing.T) {
	p := NginxParams{Listen: "127.0.0.1:8000", GatewayHTTP: "gateway:8080", AgentsConf: "/etc/nginx/mcp-gateway-agents.conf", NJSModule: "/etc/nginx/njs/mcp-gateway.js"}
	out, err := NginxSite(p)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(out, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") && strings.Contains(l, "${") {
			t.Errorf("placeholder left unfilled: %s", l)
		}
	}
	for _, want := range []string{
		"listen 127.0.0.1:8000;", "server gateway:8080;", "include /etc/nginx/mcp-gateway-agents.conf;", "js_import mcp_gateway from /etc/nginx/njs/mcp-gateway.js;",
		"$request_uri", "$upstream_http_x_mcp_user", // nginx's own variables survive
	} {
		if !strings.Contains(out, want) {
			t.Errorf("rendered site lacks %q", want)
		}
	}
	for _, bad := range []NginxParams{
		{Listen: "8000", GatewayHTTP: "gw:8080; include /etc/passwd", AgentsConf: "/a.conf", NJSModule: "/m.js"},
		{Listen: "8000", GatewayHTTP: "gw:8080", AgentsConf: "", NJSModule: "/m.js"},
		{Listen: "8000 }", GatewayHTTP: "gw:8080", AgentsConf: "/a.conf", NJSModule: "/m.js"},
		{Listen: "8000", GatewayHTTP: "gw 8080", AgentsConf: "/a.conf", NJSModule: "/m.js"},
		{Listen: "8000", GatewayHTTP: "gw:8080", AgentsConf: "/a.conf; include /etc/passwd", NJSModule: "/m.js"},
		{Listen: "8000", GatewayHTTP: "gw:8080", AgentsConf: "/$host.conf", NJSModule: "/m.js"},
		{Listen: "8000", GatewayHTTP: "gw:8080", AgentsConf: "/a.conf", NJSModule: "/x.js; include /etc/passwd"},
	} {
		if _, err := NginxSite(bad); err == nil {
			t.Errorf("NginxSite(%+v) accepted a value that is not plain", bad)
		}
	}
}

func nginxBinary(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/nginx"); err == nil {
		return "/usr/sbin/nginx"
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("nginx is not installed (apt-get install -y nginx)")
	}
	t.Skip("nginx is not installed (apt-get install -y nginx); skipping")
	return ""
}

// writeAgents writes the agents include for agents into dir.
func writeAgents(t *testing.T, dir string, agents ...store.Agent) string {
	t.Helper()
	routes, errs := envoy.AgentRoutes(agents)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	conf, err := NginxAgents(routes, NginxAgentsOptions{})
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "agents.conf")
	if err := os.WriteFile(file, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

func TestNginxConfigSyntax(t *testing.T) {
	bin := nginxBinary(t)
	prefix := t.TempDir()
	// Every shape of registry: none, http and https agents, ids equal but
	// for case, and 10,000 agents (nginx's default map hash fits 2048 ids).
	many := make([]store.Agent, 10000)
	for i := range many {
		many[i] = store.Agent{AgentSpec: store.AgentSpec{ID: fmt.Sprintf("agent-%05d.%s", i, strings.Repeat("x", 100)), Upstream: fmt.Sprintf("http://10.0.%d.%d:3000/mcp", i/250, i%250)}}
	}
	registries := map[string][]store.Agent{
		"empty": nil,
		"mixed": {
			{AgentSpec: store.AgentSpec{ID: "demo", Upstream: "http://127.0.0.1:13000/mcp"}},
			{AgentSpec: store.AgentSpec{ID: "secure", Upstream: "https://localhost:13443/tenant/mcp"}},
			{AgentSpec: store.AgentSpec{ID: "v6", Upstream: "http://[::1]:13001/"}},
			{AgentSpec: store.AgentSpec{ID: "Case", Upstream: "http://127.0.0.1:13000/upper"}},
			{AgentSpec: store.AgentSpec{ID: "case", Upstream: "http://127.0.0.1:13000/lower"}},
			{AgentSpec: store.AgentSpec{ID: "no.upstream"}},
		},
		"10000 agents": many,
	}
	for name, agents := range registries {
		t.Run(name, func(t *testing.T) {
			conf, err := NginxStandalone(NginxParams{Listen: "127.0.0.1:18000", GatewayHTTP: "127.0.0.1:18080",
				AgentsConf: writeAgents(t, prefix, agents...)}, prefix)
			if err != nil {
				t.Fatal(err)
			}
			nginxTest(t, bin, prefix, conf)
		})
	}
}

func nginxTest(t *testing.T, bin, prefix, conf string) {
	t.Helper()
	file := filepath.Join(prefix, "nginx.conf")
	if err := os.WriteFile(file, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "-t", "-p", prefix, "-c", file, "-e", "stderr").CombinedOutput()
	if err != nil {
		t.Fatalf("nginx -t: %v\n%s\n--- config\n%s", err, out, conf)
	}
	if !bytes.Contains(out, []byte("test is successful")) {
		t.Fatalf("nginx -t did not report success:\n%s", out)
	}
}

// checkCall is what the fake gateway's /authz/check saw.
type checkCall struct {
	URI, Method, Authorization, ContentLength string
	BodyLen                                   int
}

// fakeGateway stands in for the gateway's HTTP listener: /authz/check decides
// by the bearer token, every other path answers "gateway <path>".
type fakeGateway struct {
	mu     sync.Mutex
	checks []checkCall
	public []string
}

// testUpstreamCredential is what the fake gateway's check answers for the
// agent "credentialed" (an upstream_auth Authorization).
const testUpstreamCredential = "Bearer upstream-secret"

const testChallenge = `Bearer realm="MCP", resource_metadata="http://127.0.0.1:8000/.well-known/oauth-protected-resource/demo/mcp"`

func (g *fakeGateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/authz/check" {
		g.mu.Lock()
		g.public = append(g.public, r.URL.RequestURI())
		g.mu.Unlock()
		io.WriteString(w, "gateway "+r.URL.RequestURI())
		return
	}
	body, _ := io.ReadAll(r.Body)
	g.mu.Lock()
	g.checks = append(g.checks, checkCall{r.Header.Get("X-Original-URI"), r.Header.Get("X-Original-Method"),
		r.Header.Get("Authorization"), r.Header.Get("Content-Length"), len(body)})
	g.mu.Unlock()
	switch r.Header.Get("Authorization") {
	case "Bearer good":
		agent := strings.Split(strings.TrimPrefix(r.Header.Get("X-Original-URI"), "/"), "/")[0]
		w.Header().Set("X-MCP-User", "alice")
		w.Header().Set("X-MCP-Agent", agent)
		w.Header().Set("X-MCP-Client-Id", "client-1")
		w.Header().Set("X-MCP-Scope", "mcp")
		w.Header().Set("X-MCP-Credential", "oauth")
		w.Header().Set("X-MCP-Identity", "signed.assertion.of-alice")
		if agent == "credentialed" { // its upstream_auth: the gateway's secret, not the client's token
			w.Header().Set("Authorization", testUpstreamCredential)
		}
		w.WriteHeader(http.StatusOK)
	case "Bearer forbidden":
		w.Header().Set("WWW-Authenticate", `Bearer error="insufficient_scope", scope="mcp"`)
		w.WriteHeader(http.StatusForbidden)
	case "Bearer boom":
		w.WriteHeader(http.StatusInternalServerError)
	default:
		w.Header().Set("WWW-Authenticate", testChallenge)
		w.WriteHeader(http.StatusUnauthorized)
	}
}

func (g *fakeGateway) counts() (checks, public int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.checks), len(g.public)
}

func (g *fakeGateway) lastCheck() checkCall {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.checks[len(g.checks)-1]
}

// seenByAgent is what the fake agent reports back about a request.
type seenByAgent struct {
	Host, URI, Method string
	Authorization     []string
	Headers           map[string][]string
	ContentLength     int64    // -1: the body came chunked
	TransferEncoding  []string // what Go's server took out of Headers
	Body              string
}

// fakeAgent answers with what it received, except a GET without ?seen,
// which gets an SSE stream whose second event is written only after release
// is closed. A request with ?started is announced on started before its body
// is read.
func fakeAgent(release <-chan struct{}, started chan<- struct{}) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Has("started") {
			started <- struct{}{}
		}
		if r.Method == http.MethodGet && !r.URL.Query().Has("seen") {
			w.Header().Set("Content-Type", "text/event-stream")
			io.WriteString(w, "data: one\n\n")
			w.(http.Flusher).Flush()
			select {
			case <-release:
			case <-r.Context().Done():
				return
			}
			io.WriteString(w, "data: two\n\n")
			return
		}
		body, _ := io.ReadAll(r.Body)
		json.NewEncoder(w).Encode(seenByAgent{Host: r.Host, URI: r.URL.RequestURI(), Method: r.Method,
			Authorization: r.Header.Values("Authorization"), Headers: r.Header,
			ContentLength: r.ContentLength, TransferEncoding: r.TransferEncoding, Body: string(body)})
	})
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startNginx runs nginx in the foreground on 127.0.0.1, routing agents
// (unless p names its own agents include), and stops it when the test ends.
func startNginx(t *testing.T, p NginxParams, agents ...store.Agent) {
	t.Helper()
	bin := nginxBinary(t)
	prefix := t.TempDir()
	if p.AgentsConf == "" {
		p.AgentsConf = writeAgents(t, prefix, agents...)
	}
	conf, err := NginxStandalone(p, prefix)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(prefix, "nginx.conf")
	if err := os.WriteFile(file, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(bin, "-p", prefix, "-c", file, "-e", "stderr")
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("nginx stderr:\n%s", stderr.String())
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.Dial("tcp", p.Listen)
		if err == nil {
			c.Close()
			return
		}
		select {
		case err := <-exited:
			t.Fatalf("nginx exited: %v\n%s", err, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx did not start listening on %s:\n%s", p.Listen, stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestNginxBehaviour runs the shipped template in a real nginx between a fake
// gateway and a fake agent, and checks what each side sees.
func TestNginxBehaviour(t *testing.T) {
	gw := &fakeGateway{}
	gwSrv := httptest.NewServer(gw)
	defer gwSrv.Close()
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	agentSrv := httptest.NewServer(fakeAgent(release, started))
	defer agentSrv.Close()
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()

	listen := freePort(t)
	startNginx(t, NginxParams{Listen: listen, GatewayHTTP: strings.TrimPrefix(gwSrv.URL, "http://")},
		store.Agent{AgentSpec: store.AgentSpec{ID: "demo", Upstream: agentSrv.URL + "/mcp"}},
		store.Agent{AgentSpec: store.AgentSpec{ID: "Case.x", Upstream: agentSrv.URL + "/upper"}},
		store.Agent{AgentSpec: store.AgentSpec{ID: "case.x", Upstream: agentSrv.URL + "/lower"}},
		store.Agent{AgentSpec: store.AgentSpec{ID: "caseless", Upstream: agentSrv.URL + "/caseless"}},
		store.Agent{AgentSpec: store.AgentSpec{ID: "credentialed", Upstream: agentSrv.URL + "/credentialed"}},
		store.Agent{AgentSpec: store.AgentSpec{ID: "no-upstream"}},
	)
	base := "http://" + listen
	client := &http.Client{Timeout: 20 * time.Second}
	do := func(method, path, token string, hdr map[string]string) *http.Response {
		t.Helper()
		req, err := http.NewRequest(method, base+path, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"ping"}`))
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		for k, v := range hdr {
			req.Header[k] = []string{v} // as written: keeps x_mcp_user's underscore
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}

	t.Run("no credential: 401 with the gateway's challenge", func(t *testing.T) {
		resp := do("POST", "/demo/mcp", "", nil)
		if resp.StatusCode != 401 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		if got := resp.Header.Values("WWW-Authenticate"); len(got) != 1 || got[0] != testChallenge {
			t.Fatalf("WWW-Authenticate = %q, want exactly [%q]", got, testChallenge)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type %q", ct)
		}
		var body map[string]string
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body["error"] == "" {
			t.Errorf("body is not a JSON error: %v %v", body, err)
		}
	})

	t.Run("forbidden: 403 keeps the insufficient_scope challenge", func(t *testing.T) {
		resp := do("POST", "/demo/mcp", "forbidden", nil)
		if resp.StatusCode != 403 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		if got := resp.Header.Values("WWW-Authenticate"); len(got) != 1 || !strings.Contains(got[0], `error="insufficient_scope"`) {
			t.Fatalf("WWW-Authenticate = %q", got)
		}
	})

	t.Run("gateway failing: 503, not allowed", func(t *testing.T) {
		resp := do("POST", "/demo/mcp", "boom", nil)
		if resp.StatusCode != 503 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	})

	t.Run("allowed: identity replaces spoofed headers, token stripped", func(t *testing.T) {
		resp := do("POST", "/demo/mcp?x=1", "good", map[string]string{
			"X-Mcp-User": "mallory", "X-Mcp-Credential": "agent_key", "x_mcp_user": "mallory", "X-Mcp-Identity": "forged",
		})
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		var seen seenByAgent
		if err := json.NewDecoder(resp.Body).Decode(&seen); err != nil {
			t.Fatal(err)
		}
		want := map[string]string{"X-Mcp-User": "alice", "X-Mcp-Agent": "demo", "X-Mcp-Client-Id": "client-1", "X-Mcp-Scope": "mcp", "X-Mcp-Credential": "oauth", "X-Mcp-Identity": "signed.assertion.of-alice"}
		for k, v := range want {
			if got := seen.Headers[k]; len(got) != 1 || got[0] != v {
				t.Errorf("agent got %s = %q, want [%q]", k, got, v)
			}
		}
		for k := range seen.Headers {
			if strings.Contains(strings.ToLower(k), "_mcp_") {
				t.Errorf("agent got underscore header %s", k)
			}
		}
		if len(seen.Authorization) != 0 {
			t.Errorf("agent got Authorization %q", seen.Authorization)
		}
		if seen.URI != "/mcp?x=1" {
			t.Errorf("agent got URI %q, want /mcp?x=1", seen.URI)
		}
		if want := strings.TrimPrefix(agentSrv.URL, "http://"); seen.Host != want {
			t.Errorf("agent got Host %q, want %q (its own address)", seen.Host, want)
		}
		c := gw.lastCheck()
		if c.URI != "/demo/mcp?x=1" || c.Method != "POST" || c.Authorization != "Bearer good" || c.BodyLen != 0 || (c.ContentLength != "" && c.ContentLength != "0") {
			t.Errorf("check request = %+v", c)
		}
	})

	// The check's Authorization (an agent's upstream_auth) reaches that
	// agent in place of the client's token, by either location (the listed
	// one when the client sent an x-mcp-* header); other agents get none.
	t.Run("upstream credential from the check replaces the client's token", func(t *testing.T) {
		for _, spoof := range []map[string]string{nil, {"X-Mcp-Role": "mallory"}} {
			for agent, want := range map[string][]string{"credentialed": {testUpstreamCredential}, "demo": nil} {
				resp := do("POST", "/"+agent+"/mcp?seen", "good", spoof)
				if resp.StatusCode != 200 {
					t.Fatalf("%s: status %d", agent, resp.StatusCode)
				}
				var seen seenByAgent
				if err := json.NewDecoder(resp.Body).Decode(&seen); err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(seen.Authorization, want) {
					t.Errorf("%s (client headers %v): agent got Authorization %q, want %q", agent, spoof, seen.Authorization, want)
				}
			}
		}
	})

	// nginx cannot remove headers by pattern, so the template passes the
	// agent a fixed list: every x-mcp-* name the gateway does not set (and
	// anything else unlisted) stays behind, while what Streamable HTTP needs
	// gets through for POST, GET (SSE resume) and DELETE.
	t.Run("only listed headers reach the agent", func(t *testing.T) {
		const body = `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"whoami"}}`
		mcpHeaders := map[string]string{
			"Content-Type":         "application/json",
			"Accept":               "application/json, text/event-stream",
			"Mcp-Session-Id":       "sess-123",
			"Mcp-Protocol-Version": "2026-07-28",
			"Mcp-Method":           "tools/call",
			"Mcp-Name":             "whoami",
			"Last-Event-ID":        "ev-41",
			"Traceparent":          "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		}
		spoof := map[string]string{
			"X-Mcp-Role": "mallory", "x-mcp-tenant": "mallory", "X-MCP-USER-EXTRA": "mallory",
			"x_mcp_role": "mallory", "X_MCP_USER": "mallory",
			"Cookie": "mcpgw_session=secret", "X-Other": "unlisted",
		}
		send := func(method, query string, chunked bool) seenByAgent {
			t.Helper()
			var rd io.Reader = strings.NewReader(body)
			if method != "POST" {
				rd = nil
			} else if chunked {
				// Half the body, then the rest once the agent has the
				// request: nginx must stream a body of unknown length.
				pr, pw := io.Pipe()
				go func() {
					io.WriteString(pw, body[:len(body)/2])
					select {
					case <-started:
						io.WriteString(pw, body[len(body)/2:])
						pw.Close()
					case <-time.After(15 * time.Second):
						pw.CloseWithError(errors.New("the agent never got the request"))
					}
				}()
				rd = pr
				query = "?started"
			}
			req, err := http.NewRequest(method, base+"/demo/mcp"+query, rd)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer good")
			for k, v := range mcpHeaders {
				req.Header.Set(k, v)
			}
			for k, v := range spoof {
				req.Header[k] = []string{v} // as written: keeps the underscores
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != 200 {
				b, _ := io.ReadAll(resp.Body)
				t.Fatalf("%s: status %d %s", method, resp.StatusCode, b)
			}
			var seen seenByAgent
			if err := json.NewDecoder(resp.Body).Decode(&seen); err != nil {
				t.Fatal(err)
			}
			if seen.Method != method {
				t.Fatalf("agent got method %s, want %s", seen.Method, method)
			}
			return seen
		}
		identity := map[string]bool{"x-mcp-user": true, "x-mcp-agent": true, "x-mcp-client-id": true, "x-mcp-scope": true, "x-mcp-credential": true, "x-mcp-identity": true}
		for _, c := range []struct {
			method, query string
			chunked       bool
		}{{"POST", "", false}, {"POST", "", true}, {"GET", "?seen", false}, {"DELETE", "", false}} {
			seen := send(c.method, c.query, c.chunked)
			what := c.method
			if c.chunked {
				what += " (chunked)"
			}
			for k, v := range mcpHeaders {
				if got := seen.Headers[http.CanonicalHeaderKey(k)]; len(got) != 1 || got[0] != v {
					t.Errorf("%s: agent got %s = %q, want [%q]", what, k, got, v)
				}
			}
			for k, v := range seen.Headers {
				name := strings.ToLower(k)
				if strings.HasPrefix(name, "x-mcp-") && !identity[name] || strings.Contains(name, "_") {
					t.Errorf("%s: agent got %s = %q", what, k, v)
				}
				if name == "cookie" || name == "x-other" || name == "authorization" {
					t.Errorf("%s: agent got unlisted %s = %q", what, k, v)
				}
			}
			if got := seen.Headers["X-Mcp-User"]; len(got) != 1 || got[0] != "alice" {
				t.Errorf("%s: agent got X-Mcp-User %q, want the gateway's [alice]", what, got)
			}
			if want := strings.TrimPrefix(agentSrv.URL, "http://"); seen.Host != want {
				t.Errorf("%s: agent got Host %q, want %q", what, seen.Host, want)
			}
			switch {
			case c.method != "POST":
				if seen.Body != "" || seen.ContentLength > 0 {
					t.Errorf("%s: agent got a body: length %d %q", what, seen.ContentLength, seen.Body)
				}
			case seen.Body != body:
				t.Errorf("%s: agent got body %q, want %q", what, seen.Body, body)
			case c.chunked && (seen.ContentLength != -1 || len(seen.TransferEncoding) != 1 || seen.TransferEncoding[0] != "chunked"):
				t.Errorf("%s: agent got length %d, transfer-encoding %q, want a chunked body", what, seen.ContentLength, seen.TransferEncoding)
			case !c.chunked && seen.ContentLength != int64(len(body)):
				t.Errorf("%s: agent got Content-Length %d, want %d", what, seen.ContentLength, len(body))
			}
		}
	})

	t.Run("SSE is streamed, not buffered", func(t *testing.T) {
		req, _ := http.NewRequest("GET", base+"/demo/mcp", nil)
		req.Header.Set("Authorization", "Bearer good")
		req.Header.Set("Accept", "text/event-stream")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		r := bufio.NewReader(resp.Body)
		// The agent holds the second event until the first has arrived here,
		// so buffering in nginx would leave this read waiting (until the
		// client timeout fails it).
		line, err := r.ReadString('\n')
		if err != nil || line != "data: one\n" {
			t.Fatalf("first event %q, %v", line, err)
		}
		close(release)
		rest, _ := io.ReadAll(r)
		if !strings.Contains(string(rest), "data: two") {
			t.Fatalf("second event missing: %q", rest)
		}
	})

	// nginx's map ignores case; the route must not: /Demo/mcp is not demo.
	t.Run("each agent id reaches its own upstream, byte for byte", func(t *testing.T) {
		for path, want := range map[string]string{
			"/Case.x/mcp": "/upper", "/case.x/mcp/": "/lower", "/caseless/mcp": "/caseless", "/demo/mcp?seen": "/mcp?seen",
		} {
			resp := do("POST", path, "good", nil)
			var seen seenByAgent
			if err := json.NewDecoder(resp.Body).Decode(&seen); err != nil || resp.StatusCode != 200 || seen.URI != want {
				t.Errorf("%s: status %d, agent got %q (%v), want %q", path, resp.StatusCode, seen.URI, err, want)
			}
			if c := gw.lastCheck(); c.URI != path {
				t.Errorf("%s: the check saw %q", path, c.URI)
			}
		}
		checks, _ := gw.counts()
		for _, p := range []string{"/DEMO/mcp", "/Demo/mcp", "/CASE.X/mcp", "/Caseless/mcp", "/no-upstream/mcp", "/nosuch/mcp", "/case_x/mcp"} {
			resp := do("POST", p, "good", nil)
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 404 || !strings.Contains(string(b), "no route to this agent") {
				t.Errorf("%s: %d %s, want 404 no route", p, resp.StatusCode, b)
			}
		}
		if after, _ := gw.counts(); after != checks {
			t.Errorf("unrouted agents caused %d checks", after-checks)
		}
	})

	t.Run("public paths skip the check", func(t *testing.T) {
		checks, _ := gw.counts()
		for _, p := range []string{"/oauth/token", "/.well-known/oauth-protected-resource/demo/mcp", "/.well-known/oauth-authorization-server",
			"/login", "/login/callback?code=x", "/consent", "/account", "/oauth/mcp",
			"/.well-known/oauth-protected-resource/gw/demo/mcp", "/.well-known/oauth-authorization-server/gw"} {
			resp := do("POST", p, "", nil)
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 200 || string(b) != "gateway "+p {
				t.Errorf("%s: %d %q, want the gateway's answer", p, resp.StatusCode, b)
			}
		}
		if after, _ := gw.counts(); after != checks {
			t.Errorf("public paths caused %d checks", after-checks)
		}
	})

	t.Run("everything else is 404 and reaches no one", func(t *testing.T) {
		checks, public := gw.counts()
		for _, p := range []string{"/", "/loginx", "/authz/check", "/_mcp_auth", "/demo/mcp/extra", "/a/b/mcp", "/metrics"} {
			if resp := do("GET", p, "good", nil); resp.StatusCode != 404 {
				t.Errorf("%s: status %d, want 404", p, resp.StatusCode)
			}
		}
		if c, p := gw.counts(); c != checks || p != public {
			t.Errorf("404 paths reached the gateway (%d checks, %d requests)", c-checks, p-public)
		}
	})

	t.Run("Mcp-Param-* and the client's headers reach the agent, its credentials do not", func(t *testing.T) {
		// SEP-2243: intermediaries forward Mcp-Param-<Name> (issue 16 item 7).
		// Without a client x-mcp-* header nginx forwards the client's set.
		hdr := map[string]string{
			"Content-Type": "application/json", "Mcp-Method": "tools/call", "Mcp-Name": "lookup",
			"Mcp-Param-Region": "eu-west-1", "mcp-param-customer-id": "42", "X-Other": "kept",
			"Cookie": "mcpgw_session=secret", "Proxy-Authorization": "Basic eDp5", "Forwarded": "for=6.6.6.6",
			"X-Real-IP": "6.6.6.6", "X-Forwarded-Host": "evil.example",
		}
		for _, method := range []string{"POST", "GET"} {
			req, _ := http.NewRequest(method, base+"/demo/mcp?seen", strings.NewReader(`{}`))
			req.Header.Set("Authorization", "Bearer good")
			for k, v := range hdr {
				req.Header.Set(k, v)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var seen seenByAgent
			err = json.NewDecoder(resp.Body).Decode(&seen)
			resp.Body.Close()
			if resp.StatusCode != 200 || err != nil {
				t.Fatalf("%s: status %d, %v", method, resp.StatusCode, err)
			}
			for _, k := range []string{"Mcp-Method", "Mcp-Name", "Mcp-Param-Region", "Mcp-Param-Customer-Id", "X-Other"} {
				if got := seen.Headers[k]; len(got) != 1 || got[0] != hdr[k] && got[0] != hdr[strings.ToLower(k)] {
					t.Errorf("%s: agent got %s = %q", method, k, got)
				}
			}
			for _, k := range []string{"Authorization", "Cookie", "Proxy-Authorization", "Forwarded", "X-Real-Ip", "X-Forwarded-Host"} {
				if got, ok := seen.Headers[k]; ok {
					t.Errorf("%s: agent got %s = %q", method, k, got)
				}
			}
			if got := seen.Headers["X-Mcp-User"]; len(got) != 1 || got[0] != "alice" {
				t.Errorf("%s: agent got X-Mcp-User %q, want the gateway's [alice]", method, got)
			}
		}
	})

	t.Run("favicon: 204 without a check", func(t *testing.T) {
		checks, public := gw.counts()
		if resp := do("GET", "/favicon.ico", "", nil); resp.StatusCode != 204 {
			t.Errorf("/favicon.ico: status %d, want 204", resp.StatusCode)
		}
		if c, p := gw.counts(); c != checks || p != public {
			t.Error("/favicon.ico reached the gateway")
		}
	})

	t.Run("CORS preflight answered without a check", func(t *testing.T) {
		checks, _ := gw.counts()
		resp := do("OPTIONS", "/demo/mcp", "", map[string]string{"Origin": "http://localhost:6274", "Access-Control-Request-Method": "POST"})
		if resp.StatusCode != 204 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		allow := strings.Split(resp.Header.Get("Access-Control-Allow-Headers"), ", ")
		for _, h := range browserClientHeaders {
			if !slices.Contains(allow, h) {
				t.Errorf("preflight Allow-Headers %q lacks %s", allow, h)
			}
		}
		if resp.Header.Get("Access-Control-Allow-Origin") != "*" {
			t.Errorf("preflight headers %v", resp.Header)
		}
		if after, _ := gw.counts(); after != checks {
			t.Error("the preflight was sent to the check")
		}
	})
}
