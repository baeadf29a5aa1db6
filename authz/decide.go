package authz

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/mcpgateway/mcp-gateway/assertion"
	"github.com/mcpgateway/mcp-gateway/internal/resource"
	"github.com/mcpgateway/mcp-gateway/store"
	"github.com/mcpgateway/mcp-gateway/token"
)

// Identity headers sent upstream on allow.
const (
	HeaderUser       = "x-mcp-user"
	HeaderAgent      = "x-mcp-agent"
	HeaderClientID   = "x-mcp-client-id"
	HeaderScope      = "x-mcp-scope"
	HeaderCredential = "x-mcp-credential"
	// HeaderIdentity carries the signed identity assertion (package
	// assertion; agents verify it with package agentauth).
	HeaderIdentity = assertion.Header
)

// Decision reasons (Decision.Reason, metric label "reason", audit "reason").
const (
	ReasonOK                = "ok"
	ReasonBadPath           = "bad_path"
	ReasonMissingCredential = "missing_credential"
	ReasonInvalidToken      = "invalid_token"
	ReasonExpired           = "expired"
	ReasonRevoked           = "revoked"
	ReasonWrongAudience     = "wrong_audience"
	ReasonForbidden         = "forbidden"
	ReasonInsufficientScope = "insufficient_scope"
	ReasonUnknownAgent      = "unknown_agent"
	ReasonUnavailable       = "unavailable"
	ReasonRouteMismatch     = "route_mismatch"
	ReasonOriginNotAllowed  = "origin_not_allowed"
	// Tool policy (policy.go).
	ReasonRuleForbidden  = "rule_forbidden"
	ReasonBodyTooLarge   = "body_too_large"
	ReasonBadMCPRequest  = "bad_mcp_request"
	ReasonHeaderMismatch = "header_mismatch"
	ReasonMCPUnreadable  = "mcp_unreadable"
	ReasonRateLimited    = "rate_limited"
)

// ContextExtensionAgent is the ext_authz context_extensions key under which
// a data-plane route names the agent it was built for (Envoy per-route
// check_settings). When a Check carries it, it must equal the agent in the
// path, else the Check denies with 404 route_mismatch.
const ContextExtensionAgent = "agent"

type reason uint8

const (
	rOK reason = iota
	rBadPath
	rMissing
	rInvalid
	rExpired
	rRevoked
	rWrongAud
	rForbidden
	rInsufficientScope
	rUnknownAgent
	rUnavailable
	rRouteMismatch
	rOrigin
	rRuleForbidden
	rRuleScope
	rBodyTooLarge
	rMissingMCPName
	rBadMCPHeader
	rBatch
	rBadBody
	rHeaderMismatch
	rNeedBody
	rRateLimited
	nReasons
)

