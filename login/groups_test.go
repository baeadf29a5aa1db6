package login

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/mcpgateway/mcp-gateway/config"
)

// TestOIDCGroupsReachToken: the groups claim (groups_claim) of the ID
// token reaches the access token's groups claim, sorted and deduplicated,
// with entries that are not printable strings left out and at most 64 kept.
func TestOIDCGroupsReachToken(t *testing.T) {
	many := make([]any, 70)
	for i := range many {
		many[i] = fmt.Sprintf("g%02d", 69-i)
	}
	first64 := make([]string, 64)
	for i := range first64 {
		first64[i] = fmt.Sprintf("g%02d", i)
	}
	for _, tc := range []struct {
		name  string
		claim string // groups_claim; "" keeps the default "groups"
		value any
		want  []string
	}{
		{"list", "", []any{"ops", "eng", "ops"}, []string{"eng", "ops"}},
		{"one string", "", "eng", []string{"eng"}},
		{"unusable entries left out", "", []any{"eng", 7, "ops\u202e", "a b", "", strings.Repeat("g", 129), nil}, []string{"eng"}},
		{"renamed claim", "roles", []any{"eng"}, []string{"eng"}},
		{"more than 64", "", many, first64},
		{"absent", "", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newHostileEnv(t, func(o *config.OIDCLogin) {
				if tc.claim != "" {
					o.GroupsClaim = tc.claim
				}
			})
			name := tc.claim
			if name == "" {
				name = "groups"
			}
			e.op.claims = func(c jwt.MapClaims) {
				if tc.value != nil {
					c[name] = tc.value
				}
			}
			b, f, resp := e.login()
			c := e.redeemClaims(b.consent(resp, hostileSub), f)
			if !slices.Equal(c.Groups, tc.want) {
				t.Fatalf("access token groups = %q, want %q", c.Groups, tc.want)
			}
		})
	}
}

// TestWebAppGroupsReachToken: the hand-off assertion's optional groups
// claim reaches the access token, sorted and deduplicated.
func TestWebAppGroupsReachToken(t *testing.T) {
	e := newWebEnv(t)
	b := newBrowser(t)
	id, f := e.start(b)
	c := e.claims(id)
	c["groups"] = []string{"ops", "eng", "ops"}
	resp := b.follow(b.get(e.callback(id, mint(t, c, appSecret))), atClient, nil)
	got := e.redeemClaims(b.consent(resp, "alice@example.com"), f)
	if want := []string{"eng", "ops"}; !slices.Equal(got.Groups, want) {
		t.Fatalf("access token groups = %q, want %q", got.Groups, want)
	}
}

// TestWebAppBadGroups: an assertion whose groups claim is not a list of at
// most 64 printable strings of 1–128 bytes is refused whole, and the
// request stays usable with a good one.
func TestWebAppBadGroups(t *testing.T) {
	e := newWebEnv(t)
	many := make([]string, 65)
	for i := range many {
		many[i] = fmt.Sprintf("g%02d", i)
	}
	for name, groups := range map[string]any{
		"a string":            "eng",
		"a number entry":      []any{"eng", 7},
		"65 groups":           many,
		"empty entry":         []string{"eng", ""},
		"space":               []string{"eng ops"},
		"right-to-left":       []string{"\u202eeng"},
		"zero-width space":    []string{"en\u200bg"},
		"longer than 128":     []string{strings.Repeat("g", 129)},
		"an object":           map[string]any{"eng": true},
		"control character":   []string{"eng\n"},
		"byte-order mark":     []string{"\ufeffeng"},
		"variation selector":  []string{"eng\ufe0f"},
		"nested list":         []any{[]string{"eng"}},
		"hangul filler alone": []string{"\u3164"},
	} {
		t.Run(name, func(t *testing.T) {
			b := newBrowser(t)
			id, _ := e.start(b)
			c := e.claims(id)
			c["groups"] = groups
			expectPage(t, b.get(e.callback(id, mint(t, c, appSecret))), http.StatusBadRequest, "could not be verified")
			resp := b.follow(b.get(e.callback(id, mint(t, e.claims(id), appSecret))), atClient, nil)
			if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/consent" {
				t.Fatalf("good assertion after a bad one: %d at %s", resp.StatusCode, resp.Request.URL)
			}
			resp.Body.Close()
		})
	}
}
