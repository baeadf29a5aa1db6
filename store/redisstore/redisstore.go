// Package redisstore is the store.Store on Redis (go-redis/v9), shared by
// every gateway replica. Expiry is Redis TTLs; every check-and-change is one
// Lua script; cache invalidation travels over pub/sub (<prefix>events).
//
// Keys (all under the prefix): client:<id> + clients + clientsip:<ip>
// (sorted set of client ids by expiry), authreq:<id>,
// code:<hash> + codeused:<hash>, rt:<hash>, rtfam:<id> + rtuser:<user>,
// consent:<user>:<client> + consents:<user>, session:<hash>,
// revoked:<jti> + revokedset, key:<hash> + keyid:<id> + keys,
// agent:<id> + agents, rl:<key>, mark:<key>.
//
// It runs on one server, a Sentinel-managed primary or a Redis Cluster
// (Dial). Scripts get every key they touch in KEYS; on a cluster those keys
// share a hash slot (keys.go).
package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mcpgateway/mcp-gateway/internal/metrics"
	"github.com/mcpgateway/mcp-gateway/store"
)

// usedCodeTTL keeps a redeemed code's record so a replay is detected
// (longer than any code lifetime).
const usedCodeTTL = 10 * time.Minute

// DefaultPrefix is used when New or NewFromClient get an empty prefix.
const DefaultPrefix = "mcpgw:"

var _ store.Store = (*Store)(nil)

// Store is a store.Store on Redis. It is safe for concurrent use.
type Store struct {
	rdb     redis.UniversalClient
	p       string // key prefix
	cluster bool   // hash-tagged key layout (see key)
	wait    bool   // decisive writes WAIT for a replica (Sentinel; see run)
	channel string
	now     func() time.Time
	owned   bool // Close closes rdb

	closeOnce sync.Once
	closing   chan struct{}
	subs      sync.WaitGroup
}

// Option configures a Store.
type Option func(*Store)

// WithClock sets the clock used to turn ExpiresAt values into TTLs and to
// judge expiry in listings (tests pair it with miniredis FastForward).
func WithClock(now func() time.Time) Option { return func(s *Store) { s.now = now } }

// New connects to the Redis a URL names (see Dial: one server, a Cluster
// or a Sentinel-managed primary, each with TLS and auth) and pings it.
// Close closes the connection.
func New(ctx context.Context, url, prefix string, opts ...Option) (*Store, error) {
	rdb, mode, err := Dial(url)
	if err != nil {
		return nil, err
	}
	if err := CheckPrefix(mode, prefix); err != nil {
		_ = rdb.Close()
		return nil, err
	}
	s := NewFromClient(rdb, prefix, opts...)
	s.owned = true
	s.wait = mode == Sentinel
	if err := s.Ping(ctx); err != nil {
		_ = rdb.Close()
		return nil, err
	}
	s.LoadScripts(ctx)
	return s, nil
}

// LoadScripts loads every script on every primary of a cluster (New does), so that
// the first use of a script on a shard is one round trip (EVALSHA), not
// two (NOSCRIPT, then EVAL). Best effort: Script.Run falls back to EVAL on
// a primary that lacks one (a failover, a new shard).
func (s *Store) LoadScripts(ctx context.Context) {
	c, ok := s.rdb.(*redis.ClusterClient)
	if !ok {
		return
	}
	_ = c.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error {
		for _, sc := range scripts {
			if err := sc.Load(ctx, n).Err(); err != nil {
				return err
			}
		}
		return nil
	})
}

// NewFromClient wraps an existing client; the caller keeps ownership of
// rdb (Close does not close it). A *redis.ClusterClient gets the cluster key
// layout (hash tags, see key).
func NewFromClient(rdb redis.UniversalClient, prefix string, opts ...Option) *Store {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	_, cluster := rdb.(*redis.ClusterClient)
	s := &Store{rdb: rdb, p: prefix, cluster: cluster, channel: prefix + "events", now: time.Now, closing: make(chan struct{})}
	for _, o := range opts {
		o(s)
	}
	return s
}

// TagsSecrets reports whether the store uses the cluster key layout: codes
// and refresh tokens minted for it must carry their family's tag
// (token.Tagged; see store.TagsSecrets).
func (s *Store) TagsSecrets() bool { return s.cluster }

// ---- plumbing: metrics, errors, encoding ----

type opMetrics struct {
	seconds interface{ Observe(float64) }
	errors  interface{ Inc() }
}

var opCache sync.Map // op name → *opMetrics

func metricsFor(op string) *opMetrics {
	if m, ok := opCache.Load(op); ok {
		return m.(*opMetrics)
	}
	m, _ := opCache.LoadOrStore(op, &opMetrics{
		seconds: metrics.StoreSeconds.WithLabelValues(op),
		errors:  metrics.StoreErrors.WithLabelValues(op),
	})
	return m.(*opMetrics)
}

// domainErr reports errors that are answers, not failures.
func domainErr(err error) bool {
	return errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) ||
		errors.Is(err, store.ErrCodeReused) || errors.Is(err, store.ErrRefreshRace) ||
		errors.Is(err, store.ErrRefreshReused)
}

// observe records latency and failures of one operation; call it deferred
// with a pointer to the named error result.
func observe(op string, start time.Time, err *error) {
	m := metricsFor(op)
	m.seconds.Observe(time.Since(start).Seconds())
	if *err != nil && !domainErr(*err) {
		m.errors.Inc()
	}
}

// errUntagged refuses a refresh token whose hash slot is not its family's:
// on a cluster the rotation script could not reach both keys.
var errUntagged = fmt.Errorf("%w: on a cluster a refresh token must carry its family's tag (token.Tagged)", store.ErrInvalid)

