package redisstore

import "github.com/redis/go-redis/v9"

// Every multi-step change that must be atomic is one Lua script. Times are
// passed as Unix milliseconds (exact in Lua's doubles); a TTL argument is
// in milliseconds too.
//
// Every write is safe to run twice with the same arguments: go-redis resends
// a command whose reply a broken connection lost, though Redis may have run
// it. The second run answers what the first did, recognised by a value only
// that call holds (the record it wrote, the new token's hash, a random
// attempt id), instead of reporting its own first run as a conflict, a
// concurrent refresh or a replayed code.

// createClient: SET NX the client (PX ttl when it expires), index it, and
// add it to clientsip:<ip> scored by its expiry (+inf: never). The per-IP set
// lives as long as its longest-lived member.
// KEYS: client:<id>, clients, [clientsip:<ip>]. ARGV: JSON, id, ttl (0:
// none), expiry (ms). Returns 1, or 0 if another client has the id.
var createClient = redis.NewScript(`
local ttl = tonumber(ARGV[3])
local ok
if ttl > 0 then
  ok = redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ttl)
else
  ok = redis.call('SET', KEYS[1], ARGV[1], 'NX')
end
if not ok then
  if redis.call('GET', KEYS[1]) == ARGV[1] then return 1 end
  return 0
end
redis.call('SADD', KEYS[2], ARGV[2])
if #KEYS > 2 then
  local had = redis.call('EXISTS', KEYS[3])
  local cur = redis.call('PTTL', KEYS[3])
  if ttl > 0 then
    redis.call('ZADD', KEYS[3], ARGV[4], ARGV[2])
    if had == 0 or (cur >= 0 and cur < ttl) then redis.call('PEXPIRE', KEYS[3], ttl) end
  else
    redis.call('ZADD', KEYS[3], '+inf', ARGV[2])
    redis.call('PERSIST', KEYS[3])
  end
end
return 1`)

// touchClient: renew an expiring client's TTL and its clientsip score.
// Permanent clients are left alone.
// KEYS: client:<id>, [clientsip:<registered ip>]. ARGV: ttl, now (ms), id.
// Returns 1, or 0 if the client is gone.
var touchClient = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('PTTL', KEYS[1]) < 0 then return 1 end
local ttl = tonumber(ARGV[1])
redis.call('PEXPIRE', KEYS[1], ttl)
if #KEYS > 1 then
  local had = redis.call('EXISTS', KEYS[2])
  local cur = redis.call('PTTL', KEYS[2])
  redis.call('ZADD', KEYS[2], tonumber(ARGV[2]) + ttl, ARGV[3])
  if had == 0 or (cur >= 0 and cur < ttl) then redis.call('PEXPIRE', KEYS[2], ttl) end
end
return 1`)

// deleteIndexed: DEL a record and drop it from its index sets.
// KEYS: record, index set, [sorted set]. ARGV: member. Returns the number
// of records deleted.
var deleteIndexed = redis.NewScript(`
local n = redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[1])
if #KEYS > 2 then redis.call('ZREM', KEYS[3], ARGV[1]) end
return n`)

// takeOnce: GETDEL that a resend of the same call answers too. The value
// taken stays for a short while under a second key, beside the attempt id
// that took it.
// KEYS: the record, its taken marker. ARGV: attempt id, marker ttl.
// Returns the value, or nil when there is none (or another call took it).
var takeOnce = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v then
  redis.call('DEL', KEYS[1])
  redis.call('SET', KEYS[2], ARGV[1] .. '\n' .. v, 'PX', ARGV[2])
  return v
end
local t = redis.call('GET', KEYS[2])
if t and string.sub(t, 1, #ARGV[1] + 1) == ARGV[1] .. '\n' then
  return string.sub(t, #ARGV[1] + 2)
end
return false`)

// putCode: store a code unless the hash is live or was already used.
// KEYS: code, used marker. ARGV: value, ttl. Returns 1, or 0 on conflict.
var putCode = redis.NewScript(`
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) == ARGV[1] then return 1 end
return 0`)

