package store

import "testing"

func TestValidScopeToken(t *testing.T) {
	for s, want := range map[string]bool{
		"mcp:tools": true, "!#[]~": true, "a": true,
		"": false, "a b": false, `a"b`: false, `a\b`: false, "a\tb": false,
		"a\x7fb": false, "é": false, "a\nb": false, "a\x00": false,
	} {
		if got := ValidScopeToken(s); got != want {
			t.Errorf("ValidScopeToken(%q) = %v, want %v", s, got, want)
		}
	}
}
