package authz

import (
	"strings"
	"testing"
)

// TestIsB64Token compares the eight-at-a-time scan with the rule applied
// one character at a time, for every byte at every position of tokens
// around the step's size, with and without padding.
func TestIsB64Token(t *testing.T) {
	ref := func(s string) bool {
		body := strings.TrimRight(s, "=")
		if body == "" {
			return false
		}
		for _, c := range []byte(body) {
			ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._~+/", c) >= 0
			if !ok {
				return false
			}
		}
		return true
	}
	for n := 1; n <= 26; n++ {
		for _, pad := range []string{"", "=", "=="} {
			base := []byte(strings.Repeat("aZ9-._~+/", 3)[:n])
			for pos := range n {
				for c := range 256 {
					b := append([]byte(nil), base...)
					b[pos] = byte(c)
					s := string(b) + pad
					if got, want := isB64Token(s), ref(s); got != want {
						t.Fatalf("isB64Token(%q) = %v, want %v", s, got, want)
					}
				}
			}
		}
	}
	for _, s := range []string{"", "=", "==", "a=b", "ab==c"} {
		if isB64Token(s) {
			t.Fatalf("isB64Token(%q) accepted", s)
		}
	}
}