// redeemCode: check the redemption's binding against the code's record and
// only then take it, leaving a "used" marker holding the record so a replay
// can name the family the first redemption created. A redemption bound
// otherwise changes nothing: whoever holds a code but not its client's
// verifier cannot burn it. The comparisons mirror store.CodeBinding.Matches.
// The redemption's attempt id, kept beside the marker, tells go-redis's
// resend of this very call (answered 'ok' again) from a replay.
// KEYS: code, used marker, [attempt]. ARGV: marker ttl, client id, redirect
// uri, S256(verifier), resource (empty when the request named none),
// attempt id.
// Returns {'ok', record} | {'used', record} | {'mismatch', record} | {'nf'}.
var redeemCode = redis.NewScript(`
local function bound(v)
  local ok, c = pcall(cjson.decode, v)
  if not ok or type(c) ~= 'table' then return false end
  return c['client_id'] == ARGV[2] and c['redirect_uri'] == ARGV[3] and c['code_challenge'] == ARGV[4]
    and (ARGV[5] == '' or c['resource'] == ARGV[5])
end
local v = redis.call('GET', KEYS[1])
if v then
  if not bound(v) then return {'mismatch', v} end
  redis.call('DEL', KEYS[1])
  redis.call('SET', KEYS[2], v, 'PX', ARGV[1])
  if #KEYS > 2 then redis.call('SET', KEYS[3], ARGV[6], 'PX', ARGV[1]) end
  return {'ok', v}
end
local u = redis.call('GET', KEYS[2])
if u then
  if not bound(u) then return {'mismatch', u} end
  if #KEYS > 2 and redis.call('GET', KEYS[3]) == ARGV[6] then return {'ok', u} end
  return {'used', u}
end
return {'nf'}`)

// createFamily: the family hash, its first token and (on a single server)
// the user's index. A family whose denylist entry exists (a replay of its
// code came first) is created revoked. On a cluster the index and the
// denylist entry live in other slots: the caller indexes first and checks
// the denylist after (see Store.CreateFamily).
// KEYS: rtfam:<id>, rt:<hash>, [rtuser:<user>, revoked:family:<id>].
// ARGV: d (JSON), current hash, access jti, access exp (ns), end (ms),
// family ttl, token ttl, family id. Returns 1, 2 (created revoked), or 0 on
// conflict.
var createFamily = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('EXISTS', KEYS[2]) == 1 then
  local f = redis.call('HMGET', KEYS[1], 'd', 'cur', 'rev')
  if f[1] == ARGV[1] and f[2] == ARGV[2] then
    if f[3] == '1' then return 2 end
    return 1
  end
  return 0
end
local famttl = tonumber(ARGV[6])
local rev = 0
if #KEYS > 3 then rev = redis.call('EXISTS', KEYS[4]) end
redis.call('HSET', KEYS[1], 'd', ARGV[1], 'cur', ARGV[2], 'jti', ARGV[3], 'aexp', ARGV[4], 'end', ARGV[5], 'rev', tostring(rev))
redis.call('PEXPIRE', KEYS[1], famttl)
redis.call('HSET', KEYS[2], 'fam', ARGV[8], 'st', 'a')
redis.call('PEXPIRE', KEYS[2], math.min(tonumber(ARGV[7]), famttl))
if #KEYS > 2 then
  redis.call('SADD', KEYS[3], ARGV[8])
  if redis.call('PTTL', KEYS[3]) < famttl then redis.call('PEXPIRE', KEYS[3], famttl) end
end
return 1 + rev`)

// indexFamily adds a family to its user's index, which lives as long as
// the longest-lived family in it. KEYS: rtuser:<user>. ARGV: family id,
// family ttl.
var indexFamily = redis.NewScript(`
redis.call('SADD', KEYS[1], ARGV[1])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 1`)

// rotate implements store.Refresh.Rotate in one step.
// KEYS: rt:<old>, rt:<new>, rtfam:<family>.
// ARGV: family id, now, grace, token ttl, access jti, access exp (ns),
// old hash, new hash.
// A rotated old token whose family already names the new hash is this
// rotation run again: 'ok'.
// Returns {'ok', family fields} | {'race'} | {'reused', family fields} |
// {'nf'} | {'conflict'}.
var rotate = redis.NewScript(`
local t = redis.call('HMGET', KEYS[1], 'fam', 'st', 'at')
if not t[1] or t[1] ~= ARGV[1] then return {'nf'} end
local f = redis.call('HMGET', KEYS[3], 'cur', 'rev', 'end')
if not f[3] or f[2] == '1' then return {'nf'} end
local now = tonumber(ARGV[2])
if t[2] == 'r' then
  if f[1] == ARGV[8] then return {'ok', redis.call('HGETALL', KEYS[3])} end
  if now - tonumber(t[3]) <= tonumber(ARGV[3]) then return {'race'} end
  redis.call('HSET', KEYS[3], 'rev', '1')
  return {'reused', redis.call('HGETALL', KEYS[3])}
