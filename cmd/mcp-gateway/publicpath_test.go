package main

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
	"golang.org/x/crypto/bcrypt"

	"github.com/mcpgateway/mcp-gateway/config"
	"github.com/mcpgateway/mcp-gateway/store"
)

// TestDiscoveryUnderPublicPath walks an MCP client's discovery as the MCP
// authorization spec (2026-07-28, Authorization Server Discovery) orders
// it, with the Go SDK's own fetch-and-check functions, against the whole
// gateway (dev mode's front, routed like Envoy) behind a host that serves it
// under public_url's path: 401 → resource_metadata → the metadata's
// authorization server → RFC 8414 metadata, then registration, sign-in,
// consent, token and the MCP call the token opens. The host strips the path
// from <path>/…, as an ingress with a prefix rewrite does, and passes the
// well-known documents about <path> at its root on unchanged (README,
// "public_url with a path"); the rest of its root is another application's.
// The plain case, public_url at the host's root, walks the same way. With
// the old Check the 401 named <public>/.well-known/…, which the host does
// not route and the gateway would not serve.
func TestDiscoveryUnderPublicPath(t *testing.T) {
	for _, base := range []string{"", "/gw", "/a/b"} {
		t.Run("base="+base, func(t *testing.T) { walkDiscovery(t, base) })
	}
}

