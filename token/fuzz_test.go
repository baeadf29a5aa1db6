package token

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
)

// Fixed keys for the fuzz targets: the committed corpus
// (testdata/fuzz/FuzzVerify) holds tokens signed with fuzzSecret1 that
// expire in 2100, so seeds stay valid and mutations start from real tokens.
const fuzzIssuer = "http://127.0.0.1:8000"

var (
	fuzzSecret1 = []byte("fuzz-secret-one-0123456789abcdef0123")
	fuzzSecret2 = []byte("fuzz-secret-two-fedcba9876543210fedc")
	fuzzKeys    = map[string][]byte{"k1": fuzzSecret1, "k2": fuzzSecret2}
)

func fuzzRing(tb testing.TB) *Ring {
	tb.Helper()
	r, err := NewRing(fuzzIssuer, []Key{{ID: "k1", Secret: fuzzSecret1}, {ID: "k2", Secret: fuzzSecret2}})
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

func fuzzSign(tb testing.TB, m jwt.SigningMethod, key any, kid string, c jwt.Claims) string {
	tb.Helper()
	t := jwt.NewWithClaims(m, c)
	if kid != "" {
		t.Header["kid"] = kid
	}
	s, err := t.SignedString(key)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func fuzzClaims(iss string, exp time.Time) *Claims {
	return &Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer: iss, Subject: "alice", ID: "jti-1",
			Audience:  jwt.ClaimStrings{fuzzIssuer + "/demo/mcp"},
			IssuedAt:  jwt.NewNumericDate(time.Unix(1700000000, 0)),
			NotBefore: jwt.NewNumericDate(time.Unix(1700000000, 0)),
			ExpiresAt: jwt.NewNumericDate(exp),
		},
		ClientID: "c1", Scope: "mcp",
	}
}

// checkAccepted is an oracle independent of golang-jwt: a token Verify
// accepted must be three segments, an HS256 header naming a ring key, an
// HMAC-SHA256 of the first two segments under that key, our issuer, a live
// exp and a subject and jti.
func checkAccepted(t *testing.T, raw string, c *Claims, now time.Time) {
	t.Helper()
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Fatalf("accepted %q: %d segments", raw, len(parts))
	}
	hb, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		t.Fatalf("accepted %q: header not base64url: %v", raw, err)
	}
	var h struct {
		Alg string `json:"alg"`
		Kid any    `json:"kid"`
	}
	if err := json.Unmarshal(hb, &h); err != nil {
		t.Fatalf("accepted %q: header not JSON: %v", raw, err)
	}
	kid, _ := h.Kid.(string)
	key, ok := fuzzKeys[kid]
	if h.Alg != "HS256" || !ok {
		t.Fatalf("accepted %q: alg %q kid %v", raw, h.Alg, h.Kid)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		t.Fatalf("accepted %q: signature not base64url: %v", raw, err)
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(parts[0] + "." + parts[1]))
	if !hmac.Equal(sig, m.Sum(nil)) {
		t.Fatalf("accepted %q: signature is not HMAC-SHA256 under kid %q", raw, kid)
	}
	switch {
	case c.Issuer != fuzzIssuer:
		t.Fatalf("accepted %q: iss %q", raw, c.Issuer)
	case c.ExpiresAt == nil || now.After(c.ExpiresAt.Add(Leeway+time.Second)):
		t.Fatalf("accepted %q: exp %v", raw, c.ExpiresAt)
	case c.NotBefore != nil && now.Add(Leeway+time.Second).Before(c.NotBefore.Time):
		t.Fatalf("accepted %q: nbf %v", raw, c.NotBefore)
	case c.Subject == "" || c.ID == "":
		t.Fatalf("accepted %q without sub or jti", raw)
	}
}

// FuzzVerify feeds arbitrary strings to Ring.Verify: no panic, only
// ErrInvalid/ErrExpired, nothing accepted that the independent oracle would
// refuse, and the verified-token cache answers a second call the same way.
func FuzzVerify(f *testing.F) {
	r := fuzzRing(f)
	far := time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)
	good := fuzzSign(f, jwt.SigningMethodHS256, fuzzSecret1, "k1", fuzzClaims(fuzzIssuer, far))
	parts := strings.Split(good, ".")
	seg := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	for _, s := range []string{
		good,
		fuzzSign(f, jwt.SigningMethodHS256, fuzzSecret2, "k2", fuzzClaims(fuzzIssuer, far)),
		fuzzSign(f, jwt.SigningMethodHS384, fuzzSecret1, "k1", fuzzClaims(fuzzIssuer, far)),
		fuzzSign(f, jwt.SigningMethodHS256, fuzzSecret1, "k9", fuzzClaims(fuzzIssuer, far)),
		fuzzSign(f, jwt.SigningMethodHS256, fuzzSecret1, "k1", fuzzClaims("https://evil.example", far)),
		fuzzSign(f, jwt.SigningMethodHS256, fuzzSecret1, "k1", fuzzClaims(fuzzIssuer, time.Unix(1700000100, 0))),
		seg(`{"alg":"none","typ":"JWT","kid":"k1"}`) + "." + parts[1] + ".",
		seg(`{"alg":"RS256","typ":"JWT","kid":"k1"}`) + "." + parts[1] + "." + parts[2],
		seg(`{"alg":"HS256","kid":["k1"]}`) + "." + parts[1] + "." + parts[2],
		seg(`{"alg":"HS256","kid":"k1","crit":["exp"]}`) + "." + parts[1] + "." + parts[2],
		parts[0] + "." + seg(`{"iss":"`+fuzzIssuer+`","sub":"admin","jti":"x","exp":4102444800}`) + "." + parts[2],
		parts[0] + "." + parts[1] + "." + parts[2] + "=",
		parts[0] + "." + parts[1] + "." + parts[2] + ".",
		parts[0] + ".." + parts[2],
		"", ".", "..", "...", "a.b.c", "\x00.\x00.\x00", strings.Repeat("A", 5000),
		parts[0] + "." + seg(`{"exp":1e400}`) + "." + parts[2],
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		now := time.Now()
		c, err := r.Verify(raw)
		if err != nil {
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrExpired) {
				t.Fatalf("Verify(%q): unexpected error kind %v", raw, err)
			}
		} else {
			checkAccepted(t, raw, c, now)
		}
		c2, err2 := r.Verify(raw) // cache path
		if (err == nil) != (err2 == nil) && !errors.Is(err2, ErrExpired) {
			t.Fatalf("Verify(%q) twice: %v then %v", raw, err, err2)
		}
		if err == nil && err2 == nil && (c2.Subject != c.Subject || c2.ID != c.ID) {
			t.Fatalf("cached claims differ: %+v vs %+v", c, c2)
		}
	})
}

