// Package store holds the gateway's records and the storage contract every
// backend (memstore, redisstore) fulfils. The contract is checked by one test
// suite, store/storetest, run against each backend.
//
// Secrets never reach a backend in the clear: codes, refresh tokens, API keys
// and login sessions are addressed by token.Hash of the secret.
package store

import (
	"context"
	"errors"
	"strings"
	"time"
)

var (
	// ErrNotFound: no such record, or it expired.
	ErrNotFound = errors.New("store: not found")
	// ErrConflict: another record with that id already exists. A create
	// repeated with the very record it stored (a resend after a lost reply)
	// is not a conflict: it succeeds again (SameRecord), as a Rotate
	// repeated with the NewHash it applied does.
	ErrConflict = errors.New("store: already exists")
	// ErrCodeReused: the authorization code was redeemed before, and the
	// replay is bound as the code is (see CodeBinding). The returned code
	// record names the family issued by the first redemption so the caller
	// can revoke it (RFC 6749 §4.1.2, OAuth 2.1 §4.1.3).
	ErrCodeReused = errors.New("store: authorization code already used")
	// ErrCodeMismatch: a redemption whose client, redirect URI, PKCE
	// challenge or resource differs from the code's. The code is left as it
	// was (unused, or used without counting as a replay), so that whoever
	// holds a code without its binding cannot burn it.
	ErrCodeMismatch = errors.New("store: authorization code bound to another request")
	// ErrFamilyRevoked: CreateFamily found the family's denylist entry
	// (RevokedFamilyJTI): a replay of its code came first. The family is
	// stored revoked.
	ErrFamilyRevoked = errors.New("store: refresh family revoked before it was created")
	// ErrRefreshReused: a rotated refresh token was presented again after the
	// grace period; the whole family has been revoked.
	ErrRefreshReused = errors.New("store: refresh token reused")
	// ErrRefreshRace: a rotated refresh token was presented again within the
	// grace period (concurrent refreshes). The family stays valid; this
	// request is refused.
	ErrRefreshRace = errors.New("store: refresh token already rotated")
	// ErrUnavailable wraps backend failures (network, timeouts) so callers
	// can answer 503 instead of treating them as "not found".
	ErrUnavailable = errors.New("store: unavailable")
)

// Client is a registered OAuth client (RFC 7591). Public clients only.
type Client struct {
	ID            string    `json:"client_id"`
	Name          string    `json:"client_name,omitempty"`
	RedirectURIs  []string  `json:"redirect_uris"`
	GrantTypes    []string  `json:"grant_types"`
	ResponseTypes []string  `json:"response_types"`
	Scope         string    `json:"scope,omitempty"`
	ClientURI     string    `json:"client_uri,omitempty"`
	LogoURI       string    `json:"logo_uri,omitempty"`
	SoftwareID    string    `json:"software_id,omitempty"`
	SoftwareVer   string    `json:"software_version,omitempty"`
	RegisteredIP  string    `json:"registered_ip,omitempty"`
	CreatedAt     time.Time `json:"created_at"`
	// ExpiresAt is when an idle dynamically registered client disappears
	// (zero: never). CreateClient sets it as the record's TTL, TouchClient
	// moves it, GetClient and ListClients report the current value.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
}

// AuthRequest is a pending authorization request between /oauth/authorize
// and the consent decision (authreq:<id>, TTL 10 min).
type AuthRequest struct {
	ID            string    `json:"id"`
	ClientID      string    `json:"client_id"`
	RedirectURI   string    `json:"redirect_uri"`
	State         string    `json:"state,omitempty"`
	Scope         string    `json:"scope"`
	Resource      string    `json:"resource"`
	CodeChallenge string    `json:"code_challenge"`
	UserID        string    `json:"user_id,omitempty"` // set once the user logged in
	CSRF          string    `json:"csrf"`              // binds the login/consent forms to this request
	BrowserHash   string    `json:"browser_hash,omitempty"`
	CreatedAt     time.Time `json:"created_at"`
	ExpiresAt     time.Time `json:"expires_at"`
	// Set by an upstream login provider (OIDC) while the browser is at the
	// identity provider: the hash of the state secret sent upstream, the
	// nonce expected in the ID token and the PKCE verifier for the upstream
	// code exchange. Cleared when the browser comes back.
	LoginStateHash string `json:"login_state_hash,omitempty"`
	LoginNonce     string `json:"login_nonce,omitempty"`
	LoginVerifier  string `json:"login_verifier,omitempty"`
	// Groups are the logged-in user's groups from the login provider
	// (NormalizeGroups), set with UserID; they travel into the code.
	Groups []string `json:"groups,omitempty"`
}

