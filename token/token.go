// Package token mints and verifies the gateway's HS256 access tokens and makes
// the random secrets (codes, refresh tokens, API keys) and their hashes.
package token

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
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
}

// Key is one HMAC key of the ring.
type Key struct {
	ID     string
	Secret []byte
}

// Ring signs with its first key and verifies with any of them, so keys can be
// rotated by prepending a new one and dropping the old once its tokens expire.
type Ring struct {
	issuer string
	signer Key
	byID   map[string][]byte
	parser *jwt.Parser
}

// NewRing checks every key (non-empty unique id, secret ≥ MinSecretLen).
func NewRing(issuer string, keys []Key) (*Ring, error) {
	if len(keys) == 0 {
		return nil, errors.New("token: no signing keys")
	}
	r := &Ring{issuer: issuer, signer: keys[0], byID: make(map[string][]byte, len(keys))}
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
	}
	r.parser = jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithIssuer(issuer),
		jwt.WithLeeway(Leeway),
		jwt.WithExpirationRequired(),
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
// The audience is returned in the claims for the caller to check.
func (r *Ring) Verify(raw string) (*Claims, error) {
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

func (r *Ring) keyFunc(t *jwt.Token) (any, error) {
	kid, _ := t.Header["kid"].(string)
	k, ok := r.byID[kid]
	if !ok {
		return nil, errors.New("unknown kid")
	}
	return k, nil
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
