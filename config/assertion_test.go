package config

import (
	"strings"
	"testing"
	"time"
)

func TestAssertionKeys(t *testing.T) {
	c, err := Load(write(t, validYAML+`
assertion_keys:
  - {id: a2, private_key_file: /run/secrets/a2.pem}
  - {id: a1, private_key_file: /run/secrets/a1.pem}
`), false)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.AssertionKeys) != 2 || c.AssertionKeys[0].ID != "a2" || c.AssertionKeys[1].PrivateKeyFile != "/run/secrets/a1.pem" {
		t.Fatalf("%+v", c.AssertionKeys)
	}
	env := map[string]string{"MCPGW_ASSERTION_KEYS": `[{"id":"e","private_key_file":"/k.pem"}]`}
	if err := ApplyEnv(c, func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil || c.AssertionKeys[0].ID != "e" {
		t.Fatalf("env: %v %+v", err, c.AssertionKeys)
	}
	for name, tc := range map[string]struct{ yaml, want string }{
		"no id":   {"assertion_keys: [{private_key_file: /k.pem}]", "assertion_keys[0].id"},
		"no file": {"assertion_keys: [{id: a}]", "assertion_keys[0].private_key_file"},
		"dup id":  {"assertion_keys: [{id: a, private_key_file: /a}, {id: a, private_key_file: /b}]", "assertion_keys[1].id"},
	} {
		if _, err := Load(write(t, validYAML+tc.yaml), false); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error naming %s", name, err, tc.want)
		}
	}
}

func TestUpstreamAuth(t *testing.T) {
	base, _, _ := strings.Cut(validYAML, "agents:")
	c, err := Load(write(t, base+`
upstream_secrets: {dir: /run/secrets/upstream, refresh: 30s}
agents:
  - {id: demo, owner: alice, upstream_auth: {header: Authorization, prefix: "Bearer ", secret_file: demo.token}}
  - {id: env, owner: alice, upstream_auth: {header: x-api-key, secret_env: MCPGW_UPSTREAM_SECRET_ENV}}
`), false)
	if err != nil {
		t.Fatal(err)
	}
	if u := c.Agents[0].UpstreamAuth; u == nil || u.Header != "authorization" || u.SecretFile != "demo.token" || c.UpstreamSecrets.Refresh.D() != 30*time.Second {
		t.Fatalf("%+v %+v", u, c.UpstreamSecrets)
	}
	if Default().UpstreamSecrets.Refresh.D() != 10*time.Second {
		t.Fatal("default refresh")
	}
	for name, tc := range map[string]struct{ yaml, want string }{
		"file without dir": {"agents: [{id: a, owner: o, upstream_auth: {header: x-k, secret_file: f}}]", "needs upstream_secrets.dir"},
		"relative dir":     {"upstream_secrets: {dir: secrets}", "upstream_secrets.dir"},
		"gateway env":      {"agents: [{id: a, owner: o, upstream_auth: {header: x-k, secret_env: MCPGW_ADMIN_TOKEN}}]", "secret_env"},
		"identity header":  {"upstream_secrets: {dir: /s}\nagents: [{id: a, owner: o, upstream_auth: {header: x-mcp-user, secret_file: f}}]", "reserved"},
		"refresh":          {"upstream_secrets: {refresh: 0s}", "upstream_secrets.refresh"},
	} {
		if _, err := Load(write(t, base+tc.yaml), false); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error mentioning %s", name, err, tc.want)
		}
	}
}
