package token

import (
	"strings"
	"testing"
)

func TestAddress(t *testing.T) {
	plain := Random(32)
	if Address(plain) != Hash(plain) {
		t.Fatal("an untagged secret's address is not its hash")
	}
	s := Tagged("fam_1-X")
	if !strings.HasPrefix(s, "fam_1-X.") || Address(s) != "fam_1-X."+Hash(s) {
		t.Fatalf("tagged %q → %q", s, Address(s))
	}
	// Only a short base64url tag counts: anything else is hashed whole, so
	// a presented string cannot choose a hash slot with braces or spaces.
	for _, odd := range []string{".abc", "a{b}.xyz", "a b.xyz", strings.Repeat("a", 65) + ".x"} {
		if Address(odd) != Hash(odd) {
			t.Errorf("Address(%q) = %q, want the plain hash", odd, Address(odd))
		}
	}
}
