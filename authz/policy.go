package authz

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mcpgateway/mcp-gateway/internal/metrics"
	"github.com/mcpgateway/mcp-gateway/internal/resource"
	"github.com/mcpgateway/mcp-gateway/store"
)

// Tool policy: an agent's rules (store.Rule) over the MCP operation of a
// request. The operation is read from the Mcp-Method / Mcp-Name headers when
// the client speaks protocol 2026-07-28 or later (whose servers reject a
// request whose headers disagree with its body, so the headers can be
// trusted), else from the JSON-RPC body. Agents without rules never read
// either: their decision is the same as before policies existed.

// Headers the policy reads.
const (
	headerMCPProtocolVersion = "mcp-protocol-version"
	// headerPartialBody is set by Envoy when it sent only part of the body
	// (allow_partial_message: true and a larger body).
	headerPartialBody = "x-envoy-auth-partial-body"
)

// HeaderProtocolVersionFirst is the first MCP protocol version whose
// clients send Mcp-Method/Mcp-Name and whose servers check them against
// the body; earlier versions' headers are not trusted alone.
const HeaderProtocolVersionFirst = "2026-07-28"

// MaxMCPBody is the largest JSON-RPC body the policy reads (Envoy's
// with_request_body max_request_bytes should be the same).
const MaxMCPBody = 64 << 10

// ruleInfo is a rule plus what its decision needs precomputed.
type ruleInfo struct {
	rule          *store.Rule
	methodGlob    bool
	targetGlob    bool
	need          [][]string // per required scope, the granted scopes that satisfy it
	users, groups []string
	creds         [nCreds]bool // allowed credential kinds; all when the rule names none
	label         string       // metric label and audit "rule"
	cAllow, cDeny prometheus.Counter
	ch            string // 403 challenge naming all scopes the operation needs
}

func isGlob(p string) bool { return strings.ContainsAny(p, `*?[\`) }

// matches reports whether the rule covers method and name.
func (ri *ruleInfo) matches(method, name string) bool {
	if !globMatch(ri.rule.Method, ri.methodGlob, method) {
		return false
	}
	return ri.rule.Target == "" || globMatch(ri.rule.Target, ri.targetGlob, name)
}

func globMatch(pattern string, glob bool, s string) bool {
	if !glob {
		return pattern == s
	}
	ok, _ := path.Match(pattern, s) // validated; a bad one marks the agent badPolicy
	return ok
}

// satisfiers returns s and every declared scope that implies it, directly
// or through others: a grant of any of them covers s.
func (a *Authorizer) satisfiers(s string) []string {
	out := []string{s}
	for changed := true; changed; {
		changed = false
		for broad, narrow := range a.implies {
			if slices.Contains(out, broad) {
				continue
			}
			for _, n := range narrow {
				if slices.Contains(out, n) {
					out = append(out, broad)
					changed = true
					break
				}
			}
		}
	}
	slices.Sort(out[1:]) // deterministic: map order is not
	return out
}

// buildRules precomputes ai's rules; base are the agent's base scopes.
func (a *Authorizer) buildRules(id string, ai *agentInfo, base []string) {
	if len(ai.agent.Rules) == 0 {
		return
	}
	// Records are validated when written; one that is not (edited in the
	// store by hand) must not fail open through a pattern that never matches.
	if err := store.ValidateRules(ai.agent.Rules); err != nil {
		ai.badPolicy = true
		a.log.Error("authz: the agent's tool policy is invalid: every operation on it is refused", "agent", id, "err", err)
	}
	ai.rules = make([]ruleInfo, len(ai.agent.Rules))
	for i := range ai.agent.Rules {
		r := &ai.agent.Rules[i]
		ri := &ai.rules[i]
		ri.rule = r
		ri.methodGlob, ri.targetGlob = isGlob(r.Method), isGlob(r.Target)
		ri.users, ri.groups = r.Users, r.Groups
		all := slices.Clone(base)
		for _, s := range r.Scopes {
			if !store.ValidScopeToken(s) {
				ri.need = append(ri.need, nil) // unsatisfiable: deny
				continue
			}
			ri.need = append(ri.need, a.satisfiers(s))
			if !slices.Contains(all, s) {
				all = append(all, s)
			}
		}
		if len(r.Credentials) == 0 {
			ri.creds = [nCreds]bool{true, true, true, true}
		}
		for _, c := range r.Credentials {
			if i := slices.Index(credNames[:], c); i > 0 {
				ri.creds[i] = true
			}
		}
		ri.label = ruleLabel(r.Name)
		ri.cAllow = metrics.PolicyDecisions.WithLabelValues(id, ri.label, "allow")
		ri.cDeny = metrics.PolicyDecisions.WithLabelValues(id, ri.label, "deny")
		ri.ch = `Bearer realm="MCP", error="insufficient_scope", error_description="` + reasons[rRuleScope].desc +
			`", scope="` + strings.Join(all, " ") + `", resource_metadata="` + a.prmBase + resource.Rel(id, false) + `"`
	}
}

