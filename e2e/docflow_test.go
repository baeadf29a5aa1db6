//go:build e2e

package e2e

// The product's user documentation shows four curl steps: register,
// authorize, exchange the code, and tools/list as the very first MCP
// request. TestDocumentedFlow runs them as written (only the host, the agent
// id and the values each step returns substituted; the browser step posts
// the real login and consent forms) against dev mode and against nginx +
// serve + Redis. TestWalkthroughScript runs the README's walk-through,
// examples/walkthrough.sh, which TestREADMEQuotesWalkthrough keeps equal to
// the README's block; TestDocsStandAlone keeps the Markdown links inside the
// repository.

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// The documentation's commands. <host> is the only part of a URL that is
// substituted; <…> values come from the step before.
const (
	docRegister = `curl -s -X POST "https://<host>/oauth/register" \
  -H "Content-Type: application/json" \
  -d '{"client_name":"My MCP Client","redirect_uris":["http://localhost:3000/callback"]}'`

	docAuthorize = `https://<host>/oauth/authorize?response_type=code&client_id=<client_id>&redirect_uri=http://localhost:3000/callback&code_challenge=<code_challenge>&code_challenge_method=S256&state=<state>`

	docToken = `curl -s -X POST "https://<host>/oauth/token" \
  -H "Content-Type: application/x-www-form-urlencoded" \
  -d "grant_type=authorization_code&code=<code>&redirect_uri=http://localhost:3000/callback&client_id=<client_id>&code_verifier=<code_verifier>"`

	docToolsList = `curl -s -X POST "https://<host>/${AGENT_ID}/mcp" \
  -H "Authorization: Bearer eyJhbGciOiJIUzI1NiIs..." \
  -H "Content-Type: application/json" \
  -d '{"jsonrpc":"2.0","id":1,"method":"tools/list"}'`

	// docToken's placeholder, sent as is it is the documented 401.
	docPlaceholderToken = "eyJhbGciOiJIUzI1NiIs..."
)

func TestDocumentedFlow(t *testing.T) {
	t.Run("dev", func(t *testing.T) {
		d := startDev(t)
		documentedFlow(t, d.URL, "demo", d.User, d.Password)
	})
	t.Run("nginx_serve_redis", func(t *testing.T) {
		gw := startServe(t, nil)
		if gw.StoreURL == "memory" && inCI() {
			t.Fatal("CI=true: this run must be on Redis")
		}
		base := startNginx(t, gw)
		documentedFlow(t, base, "demo", "alice", gw.Users["alice"])
	})
}

