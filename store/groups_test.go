package store

import (
	"slices"
	"strings"
	"testing"
)

func TestNormalizeGroups(t *testing.T) {
	got, err := NormalizeGroups([]string{"ops", "eng", "ops"})
	if err != nil || !slices.Equal(got, []string{"eng", "ops"}) {
		t.Fatalf("NormalizeGroups = %q, %v; want sorted, deduplicated", got, err)
	}
	if got, err := NormalizeGroups(nil); got != nil || err != nil {
		t.Fatalf("NormalizeGroups(nil) = %q, %v", got, err)
	}
	many := make([]string, 65)
	for i := range many {
		many[i] = "g" + strings.Repeat("x", i)
	}
	if _, err := NormalizeGroups(many); err == nil {
		t.Fatal("65 groups accepted")
	}
	if _, err := NormalizeGroups(append(many[:64:64], many[0])); err != nil {
		t.Fatalf("64 distinct groups and a duplicate refused: %v", err)
	}
	for _, bad := range []string{"", "a b", "eng\u202e", "en\u200bg", strings.Repeat("g", 129), "\xff", "tab\t"} {
		if _, err := NormalizeGroups([]string{"ok", bad}); err == nil {
			t.Errorf("group %q accepted", bad)
		}
	}
}