// mcpOp is the MCP operation of a request ("" for none).
type mcpOp struct{ method, name string }

// caller is who a policy judges.
type caller struct {
	user   string
	groups []string
	scope  string // granted, space-separated
	cred   int
}

// applyPolicy decides the operation of r against ai's rules and limits.
// Agents with neither allow at once: nothing is read, nothing counted.
func (a *Authorizer) applyPolicy(ctx context.Context, r *Request, d *Decision, ai *agentInfo, c *caller, now time.Time) reason {
	if len(ai.rules) == 0 && ai.limits == nil {
		return rOK
	}
	if ai.badPolicy {
		return rUnavailable
	}
	var op mcpOp
	if len(ai.rules) > 0 || ai.limits.PerTool > 0 {
		var rsn reason
		op, rsn = readOp(r)
		d.MCPMethod, d.MCPName = op.method, op.name
		if rsn != rOK {
			return rsn
		}
	}
	ri := ai.matchRule(op)
	if ri != nil {
		d.Rule = ri.label
		if rsn := ri.judge(d, ai.agent, c); rsn != rOK {
			ri.cDeny.Inc()
			return rsn
		}
	}
	if ai.limits != nil {
		if rsn := a.checkLimits(ctx, d, ai, c, op, now); rsn != rOK {
			return rsn
		}
	}
	if ri != nil {
		ri.cAllow.Inc()
	} else {
		ai.cNoRule.Inc()
	}
	return rOK
}

// matchRule is the first rule covering op, nil for none (GET, DELETE,
// notifications without headers and responses carry no method).
func (ai *agentInfo) matchRule(op mcpOp) *ruleInfo {
	if op.method == "" {
		return nil
	}
	for i := range ai.rules {
		if ai.rules[i].matches(op.method, op.name) {
			return &ai.rules[i]
		}
	}
	return nil
}

// judge applies the rule to the caller: credential kind and users first
// (no step-up helps), then its scopes (403 with the step-up challenge).
func (ri *ruleInfo) judge(d *Decision, ag *store.Agent, c *caller) reason {
	if !ri.creds[c.cred] || !ri.admits(ag, c) {
		return rRuleForbidden
	}
	for _, sats := range ri.need {
		if !scopeOverlap(c.scope, sats) {
			d.hdr[0] = HeaderValue{Key: "www-authenticate", Value: ri.ch}
			return rRuleScope
		}
	}
	return rOK
}

// limitWindow is the fixed window of agent limits.
const limitWindow = time.Minute

// checkLimits counts the request against the agent's per-user and
// per-tool limits in the store, so replicas share them: 429 with
// Retry-After when over; a store failure refuses (503), never allows.
func (a *Authorizer) checkLimits(ctx context.Context, d *Decision, ai *agentInfo, c *caller, op mcpOp, now time.Time) reason {
	if a.limiter == nil {
		return rUnavailable // limits configured but nothing can count them
	}
	who := c.user
	if who == "" {
		who = "key:" + d.KeyID // a key without a user counts as its own user
	}
	l := ai.limits
	var keys [2]string
	var limits [2]int
	n := 0
	if l.PerUser > 0 {
		keys[n], limits[n] = "agentlimit:u:"+ai.agent.ID+":"+who, l.PerUser
		n++
	}
	if l.PerTool > 0 && op.method == "tools/call" {
		keys[n], limits[n] = "agentlimit:t:"+ai.agent.ID+":"+strconv.Itoa(len(who))+":"+who+":"+limitName(op.name), l.PerTool
		n++
	}
	for i := range n {
		cctx, cancel := context.WithTimeout(ctx, a.storeTimeout)
		ok, retry, err := a.limiter.Allow(cctx, keys[i], limits[i], limitWindow)
		cancel()
		if err != nil {
			metrics.StoreErrors.WithLabelValues("rate_limit").Inc()
			return rUnavailable
		}
		if !ok {
			ai.cLimited.Inc()
			secs := int((retry + time.Second - 1) / time.Second)
			d.hdr[1] = HeaderValue{Key: "retry-after", Value: strconv.Itoa(max(secs, 1))}
			return rRateLimited
		}
	}
	return rOK
}