// AuthCode is an issued authorization code (code:<hash>, TTL 120 s).
// FamilyID is chosen at issue time so a replayed code can revoke what its
// first redemption issued.
type AuthCode struct {
	Hash          string    `json:"-"`
	ClientID      string    `json:"client_id"`
	UserID        string    `json:"user_id"`
	RedirectURI   string    `json:"redirect_uri"`
	Scope         string    `json:"scope"`
	Resource      string    `json:"resource"`
	CodeChallenge string    `json:"code_challenge"`
	FamilyID      string    `json:"family_id"`
	AuthTime      time.Time `json:"auth_time"`
	ExpiresAt     time.Time `json:"expires_at"`
	// Groups are the user's groups at login, for the access token's
	// groups claim (and the refresh family).
	Groups []string `json:"groups,omitempty"`
}

// CodeBinding is what a code redemption must match before the code is
// consumed: the client it was issued to, the redirect URI of the
// authorization request, S256(code_verifier) (RFC 7636 §4.6) and, when the
// token request names one, the resource (RFC 8707).
type CodeBinding struct {
	ClientID      string
	RedirectURI   string
	CodeChallenge string // S256 of the presented verifier, computed by the caller
	Resource      string // "" when the token request sent none
}

// Matches reports whether c was issued for b. The comparisons need not be
// constant-time: none of the values is a secret (the challenge travels in
// the authorization request's URL, and knowing it does not give the
// verifier).
func (b CodeBinding) Matches(c *AuthCode) bool {
	return c.ClientID == b.ClientID && c.RedirectURI == b.RedirectURI && c.CodeChallenge == b.CodeChallenge &&
		(b.Resource == "" || b.Resource == c.Resource)
}

// RefreshFamily is one chain of rotated refresh tokens (rtfam:<id>), created
// by a code redemption. Every access token issued from it carries its id
// (token.Claims.Family), so revoking it ends every refresh and access token
// of the chain: the caller denylists RevokedFamilyJTI until AccessExp.
type RefreshFamily struct {
	ID          string    `json:"id"`
	ClientID    string    `json:"client_id"`
	UserID      string    `json:"user_id"`
	Scope       string    `json:"scope"` // the granted scope; refreshes may narrow it
	Resource    string    `json:"resource"`
	CurrentHash string    `json:"current_hash"`
	AccessJTI   string    `json:"access_jti"` // newest access token issued from this family
	AccessExp   time.Time `json:"access_exp"` // its expiry: no token of the family outlives it
	Revoked     bool      `json:"revoked"`
	CreatedAt   time.Time `json:"created_at"`
	ExpiresAt   time.Time `json:"expires_at"` // absolute end of the family
	// Groups are the user's groups at login: every access token of the
	// family carries them (token.Claims.Groups), refreshed ones too.
	Groups []string `json:"groups,omitempty"`
}

// Rotation asks to replace refresh token OldHash with NewHash and records the
// access token issued alongside it.
type Rotation struct {
	OldHash   string
	NewHash   string
	AccessJTI string
	AccessExp time.Time
	Now       time.Time
	Grace     time.Duration // reuse within Grace of rotation → ErrRefreshRace
	TokenTTL  time.Duration // lifetime of the new refresh token (capped by the family's end)
	// FamilyID, when the caller knows it (LookupRefresh), saves the backend
	// the read from token to family; a token of another family is then
	// ErrNotFound, and nothing changes.
	FamilyID string
}

