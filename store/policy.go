package store

import (
	"fmt"
	"path"
	"slices"
	"strings"
)

// Rule is one entry of an agent's tool policy: the MCP operations it
// matches (method and name, each exact or a path.Match glob) and what a
// caller needs for them. The first rule that matches an operation decides
// it; an operation no rule matches needs only the agent's base scopes.
type Rule struct {
	// Name labels the rule in metrics and the audit log; optional.
	Name string `json:"name,omitempty"`
	// Method is the JSON-RPC method, e.g. "tools/call" or "resources/*".
	Method string `json:"method"`
	// Target is params.name (tools/call, prompts/get) or params.uri
	// (resources/read), e.g. "github_*" or "file:///public/*"; empty
	// matches any name, including none.
	Target string `json:"target,omitempty"`
	// Scopes must all be granted (directly or through implies).
	Scopes []string `json:"scopes,omitempty"`
	// Users, when set, are who may use the operation: user names, or
	// RuleOwner / RuleGranted for the agent's owner / granted users.
	Users []string `json:"users,omitempty"`
	// Groups, when set, admit a user whose access token carries one of
	// them in its groups claim (from the login provider).
	Groups []string `json:"groups,omitempty"`
	// Credentials, when set, are the credential kinds allowed: "oauth",
	// "agent_key", "user_key".
	Credentials []string `json:"credentials,omitempty"`
}

// Special Rule.Users entries.
const (
	RuleOwner   = "@owner"
	RuleGranted = "@granted"
)

// Limits on a policy, so that a decision's work stays bounded.
const (
	MaxRules        = 64
	maxRulePattern  = 512
	maxRuleNameLen  = 64
	maxRuleListLen  = 64
	maxRuleEntryLen = 256
)

var credentialKinds = []string{"oauth", "agent_key", "user_key"}

// ValidateRules checks a policy: bounded sizes, well-formed globs, known
// credential kinds, RFC 6749 scope tokens, unique rule names. The error
// names the field (rules[i].x).
func ValidateRules(rules []Rule) error {
	if len(rules) > MaxRules {
		return fmt.Errorf("rules: at most %d", MaxRules)
	}
	names := map[string]bool{}
	for i, r := range rules {
		f := fmt.Sprintf("rules[%d]", i)
		if err := r.validate(f); err != nil {
			return err
		}
		if r.Name != "" {
			if names[r.Name] {
				return fmt.Errorf("%s.name: %q used twice", f, r.Name)
			}
			names[r.Name] = true
		}
	}
	return nil
}

func (r *Rule) validate(f string) error {
	if len(r.Name) > maxRuleNameLen || strings.ContainsFunc(r.Name, func(c rune) bool {
		return !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.')
	}) {
		return fmt.Errorf("%s.name: at most %d of [A-Za-z0-9._-]", f, maxRuleNameLen)
	}
	if r.Method == "" {
		return fmt.Errorf("%s.method: required (e.g. tools/call)", f)
	}
	for field, p := range map[string]string{"method": r.Method, "target": r.Target} {
		if len(p) > maxRulePattern {
			return fmt.Errorf("%s.%s: at most %d bytes", f, field, maxRulePattern)
		}
		if _, err := path.Match(p, ""); err != nil {
			return fmt.Errorf("%s.%s: %q is not a valid glob: %w", f, field, p, err)
		}
	}
	if len(r.Scopes) == 0 && len(r.Users) == 0 && len(r.Groups) == 0 && len(r.Credentials) == 0 {
		return fmt.Errorf("%s: names no scopes, users, groups or credentials: it would restrict nothing", f)
	}
	for field, l := range map[string][]string{"scopes": r.Scopes, "users": r.Users, "groups": r.Groups, "credentials": r.Credentials} {
		if len(l) > maxRuleListLen {
			return fmt.Errorf("%s.%s: at most %d entries", f, field, maxRuleListLen)
		}
		for j, v := range l {
			if v == "" || len(v) > maxRuleEntryLen || strings.ContainsAny(v, "\"\\ \t\r\n") {
				return fmt.Errorf("%s.%s[%d]: %q is empty, too long or has spaces or quotes", f, field, j, v)
			}
		}
	}
	// Scopes and groups obey the rules of what tokens carry: an entry no
	// token could hold would make the rule unsatisfiable.
	for j, s := range r.Scopes {
		if !ValidScopeToken(s) {
			return fmt.Errorf("%s.scopes[%d]: %q is not a scope-token (printable ASCII without spaces, quotes or backslashes)", f, j, s)
		}
	}
	for j, g := range r.Groups {
		if !ValidGroup(g) {
			return fmt.Errorf("%s.groups[%d]: %q: want 1–%d bytes of visible characters", f, j, g, MaxGroupLen)
		}
	}
	for j, u := range r.Users {
		if strings.HasPrefix(u, "@") && u != RuleOwner && u != RuleGranted {
			return fmt.Errorf("%s.users[%d]: %q: the special entries are %s and %s", f, j, u, RuleOwner, RuleGranted)
		}
	}
	for j, c := range r.Credentials {
		if !slices.Contains(credentialKinds, c) {
			return fmt.Errorf("%s.credentials[%d]: %q: want one of %v", f, j, c, credentialKinds)
		}
	}
	return nil
}

