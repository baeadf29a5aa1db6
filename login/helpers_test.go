package login

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/mcpgateway/mcp-gateway/config"
	"github.com/mcpgateway/mcp-gateway/internal/logtest"
	"github.com/mcpgateway/mcp-gateway/oauthsrv"
	"github.com/mcpgateway/mcp-gateway/store"
	"github.com/mcpgateway/mcp-gateway/store/memstore"
	"github.com/mcpgateway/mcp-gateway/token"
)

// storeFactory is the backend the gateway runs on; redis_test.go switches
// it to real Redis when MCPGW_TEST_REDIS_URL is set.
var storeFactory = func(tb testing.TB) store.Store {
	s := memstore.New()
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

// clientRedirect is the MCP client's redirect URI; nothing listens there,
// the browser stops before following it. https: the only kind whose
// consent is remembered (oauthsrv/trust.go).
const clientRedirect = "https://mcp-client.example/callback"

const ringSecret = "0123456789abcdef0123456789abcdef-ring"

// gateway is our authorization server with a login provider, on 127.0.0.1.
type gateway struct {
	t    testing.TB
	url  string
	cfg  *config.Config
	st   store.Store
	ring *token.Ring
	logs *logtest.Buffer
	srv  *oauthsrv.Server
}

// newGateway starts the authorization server; login sets cfg.Login (the
// public URL is known by then).
func newGateway(t testing.TB, login func(cfg *config.Config), opts ...Option) *gateway {
	t.Helper()
	ts := httptest.NewUnstartedServer(nil)
	g := &gateway{t: t, url: "http://" + ts.Listener.Addr().String(), logs: &logtest.Buffer{}}
	cfg := config.Default()
	cfg.PublicURL = g.url
	cfg.RateLimit = config.RateLimit{}
	cfg.SigningKeys = []config.SigningKey{{ID: "k1", Secret: ringSecret}}
	login(cfg)
	if err := cfg.Validate(false); err != nil {
		t.Fatal(err)
	}
	g.cfg = cfg
	g.st = storeFactory(t)
	ring, err := token.NewRing(g.url, []token.Key{{ID: "k1", Secret: []byte(ringSecret)}})
	if err != nil {
		t.Fatal(err)
	}
	g.ring = ring
	logger := slog.New(slog.NewJSONHandler(g.logs, nil))
	g.srv, err = oauthsrv.New(oauthsrv.Options{
		Config: cfg, Store: g.st, Ring: ring, Logger: logger,
		Login: Provider(cfg, g.st, append([]Option{WithLogger(logger)}, opts...)...),
	})
	if err != nil {
		t.Fatal(err)
	}
	ts.Config.Handler = g.srv.Handler()
	ts.Start()
	t.Cleanup(ts.Close)
	return g
}

// register registers a public MCP client and returns its id.
func (g *gateway) register() string {
	g.t.Helper()
	b, _ := json.Marshal(map[string]any{"client_name": "Test MCP client", "redirect_uris": []string{clientRedirect}})
	resp, err := http.Post(g.url+"/oauth/register", "application/json", bytes.NewReader(b))
	if err != nil {
		g.t.Fatal(err)
	}
	m := readJSON(g.t, resp)
	if resp.StatusCode != http.StatusCreated {
		g.t.Fatalf("register: %d %v", resp.StatusCode, m)
	}
	return m["client_id"].(string)
}

// flow is one MCP client authorization in progress.
type flow struct {
	clientID, verifier, state string
}

// authorizeURL starts an authorization with PKCE for a fresh client.
func (g *gateway) authorizeURL() (string, *flow) { return g.authorizeURLFor(g.register()) }

// authorizeURLFor starts another authorization for a registered client.
func (g *gateway) authorizeURLFor(clientID string) (string, *flow) {
	f := &flow{clientID: clientID, verifier: token.Random(32), state: token.Random(8)}
	sum := sha256.Sum256([]byte(f.verifier))
	v := url.Values{
		"response_type": {"code"}, "client_id": {f.clientID}, "redirect_uri": {clientRedirect},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"},
		"state": {f.state},
	}
	return g.url + "/oauth/authorize?" + v.Encode(), f
}

// redeem exchanges the code of the client redirect resp for tokens and
// returns the verified access token's subject.
func (g *gateway) redeem(resp *http.Response, f *flow) string {
	g.t.Helper()
	return g.redeemClaims(resp, f).Subject
}

// redeemClaims is redeem returning the verified access token's claims.
func (g *gateway) redeemClaims(resp *http.Response, f *flow) *token.Claims {
	g.t.Helper()
	q := clientCallback(g.t, resp)
	if q.Get("error") != "" || q.Get("code") == "" || q.Get("state") != f.state || q.Get("iss") != g.url {
		g.t.Fatalf("client callback %v", q)
	}
	resp, err := http.PostForm(g.url+"/oauth/token", url.Values{
		"grant_type": {"authorization_code"}, "client_id": {f.clientID}, "code": {q.Get("code")},
		"redirect_uri": {clientRedirect}, "code_verifier": {f.verifier},
	})
	if err != nil {
		g.t.Fatal(err)
	}
	m := readJSON(g.t, resp)
	if resp.StatusCode != http.StatusOK || m["token_type"] != "Bearer" {
		g.t.Fatalf("token: %d %v", resp.StatusCode, m)
	}
	c, err := g.ring.Verify(m["access_token"].(string))
	if err != nil {
		g.t.Fatal(err)
	}
	if c.ClientID != f.clientID {
		g.t.Fatalf("token client_id %q, want %q", c.ClientID, f.clientID)
	}
	return c
}

// audits returns the audit lines of one event.
func (g *gateway) audits(event string) []map[string]any { return g.logs.AuditEvents(g.t, event) }

// expectAudit checks that a login_failed line with reason was written.
func (g *gateway) expectAudit(event, reason string) {
	g.t.Helper()
	for _, m := range g.audits(event) {
		if m["reason"] == reason {
			return
		}
	}
	g.t.Fatalf("no %s audit line with reason %s in logs:\n%s", event, reason, g.logs.String())
}

// browser is a user agent with a cookie jar. It follows redirects itself
// (hop) so tests can stop or tamper on the way.
type browser struct {
	t testing.TB
	c *http.Client
}

func newBrowser(t testing.TB) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, c: &http.Client{
		Jar:           jar,
		Timeout:       15 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

func (b *browser) get(u string) *http.Response {
	b.t.Helper()
	resp, err := b.c.Get(u)
	if err != nil {
		b.t.Fatal(err)
	}
	return resp
}

func (b *browser) postForm(u string, v url.Values) *http.Response {
	b.t.Helper()
	resp, err := b.c.PostForm(u, v)
	if err != nil {
		b.t.Fatal(err)
	}
	return resp
}

// follow follows redirects from resp until stop(next URL) is true or a
// non-redirect answer comes; tamper may rewrite each next URL.
func (b *browser) follow(resp *http.Response, stop func(*url.URL) bool, tamper func(*url.URL)) *http.Response {
	b.t.Helper()
	for range 20 {
		if resp.StatusCode < 300 || resp.StatusCode > 399 {
			return resp
		}
		next, err := resp.Request.URL.Parse(resp.Header.Get("Location"))
		if err != nil {
			b.t.Fatal(err)
		}
		if stop != nil && stop(next) {
			return resp
		}
		if tamper != nil {
			tamper(next)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		resp = b.get(next.String())
	}
	b.t.Fatal("redirect loop")
	return nil
}

// atClient: the next hop is the MCP client's redirect URI.
func atClient(u *url.URL) bool { return u.Scheme+"://"+u.Host+u.Path == clientRedirect }

// consent approves the consent page resp and returns the redirect to the
// client.
func (b *browser) consent(resp *http.Response, user string) *http.Response {
	b.t.Helper()
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/consent" {
		b.t.Fatalf("expected the consent page, got %d at %s: %s", resp.StatusCode, resp.Request.URL, readBody(resp))
	}
	body := readBody(resp)
	if !strings.Contains(body, user) {
		b.t.Fatalf("consent page does not name user %q: %s", user, body)
	}
	action, fields := parseForm(b.t, resp.Request.URL, body)
	fields.Set("decision", "approve")
	return b.postForm(action, fields)
}

// parseForm returns the first form's absolute action and hidden fields.
func parseForm(t testing.TB, page *url.URL, body string) (string, url.Values) {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	fields := url.Values{}
	action := ""
	attr := func(n *html.Node, k string) string {
		for _, a := range n.Attr {
			if a.Key == k {
				return a.Val
			}
		}
		return ""
	}
	var walk func(n *html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode {
			switch {
			case n.Data == "form" && action == "":
				u, err := page.Parse(attr(n, "action"))
				if err != nil {
					t.Fatal(err)
				}
				action = u.String()
			case n.Data == "input" && attr(n, "type") == "hidden":
				fields.Set(attr(n, "name"), attr(n, "value"))
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	if action == "" {
		t.Fatalf("no form on %s: %s", page, body)
	}
	return action, fields
}

// clientCallback checks that resp redirects to the MCP client and returns
// the query it carries.
func clientCallback(t testing.TB, resp *http.Response) url.Values {
	t.Helper()
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("expected a redirect to the client, got %d at %s: %s", resp.StatusCode, resp.Request.URL, readBody(resp))
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || !atClient(loc) {
		t.Fatalf("redirected to %q, want %s", resp.Header.Get("Location"), clientRedirect)
	}
	return loc.Query()
}

// expectClientError checks an OAuth error for the MCP client. The user has
// not approved the client yet, so it is no redirect (RFC 9700 §4.11.2) but a
// page whose link back to the client carries error, state and iss.
func expectClientError(t testing.TB, resp *http.Response, f *flow, code string) {
	t.Helper()
	body := readBody(resp)
	if resp.StatusCode == http.StatusFound || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("want an error page, got %d Location=%q: %s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	_, rest, ok := strings.Cut(body, `<a id="back" href="`)
	raw, _, _ := strings.Cut(rest, `"`)
	back, err := url.Parse(html.UnescapeString(raw))
	if !ok || err != nil || !atClient(back) {
		t.Fatalf("error page without a link back to %s: %s", clientRedirect, body)
	}
	q := back.Query()
	if q.Get("error") != code || q.Get("state") != f.state || q.Get("code") != "" || q.Get("iss") == "" {
		t.Fatalf("link back %v, want error=%s with state and iss", q, code)
	}
}

// expectPage checks an HTML error page with status and a phrase.
func expectPage(t testing.TB, resp *http.Response, status int, phrase string) {
	t.Helper()
	body := readBody(resp)
	if resp.StatusCode != status || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || !strings.Contains(body, phrase) {
		if i := strings.Index(body, "<main"); i >= 0 {
			body = body[i:] // skip the layout's style sheet
		}
		t.Fatalf("got %d %s at %s: %.400q, want %d page containing %q", resp.StatusCode, resp.Header.Get("Content-Type"),
			resp.Request.URL.Path, body, status, phrase)
	}
}

func readBody(resp *http.Response) string {
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func readJSON(t testing.TB, resp *http.Response) map[string]any {
	t.Helper()
	body := readBody(resp)
	var m map[string]any
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatalf("not JSON (%d): %s", resp.StatusCode, body)
	}
	return m
}

// pendingOf returns the pending request named in a URL's query parameter.
func (g *gateway) pendingOf(id string) *store.AuthRequest {
	g.t.Helper()
	p, err := g.st.GetAuthRequest(context.Background(), id)
	if err != nil {
		g.t.Fatalf("pending request %q: %v", id, err)
	}
	return p
}