// unavailable wraps a backend failure so callers can tell it from "not found".
func unavailable(op string, err error) error {
	return fmt.Errorf("%w: %s: %w", store.ErrUnavailable, op, err)
}

// getJSON reads a JSON record; redis.Nil becomes ErrNotFound.
func (s *Store) getJSON(ctx context.Context, op, key string, v any) error {
	b, err := s.rdb.Get(ctx, key).Bytes()
	if errors.Is(err, redis.Nil) {
		return store.ErrNotFound
	}
	if err != nil {
		return unavailable(op, err)
	}
	return decode(op, b, v)
}

func decode(op string, b []byte, v any) error {
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("redisstore: %s: corrupt record: %w", op, err)
	}
	return nil
}

func encode(v any) string {
	b, err := json.Marshal(v)
	if err != nil { // records are plain structs: cannot happen
		panic(err)
	}
	return string(b)
}

// ttlUntil is the TTL that ends at t, or an error if t is not in the future.
func (s *Store) ttlUntil(what string, t time.Time) (time.Duration, error) {
	return store.Until(what, t, s.now())
}

func ms(d time.Duration) int64 { return d.Milliseconds() }

func nanos(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return strconv.FormatInt(t.UnixNano(), 10)
}

func fromNanos(s string) time.Time {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || s == "" {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// escaper is built once: a Replacer builds its tables on first use.
var escaper = strings.NewReplacer("%", "%25", ":", "%3A")

// esc makes a user id safe as one ':'-separated key component.
func esc(s string) string { return escaper.Replace(s) }

// fields turns a Lua HGETALL reply into a map.
func fields(v any) map[string]string {
	arr, _ := v.([]any)
	m := make(map[string]string, len(arr)/2)
	for i := 0; i+1 < len(arr); i += 2 {
		k, _ := arr[i].(string)
		val, _ := arr[i+1].(string)
		m[k] = val
	}
	return m
}

// scriptReply splits a {status, payload?} script reply.
func scriptReply(v any) (string, any) {
	arr, _ := v.([]any)
	if len(arr) == 0 {
		return "", nil
	}
	st, _ := arr[0].(string)
	if len(arr) > 1 {
		return st, arr[1]
	}
	return st, nil
}

// ---- clients ----

// CreateClient stores c; with ExpiresAt set the record gets that TTL, and a
// client with RegisteredIP joins clientsip:<ip> (score: its expiry).
func (s *Store) CreateClient(ctx context.Context, c *store.Client) (err error) {
	defer observe("CreateClient", time.Now(), &err)
	if err := c.Validate(); err != nil {
		return err
	}
	var ttl time.Duration
	if !c.ExpiresAt.IsZero() {
		if ttl, err = s.ttlUntil("client", c.ExpiresAt); err != nil {
			return err
		}
	}
	keys := []string{s.kClient(c.ID), s.kClients()}
	if c.RegisteredIP != "" {
		keys = append(keys, s.kClientsIP(c.RegisteredIP))
	}
	n, err := createClient.Run(ctx, s.rdb, keys, encode(c), c.ID, ms(ttl), c.ExpiresAt.UnixMilli()).Int()
	if err != nil {
		return unavailable("CreateClient", err)
	}
	if n == 0 {
		return store.ErrConflict
	}
	return nil
}

// clientWithTTL decodes a client record and sets ExpiresAt from the key's
// PTTL (TouchClient moves the TTL, not the stored JSON).
func (s *Store) clientWithTTL(op string, b []byte, pttl time.Duration) (*store.Client, error) {
	c := new(store.Client)
	if err := decode(op, b, c); err != nil {
		return nil, err
	}
	c.ExpiresAt = time.Time{}
	if pttl > 0 {
		c.ExpiresAt = s.now().Add(pttl).UTC()
	}
	return c, nil
}

func (s *Store) GetClient(ctx context.Context, id string) (c *store.Client, err error) {
	defer observe("GetClient", time.Now(), &err)
	key := s.kClient(id)
	pipe := s.rdb.Pipeline()
	get := pipe.Get(ctx, key)
	pttl := pipe.PTTL(ctx, key)
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, unavailable("GetClient", err)
	}
	b, err := get.Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, unavailable("GetClient", err)
	}
	return s.clientWithTTL("GetClient", b, pttl.Val())
}

// TouchClient renews an expiring client's TTL (and its clientsip score).
func (s *Store) TouchClient(ctx context.Context, id string, ttl time.Duration) (err error) {
	defer observe("TouchClient", time.Now(), &err)
	if err := store.CheckTTL("client ttl", ttl); err != nil {
		return err
	}
	// The registered IP never changes, so reading it first is safe; the
	// script re-checks that the client still exists.
	b, err := s.rdb.Get(ctx, s.kClient(id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return store.ErrNotFound
	}
	if err != nil {
		return unavailable("TouchClient", err)
	}
	var c store.Client
	if err := decode("TouchClient", b, &c); err != nil {
		return err
	}
	keys := []string{s.kClient(id)}
	if c.RegisteredIP != "" {
		keys = append(keys, s.kClientsIP(c.RegisteredIP))
	}
	n, err := touchClient.Run(ctx, s.rdb, keys, ms(ttl), s.now().UnixMilli(), id).Int()
	if err != nil {
		return unavailable("TouchClient", err)
	}
	if n == 0 {
		return store.ErrNotFound
	}
	return nil
}

// CountClientsByIP prunes clientsip:<ip> of expired clients (the score is
// the expiry, which TouchClient moves) and counts the rest, in one round
// trip; DeleteClient removes deleted ones.
func (s *Store) CountClientsByIP(ctx context.Context, ip string) (n int, err error) {
	defer observe("CountClientsByIP", time.Now(), &err)
	index := s.kClientsIP(ip)
	pipe := s.rdb.Pipeline()
	pipe.ZRemRangeByScore(ctx, index, "-inf", strconv.FormatInt(s.now().UnixMilli(), 10))
	card := pipe.ZCard(ctx, index)
	if _, err := pipe.Exec(ctx); err != nil {
		return 0, unavailable("CountClientsByIP", err)
	}
	return int(card.Val()), nil
}

// listJSON loads every record named in an index set, dropping members
// whose record is gone.
func (s *Store) listJSON(ctx context.Context, op, index string, key func(string) string) ([][]byte, error) {
	ids, err := s.rdb.SMembers(ctx, index).Result()
	if err != nil {
		return nil, unavailable(op, err)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = key(id)
	}
	vals, err := s.rdb.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, unavailable(op, err)
	}
	var out [][]byte
	var stale []any
	for i, v := range vals {
		str, ok := v.(string)
		if !ok {
			stale = append(stale, ids[i])
			continue
		}
		out = append(out, []byte(str))
	}
	if len(stale) > 0 {
		_ = s.rdb.SRem(ctx, index, stale...).Err() // best effort
	}
	return out, nil
}

