package token

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const issuer = "https://gw.example.com"

var (
	secretA = []byte("0123456789abcdef0123456789abcdef")
	secretB = []byte("fedcba9876543210fedcba9876543210")
)

func ring(t testing.TB, keys ...Key) *Ring {
	t.Helper()
	if len(keys) == 0 {
		keys = []Key{{ID: "a", Secret: secretA}}
	}
	r, err := NewRing(issuer, keys)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func claims(exp time.Duration) *Claims {
	now := time.Now()
	return &Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   "alice",
			Audience:  jwt.ClaimStrings{issuer + "/demo/mcp"},
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(exp)),
			ID:        Random(16),
		},
		ClientID: "c1",
		Scope:    "mcp",
	}
}

func TestNewRingRejectsBadKeys(t *testing.T) {
	for name, keys := range map[string][]Key{
		"none":      nil,
		"short":     {{ID: "a", Secret: []byte("short")}},
		"no id":     {{Secret: secretA}},
		"duplicate": {{ID: "a", Secret: secretA}, {ID: "a", Secret: secretB}},
	} {
		if _, err := NewRing(issuer, keys); err == nil {
			t.Errorf("%s: NewRing accepted %v", name, keys)
		}
	}
}

func TestMintVerifyRoundTrip(t *testing.T) {
	r := ring(t)
	c := claims(time.Hour)
	raw, err := r.Mint(c)
	if err != nil {
		t.Fatal(err)
	}
	got, err := r.Verify(raw)
	if err != nil {
		t.Fatal(err)
	}
	if got.Subject != "alice" || got.ClientID != "c1" || got.Scope != "mcp" || got.Issuer != issuer || got.ID != c.ID {
		t.Fatalf("claims changed in round trip: %+v", got)
	}
	if len(got.Audience) != 1 || got.Audience[0] != issuer+"/demo/mcp" {
		t.Fatalf("aud = %v", got.Audience)
	}
	// kid header names the signing key.
	hdr, _ := base64.RawURLEncoding.DecodeString(strings.Split(raw, ".")[0])
	if !strings.Contains(string(hdr), `"kid":"a"`) || !strings.Contains(string(hdr), `"alg":"HS256"`) {
		t.Fatalf("header = %s", hdr)
	}
}

