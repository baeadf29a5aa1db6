package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const validYAML = `
public_url: https://gw.example.com
store: {url: "redis://:pw@redis:6379/2", prefix: "x:"}
signing_keys:
  - {id: k2, secret: "0123456789abcdef0123456789abcdef"}
ttl: {access: 30m, code: 60s}
login:
  users: [{username: alice, password_hash: "$2a$10$abcdefghijklmnopqrstuv"}]
agents:
  - {id: demo, owner: alice, upstream: "http://demo:3000/mcp"}
`

func write(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadFileAndDefaults(t *testing.T) {
	c, err := Load(write(t, validYAML), false)
	if err != nil {
		t.Fatal(err)
	}
	if c.PublicURL != "https://gw.example.com" || c.Store.Prefix != "x:" || c.TTL.Access.D() != 30*time.Minute || c.TTL.Code.D() != time.Minute {
		t.Fatalf("file values not applied: %+v", c)
	}
	if c.TTL.Refresh.D() != 30*24*time.Hour || c.Listen.GRPC != ":9191" || c.Scopes[0].Name != "mcp" {
		t.Fatalf("defaults lost: %+v", c)
	}
}

func TestEnvOverrides(t *testing.T) {
	c := Default()
	env := map[string]string{
		"MCPGW_PUBLIC_URL":           "https://env.example.com",
		"MCPGW_LISTEN_ADMIN":         "0.0.0.0:9999",
		"MCPGW_TTL_ACCESS":           "5m",
		"MCPGW_SCOPES":               "mcp, tools:read",
		"MCPGW_RATE_LIMIT_TOKEN":     "7",
		"MCPGW_SIGNING_KEYS":         `[{"id":"e","secret":"0123456789abcdef0123456789abcdef"}]`,
		"MCPGW_CORS_ALLOWED_ORIGINS": "https://a.example",
	}
	if err := ApplyEnv(c, func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil {
		t.Fatal(err)
	}
	if c.PublicURL != "https://env.example.com" || c.Listen.Admin != "0.0.0.0:9999" || c.TTL.Access.D() != 5*time.Minute ||
		strings.Join(c.ScopeNames(), "|") != "mcp|tools:read" || c.RateLimit.Token != 7 || c.SigningKeys[0].ID != "e" || c.CORS.AllowedOrigins[0] != "https://a.example" {
		t.Fatalf("env not applied: %+v", c)
	}
	if err := c.Validate(false); err != nil {
		t.Fatal(err)
	}
}

func TestEnvErrorsNameTheField(t *testing.T) {
	for env, field := range map[string]string{
		"MCPGW_TTL_CODE":         "ttl.code",
		"MCPGW_RATE_LIMIT_LOGIN": "rate_limit.login",
		"MCPGW_SIGNING_KEYS":     "signing_keys",
	} {
		err := ApplyEnv(Default(), func(k string) (string, bool) { return "nonsense", k == env })
		if err == nil || !strings.Contains(err.Error(), field) || !strings.Contains(err.Error(), env) {
			t.Errorf("%s: err = %v, want it to name %s", env, err, field)
		}
	}
}

func TestValidateNamesTheField(t *testing.T) {
	cases := map[string]string{
		"public_url: https://gw.example.com/":                                       "public_url",
		"public_url: https://user@gw.example.com":                                   "public_url",
		"public_url: https://user:pw@gw.example.com/gw":                             "public_url",
		"public_url: ftp://x":                                                       "public_url",
		"public_url: https://gw.example.com/a//b":                                   "public_url",
		"public_url: https://gw.example.com/a/../b":                                 "public_url",
		"public_url: https://gw.example.com/a/./b":                                  "public_url",
		"public_url: https://gw.example.com/g%77":                                   "public_url",
		"public_url: https://gw.example.com/a%2Fb":                                  "public_url",
		"store: {url: mysql://x}":                                                   "store.url",
		"signing_keys: []":                                                          "signing_keys",
		"signing_keys: [{id: a}]":                                                   "signing_keys[0]",
		"ttl: {access: 0s}":                                                         "ttl.access",
		"ttl: {refresh_grace: 5m}":                                                  "ttl.refresh_grace",
		"login: {provider: ldap}":                                                   "login.provider",
		"login: {users: [{username: a, password_hash: plain}]}":                     "login.users[0].password_hash",
		"login: {users: [{username: a, password_hash: $2a$10$x, groups: ['a b']}]}": "login.users[0].groups",
		"login: {users: [{username: a, password_hash: $2a$10$x, groups: ['']}]}":    "login.users[0].groups",
		"agents: [{id: 'a/b', owner: x}]":                                           "agents[0].id",
		"agents: [{id: a, owner: x, upstream: 'nope'}]":                             "agents[0].upstream",
		"trusted_proxies: [10.0.0.1]":                                               "trusted_proxies[0]",
		"trusted_hops: 0":                                                           "trusted_hops",
		"trusted_hops: 11":                                                          "trusted_hops",
		"admin_token: x":                                                            "admin_token",
		"admin_token: 0123456789abcdef0123456789abcde":                              "admin_token", // 31 bytes
		"listen: {http: 8080}":                                                      "listen.http",
		"scopes: ['a b']":                                                           "scopes[0]",
	}
	for yaml, field := range cases {
		body := yaml
		if !strings.HasPrefix(yaml, "signing_keys") {
			body += "\nsigning_keys: [{id: k, secret: '0123456789abcdef0123456789abcdef'}]"
		}
		_, err := Load(write(t, body), false)
		if err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("%q: err = %v, want it to name %s", yaml, err, field)
		}
	}
}

func TestUnknownFieldRejected(t *testing.T) {
	_, err := Load(write(t, "publc_url: https://x\n"), true)
	if err == nil || !strings.Contains(err.Error(), "publc_url") {
		t.Fatalf("typo accepted: %v", err)
	}
}

func TestDevNeedsNoKeyAndSecretsCheckLength(t *testing.T) {
	if _, err := Load("", true); err != nil {
		t.Fatalf("dev defaults: %v", err)
	}
	if _, err := Load("", false); err == nil {
		t.Fatal("serve without signing keys accepted")
	}
	dir := t.TempDir()
	short := filepath.Join(dir, "short")
	long := filepath.Join(dir, "long")
	os.WriteFile(short, []byte("tooshort\n"), 0o600)
	os.WriteFile(long, []byte("0123456789abcdef0123456789abcdef\n"), 0o600)
	c := Default()
	c.SigningKeys = []SigningKey{{ID: "f", SecretFile: long}}
	s, err := c.Secrets()
	if err != nil || string(s[0]) != "0123456789abcdef0123456789abcdef" {
		t.Fatalf("secret_file: %q, %v", s, err)
	}
	c.SigningKeys = []SigningKey{{ID: "f", SecretFile: short}}
	if _, err := c.Secrets(); err == nil || !strings.Contains(err.Error(), "signing_keys[0]") {
		t.Fatalf("short secret accepted: %v", err)
	}
	c.SigningKeys = []SigningKey{{ID: "s", Secret: "short"}}
	if _, err := c.Secrets(); err == nil {
		t.Fatal("short inline secret accepted")
	}
}

func TestValidAgentID(t *testing.T) {
	for _, ok := range []string{"demo", "a.b-c_d", strings.Repeat("x", 128)} {
		if !ValidAgentID(ok) {
			t.Errorf("%q rejected", ok)
		}
	}
	for _, bad := range []string{"", ".", "..", "a/b", "a b", "é", "a%2F", strings.Repeat("x", 129),
		"oauth", "login", "Consent", "account", "authz", "admin", ".well-known", "metrics", "healthz", "readyz"} {
		if ValidAgentID(bad) {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestAdminTokenStrength: serve refuses a short admin token (as a short
// signing key); 32 bytes pass, no token disables the API, and dev, which
// generates its own, lets a developer's short one through.
func TestAdminTokenStrength(t *testing.T) {
	key := "\nsigning_keys: [{id: k, secret: '0123456789abcdef0123456789abcdef'}]"
	for body, refused := range map[string]bool{
		"admin_token: x": true,
		"admin_token: 0123456789abcdef0123456789abcdef": false,
		"admin_token: ''": false,
	} {
		_, err := Load(write(t, body+key), false)
		if (err != nil) != refused {
			t.Errorf("serve, %q: err = %v, want refused %v", body, err, refused)
		}
	}
	if _, err := Load(write(t, "admin_token: x"), true); err != nil {
		t.Errorf("dev refused a short admin token: %v", err)
	}
}

func TestHTTPLimits(t *testing.T) {
	d := Default().HTTPLimits
	if d.BodyTimeout.D() != 10*time.Second || d.MaxBodyReads != 256 || d.IdleTimeout.D() != 2*time.Minute {
		t.Fatalf("defaults: %+v", d)
	}
	c := Default()
	env := map[string]string{"MCPGW_HTTP_LIMITS_BODY_TIMEOUT": "250ms", "MCPGW_HTTP_LIMITS_MAX_BODY_READS": "3", "MCPGW_HTTP_LIMITS_IDLE_TIMEOUT": "5s"}
	if err := ApplyEnv(c, func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil {
		t.Fatal(err)
	}
	if h := c.HTTPLimits; h.BodyTimeout.D() != 250*time.Millisecond || h.MaxBodyReads != 3 || h.IdleTimeout.D() != 5*time.Second {
		t.Fatalf("env not applied: %+v", h)
	}
	for yaml, field := range map[string]string{
		"http_limits: {body_timeout: 0s}":  "http_limits.body_timeout",
		"http_limits: {body_timeout: 1h}":  "http_limits.body_timeout",
		"http_limits: {max_body_reads: 0}": "http_limits.max_body_reads",
		"http_limits: {idle_timeout: -1s}": "http_limits.idle_timeout",
	} {
		_, err := Load(write(t, yaml+"\nsigning_keys: [{id: k, secret: '0123456789abcdef0123456789abcdef'}]"), false)
		if err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("%q: err = %v, want it to name %s", yaml, err, field)
		}
	}
}

// TestPublicURLWithPath: a path in public_url is allowed (the gateway is
// then served below it, README "public_url with a path"), in one spelling.
func TestPublicURLWithPath(t *testing.T) {
	for _, u := range []string{"https://gw.example.com/gw", "https://gw.example.com/a/b-c_d~e"} {
		c, err := Load(write(t, "public_url: "+u+"\nsigning_keys: [{id: k, secret: '0123456789abcdef0123456789abcdef'}]"), false)
		if err != nil || c.PublicURL != u {
			t.Errorf("%s: %v", u, err)
		}
	}
}
