package authz

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/mcpgateway/mcp-gateway/store"
	"github.com/mcpgateway/mcp-gateway/token"
)

// want is what one case must produce, whatever the adapter.
type want struct {
	status  int    // the core's status (the HTTP adapter maps 404/503 → 403)
	reason  string // "" when it depends on the store backend
	errCode string // challenge error= ("" = none) for 401/403
	agent   string // agent named in the challenge's resource_metadata
	scope   string // challenge scope= for 401/403
	body    string // JSON body "error"
	ident   map[string]string
	// noChallenge: a 403 that is no credential problem (Origin) has no
	// WWW-Authenticate at all.
	noChallenge bool
}

type tcase struct {
	name string
	path string
	auth []string          // Authorization header values as sent (0, 1 or more)
	hdr  map[string]string // other client headers, any case
	host string
	// ext is the route's context_extensions: only the gRPC Check carries
	// them, so a case with ext runs through the core and gRPC only.
	ext  map[string]string
	want want
	// method is the request method ("" = POST); body the request body,
	// which the core and gRPC (Envoy with_request_body) see and the HTTP
	// check (nginx) never does: http, when set, is what it answers instead.
	method string
	body   string
	http   *want
}

func (tc tcase) methodOr() string {
	if tc.method != "" {
		return tc.method
	}
	return "POST"
}

func allowAs(user, agent, client, scope, cred string) want {
	id := map[string]string{HeaderAgent: agent, HeaderScope: scope, HeaderCredential: cred}
	if user != "" {
		id[HeaderUser] = user
	}
	if client != "" {
		id[HeaderClientID] = client
	}
	return want{status: 200, reason: ReasonOK, ident: id}
}

func unauth(agent, reason string) want {
	w := want{status: 401, reason: reason, errCode: "invalid_token", agent: agent, scope: "mcp", body: "invalid_token"}
	if reason == ReasonMissingCredential {
		w.errCode, w.body = "", "unauthorized"
	}
	return w
}

func forbidden(agent, reason, scope string) want {
	return want{status: 403, reason: reason, errCode: "insufficient_scope", agent: agent, scope: scope, body: "insufficient_scope"}
}

// resourceOf is the resource path an expected challenge names: want.agent
// is an agent id (its /mcp form) or "<id>/mcp/" for the slash form.
func resourceOf(agent string) string {
	if strings.HasSuffix(agent, "/mcp/") {
		return agent
	}
	return agent + "/mcp"
}

// notYours is "this credential may not use this agent": 403 without a
// challenge (no insufficient_scope: no step-up can help).
func notYours(reason string) want {
	return want{status: 403, reason: reason, body: "access_denied"}
}

// badMCP is a tool-policy refusal of an unreadable MCP request.
func badMCP(status int, reason string) want {
	return want{status: status, reason: reason, body: "invalid_request"}
}

func notFound(reason string) want { return want{status: 404, reason: reason, body: "not_found"} }

var badOrigin = want{status: 403, reason: ReasonOriginNotAllowed, body: "origin_not_allowed", noChallenge: true}

func bearer(tok string) []string { return []string{"Bearer " + tok} }