// limitName is a tool name as a counter key part: long names are hashed,
// so keys stay bounded whatever a client sends.
func limitName(name string) string {
	if len(name) <= 128 {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// admits reports whether the rule's users and groups (when it names any)
// include the caller.
func (ri *ruleInfo) admits(ag *store.Agent, c *caller) bool {
	if len(ri.users) == 0 && len(ri.groups) == 0 {
		return true
	}
	for _, u := range ri.users {
		switch u {
		case store.RuleOwner:
			if c.user != "" && c.user == ag.Owner {
				return true
			}
		case store.RuleGranted:
			if c.user != "" && slices.Contains(ag.Users, c.user) {
				return true
			}
		default:
			if c.user != "" && c.user == u {
				return true
			}
		}
	}
	for _, g := range c.groups {
		if slices.Contains(ri.groups, g) {
			return true
		}
	}
	return false
}

// header reads a request header by lower-case name.
func (r *Request) header(name string) string {
	switch {
	case r.Headers != nil:
		return r.Headers[name]
	case r.Header != nil:
		return r.Header(name)
	}
	return ""
}

// readOp reads the MCP operation of r: GET and DELETE carry none; a POST's
// comes from the headers (protocol ≥ 2026-07-28) or the body, and when both
// are present they must agree.
func readOp(r *Request) (mcpOp, reason) {
	if r.Method != "POST" {
		return mcpOp{}, rOK
	}
	var op mcpOp
	if len(r.Body) == 0 && r.LoadBody != nil {
		r.Body, r.BodyTooLarge = r.LoadBody()
		r.LoadBody = nil
	}
	if r.BodyTooLarge || len(r.Body) > MaxMCPBody || r.header(headerPartialBody) == "true" {
		return op, rBodyTooLarge
	}
	hm, hn := r.header(headerMCPMethod), r.header(headerMCPName)
	var rsn reason
	if hm != "" {
		if op.method, rsn = decodeHeaderValue(hm); rsn != rOK {
			return op, rsn
		}
	}
	if hn != "" {
		if op.name, rsn = decodeHeaderValue(hn); rsn != rOK {
			return op, rsn
		}
	}
	if modernProtocol(r.header(headerMCPProtocolVersion)) {
		if namedMethod(op.method) && hn == "" {
			return op, rMissingMCPName
		}
		// Without Mcp-Method the message is a notification or a response:
		// servers refuse a request that lacks it (clients such as the
		// TypeScript SDK v2 send none on notifications). Their method is
		// "", which no rule names; a body, when present, still decides.
		if len(r.Body) == 0 {
			return op, rOK
		}
	} else if len(r.Body) == 0 {
		return op, rNeedBody
	}
	bm, bn, rsn := parseBody(r.Body)
	if rsn != rOK {
		return op, rsn
	}
	if hm != "" && bm != op.method || hn != "" && bn != op.name {
		return op, rHeaderMismatch
	}
	op.method, op.name = bm, bn
	return op, rOK
}

// namedMethod reports whether method m requires an Mcp-Name.
func namedMethod(m string) bool {
	return m == "tools/call" || m == "resources/read" || m == "prompts/get"
}

// modernProtocol reports whether v is a well-formed YYYY-MM-DD version at
// or after HeaderProtocolVersionFirst.
func modernProtocol(v string) bool {
	if len(v) != len(HeaderProtocolVersionFirst) {
		return false
	}
	for i := 0; i < len(v); i++ {
		if i == 4 || i == 7 {
			if v[i] != '-' {
				return false
			}
		} else if v[i] < '0' || v[i] > '9' {
			return false
		}
	}
	return v >= HeaderProtocolVersionFirst
}

const (
	b64Prefix = "=?base64?"
	b64Suffix = "?="
)

// decodeHeaderValue reads an Mcp-Method/Mcp-Name value: plain printable
// ASCII, or `=?base64?<standard Base64 of UTF-8>?=`. Anything else is
// malformed (400).
func decodeHeaderValue(v string) (string, reason) {
	if strings.HasPrefix(v, b64Prefix) {
		// Clients encode any value that starts like the sentinel, so one
		// that starts so and is not exactly a sentinel is malformed.
		if !strings.HasSuffix(v, b64Suffix) || len(v) < len(b64Prefix)+len(b64Suffix) {
			return "", rBadMCPHeader
		}
		b, err := base64.StdEncoding.Strict().DecodeString(v[len(b64Prefix) : len(v)-len(b64Suffix)])
		if err != nil || !utf8.Valid(b) {
			return "", rBadMCPHeader
		}
		return string(b), rOK
	}
	for i := 0; i < len(v); i++ {
		if v[i] < 0x20 || v[i] > 0x7e {
			return "", rBadMCPHeader
		}
	}
	return v, rOK
}

// parseBody reads the JSON-RPC method and the name (params.name, or
// params.uri for resources/read) of one message. A batch, a non-object, a
// non-string method or name, or a key that differs from "method",
// "params", "name" or "uri" only in case (decoders disagree on those) is
// refused rather than guessed at. A repeated key counts by its last value,
// as JSON.parse and encoding/json read it. The body is validated once
// (json.Valid) and then walked without decoding what the policy does not
// read, the arguments above all.
func parseBody(b []byte) (method, name string, rsn reason) {
	b = bytes.TrimLeft(b, " \t\r\n")
	if len(b) > 0 && b[0] == '[' {
		return "", "", rBatch
	}
	if len(b) == 0 || b[0] != '{' || !json.Valid(b) {
		return "", "", rBadBody
	}
	var rawMethod, rawParams []byte
	ok := eachMember(b, func(key string, v []byte) bool {
		switch {
		case key == "method":
			rawMethod = v
		case key == "params":
			rawParams = v
		case strings.EqualFold(key, "method"), strings.EqualFold(key, "params"):
			return false
		}
		return true
	})
	if !ok {
		return "", "", rBadBody
	}
	if rawMethod != nil {
		if method, ok = jsonString(rawMethod); !ok {
			return "", "", rBadBody
		}
	}
	if rawParams == nil || !namedMethod(method) {
		return method, "", rOK
	}
	want := "name"
	if method == "resources/read" {
		want = "uri"
	}
	var rawName []byte
	if rawParams[0] != '{' || !eachMember(rawParams, func(key string, v []byte) bool {
		switch {
		case key == want:
			rawName = v
		case key != "name" && key != "uri" && (strings.EqualFold(key, "name") || strings.EqualFold(key, "uri")):
			return false
		}
		return true
	}) {
		return "", "", rBadBody
	}
	if rawName != nil {
		if name, ok = jsonString(rawName); !ok {
			return "", "", rBadBody
		}
	}
	return method, name, rOK
}

// eachMember calls fn with each key (unescaped) and raw value of the valid
// JSON object b, stopping when fn returns false (then it returns false).
func eachMember(b []byte, fn func(key string, v []byte) bool) bool {
	i := skipWS(b, 1)
	if i < len(b) && b[i] == '}' {
		return true
	}
	for i < len(b) {
		end := skipValue(b, i)
		key, ok := jsonString(b[i:end])
		if !ok {
			return false
		}
		i = skipWS(b, end)
		i = skipWS(b, i+1) // ':'
		end = skipValue(b, i)
		if !fn(key, b[i:end]) {
			return false
		}
		i = skipWS(b, end)
		if i >= len(b) || b[i] == '}' {
			return true
		}
		i = skipWS(b, i+1) // ','
	}
	return true
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n') {
		i++
	}
	return i
}

// skipValue returns the end of the valid JSON value starting at b[i].
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		// The next quote not escaped by an odd run of backslashes ends it;
		// IndexByte finds quotes fast in long argument strings.
		for i++; ; {
			j := bytes.IndexByte(b[i:], '"')
			if j < 0 {
				return len(b)
			}
			i += j
			n := 0
			for k := i - 1; b[k] == '\\'; k-- {
				n++
			}
			i++
			if n%2 == 0 {
				return i
			}
		}
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				i = skipValue(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
		return i
	default: // number, true, false, null
		for i < len(b) && !strings.ContainsRune(" \t\r\n,}]", rune(b[i])) {
			i++
		}
		return i
	}
}

// jsonString decodes a raw JSON string value; ok is false for any other
// kind of value. Plain UTF-8 strings without escapes are not decoded again.
func jsonString(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return "", false
	}
	if bytes.IndexByte(raw, '\\') < 0 && utf8.Valid(raw) { // else decode: escapes, U+FFFD as servers read it
		return string(raw[1 : len(raw)-1]), true
	}
	var s string
	return s, json.Unmarshal(raw, &s) == nil
}
