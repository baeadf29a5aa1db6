// Package memstore is the in-process store.Store used by `mcp-gateway dev`
// and tests. State lives in maps behind one mutex; expiries are timestamps
// checked on read, and expired entries are swept lazily (amortised over
// writes), so no background goroutine is needed.
package memstore

import (
	"context"
	"maps"
	"sync"
	"time"

	"github.com/mcpgateway/mcp-gateway/store"
)

// usedCodeTTL is how long a redeemed code is remembered so a replay can be
// detected (longer than any code lifetime).
const usedCodeTTL = 10 * time.Minute

var _ store.Store = (*Store)(nil)

// Store is a goroutine-safe in-memory store.Store.
type Store struct {
	now func() time.Time

	mu        sync.Mutex
	closed    bool
	clients   map[string]*store.Client
	clientsIP map[string]map[string]struct{} // registered ip → client ids
	authreqs  map[string]authReq
	codes     map[string]*store.AuthCode
	usedCodes map[string]usedCode
	tokens    map[string]*rtoken
	families  map[string]*store.RefreshFamily
	consents  map[string]map[string]*store.Consent // user → consentKey → consent
	sessions  map[string]*store.Session
	revoked   map[string]time.Time
	keys      map[string]*store.APIKey // hash → key
	keyIDs    map[string]string        // id → hash
	agents    map[string]*store.Agent
	windows   map[string]*window
	markers   map[string]time.Time // key → expiry

	writes, nextGC int

	subMu  sync.Mutex
	subs   map[*subscriber]struct{}
	subsWG sync.WaitGroup
}

// authReq expires by the TTL given to Put, whatever the record says.
type authReq struct {
	r   *store.AuthRequest
	exp time.Time
}

type usedCode struct {
	code *store.AuthCode
	exp  time.Time
}

type rtoken struct {
	family    string
	rotated   bool
	rotatedAt time.Time
	exp       time.Time
}

type window struct {
	count int
	end   time.Time
}

// New returns an empty store on the wall clock.
func New() *Store { return NewWithClock(time.Now) }

// NewWithClock returns an empty store whose expiries are judged by now
// (tests inject a fake clock to check TTLs without sleeping).
func NewWithClock(now func() time.Time) *Store {
	return &Store{
		now:       now,
		clients:   map[string]*store.Client{},
		clientsIP: map[string]map[string]struct{}{},
		authreqs:  map[string]authReq{},
		codes:     map[string]*store.AuthCode{},
		usedCodes: map[string]usedCode{},
		tokens:    map[string]*rtoken{},
		families:  map[string]*store.RefreshFamily{},
		consents:  map[string]map[string]*store.Consent{},
		sessions:  map[string]*store.Session{},
		revoked:   map[string]time.Time{},
		keys:      map[string]*store.APIKey{},
		keyIDs:    map[string]string{},
		agents:    map[string]*store.Agent{},
		windows:   map[string]*window{},
		markers:   map[string]time.Time{},
		nextGC:    1024,
		subs:      map[*subscriber]struct{}{},
	}
}

// lock takes the mutex and reports whether the store is still open.
func (s *Store) lock() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return store.ErrClosed
	}
	return nil
}

// wrote counts a write and sweeps expired entries once the number of writes
// since the last sweep reaches the live size: amortised O(1) per write.
func (s *Store) wrote(now time.Time) {
	s.writes++
	if s.writes < s.nextGC {
		return
	}
	for k, v := range s.authreqs {
		if !now.Before(v.exp) {
			delete(s.authreqs, k)
		}
	}
	for k, v := range s.codes {
		if !now.Before(v.ExpiresAt) {
			delete(s.codes, k)
		}
	}
	for k, v := range s.usedCodes {
		if !now.Before(v.exp) {
			delete(s.usedCodes, k)
		}
	}
	for k, v := range s.tokens {
		if !now.Before(v.exp) {
			delete(s.tokens, k)
		}
	}
	for k, v := range s.families {
		if !now.Before(v.ExpiresAt) {
			delete(s.families, k)
		}
	}
	for k, v := range s.sessions {
		if !now.Before(v.ExpiresAt) {
			delete(s.sessions, k)
		}
	}
	for k, v := range s.revoked {
		if !now.Before(v) {
			delete(s.revoked, k)
		}
	}
	for k, v := range s.keys {
		if !v.ExpiresAt.IsZero() && !now.Before(v.ExpiresAt) {
			delete(s.keys, k)
			delete(s.keyIDs, v.ID)
		}
	}
	for k, v := range s.windows {
		if !now.Before(v.end) {
			delete(s.windows, k)
		}
	}
	for k, v := range s.markers {
		if !now.Before(v) {
			delete(s.markers, k)
		}
	}
	for id, c := range s.clients {
		if clientExpired(c, now) {
			s.dropClient(id)
		}
	}
	live := len(s.clients) + len(s.authreqs) + len(s.codes) + len(s.usedCodes) + len(s.tokens) + len(s.families) +
		len(s.sessions) + len(s.revoked) + len(s.keys) + len(s.windows) + len(s.markers)
	s.writes = 0
	s.nextGC = max(1024, live)
}