// tableEnv seeds the tokens and keys the cases use.
func tableEnv(t *testing.T) (*env, []tcase) {
	e := newEnv(t, func(o *Options) {
		o.AgentOrigins = []string{"http://localhost:6274"}
		o.ScopeImplies = map[string][]string{"mcp:admin": {"mcp:read"}}
	})
	ctx := context.Background()

	aliceGW := e.mint("aliceGW", "alice")
	aliceAlpha := e.mint("", "alice", aud(pub+"/alpha/mcp"))
	aliceDemoAud := e.mint("", "alice", aud(pub+"/demo/mcp"))
	aliceBravoAud := e.mint("", "alice", aud(pub+"/bravo/mcp"))
	aliceMultiAud := e.mint("", "alice", aud(pub+"/other/mcp", pub+"/alpha/mcp"))
	aliceAudSlash := e.mint("", "alice", aud(pub+"/alpha/mcp/"))
	aliceAudSlash2 := e.mint("", "alice", aud(pub+"/alpha/mcp//"))
	aliceAudOther := e.mint("", "alice", aud("http://evil.example", pub+"/"))
	aliceScopeOther := e.mint("", "alice", scope("other"))
	aliceScopeEmpty := e.mint("", "alice", scope(""))
	aliceScopeMany := e.mint("", "alice", scope("read mcp:admin"))
	bobGW := e.mint("", "bob")
	carolGW := e.mint("", "carol")
	demoGW := e.mint("", "demo")
	malloryGW := e.mint("", "mallory")
	expired := e.mint("", "alice", expIn(-2*time.Hour))
	k2 := signWith(t, jwt.SigningMethodHS256, secret2, "k2", baseClaims("alice")) // older ring key: still valid

	revokedC := baseClaims("alice")
	revoked, err := e.ring.Mint(revokedC)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.st.RevokeJTI(ctx, revokedC.ID, revokedC.ExpiresAt.Time); err != nil {
		t.Fatal(err)
	}
	tampered := tamper(t, aliceGW, func(m map[string]any) { m["sub"] = "demo" })
	unknownKid := signWith(t, jwt.SigningMethodHS256, secret1, "k9", baseClaims("alice"))
	noKid := signWith(t, jwt.SigningMethodHS256, secret1, "", baseClaims("alice"))
	badSig := signWith(t, jwt.SigningMethodHS256, []byte("another-secret-that-is-long-enough-32"), "k1", baseClaims("alice"))
	hs384 := signWith(t, jwt.SigningMethodHS384, secret1, "k1", baseClaims("alice"))
	algNone := signWith(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "k1", baseClaims("alice"))
	wrongIss := func() string {
		c := baseClaims("alice")
		tk := jwt.NewWithClaims(jwt.SigningMethodHS256, c)
		c.Issuer = "http://evil.example"
		tk.Header["kid"] = "k1"
		s, _ := tk.SignedString(secret1)
		return s
	}()

	bakAlpha := e.addKey("bakAlpha", token.PrefixAgentKey, store.APIKey{Kind: store.KeyAgent, Agent: "alpha", User: "alice"})
	bakDemo := e.addKey("bakDemo", token.PrefixAgentKey, store.APIKey{Kind: store.KeyAgent, Agent: "demo"})
	bakScoped := e.addKey("bakScoped", token.PrefixAgentKey, store.APIKey{Kind: store.KeyAgent, Agent: "scoped", Scopes: []string{"mcp"}})
	bakRevoked := e.addKey("bakRevoked", token.PrefixAgentKey, store.APIKey{Kind: store.KeyAgent, Agent: "alpha"})
	if _, err := e.st.RevokeKey(ctx, "key-bakRevoked"); err != nil {
		t.Fatal(err)
	}
	bakExpired := e.addKey("bakExpired", token.PrefixAgentKey, store.APIKey{Kind: store.KeyAgent, Agent: "alpha", ExpiresAt: time.Now().Add(-time.Minute)})
	bakIsUser := e.addKey("bakIsUser", token.PrefixAgentKey, store.APIKey{Kind: store.KeyUser, User: "alice"})
	oagAlice := e.addKey("oagAlice", token.PrefixUserKey, store.APIKey{Kind: store.KeyUser, User: "alice"})
	oagAliceMCP := e.addKey("oagAliceMCP", token.PrefixUserKey, store.APIKey{Kind: store.KeyUser, User: "alice", Scopes: []string{"mcp", "other"}})
	oagAliceOther := e.addKey("oagAliceOther", token.PrefixUserKey, store.APIKey{Kind: store.KeyUser, User: "alice", Scopes: []string{"other"}})
	oagBob := e.addKey("oagBob", token.PrefixUserKey, store.APIKey{Kind: store.KeyUser, User: "bob"})
	oagCarol := e.addKey("oagCarol", token.PrefixUserKey, store.APIKey{Kind: store.KeyUser, User: "carol"})
	oagRevoked := e.addKey("oagRevoked", token.PrefixUserKey, store.APIKey{Kind: store.KeyUser, User: "alice"})
	if _, err := e.st.RevokeKey(ctx, "key-oagRevoked"); err != nil {
		t.Fatal(err)
	}
	unknownBak, _ := token.NewAPIKey(token.PrefixAgentKey)
	unknownOag, _ := token.NewAPIKey(token.PrefixUserKey)

	okAlice := allowAs("alice", "alpha", "client-alice", "mcp", CredOAuth)
	spoof := map[string]string{
		"X-MCP-User": "demo", "x-mcp-agent": "demo", "x-mcp-credential": "agent_key",
		"x-mcp-scope": "admin", "X-Mcp-Extra": "1", "x-mcp-client-id": "evil",
	}
	long := "/" + strings.Repeat("a", 9000) + "/mcp"

	cases := []tcase{
		// --- JWT ---
		{name: "jwt/gateway-wide/owner", path: "/alpha/mcp", auth: bearer(aliceGW), want: okAlice},
		{name: "jwt/agent-aud/owner", path: "/alpha/mcp", auth: bearer(aliceAlpha), want: okAlice},
		{name: "jwt/multi-aud", path: "/alpha/mcp", auth: bearer(aliceMultiAud), want: okAlice},
		{name: "jwt/rotated-key-k2", path: "/alpha/mcp", auth: bearer(k2), want: okAlice},
		{name: "jwt/granted-user", path: "/alpha/mcp", auth: bearer(bobGW), want: allowAs("bob", "alpha", "client-bob", "mcp", CredOAuth)},
		{name: "jwt/static-agent-owner", path: "/demo/mcp", auth: bearer(demoGW), want: allowAs("demo", "demo", "client-demo", "mcp", CredOAuth)},
		{name: "jwt/static-wins-over-store", path: "/demo/mcp", auth: bearer(malloryGW), want: notYours(ReasonForbidden)},
		{name: "jwt/token-for-agent-A-at-B", path: "/alpha/mcp", auth: bearer(aliceDemoAud), want: unauth("alpha", ReasonWrongAudience)},
		{name: "jwt/token-for-agent-A-at-B-same-length", path: "/alpha/mcp", auth: bearer(aliceBravoAud), want: unauth("alpha", ReasonWrongAudience)},
		{name: "jwt/agent-aud/same-length-agent", path: "/bravo/mcp", auth: bearer(aliceBravoAud), want: allowAs("alice", "bravo", "client-alice", "mcp", CredOAuth)},
		// The endpoint's two forms are one agent (issue 16 item 9): a token
		// for either is good on either path.
		{name: "jwt/aud-slash-form", path: "/alpha/mcp", auth: bearer(aliceAudSlash), want: okAlice},
		{name: "jwt/aud-slash-form-at-slash-path", path: "/alpha/mcp/", auth: bearer(aliceAudSlash), want: okAlice},
		{name: "jwt/aud-at-slash-path", path: "/alpha/mcp/?x=1", auth: bearer(aliceAlpha), want: okAlice},
		{name: "jwt/aud-slash-form-other-agent", path: "/bravo/mcp/", auth: bearer(aliceAudSlash), want: unauth("bravo/mcp/", ReasonWrongAudience)},
		{name: "jwt/aud-double-slash", path: "/alpha/mcp", auth: bearer(aliceAudSlash2), want: unauth("alpha", ReasonWrongAudience)},
		{name: "auth/missing-slash-form", path: "/alpha/mcp/", want: unauth("alpha/mcp/", ReasonMissingCredential)},
		{name: "jwt/aud-foreign-and-slash", path: "/alpha/mcp", auth: bearer(aliceAudOther), want: unauth("alpha", ReasonWrongAudience)},
		{name: "jwt/gateway-wide-not-owner", path: "/alpha/mcp", auth: bearer(carolGW), want: notYours(ReasonForbidden)},
		{name: "jwt/owner-of-other-agent", path: "/demo/mcp", auth: bearer(aliceGW), want: notYours(ReasonForbidden)},
		{name: "jwt/scope-other", path: "/alpha/mcp", auth: bearer(aliceScopeOther), want: forbidden("alpha", ReasonInsufficientScope, "mcp")},
		{name: "jwt/scope-empty", path: "/alpha/mcp", auth: bearer(aliceScopeEmpty), want: forbidden("alpha", ReasonInsufficientScope, "mcp")},
		{name: "jwt/agent-scopes-not-met", path: "/scoped/mcp", auth: bearer(aliceGW), want: forbidden("scoped", ReasonInsufficientScope, "mcp:admin")},
		{name: "jwt/agent-scopes-met", path: "/scoped/mcp", auth: bearer(aliceScopeMany), want: allowAs("alice", "scoped", "client-alice", "read mcp:admin", CredOAuth)},
		{name: "jwt/expired", path: "/alpha/mcp", auth: bearer(expired), want: unauth("alpha", ReasonExpired)},
		{name: "jwt/revoked", path: "/alpha/mcp", auth: bearer(revoked), want: unauth("alpha", ReasonRevoked)},
		{name: "jwt/tampered-payload", path: "/alpha/mcp", auth: bearer(tampered), want: unauth("alpha", ReasonInvalidToken)},
		{name: "jwt/unknown-kid", path: "/alpha/mcp", auth: bearer(unknownKid), want: unauth("alpha", ReasonInvalidToken)},
		{name: "jwt/no-kid", path: "/alpha/mcp", auth: bearer(noKid), want: unauth("alpha", ReasonInvalidToken)},
		{name: "jwt/bad-signature", path: "/alpha/mcp", auth: bearer(badSig), want: unauth("alpha", ReasonInvalidToken)},
		{name: "jwt/hs384", path: "/alpha/mcp", auth: bearer(hs384), want: unauth("alpha", ReasonInvalidToken)},
		{name: "jwt/alg-none", path: "/alpha/mcp", auth: bearer(algNone), want: unauth("alpha", ReasonInvalidToken)},
		{name: "jwt/wrong-iss", path: "/alpha/mcp", auth: bearer(wrongIss), want: unauth("alpha", ReasonInvalidToken)},
		{name: "jwt/garbage", path: "/alpha/mcp", auth: bearer("not.a.jwt"), want: unauth("alpha", ReasonInvalidToken)},
		{name: "jwt/unknown-agent", path: "/nosuch/mcp", auth: bearer(aliceGW), want: notFound(ReasonUnknownAgent)},
		{name: "jwt/agent-id-case", path: "/Alpha/mcp", auth: bearer(aliceGW), want: notFound(ReasonUnknownAgent)},

		// --- bak_ ---
		{name: "bak/own-agent", path: "/alpha/mcp", auth: bearer(bakAlpha), want: allowAs("alice", "alpha", "key-bakAlpha", "mcp", CredAgent)},
		{name: "bak/other-agent", path: "/scoped/mcp", auth: bearer(bakAlpha), want: notYours(ReasonForbidden)},
		{name: "bak/static-agent-no-user", path: "/demo/mcp", auth: bearer(bakDemo), want: allowAs("", "demo", "key-bakDemo", "mcp", CredAgent)},
		{name: "bak/scopes-miss-agent-scopes", path: "/scoped/mcp", auth: bearer(bakScoped), want: forbidden("scoped", ReasonInsufficientScope, "mcp:admin")},
		{name: "bak/revoked", path: "/alpha/mcp", auth: bearer(bakRevoked), want: unauth("alpha", ReasonRevoked)},
		{name: "bak/expired", path: "/alpha/mcp", auth: bearer(bakExpired), want: unauth("alpha", "")},
		{name: "bak/unknown", path: "/alpha/mcp", auth: bearer(unknownBak), want: unauth("alpha", ReasonInvalidToken)},
		{name: "bak/prefix-vs-record-kind", path: "/alpha/mcp", auth: bearer(bakIsUser), want: unauth("alpha", ReasonInvalidToken)},
		{name: "bak/unknown-agent", path: "/nosuch/mcp", auth: bearer(bakAlpha), want: notFound(ReasonUnknownAgent)},
		{name: "bak/tampered", path: "/alpha/mcp", auth: bearer(bakAlpha[:len(bakAlpha)-1] + "x"), want: unauth("alpha", ReasonInvalidToken)},

		// --- oag_ ---
		{name: "oag/owner", path: "/alpha/mcp", auth: bearer(oagAlice), want: allowAs("alice", "alpha", "key-oagAlice", "mcp", CredUser)},
		{name: "oag/owner-unrestricted-takes-agent-scopes", path: "/scoped/mcp", auth: bearer(oagAlice), want: allowAs("alice", "scoped", "key-oagAlice", "mcp:admin", CredUser)},
		{name: "oag/scoped-key", path: "/alpha/mcp", auth: bearer(oagAliceMCP), want: allowAs("alice", "alpha", "key-oagAliceMCP", "mcp other", CredUser)},
		{name: "oag/scoped-key-insufficient", path: "/alpha/mcp", auth: bearer(oagAliceOther), want: forbidden("alpha", ReasonInsufficientScope, "mcp")},
		{name: "oag/granted-user", path: "/alpha/mcp", auth: bearer(oagBob), want: allowAs("bob", "alpha", "key-oagBob", "mcp", CredUser)},
		{name: "oag/not-owner", path: "/alpha/mcp", auth: bearer(oagCarol), want: notYours(ReasonForbidden)},
		{name: "oag/other-users-agent", path: "/demo/mcp", auth: bearer(oagAlice), want: notYours(ReasonForbidden)},
		{name: "oag/revoked", path: "/alpha/mcp", auth: bearer(oagRevoked), want: unauth("alpha", ReasonRevoked)},
		{name: "oag/unknown", path: "/alpha/mcp", auth: bearer(unknownOag), want: unauth("alpha", ReasonInvalidToken)},
		{name: "oag/unknown-agent", path: "/nosuch/mcp", auth: bearer(oagAlice), want: notFound(ReasonUnknownAgent)},

		// --- Authorization header forms ---
		{name: "auth/missing", path: "/alpha/mcp", want: unauth("alpha", ReasonMissingCredential)},
		{name: "auth/missing-unknown-agent", path: "/nosuch/mcp", want: unauth("nosuch", ReasonMissingCredential)},
		{name: "auth/basic-scheme", path: "/alpha/mcp", auth: []string{"Basic YWxpY2U6cHc="}, want: unauth("alpha", ReasonMissingCredential)},
		{name: "auth/scheme-lower-case", path: "/alpha/mcp", auth: []string{"bearer " + aliceGW}, want: okAlice},
		{name: "auth/scheme-upper-case", path: "/alpha/mcp", auth: []string{"BEARER " + aliceGW}, want: okAlice},
		{name: "auth/bearer-no-token", path: "/alpha/mcp", auth: []string{"Bearer"}, want: unauth("alpha", ReasonInvalidToken)},
		{name: "auth/two-tokens", path: "/alpha/mcp", auth: []string{"Bearer " + aliceGW + " " + aliceGW}, want: unauth("alpha", ReasonInvalidToken)},
		{name: "auth/two-headers", path: "/alpha/mcp", auth: []string{"Bearer " + aliceGW, "Bearer " + aliceGW}, want: unauth("alpha", ReasonInvalidToken)},
		{name: "auth/bad-chars", path: "/alpha/mcp", auth: []string{"Bearer " + aliceGW + "!"}, want: unauth("alpha", ReasonInvalidToken)},
		{name: "auth/oversized", path: "/alpha/mcp", auth: bearer(strings.Repeat("a", 5000)), want: unauth("alpha", ReasonInvalidToken)},
		{name: "auth/query-token-ignored", path: "/alpha/mcp?access_token=" + aliceGW, want: unauth("alpha", ReasonMissingCredential)},

		// --- path tricks (valid credential) ---
		{name: "path/trailing-slash", path: "/alpha/mcp/", auth: bearer(aliceGW), want: okAlice},
		{name: "path/query", path: "/alpha/mcp?x=1", auth: bearer(aliceGW), want: okAlice},
		{name: "path/query-encoded", path: "/alpha/mcp/?sessionId=a%2Fb&y=..", auth: bearer(aliceGW), want: okAlice},
		{name: "path/dot-dot", path: "/demo/../alpha/mcp", auth: bearer(aliceGW), want: notFound(ReasonBadPath)},
		{name: "path/dot-dot-agent", path: "/../mcp", auth: bearer(aliceGW), want: notFound(ReasonBadPath)},
		{name: "path/dot-segment", path: "/alpha/./mcp", auth: bearer(aliceGW), want: notFound(ReasonBadPath)},
		{name: "path/encoded-slash", path: "/alpha%2Fmcp", auth: bearer(aliceGW), want: notFound(ReasonBadPath)},
		{name: "path/encoded-slash-lower", path: "/demo%2f..%2falpha/mcp", auth: bearer(aliceGW), want: notFound(ReasonBadPath)},
		{name: "path/encoded-dots", path: "/%2e%2e/alpha/mcp", auth: bearer(aliceGW), want: notFound(ReasonBadPath)},
		{name: "path/encoded-agent", path: "/%61lpha/mcp", auth: bearer(aliceGW), want: notFound(ReasonBadPath)},
		{name: "path/double-slash-lead", path: "//alpha/mcp", auth: bearer(aliceGW), want: notFound(ReasonBadPath)},
		{name: "path/double-slash-mid", path: "/alpha//mcp", auth: bearer(aliceGW), want: notFound(ReasonBadPath)},
		{name: "path/extra-segment", path: "/alpha/mcp/extra", auth: bearer(aliceGW), want: notFound(ReasonBadPath)},
		{name: "path/trailing-junk", path: "/alpha/mcpx", auth: bearer(aliceGW), want: notFound(ReasonBadPath)},
		{name: "path/semicolon", path: "/alpha/mcp;x=1", auth: bearer(aliceGW), want: notFound(ReasonBadPath)},
		{name: "path/upper-MCP", path: "/Alpha/MCP", auth: bearer(aliceGW), want: notFound(ReasonBadPath)},
		{name: "path/backslash", path: `/alpha\mcp`, auth: bearer(aliceGW), want: notFound(ReasonBadPath)},
		{name: "path/nul", path: "/alpha/mcp\x00", auth: bearer(aliceGW), want: notFound(ReasonBadPath)},
		{name: "path/space", path: "/alpha /mcp", auth: bearer(aliceGW), want: notFound(ReasonBadPath)},
		{name: "path/fragment", path: "/alpha/mcp#x", auth: bearer(aliceGW), want: notFound(ReasonBadPath)},
		{name: "path/non-ascii", path: "/älpha/mcp", auth: bearer(aliceGW), want: notFound(ReasonBadPath)},
		{name: "path/too-long", path: long, auth: bearer(aliceGW), want: notFound(ReasonBadPath)},
		{name: "path/not-mcp", path: "/.well-known/oauth-protected-resource", auth: bearer(aliceGW), want: notFound(ReasonBadPath)},
		{name: "path/root", path: "/", want: notFound(ReasonBadPath)},
		{name: "path/empty", path: "", auth: bearer(aliceGW), want: notFound(ReasonBadPath)},

		// --- spoofed identity and host headers ---
		{name: "spoof/jwt", path: "/alpha/mcp", auth: bearer(aliceGW), hdr: spoof, want: okAlice},
		{name: "spoof/key-without-user", path: "/demo/mcp", auth: bearer(bakDemo), hdr: spoof, want: allowAs("", "demo", "key-bakDemo", "mcp", CredAgent)},
		{name: "spoof/denied-anyway", path: "/alpha/mcp", hdr: spoof, want: unauth("alpha", ReasonMissingCredential)},
		{name: "spoof/host-and-forwarded", path: "/alpha/mcp", host: "evil.example",
			hdr:  map[string]string{"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https", "Forwarded": "host=evil.example"},
			want: unauth("alpha", ReasonMissingCredential)},

		// --- the route's agent (gRPC context_extensions, issue 12) ---
		{name: "route/agent-matches", path: "/alpha/mcp", auth: bearer(aliceGW), ext: routeOf("alpha"), want: okAlice},
		{name: "route/agent-matches-slash-query", path: "/alpha/mcp/?x=1", auth: bearer(aliceGW), ext: routeOf("alpha"), want: okAlice},
		{name: "route/key-agent-matches", path: "/alpha/mcp", auth: bearer(bakAlpha), ext: routeOf("alpha"), want: allowAs("alice", "alpha", "key-bakAlpha", "mcp", CredAgent)},
		{name: "route/other-extensions-only", path: "/alpha/mcp", auth: bearer(aliceGW), ext: map[string]string{"tenant": "demo"}, want: okAlice},
		{name: "route/agent-differs", path: "/alpha/mcp", auth: bearer(aliceGW), ext: routeOf("demo"), want: notFound(ReasonRouteMismatch)},
		{name: "route/agent-differs-no-credential", path: "/alpha/mcp", ext: routeOf("demo"), want: notFound(ReasonRouteMismatch)},
		{name: "route/agent-differs-by-case", path: "/Alpha/mcp", auth: bearer(aliceGW), ext: routeOf("alpha"), want: notFound(ReasonRouteMismatch)},
		{name: "route/agent-prefix", path: "/alpha/mcp", auth: bearer(aliceGW), ext: routeOf("alph"), want: notFound(ReasonRouteMismatch)},
		{name: "route/agent-empty", path: "/alpha/mcp", auth: bearer(aliceGW), ext: routeOf(""), want: notFound(ReasonRouteMismatch)},
		{name: "route/spoof-headers-cannot-set-it", path: "/alpha/mcp", auth: bearer(aliceGW), ext: routeOf("demo"),
			hdr: map[string]string{"x-mcp-agent": "demo", "x-envoy-context-agent": "alpha"}, want: notFound(ReasonRouteMismatch)},
		{name: "route/bad-path-first", path: "/alpha/../demo/mcp", auth: bearer(aliceGW), ext: routeOf("demo"), want: notFound(ReasonBadPath)},

		// --- Origin (DNS rebinding, other sites' pages; issue 16 item 8) ---
		{name: "origin/public-url", path: "/alpha/mcp", auth: bearer(aliceGW), hdr: map[string]string{"Origin": pub}, want: okAlice},
		{name: "origin/listed", path: "/alpha/mcp/", auth: bearer(aliceGW), hdr: map[string]string{"Origin": "http://localhost:6274"}, want: okAlice},
		{name: "origin/other-site", path: "/alpha/mcp", auth: bearer(aliceGW), hdr: map[string]string{"Origin": "http://evil.example.com"}, want: badOrigin},
		{name: "origin/other-site-before-credential", path: "/alpha/mcp", hdr: map[string]string{"Origin": "http://evil.example.com"}, want: badOrigin},
		{name: "origin/other-site-key", path: "/alpha/mcp", auth: bearer(bakAlpha), hdr: map[string]string{"Origin": "https://evil.example.com"}, want: badOrigin},
		{name: "origin/null", path: "/alpha/mcp", auth: bearer(aliceGW), hdr: map[string]string{"Origin": "null"}, want: badOrigin},
		{name: "origin/listed-port-prefix", path: "/alpha/mcp", auth: bearer(aliceGW), hdr: map[string]string{"Origin": "http://localhost:62740"}, want: badOrigin},
		{name: "origin/public-other-scheme", path: "/alpha/mcp", auth: bearer(aliceGW), hdr: map[string]string{"Origin": "https://127.0.0.1:8000"}, want: badOrigin},
		{name: "origin/rebound-name", path: "/alpha/mcp", auth: bearer(aliceGW), host: "rebind.example:8000", hdr: map[string]string{"Origin": "http://rebind.example:8000"}, want: badOrigin},
		{name: "origin/two-joined", path: "/alpha/mcp", auth: bearer(aliceGW), hdr: map[string]string{"Origin": pub + "," + pub}, want: badOrigin},
		{name: "origin/unknown-agent", path: "/nosuch/mcp", auth: bearer(aliceGW), hdr: map[string]string{"Origin": "http://evil.example.com"}, want: badOrigin},
		// --- 401 challenges name the agent's scopes (issue 13) ---
		{name: "challenge/agent-scopes", path: "/scoped/mcp", want: func() want { w := unauth("scoped", ReasonMissingCredential); w.scope = "mcp:admin"; return w }()},
		{name: "challenge/rule-scopes-not-asked-up-front", path: "/tools/mcp", want: unauth("tools", ReasonMissingCredential)},
	}
	cases = append(cases, policyCases(e)...)
	return e, cases
}