// Consent is a user's remembered approval, keyed by (user, client, exact
// redirect URI, resource, scopes): it covers a later request only for the
// same client, a byte-equal redirect URI and the same resource, and only
// the scopes it names. Records written before RedirectURI existed decode
// with it empty and match no request: they are listed and revocable, never
// used to skip the consent page.
type Consent struct {
	UserID      string    `json:"user_id"`
	ClientID    string    `json:"client_id"`
	RedirectURI string    `json:"redirect_uri,omitempty"`
	Scope       string    `json:"scope"`
	Resource    string    `json:"resource"`
	CreatedAt   time.Time `json:"created_at"`
}

// Session is a browser login session (session:<hash of cookie value>).
type Session struct {
	UserID string `json:"user_id"`
	// Groups are the user's groups from the login provider, reused when
	// the session authorizes another client without a new login.
	Groups    []string  `json:"groups,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// KeyKind says which kind of API key a record is.
type KeyKind string

const (
	KeyAgent KeyKind = "agent" // bak_…, bound to one agent
	KeyUser  KeyKind = "user"  // oag_…, any agent the user owns or was granted
)

// APIKey is an API key record (key:<hash>). The key itself is never stored.
type APIKey struct {
	ID        string    `json:"id"`
	Hash      string    `json:"-"`
	Kind      KeyKind   `json:"kind"`
	Agent     string    `json:"agent,omitempty"` // KeyAgent only
	User      string    `json:"user,omitempty"`
	Name      string    `json:"name,omitempty"`
	Scopes    []string  `json:"scopes,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	Revoked   bool      `json:"revoked,omitempty"`
	LastUsed  time.Time `json:"last_used,omitzero"`
}

// AgentSpec is what an operator declares of an agent, the one set of
// fields the config file's agents, the admin API's create body
// (config.StaticAgent) and a stored Agent share, so that a field added
// here reaches all three under one JSON name.
type AgentSpec struct {
	ID       string   `json:"id"`
	Name     string   `json:"name,omitempty"`
	Owner    string   `json:"owner"`
	Users    []string `json:"users,omitempty"` // granted access besides the owner
	Upstream string   `json:"upstream,omitempty"`
	Scopes   []string `json:"scopes,omitempty"` // allowed scopes; empty = the gateway's
	Rules    []Rule   `json:"rules,omitempty"`  // tool policy (policy.go); none = every operation needs the base scopes only
	Limits   *Limits  `json:"limits,omitempty"` // per-user request limits (policy.go); nil = none
	// UpstreamAuth: a header with a shared secret added on allow (a
	// reference to the secret only); nil: none.
	UpstreamAuth *UpstreamAuth `json:"upstream_auth,omitempty"`
}

// Agent is an MCP server reachable at /<id>/mcp: its declaration and what
// the gateway records of it. Embedding keeps the stored JSON one flat
// object, as it always was.
type Agent struct {
	AgentSpec
	Static  bool      `json:"static,omitempty"` // from the config file; not deletable
	Created time.Time `json:"created_at,omitzero"`
}

// Allows reports whether user may use the agent.
func (a *AgentSpec) Allows(user string) bool {
	if user == "" {
		return false
	}
	if a.Owner == user {
		return true
	}
	for _, u := range a.Users {
		if u == user {
			return true
		}
	}
	return false
}

// Event tells other replicas to drop cached state.
type Event struct {
	Kind string `json:"k"` // EventRevokedJTI, EventKey, EventAgent, EventClient
	ID   string `json:"id"`
	// Exp is the expiry of a revoked jti, so mirrors can forget it.
	Exp time.Time `json:"exp,omitzero"`
}

const (
	EventRevokedJTI = "jti"
	EventKey        = "key"   // ID = key hash
	EventAgent      = "agent" // ID = agent id
	EventClient     = "client"
	// EventResync is delivered by Subscribe after a lost subscription was
	// re-established: events may have been missed, so mirrors and caches
	// should reload (ID is empty).
	EventResync = "resync"
)

// TagsSecrets reports whether backend st needs each authorization code and
// refresh token to carry its refresh family's id (token.Tagged), as a Redis
// Cluster does to keep a family's keys in one hash slot.
func TagsSecrets(st any) bool {
	t, ok := st.(interface{ TagsSecrets() bool })
	return ok && t.TagsSecrets()
}

