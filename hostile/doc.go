// Package hostile holds the gateway's adversarial and fault tests; it has
// no production code.
//
//   - matrix_test.go: the hostile-input matrix, one named case per attack
//     with its expected status and OAuth error, run against an in-process
//     gateway (authorization server, HTTP check and the dev proxy over real
//     HTTP) on the memory store and, when MCPGW_TEST_REDIS_URL is set, on
//     Redis. Every case also checks that nothing was stored or issued, that
//     no response redirects to an unregistered URI and that no secret
//     reached the logs.
//   - faults_test.go: a private redis-server stopped under load and started
//     again: JWT decisions keep working, key decisions fail closed once the
//     cache expires, OAuth endpoints answer 503 temporarily_unavailable,
//     everything recovers and no goroutine is left behind.
//   - misc_test.go: more cases run like the matrix (issue 10): slow request
//     bodies, the CIMD fetcher's address guard and redirects, a cached
//     token after exp + leeway, what anonymous callers learn about agents.
//   - toolpolicy_test.go: tool calls smuggled past an agent's tool policy
//     through the dev proxy (issue 13): lying Mcp-Method/Mcp-Name headers,
//     case-variant and escaped keys, batches, oversized bodies, malformed
//     Base64 names; none reaches the agent.
//
// The SIGTERM test of the binary lives in cmd/mcp-gateway.
package hostile