// routeOf is the context_extensions of a route built for agent.
func routeOf(agent string) map[string]string { return map[string]string{ContextExtensionAgent: agent} }

func TestDecisionTable(t *testing.T) {
	e, cases := tableEnv(t)
	if len(cases) < 40 {
		t.Fatalf("only %d cases", len(cases))
	}
	grpcClient := startGRPC(t, e.a)
	httpSrv := httptest.NewServer(WithHTTPCheck(e.a, http.NotFoundHandler()))
	t.Cleanup(httpSrv.Close)
	checkH := HTTPCheckHandler(e.a)

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Run("core", func(t *testing.T) { runCore(t, e.a, tc) })
			t.Run("grpc", func(t *testing.T) { runGRPC(t, grpcClient, tc) })
			if tc.ext != nil {
				return // the HTTP check has no context extensions
			}
			t.Run("http-nginx", func(t *testing.T) { runHTTP(t, httpSrv, checkH, tc, false) })
			t.Run("http-envoy-prefix", func(t *testing.T) { runHTTP(t, httpSrv, checkH, tc, true) })
		})
	}

	// No credential may ever reach the logs.
	logs := e.logs.String()
	for name, k := range e.keys {
		if strings.Contains(logs, k) {
			t.Errorf("API key %s appears in the logs", name)
		}
	}
	for name, tok := range e.toks {
		if strings.Contains(logs, tok) || strings.Contains(logs, strings.Split(tok, ".")[2]) {
			t.Errorf("token %s appears in the logs", name)
		}
	}
}

