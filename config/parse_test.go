package config

import (
	"strings"
	"testing"
)

// TestParseUsesItsLookup: Parse reads the variables lookup finds, not the
// process environment (the deployment tests load a container's config with
// the environment its manifest sets), and names the file in a YAML error.
func TestParseUsesItsLookup(t *testing.T) {
	t.Setenv("MCPGW_STORE_PREFIX", "from-os:")
	env := map[string]string{"MCPGW_LISTEN_ADMIN": "0.0.0.0:9090"}
	c, err := Parse("c.yaml", []byte(validYAML), func(k string) (string, bool) { v, ok := env[k]; return v, ok }, false)
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen.Admin != "0.0.0.0:9090" || c.Store.Prefix != "x:" {
		t.Errorf("listen.admin %q (want the lookup's), store.prefix %q (want the file's, not the process's)", c.Listen.Admin, c.Store.Prefix)
	}
	none := func(string) (string, bool) { return "", false }
	if _, err := Parse("c.yaml", []byte(validYAML+"stor: {}\n"), none, false); err == nil || !strings.Contains(err.Error(), `config c.yaml: line 11: unknown field "stor"`) {
		t.Errorf("unknown field: %v", err)
	}
}