// FuzzVerifyTamper flips one byte of a valid token: the result must be
// refused unless the header and payload segments are unchanged (the only
// change that can survive is one the signature segment's base64 decoding
// ignores, which yields the same claims).
func FuzzVerifyTamper(f *testing.F) {
	r := fuzzRing(f)
	good := fuzzSign(f, jwt.SigningMethodHS256, fuzzSecret1, "k1", fuzzClaims(fuzzIssuer, time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)))
	for _, s := range []struct {
		pos uint16
		b   byte
	}{{0, 'x'}, {10, '.'}, {uint16(strings.IndexByte(good, '.') + 1), 'A'}, {uint16(len(good) - 1), 'B'}, {uint16(len(good) - 1), 0}} {
		f.Add(s.pos, s.b)
	}
	f.Fuzz(func(t *testing.T, pos uint16, b byte) {
		i := int(pos) % len(good)
		bad := []byte(good)
		if bad[i] == b {
			return
		}
		bad[i] = b
		c, err := r.Verify(string(bad))
		if err != nil {
			return
		}
		g, x := strings.Split(good, "."), strings.Split(string(bad), ".")
		if len(x) != 3 || x[0] != g[0] || x[1] != g[1] {
			t.Fatalf("tampered token %q accepted: %+v", bad, c)
		}
		checkAccepted(t, string(bad), c, time.Now())
	})
}

// FuzzMintVerify mints tokens with arbitrary claim values: whatever Mint
// signs, Verify returns unchanged (or refuses, for an empty sub or jti or a
// lifetime outside the leeway), and never panics.
func FuzzMintVerify(f *testing.F) {
	r := fuzzRing(f)
	f.Add("alice", "jti", "http://127.0.0.1:8000/demo/mcp", "mcp", "client", int64(3600))
	f.Add("", "jti", "", "", "", int64(60))
	f.Add("bob", "", "x", "a b c", "c", int64(60))
	f.Add("\u00e9\u2028\"\\", "j\x00", "aud\ufffd", "s", "c", int64(-3600))
	f.Add("alice", "jti", "aud", "mcp", "c", int64(-1))
	f.Add("alice", "jti", "aud", "mcp", "c", int64(1<<40))
	f.Fuzz(func(t *testing.T, sub, jti, aud, scope, client string, ttl int64) {
		ttl = max(min(ttl, 1<<33), -(1 << 33)) // keep exp inside JSON's exact integers
		now := time.Now()
		exp := now.Add(time.Duration(ttl) * time.Second)
		raw, err := r.Mint(&Claims{
			RegisteredClaims: jwt.RegisteredClaims{
				Subject: sub, ID: jti, Audience: jwt.ClaimStrings{aud},
				IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(exp),
			},
			ClientID: client, Scope: scope,
		})
		if err != nil {
			t.Fatalf("Mint: %v", err)
		}
		c, err := r.Verify(raw)
		switch {
		case sub == "" || jti == "":
			if err == nil {
				t.Fatalf("verified a token without sub or jti: %q", raw)
			}
			return
		case ttl <= -int64((Leeway+2*time.Second)/time.Second):
			if !errors.Is(err, ErrExpired) {
				t.Fatalf("expired token (ttl %d s): err = %v", ttl, err)
			}
			return
		case ttl < 2: // around the leeway's edge: either answer is right
			return
		case err != nil:
			t.Fatalf("Verify of a freshly minted token: %v", err)
		}
		checkAccepted(t, raw, c, now)
		valid := true // JSON replaces invalid UTF-8: compare only valid strings
		for _, s := range []string{sub, jti, aud, scope, client} {
			valid = valid && utf8.ValidString(s)
		}
		if valid && (c.Subject != sub || c.ID != jti || c.Scope != scope || c.ClientID != client ||
			len(c.Audience) != 1 || c.Audience[0] != aud) {
			t.Fatalf("claims changed in the round trip: %+v", c)
		}
		if bytes.ContainsAny([]byte(raw), " \n\r\t=+/") {
			t.Fatalf("minted token is not compact base64url: %q", raw)
		}
	})
}