// lowerHeaders is the request's header map as Envoy presents it.
func (tc tcase) lowerHeaders() map[string]string {
	h := map[string]string{}
	for k, v := range tc.hdr {
		h[strings.ToLower(k)] = v
	}
	if len(tc.auth) > 0 {
		h["authorization"] = strings.Join(tc.auth, ",")
	}
	return h
}

func (tc tcase) hostOr() string {
	if tc.host != "" {
		return tc.host
	}
	return "127.0.0.1:8000"
}

func runCore(t *testing.T, a *Authorizer, tc tcase) {
	h := tc.lowerHeaders()
	r := &Request{Method: tc.methodOr(), Path: tc.path, Header: func(n string) string { return h[n] }, HeaderNames: maps.Keys(h)}
	if tc.body != "" {
		r.Body = []byte(tc.body)
	}
	if v, ok := tc.ext[ContextExtensionAgent]; ok {
		r.RouteAgent = &v
	}
	d := a.Decide(context.Background(), r)
	if d.Status != tc.want.status || (tc.want.reason != "" && d.Reason != tc.want.reason) {
		t.Fatalf("got %d %s, want %d %s", d.Status, d.Reason, tc.want.status, tc.want.reason)
	}
	if d.Allow != (tc.want.status == 200) {
		t.Fatalf("Allow=%v with status %d", d.Allow, d.Status)
	}
	if d.Allow {
		if !slices.Contains(d.RemoveHeaders, "authorization") {
			t.Errorf("authorization not removed: %v", d.RemoveHeaders)
		}
		applied := applyEnvoy(t, tc.lowerHeaders(), d.UpstreamHeaders, d.RemoveHeaders)
		checkUpstream(t, applied, tc.want.ident)
		return
	}
	hdr := map[string]string{}
	for _, h := range d.Headers {
		hdr[h.Key] = h.Value
	}
	checkDenied(t, tc, d.Status, hdr["www-authenticate"], hdr["content-type"], d.Body)
}