// documentedFlow runs the four documented steps against base (http://host:port).
func documentedFlow(t *testing.T, base, agent, user, pass string) {
	t.Helper()
	curlBin := requireTool(t, "curl")
	host := strings.TrimPrefix(base, "http://")
	sub := func(cmd string, kv ...string) string {
		kv = append([]string{"https://<host>", "http://" + host, "${AGENT_ID}", agent}, kv...)
		return strings.NewReplacer(kv...).Replace(cmd)
	}
	run := func(cmd string) []byte {
		t.Helper()
		c := exec.Command("bash", "-c", cmd)
		c.Env = append(childEnv(nil), "PATH="+filepath.Dir(curlBin)+":"+os.Getenv("PATH"))
		var stderr bytes.Buffer
		c.Stderr = &stderr
		out, err := c.Output()
		if err != nil {
			t.Fatalf("%s\n: %v\n%s", cmd, err, stderr.String())
		}
		return out
	}

	// The documented 401: the tools/list call as written, placeholder token
	// and all.
	challenge := documented401(t, base, agent)
	t.Logf("401: WWW-Authenticate: %s", challenge)

	// 1. Register with only client_name and redirect_uris.
	out := run(sub(docRegister))
	var client struct {
		ClientID     string   `json:"client_id"`
		ClientName   string   `json:"client_name"`
		RedirectURIs []string `json:"redirect_uris"`
	}
	if err := json.Unmarshal(out, &client); err != nil {
		t.Fatalf("register: %v: %s", err, out)
	}
	if client.ClientID == "" || client.ClientName != "My MCP Client" || !slices.Equal(client.RedirectURIs, []string{"http://localhost:3000/callback"}) {
		t.Fatalf("register answered %s", out)
	}

	// 2. Authorize with no scope and no resource; the browser's part posts
	//    the login and consent forms.
	verifier, challengeS256 := pkce()
	state := randomString(12)
	authorize := sub(docAuthorize, "<client_id>", client.ClientID, "<code_challenge>", challengeS256, "<state>", state)
	if u, _ := url.Parse(authorize); u.Query().Has("scope") || u.Query().Has("resource") {
		t.Fatalf("the documented authorize URL grew a scope or resource: %s", authorize)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ar, err := browserLogin(ctx, authorize, user, pass)
	if err != nil {
		t.Fatalf("authorize: %v", err)
	}
	if ar.State != state || ar.Iss != base || ar.Redirect.Host != "localhost:3000" || ar.Redirect.Path != "/callback" {
		t.Fatalf("redirect %s: want http://localhost:3000/callback with state %q and iss %q", ar.Redirect, state, base)
	}

	// 3. The token request with exactly the documented form fields.
	out = run(sub(docToken, "<code>", ar.Code, "<client_id>", client.ClientID, "<code_verifier>", verifier))
	var tok struct {
		AccessToken string          `json:"access_token"`
		TokenType   string          `json:"token_type"`
		ExpiresIn   json.RawMessage `json:"expires_in"`
	}
	if err := json.Unmarshal(out, &tok); err != nil {
		t.Fatalf("token: %v: %s", err, out)
	}
	if tok.AccessToken == "" || tok.TokenType != "Bearer" || string(tok.ExpiresIn) != "3600" {
		t.Fatalf("token answered %s: want access_token, token_type Bearer, expires_in 3600", out)
	}

	// 4. tools/list as the first MCP request, exactly as documented.
	out = run(sub(docToolsList, docPlaceholderToken, tok.AccessToken))
	if names := toolNamesOf(t, out); !slices.Equal(names, []string{"admin_echo", "echo", "whoami"}) {
		t.Fatalf("tools/list: tools %v, want the demo's echo and whoami", names)
	}

	// The same request from a client that sends no Accept at all (curl
	// sends */*), and from one that sends the spec's Accept.
	for _, accept := range []string{"", "application/json, text/event-stream"} {
		req, _ := http.NewRequest(http.MethodPost, base+"/"+agent+"/mcp", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`))
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		req.Header.Set("Content-Type", "application/json")
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		resp, err := quickClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("tools/list with Accept %q: %s: %s", accept, resp.Status, b.String())
		}
		if names := toolNamesOf(t, b.Bytes()); !slices.Equal(names, []string{"admin_echo", "echo", "whoami"}) {
			t.Fatalf("tools/list with Accept %q: tools %v", accept, names)
		}
	}
}

// documented401 sends the documented tools/list with its placeholder token
// and checks the documented challenge: Bearer realm="MCP",
// resource_metadata="…", the URL absolute and serving this agent's
// protected-resource metadata.
func documented401(t *testing.T, base, agent string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+"/"+agent+"/mcp", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`))
	req.Header.Set("Authorization", "Bearer "+docPlaceholderToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := quickClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	chs := resp.Header.Values("WWW-Authenticate")
	if resp.StatusCode != http.StatusUnauthorized || len(chs) != 1 {
		t.Fatalf("the documented request with the placeholder token: %s, WWW-Authenticate %q: want 401 and one challenge", resp.Status, chs)
	}
	m := regexp.MustCompile(`^Bearer realm="MCP", resource_metadata="([^"]+)"`).FindStringSubmatch(chs[0])
	if m == nil {
		t.Fatalf("WWW-Authenticate %q: want it to start Bearer realm=\"MCP\", resource_metadata=\"…\"", chs[0])
	}
	prmURL, err := url.Parse(m[1])
	if err != nil || !prmURL.IsAbs() || prmURL.Host == "" {
		t.Fatalf("resource_metadata %q is not an absolute URL", m[1])
	}
	var prm struct {
		Resource             string   `json:"resource"`
		AuthorizationServers []string `json:"authorization_servers"`
	}
	r2, err := quickClient.Get(m[1])
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Body.Close()
	if err := json.NewDecoder(r2.Body).Decode(&prm); err != nil || prm.Resource != base+"/"+agent+"/mcp" || len(prm.AuthorizationServers) != 1 || prm.AuthorizationServers[0] != base {
		t.Fatalf("GET %s: %v %+v: want resource %s/%s/mcp and authorization server %s", m[1], err, prm, base, agent, base)
	}
	return chs[0]
}

// toolNamesOf decodes a JSON-RPC tools/list answer (plain JSON) and
// returns the sorted tool names.
func toolNamesOf(t *testing.T, body []byte) []string {
	t.Helper()
	var res struct {
		Result struct {
			Tools []struct {
				Name string `json:"name"`
			} `json:"tools"`
		} `json:"result"`
		Error *struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &res); err != nil {
		t.Fatalf("tools/list answer is not one JSON object: %v: %q", err, body)
	}
	if res.Error != nil {
		t.Fatalf("tools/list: JSON-RPC error %q", res.Error.Message)
	}
	var names []string
	for _, tl := range res.Result.Tools {
		names = append(names, tl.Name)
	}
	slices.Sort(names)
	return names
}

// TestWalkthroughScript runs examples/walkthrough.sh, the README's curl
// walk-through, against dev mode and against nginx + serve + Redis.
func TestWalkthroughScript(t *testing.T) {
	for _, tool := range []string{"curl", "jq", "openssl"} {
		requireTool(t, tool)
	}
	t.Run("dev", func(t *testing.T) {
		d := startDev(t)
		runWalkthrough(t, map[string]string{"BASE": d.URL, "MCPGW_DEV_PASSWORD": d.Password})
	})
	t.Run("nginx_serve_redis", func(t *testing.T) {
		gw := startServe(t, nil)
		base := startNginx(t, gw)
		runWalkthrough(t, map[string]string{"BASE": base, "MCPGW_USER": "alice", "MCPGW_DEV_PASSWORD": gw.Users["alice"]})
	})
}

func runWalkthrough(t *testing.T, env map[string]string) {
	t.Helper()
	cmd := exec.Command("bash", "../examples/walkthrough.sh")
	cmd.Env = childEnv(env)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.HasSuffix(string(out), "walkthrough: OK\n") {
		t.Fatalf("examples/walkthrough.sh: %v\n%s", err, out)
	}
}

// TestREADMEQuotesWalkthrough: the README's walk-through block is the
// script's walk-through, line for line.
func TestREADMEQuotesWalkthrough(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	script, err := os.ReadFile("../examples/walkthrough.sh")
	if err != nil {
		t.Fatal(err)
	}
	between := func(s, from, to string) string {
		t.Helper()
		i := strings.Index(s, from)
		j := strings.Index(s, to)
		if i < 0 || j < i {
			t.Fatalf("markers %q … %q not found", from, to)
		}
		return s[i+len(from) : j]
	}
	quoted := between(string(readme), "<!-- walkthrough:begin (quoted from examples/walkthrough.sh) -->\n```sh\n", "```\n<!-- walkthrough:end -->")
	region := between(string(script), "# --- walk-through (README.md quotes from here to the end marker)\n", "# --- end of the walk-through\n")
	if quoted != region {
		t.Fatalf("README.md's walk-through differs from examples/walkthrough.sh; copy the script's region into the README.\nREADME:\n%s\nscript:\n%s", quoted, region)
	}
}

// TestREADMEHashPassword runs the README's hash-password example.
func TestREADMEHashPassword(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`# (printf %s "\$PASSWORD" \| bin/mcp-gateway hash-password)`).FindSubmatch(readme)
	if m == nil {
		t.Fatal("README lacks the hash-password example (printf … | bin/mcp-gateway hash-password)")
	}
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(gatewayBin(), filepath.Join(dir, "bin", "mcp-gateway")); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", "-c", string(m[1]))
	cmd.Dir = dir
	cmd.Env = childEnv(map[string]string{"PASSWORD": "correct horse battery"})
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "$2a$") {
		t.Fatalf("%s: %v: %s", m[1], err, out)
	}
}

// TestDocsStandAlone: every relative link in the repository's Markdown
// files names a file or directory inside the repository, none outside the clone.
func TestDocsStandAlone(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	link := regexp.MustCompile(`\]\(([^)#\s]+)(?:#[^)]*)?\)`)
	checked := 0
	err = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "node_modules" || d.Name() == ".git" || d.Name() == "out") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(p, ".md") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, m := range link.FindAllSubmatch(b, -1) {
			target := string(m[1])
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			abs := filepath.Join(filepath.Dir(p), target)
			rel, _ := filepath.Rel(root, abs)
			if strings.HasPrefix(rel, "..") {
				t.Errorf("%s links %s, outside the repository", p[len(root)+1:], target)
				continue
			}
			if _, err := os.Stat(abs); err != nil {
				t.Errorf("%s links %s: %v", p[len(root)+1:], target, err)
			}
			checked++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked == 0 {
		t.Fatal("no relative links found: the pattern is broken")
	}
}
