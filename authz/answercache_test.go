package authz

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	"github.com/mcpgateway/mcp-gateway/store"
	"github.com/mcpgateway/mcp-gateway/token"
)

// sharedCheck runs one Check as the gRPC server does (codec, checkHandler,
// answer freed once written, here at the end of the test so that a pooled
// buffer is not reused meanwhile) and returns the answer's bytes, the
// buffer they were sent from (to tell shared answers apart) and the answer
// decoded.
func sharedCheck(t *testing.T, a *Authorizer, path string, h map[string]string) ([]byte, *byte, *authv3.CheckResponse) {
	t.Helper()
	codec := newCheckCodec()
	in := mem.BufferSlice{mem.SliceBuffer(marshal(t, envoyCheckRequest("POST", path, "127.0.0.1:8000", h)))}
	ans, err := checkHandler(&checkServer{a: a}, context.Background(), func(v any) error { return codec.Unmarshal(in, v) }, nil)
	if err != nil {
		t.Fatal(err)
	}
	out, err := codec.Marshal(ans)
	if err != nil {
		t.Fatal(err)
	}
	from := &out[0].ReadOnlyData()[0]
	raw := out.Materialize()
	t.Cleanup(out.Free)
	var got authv3.CheckResponse
	if err := proto.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	return raw, from, &got
}

// challengeOf is the www-authenticate header of a denial.
func challengeOf(t *testing.T, r *authv3.CheckResponse) string {
	t.Helper()
	for _, h := range r.GetDeniedResponse().GetHeaders() {
		if h.GetHeader().GetKey() == "www-authenticate" {
			return h.GetHeader().GetValue()
		}
	}
	t.Fatalf("no challenge in %v", r)
	return ""
}

// filledDenied counts the shared answers an agent holds.
func filledDenied(ai *agentInfo) int {
	n := 0
	for i := range ai.denied {
		if ai.denied[i].Load() != nil {
			n++
		}
	}
	return n
}

// TestDeniedAnswerShared: the 401s that name no caller are sent from one
// buffer per agent, reason and credential kind, byte for byte the answer
// the decision in hand would have been given; the others are built anew.
func TestDeniedAnswerShared(t *testing.T) {
	e := newEnv(t)
	bad := func(sub string) string {
		return "Bearer " + signWith(t, jwt.SigningMethodHS256, []byte("another-secret-that-is-long-enough-32"), "k1", baseClaims(sub))
	}
	unknownKey, _ := token.NewAPIKey(token.PrefixAgentKey)
	otherUnknownKey, _ := token.NewAPIKey(token.PrefixAgentKey)
	revoked := e.mint("", "alice", func(c *token.Claims) { c.ID = "jti-revoked" })
	e.a.jtis.add("jti-revoked", time.Now().Add(time.Hour), time.Now())
	for _, c := range []struct {
		name, path, a, b string // a and b: two credentials with the same answer
		shared           bool
	}{
		{"no credential", "/alpha/mcp", "", "", true},
		{"no credential, query", "/alpha/mcp?x=1", "", "Basic Zm9vOmJhcg==", true},
		{"forged token", "/alpha/mcp", bad("alice"), bad("mallory"), true},
		{"malformed token", "/alpha/mcp", "Bearer a b", "Bearer ", true},
		{"unknown agent key", "/alpha/mcp", "Bearer " + unknownKey, "Bearer " + otherUnknownKey, true},
		{"expired token", "/alpha/mcp", "Bearer " + e.mint("", "alice", expIn(-time2h)), "Bearer " + e.mint("", "bob", expIn(-time2h)), true},
		{"static agent", "/demo/mcp", "", "", true},
		// The slash form's challenge names its own metadata: built per Check.
		{"slash form", "/alpha/mcp/", "", "", false},
		// An unknown agent has no agentInfo to hold an answer.
		{"unknown agent", "/nope/mcp", "", "", false},
		// A revoked token names its user: not shared.
		{"revoked", "/alpha/mcp", "Bearer " + revoked, "Bearer " + revoked, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			hdr := func(v string) map[string]string {
				if v == "" {
					return map[string]string{}
				}
				return map[string]string{"authorization": v}
			}
			rawA, fromA, gotA := sharedCheck(t, e.a, c.path, hdr(c.a))
			rawB, fromB, gotB := sharedCheck(t, e.a, c.path, hdr(c.b))
			if gotA.GetDeniedResponse().GetStatus().GetCode() != 401 || gotB.GetDeniedResponse().GetStatus().GetCode() != 401 {
				t.Fatalf("not 401s: %v / %v", gotA, gotB)
			}
			if (fromA == fromB) != c.shared {
				t.Fatalf("answers sent from one buffer: %v, want %v", fromA == fromB, c.shared)
			}
			if c.shared && string(rawA) != string(rawB) {
				t.Fatal("shared answers differ")
			}
			// Whatever its source, the answer is the one this decision gets.
			d := e.a.Decide(context.Background(), &Request{Method: "POST", Path: c.path, Headers: hdr(c.b), Adapter: "grpc"})
			if want := checkResponseMessage(d); !proto.Equal(gotB, want) {
				t.Fatalf("answer\n%v\nwant\n%v", gotB, want)
			}
			if (d.deniedSlot() != nil) != c.shared {
				t.Fatalf("deniedSlot %v, want shared %v", d.deniedSlot(), c.shared)
			}
		})
	}
}

