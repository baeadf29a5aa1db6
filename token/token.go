// Package token mints and verifies the gateway's HS256 access tokens and makes
// the random secrets (codes, refresh tokens, API keys) and their hashes.
package token

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// MinSecretLen is the shortest HMAC key accepted (RFC 7518 §3.2: ≥ the hash size).
const MinSecretLen = 32

// Leeway tolerated on exp/nbf/iat for clock skew between replicas.
const Leeway = 30 * time.Second

var (
	ErrInvalid = errors.New("token: invalid")
	ErrExpired = errors.New("token: expired")
)

// Claims of a gateway access token.
type Claims struct {
	jwt.RegisteredClaims
	ClientID string `json:"client_id,omitempty"`
	Scope    string `json:"scope,omitempty"`
	// Groups are the user's groups from the login provider, matched by
	// tool-policy rules that name groups (store.Rule.Groups).
	Groups []string `json:"groups,omitempty"`
	// Family ("fam", a private claim) is the id of the refresh family (the
	// grant) the token was issued from, so that revoking the grant ends
	// every access token of it at once (store.RevokedFamilyJTI). Tokens
	// minted before the claim existed have none and stay valid until exp.
	Family string `json:"fam,omitempty"`
}

// Key is one HMAC key of the ring.
type Key struct {
	ID     string
	Secret []byte
}

// Ring signs with its first key and verifies with any of them, so keys can be
// rotated by prepending a new one and dropping the old once its tokens expire.
type Ring struct {
	issuer  string
	signer  Key
	byID    map[string][]byte
	secrets [][]byte // every key's secret, for macByRing
	parser  *jwt.Parser
	now     func() time.Time

	// seen caches tokens that verified, keyed by the exact raw string: a
	// client sends the same token on every MCP request, and parsing plus HMAC
	// cost ~10 µs while a map hit costs ~0.1 µs. Only tokens that passed full
	// verification get in, so the cache cannot be filled with junk; exp and
	// nbf are still checked on every hit.
	mu   sync.RWMutex
	seen map[string]*Claims
}

// verifiedCacheSize bounds the verified-token cache (~0.5 KiB an entry).
const verifiedCacheSize = 16384

// NewRing checks every key (non-empty unique id, secret ≥ MinSecretLen).
func NewRing(issuer string, keys []Key) (*Ring, error) {
	if len(keys) == 0 {
		return nil, errors.New("token: no signing keys")
	}
	r := &Ring{issuer: issuer, signer: keys[0], byID: make(map[string][]byte, len(keys)), now: time.Now, seen: make(map[string]*Claims)}
	for i, k := range keys {
		if k.ID == "" {
			return nil, fmt.Errorf("token: signing key %d has no id", i)
		}
		if len(k.Secret) < MinSecretLen {
			return nil, fmt.Errorf("token: signing key %q is %d bytes, need at least %d", k.ID, len(k.Secret), MinSecretLen)
		}
		if _, dup := r.byID[k.ID]; dup {
			return nil, fmt.Errorf("token: signing key id %q used twice", k.ID)
		}
		r.byID[k.ID] = k.Secret
		r.secrets = append(r.secrets, k.Secret)
	}
	r.parser = jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithIssuer(issuer),
		jwt.WithLeeway(Leeway),
		jwt.WithExpirationRequired(),
		// Strict: only the canonical spelling of a signature verifies.
		jwt.WithStrictDecoding(),
		jwt.WithTimeFunc(func() time.Time { return r.now() }),
	)
	return r, nil
}

// Issuer is the iss every token carries.
func (r *Ring) Issuer() string { return r.issuer }

// Mint signs c with the first key; iss is always the ring's issuer.
func (r *Ring) Mint(c *Claims) (string, error) {
	c.Issuer = r.issuer
	t := jwt.NewWithClaims(jwt.SigningMethodHS256, c)
	t.Header["kid"] = r.signer.ID
	s, err := t.SignedString(r.signer.Secret)
	if err != nil {
		return "", fmt.Errorf("token: sign: %w", err)
	}
	return s, nil
}

// Verify checks signature (HS256 with a known kid only), iss, exp and nbf.
// The audience is returned in the claims for the caller to check. The
// returned claims may be shared with other callers: treat them as read-only.
func (r *Ring) Verify(raw string) (*Claims, error) {
	r.mu.RLock()
	c, ok := r.seen[raw]
	r.mu.RUnlock()
	if ok {
		now := r.now()
		if now.After(c.ExpiresAt.Add(Leeway)) {
			r.mu.Lock()
			delete(r.seen, raw)
			r.mu.Unlock()
			return nil, fmt.Errorf("%w: token is expired", ErrExpired)
		}
		if c.NotBefore != nil && now.Add(Leeway).Before(c.NotBefore.Time) {
			return nil, fmt.Errorf("%w: token is not valid yet", ErrInvalid)
		}
		return c, nil
	}
	c, err := r.verify(raw)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	if len(r.seen) >= verifiedCacheSize {
		for k := range r.seen { // evict an arbitrary entry
			delete(r.seen, k)
			break
		}
	}
	r.seen[raw] = c
	r.mu.Unlock()
	return c, nil
}

