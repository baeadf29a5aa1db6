package config

import (
	"strings"
	"testing"
)

func TestAgentOrigins(t *testing.T) {
	for _, c := range []struct {
		origins []string
		ok      bool
	}{
		{nil, true},
		{[]string{"http://localhost:6274", "https://app.example.com", "*"}, true},
		{[]string{"https://app.example.com/"}, false},      // a path: browsers never send one
		{[]string{"https://App.example.com"}, false},       // browsers send lower case
		{[]string{"https://app.example.com:443"}, false},   // nor the default port
		{[]string{"app.example.com"}, false},               // no scheme
		{[]string{"ftp://app.example.com"}, false},         // not http(s)
		{[]string{"https://u@app.example.com"}, false},     // userinfo
		{[]string{"https://app.example.com?x=1"}, false},   // query
		{[]string{"http://localhost:6274", "null"}, false}, // "null" is what sandboxed pages send
	} {
		cfg := Default()
		cfg.SigningKeys = []SigningKey{{ID: "k", Secret: strings.Repeat("s", 32)}}
		cfg.AgentOrigins = c.origins
		err := cfg.Validate(false)
		if (err == nil) != c.ok || (err != nil && !strings.Contains(err.Error(), "agent_origins")) {
			t.Errorf("%q: %v", c.origins, err)
		}
	}
	for in, want := range map[string]string{
		"http://127.0.0.1:8000": "http://127.0.0.1:8000", "https://GW.example.com:443/x": "https://gw.example.com",
		"http://h:80": "http://h", "ftp://h": "", "/rel": "",
	} {
		if got := OriginOf(in); got != want {
			t.Errorf("OriginOf(%q) = %q, want %q", in, got, want)
		}
	}
}