// applyEnvoy applies headers (overwrite) then removals to a request header
// map, as Envoy does with an OkHttpResponse.
func applyEnvoy(t *testing.T, req map[string]string, set []HeaderValue, remove []string) map[string]string {
	t.Helper()
	out := maps.Clone(req)
	for _, h := range set {
		if h.Key != strings.ToLower(h.Key) || h.Value == "" {
			t.Errorf("upstream header %q=%q: want a lower-case key and a value", h.Key, h.Value)
		}
		out[h.Key] = h.Value
	}
	for _, k := range remove {
		delete(out, strings.ToLower(k))
	}
	return out
}

// checkUpstream: the request the upstream sees has exactly the identity
// headers expected, and no credential.
func checkUpstream(t *testing.T, h map[string]string, ident map[string]string) {
	t.Helper()
	got := map[string]string{}
	for k, v := range h {
		if strings.HasPrefix(k, "x-mcp-") {
			got[k] = v
		}
	}
	// Every allow carries an assertion stating the same identity.
	checkAssertion(t, got[HeaderIdentity], ident)
	delete(got, HeaderIdentity)
	if !maps.Equal(got, ident) {
		t.Errorf("upstream identity headers %v, want %v", got, ident)
	}
	if _, ok := h["authorization"]; ok {
		t.Error("authorization reaches the upstream")
	}
}