// eachIndexedHash calls fn with the hash record of every member of an index
// set (record key(member)), in one pipeline, and removes from the set the
// members fn calls stale (record gone, or never to be listed again).
func (s *Store) eachIndexedHash(ctx context.Context, op, index string, key func(string) string, fn func(member string, m map[string]string) (stale bool, err error)) error {
	members, err := s.rdb.SMembers(ctx, index).Result()
	if err != nil {
		return unavailable(op, err)
	}
	if len(members) == 0 {
		return nil
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(members))
	for i, m := range members {
		cmds[i] = pipe.HGetAll(ctx, key(m))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return unavailable(op, err)
	}
	var stale []any
	for i, c := range cmds {
		gone, err := fn(members[i], c.Val())
		if err != nil {
			return err
		}
		if gone {
			stale = append(stale, members[i])
		}
	}
	if len(stale) > 0 {
		_ = s.rdb.SRem(ctx, index, stale...).Err() // best effort
	}
	return nil
}

func (s *Store) ListClients(ctx context.Context) (out []*store.Client, err error) {
	defer observe("ListClients", time.Now(), &err)
	index := s.kClients()
	ids, err := s.rdb.SMembers(ctx, index).Result()
	if err != nil {
		return nil, unavailable("ListClients", err)
	}
	if len(ids) == 0 {
		return []*store.Client{}, nil
	}
	pipe := s.rdb.Pipeline()
	gets := make([]*redis.StringCmd, len(ids))
	ttls := make([]*redis.DurationCmd, len(ids))
	for i, id := range ids {
		gets[i] = pipe.Get(ctx, s.kClient(id))
		ttls[i] = pipe.PTTL(ctx, s.kClient(id))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, unavailable("ListClients", err)
	}
	out = make([]*store.Client, 0, len(ids))
	var stale []any
	for i, g := range gets {
		b, err := g.Bytes()
		if errors.Is(err, redis.Nil) {
			stale = append(stale, ids[i]) // expired or deleted
			continue
		}
		if err != nil {
			return nil, unavailable("ListClients", err)
		}
		c, err := s.clientWithTTL("ListClients", b, ttls[i].Val())
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	if len(stale) > 0 {
		_ = s.rdb.SRem(ctx, index, stale...).Err() // best effort
	}
	store.SortByID(out)
	return out, nil
}

func (s *Store) DeleteClient(ctx context.Context, id string) (err error) {
	defer observe("DeleteClient", time.Now(), &err)
	keys := []string{s.kClient(id), s.kClients()}
	// The registered IP never changes: read it to drop the client from its
	// clientsip set too, which CountClientsByIP then only prunes by expiry.
	if b, err := s.rdb.Get(ctx, s.kClient(id)).Bytes(); err == nil {
		var c store.Client
		if decode("DeleteClient", b, &c) == nil && c.RegisteredIP != "" {
			keys = append(keys, s.kClientsIP(c.RegisteredIP))
		}
	} else if !errors.Is(err, redis.Nil) {
		return unavailable("DeleteClient", err)
	}
	n, err := deleteIndexed.Run(ctx, s.rdb, keys, id).Int()
	if err != nil {
		return unavailable("DeleteClient", err)
	}
	if n == 0 {
		return store.ErrNotFound
	}
	return s.Publish(ctx, store.Event{Kind: store.EventClient, ID: id})
}

// ---- pending authorization requests ----

func (s *Store) PutAuthRequest(ctx context.Context, r *store.AuthRequest, ttl time.Duration) (err error) {
	defer observe("PutAuthRequest", time.Now(), &err)
	if err := r.Validate(); err != nil {
		return err
	}
	if err := store.CheckTTL("auth request ttl", ttl); err != nil {
		return err
	}
	if err := s.rdb.Set(ctx, s.kAuthReq(r.ID), encode(r), ttl).Err(); err != nil {
		return unavailable("PutAuthRequest", err)
	}
	return nil
}

func (s *Store) GetAuthRequest(ctx context.Context, id string) (r *store.AuthRequest, err error) {
	defer observe("GetAuthRequest", time.Now(), &err)
	r = new(store.AuthRequest)
	if err := s.getJSON(ctx, "GetAuthRequest", s.kAuthReq(id), r); err != nil {
		return nil, err
	}
	return r, nil
}

func (s *Store) TakeAuthRequest(ctx context.Context, id string) (r *store.AuthRequest, err error) {
	defer observe("TakeAuthRequest", time.Now(), &err)
	v, err := takeOnce.Run(ctx, s.rdb, []string{s.kAuthReq(id), s.kTaken(id)}, attemptID(), ms(takenTTL)).Text()
	if errors.Is(err, redis.Nil) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, unavailable("TakeAuthRequest", err)
	}
	r = new(store.AuthRequest)
	if err := decode("TakeAuthRequest", []byte(v), r); err != nil {
		return nil, err
	}
	return r, nil
}

