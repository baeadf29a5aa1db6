package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const oidcYAML = `
public_url: https://gw.example.com
signing_keys: [{id: k1, secret: "0123456789abcdef0123456789abcdef"}]
login:
  provider: oidc
  oidc:
    issuer: https://accounts.example.com
    client_id: gateway
    client_secret: s3cret
    user_claim: email
    allowed_email_domains: [example.com]
    allowed_groups: [mcp-users]
`

func TestLoginOIDCFileAndDefaults(t *testing.T) {
	c, err := Load(write(t, oidcYAML), false)
	if err != nil {
		t.Fatal(err)
	}
	o := c.Login.OIDC
	if c.Login.Provider != LoginOIDC || o.Issuer != "https://accounts.example.com" || o.ClientID != "gateway" ||
		o.UserClaim != "email" || o.AllowedEmailDomains[0] != "example.com" || o.AllowedGroups[0] != "mcp-users" {
		t.Fatalf("file values not applied: %+v", o)
	}
	if strings.Join(o.Scopes, " ") != "openid email profile" || o.GroupsClaim != "groups" {
		t.Fatalf("defaults lost: scopes %v, groups_claim %q", o.Scopes, o.GroupsClaim)
	}
	if s, err := o.ResolveClientSecret(); err != nil || s != "s3cret" {
		t.Fatalf("ResolveClientSecret = %q, %v", s, err)
	}
}