// reasons maps each reason to its status, metric decision label, and the
// error/error_description of its JSON body and challenge.
var reasons = [nReasons]struct {
	name, decision string
	status         int
	err, desc      string
	body           []byte // filled in init
	bodyStr        string // body as a string (gRPC wants one), filled in init
}{
	rOK:       {name: ReasonOK, decision: "allow", status: 200},
	rBadPath:  {ReasonBadPath, "deny", 404, "not_found", "not an MCP endpoint: want /<agent>/mcp", nil, ""},
	rMissing:  {ReasonMissingCredential, "deny", 401, "unauthorized", "a Bearer access token or API key is required", nil, ""},
	rInvalid:  {ReasonInvalidToken, "deny", 401, "invalid_token", "the credential is malformed, unknown or its signature is invalid", nil, ""},
	rExpired:  {ReasonExpired, "deny", 401, "invalid_token", "the credential has expired", nil, ""},
	rRevoked:  {ReasonRevoked, "deny", 401, "invalid_token", "the credential has been revoked", nil, ""},
	rWrongAud: {ReasonWrongAudience, "deny", 401, "invalid_token", "the access token was not issued for this resource", nil, ""},
	// Not a scope problem: no insufficient_scope, so no client tries a
	// step-up that cannot help.
	rForbidden:         {ReasonForbidden, "deny", 403, "access_denied", "this user or credential may not use this agent", nil, ""},
	rInsufficientScope: {ReasonInsufficientScope, "deny", 403, "insufficient_scope", "the credential's scope does not cover this agent", nil, ""},
	rUnknownAgent:      {ReasonUnknownAgent, "deny", 404, "not_found", "no such agent", nil, ""},
	rUnavailable:       {ReasonUnavailable, "error", 503, "temporarily_unavailable", "the authorization service cannot reach its store; retry shortly", nil, ""},
	// A route built for one agent received another's path: the data plane
	// and the gateway parsed the path differently, or the route table is
	// wrong. Nothing is routed there, hence 404 like bad_path.
	rRouteMismatch: {ReasonRouteMismatch, "deny", 404, "not_found", "this path does not belong to the agent its route was built for", nil, ""},
	// A browser page of another site (or a DNS-rebound name) calls an agent:
	// refused before the credential is looked at, with no challenge, as no
	// token would make it acceptable.
	rOrigin: {ReasonOriginNotAllowed, "deny", 403, "origin_not_allowed", "the request's Origin may not call this agent: the gateway admits its public URL's origin and agent_origins", nil, ""},

	// Tool policy.
	rRuleForbidden:  {ReasonRuleForbidden, "deny", 403, "access_denied", "this agent's policy does not let this user or credential perform this operation", nil, ""},
	rRuleScope:      {ReasonInsufficientScope, "deny", 403, "insufficient_scope", "this operation needs a scope the credential was not granted", nil, ""},
	rBodyTooLarge:   {ReasonBodyTooLarge, "deny", 413, "invalid_request", "the MCP request body is larger than the 64 KiB this agent's tool policy reads", nil, ""},
	rMissingMCPName: {ReasonBadMCPRequest, "deny", 400, "invalid_request", "MCP-Protocol-Version 2026-07-28 or later requires the Mcp-Name header for tools/call, resources/read and prompts/get", nil, ""},
	rBadMCPHeader:   {ReasonBadMCPRequest, "deny", 400, "invalid_request", "malformed Mcp-Method or Mcp-Name header: want printable ASCII or =?base64?<Base64 of UTF-8>?=", nil, ""},
	rBatch:          {ReasonBadMCPRequest, "deny", 400, "invalid_request", "JSON-RPC batches are not accepted by an agent with a tool policy: send one message per request", nil, ""},
	rBadBody:        {ReasonBadMCPRequest, "deny", 400, "invalid_request", "the body is not one JSON-RPC message with a string method and params.name/params.uri", nil, ""},
	rHeaderMismatch: {ReasonHeaderMismatch, "deny", 400, "invalid_request", "HeaderMismatch: the Mcp-Method/Mcp-Name headers do not match the JSON-RPC body", nil, ""},
	rNeedBody: {ReasonMCPUnreadable, "deny", 400, "invalid_request", "this agent has a per-tool policy and the request's MCP method cannot be read: " +
		"use an MCP client speaking protocol 2026-07-28 or later (it sends Mcp-Method/Mcp-Name), or a data plane that passes the request body " +
		"(Envoy ext_authz with_request_body; nginx auth_request cannot)", nil, ""},
	rRateLimited: {ReasonRateLimited, "deny", 429, "rate_limited", "too many requests from this user to this agent or tool; retry after Retry-After seconds", nil, ""},
}

// chError is the error part appended to a 401 challenge, per reason.
var chError [nReasons]string

func init() {
	for i := range reasons {
		r := &reasons[i]
		if r.err == "" {
			continue
		}
		r.body, _ = json.Marshal(struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}{r.err, r.desc})
		r.bodyStr = string(r.body)
		if r.status == 401 && r.err == "invalid_token" {
			chError[i] = `, error="invalid_token", error_description="` + r.desc + `"`
		}
	}
}

const (
	credNone = iota
	credOAuth
	credAgent
	credUser
	nCreds
)

var credNames = [nCreds]string{CredNone, CredOAuth, CredAgent, CredUser}

var adapterNames = [4]string{"direct", "grpc", "http", "proxy"}

// Limits on what is parsed at all; anything longer is invalid_token.
const (
	maxTokenLen  = 4096
	maxAPIKeyLen = 256
)

