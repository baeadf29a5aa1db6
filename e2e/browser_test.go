//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Chromium (the Debian package, headless, driven with chromedp) walks the
// real pages of `mcp-gateway dev`: login, consent, the redirect to the
// client with a code, and the account page. Screenshots of each page go to
// e2e/out/ (a CI artifact, ignored by git).

const screenshotDir = "out"

// chromium starts a headless Chromium with a fresh profile and returns a
// chromedp context for one tab. The browser stops at cleanup. Skips (CI
// unset) or fails (CI=true) when chromium is not installed.
func chromium(t *testing.T) context.Context {
	t.Helper()
	bin := requireTool(t, "chromium", "/usr/bin/chromium")
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.NoSandbox, // root in a container: the sandbox cannot start
		chromedp.DisableGPU,
		chromedp.WindowSize(1000, 900),
		// This machine's network is closed: without these Chromium's own
		// background connections hang and its page loads are refused.
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelTab(); cancelAlloc() })
	// The first Do starts the browser; it must not carry a timeout (that
	// would bound the browser's life), so it gets its own goroutine and the
	// test a bound.
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(ctx) }()
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("start %s: %v", bin, err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not start within 30s", bin)
	}
	return ctx
}

// step runs browser actions bounded by 20 s and fails the test on error.
func step(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(sctx, actions...); err != nil {
		loc, _ := chromeValue(ctx, chromedp.Location())
		text, _ := chromeValue(ctx, chromedp.TextContent(chromedp.CSS("body")))
		t.Fatalf("%s: %v (page %s: %q)", what, err, loc, firstLine([]byte(strings.Join(strings.Fields(text), " "))))
	}
}

// submit clicks sel (a submit button or a link), waits for the page that
// the navigation ends on and fails unless its document came with 200.
func submit(t *testing.T, ctx context.Context, what, sel string) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	resp, err := chromedp.RunResponse(sctx, chromedp.Click(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if resp.Status != http.StatusOK {
		text, _ := chromeValue(ctx, chromedp.TextContent(chromedp.CSS("body")))
		t.Fatalf("%s: HTTP %d at %s: %q", what, resp.Status, resp.URL, strings.Join(strings.Fields(text), " "))
	}
}

// chromeValue runs one value action bounded by 20 s.
func chromeValue[T any](ctx context.Context, a chromedp.Action[T]) (T, error) {
	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	return chromedp.Run(sctx, a)
}

func mustValue[T any](t *testing.T, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromeValue(ctx, a)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return v
}

// screenshot saves the whole page as e2e/out/<name>.png.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png := mustValue(t, ctx, "screenshot "+name, chromedp.FullScreenshot(100))
	if !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Fatalf("screenshot %s is not a PNG", name)
	}
	if err := os.MkdirAll(screenshotDir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(screenshotDir, name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: e2e/%s (%d bytes)", p, len(png))
}

// callbackServer is the client's redirect URI: it records what the
// authorization server sent and shows a page the browser can be seen on.
type callbackServer struct {
	*httptest.Server
	got chan url.Values
}

func newCallbackServer(t *testing.T) *callbackServer {
	t.Helper()
	c := &callbackServer{got: make(chan url.Values, 4)}
	c.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/callback" {
			http.NotFound(w, r)
			return
		}
		select {
		case c.got <- r.URL.Query():
		default:
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, `<!doctype html><title>client</title><p id="received">authorization response received</p>`)
	}))
	t.Cleanup(c.Close)
	return c
}

func (c *callbackServer) redirectURI() string { return c.URL + "/callback" }

// wait returns the next authorization response or fails after 20 s.
func (c *callbackServer) wait(t *testing.T) url.Values {
	t.Helper()
	select {
	case q := <-c.got:
		return q
	case <-time.After(20 * time.Second):
		t.Fatal("the browser never reached the client's redirect URI")
		return nil
	}
}

// registerClient registers a public client by HTTP (RFC 7591).
func registerClient(t *testing.T, base, name, redirect string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]any{
		"client_name":                name,
		"redirect_uris":              []string{redirect},
		"grant_types":                []string{"authorization_code", "refresh_token"},
		"response_types":             []string{"code"},
		"token_endpoint_auth_method": "none",
	})
	resp, err := quickClient.Post(base+"/oauth/register", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("register: %v", err)
	}
	defer resp.Body.Close()
	var out struct {
		ClientID string `json:"client_id"`
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusCreated || json.Unmarshal(b, &out) != nil || out.ClientID == "" {
		t.Fatalf("register: %s: %s", resp.Status, b)
	}
	return out.ClientID
}

