package store

import (
	"errors"
	"fmt"
	"strings"
)

// UpstreamAuth is a header the Check adds to an agent's allowed requests,
// e.g. Authorization: Bearer <secret>, so the agent can require a shared
// secret from the gateway besides the identity assertion. Only a reference
// to the secret is stored — a file name in the config's
// upstream_secrets.dir or an environment variable named
// UpstreamSecretEnvPrefix* — present on every replica; never the secret.
type UpstreamAuth struct {
	Header     string `json:"header"`                // lower-case, e.g. "authorization"
	Prefix     string `json:"prefix,omitempty"`      // put before the secret, e.g. "Bearer "
	SecretFile string `json:"secret_file,omitempty"` // a plain file name, re-read after changes
	SecretEnv  string `json:"secret_env,omitempty"`  // an environment variable
}

// UpstreamSecretEnvPrefix starts every environment variable an agent's
// upstream secret may come from: no agent can be made to send the
// gateway's own secrets (MCPGW_ADMIN_TOKEN, signing keys) upstream.
const UpstreamSecretEnvPrefix = "MCPGW_UPSTREAM_SECRET_"

// reservedUpstreamHeaders are headers an upstream credential may not set:
// the identity, hop-by-hop and framing headers, what routes the request,
// and what the MCP client itself sends.
var reservedUpstreamHeaders = []string{
	"host", "content-length", "content-type", "transfer-encoding", "connection", "keep-alive", "te", "trailer",
	"upgrade", "expect", "cookie", "accept", "origin", "mcp-session-id", "mcp-protocol-version", "last-event-id",
}

// DeclaredHeader returns the header a's upstream_auth declares, lower-case,
// or "" (none, or one the Check refuses to serve anyway): what a data plane
// must take from the Check's answer and keep on the agent's routes.
func (a *AgentSpec) DeclaredHeader() string {
	if a.UpstreamAuth == nil {
		return ""
	}
	u, err := a.UpstreamAuth.Validate()
	if err != nil {
		return ""
	}
	return u.Header
}

// Validate checks the reference and returns it with the header name
// lower-cased. Every error names the field.
func (u UpstreamAuth) Validate() (UpstreamAuth, error) {
	u.Header = strings.ToLower(u.Header)
	switch {
	case u.Header == "" || len(u.Header) > 64 || !isToken(u.Header):
		return u, errors.New("upstream_auth.header: want a header name (1–64 token characters)")
	case strings.HasPrefix(u.Header, "x-mcp-") || strings.HasPrefix(u.Header, "x-envoy-") ||
		strings.HasPrefix(u.Header, "x-forwarded-") || strings.HasPrefix(u.Header, "proxy-"):
		return u, fmt.Errorf("upstream_auth.header: %q is reserved to the gateway and the proxy", u.Header)
	}
	for _, r := range reservedUpstreamHeaders {
		if u.Header == r {
			return u, fmt.Errorf("upstream_auth.header: %q cannot carry a credential", u.Header)
		}
	}
	if len(u.Prefix) > 64 || !ValidHeaderValue(u.Prefix) {
		return u, errors.New("upstream_auth.prefix: at most 64 printable ASCII characters")
	}
	if (u.SecretFile == "") == (u.SecretEnv == "") {
		return u, errors.New("upstream_auth: set exactly one of secret_file and secret_env")
	}
	if u.SecretFile != "" && !validFileName(u.SecretFile) {
		return u, errors.New("upstream_auth.secret_file: a plain file name (1–128 of [A-Za-z0-9._-], not starting with '.') in upstream_secrets.dir")
	}
	if u.SecretEnv != "" && (!strings.HasPrefix(u.SecretEnv, UpstreamSecretEnvPrefix) || len(u.SecretEnv) == len(UpstreamSecretEnvPrefix) ||
		len(u.SecretEnv) > 128 || strings.Trim(u.SecretEnv, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") != "") {
		return u, fmt.Errorf("upstream_auth.secret_env: an environment variable named %s<A-Z0-9_>", UpstreamSecretEnvPrefix)
	}
	return u, nil
}

// ValidHeaderValue: printable ASCII and tabs only, so no value can split a
// header (CR, LF, NUL) or be re-encoded on the way.
func ValidHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 0x20 && c != '\t') || c > 0x7e {
			return false
		}
	}
	return true
}

func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

func validFileName(s string) bool {
	if s == "" || len(s) > 128 || s[0] == '.' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