var jsonHeader = HeaderValue{Key: "content-type", Value: "application/json"}

// Decide turns one request into a decision. It never returns nil, never
// panics on input and never allows on an internal failure.
func (a *Authorizer) Decide(ctx context.Context, r *Request) *Decision {
	d := &Decision{}
	a.decideInto(ctx, r, d)
	return d
}

// decideInto is Decide filling a zero Decision the caller allocated (the
// gRPC Check allocates it with the rest of the call's state, in one object).
func (a *Authorizer) decideInto(ctx context.Context, r *Request, d *Decision) {
	start := time.Now()
	if r == nil {
		r = &Request{}
	}
	now := start
	if !a.realClock {
		now = a.now()
	}
	rsn, cred, agent := a.decide(ctx, r, d, now)
	d.Reason = reasons[rsn].name
	d.Identity.Credential = credNames[cred]
	if rsn != rOK {
		a.deny(ctx, d, rsn, agent, now, slashForm(r.Path))
	}
	a.counters[rsn][cred].Inc()
	a.countAgent(d.ai, agent, rsn == rOK, now)
	a.observe(r.Adapter, time.Since(start))
	if rsn != rOK {
		a.audit(ctx, r, d, agent)
	}
}

// countAgent bumps the per-agent decision counter: ai when the decision
// looked the agent up, else a registered agent already known (config or
// cached, never a store read), else "other", so the label set stays
// bounded by the registry whatever paths clients send.
func (a *Authorizer) countAgent(ai *agentInfo, agent string, allow bool, now time.Time) {
	if ai == nil && agent != "" {
		if s, ok := a.static[agent]; ok {
			ai = s
		} else if c, ok := a.agents.Lookup(agent, now); ok {
			ai = c
		}
	}
	i := 0
	if allow {
		i = 1
	}
	if ai == nil {
		a.otherAgent[i].Inc()
		return
	}
	ai.cDecisions[i].Inc()
}

func (a *Authorizer) observe(adapter string, took time.Duration) {
	i := 0
	switch adapter {
	case "grpc":
		i = 1
	case "http":
		i = 2
	case "proxy":
		i = 3
	}
	a.latency[i].Observe(took.Seconds())
}

func (a *Authorizer) decide(ctx context.Context, r *Request, d *Decision, now time.Time) (reason, int, string) {
	agent, ok := AgentFromPath(r.Path)
	if !ok {
		return rBadPath, credNone, ""
	}
	if r.RouteAgent != nil && *r.RouteAgent != agent {
		return rRouteMismatch, credNone, agent
	}
	if !a.originOK(r) {
		return rOrigin, credNone, agent
	}
	var authz string
	switch {
	case r.Headers != nil:
		authz = r.Headers["authorization"]
	case r.Header != nil:
		authz = r.Header("authorization")
	}
	raw, cred, ok := parseBearer(authz)
	switch {
	case cred == credNone:
		return rMissing, credNone, agent
	case !ok:
		return rInvalid, cred, agent
	case cred == credOAuth:
		return a.decideJWT(ctx, r, d, agent, raw, now), credOAuth, agent
	default:
		return a.decideKey(ctx, r, d, agent, raw, cred, now), cred, agent
	}
}

// originOK reports whether r has no Origin (not a browser) or an admitted one.
func (a *Authorizer) originOK(r *Request) bool {
	o := r.origin()
	return o == "" || a.OriginAllowed(o)
}

// origin is the request's Origin header ("" when absent).
func (r *Request) origin() string {
	switch {
	case r.Headers != nil:
		return r.Headers["origin"]
	case r.Header != nil:
		return r.Header("origin")
	}
	return ""
}

// OriginAllowed reports whether a browser page of origin may call agents:
// the public URL's origin, agent_origins, or any when that lists "*".
// Repeated Origin headers (joined with ",") match nothing.
func (a *Authorizer) OriginAllowed(origin string) bool {
	return a.anyOrigin || slices.Contains(a.origins, origin)
}

