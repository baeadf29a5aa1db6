// Package storetest is the contract suite every store.Store backend must
// pass. Backends call Run (or RunBackend for clock and replica hooks) from
// their own _test.go files.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpgateway/mcp-gateway/store"
)

// Backend is one fresh store under test plus the hooks that keep the
// expiry and cross-replica tests honest on every backend.
type Backend struct {
	Store store.Store
	// Now is the backend's clock, used to build ExpiresAt values
	// (nil: time.Now).
	Now func() time.Time
	// Advance moves the backend's clock forward (a fake clock, miniredis
	// FastForward). nil: the suite sleeps through short TTLs instead.
	Advance func(d time.Duration)
	// Peer opens a second Store on the same shared state, as another
	// replica would (nil: the suite subscribes twice on Store).
	Peer func(t *testing.T) store.Store
}

// Run runs the suite with a fresh store per subtest, on real time.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	RunBackend(t, func(t *testing.T) Backend { return Backend{Store: newStore(t)} })
}

// RunBackend runs the suite; newBackend is called once per subtest and must
// register its own cleanup (t.Cleanup) for the store.
func RunBackend(t *testing.T, newBackend func(t *testing.T) Backend) {
	tests := []struct {
		name string
		fn   func(t *testing.T, h *harness)
	}{
		{"Clients", testClients},
		{"ClientExpiry", testClientExpiry},
		{"AuthRequests", testAuthRequests},
		{"Codes", testCodes},
		{"CodeRedeemConcurrent", testCodeRedeemConcurrent},
		{"Families", testFamilies},
		{"Resends", testResends},
		{"RotateConcurrent", testRotateConcurrent},
		{"RotateNamedFamily", testRotateNamedFamily},
		{"FamilyDeniedBeforeCreate", testFamilyDeniedBeforeCreate},
		{"Consents", testConsents},
		{"Sessions", testSessions},
		{"Revocations", testRevocations},
		{"Keys", testKeys},
		{"Agents", testAgents},
		{"AgentUpstreamAuth", testAgentUpstreamAuth},
		{"RateLimit", testRateLimit},
		{"Markers", testMarkers},
		{"Preconditions", testPreconditions},
		{"AgentCopies", testAgentCopies},
		{"Events", testEvents},
		{"Expiry", testExpiry},
		{"Ping", func(t *testing.T, h *harness) { must(t, h.s.Ping(h.ctx)) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := newBackend(t)
			h := &harness{Backend: b, s: b.Store, ctx: t.Context()}
			tc.fn(t, h)
		})
	}
}

type harness struct {
	Backend
	s   store.Store
	ctx context.Context
}

// now is the backend's time at second precision, so every backend stores
// it exactly.
func (h *harness) now() time.Time {
	if h.Now != nil {
		return h.Now().UTC().Truncate(time.Second)
	}
	return time.Now().UTC().Truncate(time.Second)
}

// ttl is the lifetime used by expiry tests: long on a fake clock, short
// (but not flaky-short) when the suite must really wait.
func (h *harness) ttl() time.Duration {
	if h.Advance != nil {
		return time.Minute
	}
	return 1500 * time.Millisecond
}

// pass moves time beyond ttl().
func (h *harness) pass() {
	if h.Advance != nil {
		h.Advance(h.ttl() + time.Second)
		return
	}
	time.Sleep(h.ttl() + 600*time.Millisecond)
}

// ---- helpers ----

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
}

func wantErr(t *testing.T, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("error = %v, want %v", err, want)
	}
}

// sameJSON compares records by their JSON form (times by value, not by
// monotonic reading or location pointer).
func sameJSON(t *testing.T, what string, got, want any) {
	t.Helper()
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(want)
	if string(g) != string(w) {
		t.Fatalf("%s:\n got %s\nwant %s", what, g, w)
	}
}

var seq atomic.Int64

// id returns a value unique within the test binary.
func id(prefix string) string {
	return fmt.Sprintf("%s-%d-%d", prefix, time.Now().UnixNano(), seq.Add(1))
}

// ---- clients ----

func testClients(t *testing.T, h *harness) {
	s, ctx := h.s, h.ctx
	c := &store.Client{
		ID: id("client"), Name: "Inspector", RedirectURIs: []string{"http://127.0.0.1/cb", "cursor://cb"},
		GrantTypes: []string{"authorization_code", "refresh_token"}, ResponseTypes: []string{"code"},
		Scope: "mcp", RegisteredIP: "10.0.0.1", CreatedAt: h.now(),
	}
	want := *c
	want.RedirectURIs = slices.Clone(c.RedirectURIs)
	must(t, s.CreateClient(ctx, c))
	c.RedirectURIs[0] = "https://evil.example/cb" // the caller's copy must not be stored
	c.Name = "changed"

	got, err := s.GetClient(ctx, want.ID)
	must(t, err)
	sameJSON(t, "GetClient", got, &want)
	got.RedirectURIs[1] = "mutated"
	got.GrantTypes = append(got.GrantTypes[:0], "mutated")
	again, err := s.GetClient(ctx, want.ID)
	must(t, err)
	sameJSON(t, "GetClient after mutating a returned record", again, &want)

	wantErr(t, s.CreateClient(ctx, &store.Client{ID: want.ID}), store.ErrConflict)
	_, err = s.GetClient(ctx, "no-such-client")
	wantErr(t, err, store.ErrNotFound)

	second := &store.Client{ID: id("client"), RedirectURIs: []string{"https://a.example/cb"}, CreatedAt: h.now()}
	must(t, s.CreateClient(ctx, second))
	list, err := s.ListClients(ctx)
	must(t, err)
	if len(list) != 2 {
		t.Fatalf("ListClients = %d clients, want 2", len(list))
	}
	ids := []string{list[0].ID, list[1].ID}
	if !slices.Contains(ids, want.ID) || !slices.Contains(ids, second.ID) {
		t.Fatalf("ListClients ids = %v", ids)
	}

	must(t, s.DeleteClient(ctx, want.ID))
	_, err = s.GetClient(ctx, want.ID)
	wantErr(t, err, store.ErrNotFound)
	wantErr(t, s.DeleteClient(ctx, want.ID), store.ErrNotFound)
	list, err = s.ListClients(ctx)
	must(t, err)
	if len(list) != 1 || list[0].ID != second.ID {
		t.Fatalf("ListClients after delete = %v", list)
	}
}