// browserGrant is one authorization done in Chromium.
type browserGrant struct {
	ClientID, ClientName, Redirect, Verifier, Code string
}

// chromiumAuthorize registers a client named clientName, opens its
// authorize URL in the browser, signs in on the login page, approves on the
// consent page and returns the code the client's redirect URI received.
// With shots it saves the login and consent pages.
func chromiumAuthorize(t *testing.T, ctx context.Context, d *Dev, cb *callbackServer, clientName string, shots bool) browserGrant {
	t.Helper()
	g := browserGrant{ClientName: clientName, Redirect: cb.redirectURI()}
	g.ClientID = registerClient(t, d.URL, clientName, g.Redirect)
	var challenge string
	g.Verifier, challenge = pkce()
	state := randomString(12)
	authorize := d.URL + "/oauth/authorize?" + url.Values{
		"response_type":         {"code"},
		"client_id":             {g.ClientID},
		"redirect_uri":          {g.Redirect},
		"code_challenge":        {challenge},
		"code_challenge_method": {"S256"},
		"scope":                 {"mcp"},
		"state":                 {state},
		"resource":              {d.MCPURL},
	}.Encode()

	// The login page.
	step(t, ctx, "open the authorize URL", chromedp.Navigate(authorize), chromedp.WaitVisible(chromedp.CSS("#username")))
	loc := mustValue(t, ctx, "location", chromedp.Location())
	if !strings.HasPrefix(loc, d.URL+"/login?request=") {
		t.Fatalf("authorize led to %s, want the login page", loc)
	}
	if title := mustValue(t, ctx, "title", chromedp.Title()); !strings.HasPrefix(title, "Sign in") {
		t.Errorf("login page title %q", title)
	}
	text := mustValue(t, ctx, "login text", chromedp.Text(chromedp.CSS("main")))
	if !strings.Contains(text, "to continue to "+clientName) {
		t.Errorf("login page does not name the client %q:\n%s", clientName, text)
	}
	if shots {
		screenshot(t, ctx, "chromium-login")
	}
	step(t, ctx, "fill the login form",
		chromedp.SendKeys(chromedp.CSS("#username"), d.User),
		chromedp.SendKeys(chromedp.CSS("#password"), d.Password),
	)
	submit(t, ctx, "sign in", `form button[type="submit"]`)
	step(t, ctx, "consent page", chromedp.WaitVisible(chromedp.CSS(`button[name="decision"][value="approve"]`)))

	// The consent page.
	loc = mustValue(t, ctx, "location", chromedp.Location())
	if !strings.HasPrefix(loc, d.URL+"/consent?request=") {
		t.Fatalf("login led to %s, want the consent page", loc)
	}
	text = mustValue(t, ctx, "consent text", chromedp.Text(chromedp.CSS("main")))
	for _, want := range []string{clientName + " unverified name wants to use the agent demo", "Signed in as\n" + d.User,
		"Use the agent's tools and data on your behalf (mcp)", d.MCPURL, "If you approve, you are sent back to\n" + strings.TrimPrefix(cb.URL, "http://")} {
		if !strings.Contains(text, want) {
			t.Errorf("consent page lacks %q:\n%s", want, text)
		}
	}
	if shots {
		screenshot(t, ctx, "chromium-consent")
	}
	submit(t, ctx, "approve", `button[name="decision"][value="approve"]`)
	step(t, ctx, "the client's page", chromedp.WaitVisible(chromedp.CSS("#received")))

	// The client's redirect URI, with code, state and iss.
	q := cb.wait(t)
	if e := q.Get("error"); e != "" {
		t.Fatalf("authorization error %s: %s", e, q.Get("error_description"))
	}
	if q.Get("state") != state || q.Get("iss") != d.URL || q.Get("code") == "" {
		t.Fatalf("redirect: state %q (want %q), iss %q (want %q), code present %v", q.Get("state"), state, q.Get("iss"), d.URL, q.Get("code") != "")
	}
	loc = mustValue(t, ctx, "location", chromedp.Location())
	if !strings.HasPrefix(loc, g.Redirect+"?") {
		t.Errorf("the browser ended at %s, want the redirect URI %s", loc, g.Redirect)
	}
	g.Code = q.Get("code")
	return g
}