// clone copies a record without slices or pointers; records that have
// them have a Clone method (store.Client.Clone, …).
func clone[T any](v *T) *T { n := *v; return &n }

// ---- clients ----

func clientExpired(c *store.Client, now time.Time) bool {
	return !c.ExpiresAt.IsZero() && !now.Before(c.ExpiresAt)
}

// liveClient returns the client when it exists and has not expired.
func (s *Store) liveClient(id string, now time.Time) (*store.Client, bool) {
	c, ok := s.clients[id]
	if !ok || clientExpired(c, now) {
		return nil, false
	}
	return c, true
}

// dropClient removes a client and its per-IP entry. Callers hold mu.
func (s *Store) dropClient(id string) {
	c, ok := s.clients[id]
	if !ok {
		return
	}
	delete(s.clients, id)
	if ids := s.clientsIP[c.RegisteredIP]; ids != nil {
		delete(ids, id)
		if len(ids) == 0 {
			delete(s.clientsIP, c.RegisteredIP)
		}
	}
}

// CreateClient stores c; a client with ExpiresAt set disappears then unless
// TouchClient renews it.
func (s *Store) CreateClient(_ context.Context, c *store.Client) error {
	if err := c.Validate(); err != nil {
		return err
	}
	if err := s.lock(); err != nil {
		return err
	}
	defer s.mu.Unlock()
	now := s.now()
	if !c.ExpiresAt.IsZero() {
		if _, err := store.Until("client", c.ExpiresAt, now); err != nil {
			return err
		}
	}
	if old, live := s.liveClient(c.ID, now); live {
		if store.SameRecord(old, c) {
			return nil
		}
		return store.ErrConflict
	}
	s.dropClient(c.ID) // an expired one not swept yet
	s.clients[c.ID] = c.Clone()
	if c.RegisteredIP != "" {
		ids := s.clientsIP[c.RegisteredIP]
		if ids == nil {
			ids = map[string]struct{}{}
			s.clientsIP[c.RegisteredIP] = ids
		}
		ids[c.ID] = struct{}{}
	}
	s.wrote(now)
	return nil
}

func (s *Store) GetClient(_ context.Context, id string) (*store.Client, error) {
	if err := s.lock(); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	c, ok := s.liveClient(id, s.now())
	if !ok {
		return nil, store.ErrNotFound
	}
	return c.Clone(), nil
}

func (s *Store) ListClients(context.Context) ([]*store.Client, error) {
	if err := s.lock(); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	now := s.now()
	out := make([]*store.Client, 0, len(s.clients))
	for _, c := range s.clients {
		if !clientExpired(c, now) {
			out = append(out, c.Clone())
		}
	}
	store.SortByID(out)
	return out, nil
}

func (s *Store) DeleteClient(ctx context.Context, id string) error {
	if err := s.lock(); err != nil {
		return err
	}
	_, ok := s.liveClient(id, s.now())
	s.dropClient(id)
	s.mu.Unlock()
	if !ok {
		return store.ErrNotFound
	}
	return s.Publish(ctx, store.Event{Kind: store.EventClient, ID: id})
}