// testClientExpiry: idle expiry (ExpiresAt as TTL), renewal by
// TouchClient, and the per-IP count of live clients.
func testClientExpiry(t *testing.T, h *harness) {
	s, ctx := h.s, h.ctx
	now, ttl := h.now(), h.ttl()
	if h.Now == nil {
		now = time.Now().UTC()
	}
	ip, other := id("10.1"), id("10.2")
	mk := func(name, ip string, exp time.Time) *store.Client {
		c := &store.Client{ID: id(name), RedirectURIs: []string{"http://127.0.0.1/cb"}, RegisteredIP: ip, CreatedAt: h.now(), ExpiresAt: exp}
		must(t, s.CreateClient(ctx, c))
		return c
	}
	touched := mk("touched", ip, now.Add(ttl))
	idle := mk("idle", ip, now.Add(ttl))
	forever := mk("forever", ip, time.Time{})
	elsewhere := mk("elsewhere", other, now.Add(ttl))

	if err := s.CreateClient(ctx, &store.Client{ID: id("past"), ExpiresAt: now.Add(-time.Minute)}); err == nil || errors.Is(err, store.ErrConflict) {
		t.Fatalf("CreateClient with ExpiresAt in the past = %v, want a plain error", err)
	}
	got, err := s.GetClient(ctx, touched.ID)
	must(t, err)
	if got.ExpiresAt.IsZero() || got.ExpiresAt.After(now.Add(ttl+time.Second)) || !got.ExpiresAt.After(now.Add(-time.Second)) {
		t.Fatalf("ExpiresAt = %v, want about %v", got.ExpiresAt, now.Add(ttl))
	}
	first := got.ExpiresAt
	if got, err := s.GetClient(ctx, forever.ID); err != nil || !got.ExpiresAt.IsZero() {
		t.Fatalf("permanent client: %+v, %v", got, err)
	}
	count := func(ip string, want int) {
		t.Helper()
		n, err := s.CountClientsByIP(ctx, ip)
		must(t, err)
		if n != want {
			t.Fatalf("CountClientsByIP(%s) = %d, want %d", ip, n, want)
		}
	}
	count(ip, 3)
	count(other, 1)
	count(id("10.3"), 0)

	// Renewal: the touched client now ends 3×ttl from now; the permanent
	// client stays permanent.
	must(t, s.TouchClient(ctx, touched.ID, 3*ttl))
	must(t, s.TouchClient(ctx, forever.ID, 3*ttl))
	got, err = s.GetClient(ctx, touched.ID)
	must(t, err)
	if !got.ExpiresAt.After(first) {
		t.Fatalf("ExpiresAt after touch = %v, want later than %v", got.ExpiresAt, first)
	}
	if got, err := s.GetClient(ctx, forever.ID); err != nil || !got.ExpiresAt.IsZero() {
		t.Fatalf("touched permanent client: %+v, %v", got, err)
	}
	list, err := s.ListClients(ctx)
	must(t, err)
	for _, c := range list {
		if c.ID == touched.ID && !c.ExpiresAt.After(first) {
			t.Fatalf("ListClients ExpiresAt = %v, want the renewed one", c.ExpiresAt)
		}
	}
	wantErr(t, s.TouchClient(ctx, id("nobody"), ttl), store.ErrNotFound)

	h.pass()

	for _, c := range []*store.Client{idle, elsewhere} {
		_, err = s.GetClient(ctx, c.ID)
		wantErr(t, err, store.ErrNotFound)
		wantErr(t, s.TouchClient(ctx, c.ID, ttl), store.ErrNotFound)
	}
	for _, c := range []*store.Client{touched, forever} {
		_, err = s.GetClient(ctx, c.ID)
		must(t, err)
	}
	list, err = s.ListClients(ctx)
	must(t, err)
	if len(list) != 2 {
		t.Fatalf("ListClients after idle expiry = %d clients, want 2", len(list))
	}
	count(ip, 2)
	count(other, 0)
	// An expired id can be registered again.
	again := &store.Client{ID: idle.ID, RegisteredIP: ip, ExpiresAt: h.now().Add(time.Hour)}
	if h.Now == nil {
		again.ExpiresAt = time.Now().Add(time.Hour)
	}
	must(t, s.CreateClient(ctx, again))
	count(ip, 3)
	must(t, s.DeleteClient(ctx, touched.ID))
	count(ip, 2)
}

// ---- pending authorization requests ----

func testAuthRequests(t *testing.T, h *harness) {
	s, ctx := h.s, h.ctx
	now := h.now()
	r := &store.AuthRequest{
		ID: id("req"), ClientID: "c1", RedirectURI: "http://127.0.0.1/cb", State: "xyz", Scope: "mcp",
		Resource: "http://gw/a/mcp", CodeChallenge: "ch", CSRF: "csrf", CreatedAt: now, ExpiresAt: now.Add(10 * time.Minute),
		Groups: []string{"eng"},
	}
	want := *r
	must(t, s.PutAuthRequest(ctx, r, 10*time.Minute))
	r.State = "mutated"

	got, err := s.GetAuthRequest(ctx, want.ID)
	must(t, err)
	sameJSON(t, "GetAuthRequest", got, &want)
	got.UserID = "mallory"

	// Put replaces (the login step records the user; an upstream login
	// its state).
	want.UserID = "alice"
	want.LoginStateHash, want.LoginNonce, want.LoginVerifier = "state-hash", "nonce", "verifier"
	must(t, s.PutAuthRequest(ctx, &want, 10*time.Minute))
	took, err := s.TakeAuthRequest(ctx, want.ID)
	must(t, err)
	sameJSON(t, "TakeAuthRequest", took, &want)

	_, err = s.TakeAuthRequest(ctx, want.ID)
	wantErr(t, err, store.ErrNotFound)
	_, err = s.GetAuthRequest(ctx, want.ID)
	wantErr(t, err, store.ErrNotFound)
	_, err = s.GetAuthRequest(ctx, "no-such-request")
	wantErr(t, err, store.ErrNotFound)

	// Concurrent takes: a pending request yields at most one code.
	must(t, s.PutAuthRequest(ctx, &want, time.Minute))
	var wins atomic.Int32
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			_, err := s.TakeAuthRequest(ctx, want.ID)
			switch {
			case err == nil:
				wins.Add(1)
			case !errors.Is(err, store.ErrNotFound):
				t.Errorf("TakeAuthRequest: %v", err)
			}
		})
	}
	wg.Wait()
	if n := wins.Load(); n != 1 {
		t.Fatalf("%d concurrent takes succeeded, want 1", n)
	}
}

// ---- authorization codes ----

func newCode(h *harness) *store.AuthCode {
	now := h.now()
	return &store.AuthCode{
		Hash: id("codehash"), ClientID: "c1", UserID: "alice", RedirectURI: "http://127.0.0.1/cb", Scope: "mcp",
		Resource: "http://gw/a/mcp", CodeChallenge: "ch", FamilyID: id("fam"), AuthTime: now, ExpiresAt: now.Add(2 * time.Minute),
		Groups: []string{"eng", "ops"}, // must survive the round trip (token groups claim)
	}
}

// bound is the binding a redemption by c's own client presents.
func bound(c *store.AuthCode) store.CodeBinding {
	return store.CodeBinding{ClientID: c.ClientID, RedirectURI: c.RedirectURI, CodeChallenge: c.CodeChallenge}
}

// misbound are redemptions of c that differ from its binding in one field.
func misbound(c *store.AuthCode) map[string]store.CodeBinding {
	out := map[string]store.CodeBinding{}
	for name, edit := range map[string]func(b *store.CodeBinding){
		"client":       func(b *store.CodeBinding) { b.ClientID = "other-client" },
		"redirect_uri": func(b *store.CodeBinding) { b.RedirectURI = c.RedirectURI + "x" },
		"challenge":    func(b *store.CodeBinding) { b.CodeChallenge = "other-challenge" },
		"resource":     func(b *store.CodeBinding) { b.Resource = "http://gw/b/mcp" },
		"empty client": func(b *store.CodeBinding) { b.ClientID = "" },
	} {
		b := bound(c)
		edit(&b)
		out[name] = b
	}
	return out
}

