package config

import (
	"strings"
	"testing"
	"time"
)

func TestCIMDAndClientsDefaults(t *testing.T) {
	c := Default()
	if !c.CIMD.Enabled || c.CIMD.Timeout.D() != 5*time.Second || c.CIMD.MaxBytes != 5<<10 || len(c.CIMD.AllowedHosts) != 0 {
		t.Fatalf("cimd defaults %+v", c.CIMD)
	}
	if c.Clients.IdleTTL.D() != 720*time.Hour || c.Clients.MaxPerIP != 50 {
		t.Fatalf("clients defaults %+v", c.Clients)
	}
}

func TestCIMDAndClientsFromFileAndEnv(t *testing.T) {
	c, err := Load(write(t, validYAML+`
cimd: {enabled: false, allowed_hosts: [docs.internal, 10.0.0.0/8, 127.0.0.1], timeout: 2s, max_bytes: 2048}
clients: {idle_ttl: 48h, max_per_ip: 5}
`), false)
	if err != nil {
		t.Fatal(err)
	}
	if c.CIMD.Enabled || strings.Join(c.CIMD.AllowedHosts, ",") != "docs.internal,10.0.0.0/8,127.0.0.1" ||
		c.CIMD.Timeout.D() != 2*time.Second || c.CIMD.MaxBytes != 2048 || c.Clients.IdleTTL.D() != 48*time.Hour || c.Clients.MaxPerIP != 5 {
		t.Fatalf("file values not applied: %+v %+v", c.CIMD, c.Clients)
	}
	env := map[string]string{"MCPGW_CIMD_ENABLED": "true", "MCPGW_CIMD_ALLOWED_HOSTS": "a.example, b.example", "MCPGW_CLIENTS_MAX_PER_IP": "0", "MCPGW_CLIENTS_IDLE_TTL": "0s"}
	if err := ApplyEnv(c, func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil {
		t.Fatal(err)
	}
	if !c.CIMD.Enabled || strings.Join(c.CIMD.AllowedHosts, ",") != "a.example,b.example" || c.Clients.MaxPerIP != 0 || c.Clients.IdleTTL != 0 {
		t.Fatalf("env not applied: %+v %+v", c.CIMD, c.Clients)
	}
	if err := c.Validate(false); err != nil {
		t.Fatalf("zero idle_ttl and max_per_ip (disabled) rejected: %v", err)
	}
	err = ApplyEnv(Default(), func(k string) (string, bool) { return "maybe", k == "MCPGW_CIMD_ENABLED" })
	if err == nil || !strings.Contains(err.Error(), "cimd.enabled") {
		t.Fatalf("bad bool: %v", err)
	}
}

func TestCIMDAndClientsValidation(t *testing.T) {
	for yaml, field := range map[string]string{
		"cimd: {timeout: 0s}":                          "cimd.timeout",
		"cimd: {timeout: 2m}":                          "cimd.timeout",
		"cimd: {max_bytes: 10}":                        "cimd.max_bytes",
		"cimd: {max_bytes: 99999999}":                  "cimd.max_bytes",
		"cimd: {allowed_hosts: ['a b']}":               "cimd.allowed_hosts[0]",
		"cimd: {allowed_hosts: [ok.example, '']}":      "cimd.allowed_hosts[1]",
		"cimd: {allowed_hosts: ['10.0.0.0/33']}":       "cimd.allowed_hosts[0]",
		"cimd: {allowed_hosts: ['-bad.example']}":      "cimd.allowed_hosts[0]",
		"clients: {idle_ttl: -1h}":                     "clients.idle_ttl",
		"clients: {max_per_ip: -1}":                    "clients.max_per_ip",
		"clients: {allowed_schemes: [Cursor]}":         "clients.allowed_schemes[0]",
		"clients: {allowed_schemes: [cursor, '1app']}": "clients.allowed_schemes[1]",
		"clients: {allowed_schemes: ['my app']}":       "clients.allowed_schemes[0]",
		"clients: {allowed_schemes: ['']}":             "clients.allowed_schemes[0]",
		"clients: {allowed_schemes: [https]}":          "clients.allowed_schemes[0]",
		"clients: {allowed_schemes: [javascript]}":     "clients.allowed_schemes[0]",
		"clients: {allowed_schemes: [ms-msdt]}":        "clients.allowed_schemes[0]",
		"clients: {allowed_schemes: [search-ms]}":      "clients.allowed_schemes[0]",
		"clients: {allowed_schemes: [cursor, file]}":   "clients.allowed_schemes[1]",
		"clients: {allowed_schemes: ['cursor:']}":      "clients.allowed_schemes[0]",
	} {
		_, err := Load(write(t, yaml+"\nsigning_keys: [{id: k, secret: '0123456789abcdef0123456789abcdef'}]"), false)
		if err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("%q: err = %v, want it to name %s", yaml, err, field)
		}
	}
}

// clients.allowed_schemes: default [cursor], replaced by the file or by
// MCPGW_CLIENTS_ALLOWED_SCHEMES (comma-separated; empty: none).
func TestAllowedSchemes(t *testing.T) {
	if got := Default().Clients.AllowedSchemes; strings.Join(got, ",") != "cursor" {
		t.Fatalf("default allowed_schemes %v, want [cursor]", got)
	}
	c, err := Load(write(t, validYAML+"\nclients: {allowed_schemes: [cursor, vscode, com.example.app]}\n"), false)
	if err != nil || strings.Join(c.Clients.AllowedSchemes, ",") != "cursor,vscode,com.example.app" {
		t.Fatalf("from file: %v %v", c, err)
	}
	for env, want := range map[string]string{"vscode, cursor": "vscode,cursor", "": ""} {
		c := Default()
		if err := ApplyEnv(c, func(k string) (string, bool) { return env, k == "MCPGW_CLIENTS_ALLOWED_SCHEMES" }); err != nil {
			t.Fatal(err)
		}
		if strings.Join(c.Clients.AllowedSchemes, ",") != want {
			t.Fatalf("env %q: %v, want %q", env, c.Clients.AllowedSchemes, want)
		}
	}
	c = Default()
	if err := ApplyEnv(c, func(k string) (string, bool) { return "cursor,ms-officecmd", k == "MCPGW_CLIENTS_ALLOWED_SCHEMES" }); err != nil {
		t.Fatal(err)
	}
	c.SigningKeys = []SigningKey{{ID: "k", Secret: "0123456789abcdef0123456789abcdef"}}
	if err := c.Validate(false); err == nil || !strings.Contains(err.Error(), "clients.allowed_schemes[1]") {
		t.Fatalf("ms-officecmd from env: %v", err)
	}
	for _, sc := range []string{"javascript", "ms-msdt", "ms-settings", "search-ms", "file", "data", "vbscript"} {
		if !RefusedRedirectScheme(sc) {
			t.Errorf("RefusedRedirectScheme(%q) = false", sc)
		}
	}
	for _, sc := range []string{"cursor", "vscode", "com.example.app", "https"} {
		if RefusedRedirectScheme(sc) {
			t.Errorf("RefusedRedirectScheme(%q) = true", sc)
		}
	}
}
