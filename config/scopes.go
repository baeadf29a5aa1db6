package config

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/mcpgateway/mcp-gateway/store"
)

// The scopes the gateway issues, one schema for all of them:
//
//	scopes:
//	  - name: mcp
//	    description: Use the agent's tools on your behalf
//	  - {name: mcp:admin, description: Manage the agent, implies: [mcp]}
//
// A plain name ("scopes: [mcp]", or MCPGW_SCOPES=mcp,tools) is the old form
// and still accepted. Descriptions are what the consent and account pages
// show instead of the raw scope string; implies names scopes that a grant of
// this one includes (validated here: names must be declared, no cycles).

// DefaultMCPScopeDescription describes the built-in scope mcp when the
// configuration gives it none (old configs list it as a plain name).
const DefaultMCPScopeDescription = "Use the agent's tools and data on your behalf"

// MaxScopeDescriptionLen bounds a scope description (it is shown on pages).
const MaxScopeDescriptionLen = 200

// Scope is one declared OAuth scope.
type Scope struct {
	Name        string   `json:"name"`
	Description string   `json:"description,omitempty"`
	Implies     []string `json:"implies,omitempty"`
}

// UnmarshalJSON accepts a scope object or a plain name.
func (s *Scope) UnmarshalJSON(b []byte) error {
	var name string
	if err := json.Unmarshal(b, &name); err == nil {
		*s = Scope{Name: name}
		return nil
	}
	type plain Scope // no UnmarshalJSON: no recursion
	var p plain
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields() // as yaml.UnmarshalStrict does elsewhere
	if err := dec.Decode(&p); err != nil {
		return fmt.Errorf("want a scope name or {name, description, implies}: %w", err)
	}
	*s = Scope(p)
	return nil
}

// Scopes is the declared scope list.
type Scopes []Scope

// NamedScopes declares scopes by name only.
func NamedScopes(names ...string) Scopes {
	out := make(Scopes, len(names))
	for i, n := range names {
		out[i] = Scope{Name: n}
	}
	return out
}

// UnmarshalJSON reads the list (the file form); it exists because the
// UnmarshalText below would otherwise make encoding/json refuse a list.
func (l *Scopes) UnmarshalJSON(b []byte) error {
	var out []Scope
	if err := json.Unmarshal(b, &out); err != nil {
		return err
	}
	*l = out
	return nil
}

// UnmarshalText reads the environment form: a JSON list (objects or
// names), or comma-separated names.
func (l *Scopes) UnmarshalText(b []byte) error {
	t := strings.TrimSpace(string(b))
	if strings.HasPrefix(t, "[") {
		var out Scopes
		if err := json.Unmarshal([]byte(t), &out); err != nil {
			return fmt.Errorf("want a JSON list or comma-separated names: %w", err)
		}
		*l = out
		return nil
	}
	var names []string
	for _, p := range strings.Split(t, ",") {
		if p = strings.TrimSpace(p); p != "" {
			names = append(names, p)
		}
	}
	*l = NamedScopes(names...)
	return nil
}

// Names are the declared scope names, in order.
func (l Scopes) Names() []string {
	out := make([]string, len(l))
	for i, s := range l {
		out[i] = s.Name
	}
	return out
}

// Description is the human description of scope name ("" when it is not
// declared or has none; mcp has a default).
func (l Scopes) Description(name string) string {
	for _, s := range l {
		if s.Name == name {
			if s.Description == "" && name == "mcp" {
				return DefaultMCPScopeDescription
			}
			return s.Description
		}
	}
	return ""
}

// ScopeNames are the declared scope names (what used to be cfg.Scopes).
func (c *Config) ScopeNames() []string { return c.Scopes.Names() }

// ScopeDescription is the human description of a declared scope, "" if none.
func (c *Config) ScopeDescription(name string) string { return c.Scopes.Description(name) }

// ScopeImplies is the declared hierarchy: scope → the scopes it implies
// (directly; consumers follow it transitively). Nil when none is declared.
func (c *Config) ScopeImplies() map[string][]string {
	var out map[string][]string
	for _, s := range c.Scopes {
		if len(s.Implies) > 0 {
			if out == nil {
				out = map[string][]string{}
			}
			out[s.Name] = append([]string(nil), s.Implies...)
		}
	}
	return out
}

// validate: at least one scope; RFC 6749 scope tokens, unique; short
// printable descriptions; implies only declared names, without cycles.
func (l Scopes) validate(bad func(field, format string, a ...any)) {
	if len(l) == 0 {
		bad("scopes", "at least one scope")
		return
	}
	index := map[string]int{}
	for i, s := range l {
		f := fmt.Sprintf("scopes[%d]", i)
		switch {
		case !store.ValidScopeToken(s.Name):
			bad(f, "invalid scope %q", s.Name)
		case index[s.Name] > 0:
			bad(f, "%q declared twice", s.Name)
		}
		index[s.Name] = i + 1
		if !printable(s.Description, MaxScopeDescriptionLen) {
			bad(f+".description", "at most %d printable characters", MaxScopeDescriptionLen)
		}
	}
	for i, s := range l {
		for j, imp := range s.Implies {
			switch {
			case index[imp] == 0:
				bad(fmt.Sprintf("scopes[%d].implies[%d]", i, j), "%q is not a declared scope", imp)
			case imp == s.Name:
				bad(fmt.Sprintf("scopes[%d].implies[%d]", i, j), "%q implies itself", imp)
			}
		}
	}
	if cyc := l.impliesCycle(); cyc != nil {
		bad("scopes", "implies has a cycle: %s", strings.Join(cyc, " → "))
	}
}

// impliesCycle returns one cycle of the implies graph (its names, first
// repeated at the end), or nil. Self-references are reported apart.
func (l Scopes) impliesCycle() []string {
	edges := map[string][]string{}
	for _, s := range l {
		for _, imp := range s.Implies {
			if imp != s.Name {
				edges[s.Name] = append(edges[s.Name], imp)
			}
		}
	}
	const (
		unseen = iota
		onPath
		done
	)
	state := map[string]int{}
	var path []string
	var visit func(n string) []string
	visit = func(n string) []string {
		state[n] = onPath
		path = append(path, n)
		for _, m := range edges[n] {
			switch state[m] {
			case onPath:
				for i, p := range path {
					if p == m {
						return append(append([]string(nil), path[i:]...), m)
					}
				}
			case unseen:
				if c := visit(m); c != nil {
					return c
				}
			}
		}
		path = path[:len(path)-1]
		state[n] = done
		return nil
	}
	for _, s := range l {
		if state[s.Name] == unseen {
			if c := visit(s.Name); c != nil {
				return c
			}
		}
	}
	return nil
}

// printable: valid UTF-8 of at most n bytes without control characters.
func printable(s string, n int) bool {
	if len(s) > n || !utf8.ValidString(s) {
		return false
	}
	return !strings.ContainsFunc(s, unicode.IsControl)
}