func testCodes(t *testing.T, h *harness) {
	s, ctx := h.s, h.ctx
	c := newCode(h)
	want := *c
	must(t, s.PutCode(ctx, c))
	other := want
	other.FamilyID = id("fam")
	wantErr(t, s.PutCode(ctx, &other), store.ErrConflict)
	c.FamilyID = "mutated"

	// A redemption bound otherwise is refused and leaves the code in place.
	for name, b := range misbound(&want) {
		got, err := s.RedeemCode(ctx, want.Hash, b)
		wantErr(t, err, store.ErrCodeMismatch)
		if got == nil || got.ClientID != want.ClientID {
			t.Fatalf("%s: mismatched record = %+v", name, got)
		}
	}

	withResource := bound(&want)
	withResource.Resource = want.Resource
	got, err := s.RedeemCode(ctx, want.Hash, withResource)
	must(t, err)
	if got.Hash != want.Hash {
		t.Fatalf("redeemed Hash = %q, want %q", got.Hash, want.Hash)
	}
	sameJSON(t, "RedeemCode", got, &want)

	again, err := s.RedeemCode(ctx, want.Hash, bound(&want))
	wantErr(t, err, store.ErrCodeReused)
	if again == nil || again.FamilyID != want.FamilyID || again.UserID != want.UserID {
		t.Fatalf("reused code record = %+v, want family %q", again, want.FamilyID)
	}
	// Still reported as reused on later attempts.
	_, err = s.RedeemCode(ctx, want.Hash, bound(&want))
	wantErr(t, err, store.ErrCodeReused)
	// A replay bound otherwise is no replay by the code's client.
	for _, b := range misbound(&want) {
		_, err = s.RedeemCode(ctx, want.Hash, b)
		wantErr(t, err, store.ErrCodeMismatch)
	}
	// A used code's hash cannot be issued again.
	if err := s.PutCode(ctx, &want); err == nil {
		t.Fatal("PutCode of a used code hash succeeded")
	}

	_, err = s.RedeemCode(ctx, "no-such-code", bound(&want))
	wantErr(t, err, store.ErrNotFound)
}

// testCodeRedeemConcurrent: of parallel redemptions bound as the code is,
// exactly one wins and the others see a replay; those bound otherwise,
// racing them, never consume it nor count as a replay.
func testCodeRedeemConcurrent(t *testing.T, h *harness) {
	s, ctx := h.s, h.ctx
	c := newCode(h)
	must(t, s.PutCode(ctx, c))
	const n = 50
	var wins, reused, mismatched atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	wrong := misbound(c)["challenge"]
	for i := range 2 * n {
		b := bound(c)
		if i%2 == 1 {
			b = wrong
		}
		wg.Go(func() {
			<-start
			got, err := s.RedeemCode(ctx, c.Hash, b)
			switch {
			case err == nil && b == wrong:
				t.Error("a mismatched redemption won the code")
			case err == nil:
				wins.Add(1)
			case errors.Is(err, store.ErrCodeReused):
				if got == nil || got.FamilyID != c.FamilyID {
					t.Errorf("reused record = %+v, want family %q", got, c.FamilyID)
				}
				reused.Add(1)
			case errors.Is(err, store.ErrCodeMismatch):
				mismatched.Add(1)
			default:
				t.Errorf("RedeemCode: %v", err)
			}
		})
	}
	close(start)
	wg.Wait()
	if wins.Load() != 1 || reused.Load() != n-1 || mismatched.Load() != n {
		t.Fatalf("%d redemptions won, %d saw reuse, %d a mismatch; want 1, %d and %d", wins.Load(), reused.Load(), mismatched.Load(), n-1, n)
	}
}

// ---- refresh families ----

func newFamily(h *harness, user string) *store.RefreshFamily {
	now := h.now()
	fam := id("fam")
	return &store.RefreshFamily{
		ID: fam, ClientID: "c1", UserID: user, Scope: "mcp read", Resource: "http://gw/a/mcp",
		CurrentHash: tagged(fam, id("rt")), AccessJTI: id("jti"), AccessExp: now.Add(time.Hour),
		CreatedAt: now, ExpiresAt: now.Add(30 * 24 * time.Hour),
		Groups: []string{"eng", "ops"}, // refreshed tokens keep them: must survive create and rotate
	}
}

// tagged is the address of a refresh token minted for family (as
// token.Address gives it): a Redis Cluster keeps the token in the family's
// hash slot by that tag.
func tagged(family, hash string) string { return family + "." + hash }

func rotation(h *harness, old string) store.Rotation {
	now := h.now()
	return store.Rotation{
		OldHash: old, NewHash: tagged(strings.SplitN(old, ".", 2)[0], id("rt")), AccessJTI: id("jti"), AccessExp: now.Add(time.Hour),
		Now: now, Grace: 10 * time.Second, TokenTTL: 24 * time.Hour,
	}
}

// A rotation that names its family (as the token endpoint does after
// LookupRefresh) rotates it; one naming another family changes nothing.
func testRotateNamedFamily(t *testing.T, h *harness) {
	s, ctx := h.s, h.ctx
	f, other := newFamily(h, id("user")), newFamily(h, id("user"))
	must(t, s.CreateFamily(ctx, f, time.Hour))
	must(t, s.CreateFamily(ctx, other, time.Hour))
	wrong := rotation(h, f.CurrentHash)
	wrong.FamilyID = other.ID
	_, err := s.Rotate(ctx, wrong)
	wantErr(t, err, store.ErrNotFound)
	got, err := s.LookupRefresh(ctx, f.CurrentHash)
	must(t, err)
	if got.CurrentHash != f.CurrentHash || got.Revoked {
		t.Fatalf("a rotation naming another family changed this one: %+v", got)
	}
	right := rotation(h, f.CurrentHash)
	right.FamilyID = f.ID
	got, err = s.Rotate(ctx, right)
	must(t, err)
	if got.CurrentHash != right.NewHash {
		t.Fatalf("current = %q, want %q", got.CurrentHash, right.NewHash)
	}
}