// verify is the full check, without the cache.
func (r *Ring) verify(raw string) (*Claims, error) {
	if !r.macByRing(raw) {
		return nil, fmt.Errorf("%w: signature is not an HS256 MAC by any key of the ring", ErrInvalid)
	}
	var c Claims
	_, err := r.parser.ParseWithClaims(raw, &c, r.keyFunc)
	if err != nil {
		if errors.Is(err, jwt.ErrTokenExpired) {
			return nil, fmt.Errorf("%w: %w", ErrExpired, err)
		}
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if c.ID == "" || c.Subject == "" {
		return nil, fmt.Errorf("%w: missing jti or sub", ErrInvalid)
	}
	return &c, nil
}

// macByRing reports whether raw's third segment is, in canonical
// base64url, the HMAC-SHA256 of its first two under one of the ring's
// keys. It runs before any JSON is parsed, so a forged or tampered token
// costs one HMAC per key (~1–2 µs) instead of golang-jwt's full parse
// (~20 µs, ~70 allocations): the cheapest attack on the Check gets
// expensive for the attacker only. golang-jwt then checks everything
// again — alg, kid (the MAC must be by that kid's key), claims.
func (r *Ring) macByRing(raw string) bool {
	if strings.Count(raw, ".") != 2 {
		return false
	}
	dot := strings.LastIndexByte(raw, '.')
	var sig [sha256.Size]byte
	if base64.RawURLEncoding.EncodedLen(len(sig)) != len(raw)-dot-1 {
		return false
	}
	if n, err := base64.RawURLEncoding.Strict().Decode(sig[:], []byte(raw[dot+1:])); err != nil || n != len(sig) {
		return false
	}
	var sum [sha256.Size]byte
	for _, k := range r.secrets {
		m := hmac.New(sha256.New, k)
		m.Write([]byte(raw[:dot]))
		if hmac.Equal(m.Sum(sum[:0]), sig[:]) {
			return true
		}
	}
	return false
}

func (r *Ring) keyFunc(t *jwt.Token) (any, error) {
	kid, _ := t.Header["kid"].(string)
	k, ok := r.byID[kid]
	if !ok {
		return nil, errors.New("unknown kid")
	}
	return k, nil
}

// MAC returns the id of the signing key and the HMAC-SHA256 of msg under a
// key derived from that key's secret for purpose. The derived key keeps a
// MAC made here (a cookie) from ever passing as a token signature, and one
// purpose's MAC from passing as another's; the kid lets the value outlive a
// rotation for as long as its key stays in the ring.
func (r *Ring) MAC(purpose string, msg []byte) (kid string, mac []byte) {
	return r.signer.ID, derivedMAC(r.signer.Secret, purpose, msg)
}

// CheckMAC reports, in constant time, whether mac is MAC(purpose, msg) under
// key kid of the ring; false for a kid the ring does not hold.
func (r *Ring) CheckMAC(purpose, kid string, msg, mac []byte) bool {
	k, ok := r.byID[kid]
	return ok && hmac.Equal(derivedMAC(k, purpose, msg), mac)
}

func derivedMAC(secret []byte, purpose string, msg []byte) []byte {
	d := hmac.New(sha256.New, secret)
	d.Write([]byte("mcp-gateway mac key\x00" + purpose))
	m := hmac.New(sha256.New, d.Sum(nil))
	m.Write(msg)
	return m.Sum(nil)
}

// Random returns n random bytes, base64url without padding.
func Random(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go ≥ 1.24)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Hash is how a secret is addressed in the store: hex SHA-256. Secrets have
// ≥ 256 bits of entropy, so an unsalted fast hash is enough.
func Hash(secret string) string {
	s := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(s[:])
}

// Tagged mints a code or refresh token that carries tag, the id of the
// refresh family it belongs to: "<tag>.<random>". On a Redis Cluster the
// store finds the family's hash slot from it (Address), so one script can
// redeem a code or rotate a token together with its family. The tag is not
// secret (it is the access token's fam claim); the 256 random bits are.
func Tagged(tag string) string { return tag + "." + Random(32) }

// Address is how a code or refresh token is addressed in the store: Hash
// of the whole secret, preceded by "<tag>." when the secret is Tagged.
// Untagged secrets (minted for a single Redis, or before tags existed)
// keep the address they always had.
func Address(secret string) string {
	i := strings.IndexByte(secret, '.')
	if i <= 0 || i > 64 || !isBase64URL(secret[:i]) {
		return Hash(secret)
	}
	return secret[:i] + "." + Hash(secret)
}

func isBase64URL(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// API key prefixes.
const (
	PrefixAgentKey = "bak_"
	PrefixUserKey  = "oag_"
)

// NewAPIKey returns a fresh key with the prefix and 32 random bytes, and its hash.
func NewAPIKey(prefix string) (key, hash string) {
	key = prefix + Random(32)
	return key, Hash(key)
}