// TestFamilyClaim: the family id travels as "fam"; a token without it (minted
// before the claim existed) still verifies, with no family.
func TestFamilyClaim(t *testing.T) {
	r := ring(t)
	c := claims(time.Hour)
	c.Family = "fam-1"
	raw, err := r.Mint(c)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := base64.RawURLEncoding.DecodeString(strings.Split(raw, ".")[1])
	if !strings.Contains(string(body), `"fam":"fam-1"`) {
		t.Fatalf("payload = %s, want a fam claim", body)
	}
	if got, err := r.Verify(raw); err != nil || got.Family != "fam-1" {
		t.Fatalf("Verify = %+v, %v", got, err)
	}
	legacy, err := r.Mint(claims(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	body, _ = base64.RawURLEncoding.DecodeString(strings.Split(legacy, ".")[1])
	if strings.Contains(string(body), "fam") {
		t.Fatalf("payload without a family = %s", body)
	}
	if got, err := r.Verify(legacy); err != nil || got.Family != "" {
		t.Fatalf("Verify(legacy) = %+v, %v", got, err)
	}
}

func TestRotation(t *testing.T) {
	old := ring(t, Key{ID: "a", Secret: secretA})
	raw, _ := old.Mint(claims(time.Hour))
	// New key first: new tokens use b, old tokens still verify with a.
	both := ring(t, Key{ID: "b", Secret: secretB}, Key{ID: "a", Secret: secretA})
	if _, err := both.Verify(raw); err != nil {
		t.Fatalf("old token after rotation: %v", err)
	}
	fresh, _ := both.Mint(claims(time.Hour))
	if _, err := old.Verify(fresh); err == nil {
		t.Fatal("token signed with unknown kid b verified")
	}
	// Key a dropped: its tokens stop verifying.
	onlyB := ring(t, Key{ID: "b", Secret: secretB})
	if _, err := onlyB.Verify(raw); !errors.Is(err, ErrInvalid) {
		t.Fatalf("dropped key: err = %v", err)
	}
}

func sign(t *testing.T, m jwt.SigningMethod, key any, kid string, c jwt.Claims) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestVerifyRejects(t *testing.T) {
	r := ring(t)
	good, _ := r.Mint(claims(time.Hour))
	parts := strings.Split(good, ".")
	tamperedPayload := func() string {
		p, _ := base64.RawURLEncoding.DecodeString(parts[1])
		p = []byte(strings.Replace(string(p), `"alice"`, `"admin"`, 1))
		return parts[0] + "." + base64.RawURLEncoding.EncodeToString(p) + "." + parts[2]
	}()
	noneTok := func() string {
		h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT","kid":"a"}`))
		return h + "." + parts[1] + "."
	}()
	wrongIss := claims(time.Hour)
	wrongIss.Issuer = "https://evil.example.com"
	noJTI := claims(time.Hour)
	noJTI.ID = ""
	notYet := claims(time.Hour)
	notYet.NotBefore = jwt.NewNumericDate(time.Now().Add(10 * time.Minute))
	noExp := claims(time.Hour)
	noExp.ExpiresAt = nil

	cases := map[string]struct {
		raw  string
		want error
	}{
		"tampered payload":   {tamperedPayload, ErrInvalid},
		"tampered signature": {parts[0] + "." + parts[1] + "." + strings.Repeat("A", len(parts[2])), ErrInvalid},
		"alg none":           {noneTok, ErrInvalid},
		"HS384":              {sign(t, jwt.SigningMethodHS384, secretA, "a", claims(time.Hour)), ErrInvalid},
		"HS512":              {sign(t, jwt.SigningMethodHS512, secretA, "a", claims(time.Hour)), ErrInvalid},
		"unknown kid":        {sign(t, jwt.SigningMethodHS256, secretA, "zz", claims(time.Hour)), ErrInvalid},
		"no kid":             {sign(t, jwt.SigningMethodHS256, secretA, "", claims(time.Hour)), ErrInvalid},
		"other secret":       {sign(t, jwt.SigningMethodHS256, secretB, "a", claims(time.Hour)), ErrInvalid},
		"expired":            {sign(t, jwt.SigningMethodHS256, secretA, "a", func() *Claims { c := claims(-time.Hour); c.Issuer = issuer; return c }()), ErrExpired},
		"not yet valid":      {sign(t, jwt.SigningMethodHS256, secretA, "a", func() *Claims { notYet.Issuer = issuer; return notYet }()), ErrInvalid},
		"no exp":             {sign(t, jwt.SigningMethodHS256, secretA, "a", func() *Claims { noExp.Issuer = issuer; return noExp }()), ErrInvalid},
		"wrong issuer":       {sign(t, jwt.SigningMethodHS256, secretA, "a", wrongIss), ErrInvalid},
		"no jti":             {sign(t, jwt.SigningMethodHS256, secretA, "a", func() *Claims { noJTI.Issuer = issuer; return noJTI }()), ErrInvalid},
		"garbage":            {"not.a.jwt", ErrInvalid},
		"empty":              {"", ErrInvalid},
	}
	for name, tc := range cases {
		if _, err := r.Verify(tc.raw); !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", name, err, tc.want)
		}
	}
}

func TestVerifyLeeway(t *testing.T) {
	r := ring(t)
	c := claims(-Leeway / 2) // expired 15 s ago: within leeway
	raw, _ := r.Mint(c)
	if _, err := r.Verify(raw); err != nil {
		t.Fatalf("token within leeway rejected: %v", err)
	}
}

func TestRandomAndKeys(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		s := Random(32)
		if len(s) != 43 || seen[s] {
			t.Fatalf("Random(32) = %q (len %d, dup %v)", s, len(s), seen[s])
		}
		seen[s] = true
	}
	k, h := NewAPIKey(PrefixAgentKey)
	if !strings.HasPrefix(k, "bak_") || len(k) != 4+43 || h != Hash(k) || len(h) != 64 {
		t.Fatalf("NewAPIKey = %q, %q", k, h)
	}
	if Hash("a") == Hash("b") {
		t.Fatal("hash collision")
	}
}

func BenchmarkVerify(b *testing.B) {
	r := ring(b)
	raw, _ := r.Mint(claims(time.Hour))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Verify(raw); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMint(b *testing.B) {
	r := ring(b)
	c := claims(time.Hour)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Mint(c); err != nil {
			b.Fatal(err)
		}
	}
}

func TestVerifyCacheStillChecksExpiry(t *testing.T) {
	r := ring(t)
	now := time.Now()
	r.now = func() time.Time { return now }
	raw, _ := r.Mint(claims(time.Minute))
	if _, err := r.Verify(raw); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Verify(raw); err != nil { // cached
		t.Fatal(err)
	}
	now = now.Add(time.Minute + Leeway + time.Second)
	if _, err := r.Verify(raw); !errors.Is(err, ErrExpired) {
		t.Fatalf("cached token past exp: err = %v", err)
	}
	// A tampered copy of a cached token is a different string: full check.
	now = time.Now()
	raw2, _ := r.Mint(claims(time.Hour))
	r.Verify(raw2)
	if _, err := r.Verify(raw2[:len(raw2)-2] + "AA"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("tampered copy of cached token: %v", err)
	}
}

func TestVerifyCacheBounded(t *testing.T) {
	r := ring(t)
	for range verifiedCacheSize + 100 {
		raw, _ := r.Mint(claims(time.Hour))
		if _, err := r.Verify(raw); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(r.seen); n > verifiedCacheSize {
		t.Fatalf("cache holds %d > %d", n, verifiedCacheSize)
	}
}

func BenchmarkVerifyUncached(b *testing.B) {
	r := ring(b)
	raw, _ := r.Mint(claims(time.Hour))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.verify(raw); err != nil {
			b.Fatal(err)
		}
	}
}