const time2h = 2 * time.Hour

// TestDeniedAnswerFollowsAgent: an agent's shared 401 answers go with its
// record: a change (new scopes) or a deletion is answered at once, from
// the new record or for an unknown agent.
func TestDeniedAnswerFollowsAgent(t *testing.T) {
	e := newEnv(t)
	_, _, got := sharedCheck(t, e.a, "/scoped/mcp", nil)
	if ch := challengeOf(t, got); !strings.Contains(ch, `scope="mcp:admin"`) {
		t.Fatalf("challenge %q", ch)
	}
	if err := e.st.PutAgent(context.Background(), &store.Agent{AgentSpec: store.AgentSpec{ID: "scoped", Owner: "alice", Scopes: []string{"mcp:tools"}}}); err != nil {
		t.Fatal(err)
	}
	e.a.onEvent(store.Event{Kind: store.EventAgent, ID: "scoped"})
	_, _, got = sharedCheck(t, e.a, "/scoped/mcp", nil)
	if ch := challengeOf(t, got); !strings.Contains(ch, `scope="mcp:tools"`) {
		t.Fatalf("after the change the challenge is %q", ch)
	}
	if err := e.st.DeleteAgent(context.Background(), "scoped"); err != nil {
		t.Fatal(err)
	}
	e.a.onEvent(store.Event{Kind: store.EventAgent, ID: "scoped"})
	_, _, got = sharedCheck(t, e.a, "/scoped/mcp", nil)
	if ch := challengeOf(t, got); !strings.Contains(ch, `scope="mcp"`) {
		t.Fatalf("after the deletion the challenge is %q, want the gateway's", ch)
	}
	// A lost subscription drops every agent, and with them their answers.
	_, _, _ = sharedCheck(t, e.a, "/alpha/mcp", nil)
	if err := e.st.PutAgent(context.Background(), &store.Agent{AgentSpec: store.AgentSpec{ID: "alpha", Owner: "alice", Scopes: []string{"mcp:x"}}}); err != nil {
		t.Fatal(err)
	}
	e.a.onEvent(store.Event{Kind: store.EventResync})
	_, _, got = sharedCheck(t, e.a, "/alpha/mcp", nil)
	if ch := challengeOf(t, got); !strings.Contains(ch, `scope="mcp:x"`) {
		t.Fatalf("after a resync the challenge is %q", ch)
	}
}

// TestDeniedAnswerPerPublicURL: the answers belong to one Authorizer, so
// a gateway with another public URL (a restart with a new config) never
// sends one naming the old URL.
func TestDeniedAnswerPerPublicURL(t *testing.T) {
	e := newEnv(t)
	other := newEnvOn(t, e.st, func(o *Options) { o.PublicURL = "https://gw.example" })
	_, _, got := sharedCheck(t, e.a, "/alpha/mcp", nil)
	_, _, got2 := sharedCheck(t, other.a, "/alpha/mcp", nil)
	if ch := challengeOf(t, got); !strings.Contains(ch, pub+"/.well-known/") {
		t.Fatalf("challenge %q", ch)
	}
	if ch := challengeOf(t, got2); !strings.Contains(ch, `resource_metadata="https://gw.example/.well-known/oauth-protected-resource/alpha/mcp"`) {
		t.Fatalf("challenge of the other gateway %q", ch)
	}
}

// TestDeniedAnswerBounded: whatever clients send, an agent holds at most
// nDenied answers, and paths naming no registered agent add none anywhere.
func TestDeniedAnswerBounded(t *testing.T) {
	e := newEnv(t)
	for i := range 200 {
		tok, _ := token.NewAPIKey([]string{token.PrefixAgentKey, token.PrefixUserKey}[i%2])
		for _, h := range []map[string]string{
			nil,
			{"authorization": "Bearer " + tok},
			{"authorization": fmt.Sprintf("Bearer forged.%d.token", i)},
			{"authorization": "Bearer " + e.mint("", fmt.Sprintf("u%d", i), expIn(-time2h))},
		} {
			sharedCheck(t, e.a, fmt.Sprintf("/alpha/mcp?i=%d", i), h)
			sharedCheck(t, e.a, fmt.Sprintf("/unknown-%d/mcp", i), h)
		}
	}
	ai, err := e.a.lookupAgent(context.Background(), "alpha", e.a.now())
	if err != nil || ai == nil {
		t.Fatal(ai, err)
	}
	if n := filledDenied(ai); n != nDenied {
		t.Fatalf("alpha holds %d answers, want all %d kinds filled and no more", n, nDenied)
	}
	for _, ai := range e.a.static {
		if n := filledDenied(ai); n != 0 {
			t.Fatalf("static agent %s holds %d answers it was never asked for", ai.agent.ID, n)
		}
	}
	// Unknown agents are cached only as "not found" (nil), bounded as before.
	for i := range 200 {
		if ai, ok := e.a.agents.Lookup(fmt.Sprintf("unknown-%d", i), e.a.now()); ok && ai != nil {
			t.Fatalf("unknown agent %d has an agentInfo", i)
		}
	}
}