// Store is the whole contract of a backend.
type Store interface {
	Clients
	AuthRequests
	Codes
	Refresh
	Consents
	Sessions
	Revocations
	Keys
	Agents
	RateLimiter
	Markers
	Events
	Ping(ctx context.Context) error
	Close() error
}

type Clients interface {
	// CreateClient stores c; with c.ExpiresAt set (in the future) the client
	// expires then unless TouchClient renews it. A client with RegisteredIP
	// is counted by CountClientsByIP while it lives.
	CreateClient(ctx context.Context, c *Client) error
	GetClient(ctx context.Context, id string) (*Client, error)
	ListClients(ctx context.Context) ([]*Client, error)
	DeleteClient(ctx context.Context, id string) error
	// TouchClient renews an expiring client: it now expires ttl from now.
	// A client without expiry stays permanent. ErrNotFound when it is gone.
	TouchClient(ctx context.Context, id string, ttl time.Duration) error
	// CountClientsByIP is the number of live clients whose RegisteredIP is ip.
	CountClientsByIP(ctx context.Context, ip string) (int, error)
}

type AuthRequests interface {
	PutAuthRequest(ctx context.Context, r *AuthRequest, ttl time.Duration) error
	GetAuthRequest(ctx context.Context, id string) (*AuthRequest, error)
	// TakeAuthRequest gets and deletes in one step: a pending request yields at most one code.
	TakeAuthRequest(ctx context.Context, id string) (*AuthRequest, error)
}

type Codes interface {
	// PutCode stores c under c.Hash until c.ExpiresAt.
	PutCode(ctx context.Context, c *AuthCode) error
	// RedeemCode atomically checks the code's binding and takes the code.
	// A redemption that does not match b returns ErrCodeMismatch (with the
	// record, so the caller can tell what differs) and changes nothing. A
	// matching second redemption returns ErrCodeReused with the first
	// code's record (for its FamilyID).
	RedeemCode(ctx context.Context, hash string, b CodeBinding) (*AuthCode, error)
}

type Refresh interface {
	// CreateFamily stores f and its first refresh token (f.CurrentHash).
	// When RevokedFamilyJTI(f.ID) is denylisted already (a replay of the
	// code got there first), f is stored revoked and ErrFamilyRevoked
	// returned, in the same atomic step.
	CreateFamily(ctx context.Context, f *RefreshFamily, tokenTTL time.Duration) error
	// LookupRefresh returns the family of a refresh token hash without
	// changing anything: also for a rotated token or a revoked family
	// (Revoked set). ErrNotFound when the token or family expired.
	LookupRefresh(ctx context.Context, hash string) (*RefreshFamily, error)
	// Rotate atomically replaces r.OldHash with r.NewHash. Returns the updated
	// family; ErrNotFound for unknown/expired/revoked; ErrRefreshRace or
	// ErrRefreshReused (family revoked, returned so its access token can be
	// revoked too) for a token that was already rotated.
	Rotate(ctx context.Context, r Rotation) (*RefreshFamily, error)
	// RevokeFamily marks the family revoked and returns it.
	RevokeFamily(ctx context.Context, id string) (*RefreshFamily, error)
	// ListFamilies returns the user's live (unexpired, unrevoked) families, oldest first.
	ListFamilies(ctx context.Context, userID string) ([]*RefreshFamily, error)
}

type Consents interface {
	// SaveConsent remembers c (scope normalised); it needs user, client and
	// redirect URI.
	SaveConsent(ctx context.Context, c *Consent) error
	// HasConsent is true when a saved consent of want.UserID for the same
	// client, byte-equal redirect URI and resource covers every scope of
	// want.Scope. An empty want.RedirectURI matches nothing.
	HasConsent(ctx context.Context, want *Consent) (bool, error)
	ListConsents(ctx context.Context, userID string) ([]*Consent, error)
	// DeleteConsents forgets the user's consents for clientID (all of them when clientID is "").
	DeleteConsents(ctx context.Context, userID, clientID string) error
}