// ---- authorization codes ----

func (s *Store) PutCode(ctx context.Context, c *store.AuthCode) (err error) {
	defer observe("PutCode", time.Now(), &err)
	if err := c.Validate(); err != nil {
		return err
	}
	ttl, err := s.ttlUntil("code", c.ExpiresAt)
	if err != nil {
		return err
	}
	n, err := putCode.Run(ctx, s.rdb, []string{s.kCode(c.Hash), s.kCodeUsed(c.Hash)}, encode(c), ms(ttl)).Int()
	if err != nil {
		return unavailable("PutCode", err)
	}
	if n == 0 {
		return store.ErrConflict
	}
	return nil
}

func (s *Store) RedeemCode(ctx context.Context, hash string, b store.CodeBinding) (c *store.AuthCode, err error) {
	defer observe("RedeemCode", time.Now(), &err)
	v, err := s.run(ctx, redeemCode, []string{s.kCode(hash), s.kCodeUsed(hash), s.kCodeTry(hash)}, ms(usedCodeTTL),
		b.ClientID, b.RedirectURI, b.CodeChallenge, b.Resource, attemptID()).Result()
	if err != nil {
		return nil, unavailable("RedeemCode", err)
	}
	st, payload := scriptReply(v)
	if st == "nf" {
		return nil, store.ErrNotFound
	}
	str, _ := payload.(string)
	c = new(store.AuthCode)
	if err := decode("RedeemCode", []byte(str), c); err != nil {
		return nil, err
	}
	c.Hash = hash
	switch st {
	case "used":
		return c, store.ErrCodeReused
	case "mismatch":
		return c, store.ErrCodeMismatch
	}
	return c, nil
}

// ---- refresh families ----

// family rebuilds a family from its hash fields: d holds the record as
// created, the other fields what rotation and revocation changed since.
func family(op string, f map[string]string) (*store.RefreshFamily, error) {
	d, ok := f["d"]
	if !ok {
		return nil, store.ErrNotFound
	}
	fam := new(store.RefreshFamily)
	if err := decode(op, []byte(d), fam); err != nil {
		return nil, err
	}
	fam.CurrentHash = f["cur"]
	fam.AccessJTI = f["jti"]
	fam.AccessExp = fromNanos(f["aexp"])
	fam.Revoked = f["rev"] == "1"
	return fam, nil
}

func (s *Store) CreateFamily(ctx context.Context, f *store.RefreshFamily, tokenTTL time.Duration) (err error) {
	defer observe("CreateFamily", time.Now(), &err)
	if err := f.Validate(); err != nil {
		return err
	}
	if err := store.CheckTTL("refresh token ttl", tokenTTL); err != nil {
		return err
	}
	famTTL, err := s.ttlUntil("family", f.ExpiresAt)
	if err != nil {
		return err
	}
	if s.cluster && addrTag(f.CurrentHash) != f.ID {
		return errUntagged
	}
	rec := *f
	rec.CurrentHash, rec.AccessJTI, rec.AccessExp, rec.Revoked = "", "", time.Time{}, false
	keys := []string{s.kFam(f.ID), s.kRT(f.CurrentHash)}
	if s.cluster {
		// Index first: a family missing from the index could not be found
		// to be revoked; a stale index entry is pruned by ListFamilies.
		if err := indexFamily.Run(ctx, s.rdb, []string{s.kRTUser(f.UserID)}, f.ID, ms(famTTL)).Err(); err != nil {
			return unavailable("CreateFamily", err)
		}
	} else {
		keys = append(keys, s.kRTUser(f.UserID), s.kRevoked(store.RevokedFamilyJTI(f.ID)))
	}
	n, err := createFamily.Run(ctx, s.rdb, keys, encode(&rec), f.CurrentHash, f.AccessJTI, nanos(f.AccessExp),
		f.ExpiresAt.UnixMilli(), ms(famTTL), ms(tokenTTL), f.ID).Int()
	if err != nil {
		return unavailable("CreateFamily", err)
	}
	if n == 0 {
		return store.ErrConflict
	}
	if n == 1 && s.cluster {
		if n, err = s.deniedAfterCreate(ctx, f.ID); err != nil {
			return err
		}
	}
	if f.Revoked {
		if _, err := s.RevokeFamily(ctx, f.ID); err != nil {
			return err
		}
	}
	if n == 2 {
		return store.ErrFamilyRevoked
	}
	return nil
}

// deniedAfterCreate is the cluster's check of a new family against its
// denylist entry, which lives in the revocations' slot. Reading it after
// the family exists closes the race with a code replay, which writes the
// entry before it revokes the family: either this read sees the entry, or
// the replay's RevokeFamily sees the family. Returns 2 (and revokes the
// family) when denied, else 1.
func (s *Store) deniedAfterCreate(ctx context.Context, id string) (int, error) {
	denied, err := s.rdb.Exists(ctx, s.kRevoked(store.RevokedFamilyJTI(id))).Result()
	if err != nil {
		return 0, unavailable("CreateFamily", err)
	}
	if denied == 0 {
		return 1, nil
	}
	if err := markRevoked.Run(ctx, s.rdb, []string{s.kFam(id)}).Err(); err != nil {
		return 0, unavailable("CreateFamily", err)
	}
	return 2, nil
}

