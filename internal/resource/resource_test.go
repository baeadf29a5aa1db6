package resource

import (
	"strings"
	"testing"
)

func TestBuildAndParseAgree(t *testing.T) {
	for _, pub := range []string{"https://gw.example", "https://gw.example/base", "https://gw.example/base/"} {
		b := New(pub)
		for _, agent := range []string{"demo", "a.b_c-1", "mcp"} {
			for _, slash := range []bool{false, true} {
				u := b.Form(agent, slash)
				got, gotSlash, ok := b.Parse(u)
				if !ok || got != agent || gotSlash != slash {
					t.Errorf("%s: Parse(%q) = %q, %v, %v", pub, u, got, gotSlash, ok)
				}
				if !b.Names(u, agent) {
					t.Errorf("%s: Names(%q, %q) = false", pub, u, agent)
				}
				if b.Names(u, agent+"x") || b.Names(u, "x"+agent) {
					t.Errorf("%s: Names(%q) accepted another agent", pub, u)
				}
			}
		}
	}
}

func TestParseRefuses(t *testing.T) {
	b := New("https://gw.example")
	for _, u := range []string{
		"https://gw.example", "https://gw.example/", "https://gw.example/mcp",
		"https://gw.example/demo/mcp//", "https://gw.example/demo/mcpx", "https://gw.example/demo/mcp/x",
		"https://gw.example/a/b/mcp", "https://gw.example/../mcp", "https://gw.example/login/mcp",
		"https://gw.example/%64emo/mcp", "https://gw.examplex/demo/mcp", "https://GW.example/demo/mcp",
		"http://gw.example/demo/mcp", "https://gw.example//demo/mcp",
	} {
		if a, _, ok := b.Parse(u); ok {
			t.Errorf("Parse(%q) = %q, want refused", u, a)
		}
		if b.Names(u, "demo") {
			t.Errorf("Names(%q, demo) = true", u)
		}
	}
}

func TestNamesDoesNotAllocate(t *testing.T) {
	b := New("https://gw.example")
	u := b.Slash("demo")
	if n := testing.AllocsPerRun(100, func() { _ = b.Names(u, "demo") }); n != 0 {
		t.Fatalf("Names allocates %v times", n)
	}
}

// TestMetadataURLs: the metadata of a resource or issuer with a path lives at
// the host's root with the path after the well-known suffix (RFC 9728 §3.1,
// RFC 8414 §3.1), never below the path; without a path it is the plain
// well-known URL. ParseMetadata reads back every URL MetadataPrefix and WellKnown
// build, and nothing under another base path.
func TestMetadataURLs(t *testing.T) {
	for _, tc := range []struct {
		pub, agent, slash, root, issuer string
	}{
		{"https://h.example", "https://h.example/.well-known/oauth-protected-resource/demo/mcp",
			"https://h.example/.well-known/oauth-protected-resource/demo/mcp/",
			"https://h.example/.well-known/oauth-protected-resource",
			"https://h.example/.well-known/oauth-authorization-server"},
		{"https://h.example:8443/gw", "https://h.example:8443/.well-known/oauth-protected-resource/gw/demo/mcp",
			"https://h.example:8443/.well-known/oauth-protected-resource/gw/demo/mcp/",
			"https://h.example:8443/.well-known/oauth-protected-resource/gw",
			"https://h.example:8443/.well-known/oauth-authorization-server/gw"},
		{"http://h/a/b/", "http://h/.well-known/oauth-protected-resource/a/b/demo/mcp",
			"http://h/.well-known/oauth-protected-resource/a/b/demo/mcp/",
			"http://h/.well-known/oauth-protected-resource/a/b",
			"http://h/.well-known/oauth-authorization-server/a/b"},
	} {
		b := New(tc.pub)
		for got, want := range map[string]string{
			b.MetadataPrefix() + Rel("demo", false): tc.agent,
			b.MetadataPrefix() + Rel("demo", true):  tc.slash,
			b.WellKnown(ProtectedResource):          tc.root,
			b.WellKnown(AuthorizationServer):        tc.issuer,
		} {
			if got != want {
				t.Errorf("%s: got %s, want %s", tc.pub, got, want)
			}
		}
		for u, want := range map[string]struct {
			agent string
			slash bool
		}{tc.agent: {"demo", false}, tc.slash: {"demo", true}, tc.root: {}} {
			p := u[strings.Index(u, "/.well-known/"):]
			agent, slash, ok := b.ParseMetadata(p)
			if !ok || agent != want.agent || slash != want.slash {
				t.Errorf("%s: ParseMetadata(%q) = %q, %v, %v", tc.pub, p, agent, slash, ok)
			}
		}
	}
}

// TestParseMetadataRefuses: paths that are no metadata of a resource under
// the base: the pre-RFC form below the base path, another base path, the
// bare root document when the base has a path (its resource would be the
// bare host, not ours), and agent paths ParsePath refuses.
func TestParseMetadataRefuses(t *testing.T) {
	for pub, paths := range map[string][]string{
		"https://h/gw": {
			"/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/",
			"/.well-known/oauth-protected-resource/demo/mcp", "/gw/.well-known/oauth-protected-resource/demo/mcp",
			"/.well-known/oauth-protected-resource/gwx/demo/mcp", "/.well-known/oauth-protected-resource/gw/",
			"/.well-known/oauth-protected-resource/gw/demo", "/.well-known/oauth-protected-resource/gw/a/b/mcp",
			"/.well-known/oauth-authorization-server/gw", "/.well-known/oauth-protected-resource/gw/demo/mcp/x",
		},
		"https://h": {
			"/.well-known/oauth-protected-resourcex", "/.well-known/oauth-protected-resource//demo/mcp",
			"/.well-known/oauth-protected-resource/demo", "/.well-known/oauth-protected-resource/../mcp",
			"/.well-known/openid-configuration", "/demo/mcp",
		},
	} {
		b := New(pub)
		for _, p := range paths {
			if agent, _, ok := b.ParseMetadata(p); ok {
				t.Errorf("%s: ParseMetadata(%q) = %q, want refused", pub, p, agent)
			}
		}
	}
}
