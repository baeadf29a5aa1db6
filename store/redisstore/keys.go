package redisstore

import "strings"

// Key names. On a single server (or a Sentinel-managed primary) the layout
// is the one every earlier version wrote: prefix + name. On a Redis Cluster
// each key starts with a hash tag, prefix + "{tag}" + name, so the keys one
// script or transaction touches share a hash slot:
//
//	{c}   client:<id>, clients, clientsip:<ip>     created and counted together
//	{k}   key:<hash>, keyid:<id>, keys             created together
//	{a}   agent:<id>, agents                       created together
//	{rv}  revoked:<jti>, revokedset                denylist entry + its listing
//	{u:<user>}  consent:<user>:<client>, consents:<user>, rtuser:<user>
//	{<family>}  rtfam:<family>, rt:<family>.<hash>, code:<family>.<hash>,
//	            codeused:<family>.<hash>,
//	            codeattempt:<family>.<hash>       redeemed and rotated together
//	{<id>}  authreq:<id>, authreqtaken:<id>        taken together
//
// A code or refresh token minted for a cluster is "<family>.<random>", and
// the store is handed "<family>.<sha256>" (token.Address): the lookup finds
// the family's slot from the presented string. An untagged address (minted
// for a single server) is its own tag. session:, rl: and mark: are single
// keys in their natural slot.
//
// Tags are computed even on one server, where key ignores them; they are
// cheap (no allocation beyond the escaped user id).
func (s *Store) key(tag, name string) string {
	if !s.cluster || tag == "" {
		return s.p + name
	}
	return s.p + "{" + tag + "}" + name
}

// addrTag is the slot tag of a code or refresh token address: the family
// id before the first '.', or the whole address when it has none.
func addrTag(addr string) string {
	if i := strings.IndexByte(addr, '.'); i > 0 {
		return addr[:i]
	}
	return addr
}

// userTag keeps a user's keys in one slot; braces are escaped so a user id
// cannot end the tag early.
func userTag(user string) string { return "u:" + braces.Replace(esc(user)) }

var braces = strings.NewReplacer("{", "%7B", "}", "%7D")

func (s *Store) kClient(id string) string     { return s.key("c", "client:"+id) }
func (s *Store) kClients() string             { return s.key("c", "clients") }
func (s *Store) kClientsIP(ip string) string  { return s.key("c", "clientsip:"+ip) }
func (s *Store) kAuthReq(id string) string    { return s.key(id, "authreq:"+id) }
func (s *Store) kTaken(id string) string      { return s.key(id, "authreqtaken:"+id) }
func (s *Store) kCode(addr string) string     { return s.key(addrTag(addr), "code:"+addr) }
func (s *Store) kCodeUsed(addr string) string { return s.key(addrTag(addr), "codeused:"+addr) }
func (s *Store) kCodeTry(addr string) string  { return s.key(addrTag(addr), "codeattempt:"+addr) }
func (s *Store) kFam(id string) string        { return s.key(id, "rtfam:"+id) }
func (s *Store) kRT(addr string) string       { return s.key(addrTag(addr), "rt:"+addr) }
func (s *Store) kRTUser(user string) string   { return s.key(userTag(user), "rtuser:"+esc(user)) }
func (s *Store) kConsents(user string) string { return s.key(userTag(user), "consents:"+esc(user)) }
func (s *Store) kSession(hash string) string  { return s.key("", "session:"+hash) }
func (s *Store) kRevoked(jti string) string   { return s.key("rv", "revoked:"+jti) }
func (s *Store) kRevokedSet() string          { return s.key("rv", "revokedset") }
func (s *Store) kKey(hash string) string      { return s.key("k", "key:"+hash) }
func (s *Store) kKeyID(id string) string      { return s.key("k", "keyid:"+id) }
func (s *Store) kKeys() string                { return s.key("k", "keys") }
func (s *Store) kAgent(id string) string      { return s.key("a", "agent:"+id) }
func (s *Store) kAgents() string              { return s.key("a", "agents") }
func (s *Store) kRL(key string) string        { return s.key("", "rl:"+key) }
func (s *Store) kMark(key string) string      { return s.key("", "mark:"+key) }

// Prefix is the store's key prefix.
func (s *Store) Prefix() string { return s.p }
