package config

import (
	"strings"
	"testing"
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
