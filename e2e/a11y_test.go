//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
)

// Accessibility of every page state: axe-core (e2e/node_modules/axe-core,
// installed by `npm ci`) runs over each state in light and dark mode and
// fails on any WCAG 2.1 A/AA violation. axe leaves out what needs judgement,
// so the manual findings of issue 16 are asserted here too: input and
// secondary-button borders at ≥ 3:1 (WCAG 1.4.11), no horizontal overflow
// at 320–400 px with a 128-character client name, errors tied to their
// fields, one accessible name per Revoke, a visible dark-mode focus ring on
// the primary button, a keyboard-usable copy button. Screenshots of every
// state go to e2e/out/a11y-<state>-<light|dark>.png.

// axeSource reads axe.min.js; skips (CI unset) or fails (CI=true) when
// `npm ci` has not run.
func axeSource(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("node_modules", "axe-core", "axe.min.js"))
	if err != nil {
		missing(t, "e2e/node_modules/axe-core is missing: run `npm ci` in e2e/")
	}
	return string(b)
}

// colorScheme emulates prefers-color-scheme for the tab, and a focused
// page (headless, focus() would not show :focus-visible otherwise).
func colorScheme(scheme string) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		if _, err := cdp.Call(ctx, t, emulation.SetFocusEmulationEnabled, emulation.SetFocusEmulationEnabledParams{Enabled: true}); err != nil {
			return chromedp.Void{}, err
		}
		_, err := cdp.Call(ctx, t, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}},
		})
		return chromedp.Void{}, err
	}
}

// axeViolation is the part of an axe result a failure message needs.
type axeViolation struct {
	ID, Impact, Help string
	Nodes            []struct {
		Target []any  `json:"target"`
		HTML   string `json:"html"`
	} `json:"nodes"`
}

// pageChecks runs in the page: the non-text contrast of control borders
// against the card (WCAG 1.4.11), horizontal overflow, and the focus ring
// of the primary button (a focused ring that differs from the button).
const pageChecks = `(() => {
  const rgb = s => (s.match(/[\d.]+/g) || []).slice(0, 3).map(Number);
  const lum = c => { const v = c.map(x => { x /= 255; return x <= 0.03928 ? x / 12.92 : Math.pow((x + 0.055) / 1.055, 2.4); }); return 0.2126*v[0] + 0.7152*v[1] + 0.0722*v[2]; };
  const ratio = (a, b) => { const x = lum(rgb(a)), y = lum(rgb(b)); return (Math.max(x, y) + 0.05) / (Math.min(x, y) + 0.05); };
  const card = getComputedStyle(document.querySelector("main")).backgroundColor;
  const low = [];
  for (const el of document.querySelectorAll("input[type=text], input[type=password], select, button:not(.primary), summary.button")) {
    if (!el.offsetParent) continue;
    const r = ratio(getComputedStyle(el).borderTopColor, card);
    if (r < 3) low.push((el.id || el.textContent.trim().slice(0, 30)) + ": " + r.toFixed(2));
  }
  let ring = "";
  const p = document.querySelector("button.primary");
  if (p && p.offsetParent) {
    p.focus({focusVisible: true});
    const s = getComputedStyle(p);
    const r = ratio(s.outlineColor, card);
    if (s.outlineStyle === "none" || parseFloat(s.outlineWidth) < 2 || r < 3 || s.outlineColor === s.backgroundColor) {
      ring = "outline " + s.outlineStyle + " " + s.outlineWidth + " " + s.outlineColor + " on " + s.backgroundColor + " (contrast with the card " + r.toFixed(2) + ")";
    }
    p.blur();
  }
  return JSON.stringify({low, ring, overflow: document.documentElement.scrollWidth - window.innerWidth});
})()`

// axeRun injects axe-core into the current page (once) and returns its
// WCAG 2.1 A/AA violations.
func axeRun(t *testing.T, ctx context.Context, axe, state string) []axeViolation {
	t.Helper()
	if ok, _ := chromeValue(ctx, chromedp.Evaluate[bool](`typeof axe === "object"`)); !ok {
		if _, err := chromeValue(ctx, chromedp.Evaluate[any](axe+";0")); err != nil {
			t.Fatalf("%s: inject axe-core: %v", state, err)
		}
	}
	raw := mustValue(t, ctx, state+": axe", chromedp.Evaluate[string](`axe.run(document, {
		runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]},
		resultTypes: ["violations"]
	}).then(r => JSON.stringify(r.violations))`, chromedp.EvalAwaitPromise))
	var vs []axeViolation
	if err := json.Unmarshal([]byte(raw), &vs); err != nil {
		t.Fatalf("%s: axe result: %v", state, err)
	}
	return vs
}