// parseBearer reads `Bearer <token>` (scheme case-insensitive). cred is
// credNone when there is no Bearer credential at all (absent header or
// another scheme: RFC 6750 §3.1 says no error code then); ok is false for
// a Bearer credential that is not exactly one well-formed token.
func parseBearer(h string) (tok string, cred int, ok bool) {
	h = strings.Trim(h, " \t")
	if len(h) < len("bearer") || !strings.EqualFold(h[:len("bearer")], "bearer") {
		return "", credNone, false
	}
	if len(h) == len("bearer") {
		return "", credOAuth, false // "Bearer" and nothing else
	}
	if h[len("bearer")] != ' ' {
		return "", credNone, false // e.g. "BearerX …": another scheme
	}
	tok = strings.TrimLeft(h[len("bearer"):], " ")
	switch {
	case strings.HasPrefix(tok, token.PrefixAgentKey):
		cred = credAgent
	case strings.HasPrefix(tok, token.PrefixUserKey):
		cred = credUser
	default:
		cred = credOAuth
	}
	if tok == "" || len(tok) > maxTokenLen || !isB64Token(tok) {
		return "", cred, false
	}
	return tok, cred, true
}

// b64tokenChar is 1 for the RFC 6750 b64token characters (the "=" padding
// aside): ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/"; else 0.
var b64tokenChar = func() (t [256]uint8) {
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = 1, 1
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = 1
	}
	for _, c := range "-._~+/" {
		t[c] = 1
	}
	return t
}()

// isB64Token reports whether s is an RFC 6750 b64token:
// 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
func isB64Token(s string) bool {
	i := 0
	// Eight characters a step, without a branch per character: an access
	// token is hundreds long, and every Check reads it.
	for ; len(s)-i >= 8; i += 8 {
		w := s[i : i+8]
		if b64tokenChar[w[0]]&b64tokenChar[w[1]]&b64tokenChar[w[2]]&b64tokenChar[w[3]]&
			b64tokenChar[w[4]]&b64tokenChar[w[5]]&b64tokenChar[w[6]]&b64tokenChar[w[7]] == 0 {
			break
		}
	}
	for i < len(s) && b64tokenChar[s[i]] == 1 {
		i++
	}
	if i == 0 {
		return false
	}
	for ; i < len(s); i++ {
		if s[i] != '=' {
			return false
		}
	}
	return true
}

func (a *Authorizer) decideJWT(ctx context.Context, r *Request, d *Decision, agent, raw string, now time.Time) reason {
	if !a.loaded.Load() {
		return rUnavailable // the denylist is not mirrored yet: fail closed
	}
	c, err := a.ring.Verify(raw)
	if err != nil {
		if errors.Is(err, token.ErrExpired) {
			return rExpired
		}
		return rInvalid
	}
	d.Identity.User = c.Subject
	d.Identity.ClientID = c.ClientID
	if a.jtis.revoked(c) {
		return rRevoked
	}
	if rsn := a.decisionAgent(ctx, d, agent, now); rsn != rOK {
		return rsn
	}
	ai := d.ai
	if !a.audienceOK(c.Audience, agent) {
		return rWrongAud
	}
	if !ai.agent.Allows(c.Subject) {
		return a.forbid(d, ai, rForbidden)
	}
	if !scopeOverlap(c.Scope, ai.required) {
		return a.forbid(d, ai, rInsufficientScope)
	}
	if rsn := a.applyPolicy(ctx, r, d, ai, &caller{user: c.Subject, groups: c.Groups, scope: c.Scope, cred: credOAuth}, now); rsn != rOK {
		return rsn
	}
	cref := c.ID
	if cref == "" {
		cref = raw // no jti: the token itself names the credential
	}
	if !a.allow(r, d, ai, agent, cref, c.Scope, credOAuth, now) {
		return rUnavailable
	}
	return rOK
}

// decisionAgent looks the path's agent up for a caller whose credential is
// valid, into d.ai.
func (a *Authorizer) decisionAgent(ctx context.Context, d *Decision, agent string, now time.Time) reason {
	ai, err := a.lookupAgent(ctx, agent, now)
	if err != nil {
		return rUnavailable
	}
	d.ai = ai
	if ai == nil {
		return rUnknownAgent
	}
	return rOK
}