// exchange redeems the grant's code with its PKCE verifier.
func (g browserGrant) exchange(t *testing.T, d *Dev) (access, refresh string) {
	t.Helper()
	var tok struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
		TokenType    string `json:"token_type"`
		Error        string `json:"error"`
	}
	st := postForm(t, d.URL+"/oauth/token", url.Values{
		"grant_type":    {"authorization_code"},
		"client_id":     {g.ClientID},
		"code":          {g.Code},
		"redirect_uri":  {g.Redirect},
		"code_verifier": {g.Verifier},
		"resource":      {d.MCPURL},
	}, &tok)
	if st != http.StatusOK || tok.AccessToken == "" || tok.RefreshToken == "" || !strings.EqualFold(tok.TokenType, "bearer") {
		t.Fatalf("code exchange: %d %s", st, tok.Error)
	}
	return tok.AccessToken, tok.RefreshToken
}

func TestChromiumLoginConsent(t *testing.T) {
	ctx := chromium(t)
	d := startDev(t)
	cb := newCallbackServer(t)
	g := chromiumAuthorize(t, ctx, d, cb, "Chromium e2e client", true)

	access, _ := g.exchange(t, d)
	// The token works at the agent it was issued for.
	st, _, body := rawInitialize(t, d.MCPURL, http.Header{"Authorization": {"Bearer " + access}})
	if st != http.StatusOK || !strings.Contains(body, "mcp-gateway-demo") {
		t.Fatalf("initialize with the browser-obtained token: %d %s", st, firstLine([]byte(body)))
	}
	// A code is single use.
	var again struct {
		Error string `json:"error"`
	}
	if st := postForm(t, d.URL+"/oauth/token", url.Values{
		"grant_type": {"authorization_code"}, "client_id": {g.ClientID}, "code": {g.Code},
		"redirect_uri": {g.Redirect}, "code_verifier": {g.Verifier}, "resource": {d.MCPURL},
	}, &again); st != http.StatusBadRequest || again.Error != "invalid_grant" {
		t.Fatalf("second redemption of the code: %d %q, want 400 invalid_grant", st, again.Error)
	}
}

