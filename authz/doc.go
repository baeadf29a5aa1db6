// Package authz is the decision: credential → identity → agent access →
// allow (identity headers for the upstream) or deny (401/403/404/503 with a
// challenge and a small JSON body). The Envoy gRPC Check (NewGRPCServer) and
// the HTTP check (HTTPCheckHandler) are thin adapters over Decide.
//
// # Order of checks
//
//  1. Path: the raw target must be /<agent>/mcp or /<agent>/mcp/ plus an
//     optional query (AgentFromPath); anything else → 404 bad_path, before
//     any credential is looked at. When the data plane's route names its
//     agent (gRPC Check: context_extensions "agent"), the path's agent must
//     be that one → else 404 route_mismatch, also before the credential.
//  2. Credential: only `Authorization: Bearer <token>` (scheme
//     case-insensitive, one RFC 6750 b64token). No Bearer credential
//     (absent, or another scheme) → 401 missing_credential, challenge
//     without error. A Bearer value that is not exactly one well-formed
//     token → 401 invalid_token. Query-string tokens are ignored.
//  3. Verification: bak_/oag_ → SHA-256 → record (cached); JWT → HS256 with
//     the ring, then the in-memory denylist. Bad → 401 invalid_token /
//     expired / revoked (all with error="invalid_token").
//  4. Agent: static agents (config) win over the store. Unknown → 404
//     unknown_agent (a credential was valid, so existence may be revealed).
//  5. JWT audience: aud must contain <public>/<agent>/mcp or <public>,
//     byte for byte → else 401 wrong_audience.
//  6. Access: JWT and oag_ → agent.Allows(user); bak_ → its own agent only.
//     Else 403 forbidden with error="insufficient_scope".
//  7. Scope: the agent requires agent.Scopes, or the gateway's scopes when
//     it has none. A JWT's space-separated scope must contain at least one
//     required scope (an empty scope never does). An API key with no scopes
//     is unrestricted within what it may reach and gets the required scopes;
//     a key with scopes must share at least one. Else 403
//     insufficient_scope, challenge scope = the agent's required scopes.
//
// A store failure that the caches cannot cover → 503 unavailable (never an
// allow). JWT decisions need no store once Start has loaded the denylist;
// before that they answer 503 too.
//
// # Allow
//
// Identity headers x-mcp-user, x-mcp-agent, x-mcp-client-id (the OAuth
// client, or the API key's id), x-mcp-scope (the token's scope, a key's
// scopes, or the agent's required scopes for an unrestricted key) and
// x-mcp-credential (oauth|agent_key|user_key). A field with no value is
// removed rather than set, since Envoy drops empty values and a spoofed
// header would survive. RemoveHeaders: authorization, those empty identity
// names, and every other incoming x-mcp-* header.
//
// # Status by adapter
//
//	decision   gRPC Check (CheckResponse status, denied HTTP status)   HTTP check
//	allow      OK (status absent), OkHttpResponse                       200
//	401        UNAUTHENTICATED, 401                                     401
//	403        PERMISSION_DENIED, 403                                   403
//	404        NOT_FOUND, 404                                           403 (no challenge)
//	503        UNAVAILABLE, 503 + Retry-After                           403 + Retry-After, temporarily_unavailable body
//
// Denials are always a CheckResponse with a DeniedHttpResponse, never an
// RPC error or an ErrorResponse, so Envoy's failure_mode_allow cannot turn
// them into an allow. A denial also carries dynamic_metadata (reason,
// agent, user, client_id, credential, key_id) for Envoy's access log; an
// allow carries only the OkHttpResponse, since the identity is already in
// the x-mcp-* headers it sets.
//
// # Caches and events
//
// API keys and store agents are cached in-process (Options.CacheTTL,
// CacheSize; "not found" for NegativeCacheTTL, at most half the entries).
// Store events (EventKey with the key hash, EventAgent) drop entries on
// every replica; EventRevokedJTI feeds the denylist mirror (a jti; with
// store.RevokedClientJTI every token a deleted client was issued; with
// store.RevokedFamilyJTI every token of a revoked grant, by its "fam"
// claim). A decision reads the mirror under one read lock; it is re-read
// from the store every ResyncInterval so a missed event is healed. Key last-used
// times are batched to Store.TouchKeys every TouchInterval, off the
// request path.
package authz