// tokenFamily returns the family id a refresh token hash belongs to.
func (s *Store) tokenFamily(ctx context.Context, op, hash string) (string, error) {
	id, err := s.rdb.HGet(ctx, s.kRT(hash), "fam").Result()
	if errors.Is(err, redis.Nil) {
		return "", store.ErrNotFound
	}
	if err != nil {
		return "", unavailable(op, err)
	}
	return id, nil
}

func (s *Store) LookupRefresh(ctx context.Context, hash string) (f *store.RefreshFamily, err error) {
	defer observe("LookupRefresh", time.Now(), &err)
	id, err := s.tokenFamily(ctx, "LookupRefresh", hash)
	if err != nil {
		return nil, err
	}
	m, err := s.rdb.HGetAll(ctx, s.kFam(id)).Result()
	if err != nil {
		return nil, unavailable("LookupRefresh", err)
	}
	return family("LookupRefresh", m)
}

func (s *Store) Rotate(ctx context.Context, r store.Rotation) (f *store.RefreshFamily, err error) {
	defer observe("Rotate", time.Now(), &err)
	if err := r.Validate(); err != nil {
		return nil, err
	}
	now := r.Now
	if now.IsZero() {
		now = s.now()
	}
	// The token → family link never changes, so reading it first is safe;
	// the script re-checks it.
	id := r.FamilyID
	if id == "" {
		if id, err = s.tokenFamily(ctx, "Rotate", r.OldHash); err != nil {
			return nil, err
		}
	}
	if s.cluster && (addrTag(r.OldHash) != id || addrTag(r.NewHash) != id) {
		if addrTag(r.OldHash) != id {
			return nil, store.ErrNotFound
		}
		return nil, errUntagged
	}
	keys := []string{s.kRT(r.OldHash), s.kRT(r.NewHash), s.kFam(id)}
	v, err := s.run(ctx, rotate, keys, id, now.UnixMilli(), ms(r.Grace), ms(r.TokenTTL),
		r.AccessJTI, nanos(r.AccessExp), r.OldHash, r.NewHash).Result()
	if err != nil {
		return nil, unavailable("Rotate", err)
	}
	st, payload := scriptReply(v)
	switch st {
	case "ok":
		return family("Rotate", fields(payload))
	case "race":
		return nil, store.ErrRefreshRace
	case "reused":
		f, err := family("Rotate", fields(payload))
		if err != nil {
			return nil, err
		}
		return f, store.ErrRefreshReused
	case "conflict":
		return nil, store.ErrConflict
	default:
		return nil, store.ErrNotFound
	}
}

func (s *Store) RevokeFamily(ctx context.Context, id string) (f *store.RefreshFamily, err error) {
	defer observe("RevokeFamily", time.Now(), &err)
	v, err := s.run(ctx, markRevoked, []string{s.kFam(id)}).Result()
	if err != nil {
		return nil, unavailable("RevokeFamily", err)
	}
	return family("RevokeFamily", fields(v))
}

func (s *Store) ListFamilies(ctx context.Context, userID string) (out []*store.RefreshFamily, err error) {
	defer observe("ListFamilies", time.Now(), &err)
	err = s.eachIndexedHash(ctx, "ListFamilies", s.kRTUser(userID), s.kFam, func(_ string, m map[string]string) (bool, error) {
		f, err := family("ListFamilies", m)
		switch {
		case errors.Is(err, store.ErrNotFound):
			return true, nil
		case err != nil:
			return false, err
		case f.Revoked:
			return true, nil // never listed again
		}
		out = append(out, f)
		return false, nil
	})
	if err != nil {
		return nil, err
	}
	store.SortByCreated(out)
	return out, nil
}

// ---- consents ----

func (s *Store) consentKey(user, client string) string {
	return s.key(userTag(user), "consent:"+esc(user)+":"+client)
}

// SaveConsent stores one hash field per (redirect URI, resource, scope)
// under consent:<user>:<client>. Fields written before redirect URIs were
// part of the key are "<resource>\x00<scope>": they stay listable and are
// deleted with the client's hash, but HasConsent never matches them.
func (s *Store) SaveConsent(ctx context.Context, c *store.Consent) (err error) {
	defer observe("SaveConsent", time.Now(), &err)
	if err := c.Validate(); err != nil {
		return err
	}
	n := *c
	n.Scope = store.NormScope(c.Scope)
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, s.consentKey(n.UserID, n.ClientID), n.RedirectURI+"\x00"+n.Resource+"\x00"+n.Scope, encode(&n))
		p.SAdd(ctx, s.kConsents(n.UserID), n.ClientID)
		return nil
	})
	if err != nil {
		return unavailable("SaveConsent", err)
	}
	return nil
}

// HasConsent compares the decoded records, not the field names, so a
// separator inside a value cannot forge a match.
func (s *Store) HasConsent(ctx context.Context, want *store.Consent) (ok bool, err error) {
	defer observe("HasConsent", time.Now(), &err)
	if want.RedirectURI == "" {
		return false, nil
	}
	vals, err := s.rdb.HVals(ctx, s.consentKey(want.UserID, want.ClientID)).Result()
	if err != nil {
		return false, unavailable("HasConsent", err)
	}
	for _, v := range vals {
		c := new(store.Consent)
		if err := decode("HasConsent", []byte(v), c); err != nil {
			return false, err
		}
		if c.Covers(want) {
			return true, nil
		}
	}
	return false, nil
}