func testFamilies(t *testing.T, h *harness) {
	s, ctx := h.s, h.ctx
	user := id("user")
	f := newFamily(h, user)
	want := *f
	must(t, s.CreateFamily(ctx, f, 24*time.Hour))
	f.Scope = "mutated"
	other := want
	other.Scope = "other"
	wantErr(t, s.CreateFamily(ctx, &other, time.Hour), store.ErrConflict)

	got, err := s.LookupRefresh(ctx, want.CurrentHash)
	must(t, err)
	sameJSON(t, "LookupRefresh", got, &want)
	got.Revoked = true // must not leak into the store
	_, err = s.LookupRefresh(ctx, "no-such-token")
	wantErr(t, err, store.ErrNotFound)

	// Rotate the first token: the family follows the new token.
	r1 := rotation(h, want.CurrentHash)
	rotated, err := s.Rotate(ctx, r1)
	must(t, err)
	want.CurrentHash, want.AccessJTI, want.AccessExp = r1.NewHash, r1.AccessJTI, r1.AccessExp
	sameJSON(t, "Rotate result", rotated, &want)
	got, err = s.LookupRefresh(ctx, r1.NewHash)
	must(t, err)
	sameJSON(t, "LookupRefresh(new token)", got, &want)
	// The rotated token still names its family (for revocation requests).
	got, err = s.LookupRefresh(ctx, r1.OldHash)
	must(t, err)
	if got.ID != want.ID {
		t.Fatalf("LookupRefresh(rotated) family = %q, want %q", got.ID, want.ID)
	}

	// Rotate again from the new token.
	r2 := rotation(h, r1.NewHash)
	_, err = s.Rotate(ctx, r2)
	must(t, err)

	// Within grace: a race, the family survives.
	race := rotation(h, r1.NewHash)
	race.Now = r2.Now.Add(race.Grace)
	_, err = s.Rotate(ctx, race)
	wantErr(t, err, store.ErrRefreshRace)
	if _, err := s.LookupRefresh(ctx, race.NewHash); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a refused rotation stored its new token: %v", err)
	}
	got, err = s.LookupRefresh(ctx, r2.NewHash)
	must(t, err)
	if got.Revoked || got.CurrentHash != r2.NewHash {
		t.Fatalf("family after race = %+v", got)
	}

	// An unknown token.
	_, err = s.Rotate(ctx, rotation(h, "no-such-token"))
	wantErr(t, err, store.ErrNotFound)

	// A second family of the same user and one of another user.
	f2 := newFamily(h, user)
	must(t, s.CreateFamily(ctx, f2, time.Hour))
	must(t, s.CreateFamily(ctx, newFamily(h, id("other")), time.Hour))
	list, err := s.ListFamilies(ctx, user)
	must(t, err)
	if len(list) != 2 || !slices.ContainsFunc(list, func(x *store.RefreshFamily) bool { return x.ID == want.ID }) ||
		!slices.ContainsFunc(list, func(x *store.RefreshFamily) bool { return x.ID == f2.ID }) {
		t.Fatalf("ListFamilies = %+v", list)
	}

	// Revoke: every token of the chain is dead.
	revoked, err := s.RevokeFamily(ctx, f2.ID)
	must(t, err)
	if !revoked.Revoked || revoked.ID != f2.ID {
		t.Fatalf("RevokeFamily = %+v", revoked)
	}
	_, err = s.Rotate(ctx, rotation(h, f2.CurrentHash))
	wantErr(t, err, store.ErrNotFound)
	got, err = s.LookupRefresh(ctx, f2.CurrentHash)
	must(t, err)
	if !got.Revoked {
		t.Fatal("LookupRefresh of a revoked family does not say Revoked")
	}
	list, err = s.ListFamilies(ctx, user)
	must(t, err)
	if len(list) != 1 || list[0].ID != want.ID {
		t.Fatalf("ListFamilies after revoke = %+v", list)
	}
	_, err = s.RevokeFamily(ctx, "no-such-family")
	wantErr(t, err, store.ErrNotFound)
	list, err = s.ListFamilies(ctx, id("nobody"))
	must(t, err)
	if len(list) != 0 {
		t.Fatalf("ListFamilies(nobody) = %+v", list)
	}

	// Reuse after grace revokes the family and hands it back.
	reuse := rotation(h, r1.OldHash)
	reuse.Now = r2.Now.Add(time.Minute)
	fam, err := s.Rotate(ctx, reuse)
	wantErr(t, err, store.ErrRefreshReused)
	if fam == nil || fam.ID != want.ID || !fam.Revoked || fam.AccessJTI != r2.AccessJTI {
		t.Fatalf("reused family = %+v, want revoked %q with jti %q", fam, want.ID, r2.AccessJTI)
	}
	_, err = s.Rotate(ctx, rotation(h, r2.NewHash))
	wantErr(t, err, store.ErrNotFound)
}

// testFamilyDeniedBeforeCreate: a family whose denylist entry exists (a
// replay of its code revoked it while the first redemption was still
// issuing) is created revoked: none of its refresh tokens ever works.
func testFamilyDeniedBeforeCreate(t *testing.T, h *harness) {
	s, ctx := h.s, h.ctx
	user := id("user")
	f := newFamily(h, user)
	entry := store.RevokedFamilyJTI(f.ID)
	must(t, s.RevokeJTI(ctx, entry, f.AccessExp))
	list, err := s.RevokedJTIs(ctx)
	must(t, err)
	if got, ok := store.RevokedFamily(entry); !ok || got != f.ID || !list[entry].Equal(f.AccessExp) {
		t.Fatalf("RevokedJTIs = %v, want %s until %v", list, entry, f.AccessExp)
	}

	wantErr(t, s.CreateFamily(ctx, f, time.Hour), store.ErrFamilyRevoked)
	got, err := s.LookupRefresh(ctx, f.CurrentHash)
	must(t, err)
	if !got.Revoked || got.AccessJTI != f.AccessJTI || !got.AccessExp.Equal(f.AccessExp) {
		t.Fatalf("family created after its denial = %+v, want revoked with its access token", got)
	}
	_, err = s.Rotate(ctx, rotation(h, f.CurrentHash))
	wantErr(t, err, store.ErrNotFound)
	fams, err := s.ListFamilies(ctx, user)
	must(t, err)
	if len(fams) != 0 {
		t.Fatalf("ListFamilies = %+v, want none", fams)
	}
	// Another family of the user is untouched by the entry.
	other := newFamily(h, user)
	must(t, s.CreateFamily(ctx, other, time.Hour))
	_, err = s.Rotate(ctx, rotation(h, other.CurrentHash))
	must(t, err)
}

func testRotateConcurrent(t *testing.T, h *harness) {
	s, ctx := h.s, h.ctx
	f := newFamily(h, id("user"))
	must(t, s.CreateFamily(ctx, f, time.Hour))

	const n = 50
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		winner *store.Rotation
		races  int
	)
	start := make(chan struct{})
	for range n {
		r := rotation(h, f.CurrentHash)
		wg.Go(func() {
			<-start
			got, err := s.Rotate(ctx, r)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				if winner != nil {
					t.Errorf("two rotations won")
				}
				winner = &r
				if got.CurrentHash != r.NewHash {
					t.Errorf("winner's family current = %q, want %q", got.CurrentHash, r.NewHash)
				}
			case errors.Is(err, store.ErrRefreshRace):
				races++
			default:
				t.Errorf("Rotate: %v", err)
			}
		})
	}
	close(start)
	wg.Wait()
	if winner == nil || races != n-1 {
		t.Fatalf("winner %v, %d races; want one winner and %d races", winner != nil, races, n-1)
	}
	fam, err := s.LookupRefresh(ctx, winner.NewHash)
	must(t, err)
	if fam.Revoked || fam.CurrentHash != winner.NewHash || fam.AccessJTI != winner.AccessJTI {
		t.Fatalf("family after concurrent rotation = %+v", fam)
	}

	// The loser presenting the old token after grace: reuse, family revoked,
	// and the winner's token stops working.
	reuse := rotation(h, f.CurrentHash)
	reuse.Now = winner.Now.Add(winner.Grace + time.Second)
	fam, err = s.Rotate(ctx, reuse)
	wantErr(t, err, store.ErrRefreshReused)
	if fam == nil || !fam.Revoked || fam.ID != f.ID {
		t.Fatalf("reused family = %+v", fam)
	}
	_, err = s.Rotate(ctx, rotation(h, winner.NewHash))
	wantErr(t, err, store.ErrNotFound)
}

// ---- consents ----

