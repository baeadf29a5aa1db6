package config

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"

	"github.com/mcpgateway/mcp-gateway/store"
)

// Login providers (login.provider).
const (
	LoginBuiltin = "builtin" // users and bcrypt hashes from login.users
	LoginOIDC    = "oidc"    // an upstream OpenID Provider (login.oidc)
	LoginWebApp  = "webapp"  // a signed hand-off from the product's web app (login.webapp)
)

// MinLoginSecret is the shortest accepted web-app hand-off secret (HS256).
const MinLoginSecret = 32

// OIDCLogin is an upstream OpenID Provider: authorization code + PKCE +
// state + nonce, the ID token verified against the discovered keys.
type OIDCLogin struct {
	// Issuer is the provider's issuer URL; discovery reads
	// <issuer>/.well-known/openid-configuration. https, or http on loopback.
	Issuer   string `json:"issuer"`
	ClientID string `json:"client_id"`
	// At most one of ClientSecret and ClientSecretFile; neither makes the
	// gateway a public client of the provider (PKCE only).
	ClientSecret     string `json:"client_secret,omitempty"`
	ClientSecretFile string `json:"client_secret_file,omitempty"`
	// Scopes requested upstream; must contain openid.
	Scopes []string `json:"scopes"`
	// UserClaim names the gateway user id: "sub" or "email" (then
	// email_verified must be true).
	UserClaim string `json:"user_claim"`
	// AllowedEmailDomains, when set, admit only users whose verified email
	// is in one of these domains (exact match, case-insensitive).
	AllowedEmailDomains []string `json:"allowed_email_domains"`
	// AllowedGroups, when set, admit only users with one of these groups in
	// GroupsClaim (a string or a list of strings).
	AllowedGroups []string `json:"allowed_groups"`
	GroupsClaim   string   `json:"groups_claim"`
}

// WebAppLogin is the hand-off to an external web app: the gateway sends
// the browser to LoginURL, the app sends it back with a short-lived HS256
// assertion signed with the shared secret.
type WebAppLogin struct {
	// LoginURL receives ?request=<pending id>&return_to=<public_url>/login/callback.
	LoginURL string `json:"login_url"`
	// Issuer is the iss the web app puts in its assertions.
	Issuer string `json:"issuer"`
	// Exactly one of Secret and SecretFile, at least 32 bytes.
	Secret     string `json:"secret,omitempty"`
	SecretFile string `json:"secret_file,omitempty"`
}

func defaultOIDC() OIDCLogin {
	return OIDCLogin{Scopes: []string{"openid", "email", "profile"}, UserClaim: "sub", GroupsClaim: "groups"}
}

func (l *Login) validate(bad func(field, format string, a ...any)) {
	switch l.Provider {
	case LoginBuiltin:
	case LoginOIDC:
		l.OIDC.validate(bad)
	case LoginWebApp:
		l.WebApp.validate(bad)
	default:
		bad("login.provider", "unknown provider %q (want builtin, oidc or webapp)", l.Provider)
	}
}

func (o *OIDCLogin) validate(bad func(field, format string, a ...any)) {
	if !upstreamURL(o.Issuer) {
		bad("login.oidc.issuer", "%q is not an https URL (http only on loopback) without query or fragment", o.Issuer)
	}
	if o.ClientID == "" {
		bad("login.oidc.client_id", "required")
	}
	if o.ClientSecret != "" && o.ClientSecretFile != "" {
		bad("login.oidc", "set at most one of client_secret and client_secret_file")
	}
	if !slices.Contains(o.Scopes, "openid") {
		bad("login.oidc.scopes", "must contain openid")
	}
	for i, s := range o.Scopes {
		if !store.ValidScopeToken(s) {
			bad(fmt.Sprintf("login.oidc.scopes[%d]", i), "invalid scope %q", s)
		}
	}
	if o.UserClaim != "sub" && o.UserClaim != "email" {
		bad("login.oidc.user_claim", "%q: want sub or email", o.UserClaim)
	}
	for i, d := range o.AllowedEmailDomains {
		if d == "" || strings.ContainsAny(d, "@ /") || strings.HasPrefix(d, ".") {
			bad(fmt.Sprintf("login.oidc.allowed_email_domains[%d]", i), "%q is not a domain like example.com", d)
		}
	}
	for i, g := range o.AllowedGroups {
		if g == "" {
			bad(fmt.Sprintf("login.oidc.allowed_groups[%d]", i), "empty group")
		}
	}
	if len(o.AllowedGroups) > 0 && o.GroupsClaim == "" {
		bad("login.oidc.groups_claim", "required with allowed_groups")
	}
}

func (w *WebAppLogin) validate(bad func(field, format string, a ...any)) {
	if !upstreamURL(w.LoginURL) {
		bad("login.webapp.login_url", "%q is not an https URL (http only on loopback) without fragment", w.LoginURL)
	}
	if w.Issuer == "" {
		bad("login.webapp.issuer", "required (the iss of the web app's assertions)")
	}
	switch {
	case (w.Secret == "") == (w.SecretFile == ""):
		bad("login.webapp", "set exactly one of secret and secret_file")
	case w.Secret != "" && len(w.Secret) < MinLoginSecret:
		bad("login.webapp.secret", "is %d bytes, need at least %d", len(w.Secret), MinLoginSecret)
	}
}

// upstreamURL: an absolute https URL, or http to a loopback host (tests,
// a provider on the same machine); no fragment, no credentials.
func upstreamURL(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil || u.Fragment != "" || strings.Contains(raw, "#") {
		return false
	}
	switch u.Scheme {
	case "https":
		return true
	case "http":
		h := u.Hostname()
		ip := net.ParseIP(h)
		return h == "localhost" || (ip != nil && ip.IsLoopback())
	}
	return false
}

// ResolveClientSecret returns the OIDC client secret ("" for a public
// client), reading client_secret_file when set.
func (o *OIDCLogin) ResolveClientSecret() (string, error) {
	if o.ClientSecretFile == "" {
		return o.ClientSecret, nil
	}
	b, err := os.ReadFile(o.ClientSecretFile)
	if err != nil {
		return "", fmt.Errorf("config: login.oidc.client_secret_file: %w", err)
	}
	s := strings.TrimRight(string(b), "\r\n")
	if s == "" {
		return "", fmt.Errorf("config: login.oidc.client_secret_file %s is empty", o.ClientSecretFile)
	}
	return s, nil
}

// ResolveSecret returns the hand-off secret, reading secret_file when set,
// and checks its length.
func (w *WebAppLogin) ResolveSecret() ([]byte, error) {
	s := []byte(w.Secret)
	if w.SecretFile != "" {
		b, err := os.ReadFile(w.SecretFile)
		if err != nil {
			return nil, fmt.Errorf("config: login.webapp.secret_file: %w", err)
		}
		s = []byte(strings.TrimRight(string(b), "\r\n"))
	}
	if len(s) < MinLoginSecret {
		return nil, fmt.Errorf("config: login.webapp: secret is %d bytes, need at least %d", len(s), MinLoginSecret)
	}
	return s, nil
}
