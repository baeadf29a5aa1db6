package hostile

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/mcpgateway/mcp-gateway/token"
)

// Revoking a grant (a refresh family) ends every access token issued from
// it, not only the newest: after an RFC 7009 revocation of any of its
// refresh tokens, after refresh-token reuse, after a code replay and after
// "revoke" on /account. And whoever holds a code without its client's
// binding (client, verifier, redirect URI) cannot burn it.

// refreshed rotates rt and returns the new access and refresh token.
func (g *gw) refreshed(t *testing.T, clientID, rt string) (access, refresh string) {
	t.Helper()
	r := g.refresh(clientID, rt)
	m := r.json(t)
	if r.status != http.StatusOK {
		t.Fatalf("refresh: %d %v", r.status, m)
	}
	access, refresh = m["access_token"].(string), m["refresh_token"].(string)
	g.secret(access, refresh)
	return access, refresh
}

// allDenied: the Check refuses every token (401 invalid_token), and the
// refresh tokens are dead.
func (g *gw) allDenied(t *testing.T, clientID string, access, refresh []string) {
	t.Helper()
	for i, a := range access {
		r := g.eventuallyDenied(t, "alpha", "Bearer "+a)
		if r.status != http.StatusUnauthorized || r.json(t)["error"] != "invalid_token" {
			t.Errorf("access token %d: %d %s, want 401 invalid_token", i, r.status, r.body)
		}
	}
	for i, rt := range refresh {
		if r := g.refresh(clientID, rt); r.status != http.StatusBadRequest || r.json(t)["error"] != "invalid_grant" {
			t.Errorf("refresh token %d still works: %d %s", i, r.status, r.body)
		}
	}
}

// legacyToken mints an access token for alice at alpha as the gateway did
// before access tokens named their family (no "fam" claim).
func (g *gw) legacyToken(t *testing.T, clientID, jti string) string {
	t.Helper()
	now := time.Now()
	raw, err := g.ring.Mint(&token.Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Subject: "alice", Audience: jwt.ClaimStrings{g.resource("alpha")}, ID: jti,
			IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour)),
		},
		ClientID: clientID, Scope: "mcp",
	})
	if err != nil {
		t.Fatal(err)
	}
	g.secret(raw)
	return raw
}

// TestFamilyRevokeNewRefreshEndsFirstAccess: token → refresh → revoke the
// new refresh token (RFC 7009): the first access token is refused too.
// An access token minted before the fam claim existed keeps working until
// it expires (a rolling upgrade logs nobody out), unless it is the newest
// the family recorded.
func TestFamilyRevokeNewRefreshEndsFirstAccess(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			g := newGW(t, b, nil)
			id, a1, r1 := g.grant("alice", g.resource("alpha"))
			a2, r2 := g.refreshed(t, id, r1)
			f, err := g.st.LookupRefresh(context.Background(), token.Hash(r2))
			if err != nil {
				t.Fatal(err)
			}
			oldReplica := g.legacyToken(t, id, f.AccessJTI) // the newest, as a replica not yet upgraded minted it
			beforeUpgrade := g.legacyToken(t, id, token.Random(16))
			for _, a := range []string{a1, a2, oldReplica, beforeUpgrade} {
				g.checkAllowed(t, "alpha", "Bearer "+a, "alice")
			}

			if r := g.postForm("/oauth/revoke", form("token", r2, "client_id", id)); r.status != http.StatusOK {
				t.Fatalf("revoke: %d %s", r.status, r.body)
			}
			g.allDenied(t, id, []string{a1, a2, oldReplica}, []string{r1, r2})
			g.checkAllowed(t, "alpha", "Bearer "+beforeUpgrade, "alice")
			g.assertNoSecretsLogged(t)
		})
	}
}

// TestFamilyReuseKillsAttackersFirstAccess: an attacker who stole a refresh
// token rotates it twice; when the victim presents it again, reuse
// detection ends every access token of the family, the attacker's first
// one included.
func TestFamilyReuseKillsAttackersFirstAccess(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			g := newGW(t, b, nil)
			id, victim, stolen := g.grant("alice", g.resource("alpha"))
			attacker1, rt := g.refreshed(t, id, stolen)
			attacker2, rt2 := g.refreshed(t, id, rt)
			g.checkAllowed(t, "alpha", "Bearer "+attacker1, "alice")

			if r := g.refresh(id, stolen); r.status != http.StatusBadRequest || r.json(t)["error"] != "invalid_grant" {
				t.Fatalf("reuse: %d %s", r.status, r.body)
			}
			g.allDenied(t, id, []string{attacker1, attacker2, victim}, []string{rt, rt2})
			g.assertNoSecretsLogged(t)
		})
	}
}

