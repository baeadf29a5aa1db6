package authz

import (
	"fmt"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/mcpgateway/mcp-gateway/store"
	"github.com/mcpgateway/mcp-gateway/token"
)

// TestMirrorRevoked: a token is denied by its jti, by its family's entry
// (whatever its expiry, family ids are never reused) or by its client's
// entry (only when it expires by then); a token without a family claim is
// never matched by a family entry, not even an empty one.
func TestMirrorRevoked(t *testing.T) {
	now := time.Now()
	var m mirror
	m.add("jti-1", now.Add(time.Hour), now)
	m.add(store.RevokedFamilyJTI("fam-1"), now.Add(time.Minute), now)
	m.add(store.RevokedFamilyJTI(""), now.Add(time.Hour), now) // never written; must not match tokens without the claim
	m.add(store.RevokedClientJTI("client-1"), now.Add(time.Hour), now)
	tok := func(jti, fam, client string, exp time.Duration) *token.Claims {
		return &token.Claims{
			RegisteredClaims: jwt.RegisteredClaims{ID: jti, ExpiresAt: jwt.NewNumericDate(now.Add(exp))},
			Family:           fam, ClientID: client,
		}
	}
	for name, tc := range map[string]struct {
		c    *token.Claims
		want bool
	}{
		"revoked jti":                     {tok("jti-1", "fam-2", "client-2", time.Hour), true},
		"revoked family":                  {tok("jti-2", "fam-1", "client-2", time.Hour), true},
		"revoked family, later exp":       {tok("jti-2", "fam-1", "client-2", 2*time.Hour), true},
		"other family":                    {tok("jti-2", "fam-2", "client-2", time.Hour), false},
		"no family claim":                 {tok("jti-2", "", "client-2", time.Hour), false},
		"revoked client, earlier exp":     {tok("jti-2", "fam-2", "client-1", 30*time.Minute), true},
		"revoked client, exp after entry": {tok("jti-2", "fam-2", "client-1", 2*time.Hour), false},
		"no client claim":                 {tok("jti-2", "fam-2", "", time.Hour), false},
	} {
		if got := m.revoked(tc.c); got != tc.want {
			t.Errorf("%s: revoked = %v, want %v", name, got, tc.want)
		}
	}
	m.prune(now.Add(time.Minute+2*token.Leeway), token.Leeway)
	if m.revoked(tok("jti-2", "fam-1", "", time.Hour)) {
		t.Error("a family entry survived its expiry")
	}
	if !m.revoked(tok("jti-1", "", "", time.Hour)) {
		t.Error("prune dropped a live jti")
	}
}

// BenchmarkMirrorRevoked is the denylist lookup of every JWT decision, on
// a mirror holding many entries of each kind, for a token not in it.
func BenchmarkMirrorRevoked(b *testing.B) {
	now := time.Now()
	var m mirror
	for i := range 10000 {
		m.add(fmt.Sprintf("jti-%d", i), now.Add(time.Hour), now)
		m.add(store.RevokedFamilyJTI(fmt.Sprintf("fam-%d", i)), now.Add(time.Hour), now)
	}
	for i := range 100 {
		m.add(store.RevokedClientJTI(fmt.Sprintf("client-%d", i)), now.Add(time.Hour), now)
	}
	c := &token.Claims{
		RegisteredClaims: jwt.RegisteredClaims{ID: token.Random(16), ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour))},
		Family:           token.Random(16), ClientID: token.Random(16),
	}
	b.ReportAllocs()
	for b.Loop() {
		if m.revoked(c) {
			b.Fatal("revoked")
		}
	}
}