end
if f[1] ~= ARGV[7] then return {'nf'} end
local ttl = math.min(tonumber(ARGV[4]), tonumber(f[3]) - now)
if ttl <= 0 then return {'nf'} end
if redis.call('EXISTS', KEYS[2]) == 1 then return {'conflict'} end
redis.call('HSET', KEYS[1], 'st', 'r', 'at', ARGV[2])
redis.call('HSET', KEYS[2], 'fam', ARGV[1], 'st', 'a')
redis.call('PEXPIRE', KEYS[2], ttl)
redis.call('HSET', KEYS[3], 'cur', ARGV[8], 'jti', ARGV[5], 'aexp', ARGV[6])
return {'ok', redis.call('HGETALL', KEYS[3])}`)

// markRevoked sets rev=1 on an existing hash record (a family or a key).
// KEYS: the record. Returns its fields, or {} if it is missing.
var markRevoked = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return {} end
redis.call('HSET', KEYS[1], 'rev', '1')
return redis.call('HGETALL', KEYS[1])`)

// revokeJTI: the denylist entry plus the sorted set that lists it.
// KEYS: revoked:<jti>, revoked set. ARGV: ttl, exp, jti, now.
var revokeJTI = redis.NewScript(`
local ttl = tonumber(ARGV[1])
if redis.call('PTTL', KEYS[1]) < ttl then redis.call('SET', KEYS[1], '1', 'PX', ttl) end
local cur = redis.call('ZSCORE', KEYS[2], ARGV[3])
if not cur or tonumber(cur) < tonumber(ARGV[2]) then redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3]) end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[4])
if redis.call('PTTL', KEYS[2]) < ttl then redis.call('PEXPIRE', KEYS[2], ttl) end
return 1`)

// createKey: KEYS: key:<hash>, keyid:<id>, key index.
// ARGV: d (JSON), hash, ttl (0: none). Returns 1, or 0 on conflict.
var createKey = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('EXISTS', KEYS[2]) == 1 then
  if redis.call('HGET', KEYS[1], 'd') == ARGV[1] and redis.call('GET', KEYS[2]) == ARGV[2] then return 1 end
  return 0
end
redis.call('HSET', KEYS[1], 'd', ARGV[1])
redis.call('SET', KEYS[2], ARGV[2])
local ttl = tonumber(ARGV[3])
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('PEXPIRE', KEYS[2], ttl)
end
redis.call('SADD', KEYS[3], ARGV[2])
return 1`)

// touchKey raises last-used on an existing key only.
// KEYS: key:<hash>. ARGV: unix ns as a decimal string.
var touchKey = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local cur = redis.call('HGET', KEYS[1], 'lu')
if cur and tonumber(cur) >= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'lu', ARGV[1])
return 1`)

// createAgent: KEYS agent:<id>, agents; ARGV record, id. 1 if created,
// 0 if another agent has the id.
var createAgent = redis.NewScript(`
if redis.call('SET', KEYS[1], ARGV[1], 'NX') then
  redis.call('SADD', KEYS[2], ARGV[2])
  return 1
end
if redis.call('GET', KEYS[1]) == ARGV[1] then return 1 end
return 0`)

// allow: fixed-window counter. KEYS: rl:<key>. ARGV: window.
// Returns {count, remaining ms}.
var allow = redis.NewScript(`
local c = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  ttl = tonumber(ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return {c, ttl}`)

// refund: takes one hit back from a live window. KEYS: rl:<key>. DECR
// keeps the TTL; a missing key is not created (nor one without a TTL
// left behind).
var refund = redis.NewScript(`
local c = tonumber(redis.call('GET', KEYS[1]) or '0')
if c > 0 and redis.call('PTTL', KEYS[1]) > 0 then
  redis.call('DECR', KEYS[1])
end
return 0`)

// scripts lists every script, for LoadScripts.
var scripts = []*redis.Script{createClient, touchClient, deleteIndexed, takeOnce, putCode, redeemCode, createFamily,
	indexFamily, rotate, markRevoked, revokeJTI, createKey, touchKey, createAgent, allow, refund}