func checkDenied(t *testing.T, tc tcase, status int, challenge, ctype string, body []byte) {
	t.Helper()
	if ctype != "application/json" {
		t.Errorf("content-type %q", ctype)
	}
	var b struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if err := json.Unmarshal(body, &b); err != nil || b.Error != tc.want.body || b.Description == "" {
		t.Errorf("body %s (err %v), want error %q with a description", body, err, tc.want.body)
	}
	if tc.want.noChallenge {
		if challenge != "" {
			t.Errorf("unexpected challenge %q", challenge)
		}
		return
	}
	switch {
	case tc.want.status == 401, tc.want.status == 403 && tc.want.errCode != "":
		p := challengeParams(t, challenge)
		wantP := map[string]string{
			"realm":             "MCP",
			"resource_metadata": pub + "/.well-known/oauth-protected-resource/" + resourceOf(tc.want.agent),
			"scope":             tc.want.scope,
		}
		if tc.want.errCode != "" {
			wantP["error"] = tc.want.errCode
			if p["error_description"] == "" {
				t.Errorf("challenge %q has no error_description", challenge)
			}
			delete(p, "error_description")
		}
		if !maps.Equal(p, wantP) {
			t.Errorf("challenge %v, want %v", p, wantP)
		}
	default:
		if challenge != "" {
			t.Errorf("unexpected challenge %q for %d", challenge, status)
		}
	}
}