func (s *Store) ListConsents(ctx context.Context, userID string) (out []*store.Consent, err error) {
	defer observe("ListConsents", time.Now(), &err)
	index := s.kConsents(userID)
	clients, err := s.rdb.SMembers(ctx, index).Result()
	if err != nil {
		return nil, unavailable("ListConsents", err)
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.StringSliceCmd, len(clients))
	for i, c := range clients {
		cmds[i] = pipe.HVals(ctx, s.consentKey(userID, c))
	}
	if len(clients) > 0 {
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, unavailable("ListConsents", err)
		}
	}
	for _, c := range cmds {
		for _, v := range c.Val() {
			con := new(store.Consent)
			if err := decode("ListConsents", []byte(v), con); err != nil {
				return nil, err
			}
			out = append(out, con)
		}
	}
	store.SortConsents(out)
	return out, nil
}

func (s *Store) DeleteConsents(ctx context.Context, userID, clientID string) (err error) {
	defer observe("DeleteConsents", time.Now(), &err)
	index := s.kConsents(userID)
	clients := []string{clientID}
	if clientID == "" {
		if clients, err = s.rdb.SMembers(ctx, index).Result(); err != nil {
			return unavailable("DeleteConsents", err)
		}
	}
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for _, c := range clients {
			p.Del(ctx, s.consentKey(userID, c))
			p.SRem(ctx, index, c)
		}
		return nil
	})
	if err != nil {
		return unavailable("DeleteConsents", err)
	}
	return nil
}

// ---- sessions ----

func (s *Store) PutSession(ctx context.Context, hash string, sess *store.Session) (err error) {
	defer observe("PutSession", time.Now(), &err)
	if err := sess.Validate(hash); err != nil {
		return err
	}
	ttl, err := s.ttlUntil("session", sess.ExpiresAt)
	if err != nil {
		return err
	}
	if err := s.rdb.Set(ctx, s.kSession(hash), encode(sess), ttl).Err(); err != nil {
		return unavailable("PutSession", err)
	}
	return nil
}

func (s *Store) GetSession(ctx context.Context, hash string) (sess *store.Session, err error) {
	defer observe("GetSession", time.Now(), &err)
	sess = new(store.Session)
	if err := s.getJSON(ctx, "GetSession", s.kSession(hash), sess); err != nil {
		return nil, err
	}
	return sess, nil
}

func (s *Store) DeleteSession(ctx context.Context, hash string) (err error) {
	defer observe("DeleteSession", time.Now(), &err)
	if err := s.rdb.Del(ctx, s.kSession(hash)).Err(); err != nil {
		return unavailable("DeleteSession", err)
	}
	return nil
}

// ---- access-token revocations ----

func (s *Store) RevokeJTI(ctx context.Context, jti string, exp time.Time) (err error) {
	defer observe("RevokeJTI", time.Now(), &err)
	if err := store.CheckJTI(jti); err != nil {
		return err
	}
	now := s.now()
	ttl := exp.Sub(now)
	if ttl < time.Millisecond {
		return nil // already expired: nothing left to deny
	}
	keys := []string{s.kRevoked(jti), s.kRevokedSet()}
	if err := s.run(ctx, revokeJTI, keys, ms(ttl), exp.UnixMilli(), jti, now.UnixMilli()).Err(); err != nil {
		return unavailable("RevokeJTI", err)
	}
	return s.Publish(ctx, store.Event{Kind: store.EventRevokedJTI, ID: jti, Exp: exp})
}

func (s *Store) IsRevoked(ctx context.Context, jti string) (ok bool, err error) {
	defer observe("IsRevoked", time.Now(), &err)
	n, err := s.rdb.Exists(ctx, s.kRevoked(jti)).Result()
	if err != nil {
		return false, unavailable("IsRevoked", err)
	}
	return n == 1, nil
}

func (s *Store) RevokedJTIs(ctx context.Context) (out map[string]time.Time, err error) {
	defer observe("RevokedJTIs", time.Now(), &err)
	zs, err := s.rdb.ZRangeByScoreWithScores(ctx, s.kRevokedSet(), &redis.ZRangeBy{
		Min: "(" + strconv.FormatInt(s.now().UnixMilli(), 10), Max: "+inf",
	}).Result()
	if err != nil {
		return nil, unavailable("RevokedJTIs", err)
	}
	out = make(map[string]time.Time, len(zs))
	for _, z := range zs {
		jti, _ := z.Member.(string)
		out[jti] = time.UnixMilli(int64(z.Score)).UTC()
	}
	return out, nil
}

// ---- API keys ----

// apiKey rebuilds a key from its hash fields (d: the record as created;
// rev and lu: revocation and last use since).
func apiKey(op, hash string, f map[string]string) (*store.APIKey, error) {
	d, ok := f["d"]
	if !ok {
		return nil, store.ErrNotFound
	}
	k := new(store.APIKey)
	if err := decode(op, []byte(d), k); err != nil {
		return nil, err
	}
	k.Hash = hash
	k.Revoked = k.Revoked || f["rev"] == "1"
	if lu := fromNanos(f["lu"]); lu.After(k.LastUsed) {
		k.LastUsed = lu
	}
	return k, nil
}

// CreateKey stores k; a key with ExpiresAt set expires (a Redis TTL) then.
func (s *Store) CreateKey(ctx context.Context, k *store.APIKey) (err error) {
	defer observe("CreateKey", time.Now(), &err)
	if err := k.Validate(); err != nil {
		return err
	}
	var ttl time.Duration
	if !k.ExpiresAt.IsZero() {
		if ttl, err = s.ttlUntil("key", k.ExpiresAt); err != nil {
			return err
		}
	}
	keys := []string{s.kKey(k.Hash), s.kKeyID(k.ID), s.kKeys()}
	n, err := createKey.Run(ctx, s.rdb, keys, encode(k), k.Hash, ms(ttl)).Int()
	if err != nil {
		return unavailable("CreateKey", err)
	}
	if n == 0 {
		return store.ErrConflict
	}
	return nil
}

