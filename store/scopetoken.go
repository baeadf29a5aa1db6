package store

// ValidScopeToken reports whether s is one RFC 6749 §3.3 scope-token,
// 1*( %x21 / %x23-5B / %x5D-7E ): printable ASCII without space, '"' or
// '\'. Every place that accepts a scope (configuration, admin API, the
// Check, tool policies, OIDC login) asks this one function.
func ValidScopeToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}