func (a *Authorizer) decideKey(ctx context.Context, r *Request, d *Decision, agent, raw string, cred int, now time.Time) reason {
	if len(raw) > maxAPIKeyLen {
		return rInvalid
	}
	var buf [maxAPIKeyLen]byte // hashing a copy on the stack spares an allocation
	sum := sha256.Sum256(buf[:copy(buf[:], raw)])
	var hash [2 * sha256.Size]byte
	hex.Encode(hash[:], sum[:])
	ki, err := a.lookupKey(ctx, hash[:], now)
	if err != nil {
		return rUnavailable
	}
	if ki == nil {
		return rInvalid
	}
	k := ki.key
	d.KeyID = k.ID
	d.Identity.User = k.User
	d.Identity.ClientID = k.ID
	if (cred == credAgent) != (k.Kind == store.KeyAgent) || (cred == credUser) != (k.Kind == store.KeyUser) {
		return rInvalid // prefix and record disagree
	}
	if k.Revoked {
		return rRevoked
	}
	if !k.ExpiresAt.IsZero() && !now.Before(k.ExpiresAt) {
		return rExpired
	}
	if rsn := a.decisionAgent(ctx, d, agent, now); rsn != rOK {
		return rsn
	}
	ai := d.ai
	if cred == credAgent && k.Agent != agent || cred == credUser && !ai.agent.Allows(k.User) {
		return a.forbid(d, ai, rForbidden)
	}
	scope := ai.requiredStr
	if len(k.Scopes) > 0 {
		if !listOverlap(k.Scopes, ai.required) {
			return a.forbid(d, ai, rInsufficientScope)
		}
		scope = ki.scopeStr
	}
	if rsn := a.applyPolicy(ctx, r, d, ai, &caller{user: k.User, scope: scope, cred: cred}, now); rsn != rOK {
		return rsn
	}
	if !a.allow(r, d, ai, agent, k.ID, scope, cred, now) {
		return rUnavailable
	}
	a.touch(ki, now)
	return rOK
}

// audienceOK: aud must name this agent's resource (<public>/<agent>/mcp)
// or the whole gateway (<public>), byte for byte. The endpoint's slash form
// (<public>/<agent>/mcp/, a resource of its own) names the same agent, so
// a token for either form is good on either path.
func (a *Authorizer) audienceOK(aud []string, agent string) bool {
	for _, s := range aud {
		if s == a.res.String() || a.res.Names(s, agent) {
			return true
		}
	}
	return false
}

// scopeOverlap reports whether the space-separated granted scope has at
// least one of required.
func scopeOverlap(granted string, required []string) bool {
	for granted != "" {
		var s string
		s, granted, _ = strings.Cut(granted, " ")
		for _, r := range required {
			if s == r {
				return true
			}
		}
	}
	return false
}

func listOverlap(have, required []string) bool {
	for _, s := range have {
		for _, r := range required {
			if s == r {
				return true
			}
		}
	}
	return false
}

// forbid records the agent's 403 insufficient_scope challenge for deny.
// "Not your agent" (rForbidden) gets none: no scope can help, and a
// challenge would send clients into a step-up.
func (a *Authorizer) forbid(d *Decision, ai *agentInfo, rsn reason) reason {
	if rsn == rInsufficientScope {
		d.hdr[0] = HeaderValue{Key: "www-authenticate", Value: ai.chScope}
	}
	return rsn
}

