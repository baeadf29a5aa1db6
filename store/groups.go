package store

import (
	"errors"
	"fmt"
	"slices"
	"unicode"
	"unicode/utf8"
)

// Limits on the groups a login provider hands over (built-in users, the
// OIDC groups claim, the web-app hand-off). They bound the access token's
// groups claim, which every Check parses.
const (
	MaxGroups   = 64
	MaxGroupLen = 128
)

// Visible reports whether r is a graphic character that is neither space
// nor default-ignorable. IsGraphic excludes all of C* (Cc, Cf, Co, Cs, Cn)
// and Zl, Zp; the rest of Default_Ignorable_Code_Point (e.g. U+3164 HANGUL
// FILLER, U+034F, U+FE0F) is named by the two tables. Names made of such
// characters cannot pass for others on screens and in logs.
func Visible(r rune) bool {
	return unicode.IsGraphic(r) && !unicode.IsSpace(r) &&
		!unicode.In(r, unicode.Other_Default_Ignorable_Code_Point, unicode.Variation_Selector)
}

// ValidGroup reports whether g is usable as a group name: 1–128 bytes of
// valid UTF-8, every character Visible (no spaces, controls, bidi or
// zero-width characters).
func ValidGroup(g string) bool {
	if g == "" || len(g) > MaxGroupLen || !utf8.ValidString(g) {
		return false
	}
	for _, r := range g {
		if !Visible(r) {
			return false
		}
	}
	return true
}

// NormalizeGroups returns groups sorted and deduplicated (nil when empty),
// or an error when one is not ValidGroup or more than MaxGroups remain.
func NormalizeGroups(groups []string) ([]string, error) {
	if len(groups) == 0 {
		return nil, nil
	}
	for i, g := range groups {
		if !ValidGroup(g) {
			return nil, fmt.Errorf("groups[%d]: empty, longer than %d bytes or not printable", i, MaxGroupLen)
		}
	}
	out := slices.Compact(slices.Sorted(slices.Values(groups)))
	if len(out) > MaxGroups {
		return nil, errors.New("more than 64 groups")
	}
	return out, nil
}