func (s *Store) GetKeyByHash(ctx context.Context, hash string) (k *store.APIKey, err error) {
	defer observe("GetKeyByHash", time.Now(), &err)
	m, err := s.rdb.HGetAll(ctx, s.kKey(hash)).Result()
	if err != nil {
		return nil, unavailable("GetKeyByHash", err)
	}
	return apiKey("GetKeyByHash", hash, m)
}

func (s *Store) ListKeys(ctx context.Context) (out []*store.APIKey, err error) {
	defer observe("ListKeys", time.Now(), &err)
	err = s.eachIndexedHash(ctx, "ListKeys", s.kKeys(), s.kKey, func(hash string, m map[string]string) (bool, error) {
		k, err := apiKey("ListKeys", hash, m)
		switch {
		case errors.Is(err, store.ErrNotFound):
			return true, nil
		case err != nil:
			return false, err
		}
		out = append(out, k)
		return false, nil
	})
	if err != nil {
		return nil, err
	}
	store.SortByCreated(out)
	return out, nil
}

// RevokeKey marks the key revoked (idempotently) and publishes EventKey.
func (s *Store) RevokeKey(ctx context.Context, id string) (k *store.APIKey, err error) {
	defer observe("RevokeKey", time.Now(), &err)
	hash, err := s.rdb.Get(ctx, s.kKeyID(id)).Result()
	if errors.Is(err, redis.Nil) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, unavailable("RevokeKey", err)
	}
	v, err := s.run(ctx, markRevoked, []string{s.kKey(hash)}).Result()
	if err != nil {
		return nil, unavailable("RevokeKey", err)
	}
	if k, err = apiKey("RevokeKey", hash, fields(v)); err != nil {
		return nil, err
	}
	return k, s.Publish(ctx, store.Event{Kind: store.EventKey, ID: hash})
}

// TouchKeys raises LastUsed (never lowers it) in one pipeline; unknown
// hashes are ignored.
func (s *Store) TouchKeys(ctx context.Context, used map[string]time.Time) (err error) {
	defer observe("TouchKeys", time.Now(), &err)
	if len(used) == 0 {
		return nil
	}
	pipe := s.rdb.Pipeline()
	for h, t := range used {
		// Eval, not EvalSha: a NOSCRIPT inside a pipeline cannot be retried.
		touchKey.Eval(ctx, pipe, []string{s.kKey(h)}, strconv.FormatInt(t.UnixNano(), 10))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return unavailable("TouchKeys", err)
	}
	return nil
}

// ---- agents ----

func (s *Store) PutAgent(ctx context.Context, a *store.Agent) (err error) {
	defer observe("PutAgent", time.Now(), &err)
	if err := a.Storable(); err != nil {
		return err
	}
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, s.kAgent(a.ID), encode(a), 0)
		p.SAdd(ctx, s.kAgents(), a.ID)
		return nil
	})
	if err != nil {
		return unavailable("PutAgent", err)
	}
	return s.Publish(ctx, store.Event{Kind: store.EventAgent, ID: a.ID})
}

// CreateAgent sets agent:<id> only if absent and indexes it, in one script.
func (s *Store) CreateAgent(ctx context.Context, a *store.Agent) (err error) {
	defer observe("CreateAgent", time.Now(), &err)
	if err := a.Storable(); err != nil {
		return err
	}
	n, err := createAgent.Run(ctx, s.rdb, []string{s.kAgent(a.ID), s.kAgents()}, encode(a), a.ID).Int()
	if err != nil {
		return unavailable("CreateAgent", err)
	}
	if n == 0 {
		return store.ErrConflict
	}
	return s.Publish(ctx, store.Event{Kind: store.EventAgent, ID: a.ID})
}

func (s *Store) GetAgent(ctx context.Context, id string) (a *store.Agent, err error) {
	defer observe("GetAgent", time.Now(), &err)
	a = new(store.Agent)
	if err := s.getJSON(ctx, "GetAgent", s.kAgent(id), a); err != nil {
		return nil, err
	}
	return a, nil
}