// allow fills d for an allowed request: the identity headers, among them
// the signed assertion (cached per credential cref and agent), and the
// headers to strip. false: the assertion could not be signed, and the
// request must not pass without it.
func (a *Authorizer) allow(r *Request, d *Decision, ai *agentInfo, agent, cref, scope string, cred int, now time.Time) bool {
	var upstream HeaderValue
	if u := ai.upstream; u != nil {
		if ai.upstreamBad {
			return false // the agent requires a credential we cannot give
		}
		v, err := a.upsec.get(u, now)
		if err != nil {
			return false
		}
		upstream = HeaderValue{Key: u.Header, Value: v}
	}
	var assertion string
	if a.assert != nil {
		var err error
		assertion, err = a.assert.Get(cref, agent, ai.resource, identityAssertion(d, scope, cred), now)
		if err != nil {
			a.log.Error("authz: signing the identity assertion failed", "err", err)
			return false
		}
	}
	d.Allow = true
	d.Status = 200
	d.Identity.Agent = agent
	d.Identity.Scope = scope
	rm := d.rm[:0]
	if upstream.Key != "authorization" { // else overwritten with the agent's credential
		rm = append(rm, "authorization")
	}
	n := 0
	for _, h := range [...]HeaderValue{
		{HeaderUser, d.Identity.User},
		{HeaderAgent, agent},
		{HeaderClientID, d.Identity.ClientID},
		{HeaderScope, scope},
		{HeaderCredential, credNames[cred]},
		{HeaderIdentity, assertion},
	} {
		// An empty value cannot overwrite a spoofed header (Envoy drops
		// empty values), so an empty identity field is removed instead.
		if h.Value == "" {
			rm = append(rm, h.Key)
			continue
		}
		d.hdr[n] = h
		n++
	}
	if upstream.Key != "" {
		d.hdr[n] = upstream
		n++
	}
	d.UpstreamHeaders = d.hdr[:n]
	d.RemoveHeaders = rm
	switch {
	case r.Headers != nil:
		for name := range r.Headers {
			d.removeExtra(name)
		}
	case r.HeaderNames != nil:
		r.HeaderNames(func(name string) bool {
			d.removeExtra(name)
			return true
		})
	}
	return true
}

func identityAssertion(d *Decision, scope string, cred int) assertion.Identity {
	return assertion.Identity{Subject: d.Identity.User, ClientID: d.Identity.ClientID, Scope: scope, Credential: credNames[cred]}
}

// removeExtra adds an incoming x-mcp-* header other than the six identity
// names (those are overwritten or removed already) to RemoveHeaders.
func (d *Decision) removeExtra(name string) {
	if len(name) < len("x-mcp-") || !strings.EqualFold(name[:len("x-mcp-")], "x-mcp-") || isIdentityHeader(name) {
		return
	}
	d.RemoveHeaders = appendUnique(d.RemoveHeaders, strings.ToLower(name))
}

func isIdentityHeader(name string) bool {
	return strings.EqualFold(name, HeaderUser) || strings.EqualFold(name, HeaderAgent) ||
		strings.EqualFold(name, HeaderClientID) || strings.EqualFold(name, HeaderScope) ||
		strings.EqualFold(name, HeaderCredential) || strings.EqualFold(name, HeaderIdentity)
}

func appendUnique(list []string, s string) []string {
	for _, v := range list {
		if v == s {
			return list
		}
	}
	return append(list, s)
}

// deny fills the response for a refused request: the challenge (401: the
// agent's base scopes, the gateway's for an unknown agent; 403
// insufficient_scope: set by forbid or the policy), JSON content type and body.
func (a *Authorizer) deny(ctx context.Context, d *Decision, rsn reason, agent string, now time.Time, slash bool) {
	r := &reasons[rsn]
	d.Allow = false
	d.rsn = rsn
	d.Status = r.status
	d.Body = r.body
	d.Identity.Agent = agent
	d.UpstreamHeaders, d.RemoveHeaders = nil, nil
	switch r.status {
	case 401:
		if d.ai == nil && agent != "" {
			// Looked up once here, the agent's counter needs no second lookup;
			// a store error leaves the gateway's challenge.
			if ai, err := a.lookupAgent(ctx, agent, now); err == nil {
				d.ai = ai
			}
		}
		d.hdr[0] = HeaderValue{Key: "www-authenticate", Value: a.challenge401(d.ai, agent, slash) + chError[rsn]}
		d.sharedChallenge = d.ai != nil && !slash
		d.hdr[1] = jsonHeader
		d.Headers = d.hdr[:2]
	case 403:
		if rsn != rInsufficientScope && rsn != rRuleScope || d.hdr[0].Key != "www-authenticate" {
			d.hdr[0] = jsonHeader
			d.Headers = d.hdr[:1]
			break
		}
		d.hdr[1] = jsonHeader
		d.Headers = d.hdr[:2]
	case 429: // Retry-After was set by checkLimits
		d.hdr[0] = jsonHeader
		d.Headers = d.hdr[:2]
	case 503:
		d.hdr[0] = jsonHeader
		d.hdr[1] = HeaderValue{Key: "retry-after", Value: "1"}
		d.Headers = d.hdr[:2]
	default:
		d.hdr[0] = jsonHeader
		d.Headers = d.hdr[:1]
	}
}