// TouchClient moves an expiring client's end to ttl from now; permanent
// clients stay permanent.
func (s *Store) TouchClient(_ context.Context, id string, ttl time.Duration) error {
	if err := store.CheckTTL("client ttl", ttl); err != nil {
		return err
	}
	if err := s.lock(); err != nil {
		return err
	}
	defer s.mu.Unlock()
	now := s.now()
	c, ok := s.liveClient(id, now)
	if !ok {
		return store.ErrNotFound
	}
	if !c.ExpiresAt.IsZero() {
		c.ExpiresAt = now.Add(ttl)
	}
	return nil
}

// CountClientsByIP counts the live clients registered from ip.
func (s *Store) CountClientsByIP(_ context.Context, ip string) (int, error) {
	if err := s.lock(); err != nil {
		return 0, err
	}
	defer s.mu.Unlock()
	now := s.now()
	n := 0
	for id := range s.clientsIP[ip] {
		if _, ok := s.liveClient(id, now); ok {
			n++
		}
	}
	return n, nil
}

// ---- pending authorization requests ----

func (s *Store) PutAuthRequest(_ context.Context, r *store.AuthRequest, ttl time.Duration) error {
	if err := r.Validate(); err != nil {
		return err
	}
	if err := store.CheckTTL("auth request ttl", ttl); err != nil {
		return err
	}
	if err := s.lock(); err != nil {
		return err
	}
	defer s.mu.Unlock()
	now := s.now()
	s.authreqs[r.ID] = authReq{r: clone(r), exp: now.Add(ttl)}
	s.wrote(now)
	return nil
}

func (s *Store) getAuthRequest(id string, take bool) (*store.AuthRequest, error) {
	if err := s.lock(); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	e, ok := s.authreqs[id]
	if !ok || !s.now().Before(e.exp) {
		return nil, store.ErrNotFound
	}
	if take {
		delete(s.authreqs, id)
	}
	return clone(e.r), nil
}

func (s *Store) GetAuthRequest(_ context.Context, id string) (*store.AuthRequest, error) {
	return s.getAuthRequest(id, false)
}

func (s *Store) TakeAuthRequest(_ context.Context, id string) (*store.AuthRequest, error) {
	return s.getAuthRequest(id, true)
}

// ---- authorization codes ----

func (s *Store) PutCode(_ context.Context, c *store.AuthCode) error {
	if err := c.Validate(); err != nil {
		return err
	}
	if err := s.lock(); err != nil {
		return err
	}
	defer s.mu.Unlock()
	now := s.now()
	if _, err := store.Until("code", c.ExpiresAt, now); err != nil {
		return err
	}
	if u, ok := s.usedCodes[c.Hash]; ok && now.Before(u.exp) {
		return store.ErrConflict
	}
	if old, ok := s.codes[c.Hash]; ok && now.Before(old.ExpiresAt) {
		if store.SameRecord(old, c) {
			return nil
		}
		return store.ErrConflict
	}
	s.codes[c.Hash] = clone(c)
	s.wrote(now)
	return nil
}

func (s *Store) RedeemCode(_ context.Context, hash string, b store.CodeBinding) (*store.AuthCode, error) {
	if err := s.lock(); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	now := s.now()
	if c, ok := s.codes[hash]; ok {
		if !now.Before(c.ExpiresAt) {
			delete(s.codes, hash)
		} else {
			if !b.Matches(c) {
				return clone(c), store.ErrCodeMismatch // left in place for its client
			}
			delete(s.codes, hash)
			s.usedCodes[hash] = usedCode{code: c, exp: now.Add(usedCodeTTL)}
			s.wrote(now)
			return clone(c), nil
		}
	}
	if u, ok := s.usedCodes[hash]; ok && now.Before(u.exp) {
		if !b.Matches(u.code) {
			return clone(u.code), store.ErrCodeMismatch // not a replay by the code's client
		}
		return clone(u.code), store.ErrCodeReused
	}
	return nil, store.ErrNotFound
}

// ---- refresh-token families ----

