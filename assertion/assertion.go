// Package assertion signs the identity assertion the gateway adds to every
// allowed request (x-mcp-identity: an ES256 JWT, verified by agents with
// package agentauth or any JOSE library against /.well-known/jwks.json),
// caches it per (credential, agent), and serves the public keys.
package assertion

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mcpgateway/mcp-gateway/agentauth"
	"github.com/mcpgateway/mcp-gateway/internal/metrics"
)

// Header is the upstream request header carrying the assertion.
const Header = "x-mcp-identity"

// Lifetimes: an assertion lives TTL and is reused until Margin before its
// exp, so an agent always receives one with at least Margin left.
const (
	TTL    = 5 * time.Minute
	Margin = time.Minute
)

// JWKSPath is where the public keys are published.
const JWKSPath = "/.well-known/jwks.json"

// Key is one assertion signing key.
type Key struct {
	ID      string
	Private *ecdsa.PrivateKey // P-256
}

// Identity is what an assertion states.
type Identity struct {
	Subject, ClientID, Scope, Credential string
}

// Signer signs assertions with its first key and publishes every key's
// public half, so keys rotate by prepending a new one and dropping the old
// once agents have refetched the key set. It is safe for concurrent use.
type Signer struct {
	issuer string
	signer Key
	method *jwt.SigningMethodECDSA
	jwks   []byte // the published key set, built once

	hit, miss prometheus.Counter
	mu        sync.RWMutex
	cache     map[cacheKey]*entry
	max       int
	noCache   bool
}

// cacheKey: a struct of strings, so a lookup builds no key string.
type cacheKey struct{ cred, agent string }

type entry struct {
	id      Identity
	aud     string
	raw     string
	reuseTo int64 // unix ns; exp - Margin
}

// Options configure a Signer; Issuer and Keys are required.
type Options struct {
	Issuer    string // the gateway's public URL
	Keys      []Key
	CacheSize int // assertions cached; default 10000
	// NoCache signs on every Get: only to measure what the cache saves.
	NoCache bool
}

// New checks the keys (P-256, unique non-empty ids) and builds a Signer.
func New(opts Options) (*Signer, error) {
	if opts.Issuer == "" {
		return nil, errors.New("assertion: an issuer is required")
	}
	if len(opts.Keys) == 0 {
		return nil, errors.New("assertion: no keys")
	}
	set := agentauth.JWKS{Keys: []agentauth.JWK{}}
	seen := map[string]bool{}
	for i, k := range opts.Keys {
		if k.ID == "" {
			return nil, fmt.Errorf("assertion: key %d has no id", i)
		}
		if seen[k.ID] {
			return nil, fmt.Errorf("assertion: key id %q used twice", k.ID)
		}
		seen[k.ID] = true
		if k.Private == nil || k.Private.Curve != elliptic.P256() {
			return nil, fmt.Errorf("assertion: key %q is not an ECDSA P-256 key", k.ID)
		}
		set.Keys = append(set.Keys, PublicJWK(k))
	}
	jwks, err := json.Marshal(set)
	if err != nil {
		return nil, fmt.Errorf("assertion: %w", err)
	}
	s := &Signer{
		issuer: opts.Issuer, signer: opts.Keys[0], method: jwt.SigningMethodES256, jwks: jwks,
		hit:   metrics.CacheLookups.WithLabelValues("assertion", "hit"),
		miss:  metrics.CacheLookups.WithLabelValues("assertion", "miss"),
		cache: make(map[cacheKey]*entry), max: opts.CacheSize, noCache: opts.NoCache,
	}
	if s.max <= 0 {
		s.max = 10000
	}
	return s, nil
}

// PublicJWK is k's public half as a JWK.
func PublicJWK(k Key) agentauth.JWK {
	var x, y [32]byte
	pub, _ := k.Private.PublicKey.Bytes() // 0x04 || X || Y for P-256
	copy(x[:], pub[1:33])
	copy(y[:], pub[33:65])
	return agentauth.JWK{
		Kty: "EC", Crv: "P-256", Kid: k.ID, Use: "sig", Alg: agentauth.Alg,
		X: base64.RawURLEncoding.EncodeToString(x[:]), Y: base64.RawURLEncoding.EncodeToString(y[:]),
	}
}

// Sign returns a fresh assertion of id for audience aud, valid TTL from now.
func (s *Signer) Sign(id Identity, aud string, now time.Time) (string, error) {
	c := agentauth.Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    s.issuer,
			Subject:   id.Subject,
			Audience:  jwt.ClaimStrings{aud},
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(TTL)),
			ID:        rand.Text(),
		},
		ClientID:   id.ClientID,
		Scope:      id.Scope,
		Credential: id.Credential,
	}
	t := jwt.NewWithClaims(s.method, c)
	t.Header["kid"] = s.signer.ID
	t.Header["typ"] = agentauth.Type
	raw, err := t.SignedString(s.signer.Private)
	if err != nil {
		return "", fmt.Errorf("assertion: sign: %w", err)
	}
	return raw, nil
}

