package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// The contract's preconditions, copies, scope helpers and list orders live
// here, beside the records, so that every backend refuses and answers alike
// (a new backend calls these rather than writing its own).

var (
	// ErrInvalid: a call the contract refuses before touching the backend
	// (a missing id, a non-positive TTL, a past expiry). It is the caller's
	// bug, never a client's input: handlers validate requests first.
	ErrInvalid = errors.New("store: invalid argument")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("store: closed")
)

// MinTTL is the shortest lifetime a backend accepts: Redis keeps TTLs in
// milliseconds, so anything shorter would be rounded to "no expiry" or refused.
const MinTTL = time.Millisecond

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}

// CheckTTL refuses a lifetime shorter than MinTTL; what names it in the error.
func CheckTTL(what string, d time.Duration) error {
	if d < MinTTL {
		return invalid("%s must be at least %v", what, MinTTL)
	}
	return nil
}

// Until is the lifetime left from now to exp, refused (ErrInvalid) when it
// is shorter than MinTTL: a record that would be born expired.
func Until(what string, exp, now time.Time) (time.Duration, error) {
	d := exp.Sub(now)
	if d < MinTTL {
		return 0, invalid("%s already expired", what)
	}
	return d, nil
}

// Validate checks the preconditions of CreateClient.
func (c *Client) Validate() error {
	if c == nil || c.ID == "" {
		return invalid("client id required")
	}
	return nil
}

// Validate checks the preconditions of PutAuthRequest.
func (r *AuthRequest) Validate() error {
	if r == nil || r.ID == "" {
		return invalid("auth request id required")
	}
	return nil
}

// Validate checks the preconditions of PutCode (its expiry is checked
// against the backend's clock with Until).
func (c *AuthCode) Validate() error {
	if c == nil || c.Hash == "" {
		return invalid("code hash required")
	}
	return nil
}

// Validate checks the preconditions of CreateFamily.
func (f *RefreshFamily) Validate() error {
	if f == nil || f.ID == "" || f.CurrentHash == "" {
		return invalid("family id and current hash required")
	}
	return nil
}

// Validate checks the preconditions of Rotate.
func (r *Rotation) Validate() error {
	if r.OldHash == "" || r.NewHash == "" || r.OldHash == r.NewHash {
		return invalid("rotation needs distinct old and new hashes")
	}
	return CheckTTL("refresh token ttl", r.TokenTTL)
}

// Validate checks the preconditions of SaveConsent.
func (c *Consent) Validate() error {
	if c == nil || c.UserID == "" || c.ClientID == "" || c.RedirectURI == "" {
		return invalid("consent needs user, client and redirect URI")
	}
	return nil
}

// Validate checks the preconditions of PutSession, stored under hash.
func (s *Session) Validate(hash string) error {
	if hash == "" || s == nil {
		return invalid("session hash required")
	}
	return nil
}

// Validate checks the preconditions of CreateKey.
func (k *APIKey) Validate() error {
	if k == nil || k.ID == "" || k.Hash == "" {
		return invalid("key id and hash required")
	}
	return nil
}

// Storable checks the preconditions of PutAgent and CreateAgent: only
// what storing needs (an id). What an agent may contain is checked where
// agents are written (config, admin API).
func (a *Agent) Storable() error {
	if a == nil || a.ID == "" {
		return invalid("agent id required")
	}
	return nil
}

// CheckJTI checks the precondition of RevokeJTI.
func CheckJTI(jti string) error {
	if jti == "" {
		return invalid("jti required")
	}
	return nil
}

// CheckMarker checks the preconditions of MarkOnce.
func CheckMarker(key string, ttl time.Duration) error {
	if key == "" {
		return invalid("marker key required")
	}
	return CheckTTL("marker ttl", ttl)
}

// ---- scopes ----

// NormScope sorts and de-duplicates a space-separated scope string, as
// SaveConsent stores it.
func NormScope(scope string) string {
	f := strings.Fields(scope)
	slices.Sort(f)
	return strings.Join(slices.Compact(f), " ")
}

