package agentauth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// maxJWKSBytes bounds a fetched key set.
const maxJWKSBytes = 64 << 10

// JWK is one public key of a JWKS as the gateway publishes it (RFC 7517,
// RFC 7518 §6.2: an EC P-256 key).
type JWK struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
	Kid string `json:"kid"`
	Use string `json:"use,omitempty"`
	Alg string `json:"alg,omitempty"`
}

// JWKS is a JSON Web Key Set.
type JWKS struct {
	Keys []JWK `json:"keys"`
}

// PublicKey returns the key as an ECDSA P-256 public key, refusing anything
// that is not an ES256 signing key.
func (k JWK) PublicKey() (*ecdsa.PublicKey, error) {
	if k.Kty != "EC" || k.Crv != "P-256" || (k.Alg != "" && k.Alg != Alg) || (k.Use != "" && k.Use != "sig") {
		return nil, fmt.Errorf("key %q is not an ES256 signing key", k.Kid)
	}
	x, errX := base64.RawURLEncoding.Strict().DecodeString(k.X)
	y, errY := base64.RawURLEncoding.Strict().DecodeString(k.Y)
	if errX != nil || errY != nil || len(x) != 32 || len(y) != 32 {
		return nil, fmt.Errorf("key %q: x and y must be 32 bytes of base64url", k.Kid)
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
	if err != nil {
		return nil, fmt.Errorf("key %q: %w", k.Kid, err)
	}
	return pub, nil
}

// keySet is the cached JWKS: fetched on first use, again in the background
// once refresh has passed, and on an unknown kid — at most once per
// minRefetch, so tokens with made-up kids cannot make the agent hammer the
// gateway. A failed fetch keeps the keys already known.
type keySet struct {
	url                 string
	client              *http.Client
	now                 func() time.Time
	log                 *slog.Logger
	refresh, minRefetch time.Duration

	fetchMu    sync.Mutex  // one fetch at a time; concurrent misses wait for it
	refreshing atomic.Bool // a background refresh is under way

	mu        sync.RWMutex
	keys      map[string]*ecdsa.PublicKey
	fetchedAt time.Time // last fetch attempt
	okAt      time.Time // last successful fetch
}

var errUnknownKid = errors.New("unknown kid")

func (s *keySet) get(ctx context.Context, kid string) (*ecdsa.PublicKey, error) {
	if kid == "" {
		return nil, errors.New("no kid")
	}
	s.mu.RLock()
	k, ok := s.keys[kid]
	stale := s.now().Sub(s.okAt) >= s.refresh
	s.mu.RUnlock()
	if ok {
		if stale && s.refreshing.CompareAndSwap(false, true) {
			go func() { // serve the known key meanwhile
				defer s.refreshing.Store(false)
				s.fetch(context.WithoutCancel(ctx))
			}()
		}
		return k, nil
	}
	s.fetch(ctx)
	s.mu.RLock()
	k, ok = s.keys[kid]
	s.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%w %q", errUnknownKid, kid)
	}
	return k, nil
}

// fetch reads the key set unless an attempt was made less than minRefetch
// ago (or is under way: callers wait for it and see its result).
func (s *keySet) fetch(ctx context.Context) {
	s.fetchMu.Lock()
	defer s.fetchMu.Unlock()
	now := s.now()
	s.mu.RLock()
	recent := !s.fetchedAt.IsZero() && now.Sub(s.fetchedAt) < s.minRefetch
	s.mu.RUnlock()
	if recent {
		return
	}
	keys, err := s.load(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fetchedAt = now
	if err != nil {
		s.log.Warn("agentauth: fetching the gateway's JWKS failed; keeping the keys known", "url", s.url, "err", err)
		return
	}
	s.keys, s.okAt = keys, now // the set replaces the old one: a removed kid stops verifying
}

func (s *keySet) load(ctx context.Context) (map[string]*ecdsa.PublicKey, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, err
	}
	if len(body) > maxJWKSBytes {
		return nil, fmt.Errorf("key set larger than %d bytes", maxJWKSBytes)
	}
	var set JWKS
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	keys := make(map[string]*ecdsa.PublicKey, len(set.Keys))
	for _, k := range set.Keys {
		pub, err := k.PublicKey()
		if err != nil || k.Kid == "" {
			continue // another kind of key: not ours to use
		}
		keys[k.Kid] = pub
	}
	if len(keys) == 0 {
		return nil, errors.New("no ES256 key in the set")
	}
	return keys, nil
}
