package resource

import "testing"

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