// TestFamilyCodeReplayEndsEveryAccessToken: a replayed code revokes every
// access token issued from its first redemption, also after a refresh.
func TestFamilyCodeReplayEndsEveryAccessToken(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			g := newGW(t, b, nil)
			id, code, ver := codeFixture(g)
			a1, r1 := g.tokens(id, code, ver)
			a2, r2 := g.refreshed(t, id, r1)
			g.checkAllowed(t, "alpha", "Bearer "+a1, "alice")

			if r := g.exchange(id, code, ver, loopback); r.status != http.StatusBadRequest || r.json(t)["error"] != "invalid_grant" {
				t.Fatalf("replay: %d %s", r.status, r.body)
			}
			g.allDenied(t, id, []string{a1, a2}, []string{r2})
			g.assertNoSecretsLogged(t)
		})
	}
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// TestFamilyAccountRevokeEndsEveryAccessToken: "revoke" of a sign-in on
// /account ends its first access token as well as the newest.
func TestFamilyAccountRevokeEndsEveryAccessToken(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			g := newGW(t, b, nil)
			id, a1, r1 := g.grant("alice", g.resource("alpha"))
			a2, r2 := g.refreshed(t, id, r1)
			f, err := g.st.LookupRefresh(context.Background(), token.Hash(r2))
			if err != nil {
				t.Fatal(err)
			}

			br := g.browser()
			r := br.get("/account/login")
			if r.url.Path != "/login" {
				t.Fatalf("account login went to %v: %d", r.url, r.status)
			}
			r = br.login(r, "alice")
			m := csrfField.FindSubmatch(r.body)
			if r.status != http.StatusOK || r.url.Path != "/account" || m == nil || !strings.Contains(string(r.body), f.ID) {
				t.Fatalf("account page: %d at %v: %.400s", r.status, r.url, r.body)
			}
			r = br.postForm("/account/revoke", url.Values{"csrf": {string(m[1])}, "family": {f.ID}})
			if r.status != http.StatusOK || !strings.Contains(string(r.body), "The sign-in was revoked") {
				t.Fatalf("revoke on /account: %d %.400s", r.status, r.body)
			}
			g.allDenied(t, id, []string{a1, a2}, []string{r2})
			g.assertNoSecretsLogged(t)
		})
	}
}

// TestCodeBurnAttempts: redemptions by another client, with a wrong
// verifier, redirect URI or resource are refused without consuming the
// code: the real client then gets its tokens. A replay bound as the code
// is still counts as one and revokes them.
func TestCodeBurnAttempts(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			g := newGW(t, b, nil)
			id, code, ver := codeFixture(g)
			other := g.register()
			redeem := func(client, verifier, redirect string, extra ...string) *reply {
				v := form(append([]string{"grant_type", "authorization_code", "client_id", client, "code", code,
					"redirect_uri", redirect, "code_verifier", verifier}, extra...)...)
				return g.postForm("/oauth/token", v)
			}
			g.begin()
			for name, r := range map[string]*reply{
				"another client":       redeem(other, ver, loopback),
				"wrong verifier":       redeem(id, token.Random(32), loopback),
				"challenge as verifer": redeem(id, s256(ver), loopback),
				"wrong redirect_uri":   redeem(id, ver, "http://127.0.0.1:9/other"),
				"wrong resource":       redeem(id, ver, loopback, "resource", g.resource("gamma")),
			} {
				want := "invalid_grant"
				if name == "wrong resource" {
					want = "invalid_target"
				}
				if r.status != http.StatusBadRequest || r.json(t)["error"] != want {
					t.Errorf("%s: %d %s, want 400 %s", name, r.status, r.body, want)
				}
			}
			if w := g.end(); len(w) != 0 {
				t.Errorf("store writes during the attempts: %v, want none", w)
			}

			access, refresh := g.tokens(id, code, ver)
			g.checkAllowed(t, "alpha", "Bearer "+access, "alice")
			// A misbound replay is no replay: the tokens live on.
			if r := redeem(other, ver, loopback); r.status != http.StatusBadRequest {
				t.Fatalf("misbound replay: %d %s", r.status, r.body)
			}
			g.checkAllowed(t, "alpha", "Bearer "+access, "alice")
			// A replay bound as the code is still revokes what it issued.
			if r := redeem(id, ver, loopback); r.status != http.StatusBadRequest || r.json(t)["error"] != "invalid_grant" {
				t.Fatalf("replay: %d %s", r.status, r.body)
			}
			g.allDenied(t, id, []string{access}, []string{refresh})
			g.assertNoSecretsLogged(t)
		})
	}
}

// TestCodeParallelRedemption: the client's own redemptions race each other
// and attempts with a wrong verifier race them. Exactly one redemption gets
// tokens, and those are revoked: every correctly bound replay revokes what
// the code issued, whichever came first (see oauthsrv codeReplay).
func TestCodeParallelRedemption(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			g := newGW(t, b, nil)
			id, code, ver := codeFixture(g)
			const n = 6
			type result struct {
				status int
				body   map[string]any
				bound  bool
			}
			results := make([]result, 2*n)
			start := make(chan struct{})
			var wg sync.WaitGroup
			for i := range results {
				verifier := ver
				if i%2 == 1 {
					verifier = token.Random(32)
				}
				wg.Go(func() {
					<-start
					v := form("grant_type", "authorization_code", "client_id", id, "code", code, "redirect_uri", loopback, "code_verifier", verifier)
					req, _ := http.NewRequest(http.MethodPost, g.url+"/oauth/token", strings.NewReader(v.Encode()))
					req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
					resp, err := g.client.Do(req)
					if err != nil {
						t.Error(err)
						return
					}
					defer resp.Body.Close()
					var m map[string]any
					if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
						t.Errorf("status %d: not JSON: %v", resp.StatusCode, err)
					}
					results[i] = result{resp.StatusCode, m, verifier == ver}
				})
			}
			close(start)
			wg.Wait()
			var winners []result
			for _, r := range results {
				switch {
				case r.status == http.StatusOK && r.bound:
					winners = append(winners, r)
				case r.status == http.StatusOK:
					t.Error("a redemption with a wrong verifier got tokens")
				case r.status != http.StatusBadRequest || r.body["error"] != "invalid_grant":
					t.Errorf("loser: %d %v, want 400 invalid_grant", r.status, r.body)
				}
			}
			if len(winners) != 1 {
				t.Fatalf("%d redemptions got tokens, want 1", len(winners))
			}
			access, _ := winners[0].body["access_token"].(string)
			refresh, _ := winners[0].body["refresh_token"].(string)
			g.secret(access, refresh)
			g.allDenied(t, id, []string{access}, []string{refresh})
			g.assertNoSecretsLogged(t)
		})
	}
}