// ---- gRPC ----

func startGRPC(t testing.TB, a *Authorizer) authv3.AuthorizationClient {
	return authv3.NewAuthorizationClient(startGRPCConn(t, a))
}

// startGRPCConn serves a's gRPC server on loopback for the test's lifetime
// and returns a client connection to it, dialled with opts.
func startGRPCConn(t testing.TB, a *Authorizer, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := NewGRPCServer(a)
	go func() { _ = s.Serve(lis) }()
	t.Cleanup(s.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// envoyCheckRequest is shaped like what Envoy's ext_authz filter sends:
// lower-case header keys including pseudo-headers, plus the parsed fields.
func envoyCheckRequest(method, path, host string, h map[string]string) *authv3.CheckRequest {
	headers := map[string]string{
		":authority": host, ":method": method, ":path": path, ":scheme": "http",
		"user-agent": "mcp-client/1.0", "accept": "application/json, text/event-stream",
		"content-type": "application/json", "mcp-protocol-version": "2025-11-25",
		"x-forwarded-proto": "http", "x-request-id": "6f1c1b52-3f7e-4ac5-9d6b-0e0b1f5b9a11",
	}
	maps.Copy(headers, h)
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: "127.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 51234}}}}},
		Destination: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: "127.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 8000}}}}},
		Request: &authv3.AttributeContext_Request{
			Time: timestamppb.Now(),
			Http: &authv3.AttributeContext_HttpRequest{
				Id: "1234567890", Method: method, Headers: headers, Path: path,
				Host: host, Scheme: "http", Protocol: "HTTP/1.1",
			},
		},
	}}
}

