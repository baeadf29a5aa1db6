package authz

import (
	"context"
	"strings"
	"testing"
	"time"
)

// policyBench is an agent like "alpha" with a six-rule tool policy.
func policyBench(b *testing.B) *env {
	e := benchEnv(b)
	ag := *toolsAgent
	ag.ID = "ruled"
	if err := e.st.PutAgent(context.Background(), &ag); err != nil {
		b.Fatal(err)
	}
	return e
}

// BenchmarkDecideJWTNoRules is BenchmarkDecideJWT with a 2026-07-28
// client's headers: an agent without rules reads none of them.
func BenchmarkDecideJWTNoRules(b *testing.B) {
	e := benchEnv(b)
	r := benchRequest("/alpha/mcp", "Bearer "+e.mint("", "alice"))
	r.Headers["mcp-protocol-version"], r.Headers["mcp-method"], r.Headers["mcp-name"] = "2026-07-28", "tools/call", "echo"
	runDecide(b, e.a, r, 200)
}

// BenchmarkDecideJWTRulesHeaders: the header path (protocol 2026-07-28):
// six rules, the call matching none (all are tried).
func BenchmarkDecideJWTRulesHeaders(b *testing.B) {
	e := policyBench(b)
	r := benchRequest("/ruled/mcp", "Bearer "+e.mint("", "alice"))
	r.Headers["mcp-protocol-version"], r.Headers["mcp-method"], r.Headers["mcp-name"] = "2026-07-28", "tools/call", "echo"
	runDecide(b, e.a, r, 200)
}

// BenchmarkDecideJWTRulesHeadersBase64: the same with a Base64 name
// matching the admin glob, denied with a step-up challenge.
func BenchmarkDecideJWTRulesHeadersBase64(b *testing.B) {
	e := policyBench(b)
	r := benchRequest("/ruled/mcp", "Bearer "+e.mint("", "alice"))
	r.Headers["mcp-protocol-version"], r.Headers["mcp-method"], r.Headers["mcp-name"] = "2026-07-28", "tools/call", b64name("admin_echo")
	runDecide(b, e.a, r, 403)
}

func benchBody(b *testing.B, size int) {
	e := policyBench(b)
	r := benchRequest("/ruled/mcp", "Bearer "+e.mint("", "alice"))
	pad := size - len(callBody("echo")) - len(`,"x":""`)
	body := strings.Replace(callBody("echo"), `"arguments":{}`, `"arguments":{"x":"`+strings.Repeat("a", pad)+`"}`, 1)
	r.Body = []byte(body)
	b.SetBytes(int64(len(body)))
	runDecide(b, e.a, r, 200)
}

// BenchmarkDecideJWTRulesBody1K / 64K: the body path (older clients): a
// tools/call of 1 KiB and of 64 KiB, parsed on every decision.
func BenchmarkDecideJWTRulesBody1K(b *testing.B)  { benchBody(b, 1<<10) }
func BenchmarkDecideJWTRulesBody64K(b *testing.B) { benchBody(b, MaxMCPBody) }

// BenchmarkPolicyHeaders is the header path alone (applyPolicy: read and
// decode Mcp-Method/Mcp-Name, try six rules): what it adds to a decision.
func BenchmarkPolicyHeaders(b *testing.B) {
	e := policyBench(b)
	ai, err := e.a.lookupAgent(context.Background(), "ruled", time.Now())
	if err != nil || ai == nil {
		b.Fatal(err)
	}
	r := benchRequest("/ruled/mcp", "")
	r.Headers["mcp-protocol-version"], r.Headers["mcp-method"], r.Headers["mcp-name"] = "2026-07-28", "tools/call", "echo"
	c := &caller{user: "alice", scope: "mcp", cred: credOAuth}
	b.ReportAllocs()
	for b.Loop() {
		var d Decision
		if rsn := e.a.applyPolicy(context.Background(), r, &d, ai, c, time.Now()); rsn != rOK {
			b.Fatal(reasons[rsn].name)
		}
	}
}