func walkDiscovery(t *testing.T, base string) {
	outer := httptest.NewUnstartedServer(nil)
	host := "http://" + outer.Listener.Addr().String()
	pub := host + base
	cfg := config.Default()
	cfg.PublicURL = pub
	cfg.SigningKeys = []config.SigningKey{{ID: "k1", Secret: "0123456789abcdef0123456789abcdef"}}
	upstream, upstreamHits := echoUpstream(t)
	hash, err := bcrypt.GenerateFromPassword([]byte(walkPassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Login.Users = []config.User{{Username: "alice", PasswordHash: string(hash)}}
	cfg.Agents = []config.StaticAgent{{AgentSpec: store.AgentSpec{ID: "demo", Owner: "alice", Upstream: upstream.URL + "/mcp"}}}
	if err := cfg.Validate(false); err != nil {
		t.Fatal(err)
	}
	g, err := newGateway(t.Context(), cfg, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	bg, cancel := context.WithCancel(context.Background())
	if err := g.authz.Start(bg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); g.authz.Wait(); g.store.Close() })
	inner := httptest.NewServer(devHandler(g))
	t.Cleanup(inner.Close)
	innerURL, _ := url.Parse(inner.URL)

	rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(innerURL)
		pr.Out.Host = pr.In.Host
		if rest, ok := strings.CutPrefix(pr.In.URL.Path, base+"/"); ok && base != "" {
			pr.Out.URL.Path, pr.Out.URL.RawPath = "/"+rest, ""
		}
	}}
	outer.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		if base == "" || strings.HasPrefix(p, base+"/") ||
			strings.HasPrefix(p, "/.well-known/oauth-protected-resource"+base+"/") ||
			p == "/.well-known/oauth-protected-resource"+base || p == "/.well-known/oauth-authorization-server"+base {
			rp.ServeHTTP(w, r)
			return
		}
		http.Error(w, "another application", http.StatusNotFound)
	})
	outer.Start()
	t.Cleanup(outer.Close)
	c, ctx := outer.Client(), t.Context()

	// 1. The MCP request without a token: 401 naming the metadata's URL.
	endpoint := pub + "/demo/mcp"
	resp, err := c.Post(endpoint, "application/json", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("POST %s: %d, want 401", endpoint, resp.StatusCode)
	}
	cs, err := oauthex.ParseWWWAuthenticate(resp.Header.Values("WWW-Authenticate"))
	if err != nil || len(cs) != 1 {
		t.Fatalf("challenge %q: %v", resp.Header.Values("WWW-Authenticate"), err)
	}
	prmURL := cs[0].Params["resource_metadata"]
	// RFC 9728 §3.1: the well-known suffix between the host and the path.
	if want := host + "/.well-known/oauth-protected-resource" + base + "/demo/mcp"; prmURL != want {
		t.Fatalf("resource_metadata %q, want %q", prmURL, want)
	}

	// 2. The Go SDK's client fetches it, and checks that it names the
	// endpoint byte for byte (RFC 9728 §3.3), and the authorization server.
	prm, err := oauthex.GetProtectedResourceMetadata(ctx, prmURL, endpoint, c)
	if err != nil {
		t.Fatal(err)
	}
	if len(prm.AuthorizationServers) != 1 || prm.AuthorizationServers[0] != pub {
		t.Fatalf("authorization_servers %v, want [%s]", prm.AuthorizationServers, pub)
	}
	issuer := prm.AuthorizationServers[0]

	// 3. The authorization server's metadata. The spec's first URL for the
	// issuer, RFC 8414's with the path inserted, answers and names the
	// issuer it was built from (RFC 8414 §3.3): the gateway is no OpenID
	// provider, so the OpenID Connect forms the spec tries next are 404.
	u, _ := url.Parse(issuer)
	asURL := u.Scheme + "://" + u.Host + "/.well-known/oauth-authorization-server" + u.Path
	var first struct {
		Issuer string `json:"issuer"`
	}
	getJSON(t, c, asURL, &first)
	asm, err := auth.GetAuthServerMetadata(ctx, issuer, c) // the SDK's own order and checks
	if err != nil || asm == nil || first.Issuer != issuer {
		t.Fatalf("AS metadata of %s: %v, %+v; at %s: issuer %q", issuer, err, asm, asURL, first.Issuer)
	}
	for name, e := range map[string]string{"authorization": asm.AuthorizationEndpoint, "token": asm.TokenEndpoint, "registration": asm.RegistrationEndpoint} {
		if !strings.HasPrefix(e, issuer+"/oauth/") {
			t.Errorf("%s endpoint %s is not below the issuer %s", name, e, issuer)
		}
	}

	// 4. The flow goes on through the host: registration, authorize, the
	// sign-in and consent pages (relative form actions), the code with the
	// issuer (RFC 9207), the token, and the MCP call the token opens.
	const redirect = "http://127.0.0.1:9/callback"
	reg, err := oauthex.RegisterClient(ctx, asm.RegistrationEndpoint, &oauthex.ClientRegistrationMetadata{
		ClientName: "public path test", RedirectURIs: []string{redirect}, TokenEndpointAuthMethod: "none",
	}, c)
	if err != nil || reg.ClientID == "" {
		t.Fatalf("register at %s: %v", asm.RegistrationEndpoint, err)
	}
	verifier := strings.Repeat("v", 43)
	sum := sha256.Sum256([]byte(verifier))
	q := url.Values{"client_id": {reg.ClientID}, "response_type": {"code"}, "redirect_uri": {redirect}, "state": {"s"},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"}, "resource": {endpoint}}
	jar, _ := cookiejar.New(nil) // the sign-in is bound to the browser by a cookie
	browser := &http.Client{Transport: c.Transport, Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	next := redirectOf(t, browser, http.MethodGet, asm.AuthorizationEndpoint+"?"+q.Encode(), nil)
	for range 3 {
		if strings.HasPrefix(next, redirect) || !strings.HasPrefix(next, pub+"/") {
			break
		}
		action, fields := pageForm(t, browser, next)
		switch action.Path {
		case u.Path + "/login":
			fields.Set("username", "alice")
			fields.Set("password", walkPassword)
		case u.Path + "/consent":
			fields.Set("decision", "approve")
		default:
			t.Fatalf("page %s posts to %s", next, action)
		}
		next = redirectOf(t, browser, http.MethodPost, action.String(), fields)
	}
	back, err := url.Parse(next)
	if err != nil || !strings.HasPrefix(next, redirect+"?") || back.Query().Get("iss") != issuer || back.Query().Get("code") == "" {
		t.Fatalf("sign-in ended at %q, want %s with a code and iss=%s", next, redirect, issuer)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
		Error       string `json:"error"`
	}
	r, err := c.PostForm(asm.TokenEndpoint, url.Values{"grant_type": {"authorization_code"}, "code": {back.Query().Get("code")},
		"client_id": {reg.ClientID}, "redirect_uri": {redirect}, "code_verifier": {verifier}, "resource": {endpoint}})
	if err != nil {
		t.Fatal(err)
	}
	_ = json.NewDecoder(r.Body).Decode(&tok)
	r.Body.Close()
	if r.StatusCode != http.StatusOK || tok.AccessToken == "" {
		t.Fatalf("POST %s: %d %s", asm.TokenEndpoint, r.StatusCode, tok.Error)
	}
	req, _ := http.NewRequest(http.MethodPost, endpoint, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`))
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	req.Header.Set("Content-Type", "application/json")
	if r, err = c.Do(req); err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusOK || upstreamHits.Load() != 1 {
		t.Fatalf("MCP call with the token: %d, upstream saw %d requests", r.StatusCode, upstreamHits.Load())
	}

	// The account page the sign-in opened: every form posts below the path
	// (the old page posted to /account/…, the host's root).
	r, err = browser.Get(pub + "/account")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(r.Body)
	r.Body.Close()
	actions := anyFormAction.FindAllSubmatch(body, -1)
	if r.StatusCode != http.StatusOK || !strings.Contains(string(body), "Signed in as <strong>alice</strong>") || len(actions) == 0 {
		t.Fatalf("GET %s/account: %d, want the signed-in page with forms: %.300s", pub, r.StatusCode, body)
	}
	for _, a := range actions {
		if to, err := r.Request.URL.Parse(html.UnescapeString(string(a[1]))); err != nil || !strings.HasPrefix(to.String(), pub+"/account/") {
			t.Errorf("account page form posts to %s, want below %s/account/", to, pub)
		}
	}

	// The gateway-wide resource's metadata, at its RFC 9728 URL.
	if _, err := oauthex.GetProtectedResourceMetadata(ctx, host+"/.well-known/oauth-protected-resource"+base, pub, c); err != nil {
		t.Fatal(err)
	}
}

const walkPassword = "public-path-pw-1"

// redirectOf sends one request and returns its redirect's absolute target.
func redirectOf(t *testing.T, c *http.Client, method, u string, form url.Values) string {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	r, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	loc, err := r.Location()
	if err != nil || r.StatusCode/100 != 3 {
		t.Fatalf("%s %s: %d, want a redirect (%v)", method, u, r.StatusCode, err)
	}
	return loc.String()
}

var (
	formAction    = regexp.MustCompile(`<form method="post" action="([^"]*)">`)
	anyFormAction = regexp.MustCompile(`<form method="(?:get|post)" action="([^"]*)"`)
	formHidden    = regexp.MustCompile(`<input type="hidden" name="([^"]*)" value="([^"]*)">`)
)

// pageForm fetches an HTML page and returns its form's action, resolved
// against the page's URL as a browser does, and its hidden fields.
func pageForm(t *testing.T, c *http.Client, u string) (*url.URL, url.Values) {
	t.Helper()
	r, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(r.Body)
	r.Body.Close()
	m := formAction.FindSubmatch(body)
	if err != nil || r.StatusCode != http.StatusOK || m == nil {
		t.Fatalf("GET %s: %d, want a page with a form: %.300s", u, r.StatusCode, body)
	}
	base, _ := url.Parse(u)
	action, err := base.Parse(html.UnescapeString(string(m[1])))
	if err != nil {
		t.Fatal(err)
	}
	fields := url.Values{}
	for _, h := range formHidden.FindAllSubmatch(body, -1) {
		fields.Set(string(h[1]), html.UnescapeString(string(h[2])))
	}
	return action, fields
}

func getJSON(t *testing.T, c *http.Client, u string, v any) {
	t.Helper()
	r, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	if r.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d", u, r.StatusCode)
	}
	if err := json.NewDecoder(r.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
}