func (s *Store) CreateFamily(_ context.Context, f *store.RefreshFamily, tokenTTL time.Duration) error {
	if err := f.Validate(); err != nil {
		return err
	}
	if err := store.CheckTTL("refresh token ttl", tokenTTL); err != nil {
		return err
	}
	if err := s.lock(); err != nil {
		return err
	}
	defer s.mu.Unlock()
	now := s.now()
	if _, err := store.Until("family", f.ExpiresAt, now); err != nil {
		return err
	}
	if old, ok := s.families[f.ID]; ok && now.Before(old.ExpiresAt) {
		was := *old
		was.Revoked = f.Revoked
		switch {
		case !store.SameRecord(&was, f):
			return store.ErrConflict
		case old.Revoked:
			return store.ErrFamilyRevoked
		}
		return nil
	}
	if t, ok := s.tokens[f.CurrentHash]; ok && now.Before(t.exp) {
		return store.ErrConflict
	}
	exp := now.Add(tokenTTL)
	if f.ExpiresAt.Before(exp) {
		exp = f.ExpiresAt
	}
	rec := clone(f)
	denied, ok := s.revoked[store.RevokedFamilyJTI(f.ID)]
	preRevoked := ok && now.Before(denied)
	rec.Revoked = rec.Revoked || preRevoked
	s.families[f.ID] = rec
	s.tokens[f.CurrentHash] = &rtoken{family: f.ID, exp: exp}
	s.wrote(now)
	if preRevoked {
		return store.ErrFamilyRevoked
	}
	return nil
}

// liveFamily returns the family of token hash when both are unexpired.
func (s *Store) liveFamily(hash string, now time.Time) (*rtoken, *store.RefreshFamily, bool) {
	t, ok := s.tokens[hash]
	if !ok || !now.Before(t.exp) {
		return nil, nil, false
	}
	f, ok := s.families[t.family]
	if !ok || !now.Before(f.ExpiresAt) {
		return nil, nil, false
	}
	return t, f, true
}

func (s *Store) LookupRefresh(_ context.Context, hash string) (*store.RefreshFamily, error) {
	if err := s.lock(); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	_, f, ok := s.liveFamily(hash, s.now())
	if !ok {
		return nil, store.ErrNotFound
	}
	return clone(f), nil
}

func (s *Store) Rotate(_ context.Context, r store.Rotation) (*store.RefreshFamily, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	if err := s.lock(); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	clock := s.now()
	now := r.Now
	if now.IsZero() {
		now = clock
	}
	t, f, ok := s.liveFamily(r.OldHash, clock)
	if !ok || f.Revoked || (r.FamilyID != "" && r.FamilyID != f.ID) {
		return nil, store.ErrNotFound
	}
	if t.rotated {
		if f.CurrentHash == r.NewHash {
			return clone(f), nil // this rotation, resent
		}
		if now.Sub(t.rotatedAt) <= r.Grace {
			return nil, store.ErrRefreshRace
		}
		f.Revoked = true
		return clone(f), store.ErrRefreshReused
	}
	if f.CurrentHash != r.OldHash {
		return nil, store.ErrNotFound // an active token that is not current: never issued by Rotate
	}
	exp := now.Add(r.TokenTTL)
	if f.ExpiresAt.Before(exp) {
		exp = f.ExpiresAt
	}
	if !clock.Before(exp) {
		return nil, store.ErrNotFound
	}
	if nt, ok := s.tokens[r.NewHash]; ok && clock.Before(nt.exp) {
		return nil, store.ErrConflict
	}
	t.rotated, t.rotatedAt = true, now
	s.tokens[r.NewHash] = &rtoken{family: f.ID, exp: exp}
	f.CurrentHash = r.NewHash
	f.AccessJTI = r.AccessJTI
	f.AccessExp = r.AccessExp
	s.wrote(clock)
	return clone(f), nil
}

func (s *Store) RevokeFamily(_ context.Context, id string) (*store.RefreshFamily, error) {
	if err := s.lock(); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	f, ok := s.families[id]
	if !ok || !s.now().Before(f.ExpiresAt) {
		return nil, store.ErrNotFound
	}
	f.Revoked = true
	return clone(f), nil
}

// ListFamilies returns the user's live (unexpired, unrevoked) families,
// oldest first.
func (s *Store) ListFamilies(_ context.Context, userID string) ([]*store.RefreshFamily, error) {
	if err := s.lock(); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	now := s.now()
	var out []*store.RefreshFamily
	for _, f := range s.families {
		if f.UserID == userID && !f.Revoked && now.Before(f.ExpiresAt) {
			out = append(out, clone(f))
		}
	}
	store.SortByCreated(out)
	return out, nil
}