// Covers reports whether the consent c is for the same client, byte-equal
// redirect URI and resource as want, and grants every scope of want.Scope
// (the HasConsent rule). An empty want.RedirectURI matches nothing.
func (c *Consent) Covers(want *Consent) bool {
	if want.RedirectURI == "" || c.ClientID != want.ClientID || c.RedirectURI != want.RedirectURI || c.Resource != want.Resource {
		return false
	}
	have := strings.Fields(c.Scope)
	for _, w := range strings.Fields(want.Scope) {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}

// ---- copies: a backend never shares what it stores with a caller ----

// Clone returns a deep copy of c.
func (c *Client) Clone() *Client {
	n := *c
	n.RedirectURIs = slices.Clone(c.RedirectURIs)
	n.GrantTypes = slices.Clone(c.GrantTypes)
	n.ResponseTypes = slices.Clone(c.ResponseTypes)
	return &n
}

// Clone returns a deep copy of k.
func (k *APIKey) Clone() *APIKey {
	n := *k
	n.Scopes = slices.Clone(k.Scopes)
	return &n
}

// Clone returns a deep copy of a, its tool policy included.
func (a *Agent) Clone() *Agent {
	n := *a
	n.Users = slices.Clone(a.Users)
	n.Scopes = slices.Clone(a.Scopes)
	if a.Rules != nil {
		n.Rules = make([]Rule, len(a.Rules))
		for i, r := range a.Rules {
			r.Scopes = slices.Clone(r.Scopes)
			r.Users = slices.Clone(r.Users)
			r.Groups = slices.Clone(r.Groups)
			r.Credentials = slices.Clone(r.Credentials)
			n.Rules[i] = r
		}
	}
	if a.Limits != nil {
		l := *a.Limits
		n.Limits = &l
	}
	if a.UpstreamAuth != nil {
		u := *a.UpstreamAuth
		n.UpstreamAuth = &u
	}
	return &n
}

// ---- list orders of the contract ----

// SortByID orders clients or agents by id (ListClients, ListAgents).
func SortByID[T interface{ recordID() string }](out []T) {
	slices.SortFunc(out, func(a, b T) int { return strings.Compare(a.recordID(), b.recordID()) })
}

func (c *Client) recordID() string { return c.ID }
func (a *Agent) recordID() string  { return a.ID }

// SortByCreated orders families, keys or clients oldest first, ties by id
// (ListFamilies, ListKeys; the admin API's client list).
func SortByCreated[T interface{ created() (time.Time, string) }](out []T) {
	slices.SortFunc(out, func(a, b T) int {
		ta, ida := a.created()
		tb, idb := b.created()
		if c := ta.Compare(tb); c != 0 {
			return c
		}
		return strings.Compare(ida, idb)
	})
}

func (f *RefreshFamily) created() (time.Time, string) { return f.CreatedAt, f.ID }
func (k *APIKey) created() (time.Time, string)        { return k.CreatedAt, k.ID }
func (c *Client) created() (time.Time, string)        { return c.CreatedAt, c.ID }

// SortConsents orders consents by Key (ListConsents).
func SortConsents(cs []*Consent) {
	slices.SortFunc(cs, func(a, b *Consent) int { return strings.Compare(a.Key(), b.Key()) })
}

// Key identifies a consent among its user's: client, redirect URI,
// resource and scope. Saving a consent with the same Key replaces it.
func (c *Consent) Key() string {
	return c.ClientID + "\x00" + c.RedirectURI + "\x00" + c.Resource + "\x00" + c.Scope
}

// SameRecord reports whether a create finds the very record it is storing
// (the same encoding): a resend of one call, which a backend answers as the
// first time rather than as ErrConflict. Records carry random ids, hashes
// and their creation time, so two different calls never encode alike.
func SameRecord(stored, sent any) bool {
	a, errA := json.Marshal(stored)
	b, errB := json.Marshal(sent)
	return errA == nil && errB == nil && string(a) == string(b)
}
