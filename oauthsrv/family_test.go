package oauthsrv

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpgateway/mcp-gateway/config"
	"github.com/mcpgateway/mcp-gateway/store"
	"github.com/mcpgateway/mcp-gateway/token"
)

// gatedStore holds the first CreateFamily until release is closed, so a
// test can land a replay while the first redemption is still issuing.
type gatedStore struct {
	store.Store
	once             sync.Once
	entered, release chan struct{}
}

func (g *gatedStore) CreateFamily(ctx context.Context, f *store.RefreshFamily, ttl time.Duration) error {
	first := false
	g.once.Do(func() { first = true })
	if first {
		close(g.entered)
		<-g.release
	}
	return g.Store.CreateFamily(ctx, f, ttl)
}

// TestCodeReplayOvertakesRedemption: a replay bound as the code is, landing
// after the first redemption took the code but before it stored the
// family, still revokes what that redemption issues: the family is created
// revoked and the denial outlives its access token.
func TestCodeReplayOvertakesRedemption(t *testing.T) {
	gs := &gatedStore{entered: make(chan struct{}), release: make(chan struct{})}
	e := newEnv(t, func(_ *config.Config, o *Options) {
		gs.Store = o.Store.(store.Store)
		o.Store = gs
	})
	ctx := t.Context()
	client := e.register("CLI")
	code, verifier := e.browser().authorizeCode(client, "alice", "")

	type answer struct {
		status int
		body   map[string]any
	}
	first := make(chan answer, 1)
	go func() {
		v := url.Values{"grant_type": {"authorization_code"}, "client_id": {client}, "code": {code},
			"redirect_uri": {loopbackRedirect}, "code_verifier": {verifier}}
		resp, err := plain.Post(e.url+"/oauth/token", "application/x-www-form-urlencoded", strings.NewReader(v.Encode()))
		if err != nil {
			t.Error(err)
			first <- answer{}
			return
		}
		defer resp.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		first <- answer{resp.StatusCode, m}
	}()
	<-gs.entered
	expectOAuthError(t, e.exchange(client, code, verifier), http.StatusBadRequest, "invalid_grant")
	close(gs.release)
	won := <-first
	if won.status != http.StatusOK {
		t.Fatalf("first redemption: %d %v", won.status, won.body)
	}
	access, _ := won.body["access_token"].(string)
	rt, _ := won.body["refresh_token"].(string)

	c := e.verify(access)
	if c.Family == "" {
		t.Fatal("the access token names no family")
	}
	expectOAuthError(t, e.refresh(client, rt, nil), http.StatusBadRequest, "invalid_grant")
	if fams, err := e.st.ListFamilies(ctx, "alice"); err != nil || len(fams) != 0 {
		t.Fatalf("live families after the replay: %+v %v", fams, err)
	}
	denied, err := e.st.RevokedJTIs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	until, ok := denied[store.RevokedFamilyJTI(c.Family)]
	if !ok || until.Before(c.ExpiresAt.Add(token.Leeway)) {
		t.Fatalf("family denied until %v (%v), want ≥ %v", until, ok, c.ExpiresAt.Add(token.Leeway))
	}
	if ev := e.auditEvents("code_replay"); len(ev) != 1 {
		t.Fatalf("code_replay audit events: %v", ev)
	}
}

// TestRevokedFamilyEntryLifetime: revoking a grant denylists its family
// until the newest access token issued from it could expire (its exp plus
// the verifiers' leeway), and every token minted from the family names it.
func TestRevokedFamilyEntryLifetime(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	client := e.register("CLI")
	code, verifier := e.browser().authorizeCode(client, "alice", "")
	tok := e.tokens(client, code, verifier)
	first := e.verify(tok["access_token"].(string))
	e.clock.Advance(2 * time.Second) // the newest token expires later
	resp := e.refresh(client, tok["refresh_token"].(string), nil)
	next := readJSON(t, resp)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("refresh: %d %v", resp.StatusCode, next)
	}
	newest := e.verify(next["access_token"].(string))
	if first.Family == "" || newest.Family != first.Family {
		t.Fatalf("families %q and %q, want one", first.Family, newest.Family)
	}
	if !newest.ExpiresAt.After(first.ExpiresAt.Time) {
		t.Fatalf("newest token expires %v, not after the first's %v", newest.ExpiresAt, first.ExpiresAt)
	}

	if resp := e.postForm("/oauth/revoke", url.Values{"token": {tok["refresh_token"].(string)}, "client_id": {client}}); resp.StatusCode != http.StatusOK {
		t.Fatalf("revoke: %d", resp.StatusCode)
	}
	denied, err := e.st.RevokedJTIs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := newest.ExpiresAt.Add(token.Leeway)
	if got := denied[store.RevokedFamilyJTI(first.Family)]; !got.Equal(want) {
		t.Fatalf("family denied until %v, want %v (newest exp + leeway)", got, want)
	}
	// The newest token's jti too, for a replica not yet minting the claim.
	if got := denied[newest.ID]; !got.Equal(want) {
		t.Fatalf("newest jti denied until %v, want %v", got, want)
	}
	expectOAuthError(t, e.refresh(client, next["refresh_token"].(string), nil), http.StatusBadRequest, "invalid_grant")
}
