package oauthsrv

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mcpgateway/mcp-gateway/config"
)

// consentPage runs authorize and login for clientID at redirect with scope
// and returns the consent page's body.
func (b *browser) consentPage(clientID, redirect, scope string) string {
	b.e.t.Helper()
	_, challenge := pkce()
	resp := b.get(b.e.authorizeURL(authzParams{clientID: clientID, redirect: redirect, challenge: challenge, state: "s", scope: scope}))
	resp = b.login(resp, "alice")
	body := readBodyString(resp)
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/consent" {
		b.e.t.Fatalf("no consent page: %d at %s: %s", resp.StatusCode, resp.Request.URL, body)
	}
	return body
}

// The consent page shows each scope's description from the config (the
// name only when there is none), marks a dynamically registered name as
// unverified, shows the redirect host prominently, how long access lasts
// and where to revoke it.
func TestConsentPageExplains(t *testing.T) {
	e := newEnv(t, func(c *config.Config, _ *Options) {
		c.Scopes = config.Scopes{{Name: "mcp", Description: "Use the demo <tools>"}, {Name: "tools"}}
		c.TTL.Refresh = config.Duration(14 * 24 * time.Hour)
	})
	const cb = "https://claude.example/cb"
	id := e.register("Claude Desktop", cb)
	body := e.browser().consentPage(id, cb, "mcp tools")
	for _, want := range []string{
		"<li>Use the demo &lt;tools&gt; <span class=\"muted\">(<code>mcp</code>)</span></li>",
		"<li><code>tools</code></li>",
		`<strong>Claude Desktop</strong> <span class="tag warn">unverified name</span>`,
		`<div class="dest" id="returns-to"><span class="muted">If you approve, you are sent back to</span> <strong>claude.example</strong></div>`,
		"Up to 14 days, until <span class=\"nowrap\">" + e.clock.Now().Add(14*24*time.Hour).UTC().Format("2 January 2006") + "</span>",
		`<a href="` + e.url + `/account">your account page</a>`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("consent page lacks %s:\n%s", want, body)
		}
	}
}

// A CIMD client's name is vouched for by its document's host: shown as
// the verified domain, never marked unverified.
func TestConsentPageCIMDVerifiedDomain(t *testing.T) {
	d := newDocServer(t)
	e := newEnv(t, withCIMD(d, "127.0.0.1/32"))
	id := d.url("/app.json")
	d.serveDoc("/app.json", cimdDoc(id, "https://app.example/cb"))
	host := strings.TrimPrefix(d.ts.URL, "https://")
	body := e.browser().consentPage(id, "https://app.example/cb", "")
	if !strings.Contains(body, `<span class="tag ok">verified domain `+host+`</span>`) || strings.Contains(body, "unverified") {
		t.Fatalf("CIMD consent page:\n%s", body)
	}
}

func TestHumanDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		720 * time.Hour: "30 days", 24 * time.Hour: "1 day", 12 * time.Hour: "12 hours", 36 * time.Hour: "36 hours",
		90 * time.Minute: "90 minutes", time.Minute: "1 minute", 30 * time.Second: "30 seconds",
	} {
		if got := humanDuration(d); got != want {
			t.Errorf("humanDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

// A wrong password's message is tied to both fields.
func TestLoginErrorTiedToFields(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	resp := b.startLogin(e.register("aria"))
	resp = b.submit(parseForm(t, resp), url.Values{"username": {"alice"}, "password": {"wrong-password"}})
	body := readBodyString(resp)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, `<p class="error" id="login-error" role="alert">Wrong username or password.</p>`) {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	for _, id := range []string{"username", "password"} {
		if !regexp.MustCompile(`<input id="` + id + `"[^>]* aria-invalid="true" aria-describedby="login-error">`).MatchString(body) {
			t.Errorf("#%s is not tied to the error:\n%s", id, body)
		}
	}
	// The first visit has no error and marks nothing invalid.
	if body := readBodyString(b.startLogin(e.register("aria2"))); strings.Contains(body, `aria-invalid="true"`) {
		t.Errorf("fresh login page marks a field invalid:\n%s", body)
	}
}

// Creating a key redirects (post/redirect/get); the next page shows the key
// once; a reload does not; the one-time cookie is sealed to the session.
func TestAccountNewKeyAfterRedirect(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	_, forms := b.accountLogin("alice")
	create := findForm(t, forms, "/account/keys", "", "")
	v := url.Values{"name": {"laptop"}, "expires": {"30"}}
	for k, s := range create.fields {
		v[k] = s
	}
	req, _ := http.NewRequest(http.MethodPost, create.action.String(), strings.NewReader(v.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, c := range b.c.Jar.Cookies(create.action) {
		req.AddCookie(c)
	}
	resp, err := plain.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != e.url+"/account?done=key_created" {
		t.Fatalf("create: %d to %q, want 303 to the account page", resp.StatusCode, resp.Header.Get("Location"))
	}
	var flash *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "mcpgw_newkey" {
			flash = c
		}
	}
	if flash == nil || !flash.HttpOnly || flash.MaxAge <= 0 || flash.MaxAge > 120 || strings.Contains(flash.Value, "oag_") {
		t.Fatalf("flash cookie %+v", flash)
	}
	// Another session (bob's) cannot open alice's flash.
	bob := e.browser()
	bob.accountLogin("bob")
	bob.c.Jar.SetCookies(create.action, []*http.Cookie{{Name: flash.Name, Value: flash.Value, Path: "/"}})
	if body, _ := bob.account(); oagKey.MatchString(body) {
		t.Fatal("another session opened the flash")
	}

	b.c.Jar.SetCookies(create.action, resp.Cookies())
	page := b.get(e.url + "/account?done=key_created")
	body := readBodyString(page)
	if !oagKey.MatchString(body) || !strings.Contains(body, "not shown again") || !strings.Contains(body, `id="copy-key"`) {
		t.Fatalf("the page after the redirect: %s", body)
	}
	cleared := false
	for _, c := range page.Cookies() {
		cleared = cleared || (c.Name == "mcpgw_newkey" && c.MaxAge < 0)
	}
	if !cleared {
		t.Error("the flash cookie is not cleared once shown")
	}
	// The script the copy button needs is allowed by its hash, and only it.
	m := regexp.MustCompile(`(?s)<script>(.*?)</script>`).FindStringSubmatch(body)
	if m == nil {
		t.Fatal("no copy script")
	}
	sum := sha256.Sum256([]byte(m[1]))
	if csp := page.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'") {
		t.Errorf("CSP %q does not allow the copy script", csp)
	}
	// A reload shows no key, and says it was shown once.
	body = readBodyString(b.get(e.url + "/account?done=key_created"))
	if oagKey.MatchString(body) || !strings.Contains(body, "shown once") || strings.Contains(body, "<script>") {
		t.Fatalf("reload shows: %s", body)
	}
	// An expired flash is ignored.
	e.clock.Advance(newKeyFlashTTL + time.Second)
	b.c.Jar.SetCookies(create.action, []*http.Cookie{{Name: flash.Name, Value: flash.Value, Path: "/"}})
	if body, _ := b.account(); oagKey.MatchString(body) {
		t.Fatal("an expired flash showed the key")
	}
}

// Every Revoke says what it revokes and asks first (no script needed).
func TestAccountRevokeNamesAndConfirms(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.accountLogin("alice")
	const cb = "https://app.example/cb"
	id := e.register("Inspector", cb)
	code, verifier := b.authorizeCodeAt(id, cb, "alice", e.url+"/demo/mcp")
	e.tokensAt(id, cb, code, verifier)
	body, _ := b.account()
	for _, want := range []string{
		`<summary class="button">Revoke<span class="vh"> access of Inspector</span></summary>`,
		`<button type="submit" class="danger">Revoke access of Inspector</button>`,
		`<summary class="button">Revoke<span class="vh"> sign-in of Inspector since `,
		`<button type="submit" class="danger">Revoke sign-in of Inspector</button>`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("account page lacks %s", want)
		}
	}
	if n := strings.Count(body, `<details class="confirm">`); n != strings.Count(body, `action="/account/revoke"`) {
		t.Errorf("%d confirmations for %d revoke forms", n, strings.Count(body, `action="/account/revoke"`))
	}
	if strings.Contains(body, "Bearer …") {
		t.Error(`the page still says "Bearer …."`)
	}
}

// Error pages lead on: to the account page, or back to the application.
func TestErrorPagesLeadOn(t *testing.T) {
	e := newEnv(t)
	body := readBodyString(e.get("/login?request=nope"))
	if !strings.Contains(body, `<a id="account" href="`+e.url+`/account">`) || !strings.Contains(body, "go back to the application") {
		t.Errorf("plain error page: %s", body)
	}
	b := e.browser()
	b.accountLogin("alice")
	resp := b.post(e.url+"/account/revoke", url.Values{"csrf": {"forged"}, "key": {"k"}})
	if body := readBodyString(resp); resp.StatusCode != http.StatusForbidden || !strings.Contains(body, `<a id="back" href="`+e.url+`/account">Back to your account</a>`) {
		t.Errorf("account error page: %d %s", resp.StatusCode, body)
	}
	// An authorization error: plain words, the technical detail folded away.
	id := e.register("scope")
	_, challenge := pkce()
	resp = e.browser().get(e.authorizeURL(authzParams{clientID: id, redirect: loopbackRedirect, challenge: challenge, scope: "nope"}))
	body = readBodyString(resp)
	if !strings.Contains(body, "The application asked for permissions this gateway does not grant.") ||
		!strings.Contains(body, "<summary>Details for the application's developer</summary><p><code>invalid_scope: ") ||
		!strings.Contains(body, `<a id="back" href="http://127.0.0.1:9/callback?error=invalid_scope`) {
		t.Errorf("authorization error page: %s", body)
	}
}

// A forged, truncated or oversized flash cookie shows the page without a
// key (never an error).
func TestAccountFlashTampered(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.accountLogin("alice")
	u, _ := url.Parse(e.url)
	for name, v := range map[string]string{
		"not base64": "%%%",
		"short":      "AAAA",
		"forged":     base64.RawURLEncoding.EncodeToString(make([]byte, 80)),
		"oversized":  strings.Repeat("A", 3000),
	} {
		b.c.Jar.SetCookies(u, []*http.Cookie{{Name: "mcpgw_newkey", Value: v, Path: "/"}})
		resp := b.get(e.url + "/account?done=key_created")
		body := readBodyString(resp)
		if resp.StatusCode != http.StatusOK || oagKey.MatchString(body) || !strings.Contains(body, "Signed in as") {
			t.Errorf("%s: %d %s", name, resp.StatusCode, body)
		}
	}
}