func (s *Store) ListAgents(ctx context.Context) (out []*store.Agent, err error) {
	defer observe("ListAgents", time.Now(), &err)
	raw, err := s.listJSON(ctx, "ListAgents", s.kAgents(), s.kAgent)
	if err != nil {
		return nil, err
	}
	out = make([]*store.Agent, 0, len(raw))
	for _, b := range raw {
		a := new(store.Agent)
		if err := decode("ListAgents", b, a); err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	store.SortByID(out)
	return out, nil
}

func (s *Store) DeleteAgent(ctx context.Context, id string) (err error) {
	defer observe("DeleteAgent", time.Now(), &err)
	n, err := deleteIndexed.Run(ctx, s.rdb, []string{s.kAgent(id), s.kAgents()}, id).Int()
	if err != nil {
		return unavailable("DeleteAgent", err)
	}
	if n == 0 {
		return store.ErrNotFound
	}
	return s.Publish(ctx, store.Event{Kind: store.EventAgent, ID: id})
}

// ---- rate limiting ----

// Allow counts a hit in a fixed window that starts at the key's first hit;
// it returns whether the hit is within limit and the time left in the window.
func (s *Store) Allow(ctx context.Context, key string, limit int, window time.Duration) (ok bool, retry time.Duration, err error) {
	defer observe("Allow", time.Now(), &err)
	if err := store.CheckTTL("rate-limit window", window); err != nil {
		return false, 0, err
	}
	v, err := allow.Run(ctx, s.rdb, []string{s.kRL(key)}, ms(window)).Int64Slice()
	if err != nil {
		return false, 0, unavailable("Allow", err)
	}
	if len(v) != 2 {
		return false, 0, fmt.Errorf("redisstore: Allow: unexpected reply %v", v)
	}
	return v[0] <= int64(limit), time.Duration(v[1]) * time.Millisecond, nil
}

// Refund decrements rl:<key> when it is live and positive; it never creates
// the key or touches its expiry.
func (s *Store) Refund(ctx context.Context, key string) (err error) {
	defer observe("Refund", time.Now(), &err)
	if err := refund.Run(ctx, s.rdb, []string{s.kRL(key)}).Err(); err != nil {
		return unavailable("Refund", err)
	}
	return nil
}

// ---- markers ----

// MarkOnce sets mark:<key> with SET NX PX: one atomic step decides which
// caller (on any replica) came first.
func (s *Store) MarkOnce(ctx context.Context, key string, ttl time.Duration) (first bool, err error) {
	defer observe("MarkOnce", time.Now(), &err)
	if err := store.CheckMarker(key, ttl); err != nil {
		return false, err
	}
	// The value is this call's attempt id: a resend of the SET that finds
	// it there is still the first.
	attempt := attemptID()
	ok, err := s.rdb.SetNX(ctx, s.kMark(key), attempt, ttl).Result()
	if err == nil && !ok {
		var v string
		v, err = s.rdb.Get(ctx, s.kMark(key)).Result()
		ok = err == nil && v == attempt
		if errors.Is(err, redis.Nil) {
			err = nil
		}
	}
	if err != nil {
		return false, unavailable("MarkOnce", err)
	}
	return ok, nil
}

// ---- events ----

// Publish sends e on the events channel: classic PUBLISH on one server,
// sharded SPUBLISH on a cluster (see Subscribe).
func (s *Store) Publish(ctx context.Context, e store.Event) (err error) {
	defer observe("Publish", time.Now(), &err)
	if s.cluster {
		err = s.rdb.SPublish(ctx, s.channel, encode(&e)).Err()
	} else {
		err = s.rdb.Publish(ctx, s.channel, encode(&e)).Err()
	}
	if err != nil {
		return unavailable("Publish", err)
	}
	return nil
}

// subscribe opens the events subscription and waits for its confirmation.
//
// On a cluster it is sharded pub/sub (SSUBSCRIBE/SPUBLISH, Redis ≥ 7): the
// channel lives in one slot, so every event goes to that shard's primary,
// which delivers them in the order they were published, and no event
// crosses the cluster bus to the other shards. Classic PUBLISH on a
// cluster is broadcast to every node over the bus, and go-redis sends each
// PUBLISH to any node, so two events from one replica could arrive out of
// order (the contract suite caught it: an agent's put and delete).
func (s *Store) subscribe(ctx context.Context) (*redis.PubSub, error) {
	var ps *redis.PubSub
	if s.cluster {
		ps = s.rdb.SSubscribe(ctx, s.channel)
	} else {
		ps = s.rdb.Subscribe(ctx, s.channel)
	}
	if _, err := ps.Receive(ctx); err != nil {
		_ = ps.Close()
		return nil, err
	}
	return ps, nil
}

// Subscribe returns once Redis confirmed the subscription. go-redis
// reconnects and re-subscribes after a connection loss; each re-subscription
// is reported to fn as store.EventResync because events may have been lost.
// A cluster that moves the channel's slot ends a sharded subscription
// (SUNSUBSCRIBE from the server): the store subscribes again, on the slot's
// new owner.
func (s *Store) Subscribe(ctx context.Context, fn func(store.Event)) (err error) {
	defer observe("Subscribe", time.Now(), &err)
	select {
	case <-s.closing:
		return store.ErrClosed
	default:
	}
	ps, err := s.subscribe(ctx)
	if err != nil {
		return unavailable("Subscribe", err)
	}
	s.subs.Add(1)
	go func() {
		defer s.subs.Done()
		for ps != nil {
			moved := s.listen(ctx, ps, fn)
			_ = ps.Close()
			ps = nil
			for moved && ps == nil {
				if ps, err = s.subscribe(ctx); err != nil {
					select {
					case <-ctx.Done():
						return
					case <-s.closing:
						return
					case <-time.After(100 * time.Millisecond):
					}
				}
			}
		}
	}()
	return nil
}

// listen delivers ps's messages to fn until the context ends, the store
// closes, or the server ends the subscription (moved: subscribe again).
func (s *Store) listen(ctx context.Context, ps *redis.PubSub, fn func(store.Event)) (moved bool) {
	ch := ps.ChannelWithSubscriptions(redis.WithChannelSize(1024))
	for {
		select {
		case <-ctx.Done():
			return false
		case <-s.closing:
			return false
		case m, ok := <-ch:
			if !ok {
				return false
			}
			switch m := m.(type) {
			case *redis.Subscription:
				switch m.Kind {
				case "subscribe", "ssubscribe":
					fn(store.Event{Kind: store.EventResync})
				case "sunsubscribe": // we never unsubscribe: the slot moved
					fn(store.Event{Kind: store.EventResync})
					return true
				}
			case *redis.Message:
				var e store.Event
				if json.Unmarshal([]byte(m.Payload), &e) == nil {
					fn(e)
				}
			}
		}
	}
}

// ---- lifecycle ----

func (s *Store) Ping(ctx context.Context) (err error) {
	defer observe("Ping", time.Now(), &err)
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		return unavailable("Ping", err)
	}
	return nil
}

// Close ends every subscription and, for a Store made by New, closes the
// connection pool.
func (s *Store) Close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.closing)
		s.subs.Wait()
		if s.owned {
			err = s.rdb.Close()
		}
	})
	return err
}