func runGRPC(t *testing.T, c authv3.AuthorizationClient, tc tcase) {
	req := envoyCheckRequest(tc.methodOr(), tc.path, tc.hostOr(), tc.lowerHeaders())
	req.Attributes.ContextExtensions = tc.ext
	if tc.body != "" { // with_request_body, pack_as_bytes
		req.Attributes.Request.Http.RawBody = []byte(tc.body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.Check(ctx, req)
	if err != nil {
		t.Fatalf("Check returned an RPC error: %v", err)
	}
	md := resp.GetDynamicMetadata().GetFields()
	if tc.want.status == 200 {
		// An allow is the ok_response alone: no status (absent is OK) and
		// no metadata (the identity is in the headers).
		if resp.GetStatus() != nil || resp.GetDynamicMetadata() != nil {
			t.Fatalf("allow carries status %v, metadata %v", resp.GetStatus(), resp.GetDynamicMetadata())
		}
		ok := resp.GetOkResponse()
		if ok == nil {
			t.Fatal("allow without OkHttpResponse")
		}
		var set []HeaderValue
		for _, o := range ok.GetHeaders() {
			if o.GetAppendAction() != corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD {
				t.Errorf("header %s: append action %v", o.GetHeader().GetKey(), o.GetAppendAction())
			}
			set = append(set, HeaderValue{o.GetHeader().GetKey(), o.GetHeader().GetValue()})
		}
		applied := applyEnvoy(t, req.GetAttributes().GetRequest().GetHttp().GetHeaders(), set, ok.GetHeadersToRemove())
		checkUpstream(t, applied, tc.want.ident)
		return
	}
	if tc.want.reason != "" && md["reason"].GetStringValue() != tc.want.reason {
		t.Errorf("metadata reason %q, want %q", md["reason"].GetStringValue(), tc.want.reason)
	}
	wantCode := map[int]codes.Code{401: codes.Unauthenticated, 403: codes.PermissionDenied, 404: codes.NotFound, 503: codes.Unavailable, 400: codes.PermissionDenied, 413: codes.PermissionDenied}[tc.want.status]
	if got := codes.Code(resp.GetStatus().GetCode()); got != wantCode {
		t.Errorf("grpc status %v, want %v", got, wantCode)
	}
	den := resp.GetDeniedResponse()
	if den == nil {
		t.Fatalf("deny without DeniedHttpResponse: %v", resp)
	}
	if int(den.GetStatus().GetCode()) != tc.want.status {
		t.Fatalf("denied status %d, want %d", den.GetStatus().GetCode(), tc.want.status)
	}
	hdr := map[string]string{}
	for _, o := range den.GetHeaders() {
		hdr[o.GetHeader().GetKey()] = o.GetHeader().GetValue()
	}
	checkDenied(t, tc, tc.want.status, hdr["www-authenticate"], hdr["content-type"], []byte(den.GetBody()))
}

// ---- HTTP check ----

var wireSafe = regexp.MustCompile(`^[A-Za-z0-9\-._~/?&=%:;]*$`)

func runHTTP(t *testing.T, srv *httptest.Server, h http.Handler, tc tcase, envoyPrefix bool) {
	if tc.http != nil { // no body reaches the HTTP check
		tc.want = *tc.http
	}
	var hdrs [][2]string
	for k, v := range tc.hdr {
		hdrs = append(hdrs, [2]string{k, v})
	}
	for _, v := range tc.auth {
		hdrs = append(hdrs, [2]string{"Authorization", v})
	}
	target := CheckPath
	method := "GET"
	if envoyPrefix {
		target += tc.path
		method = tc.methodOr()
	} else {
		hdrs = append(hdrs, [2]string{"X-Original-URI", tc.path}, [2]string{"X-Original-Method", tc.methodOr()})
	}

	var status int
	var rh http.Header
	var body []byte
	if wireSafe.MatchString(tc.path) && tc.path != "" {
		// Over a real connection, with the request line written byte for
		// byte so no client library normalises the path.
		status, rh, body = rawHTTP(t, srv.Listener.Addr().String(), method, target, tc.hostOr(), hdrs)
	} else {
		// Targets no HTTP/1.1 request line can carry go straight to the handler.
		req := &http.Request{Method: method, RequestURI: target, URL: &url.URL{Path: CheckPath}, Host: tc.hostOr(), Header: http.Header{}, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}
		for _, kv := range hdrs {
			req.Header.Add(kv[0], kv[1])
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req.WithContext(context.Background()))
		status, rh, body = rec.Code, rec.Header(), rec.Body.Bytes()
	}

	wantHTTP := 403
	switch tc.want.status {
	case 200, 401:
		wantHTTP = tc.want.status
	}
	if status != wantHTTP {
		t.Fatalf("HTTP %d, want %d (body %s)", status, wantHTTP, body)
	}
	if status == 200 {
		req := map[string]string{}
		for _, kv := range hdrs {
			if _, dup := req[strings.ToLower(kv[0])]; !dup {
				req[strings.ToLower(kv[0])] = kv[1]
			}
		}
		// Envoy http_service: allowed_upstream_headers x-mcp-* are copied,
		// x-envoy-auth-headers-to-remove are removed.
		var set []HeaderValue
		for k, v := range rh {
			if lk := strings.ToLower(k); strings.HasPrefix(lk, "x-mcp-") {
				set = append(set, HeaderValue{lk, v[0]})
			}
		}
		var rm []string
		for _, s := range strings.Split(rh.Get("X-Envoy-Auth-Headers-To-Remove"), ",") {
			rm = append(rm, strings.TrimSpace(s))
		}
		if !slices.Contains(rm, "authorization") {
			t.Errorf("x-envoy-auth-headers-to-remove %q lacks authorization", rh.Get("X-Envoy-Auth-Headers-To-Remove"))
		}
		checkUpstream(t, applyEnvoy(t, req, set, rm), tc.want.ident)
		if len(body) != 0 {
			t.Errorf("allow with a body: %s", body)
		}
		return
	}
	// nginx rebuilds a 403's body from these headers: they must say what
	// the JSON body says.
	var jb struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if err := json.Unmarshal(body, &jb); err != nil || rh.Get(HeaderError) != jb.Error || rh.Get("X-Mcp-Error-Description") != jb.Description {
		t.Errorf("X-Mcp-Error %q / %q, body %s (%v)", rh.Get(HeaderError), rh.Get("X-Mcp-Error-Description"), body, err)
	}
	tw := tc
	if tc.want.status == 404 || tc.want.status == 503 {
		tw.want.status = 403 // mapped: no challenge, JSON body kept
		tw.want.errCode = ""
	}
	if tc.want.status == 404 {
		checkDenied(t, want404(tw), 404, rh.Get("WWW-Authenticate"), rh.Get("Content-Type"), body)
		return
	}
	checkDenied(t, tw, wantHTTP, rh.Get("WWW-Authenticate"), rh.Get("Content-Type"), body)
}

// want404 checks a mapped 404 like a 404: no challenge.
func want404(tc tcase) tcase { tc.want.status = 404; return tc }

func rawHTTP(t *testing.T, addr, method, target, host string, hdrs [][2]string) (int, http.Header, []byte) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	var b strings.Builder
	b.WriteString(method + " " + target + " HTTP/1.1\r\nHost: " + host + "\r\n")
	for _, kv := range hdrs {
		b.WriteString(kv[0] + ": " + kv[1] + "\r\n")
	}
	b.WriteString("Connection: close\r\n\r\n")
	if _, err := io.WriteString(conn, b.String()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, body
}