func TestChromiumAccount(t *testing.T) {
	ctx := chromium(t)
	d := startDev(t)
	cb := newCallbackServer(t)
	const name = "Chromium account client"
	g := chromiumAuthorize(t, ctx, d, cb, name, false)
	_, refresh := g.exchange(t, d)

	// Signed in by the authorization, the account page lists the client
	// and its refresh-token family.
	step(t, ctx, "open /account", chromedp.Navigate(d.URL+"/account"), chromedp.WaitVisible(chromedp.CSS(".item.client")))
	text := mustValue(t, ctx, "account text", chromedp.Text(chromedp.CSS("main")))
	for _, want := range []string{"Signed in as " + d.User, "Applications you allowed", name, d.MCPURL + " (Use the agent's tools and data on your behalf)", "Active sign-ins"} {
		if !strings.Contains(text, want) {
			t.Errorf("account page lacks %q:\n%s", want, text)
		}
	}
	if n := mustValue(t, ctx, "count families", chromedp.Evaluate[int](`document.querySelectorAll(".item.family").length`)); n != 1 {
		t.Errorf("account page shows %d refresh-token families, want 1", n)
	}
	screenshot(t, ctx, "chromium-account")

	// Revoke the client (after confirming): it disappears, with its
	// family, and its refresh token stops working.
	item := `.item.client:has(input[name="client"][value="` + g.ClientID + `"])`
	step(t, ctx, "ask to revoke the client", chromedp.Click(chromedp.CSS(item+" summary")), chromedp.WaitVisible(chromedp.CSS(item+" button.danger")))
	submit(t, ctx, "revoke the client", item+" button.danger")
	step(t, ctx, "revoked notice", chromedp.WaitVisible(chromedp.CSS("p.notice")))
	if loc := mustValue(t, ctx, "location", chromedp.Location()); !strings.HasPrefix(loc, d.URL+"/account?done=client") {
		t.Errorf("after revoke the browser is at %s", loc)
	}
	text = mustValue(t, ctx, "account text", chromedp.Text(chromedp.CSS("main")))
	for _, want := range []string{"The application's access was revoked.", "You have not allowed any application.", "No application holds a refresh token for you."} {
		if !strings.Contains(text, want) {
			t.Errorf("after revoke the account page lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, name) {
		t.Errorf("the revoked client is still listed:\n%s", text)
	}
	screenshot(t, ctx, "chromium-account-revoked")
	var tok struct {
		Error string `json:"error"`
	}
	if st := postForm(t, d.URL+"/oauth/token", url.Values{"grant_type": {"refresh_token"}, "client_id": {g.ClientID}, "refresh_token": {refresh}}, &tok); st != http.StatusBadRequest || tok.Error != "invalid_grant" {
		t.Errorf("refresh after the user revoked the client: %d %q, want 400 invalid_grant", st, tok.Error)
	}

	// Create an oag_ key on the page and use it; then revoke it there.
	step(t, ctx, "name a key", chromedp.SendKeys(chromedp.CSS("#key-name"), "chromium laptop"))
	submit(t, ctx, "create a key", `form[action$="account/keys"] button[type="submit"]`)
	step(t, ctx, "the new key", chromedp.WaitVisible(chromedp.CSS("#new-key")))
	key := strings.TrimSpace(mustValue(t, ctx, "new key", chromedp.Text(chromedp.CSS("#new-key"))))
	if !strings.HasPrefix(key, "oag_") {
		t.Fatalf("the new key does not look like a user key (prefix %q)", key[:min(4, len(key))])
	}
	if st, _, body := rawInitialize(t, d.MCPURL, http.Header{"Authorization": {"Bearer " + key}}); st != http.StatusOK {
		t.Fatalf("initialize with the key made on the account page: %d %s", st, firstLine([]byte(body)))
	}
	step(t, ctx, "ask to revoke the key", chromedp.Click(chromedp.CSS(`.item.apikey summary`)))
	submit(t, ctx, "revoke the key", `.item.apikey button.danger`)
	step(t, ctx, "revoked notice", chromedp.WaitVisible(chromedp.CSS("p.notice")))
	text = mustValue(t, ctx, "account text", chromedp.Text(chromedp.CSS("main")))
	if !strings.Contains(text, "The key was revoked.") || !strings.Contains(text, "You have no API keys.") || strings.Contains(text, "chromium laptop") {
		t.Errorf("after revoking the key the account page shows:\n%s", text)
	}

	// Sign out, then sign in from the account page itself.
	submit(t, ctx, "sign out", `form[action$="account/logout"] button`)
	step(t, ctx, "signed-out page", chromedp.WaitVisible(chromedp.CSS(`form[action$="account/login"] button`)))
	if text := mustValue(t, ctx, "account text", chromedp.Text(chromedp.CSS("main"))); !strings.Contains(text, "You are signed out.") {
		t.Errorf("after sign-out the account page shows:\n%s", text)
	}
	submit(t, ctx, "account sign-in", `form[action$="account/login"] button`)
	step(t, ctx, "login page", chromedp.WaitVisible(chromedp.CSS("#username")))
	if text := mustValue(t, ctx, "login text", chromedp.Text(chromedp.CSS("main"))); !strings.Contains(text, "to continue to your account") {
		t.Errorf("the account's login page shows:\n%s", text)
	}
	step(t, ctx, "fill the login form",
		chromedp.SendKeys(chromedp.CSS("#username"), d.User),
		chromedp.SendKeys(chromedp.CSS("#password"), d.Password),
	)
	submit(t, ctx, "sign in for the account", `form button[type="submit"]`)
	step(t, ctx, "signed-in page", chromedp.WaitVisible(chromedp.CSS(`form[action$="account/logout"]`)))
	if text := mustValue(t, ctx, "account text", chromedp.Text(chromedp.CSS("main"))); !strings.Contains(text, "Signed in as "+d.User) {
		t.Errorf("after the account sign-in the page shows:\n%s", text)
	}
}