// Get returns the assertion for credential cred (an id that names one
// credential: a token's jti, an API key's id) used on the agent whose
// resource URL is aud, from the cache while it has more than Margin left
// and still states id; otherwise it signs a new one.
func (s *Signer) Get(cred, agent, aud string, id Identity, now time.Time) (string, error) {
	k := cacheKey{cred, agent}
	n := now.UnixNano()
	s.mu.RLock()
	e, ok := s.cache[k]
	s.mu.RUnlock()
	// The identity is compared too: an agent's scopes or a key's record
	// may have changed since, and the assertion must say what the Check
	// decided now.
	if ok && n < e.reuseTo && e.id == id && e.aud == aud {
		s.hit.Inc()
		return e.raw, nil
	}
	s.miss.Inc()
	raw, err := s.Sign(id, aud, now)
	if err != nil || s.noCache {
		return raw, err
	}
	// exp is whole seconds (NumericDate truncates): reuse until Margin
	// before the exp the token states.
	exp := now.Add(TTL).Truncate(time.Second)
	ne := &entry{id: id, aud: aud, raw: raw, reuseTo: exp.Add(-Margin).UnixNano()}
	s.mu.Lock()
	if _, present := s.cache[k]; !present && len(s.cache) >= s.max {
		s.evictLocked(n)
	}
	s.cache[k] = ne
	s.mu.Unlock()
	return raw, nil
}

// evictLocked makes room for one entry: stale entries first (a bounded
// scan), else an arbitrary one (map order is random).
func (s *Signer) evictLocked(n int64) {
	scanned := 0
	for k, e := range s.cache {
		if n >= e.reuseTo {
			delete(s.cache, k)
		}
		if scanned++; scanned >= 64 {
			break
		}
	}
	for k := range s.cache {
		if len(s.cache) < s.max {
			return
		}
		delete(s.cache, k)
	}
}

// Len is the number of cached assertions.
func (s *Signer) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.cache)
}

// JWKS is the published key set (JSON).
func (s *Signer) JWKS() []byte { return s.jwks }

// jwksMaxAge is how long agents and caches may keep the key set. A new key
// is prepended ahead of use (see README), and agentauth refetches on an
// unknown kid anyway.
const jwksMaxAge = 5 * time.Minute

// JWKSHandler serves the key set at JWKSPath (GET and HEAD).
func (s *Signer) JWKSHandler() http.Handler {
	etag := `"` + base64.RawURLEncoding.EncodeToString(sum(s.jwks)[:12]) + `"`
	cc := "public, max-age=" + strconv.Itoa(int(jwksMaxAge.Seconds()))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h := w.Header()
		h.Set("Content-Type", "application/jwk-set+json")
		h.Set("Cache-Control", cc)
		h.Set("ETag", etag)
		h.Set("Access-Control-Allow-Origin", "*")
		if r.Header.Get("If-None-Match") == etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		h.Set("Content-Length", strconv.Itoa(len(s.jwks)))
		if r.Method == http.MethodHead {
			return
		}
		_, _ = w.Write(s.jwks)
	})
}

func sum(b []byte) []byte {
	h := sha256.Sum256(b)
	return h[:]
}

// GenerateKey makes a new P-256 key.
func GenerateKey() (*ecdsa.PrivateKey, error) {
	return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
}

// pemType is the PEM block of a key file (PKCS #8).
const pemType = "PRIVATE KEY"

// MarshalKey writes k as a PKCS #8 PEM key file.
func MarshalKey(k *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("assertion: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemType, Bytes: der}), nil
}

// ParseKey reads a PEM key file: PKCS #8 or SEC 1 ("EC PRIVATE KEY"), P-256 only.
func ParseKey(b []byte) (*ecdsa.PrivateKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("assertion: no PEM block in the key file")
	}
	var k any
	var err error
	switch blk.Type {
	case pemType:
		k, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(blk.Bytes)
	default:
		return nil, fmt.Errorf("assertion: PEM block %q is not a private key", blk.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("assertion: parse key: %w", err)
	}
	ec, ok := k.(*ecdsa.PrivateKey)
	if !ok || ec.Curve != elliptic.P256() {
		return nil, errors.New("assertion: the key is not an ECDSA P-256 key (ES256)")
	}
	return ec, nil
}

// DeriveKey derives a P-256 key from an HS256 signing secret (HKDF-SHA256),
// so replicas that share the signing keys share assertion keys without
// further configuration. The derivation is one-way: the published public
// key reveals nothing of the secret.
func DeriveKey(secret []byte) (*ecdsa.PrivateKey, error) {
	for i := 0; i < 16; i++ { // a candidate ≥ the group order is rare (~2⁻³²): try the next
		d, err := hkdf.Key(sha256.New, secret, nil, "mcp-gateway identity assertion key "+strconv.Itoa(i), 32)
		if err != nil {
			return nil, fmt.Errorf("assertion: derive key: %w", err)
		}
		if k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), d); err == nil {
			return k, nil
		}
	}
	return nil, errors.New("assertion: derive key: no valid scalar")
}