// ---- consents ----

func (s *Store) SaveConsent(_ context.Context, c *store.Consent) error {
	if err := c.Validate(); err != nil {
		return err
	}
	if err := s.lock(); err != nil {
		return err
	}
	defer s.mu.Unlock()
	n := clone(c)
	n.Scope = store.NormScope(c.Scope)
	m := s.consents[c.UserID]
	if m == nil {
		m = map[string]*store.Consent{}
		s.consents[c.UserID] = m
	}
	m[n.Key()] = n
	return nil
}

// HasConsent is true when a remembered consent for the same client,
// byte-equal redirect URI and resource covers every requested scope.
func (s *Store) HasConsent(_ context.Context, want *store.Consent) (bool, error) {
	if err := s.lock(); err != nil {
		return false, err
	}
	defer s.mu.Unlock()
	for _, c := range s.consents[want.UserID] {
		if c.Covers(want) {
			return true, nil
		}
	}
	return false, nil
}

func (s *Store) ListConsents(_ context.Context, userID string) ([]*store.Consent, error) {
	if err := s.lock(); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	var out []*store.Consent
	for _, c := range s.consents[userID] {
		out = append(out, clone(c))
	}
	store.SortConsents(out)
	return out, nil
}

// DeleteConsents forgets the user's consents for clientID, or all of the
// user's consents when clientID is empty.
func (s *Store) DeleteConsents(_ context.Context, userID, clientID string) error {
	if err := s.lock(); err != nil {
		return err
	}
	defer s.mu.Unlock()
	if clientID == "" {
		delete(s.consents, userID)
		return nil
	}
	maps.DeleteFunc(s.consents[userID], func(_ string, c *store.Consent) bool { return c.ClientID == clientID })
	if len(s.consents[userID]) == 0 {
		delete(s.consents, userID)
	}
	return nil
}

// ---- sessions ----

func (s *Store) PutSession(_ context.Context, hash string, sess *store.Session) error {
	if err := sess.Validate(hash); err != nil {
		return err
	}
	if err := s.lock(); err != nil {
		return err
	}
	defer s.mu.Unlock()
	now := s.now()
	if _, err := store.Until("session", sess.ExpiresAt, now); err != nil {
		return err
	}
	s.sessions[hash] = clone(sess)
	s.wrote(now)
	return nil
}

func (s *Store) GetSession(_ context.Context, hash string) (*store.Session, error) {
	if err := s.lock(); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	sess, ok := s.sessions[hash]
	if !ok || !s.now().Before(sess.ExpiresAt) {
		return nil, store.ErrNotFound
	}
	return clone(sess), nil
}

// DeleteSession is idempotent: deleting an unknown session is not an error.
func (s *Store) DeleteSession(_ context.Context, hash string) error {
	if err := s.lock(); err != nil {
		return err
	}
	defer s.mu.Unlock()
	delete(s.sessions, hash)
	return nil
}

// ---- access-token revocations ----

func (s *Store) RevokeJTI(ctx context.Context, jti string, exp time.Time) error {
	if err := store.CheckJTI(jti); err != nil {
		return err
	}
	if err := s.lock(); err != nil {
		return err
	}
	now := s.now()
	live := now.Before(exp)
	if live && exp.After(s.revoked[jti]) {
		s.revoked[jti] = exp
		s.wrote(now)
	}
	s.mu.Unlock()
	if !live {
		return nil // already expired: nothing left to deny
	}
	return s.Publish(ctx, store.Event{Kind: store.EventRevokedJTI, ID: jti, Exp: exp})
}

func (s *Store) IsRevoked(_ context.Context, jti string) (bool, error) {
	if err := s.lock(); err != nil {
		return false, err
	}
	defer s.mu.Unlock()
	exp, ok := s.revoked[jti]
	return ok && s.now().Before(exp), nil
}

func (s *Store) RevokedJTIs(context.Context) (map[string]time.Time, error) {
	if err := s.lock(); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	now := s.now()
	out := make(map[string]time.Time, len(s.revoked))
	for j, exp := range s.revoked {
		if now.Before(exp) {
			out[j] = exp
		}
	}
	return out, nil
}

// ---- API keys ----