// The last base64url character of an HS256 signature carries 4 spare bits;
// only the canonical spelling may verify, or one token has several forms.
func TestVerifyRejectsNonCanonicalSignature(t *testing.T) {
	r := ring(t)
	raw, _ := r.Mint(claims(time.Hour))
	last := raw[len(raw)-1]
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	for i := 0; i < len(alphabet); i++ {
		c := alphabet[i]
		if c == last {
			continue
		}
		if _, err := r.verify(raw[:len(raw)-1] + string(c)); err == nil {
			t.Errorf("signature ending %q instead of %q verified", c, last)
		}
	}
}

// A forged token (right shape, right kid, another key's signature) is
// refused by the MAC check before any JSON is parsed.
func BenchmarkVerifyForged(b *testing.B) {
	r := ring(b)
	other, err := NewRing(issuer, []Key{{ID: "a", Secret: []byte(strings.Repeat("f", MinSecretLen))}})
	if err != nil {
		b.Fatal(err)
	}
	raw, _ := other.Mint(claims(time.Hour))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Verify(raw); !errors.Is(err, ErrInvalid) {
			b.Fatal(err)
		}
	}
}

// The MAC check refuses before parsing whatever no key signed, and lets
// through exactly what golang-jwt would verify: each key of the ring, and
// tokens whose claims golang-jwt then refuses (expired, unknown kid).
func TestMACByRing(t *testing.T) {
	r := ring(t)
	good, _ := r.Mint(claims(time.Hour))
	if !r.macByRing(good) {
		t.Fatal("a token the ring minted fails the MAC check")
	}
	parts := strings.Split(good, ".")
	for name, raw := range map[string]string{
		"other payload":     parts[0] + "." + parts[0] + "." + parts[2],
		"short signature":   parts[0] + "." + parts[1] + "." + parts[2][:len(parts[2])-1],
		"padded signature":  good + "=",
		"four segments":     good + ".x",
		"two segments":      parts[0] + "." + parts[1],
		"std base64":        parts[0] + "." + parts[1] + "." + strings.NewReplacer("-", "+", "_", "/").Replace(parts[2]) + "+",
		"empty":             "",
		"signature of junk": "a.b." + parts[2],
	} {
		if r.macByRing(raw) {
			t.Errorf("%s: passes the MAC check", name)
		}
		if _, err := r.Verify(raw); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Verify err = %v", name, err)
		}
	}
	// A second key of the ring: its tokens pass, and verify under their kid.
	rotated, err := NewRing(issuer, []Key{{ID: "new", Secret: []byte(strings.Repeat("n", MinSecretLen))}, {ID: "a", Secret: secretA}})
	if err != nil {
		t.Fatal(err)
	}
	if !rotated.macByRing(good) {
		t.Fatal("a token of the ring's second key fails the MAC check")
	}
	if _, err := rotated.Verify(good); err != nil {
		t.Fatalf("a token of the ring's second key: %v", err)
	}
	// Signed by a ring key but under an unknown kid: through the MAC check,
	// refused by golang-jwt.
	unknownKid := sign(t, jwt.SigningMethodHS256, secretA, "zz", claims(time.Hour))
	if !r.macByRing(unknownKid) {
		t.Fatal("MAC check depends on the kid")
	}
	if _, err := r.Verify(unknownKid); !errors.Is(err, ErrInvalid) {
		t.Fatalf("unknown kid: %v", err)
	}
}

// TestPurposeMAC: a MAC checks under its kid and purpose only, survives a
// rotation while its key is in the ring, and is never the raw-key HMAC a
// token signature is.
func TestPurposeMAC(t *testing.T) {
	r := ring(t, Key{ID: "a", Secret: secretA})
	msg := []byte("device\x00alice")
	kid, mac := r.MAC("device", msg)
	if kid != "a" || !r.CheckMAC("device", kid, msg, mac) {
		t.Fatalf("own MAC refused (kid %q)", kid)
	}
	for name, ok := range map[string]bool{
		"other purpose": r.CheckMAC("session", kid, msg, mac),
		"other message": r.CheckMAC("device", kid, []byte("device\x00bob"), mac),
		"unknown kid":   r.CheckMAC("device", "b", msg, mac),
		"truncated":     r.CheckMAC("device", kid, msg, mac[:31]),
	} {
		if ok {
			t.Errorf("%s: accepted", name)
		}
	}
	h := hmac.New(sha256.New, secretA)
	h.Write(msg)
	if hmac.Equal(h.Sum(nil), mac) {
		t.Error("the MAC is the signing key's raw HMAC")
	}
	rotated := ring(t, Key{ID: "b", Secret: secretB}, Key{ID: "a", Secret: secretA})
	if !rotated.CheckMAC("device", kid, msg, mac) {
		t.Error("a MAC by a key still in the ring was refused after rotation")
	}
	if k, _ := rotated.MAC("device", msg); k != "b" {
		t.Errorf("rotated ring MACs with %q, want the first key", k)
	}
	if ring(t, Key{ID: "b", Secret: secretB}).CheckMAC("device", kid, msg, mac) {
		t.Error("a MAC by a key dropped from the ring was accepted")
	}
}