// RuleScopes are the scopes the agent's rules require, in order, without
// duplicates.
func (a *AgentSpec) RuleScopes() []string {
	var out []string
	for _, r := range a.Rules {
		for _, s := range r.Scopes {
			if !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
	}
	return out
}

// BaseScopes are the scopes a credential needs one of to use the agent at
// all (and what its protected resource metadata lists): the agent's own
// scopes, else the gateway's minus those only its rules require, so that a
// narrow scope guarding one tool is not asked for up front.
func (a *AgentSpec) BaseScopes(gateway []string) []string {
	if len(a.Scopes) > 0 {
		return a.Scopes
	}
	if len(a.Rules) == 0 {
		return gateway
	}
	rs := a.RuleScopes()
	out := make([]string, 0, len(gateway))
	for _, s := range gateway {
		if !slices.Contains(rs, s) {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		return gateway
	}
	return out
}

// GatewayBaseScopes are the gateway's own base scopes, on which every
// agent without scopes of its own is based (BaseScopes): the gateway's
// scopes but those only the static agents' rules require, which are asked
// for on demand. The Check's challenges and the authorization server's
// metadata and grants both start from it, so they name the same scopes.
// static are the config file's agents, as store records (Agent) or as
// declared (config.StaticAgent).
func GatewayBaseScopes[A any, P interface {
	*A
	declared
}](gateway []string, static []A) []string {
	var rules []Rule
	for i := range static {
		rules = append(rules, P(&static[i]).spec().Rules...)
	}
	return (&AgentSpec{Rules: rules}).BaseScopes(gateway)
}

// declared is what embeds an AgentSpec (Agent, config.StaticAgent): the
// unexported method is promoted, so no other type qualifies.
type declared interface{ spec() *AgentSpec }

func (a *AgentSpec) spec() *AgentSpec { return a }

// GrantableScopes are the scopes the authorization server may grant for
// the agent: its base scopes and those its rules require.
func (a *AgentSpec) GrantableScopes(gateway []string) []string {
	out := slices.Clone(a.BaseScopes(gateway))
	for _, s := range a.RuleScopes() {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// Limits are an agent's per-user request limits, counted per minute in the
// store (shared by replicas); 0 is no limit.
type Limits struct {
	// PerUser caps requests per (user, agent); a key without a user counts
	// as its own user.
	PerUser int `json:"per_user,omitempty"`
	// PerTool caps each tools/call target per (user, agent, tool).
	PerTool int `json:"per_tool,omitempty"`
}

// MaxLimit bounds a limit's value (requests per minute).
const MaxLimit = 1_000_000

// ValidateLimits checks l (nil is fine).
func ValidateLimits(l *Limits) error {
	if l == nil {
		return nil
	}
	if l.PerUser < 0 || l.PerUser > MaxLimit || l.PerTool < 0 || l.PerTool > MaxLimit {
		return fmt.Errorf("limits: per_user and per_tool are requests per minute, 0 to %d", MaxLimit)
	}
	return nil
}
