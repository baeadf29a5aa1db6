package authz

import (
	"context"
	"io"
	"log/slog"
	"net"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"

	"github.com/mcpgateway/mcp-gateway/assertion"
	"github.com/mcpgateway/mcp-gateway/store"
	"github.com/mcpgateway/mcp-gateway/token"
)

func benchEnv(b *testing.B) *env {
	b.Helper()
	return newEnv(b, func(o *Options) { o.Logger = slog.New(slog.DiscardHandler) })
}

// benchRequest is built once, the way an adapter builds one per call, with
// the headers Envoy typically forwards.
func benchRequest(path, authorization string) *Request {
	h := map[string]string{
		":authority": "127.0.0.1:8000", ":method": "POST", ":path": path, ":scheme": "http",
		"user-agent": "mcp-client/1.0", "accept": "application/json, text/event-stream",
		"content-type": "application/json", "mcp-protocol-version": "2025-11-25",
		"x-forwarded-proto": "http", "x-request-id": "6f1c1b52-3f7e-4ac5-9d6b-0e0b1f5b9a11",
	}
	if authorization != "" {
		h["authorization"] = authorization
	}
	return &Request{Method: "POST", Path: path, Headers: h, Adapter: "grpc"}
}

func runDecide(b *testing.B, a *Authorizer, r *Request, wantStatus int) {
	b.Helper()
	ctx := context.Background()
	if d := a.Decide(ctx, r); d.Status != wantStatus { // also warms the caches
		b.Fatalf("got %d %s, want %d", d.Status, d.Reason, wantStatus)
	}
	b.ReportAllocs()
	for b.Loop() {
		if d := a.Decide(ctx, r); d.Status != wantStatus {
			b.Fatalf("got %d %s", d.Status, d.Reason)
		}
	}
}

func BenchmarkDecideJWT(b *testing.B) {
	e := benchEnv(b)
	runDecide(b, e.a, benchRequest("/alpha/mcp", "Bearer "+e.mint("", "alice")), 200)
}

// BenchmarkDecideJWTNoAssertion is BenchmarkDecideJWT without the
// identity assertion: the decision alone.
func BenchmarkDecideJWTNoAssertion(b *testing.B) {
	e := newEnv(b, func(o *Options) { o.Logger = slog.New(slog.DiscardHandler); o.Assertions = nil })
	runDecide(b, e.a, benchRequest("/alpha/mcp", "Bearer "+e.mint("", "alice")), 200)
}

// BenchmarkDecideJWTAssertionUncached signs the assertion on every
// decision: what the cache saves.
func BenchmarkDecideJWTAssertionUncached(b *testing.B) {
	e := newEnv(b, func(o *Options) {
		o.Logger = slog.New(slog.DiscardHandler)
		o.Assertions = newSigner(b, func(ao *assertion.Options) { ao.NoCache = true })
	})
	runDecide(b, e.a, benchRequest("/alpha/mcp", "Bearer "+e.mint("", "alice")), 200)
}

func BenchmarkDecideJWTParallel(b *testing.B) {
	e := benchEnv(b)
	r := benchRequest("/alpha/mcp", "Bearer "+e.mint("", "alice"))
	ctx := context.Background()
	e.a.Decide(ctx, r)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if d := e.a.Decide(ctx, r); !d.Allow {
				b.Error(d.Reason)
				return
			}
		}
	})
}

func BenchmarkDecideAgentKey(b *testing.B) {
	e := benchEnv(b)
	k := e.addKey("bak", token.PrefixAgentKey, store.APIKey{Kind: store.KeyAgent, Agent: "alpha"})
	runDecide(b, e.a, benchRequest("/alpha/mcp", "Bearer "+k), 200)
}

func BenchmarkDecideUserKey(b *testing.B) {
	e := benchEnv(b)
	k := e.addKey("oag", token.PrefixUserKey, store.APIKey{Kind: store.KeyUser, User: "alice"})
	runDecide(b, e.a, benchRequest("/alpha/mcp", "Bearer "+k), 200)
}

func BenchmarkDecideNoCredential(b *testing.B) {
	e := benchEnv(b)
	runDecide(b, e.a, benchRequest("/alpha/mcp", ""), 401)
}

// BenchmarkDecideNoCredentialAudited is BenchmarkDecideNoCredential with
// the audit line every denial writes, through the gateway's JSON handler
// (to io.Discard): most of a 401's cost.
func BenchmarkDecideNoCredentialAudited(b *testing.B) {
	e := newEnv(b, func(o *Options) { o.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil)) })
	runDecide(b, e.a, benchRequest("/alpha/mcp", ""), 401)
}

func BenchmarkDecideBadSignature(b *testing.B) {
	e := benchEnv(b)
	bad := signWith(b, jwt.SigningMethodHS256, []byte("another-secret-that-is-long-enough-32"), "k1", baseClaims("alice"))
	runDecide(b, e.a, benchRequest("/alpha/mcp", "Bearer "+bad), 401)
}

// BenchmarkCheckGRPC is one Envoy-shaped Check over an in-process
// connection: protobuf encoding and gRPC framing included.
func BenchmarkCheckGRPC(b *testing.B) {
	e := benchEnv(b)
	lis := bufconn.Listen(1 << 20)
	s := NewGRPCServer(e.a)
	go func() { _ = s.Serve(lis) }()
	b.Cleanup(s.Stop)
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = conn.Close() })
	c := authv3.NewAuthorizationClient(conn)
	req := envoyCheckRequest("POST", "/alpha/mcp", "127.0.0.1:8000", auth(e.mint("", "alice")))
	ctx := context.Background()
	if r, err := c.Check(ctx, req); err != nil || r.GetOkResponse() == nil {
		b.Fatalf("%v %v", r, err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if r, err := c.Check(ctx, req); err != nil || r.GetOkResponse() == nil {
			b.Fatalf("%v %v", r, err)
		}
	}
}