func testConsents(t *testing.T, h *harness) {
	s, ctx := h.s, h.ctx
	user, other := id("user:with:colons"), id("other")
	const cb, cb2 = "https://app.example/cb", "https://app.example/cb2"
	must(t, s.SaveConsent(ctx, &store.Consent{UserID: user, ClientID: "c1", RedirectURI: cb, Scope: "read mcp", Resource: "http://gw/a/mcp", CreatedAt: h.now()}))
	must(t, s.SaveConsent(ctx, &store.Consent{UserID: user, ClientID: "https://app.example/client.json", RedirectURI: cb, Scope: "mcp", Resource: "http://gw", CreatedAt: h.now()}))
	must(t, s.SaveConsent(ctx, &store.Consent{UserID: other, ClientID: "c1", RedirectURI: cb, Scope: "mcp", Resource: "http://gw/a/mcp", CreatedAt: h.now()}))
	// The key holds the redirect URI, the resource and the scopes: these
	// are records of their own, not overwrites.
	must(t, s.SaveConsent(ctx, &store.Consent{UserID: user, ClientID: "c1", RedirectURI: cb2, Scope: "write", Resource: "http://gw/a/mcp", CreatedAt: h.now()}))
	must(t, s.SaveConsent(ctx, &store.Consent{UserID: user, ClientID: "c1", RedirectURI: cb, Scope: "admin", Resource: "http://gw/a/mcp", CreatedAt: h.now()}))
	for _, bad := range []*store.Consent{
		{UserID: user, ClientID: "c1", Scope: "mcp", Resource: "http://gw"}, // no redirect URI
		{UserID: "", ClientID: "c1", RedirectURI: cb, Scope: "mcp"},         // no user
		{UserID: user, ClientID: "", RedirectURI: cb, Scope: "mcp"},         // no client
		nil,
	} {
		if err := s.SaveConsent(ctx, bad); err == nil {
			t.Errorf("SaveConsent(%+v) accepted an incomplete consent", bad)
		}
	}

	cases := []struct {
		user, client, redirect, scope, resource string
		want                                    bool
	}{
		{user, "c1", cb, "mcp read", "http://gw/a/mcp", true},
		{user, "c1", cb, "mcp", "http://gw/a/mcp", true}, // a subset of the granted scopes
		{user, "c1", cb, "", "http://gw/a/mcp", true},    // no scope requested
		{user, "c1", cb, "admin", "http://gw/a/mcp", true},
		{user, "c1", cb, "mcp write", "http://gw/a/mcp", false}, // more than one record granted
		{user, "c1", cb, "mcp admin", "http://gw/a/mcp", false}, // two records do not add up
		{user, "c1", cb2, "write", "http://gw/a/mcp", true},     // approved at cb2
		{user, "c1", cb2, "mcp", "http://gw/a/mcp", false},      // approved at cb, not at cb2
		{user, "c1", cb + "/", "mcp", "http://gw/a/mcp", false}, // redirect URIs compare byte for byte
		{user, "c1", "HTTPS://app.example/cb", "mcp", "http://gw/a/mcp", false},
		{user, "c1", "", "mcp", "http://gw/a/mcp", false}, // no redirect URI matches nothing
		{user, "c1", cb, "mcp", "http://gw/b/mcp", false}, // another resource
		{user, "c2", cb, "mcp", "http://gw/a/mcp", false}, // another client
		{user, "https://app.example/client.json", cb, "mcp", "http://gw", true},
		{other, "c1", cb, "read", "http://gw/a/mcp", false},
		{id("nobody"), "c1", cb, "mcp", "http://gw/a/mcp", false},
	}
	for _, c := range cases {
		got, err := s.HasConsent(ctx, &store.Consent{UserID: c.user, ClientID: c.client, RedirectURI: c.redirect, Scope: c.scope, Resource: c.resource})
		must(t, err)
		if got != c.want {
			t.Errorf("HasConsent(%q, %q, %q, %q, %q) = %v, want %v", c.user, c.client, c.redirect, c.scope, c.resource, got, c.want)
		}
	}

	list, err := s.ListConsents(ctx, user)
	must(t, err)
	if len(list) != 4 {
		t.Fatalf("ListConsents = %+v, want 4", list)
	}
	for _, c := range list {
		if c.UserID != user || c.RedirectURI == "" {
			t.Fatalf("ListConsents returned %+v", c)
		}
	}
	if l := list[0]; l.ClientID != "c1" || l.RedirectURI != cb || l.Scope != "admin" {
		t.Fatalf("ListConsents not sorted by client, redirect URI, resource, scope: %+v", list)
	}

	must(t, s.DeleteConsents(ctx, user, "c1"))
	if ok, _ := s.HasConsent(ctx, &store.Consent{UserID: user, ClientID: "c1", RedirectURI: cb, Scope: "mcp", Resource: "http://gw/a/mcp"}); ok {
		t.Fatal("consent survived DeleteConsents")
	}
	if ok, _ := s.HasConsent(ctx, &store.Consent{UserID: other, ClientID: "c1", RedirectURI: cb, Scope: "mcp", Resource: "http://gw/a/mcp"}); !ok {
		t.Fatal("DeleteConsents removed another user's consent")
	}
	list, err = s.ListConsents(ctx, user)
	must(t, err)
	if len(list) != 1 || list[0].ClientID != "https://app.example/client.json" {
		t.Fatalf("ListConsents after delete = %+v", list)
	}
	// An empty client forgets all of the user's consents.
	must(t, s.DeleteConsents(ctx, user, ""))
	list, err = s.ListConsents(ctx, user)
	must(t, err)
	if len(list) != 0 {
		t.Fatalf("ListConsents after deleting all = %+v", list)
	}
	must(t, s.DeleteConsents(ctx, id("nobody"), "c1"))
}

// ---- sessions ----