// audit checks the current page in light and dark mode and saves a
// screenshot of each as e2e/out/a11y-<state>-<scheme>.png.
func audit(t *testing.T, ctx context.Context, axe, state string) {
	t.Helper()
	for _, scheme := range []string{"light", "dark"} {
		step(t, ctx, state+": "+scheme+" mode", colorScheme(scheme))
		for _, v := range axeRun(t, ctx, axe, state) {
			for _, n := range v.Nodes {
				t.Errorf("%s (%s): axe %s (%s): %s at %v: %s", state, scheme, v.ID, v.Impact, v.Help, n.Target, n.HTML)
			}
		}
		var pc struct {
			Low      []string
			Ring     string
			Overflow int
		}
		if err := json.Unmarshal([]byte(mustValue(t, ctx, state+": checks", chromedp.Evaluate[string](pageChecks))), &pc); err != nil {
			t.Fatal(err)
		}
		if len(pc.Low) > 0 {
			t.Errorf("%s (%s): control borders under 3:1 against the card: %v", state, scheme, pc.Low)
		}
		if pc.Ring != "" {
			t.Errorf("%s (%s): the primary button's focus ring is hard to see: %s", state, scheme, pc.Ring)
		}
		if pc.Overflow > 0 {
			t.Errorf("%s (%s): the page is %d px wider than the window", state, scheme, pc.Overflow)
		}
		screenshot(t, ctx, "a11y-"+state+"-"+scheme)
	}
	step(t, ctx, "reset the color scheme", colorScheme(""))
}

// atWidths checks the current page for horizontal overflow at narrow
// widths and screenshots it at 320 px.
func atWidths(t *testing.T, ctx context.Context, state string) {
	t.Helper()
	for _, w := range []int64{320, 360, 400} {
		step(t, ctx, "narrow window", chromedp.EmulateViewport(w, 800))
		over := mustValue(t, ctx, "overflow", chromedp.Evaluate[int](`document.documentElement.scrollWidth - window.innerWidth`))
		if over > 0 {
			t.Errorf("%s at %d px: the page is %d px wider than the window", state, w, over)
		}
		if w == 320 {
			screenshot(t, ctx, "a11y-"+state+"-320px")
		}
	}
	step(t, ctx, "normal window", chromedp.EmulateViewport(1000, 900))
}

