package config

import (
	"strings"
	"testing"
)

// The config file's agents obey the admin API's rules (StaticAgent.Validate):
// each of these was accepted by the config file before the two were one.
func TestStaticAgentsGetTheAdminAPIsValidation(t *testing.T) {
	base := "public_url: https://gw.example.com\nsigning_keys: [{id: k, secret: '0123456789abcdef0123456789abcdef'}]\n"
	if _, err := Load(write(t, base+"agents: [{id: a, owner: x, users: [bob], scopes: [mcp], upstream: 'http://127.0.0.1:9/mcp'}]"), false); err != nil {
		t.Fatalf("a valid agent: %v", err)
	}
	cases := map[string]string{
		"agents: [{id: a, owner: \"x\\ay\"}]":                                                         "agents[0].owner: contains a control character",
		"agents: [{id: a, owner: '" + strings.Repeat("o", 257) + "'}]":                                "agents[0].owner: longer than 256 bytes",
		"agents: [{id: a, owner: x, name: '" + strings.Repeat("n", 257) + "'}]":                       "agents[0].name",
		"agents: [{id: a, owner: x, users: ['']}]":                                                    "agents[0].users[0]: required",
		"agents: [{id: a, owner: x, scopes: [mcp, mcp]}]":                                             "agents[0].scopes[1]",
		"agents: [{id: a, owner: x, scopes: ['a b']}]":                                                "agents[0].scopes[0]",
		"agents: [{id: a, owner: x, upstream: 'http://u.example/mcp#f'}]":                             "agents[0].upstream",
		"agents: [{id: a, owner: x, upstream: 'http://u.example/" + strings.Repeat("p", 2048) + "'}]": "agents[0].upstream",
	}
	for yaml, want := range cases {
		_, err := Load(write(t, base+yaml), false)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%.80q: err = %v, want it to contain %q", yaml, err, want)
		}
	}
}