func testSessions(t *testing.T, h *harness) {
	s, ctx := h.s, h.ctx
	now := h.now()
	hash := id("sess")
	sess := &store.Session{UserID: "alice", Groups: []string{"eng", "ops"}, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	want := *sess
	must(t, s.PutSession(ctx, hash, sess))
	sess.UserID = "mallory"
	got, err := s.GetSession(ctx, hash)
	must(t, err)
	sameJSON(t, "GetSession", got, &want)
	got.UserID = "mallory"
	got, err = s.GetSession(ctx, hash)
	must(t, err)
	sameJSON(t, "GetSession after mutation", got, &want)

	must(t, s.DeleteSession(ctx, hash))
	_, err = s.GetSession(ctx, hash)
	wantErr(t, err, store.ErrNotFound)
	must(t, s.DeleteSession(ctx, hash)) // idempotent
}

// ---- revocations ----

func testRevocations(t *testing.T, h *harness) {
	s, ctx := h.s, h.ctx
	now := h.now()
	a, b, past := id("jti"), id("jti"), id("jti")
	must(t, s.RevokeJTI(ctx, a, now.Add(time.Hour)))
	must(t, s.RevokeJTI(ctx, b, now.Add(2*time.Hour)))
	must(t, s.RevokeJTI(ctx, past, now.Add(-time.Minute))) // already expired: nothing to deny

	for jti, want := range map[string]bool{a: true, b: true, past: false, "unknown": false} {
		got, err := s.IsRevoked(ctx, jti)
		must(t, err)
		if got != want {
			t.Errorf("IsRevoked(%s) = %v, want %v", jti, got, want)
		}
	}
	list, err := s.RevokedJTIs(ctx)
	must(t, err)
	if len(list) != 2 || !list[a].Equal(now.Add(time.Hour)) || !list[b].Equal(now.Add(2*time.Hour)) {
		t.Fatalf("RevokedJTIs = %v", list)
	}
}

// ---- API keys ----

func testKeys(t *testing.T, h *harness) {
	s, ctx := h.s, h.ctx
	now := h.now()
	k := &store.APIKey{ID: id("key"), Hash: id("keyhash"), Kind: store.KeyAgent, Agent: "a", User: "alice",
		Name: "ci", Scopes: []string{"mcp"}, CreatedAt: now}
	want := *k
	want.Scopes = slices.Clone(k.Scopes)
	must(t, s.CreateKey(ctx, k))
	k.Scopes[0] = "mutated"
	wantErr(t, s.CreateKey(ctx, &store.APIKey{ID: want.ID, Hash: id("other"), Kind: store.KeyUser}), store.ErrConflict)
	wantErr(t, s.CreateKey(ctx, &store.APIKey{ID: id("key"), Hash: want.Hash, Kind: store.KeyUser}), store.ErrConflict)

	got, err := s.GetKeyByHash(ctx, want.Hash)
	must(t, err)
	if got.Hash != want.Hash {
		t.Fatalf("GetKeyByHash Hash = %q", got.Hash)
	}
	sameJSON(t, "GetKeyByHash", got, &want)
	got.Scopes[0] = "mutated"
	got.Revoked = true
	got, err = s.GetKeyByHash(ctx, want.Hash)
	must(t, err)
	sameJSON(t, "GetKeyByHash after mutation", got, &want)
	_, err = s.GetKeyByHash(ctx, "no-such-hash")
	wantErr(t, err, store.ErrNotFound)

	u := &store.APIKey{ID: id("key"), Hash: id("keyhash"), Kind: store.KeyUser, User: "bob", CreatedAt: now.Add(time.Second)}
	must(t, s.CreateKey(ctx, u))
	list, err := s.ListKeys(ctx)
	must(t, err)
	if len(list) != 2 || list[0].ID != want.ID || list[1].ID != u.ID || list[0].Hash != want.Hash {
		t.Fatalf("ListKeys = %+v", list)
	}

	// TouchKeys raises LastUsed, ignores older times and unknown hashes.
	t1, t0 := now.Add(time.Minute), now.Add(30*time.Second)
	must(t, s.TouchKeys(ctx, map[string]time.Time{want.Hash: t1, "unknown-hash": t1}))
	must(t, s.TouchKeys(ctx, map[string]time.Time{want.Hash: t0, u.Hash: t0}))
	got, err = s.GetKeyByHash(ctx, want.Hash)
	must(t, err)
	if !got.LastUsed.Equal(t1) {
		t.Fatalf("LastUsed = %v, want %v", got.LastUsed, t1)
	}
	got, err = s.GetKeyByHash(ctx, u.Hash)
	must(t, err)
	if !got.LastUsed.Equal(t0) {
		t.Fatalf("LastUsed = %v, want %v", got.LastUsed, t0)
	}
	_, err = s.GetKeyByHash(ctx, "unknown-hash")
	wantErr(t, err, store.ErrNotFound)
	must(t, s.TouchKeys(ctx, nil))

	rev, err := s.RevokeKey(ctx, want.ID)
	must(t, err)
	if !rev.Revoked || rev.Hash != want.Hash {
		t.Fatalf("RevokeKey = %+v", rev)
	}
	got, err = s.GetKeyByHash(ctx, want.Hash)
	must(t, err)
	if !got.Revoked {
		t.Fatal("GetKeyByHash after RevokeKey: not revoked")
	}
	if _, err := s.RevokeKey(ctx, want.ID); err != nil { // idempotent
		t.Fatalf("second RevokeKey: %v", err)
	}
	_, err = s.RevokeKey(ctx, "no-such-key")
	wantErr(t, err, store.ErrNotFound)
}

// ---- agents ----

func testAgents(t *testing.T, h *harness) {
	s, ctx := h.s, h.ctx
	a := &store.Agent{AgentSpec: store.AgentSpec{
		ID: id("agent"), Name: "Demo", Owner: "alice", Users: []string{"bob"},
		Upstream: "http://127.0.0.1:9/mcp", Scopes: []string{"mcp"},
	}, Created: h.now()}
	want := *a
	want.Users = slices.Clone(a.Users)
	must(t, s.PutAgent(ctx, a))
	a.Users[0] = "mallory"

	got, err := s.GetAgent(ctx, want.ID)
	must(t, err)
	sameJSON(t, "GetAgent", got, &want)
	got.Users = append(got.Users, "mallory")
	got.Users[0] = "mallory"
	got, err = s.GetAgent(ctx, want.ID)
	must(t, err)
	sameJSON(t, "GetAgent after mutation", got, &want)
	if !got.Allows("bob") || got.Allows("mallory") {
		t.Fatal("stored agent lost its users")
	}

	// Put replaces.
	want.Users = nil
	want.Name = "Renamed"
	must(t, s.PutAgent(ctx, &want))
	got, err = s.GetAgent(ctx, want.ID)
	must(t, err)
	sameJSON(t, "GetAgent after replace", got, &want)

	b := &store.Agent{AgentSpec: store.AgentSpec{ID: id("agent"), Owner: "bob"}}
	must(t, s.PutAgent(ctx, b))
	list, err := s.ListAgents(ctx)
	must(t, err)
	if len(list) != 2 {
		t.Fatalf("ListAgents = %+v", list)
	}

	must(t, s.DeleteAgent(ctx, want.ID))
	_, err = s.GetAgent(ctx, want.ID)
	wantErr(t, err, store.ErrNotFound)
	wantErr(t, s.DeleteAgent(ctx, want.ID), store.ErrNotFound)
	list, err = s.ListAgents(ctx)
	must(t, err)
	if len(list) != 1 || list[0].ID != b.ID {
		t.Fatalf("ListAgents after delete = %+v", list)
	}

	// Create refuses an existing id and keeps the first record.
	c := &store.Agent{AgentSpec: store.AgentSpec{ID: id("agent"), Owner: "carol"}, Created: h.now()}
	must(t, s.CreateAgent(ctx, c))
	wantErr(t, s.CreateAgent(ctx, &store.Agent{AgentSpec: store.AgentSpec{ID: c.ID, Owner: "mallory"}}), store.ErrConflict)
	wantErr(t, s.CreateAgent(ctx, &store.Agent{AgentSpec: store.AgentSpec{ID: b.ID, Owner: "mallory"}}), store.ErrConflict) // made by Put
	got, err = s.GetAgent(ctx, c.ID)
	must(t, err)
	sameJSON(t, "GetAgent after a refused create", got, c)
	// Of many concurrent creates of one id, exactly one wins.
	race := id("agent")
	var wins atomic.Int32
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			err := s.CreateAgent(ctx, &store.Agent{AgentSpec: store.AgentSpec{ID: race, Owner: fmt.Sprintf("owner%d", i)}})
			switch {
			case err == nil:
				wins.Add(1)
			case !errors.Is(err, store.ErrConflict):
				t.Errorf("CreateAgent: %v", err)
			}
		})
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d of 20 concurrent creates of one id succeeded, want 1", wins.Load())
	}
	list, err = s.ListAgents(ctx)
	must(t, err)
	if len(list) != 3 {
		t.Fatalf("ListAgents after creates = %d agents, want 3", len(list))
	}
}

// ---- rate limiting ----

