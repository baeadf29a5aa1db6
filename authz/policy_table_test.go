package authz

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"github.com/mcpgateway/mcp-gateway/store"
	"github.com/mcpgateway/mcp-gateway/token"
)

// toolsAgent has a tool policy; the other agents of the table have none.
var toolsAgent = &store.Agent{AgentSpec: store.AgentSpec{
	ID: "tools", Owner: "alice", Users: []string{"bob"}, Rules: []store.Rule{
		{Name: "admin", Method: "tools/call", Target: "admin_*", Scopes: []string{"mcp:admin"}},
		{Name: "secret-files", Method: "resources/read", Target: "file:///secret/*", Users: []string{store.RuleOwner}},
		{Name: "deploy", Method: "tools/call", Target: "deploy", Credentials: []string{CredAgent}},
		{Name: "ops", Method: "tools/call", Target: "ops_*", Groups: []string{"ops"}},
		{Name: "prompts", Method: "prompts/*", Scopes: []string{"mcp:read"}},
		{Method: "tools/call", Target: "héllo", Scopes: []string{"mcp:admin"}},
	},
}}

// modern are the headers of a protocol 2026-07-28 client.
func modern(method, name string) map[string]string {
	h := map[string]string{"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": method}
	if name != "" {
		h["Mcp-Name"] = name
	}
	return h
}

func b64name(s string) string {
	return "=?base64?" + base64.StdEncoding.EncodeToString([]byte(s)) + "?="
}

func callBody(tool string) string {
	return `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"` + tool + `","arguments":{}}}`
}