func (s *Store) liveKey(hash string, now time.Time) (*store.APIKey, bool) {
	k, ok := s.keys[hash]
	if !ok || (!k.ExpiresAt.IsZero() && !now.Before(k.ExpiresAt)) {
		return nil, false
	}
	return k, true
}

// CreateKey stores k; a key with ExpiresAt set disappears at that time.
func (s *Store) CreateKey(_ context.Context, k *store.APIKey) error {
	if err := k.Validate(); err != nil {
		return err
	}
	if err := s.lock(); err != nil {
		return err
	}
	defer s.mu.Unlock()
	now := s.now()
	if h, ok := s.keyIDs[k.ID]; ok {
		if old, live := s.liveKey(h, now); live {
			if h == k.Hash && store.SameRecord(old, k) {
				return nil
			}
			return store.ErrConflict
		}
	}
	if _, live := s.liveKey(k.Hash, now); live {
		return store.ErrConflict
	}
	s.keys[k.Hash] = k.Clone()
	s.keyIDs[k.ID] = k.Hash
	s.wrote(now)
	return nil
}

func (s *Store) GetKeyByHash(_ context.Context, hash string) (*store.APIKey, error) {
	if err := s.lock(); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	k, ok := s.liveKey(hash, s.now())
	if !ok {
		return nil, store.ErrNotFound
	}
	return k.Clone(), nil
}

func (s *Store) ListKeys(context.Context) ([]*store.APIKey, error) {
	if err := s.lock(); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	now := s.now()
	out := make([]*store.APIKey, 0, len(s.keys))
	for h := range s.keys {
		if k, ok := s.liveKey(h, now); ok {
			out = append(out, k.Clone())
		}
	}
	store.SortByCreated(out)
	return out, nil
}

// RevokeKey marks the key revoked (idempotently) and publishes EventKey.
func (s *Store) RevokeKey(ctx context.Context, id string) (*store.APIKey, error) {
	if err := s.lock(); err != nil {
		return nil, err
	}
	k, ok := s.liveKey(s.keyIDs[id], s.now())
	if !ok {
		s.mu.Unlock()
		return nil, store.ErrNotFound
	}
	k.Revoked = true
	out := k.Clone()
	s.mu.Unlock()
	return out, s.Publish(ctx, store.Event{Kind: store.EventKey, ID: out.Hash})
}

// TouchKeys raises LastUsed (never lowers it); unknown hashes are ignored.
func (s *Store) TouchKeys(_ context.Context, used map[string]time.Time) error {
	if err := s.lock(); err != nil {
		return err
	}
	defer s.mu.Unlock()
	now := s.now()
	for h, t := range used {
		if k, ok := s.liveKey(h, now); ok && t.After(k.LastUsed) {
			k.LastUsed = t
		}
	}
	return nil
}

// ---- agents ----

func (s *Store) PutAgent(ctx context.Context, a *store.Agent) error {
	if err := a.Storable(); err != nil {
		return err
	}
	if err := s.lock(); err != nil {
		return err
	}
	s.agents[a.ID] = a.Clone()
	s.mu.Unlock()
	return s.Publish(ctx, store.Event{Kind: store.EventAgent, ID: a.ID})
}

func (s *Store) CreateAgent(ctx context.Context, a *store.Agent) error {
	if err := a.Storable(); err != nil {
		return err
	}
	if err := s.lock(); err != nil {
		return err
	}
	if old, ok := s.agents[a.ID]; ok {
		s.mu.Unlock()
		if store.SameRecord(old, a) {
			return nil
		}
		return store.ErrConflict
	}
	s.agents[a.ID] = a.Clone()
	s.mu.Unlock()
	return s.Publish(ctx, store.Event{Kind: store.EventAgent, ID: a.ID})
}

func (s *Store) GetAgent(_ context.Context, id string) (*store.Agent, error) {
	if err := s.lock(); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	a, ok := s.agents[id]
	if !ok {
		return nil, store.ErrNotFound
	}
	return a.Clone(), nil
}

func (s *Store) ListAgents(context.Context) ([]*store.Agent, error) {
	if err := s.lock(); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	out := make([]*store.Agent, 0, len(s.agents))
	for _, a := range s.agents {
		out = append(out, a.Clone())
	}
	store.SortByID(out)
	return out, nil
}