func TestLoginEnv(t *testing.T) {
	c := Default()
	env := map[string]string{
		"MCPGW_LOGIN_PROVIDER":          "webapp",
		"MCPGW_LOGIN_WEBAPP_LOGIN_URL":  "https://app.example.com/gateway-login",
		"MCPGW_LOGIN_WEBAPP_ISSUER":     "https://app.example.com",
		"MCPGW_LOGIN_WEBAPP_SECRET":     "0123456789abcdef0123456789abcdef",
		"MCPGW_LOGIN_OIDC_SCOPES":       "openid,email",
		"MCPGW_LOGIN_OIDC_GROUPS_CLAIM": "roles",
	}
	if err := ApplyEnv(c, func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil {
		t.Fatal(err)
	}
	w := c.Login.WebApp
	if c.Login.Provider != LoginWebApp || w.LoginURL != "https://app.example.com/gateway-login" || w.Issuer != "https://app.example.com" ||
		strings.Join(c.Login.OIDC.Scopes, " ") != "openid email" || c.Login.OIDC.GroupsClaim != "roles" {
		t.Fatalf("env not applied: %+v", c.Login)
	}
	c.SigningKeys = []SigningKey{{ID: "k", Secret: "0123456789abcdef0123456789abcdef"}}
	if err := c.Validate(false); err != nil {
		t.Fatal(err)
	}
}

func TestLoginValidationNamesTheField(t *testing.T) {
	oidc := func(f func(*OIDCLogin)) func(*Config) {
		return func(c *Config) {
			c.Login.Provider = LoginOIDC
			c.Login.OIDC.Issuer, c.Login.OIDC.ClientID = "https://idp.example.com", "gw"
			f(&c.Login.OIDC)
		}
	}
	webapp := func(f func(*WebAppLogin)) func(*Config) {
		return func(c *Config) {
			c.Login.Provider = LoginWebApp
			c.Login.WebApp = WebAppLogin{LoginURL: "https://app.example.com/login", Issuer: "app", Secret: strings.Repeat("k", 32)}
			f(&c.Login.WebApp)
		}
	}
	for _, tc := range []struct {
		name, want string
		mod        func(*Config)
	}{
		{"unknown provider", "login.provider", func(c *Config) { c.Login.Provider = "saml" }},
		{"empty provider", "login.provider", func(c *Config) { c.Login.Provider = "" }},
		{"oidc no issuer", "login.oidc.issuer", oidc(func(o *OIDCLogin) { o.Issuer = "" })},
		{"oidc http issuer", "login.oidc.issuer", oidc(func(o *OIDCLogin) { o.Issuer = "http://idp.example.com" })},
		{"oidc issuer fragment", "login.oidc.issuer", oidc(func(o *OIDCLogin) { o.Issuer = "https://idp.example.com#x" })},
		{"oidc no client", "login.oidc.client_id", oidc(func(o *OIDCLogin) { o.ClientID = "" })},
		{"oidc two secrets", "login.oidc: set at most one", oidc(func(o *OIDCLogin) { o.ClientSecret, o.ClientSecretFile = "a", "/b" })},
		{"oidc no openid", "login.oidc.scopes: must contain openid", oidc(func(o *OIDCLogin) { o.Scopes = []string{"email"} })},
		{"oidc bad scope", "login.oidc.scopes[1]", oidc(func(o *OIDCLogin) { o.Scopes = []string{"openid", "a b"} })},
		// RFC 6749 §3.3: no control bytes or non-ASCII either (once accepted here).
		{"oidc scope with a tab", "login.oidc.scopes[1]", oidc(func(o *OIDCLogin) { o.Scopes = []string{"openid", "a\tb"} })},
		{"oidc non-ASCII scope", "login.oidc.scopes[1]", oidc(func(o *OIDCLogin) { o.Scopes = []string{"openid", "é"} })},
		{"oidc user claim", "login.oidc.user_claim", oidc(func(o *OIDCLogin) { o.UserClaim = "name" })},
		{"oidc domain", "login.oidc.allowed_email_domains[0]", oidc(func(o *OIDCLogin) { o.AllowedEmailDomains = []string{"@example.com"} })},
		{"oidc group", "login.oidc.allowed_groups[0]", oidc(func(o *OIDCLogin) { o.AllowedGroups = []string{""} })},
		{"oidc groups claim", "login.oidc.groups_claim", oidc(func(o *OIDCLogin) { o.AllowedGroups, o.GroupsClaim = []string{"g"}, "" })},
		{"webapp login url", "login.webapp.login_url", webapp(func(w *WebAppLogin) { w.LoginURL = "ftp://app" })},
		{"webapp http url", "login.webapp.login_url", webapp(func(w *WebAppLogin) { w.LoginURL = "http://app.example.com/login" })},
		{"webapp issuer", "login.webapp.issuer", webapp(func(w *WebAppLogin) { w.Issuer = "" })},
		{"webapp no secret", "login.webapp: set exactly one", webapp(func(w *WebAppLogin) { w.Secret = "" })},
		{"webapp two secrets", "login.webapp: set exactly one", webapp(func(w *WebAppLogin) { w.SecretFile = "/x" })},
		{"webapp short secret", "login.webapp.secret: is 31 bytes", webapp(func(w *WebAppLogin) { w.Secret = strings.Repeat("k", 31) })},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			c.SigningKeys = []SigningKey{{ID: "k", Secret: "0123456789abcdef0123456789abcdef"}}
			tc.mod(c)
			err := c.Validate(false)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}

	// The valid variants pass, including http on loopback and a public client.
	for _, mod := range []func(*Config){
		oidc(func(o *OIDCLogin) { o.Issuer = "http://127.0.0.1:9999" }),
		oidc(func(o *OIDCLogin) { o.Issuer = "http://localhost:9999/realms/x" }),
		webapp(func(w *WebAppLogin) { w.LoginURL = "http://[::1]:3000/login?x=1" }),
		webapp(func(w *WebAppLogin) { w.Secret, w.SecretFile = "", "/run/secrets/handoff" }),
	} {
		c := Default()
		c.SigningKeys = []SigningKey{{ID: "k", Secret: "0123456789abcdef0123456789abcdef"}}
		mod(c)
		if err := c.Validate(false); err != nil {
			t.Errorf("valid login config refused: %v", err)
		}
	}
}

func TestLoginSecretFiles(t *testing.T) {
	dir := t.TempDir()
	long := filepath.Join(dir, "long")
	short := filepath.Join(dir, "short")
	if err := os.WriteFile(long, []byte(strings.Repeat("s", 40)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(short, []byte("too-short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if s, err := (&WebAppLogin{SecretFile: long}).ResolveSecret(); err != nil || string(s) != strings.Repeat("s", 40) {
		t.Fatalf("ResolveSecret(long) = %q, %v", s, err)
	}
	if _, err := (&WebAppLogin{SecretFile: short}).ResolveSecret(); err == nil || !strings.Contains(err.Error(), "need at least 32") {
		t.Fatalf("ResolveSecret(short) err = %v", err)
	}
	if _, err := (&WebAppLogin{SecretFile: filepath.Join(dir, "missing")}).ResolveSecret(); err == nil || !strings.Contains(err.Error(), "login.webapp.secret_file") {
		t.Fatalf("ResolveSecret(missing) err = %v", err)
	}
	if s, err := (&OIDCLogin{ClientSecretFile: short}).ResolveClientSecret(); err != nil || s != "too-short" {
		t.Fatalf("ResolveClientSecret = %q, %v", s, err)
	}
	if _, err := (&OIDCLogin{ClientSecretFile: filepath.Join(dir, "missing")}).ResolveClientSecret(); err == nil || !strings.Contains(err.Error(), "login.oidc.client_secret_file") {
		t.Fatalf("ResolveClientSecret(missing) err = %v", err)
	}
}