// policyCases are the tool-policy rows of the decision table: the header
// path, the body path, their mismatch, Base64 names, globs, the scope
// hierarchy (mcp:admin implies mcp:read) and each credential kind.
func policyCases(e *env) []tcase {
	if err := e.st.PutAgent(context.Background(), toolsAgent); err != nil {
		e.t.Fatal(err)
	}
	alice := e.mint("", "alice")
	aliceAdmin := e.mint("", "alice", scope("mcp mcp:admin"))
	adminOnly := e.mint("", "alice", scope("mcp:admin"))
	bob := e.mint("", "bob")
	bobOps := e.mint("", "bob", func(c *token.Claims) { c.Groups = []string{"dev", "ops"} })
	bakTools := e.addKey("bakTools", token.PrefixAgentKey, store.APIKey{Kind: store.KeyAgent, Agent: "tools", User: "alice"})
	oagAlice := e.addKey("oagAlicePolicy", token.PrefixUserKey, store.APIKey{Kind: store.KeyUser, User: "alice"})
	oagAdmin := e.addKey("oagAliceAdmin", token.PrefixUserKey, store.APIKey{Kind: store.KeyUser, User: "alice", Scopes: []string{"mcp", "mcp:admin"}})

	const p = "/tools/mcp"
	okA := allowAs("alice", "tools", "client-alice", "mcp", CredOAuth)
	okAdmin := allowAs("alice", "tools", "client-alice", "mcp mcp:admin", CredOAuth)
	okBob := allowAs("bob", "tools", "client-bob", "mcp", CredOAuth)
	stepUp := func(s string) want { return forbidden("tools", ReasonInsufficientScope, s) }
	unreadable := badMCP(400, ReasonMCPUnreadable)
	bad := badMCP(400, ReasonBadMCPRequest)
	mismatch := badMCP(400, ReasonHeaderMismatch)
	old := map[string]string{"MCP-Protocol-Version": "2025-11-25"}
	hdrOK := func(w want) *want { return &w }

	return []tcase{
		// Header path (protocol ≥ 2026-07-28): no body needed, so the HTTP
		// check (nginx) decides like the others.
		{name: "policy/hdr/open-tool", path: p, auth: bearer(alice), hdr: modern("tools/call", "echo"), want: okA},
		{name: "policy/hdr/list", path: p, auth: bearer(alice), hdr: modern("tools/list", ""), want: okA},
		{name: "policy/hdr/glob-needs-scope", path: p, auth: bearer(alice), hdr: modern("tools/call", "admin_echo"), want: stepUp("mcp mcp:admin")},
		{name: "policy/hdr/glob-scope-granted", path: p, auth: bearer(aliceAdmin), hdr: modern("tools/call", "admin_echo"), want: okAdmin},
		{name: "policy/hdr/glob-no-match", path: p, auth: bearer(alice), hdr: modern("tools/call", "xadmin_echo"), want: okA},
		{name: "policy/hdr/glob-other-method", path: p, auth: bearer(alice), hdr: modern("prompts/list", "admin_echo"), want: stepUp("mcp mcp:read")},
		{name: "policy/hdr/base64-ascii-name", path: p, auth: bearer(alice), hdr: modern("tools/call", b64name("admin_echo")), want: stepUp("mcp mcp:admin")},
		{name: "policy/hdr/base64-unicode-name", path: p, auth: bearer(alice), hdr: modern("tools/call", b64name("héllo")), want: stepUp("mcp mcp:admin")},
		{name: "policy/hdr/base64-unicode-name-granted", path: p, auth: bearer(aliceAdmin), hdr: modern("tools/call", b64name("héllo")), want: okAdmin},
		{name: "policy/hdr/base64-method", path: p, auth: bearer(alice), hdr: modern(b64name("tools/call"), "admin_x"), want: stepUp("mcp mcp:admin")},
		{name: "policy/hdr/base64-malformed", path: p, auth: bearer(alice), hdr: modern("tools/call", "=?base64?%%%?="), want: bad},
		{name: "policy/hdr/base64-prefix-not-sentinel", path: p, auth: bearer(alice), hdr: modern("tools/call", "=?base64?YWRtaW5fZWNobw?=="), want: bad},
		{name: "policy/hdr/base64-prefix-only", path: p, auth: bearer(alice), hdr: modern("tools/call", "=?base64?"), want: bad},
		{name: "policy/hdr/base64-not-utf8", path: p, auth: bearer(alice), hdr: modern("tools/call", "=?base64?/w==?="), want: bad},
		{name: "policy/hdr/raw-non-ascii", path: p, auth: bearer(alice), hdr: modern("tools/call", "héllo"), want: bad},
		{name: "policy/hdr/notification-without-method", path: p, auth: bearer(alice), hdr: map[string]string{"MCP-Protocol-Version": "2026-07-28"}, want: okA},
		{name: "policy/hdr/no-method-body-decides", path: p, auth: bearer(alice), hdr: map[string]string{"MCP-Protocol-Version": "2026-07-28"}, body: callBody("admin_echo"), want: stepUp("mcp mcp:admin"), http: &okA},
		{name: "policy/hdr/missing-name", path: p, auth: bearer(alice), hdr: modern("tools/call", ""), want: bad},
		{name: "policy/hdr/later-version", path: p, auth: bearer(alice), hdr: map[string]string{"MCP-Protocol-Version": "2027-01-01", "Mcp-Method": "tools/call", "Mcp-Name": "admin_1"}, want: stepUp("mcp mcp:admin")},
		{name: "policy/hdr/old-version-headers-not-trusted", path: p, auth: bearer(alice), hdr: map[string]string{"MCP-Protocol-Version": "2025-11-25", "Mcp-Method": "tools/list"}, want: unreadable},
		{name: "policy/hdr/no-version-no-body", path: p, auth: bearer(alice), want: unreadable},
		{name: "policy/hdr/garbage-version", path: p, auth: bearer(alice), hdr: map[string]string{"MCP-Protocol-Version": "9999-99-9x", "Mcp-Method": "tools/list"}, want: unreadable},
		{name: "policy/hdr/hierarchy-implied", path: p, auth: bearer(aliceAdmin), hdr: modern("prompts/get", "p1"), want: okAdmin},
		{name: "policy/hdr/hierarchy-not-implied-upwards", path: p, auth: bearer(adminOnly), hdr: modern("tools/list", ""), want: forbidden("tools", ReasonInsufficientScope, "mcp")},
		{name: "policy/hdr/owner-only-file", path: p, auth: bearer(alice), hdr: modern("resources/read", "file:///secret/a"), want: okA},
		{name: "policy/hdr/owner-only-file-granted-user", path: p, auth: bearer(bob), hdr: modern("resources/read", "file:///secret/a"), want: notYours(ReasonRuleForbidden)},
		{name: "policy/hdr/glob-does-not-cross-slash", path: p, auth: bearer(bob), hdr: modern("resources/read", "file:///secret/a/b"), want: okBob},
		{name: "policy/hdr/group-member", path: p, auth: bearer(bobOps), hdr: modern("tools/call", "ops_restart"), want: okBob},
		{name: "policy/hdr/group-missing", path: p, auth: bearer(bob), hdr: modern("tools/call", "ops_restart"), want: notYours(ReasonRuleForbidden)},
		{name: "policy/hdr/credential-oauth-refused", path: p, auth: bearer(alice), hdr: modern("tools/call", "deploy"), want: notYours(ReasonRuleForbidden)},
		{name: "policy/hdr/credential-agent-key", path: p, auth: bearer(bakTools), hdr: modern("tools/call", "deploy"), want: allowAs("alice", "tools", "key-bakTools", "mcp", CredAgent)},
		{name: "policy/hdr/credential-user-key-refused", path: p, auth: bearer(oagAlice), hdr: modern("tools/call", "deploy"), want: notYours(ReasonRuleForbidden)},
		{name: "policy/hdr/agent-key-lacks-rule-scope", path: p, auth: bearer(bakTools), hdr: modern("tools/call", "admin_x"), want: stepUp("mcp mcp:admin")},
		{name: "policy/hdr/user-key-unscoped-lacks-rule-scope", path: p, auth: bearer(oagAlice), hdr: modern("tools/call", "admin_x"), want: stepUp("mcp mcp:admin")},
		{name: "policy/hdr/user-key-scoped", path: p, auth: bearer(oagAdmin), hdr: modern("tools/call", "admin_x"), want: allowAs("alice", "tools", "key-oagAliceAdmin", "mcp mcp:admin", CredUser)},
		{name: "policy/hdr/not-your-agent-first", path: p, auth: bearer(e.mint("", "carol")), hdr: modern("tools/call", "admin_x"), want: notYours(ReasonForbidden)},
		{name: "policy/get-stream", path: p, method: "GET", auth: bearer(alice), want: okA},
		{name: "policy/delete-session", path: p, method: "DELETE", auth: bearer(alice), want: okA},
		{name: "policy/no-rules-agent-unchanged", path: "/alpha/mcp", auth: bearer(alice), hdr: modern("tools/call", "%%garbage"), want: allowAs("alice", "alpha", "client-alice", "mcp", CredOAuth)},

		// Body path (older clients): the core and gRPC read the body; the
		// HTTP check has none and refuses with a clear 400 (mapped 403).
		{name: "policy/body/open-tool", path: p, auth: bearer(alice), hdr: old, body: callBody("echo"), want: okA, http: &unreadable},
		{name: "policy/body/no-version", path: p, auth: bearer(alice), body: callBody("echo"), want: okA, http: &unreadable},
		{name: "policy/body/needs-scope", path: p, auth: bearer(alice), hdr: old, body: callBody("admin_echo"), want: stepUp("mcp mcp:admin"), http: &unreadable},
		{name: "policy/body/scope-granted", path: p, auth: bearer(aliceAdmin), hdr: old, body: callBody("admin_echo"), want: okAdmin, http: &unreadable},
		{name: "policy/body/unicode-name", path: p, auth: bearer(alice), body: callBody("héllo"), want: stepUp("mcp mcp:admin"), http: &unreadable},
		{name: "policy/body/resource-uri", path: p, auth: bearer(bob), body: `{"jsonrpc":"2.0","id":2,"method":"resources/read","params":{"uri":"file:///secret/k","name":"x"}}`, want: notYours(ReasonRuleForbidden), http: &unreadable},
		{name: "policy/body/notification", path: p, auth: bearer(alice), body: `{"jsonrpc":"2.0","method":"notifications/initialized"}`, want: okA, http: &unreadable},
		{name: "policy/body/response", path: p, auth: bearer(alice), body: `{"jsonrpc":"2.0","id":7,"result":{}}`, want: okA, http: &unreadable},
		{name: "policy/body/batch", path: p, auth: bearer(alice), body: " [" + callBody("echo") + "]", want: bad, http: &unreadable},
		{name: "policy/body/case-variant-key", path: p, auth: bearer(alice), body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","Method":"tools/list","params":{"name":"admin_x"}}`, want: bad, http: &unreadable},
		{name: "policy/body/case-variant-name", path: p, auth: bearer(alice), body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","NAME":"admin_x"}}`, want: bad, http: &unreadable},
		{name: "policy/body/name-not-string", path: p, auth: bearer(alice), body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":["admin_x"]}}`, want: bad, http: &unreadable},
		{name: "policy/body/escaped-key-last-wins", path: p, auth: bearer(alice), body: `{"jsonrpc":"2.0","id":1,"method":"tools/list","\u006dethod":"tools/call","params":{"name":"admin_x"}}`, want: stepUp("mcp mcp:admin"), http: &unreadable},
		{name: "policy/body/escaped-name", path: p, auth: bearer(alice), body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"arguments":{"name":"echo"},"name":"admin\u005fx"}}`, want: stepUp("mcp mcp:admin"), http: &unreadable},
		{name: "policy/body/params-first", path: p, auth: bearer(alice), body: `{"params":{"name":"admin_x"},"method":"tools/call","id":1,"jsonrpc":"2.0"}`, want: stepUp("mcp mcp:admin"), http: &unreadable},
		{name: "policy/body/duplicate-method-last-wins", path: p, auth: bearer(alice), body: `{"method":"tools/call","params":{"name":"admin_x"},"method":"tools/list"}`, want: okA, http: &unreadable},
		{name: "policy/body/not-json", path: p, auth: bearer(alice), body: `{"method":"tools/call"`, want: bad, http: &unreadable},
		{name: "policy/body/too-large", path: p, auth: bearer(alice), body: callBody(strings.Repeat("a", MaxMCPBody)), want: badMCP(413, ReasonBodyTooLarge), http: &unreadable},
		{name: "policy/body/partial", path: p, auth: bearer(alice), hdr: map[string]string{"x-envoy-auth-partial-body": "true"}, body: callBody("echo"), want: badMCP(413, ReasonBodyTooLarge), http: hdrOK(badMCP(413, ReasonBodyTooLarge))},

		// Headers and body together must agree (HeaderMismatch); the HTTP
		// check sees only the headers of a 2026-07-28 client and trusts them,
		// as the server will refuse the mismatch itself.
		{name: "policy/both/agree", path: p, auth: bearer(alice), hdr: modern("tools/call", "echo"), body: callBody("echo"), want: okA},
		{name: "policy/both/name-differs", path: p, auth: bearer(alice), hdr: modern("tools/call", "echo"), body: callBody("admin_echo"), want: mismatch, http: &okA},
		{name: "policy/both/method-differs", path: p, auth: bearer(alice), hdr: modern("tools/list", ""), body: callBody("admin_echo"), want: mismatch, http: &okA},
		{name: "policy/both/base64-agrees", path: p, auth: bearer(aliceAdmin), hdr: modern("tools/call", b64name("héllo")), body: callBody("héllo"), want: okAdmin},
		{name: "policy/both/old-version-headers-differ", path: p, auth: bearer(alice), hdr: map[string]string{"Mcp-Method": "tools/call", "Mcp-Name": "echo"}, body: callBody("admin_echo"), want: mismatch, http: &unreadable},
	}
}

// TestReasonsComplete: every reason has a status and, for a denial, a body
// (a missing table entry would answer status 0).
func TestReasonsComplete(t *testing.T) {
	for i, r := range reasons {
		if r.status == 0 || r.name == "" || (r.status != 200 && len(r.body) == 0) {
			t.Errorf("reason %d: %+v", i, r)
		}
	}
}

// refParseBody is parseBody stated with encoding/json maps: what the
// walker must agree with on every valid message.
func refParseBody(b []byte) (method, name string, rsn reason) {
	b = bytes.TrimLeft(b, " \t\r\n")
	if len(b) > 0 && b[0] == '[' {
		return "", "", rBatch
	}
	var msg map[string]json.RawMessage
	if len(b) == 0 || b[0] != '{' || json.Unmarshal(b, &msg) != nil {
		return "", "", rBadBody
	}
	variant := func(m map[string]json.RawMessage, names ...string) bool {
		for k := range m {
			for _, n := range names {
				if k != n && strings.EqualFold(k, n) {
					return true
				}
			}
		}
		return false
	}
	str := func(raw json.RawMessage) (string, bool) {
		var s string
		return s, len(raw) > 0 && raw[0] == '"' && json.Unmarshal(raw, &s) == nil
	}
	if variant(msg, "method", "params") {
		return "", "", rBadBody
	}
	if raw, ok := msg["method"]; ok {
		if method, ok = str(raw); !ok {
			return "", "", rBadBody
		}
	}
	raw, ok := msg["params"]
	if !ok || !namedMethod(method) {
		return method, "", rOK
	}
	var params map[string]json.RawMessage
	if len(raw) == 0 || raw[0] != '{' || json.Unmarshal(raw, &params) != nil || variant(params, "name", "uri") {
		return "", "", rBadBody
	}
	key := "name"
	if method == "resources/read" {
		key = "uri"
	}
	if raw, ok := params[key]; ok {
		if name, ok = str(raw); !ok {
			return "", "", rBadBody
		}
	}
	return method, name, rOK
}

func FuzzParseBody(f *testing.F) {
	for _, s := range []string{callBody("echo"), `{"method":"resources/read","params":{"uri":"file:///a","URI":"x"}}`,
		`{"\u006dethod":"tools/call","params":{"name":"a\"b"}}`, `[{}]`, `{"method":1}`, `{"params":[],"method":"prompts/get"}`,
		`{"method":"tools/call","params":{"name":null}}`, ` {"a":{"b":[1,2,{"c":"}"}]},"method":"x"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, n, r := parseBody(b)
		wm, wn, wr := refParseBody(b)
		if r != wr || r == rOK && (m != wm || n != wn) {
			t.Fatalf("parseBody(%q) = %q %q %s, reference %q %q %s", b, m, n, reasons[r].name, wm, wn, reasons[wr].name)
		}
	})
}