// challenge401 is the 401 challenge, without its error part: the agent's
// base scopes, so that clients ask for what this agent grants; the
// gateway's for an agent that is unknown or could not be looked up (ai
// nil). slash: the client used /<agent>/mcp/, whose metadata names that
// form (RFC 9728 §3.3); the plain form's challenge is precomputed.
func (a *Authorizer) challenge401(ai *agentInfo, agent string, slash bool) string {
	switch {
	case ai == nil:
		return a.ch401 + resource.Rel(agent, slash) + `", scope="` + a.scopeStr + `"`
	case !slash:
		return ai.ch401
	}
	return a.ch401 + resource.Rel(agent, true) + `", scope="` + ai.requiredStr + `"`
}

// maxAuditPath bounds the attacker-controlled path echoed into the log.
const maxAuditPath = 256

// audit writes one line per denied decision: who, which agent, why. The
// credential itself never appears; key_id names an API key.
func (a *Authorizer) audit(ctx context.Context, r *Request, d *Decision, agent string) {
	if !a.log.Enabled(ctx, slog.LevelInfo) {
		return
	}
	attrs := []slog.Attr{
		slog.String("event", "deny"),
		slog.String("reason", d.Reason),
		slog.Int("status", d.Status),
		slog.String("agent", agent),
		slog.String("user", d.Identity.User),
		slog.String("client_id", d.Identity.ClientID),
		slog.String("credential", d.Identity.Credential),
		slog.String("key_id", d.KeyID),
		slog.String("method", r.Method),
	}
	// The MCP operation: as the policy read it, else (agents without rules
	// read nothing) the client's headers, undecoded.
	m, n := d.MCPMethod, d.MCPName
	if m == "" && d.Rule == "" {
		m, n = r.header(headerMCPMethod), r.header(headerMCPName)
	}
	if m != "" || n != "" || d.Rule != "" {
		attrs = append(attrs, slog.String("mcp_method", clip(m)), slog.String("mcp_name", clip(n)), slog.String("rule", d.Rule))
	}
	if d.Reason == ReasonBadPath {
		p := r.Path
		if len(p) > maxAuditPath {
			p = p[:maxAuditPath]
		}
		attrs = append(attrs, slog.String("path", p))
	}
	if d.Reason == ReasonOriginNotAllowed {
		o := r.origin()
		if len(o) > maxAuditPath {
			o = o[:maxAuditPath]
		}
		attrs = append(attrs, slog.String("origin", o))
	}
	if d.Reason == ReasonRouteMismatch && r.RouteAgent != nil {
		ra := *r.RouteAgent
		if len(ra) > maxAuditPath {
			ra = ra[:maxAuditPath]
		}
		attrs = append(attrs, slog.String("route_agent", ra))
	}
	// The record goes to the handler as Logger.LogAttrs would send it, but
	// without the caller's program counter: finding it walks the stack
	// (a twentieth of a 401's CPU), and the gateway's handler writes no
	// source, which would name this function anyway.
	rec := slog.NewRecord(time.Now(), slog.LevelInfo, "audit", 0)
	rec.AddAttrs(attrs...)
	_ = a.log.Handler().Handle(ctx, rec) // as LogAttrs: a handler's error is dropped
}

// clip bounds a client-chosen string echoed into the log.
func clip(s string) string {
	if len(s) > maxAuditPath {
		return s[:maxAuditPath]
	}
	return s
}

// ruleLabel is a rule's metric and audit label: its name, "other" when it
// has none (labels stay a bounded set).
func ruleLabel(name string) string {
	if name == "" {
		return "other"
	}
	return name
}

// slashForm: the target is an agent's endpoint in its /<agent>/mcp/ form.
func slashForm(target string) bool {
	if i := strings.IndexByte(target, '?'); i >= 0 {
		target = target[:i]
	}
	return resource.SlashForm(target)
}