type Sessions interface {
	PutSession(ctx context.Context, hash string, s *Session) error
	GetSession(ctx context.Context, hash string) (*Session, error)
	DeleteSession(ctx context.Context, hash string) error
}

// RevokedClientJTI is the denylist entry that revokes every access token
// issued to clientID, as a jti would revoke one token. Token ids never
// contain ':', so the two cannot meet.
func RevokedClientJTI(clientID string) string { return revokedClientPrefix + clientID }

// RevokedClient is the client id of a RevokedClientJTI entry.
func RevokedClient(jti string) (clientID string, ok bool) {
	return strings.CutPrefix(jti, revokedClientPrefix)
}

const revokedClientPrefix = "client:"

// RevokedFamilyJTI is the denylist entry that revokes every access token
// issued from refresh family id (those whose token.Claims.Family is id).
// Family ids are random and never reused, so the entry needs to live only
// until the family's last access token expires.
func RevokedFamilyJTI(id string) string { return revokedFamilyPrefix + id }

// RevokedFamily is the family id of a RevokedFamilyJTI entry.
func RevokedFamily(jti string) (familyID string, ok bool) {
	return strings.CutPrefix(jti, revokedFamilyPrefix)
}

const revokedFamilyPrefix = "family:"

type Revocations interface {
	// RevokeJTI denylists an access token until exp and publishes
	// EventRevokedJTI; with RevokedClientJTI, every token of a client; with
	// RevokedFamilyJTI, every token of a refresh family. An entry's expiry
	// only ever grows.
	RevokeJTI(ctx context.Context, jti string, exp time.Time) error
	IsRevoked(ctx context.Context, jti string) (bool, error)
	// RevokedJTIs lists the live denylist (used to fill an in-memory mirror).
	RevokedJTIs(ctx context.Context) (map[string]time.Time, error)
}

type Keys interface {
	CreateKey(ctx context.Context, k *APIKey) error
	// GetKeyByHash returns the record for a presented key's hash (revoked or not).
	GetKeyByHash(ctx context.Context, hash string) (*APIKey, error)
	ListKeys(ctx context.Context) ([]*APIKey, error)
	// RevokeKey marks the key revoked and publishes EventKey with its hash.
	RevokeKey(ctx context.Context, id string) (*APIKey, error)
	// TouchKeys records last-used times in one batch (hash → time).
	TouchKeys(ctx context.Context, used map[string]time.Time) error
}

type Agents interface {
	PutAgent(ctx context.Context, a *Agent) error // create or replace; publishes EventAgent
	// CreateAgent stores a new agent in one atomic step: ErrConflict when
	// the id exists, so of two callers creating one id exactly one wins.
	// Publishes EventAgent.
	CreateAgent(ctx context.Context, a *Agent) error
	GetAgent(ctx context.Context, id string) (*Agent, error)
	ListAgents(ctx context.Context) ([]*Agent, error)
	DeleteAgent(ctx context.Context, id string) error // publishes EventAgent
}

type RateLimiter interface {
	// Allow counts one hit on key in a fixed window; when over limit it
	// returns false and how long until the window ends.
	Allow(ctx context.Context, key string, limit int, window time.Duration) (bool, time.Duration, error)
	// Refund takes back one hit on key in its current window; nothing when
	// the window has ended or holds no hit. A limit on failures only takes
	// its hit before the attempt, so that parallel attempts cannot all get
	// past it, and refunds it when the attempt succeeds.
	Refund(ctx context.Context, key string) error
}

// Markers remember that something happened once, for a while: a used
// login assertion's jti (mark:<key>).
type Markers interface {
	// MarkOnce records key for ttl. first is true for the one call that
	// created the mark; false while an earlier mark is still live.
	MarkOnce(ctx context.Context, key string, ttl time.Duration) (first bool, err error)
}

type Events interface {
	Publish(ctx context.Context, e Event) error
	// Subscribe calls fn for every event published by any replica (including
	// this one) until ctx ends. It returns once the subscription is live.
	Subscribe(ctx context.Context, fn func(Event)) error
}
