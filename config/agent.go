package config

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/mcpgateway/mcp-gateway/store"
)

// Input limits of an agent declaration (and of the admin API's other
// requests, which share the field rules).
const (
	MaxNameLen  = 256
	MaxUserLen  = 256
	MaxURLLen   = 2048
	MaxListLen  = 100
	MaxScopeLen = 128
)

// FieldError names the offending field of a declaration, relative to it
// ("users[2]"); the config file prefixes "agents[i].", the admin API
// answers it as is.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// BadField returns a *FieldError for field.
func BadField(field, format string, a ...any) error {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, a...)}
}

// Validate checks an agent declaration with the one set of rules the
// config file and the admin API share, and normalises its upstream_auth in
// place. Checks that need the rest of the configuration (rule scopes are
// declared, secret files have a directory) stay with Config.Validate.
func (a *StaticAgent) Validate() error {
	if a.ID == "" {
		return BadField("id", "required")
	}
	if !ValidAgentID(a.ID) {
		return BadField("id", "%q: want 1–128 of [A-Za-z0-9._-], not \".\" or \"..\"", a.ID)
	}
	if err := CheckText("owner", a.Owner, MaxUserLen, true); err != nil {
		return err
	}
	if err := CheckText("name", a.Name, MaxNameLen, false); err != nil {
		return err
	}
	if err := CheckUsers("users", a.Users); err != nil {
		return err
	}
	if a.Upstream != "" {
		u, err := url.Parse(a.Upstream)
		if len(a.Upstream) > MaxURLLen || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Fragment != "" {
			return BadField("upstream", "%.64q: want an absolute http(s) URL without fragment", a.Upstream)
		}
	}
	if a.UpstreamAuth != nil {
		norm, err := a.UpstreamAuth.Validate()
		if err != nil { // "upstream_auth.<field>: why"
			f, msg, _ := strings.Cut(err.Error(), ": ")
			return BadField(f, "%s", msg)
		}
		a.UpstreamAuth = &norm
	}
	if err := CheckScopes("scopes", a.Scopes); err != nil {
		return err
	}
	if err := store.ValidateRules(a.Rules); err != nil {
		return BadField("rules", "%v", err)
	}
	if err := store.ValidateLimits(a.Limits); err != nil {
		return BadField("limits", "%v", err)
	}
	return nil
}

// CheckText accepts printable UTF-8 up to max bytes (names, user ids).
func CheckText(field, s string, max int, required bool) error {
	if s == "" {
		if required {
			return BadField(field, "required")
		}
		return nil
	}
	if len(s) > max {
		return BadField(field, "longer than %d bytes", max)
	}
	if !utf8.ValidString(s) {
		return BadField(field, "not valid UTF-8")
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return BadField(field, "contains a control character")
		}
	}
	return nil
}

// CheckScopes accepts at most MaxListLen distinct RFC 6749 §3.3
// scope-tokens of at most MaxScopeLen bytes.
func CheckScopes(field string, scopes []string) error {
	if len(scopes) > MaxListLen {
		return BadField(field, "more than %d entries", MaxListLen)
	}
	seen := make(map[string]bool, len(scopes))
	for i, sc := range scopes {
		f := fmt.Sprintf("%s[%d]", field, i)
		if sc == "" || len(sc) > MaxScopeLen {
			return BadField(f, "want 1–%d characters", MaxScopeLen)
		}
		if !store.ValidScopeToken(sc) {
			return BadField(f, "%q is not a valid scope (no spaces, quotes or backslashes)", sc)
		}
		if seen[sc] {
			return BadField(f, "%q listed twice", sc)
		}
		seen[sc] = true
	}
	return nil
}

// CheckUsers accepts at most MaxListLen non-empty user ids.
func CheckUsers(field string, users []string) error {
	if len(users) > MaxListLen {
		return BadField(field, "more than %d entries", MaxListLen)
	}
	for i, u := range users {
		if err := CheckText(fmt.Sprintf("%s[%d]", field, i), u, MaxUserLen, true); err != nil {
			return err
		}
	}
	return nil
}

// agentField reports err of the agent at prefix ("agents[3]") by its field.
func agentField(prefix string, err error, bad func(field, format string, a ...any)) {
	var fe *FieldError
	if errors.As(err, &fe) {
		bad(prefix+"."+fe.Field, "%s", fe.Msg)
		return
	}
	bad(prefix, "%v", err)
}