func testRateLimit(t *testing.T, h *harness) {
	s, ctx := h.s, h.ctx
	key, other := id("rl"), id("rl")
	const window = time.Hour
	for i := range 3 {
		ok, _, err := s.Allow(ctx, key, 3, window)
		must(t, err)
		if !ok {
			t.Fatalf("hit %d refused, limit 3", i+1)
		}
	}
	ok, retry, err := s.Allow(ctx, key, 3, window)
	must(t, err)
	if ok {
		t.Fatal("4th hit allowed, limit 3")
	}
	if retry <= 0 || retry > window {
		t.Fatalf("retry-after = %v, want within (0, %v]", retry, window)
	}
	if ok, _, _ := s.Allow(ctx, other, 3, window); !ok {
		t.Fatal("another key was limited")
	}

	// Concurrent hits are counted exactly.
	conc := id("rl")
	var allowed atomic.Int32
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			ok, _, err := s.Allow(ctx, conc, 10, window)
			if err != nil {
				t.Errorf("Allow: %v", err)
			}
			if ok {
				allowed.Add(1)
			}
		})
	}
	wg.Wait()
	if allowed.Load() != 10 {
		t.Fatalf("%d of 50 concurrent hits allowed, want 10", allowed.Load())
	}

	// Refund takes one hit back each: key holds 4 (3 allowed, 1 refused),
	// two refunds leave 2, so one more hit is within the limit of 3.
	hit := func(k string, limit int) bool {
		ok, _, err := s.Allow(ctx, k, limit, window)
		must(t, err)
		return ok
	}
	refund := func(k string, n int) {
		for range n {
			must(t, s.Refund(ctx, k))
		}
	}
	refund(key, 2)
	if !hit(key, 3) {
		t.Fatal("the hit after a refund was refused")
	}
	if hit(key, 3) {
		t.Fatal("a refund gave back more than one hit")
	}
	// Never below zero, and nothing created for a key without hits.
	fresh := id("rl")
	refund(fresh, 2)
	if !hit(fresh, 1) {
		t.Fatal("first hit on a refunded fresh key refused")
	}
	refund(fresh, 2)
	if !hit(fresh, 1) {
		t.Fatal("hit after refunding the only hit refused")
	}
	if hit(fresh, 1) {
		t.Fatal("refunds below zero: a second hit within limit 1 allowed")
	}
	// Take-then-refund from many goroutines at once leaves nothing behind:
	// no update is lost between the two.
	pair := id("rl")
	var wg2 sync.WaitGroup
	for range 50 {
		wg2.Go(func() {
			if _, _, err := s.Allow(ctx, pair, 1000, window); err != nil {
				t.Errorf("Allow: %v", err)
			}
			if err := s.Refund(ctx, pair); err != nil {
				t.Errorf("Refund: %v", err)
			}
		})
	}
	wg2.Wait()
	if !hit(pair, 1) {
		t.Fatal("hits left over after 50 concurrent take-and-refund pairs")
	}
	if hit(pair, 1) {
		t.Fatal("the counter went below zero under concurrent refunds")
	}
}

// ---- markers ----

func testMarkers(t *testing.T, h *harness) {
	s, ctx := h.s, h.ctx
	key, other := id("mark"), id("mark")
	first, err := s.MarkOnce(ctx, key, h.ttl())
	must(t, err)
	if !first {
		t.Fatal("first MarkOnce of a new key reported a repeat")
	}
	if first, err = s.MarkOnce(ctx, key, h.ttl()); err != nil || first {
		t.Fatalf("second MarkOnce = %v, %v; want false, nil", first, err)
	}
	if first, err = s.MarkOnce(ctx, other, h.ttl()); err != nil || !first {
		t.Fatalf("MarkOnce of another key = %v, %v; want true, nil", first, err)
	}
	if _, err := s.MarkOnce(ctx, "", time.Minute); err == nil {
		t.Fatal("MarkOnce accepted an empty key")
	}
	if _, err := s.MarkOnce(ctx, id("mark"), 0); err == nil {
		t.Fatal("MarkOnce accepted a zero ttl")
	}

	// Concurrent marks of one key: exactly one wins.
	conc := id("mark")
	var wins atomic.Int32
	var wg sync.WaitGroup
	for range 30 {
		wg.Go(func() {
			first, err := s.MarkOnce(ctx, conc, time.Minute)
			if err != nil {
				t.Errorf("MarkOnce: %v", err)
			}
			if first {
				wins.Add(1)
			}
		})
	}
	wg.Wait()
	if n := wins.Load(); n != 1 {
		t.Fatalf("%d concurrent MarkOnce calls won, want 1", n)
	}

	// The mark ends with its ttl; then the key can be marked again.
	h.pass()
	if first, err = s.MarkOnce(ctx, key, h.ttl()); err != nil || !first {
		t.Fatalf("MarkOnce after expiry = %v, %v; want true, nil", first, err)
	}
}

// ---- events ----

func testEvents(t *testing.T, h *harness) {
	s, ctx := h.s, h.ctx
	peer := s
	if h.Peer != nil {
		peer = h.Peer(t)
	}
	type sink chan store.Event
	subscribe := func(st store.Store) sink {
		ch := make(sink, 64)
		sctx, cancel := context.WithCancel(ctx)
		t.Cleanup(cancel)
		must(t, st.Subscribe(sctx, func(e store.Event) {
			if e.Kind == store.EventResync {
				return
			}
			select {
			case ch <- e:
			default:
				t.Errorf("event sink full")
			}
		}))
		return ch
	}
	local, remote := subscribe(s), subscribe(peer)
	next := func(ch sink, who string) store.Event {
		t.Helper()
		select {
		case e := <-ch:
			return e
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: no event", who)
			return store.Event{}
		}
	}
	expect := func(want store.Event) {
		t.Helper()
		for _, c := range []struct {
			ch  sink
			who string
		}{{local, "publishing replica"}, {remote, "other replica"}} {
			got := next(c.ch, c.who)
			if got.Kind != want.Kind || got.ID != want.ID || !got.Exp.Equal(want.Exp) {
				t.Fatalf("%s got %+v, want %+v", c.who, got, want)
			}
		}
	}

	// Subscribe returned, so an event published now must arrive.
	must(t, s.Publish(ctx, store.Event{Kind: store.EventClient, ID: "x"}))
	expect(store.Event{Kind: store.EventClient, ID: "x"})

	exp := h.now().Add(time.Hour)
	jti := id("jti")
	must(t, s.RevokeJTI(ctx, jti, exp))
	expect(store.Event{Kind: store.EventRevokedJTI, ID: jti, Exp: exp})

	k := &store.APIKey{ID: id("key"), Hash: id("keyhash"), Kind: store.KeyUser, User: "alice", CreatedAt: h.now()}
	must(t, s.CreateKey(ctx, k))
	_, err := s.RevokeKey(ctx, k.ID)
	must(t, err)
	expect(store.Event{Kind: store.EventKey, ID: k.Hash})

	ag := &store.Agent{AgentSpec: store.AgentSpec{ID: id("agent"), Owner: "alice"}}
	must(t, s.PutAgent(ctx, ag))
	expect(store.Event{Kind: store.EventAgent, ID: ag.ID})
	must(t, s.DeleteAgent(ctx, ag.ID))
	expect(store.Event{Kind: store.EventAgent, ID: ag.ID})

	c := &store.Client{ID: id("client"), RedirectURIs: []string{"https://a/cb"}}
	must(t, s.CreateClient(ctx, c))
	must(t, s.DeleteClient(ctx, c.ID))
	expect(store.Event{Kind: store.EventClient, ID: c.ID})

	// Events flow the other way too, in order.
	for i := range 5 {
		must(t, peer.Publish(ctx, store.Event{Kind: store.EventAgent, ID: fmt.Sprint(i)}))
	}
	for i := range 5 {
		expect(store.Event{Kind: store.EventAgent, ID: fmt.Sprint(i)})
	}
}

// ---- expiry (all TTLs checked after a single pass of time) ----