// clickStatus clicks sel and returns the HTTP status of the page the
// navigation ends on.
func clickStatus(t *testing.T, ctx context.Context, what, sel string) int64 {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	resp, err := chromedp.RunResponse(sctx, chromedp.Click(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return resp.Status
}

// TestChromiumAccessibility walks every page state of the browser flow
// and audits each one.
func TestChromiumAccessibility(t *testing.T) {
	axe := axeSource(t)
	ctx := chromium(t)
	d := startDev(t)
	cb := newCallbackServer(t)
	longName := "Claude Desktop " + strings.Repeat("W", 113) // 128 characters, one unbreakable word
	if len(longName) != 128 {
		t.Fatalf("name of %d characters", len(longName))
	}
	clientID := registerClient(t, d.URL, longName, cb.redirectURI())
	verifier, challenge := pkce()
	authorize := d.URL + "/oauth/authorize?" + url.Values{
		"response_type": {"code"}, "client_id": {clientID}, "redirect_uri": {cb.redirectURI()},
		"code_challenge": {challenge}, "code_challenge_method": {"S256"}, "scope": {"mcp"},
		"state": {"s"}, "resource": {d.MCPURL},
	}.Encode()

	// 1. The login page, then with a wrong password: the error is tied to
	// the fields.
	step(t, ctx, "login page", chromedp.Navigate(authorize), chromedp.WaitVisible(chromedp.CSS("#username")))
	audit(t, ctx, axe, "login")
	atWidths(t, ctx, "login")
	step(t, ctx, "wrong password",
		chromedp.SendKeys(chromedp.CSS("#username"), d.User),
		chromedp.SendKeys(chromedp.CSS("#password"), "not-the-password"))
	if st := clickStatus(t, ctx, "wrong password", `form button[type="submit"]`); st != http.StatusUnauthorized {
		t.Fatalf("wrong password: HTTP %d, want 401", st)
	}
	step(t, ctx, "login error", chromedp.WaitVisible(chromedp.CSS("#login-error")))
	for _, id := range []string{"username", "password"} {
		tied := mustValue(t, ctx, "aria of "+id, chromedp.Evaluate[string](`(() => { const e = document.getElementById("`+id+`"); return e.getAttribute("aria-invalid") + " " + e.getAttribute("aria-describedby"); })()`))
		if tied != "true login-error" {
			t.Errorf("#%s after a wrong password: aria-invalid aria-describedby = %q, want \"true login-error\"", id, tied)
		}
	}
	audit(t, ctx, axe, "login-error")

	// 2. The consent page: the scope's description, the name marked
	// unverified, where it returns, how long, where to revoke; a long name
	// does not overflow on a phone.
	step(t, ctx, "sign in",
		chromedp.SendKeys(chromedp.CSS("#password"), d.Password))
	submit(t, ctx, "sign in", `form button[type="submit"]`)
	step(t, ctx, "consent page", chromedp.WaitVisible(chromedp.CSS(`button[name="decision"][value="approve"]`)))
	text := mustValue(t, ctx, "consent text", chromedp.Text(chromedp.CSS("main")))
	host := strings.TrimPrefix(cb.URL, "http://")
	for _, want := range []string{"unverified name", "Use the agent's tools and data on your behalf", "If you approve, you are sent back to\n" + host, "Up to 30 days", "your account page"} {
		if !strings.Contains(text, want) {
			t.Errorf("consent page lacks %q:\n%s", want, text)
		}
	}
	if dest := mustValue(t, ctx, "returns to", chromedp.Text(chromedp.CSS(".dest strong"))); dest != host {
		t.Errorf("the redirect host shown prominently is %q, want %q", dest, host)
	}
	audit(t, ctx, axe, "consent")
	atWidths(t, ctx, "consent-long-name")
	submit(t, ctx, "approve", `button[name="decision"][value="approve"]`)
	g := browserGrant{ClientID: clientID, Redirect: cb.redirectURI(), Verifier: verifier, Code: cb.wait(t).Get("code")}
	// axe does find faults: the test client's bare page has no lang.
	step(t, ctx, "the client's page", chromedp.WaitVisible(chromedp.CSS("#received")))
	found := false
	for _, v := range axeRun(t, ctx, axe, "client page") {
		found = found || v.ID == "html-has-lang"
	}
	if !found {
		t.Fatal("axe-core reports no html-has-lang on a page without lang: it does not run")
	}
	g.exchange(t, d) // a live sign-in for the account page

	// 3. The account page, a revoke confirmation opened, a new key shown
	// once after a redirect, then revoked.
	step(t, ctx, "account", chromedp.Navigate(d.URL+"/account"), chromedp.WaitVisible(chromedp.CSS(".item.client")))
	for _, sel := range []string{"details.confirm > summary", "details.confirm button"} {
		names := mustValue(t, ctx, "revoke names", chromedp.Evaluate[[]string](`[...document.querySelectorAll("`+sel+`")].map(e => e.textContent.trim())`))
		seen := map[string]bool{}
		for _, n := range names {
			if seen[n] || n == "Revoke" {
				t.Errorf("%s named %q (not unique or not saying what it revokes): %q", sel, n, names)
			}
			seen[n] = true
		}
		if len(names) < 2 {
			t.Errorf("%s: %d on the page, want the client's and its sign-in's", sel, len(names))
		}
	}
	audit(t, ctx, axe, "account")
	atWidths(t, ctx, "account")
	step(t, ctx, "open a revoke confirmation", chromedp.Click(chromedp.CSS(".item.client summary")),
		chromedp.WaitVisible(chromedp.CSS(".item.client details[open] button.danger")))
	audit(t, ctx, axe, "account-revoke-confirm")

	step(t, ctx, "name a key", chromedp.SendKeys(chromedp.CSS("#key-name"), "a11y laptop"))
	submit(t, ctx, "create a key", `form[action$="account/keys"] button[type="submit"]`)
	step(t, ctx, "the new key", chromedp.WaitVisible(chromedp.CSS("#new-key")), chromedp.WaitVisible(chromedp.CSS("#copy-key")))
	if loc := mustValue(t, ctx, "location", chromedp.Location()); loc != d.URL+"/account?done=key_created" {
		t.Errorf("after creating a key the browser is at %s, want the account page (redirect after post)", loc)
	}
	// The copy button works from the keyboard.
	step(t, ctx, "copy with the keyboard", chromedp.Focus(chromedp.CSS("#copy-key")), chromedp.KeyEvent("\r"))
	status := ""
	for range 50 {
		if status = mustValue(t, ctx, "copy status", chromedp.Text(chromedp.CSS("#copy-status"))); status != "" {
			break
		}
		step(t, ctx, "wait", chromedp.Sleep(100*time.Millisecond))
	}
	if status != "Copied." && !strings.HasPrefix(status, "Selected") {
		t.Errorf("copy button by keyboard: status %q", status)
	}
	text = mustValue(t, ctx, "account text", chromedp.Text(chromedp.CSS("main")))
	if strings.Contains(text, "….") || !strings.Contains(text, "Bearer") {
		t.Errorf("the key's usage line reads badly:\n%s", text)
	}
	audit(t, ctx, axe, "account-new-key")
	// Reloading shows the page without the key, and the form's address
	// answers GET with the page.
	step(t, ctx, "reload", chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS(".item.apikey")))
	if n := mustValue(t, ctx, "key shown again", chromedp.Evaluate[int](`document.querySelectorAll("#new-key").length`)); n != 0 {
		t.Error("the new key is shown again after a reload")
	}
	step(t, ctx, "GET /account/keys", chromedp.Navigate(d.URL+"/account/keys"), chromedp.WaitVisible(chromedp.CSS(".item.apikey")))
	if loc := mustValue(t, ctx, "location", chromedp.Location()); loc != d.URL+"/account" {
		t.Errorf("GET /account/keys ended at %s", loc)
	}
	step(t, ctx, "open the key's revoke", chromedp.Click(chromedp.CSS(".item.apikey summary")))
	submit(t, ctx, "revoke the key", `.item.apikey details[open] button.danger`)
	step(t, ctx, "revoked notice", chromedp.WaitVisible(chromedp.CSS("p.notice")))
	audit(t, ctx, axe, "account-revoked")

	// 4. Signed out, and the account's own login page.
	submit(t, ctx, "sign out", `form[action$="account/logout"] button`)
	step(t, ctx, "signed-out page", chromedp.WaitVisible(chromedp.CSS(`form[action$="account/login"] button`)))
	audit(t, ctx, axe, "account-signed-out")
	submit(t, ctx, "account sign-in", `form[action$="account/login"] button`)
	step(t, ctx, "account login page", chromedp.WaitVisible(chromedp.CSS("#username")))
	audit(t, ctx, axe, "account-login")

	// 5. Error pages lead on: a plain one links to the account page, an
	// authorization error links back to the application.
	step(t, ctx, "an expired link", chromedp.Navigate(d.URL+"/login?request=nope"), chromedp.WaitVisible(chromedp.CSS("h1")))
	if href := mustValue(t, ctx, "way on", chromedp.Evaluate[string](`(document.querySelector("main a") || {}).href || ""`)); href != d.URL+"/account" {
		t.Errorf("the error page's link goes to %q, want the account page", href)
	}
	audit(t, ctx, axe, "error")
	bad := d.URL + "/oauth/authorize?" + url.Values{
		"response_type": {"code"}, "client_id": {clientID}, "redirect_uri": {cb.redirectURI()},
		"code_challenge": {challenge}, "code_challenge_method": {"S256"}, "scope": {"nope"}, "state": {"s"}, "resource": {d.MCPURL},
	}.Encode()
	step(t, ctx, "an authorization error", chromedp.Navigate(bad), chromedp.WaitVisible(chromedp.CSS("h1")))
	if back := mustValue(t, ctx, "back link", chromedp.Evaluate[string](`(document.getElementById("back") || {}).href || ""`)); !strings.HasPrefix(back, cb.redirectURI()+"?") {
		t.Errorf("the authorization error page's link goes to %q, want the application", back)
	}
	audit(t, ctx, axe, "error-back")
}