func (s *Store) DeleteAgent(ctx context.Context, id string) error {
	if err := s.lock(); err != nil {
		return err
	}
	_, ok := s.agents[id]
	delete(s.agents, id)
	s.mu.Unlock()
	if !ok {
		return store.ErrNotFound
	}
	return s.Publish(ctx, store.Event{Kind: store.EventAgent, ID: id})
}

// ---- rate limiting ----

// Allow counts a hit in a fixed window starting at the key's first hit. It
// returns whether the hit is within limit and the time left in the window.
func (s *Store) Allow(_ context.Context, key string, limit int, win time.Duration) (bool, time.Duration, error) {
	if err := store.CheckTTL("rate-limit window", win); err != nil {
		return false, 0, err
	}
	if err := s.lock(); err != nil {
		return false, 0, err
	}
	defer s.mu.Unlock()
	now := s.now()
	w, ok := s.windows[key]
	if !ok || !now.Before(w.end) {
		w = &window{end: now.Add(win)}
		s.windows[key] = w
		s.wrote(now)
	}
	w.count++
	return w.count <= limit, w.end.Sub(now), nil
}

// Refund takes back one hit on key's live window.
func (s *Store) Refund(_ context.Context, key string) error {
	if err := s.lock(); err != nil {
		return err
	}
	defer s.mu.Unlock()
	if w, ok := s.windows[key]; ok && s.now().Before(w.end) && w.count > 0 {
		w.count--
	}
	return nil
}

// ---- markers ----

// MarkOnce records key until now+ttl; only the first call while the mark
// lives reports first.
func (s *Store) MarkOnce(_ context.Context, key string, ttl time.Duration) (bool, error) {
	if err := store.CheckMarker(key, ttl); err != nil {
		return false, err
	}
	if err := s.lock(); err != nil {
		return false, err
	}
	defer s.mu.Unlock()
	now := s.now()
	if exp, ok := s.markers[key]; ok && now.Before(exp) {
		return false, nil
	}
	s.markers[key] = now.Add(ttl)
	s.wrote(now)
	return true, nil
}

// ---- events ----

// subscriber delivers events in order on its own goroutine so a slow
// callback never blocks publishers; the queue is unbounded because a
// dropped revocation event would be a security bug.
type subscriber struct {
	fn     func(store.Event)
	mu     sync.Mutex
	queue  []store.Event
	wake   chan struct{}
	closed chan struct{}
}

func (s *Store) Publish(_ context.Context, e store.Event) error {
	s.subMu.Lock()
	defer s.subMu.Unlock()
	for sub := range s.subs {
		sub.mu.Lock()
		sub.queue = append(sub.queue, e)
		sub.mu.Unlock()
		select {
		case sub.wake <- struct{}{}:
		default:
		}
	}
	return nil
}

func (s *Store) Subscribe(ctx context.Context, fn func(store.Event)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	sub := &subscriber{fn: fn, wake: make(chan struct{}, 1), closed: make(chan struct{})}
	s.subMu.Lock()
	if s.subs == nil {
		s.subMu.Unlock()
		return store.ErrClosed
	}
	s.subs[sub] = struct{}{}
	s.subsWG.Add(1)
	s.subMu.Unlock()
	go func() {
		defer s.subsWG.Done()
		for {
			select {
			case <-ctx.Done():
				s.unsubscribe(sub)
				return
			case <-sub.closed:
				return
			case <-sub.wake:
			}
			sub.mu.Lock()
			q := sub.queue
			sub.queue = nil
			sub.mu.Unlock()
			for _, e := range q {
				if ctx.Err() != nil {
					break
				}
				fn(e)
			}
		}
	}()
	return nil
}

func (s *Store) unsubscribe(sub *subscriber) {
	s.subMu.Lock()
	delete(s.subs, sub)
	s.subMu.Unlock()
}

// ---- lifecycle ----

func (s *Store) Ping(context.Context) error {
	if err := s.lock(); err != nil {
		return err
	}
	s.mu.Unlock()
	return nil
}

// Close stops every subscription; later calls fail.
func (s *Store) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.subMu.Lock()
	for sub := range s.subs {
		close(sub.closed)
	}
	s.subs = nil
	s.subMu.Unlock()
	s.subsWG.Wait()
	return nil
}