func testExpiry(t *testing.T, h *harness) {
	s, ctx := h.s, h.ctx
	now, ttl := h.now(), h.ttl()
	if h.Now == nil {
		// Real time: TTLs start from the wall clock, not the truncated second.
		now = time.Now().UTC()
	}
	exp := now.Add(ttl)

	// The ttl argument governs, not the record's own ExpiresAt.
	req := &store.AuthRequest{ID: id("req"), ClientID: "c", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	must(t, s.PutAuthRequest(ctx, req, ttl))
	code := newCode(h)
	code.ExpiresAt = exp
	must(t, s.PutCode(ctx, code))
	sess := id("sess")
	must(t, s.PutSession(ctx, sess, &store.Session{UserID: "alice", CreatedAt: now, ExpiresAt: exp}))
	jti := id("jti")
	must(t, s.RevokeJTI(ctx, jti, exp))
	longJTI := id("jti")
	must(t, s.RevokeJTI(ctx, longJTI, now.Add(time.Hour)))

	// A family that ends soon (its token's TTL is capped by the family's end).
	shortFam := newFamily(h, id("user"))
	shortFam.ExpiresAt = exp
	must(t, s.CreateFamily(ctx, shortFam, 24*time.Hour))
	// A long family whose refresh token lives only ttl; rotation under the
	// family's short end caps the new token too.
	longFam := newFamily(h, id("user"))
	must(t, s.CreateFamily(ctx, longFam, ttl))
	capFam := newFamily(h, id("user"))
	capFam.ExpiresAt = now.Add(ttl)
	must(t, s.CreateFamily(ctx, capFam, time.Hour))
	capRot := rotation(h, capFam.CurrentHash)
	capRot.Now = now
	_, err := s.Rotate(ctx, capRot)
	must(t, err)

	key := &store.APIKey{ID: id("key"), Hash: id("keyhash"), Kind: store.KeyUser, User: "alice", CreatedAt: now, ExpiresAt: exp}
	must(t, s.CreateKey(ctx, key))
	forever := &store.APIKey{ID: id("key"), Hash: id("keyhash"), Kind: store.KeyUser, User: "alice", CreatedAt: now}
	must(t, s.CreateKey(ctx, forever))

	rl := id("rl")
	for range 2 {
		_, _, err := s.Allow(ctx, rl, 1, ttl)
		must(t, err)
	}
	if ok, retry, _ := s.Allow(ctx, rl, 1, ttl); ok || retry <= 0 || retry > ttl {
		t.Fatalf("Allow over limit = %v, %v", ok, retry)
	}

	// Everything is there before the TTL…
	_, err = s.GetAuthRequest(ctx, req.ID)
	must(t, err)
	_, err = s.GetSession(ctx, sess)
	must(t, err)
	if ok, _ := s.IsRevoked(ctx, jti); !ok {
		t.Fatal("jti not revoked before its exp")
	}
	_, err = s.LookupRefresh(ctx, shortFam.CurrentHash)
	must(t, err)
	_, err = s.LookupRefresh(ctx, longFam.CurrentHash)
	must(t, err)
	_, err = s.GetKeyByHash(ctx, key.Hash)
	must(t, err)

	h.pass()

	// …and gone after it.
	_, err = s.GetAuthRequest(ctx, req.ID)
	wantErr(t, err, store.ErrNotFound)
	_, err = s.TakeAuthRequest(ctx, req.ID)
	wantErr(t, err, store.ErrNotFound)
	_, err = s.RedeemCode(ctx, code.Hash, bound(code))
	wantErr(t, err, store.ErrNotFound)
	_, err = s.GetSession(ctx, sess)
	wantErr(t, err, store.ErrNotFound)
	if ok, _ := s.IsRevoked(ctx, jti); ok {
		t.Fatal("jti still revoked after its exp")
	}
	list, err := s.RevokedJTIs(ctx)
	must(t, err)
	if _, ok := list[jti]; ok || len(list) != 1 {
		t.Fatalf("RevokedJTIs after expiry = %v, want only %s", list, longJTI)
	}
	for _, hash := range []string{shortFam.CurrentHash, longFam.CurrentHash, capRot.NewHash} {
		_, err = s.LookupRefresh(ctx, hash)
		wantErr(t, err, store.ErrNotFound)
		_, err = s.Rotate(ctx, rotation(h, hash))
		wantErr(t, err, store.ErrNotFound)
	}
	fams, err := s.ListFamilies(ctx, shortFam.UserID)
	must(t, err)
	if len(fams) != 0 {
		t.Fatalf("ListFamilies after family end = %+v", fams)
	}
	// The long family outlived its first token and can still be revoked.
	_, err = s.RevokeFamily(ctx, longFam.ID)
	must(t, err)
	_, err = s.GetKeyByHash(ctx, key.Hash)
	wantErr(t, err, store.ErrNotFound)
	keys, err := s.ListKeys(ctx)
	must(t, err)
	if len(keys) != 1 || keys[0].ID != forever.ID {
		t.Fatalf("ListKeys after expiry = %+v", keys)
	}
	// A new rate-limit window.
	if ok, _, err := s.Allow(ctx, rl, 1, ttl); err != nil || !ok {
		t.Fatalf("Allow in a new window = %v, %v", ok, err)
	}
}

// A call repeated with the same arguments (go-redis resends a command whose
// reply was lost) answers what the first did; a different record under the
// same id still conflicts, and a different rotation of a rotated token is
// still a race.
func testResends(t *testing.T, h *harness) {
	s, ctx := h.s, h.ctx
	now := h.now()

	c := &store.Client{ID: id("client"), Name: "resend", RedirectURIs: []string{"http://127.0.0.1/cb"}, CreatedAt: now}
	must(t, s.CreateClient(ctx, c))
	must(t, s.CreateClient(ctx, c))
	wantErr(t, s.CreateClient(ctx, &store.Client{ID: c.ID, Name: "other", RedirectURIs: c.RedirectURIs, CreatedAt: now}), store.ErrConflict)

	code := newCode(h)
	must(t, s.PutCode(ctx, code))
	must(t, s.PutCode(ctx, code))
	if _, err := s.RedeemCode(ctx, code.Hash, bound(code)); err != nil {
		t.Fatal(err)
	}
	wantErr(t, s.PutCode(ctx, code), store.ErrConflict) // used: never stored again

	f := newFamily(h, id("user"))
	must(t, s.CreateFamily(ctx, f, time.Hour))
	must(t, s.CreateFamily(ctx, f, time.Hour))
	r := rotation(h, f.CurrentHash)
	first, err := s.Rotate(ctx, r)
	must(t, err)
	again, err := s.Rotate(ctx, r)
	must(t, err)
	sameJSON(t, "Rotate resent", again, first)
	wantErr(t, s.CreateFamily(ctx, f, time.Hour), store.ErrConflict) // its token moved on
	other := rotation(h, f.CurrentHash)
	_, err = s.Rotate(ctx, other)
	wantErr(t, err, store.ErrRefreshRace)

	k := &store.APIKey{ID: id("key"), Hash: id("keyhash"), Kind: store.KeyUser, User: "alice", CreatedAt: now}
	must(t, s.CreateKey(ctx, k))
	must(t, s.CreateKey(ctx, k))
	dup := *k
	dup.Name = "other"
	wantErr(t, s.CreateKey(ctx, &dup), store.ErrConflict)

	a := &store.Agent{AgentSpec: store.AgentSpec{ID: id("agent"), Owner: "alice", Upstream: "http://127.0.0.1:1/mcp"}, Created: now}
	must(t, s.CreateAgent(ctx, a))
	must(t, s.CreateAgent(ctx, a))
	b := *a
	b.Owner = "bob"
	wantErr(t, s.CreateAgent(ctx, &b), store.ErrConflict)
}
