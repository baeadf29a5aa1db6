package authz

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"

	"github.com/mcpgateway/mcp-gateway/internal/tracing"
	"github.com/mcpgateway/mcp-gateway/store"
	"github.com/mcpgateway/mcp-gateway/token"
)

// A client's trace context, as Envoy forwards it, and another one (Envoy's
// own ext_authz client span, sent in the RPC's metadata).
const (
	clientTrace  = "4bf92f3577b34da6a3ce929d0e0e4736"
	clientSpan   = "00f067aa0ba902b7"
	clientParent = "00-" + clientTrace + "-" + clientSpan + "-01"
	envoyTrace   = "0af7651916cd43dd8448eb211c80319c"
	envoySpan    = "b7ad6b7169203331"
	envoyParent  = "00-" + envoyTrace + "-" + envoySpan + "-01"
)

// tracedEnv is an env whose Authorizer traces into a span recorder.
func tracedEnv(t testing.TB) (*env, *tracetest.SpanRecorder) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	e := newEnv(t, func(o *Options) { o.Tracer = tracing.NewProvider(tp).Tracer() })
	return e, rec
}

// attrs is a span's attributes by key.
func attrs(s sdktrace.ReadOnlySpan) map[attribute.Key]attribute.Value {
	m := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes() {
		m[kv.Key] = kv.Value
	}
	return m
}

// checkSpan asserts the one ended span's parent and decision attributes,
// and that no attribute holds any of secrets.
func checkSpan(t *testing.T, rec *tracetest.SpanRecorder, traceID, parentID string, want map[attribute.Key]string, secrets ...string) {
	t.Helper()
	spans := rec.Ended()
	if len(spans) != 1 {
		t.Fatalf("%d spans, want 1", len(spans))
	}
	s := spans[0]
	if s.SpanKind() != trace.SpanKindServer {
		t.Errorf("span kind %v", s.SpanKind())
	}
	if got := s.SpanContext().TraceID().String(); got != traceID {
		t.Errorf("trace id %s, want %s (the caller's trace continued)", got, traceID)
	}
	if got := s.Parent().SpanID().String(); got != parentID || !s.Parent().IsRemote() {
		t.Errorf("parent span %s (remote %v), want remote %s", got, s.Parent().IsRemote(), parentID)
	}
	got := attrs(s)
	for k, v := range want {
		if got[k].Emit() != v {
			t.Errorf("attribute %s = %q, want %q", k, got[k].Emit(), v)
		}
	}
	for k, v := range got {
		for _, sec := range secrets {
			if sec != "" && strings.Contains(v.Emit(), sec) {
				t.Errorf("attribute %s carries a credential: %q", k, v.Emit())
			}
		}
	}
}

// grpcCheck runs one Check as NewGRPCServer does: wire bytes through
// checkCodec into checkServer.check.
func grpcCheck(t *testing.T, e *env, ctx context.Context, req *authv3.CheckRequest) {
	t.Helper()
	var r checkRequest
	if err := newCheckCodec().Unmarshal(mem.BufferSlice{mem.SliceBuffer(marshal(t, req))}, &r); err != nil {
		t.Fatal(err)
	}
	(&checkServer{a: e.a}).check(ctx, &r)
}

func TestCheckSpanContinuesTraceparent(t *testing.T) {
	e, rec := tracedEnv(t)
	jwt := e.mint("", "alice")
	h := auth(jwt)
	h["traceparent"] = clientParent
	grpcCheck(t, e, context.Background(), envoyCheckRequest("POST", "/alpha/mcp", "gw.example", h))
	checkSpan(t, rec, clientTrace, clientSpan, map[attribute.Key]string{
		tracing.AttrDecision: "allow", tracing.AttrReason: "ok", tracing.AttrAgent: "alpha",
		tracing.AttrCredential: CredOAuth, tracing.AttrAdapter: "grpc", grpcStatusKey: "0",
	}, jwt)
	if n := rec.Ended()[0].Name(); n != "envoy.service.auth.v3.Authorization/Check" {
		t.Errorf("span name %q", n)
	}
}

func TestCheckSpanDenyAttributes(t *testing.T) {
	e, rec := tracedEnv(t)
	bak := e.addKey("bak", token.PrefixAgentKey, store.APIKey{Kind: store.KeyAgent, Agent: "alpha"})
	h := auth(bak)
	h["traceparent"] = clientParent
	// The key is for alpha, the request for bravo: a 403.
	grpcCheck(t, e, context.Background(), envoyCheckRequest("POST", "/bravo/mcp", "gw.example", h))
	checkSpan(t, rec, clientTrace, clientSpan, map[attribute.Key]string{
		tracing.AttrDecision: "deny", tracing.AttrReason: ReasonForbidden, tracing.AttrAgent: "bravo",
		tracing.AttrCredential: CredAgent, grpcStatusKey: "7",
	}, bak, bak[len(bak)-16:])
}

// TestCheckSpanPrefersEnvoySpan: with tracing on, Envoy sends its own
// ext_authz client span in the RPC's metadata; the Check is its child.
func TestCheckSpanPrefersEnvoySpan(t *testing.T) {
	e, rec := tracedEnv(t)
	h := map[string]string{"traceparent": clientParent}
	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("traceparent", envoyParent))
	grpcCheck(t, e, ctx, envoyCheckRequest("POST", "/alpha/mcp", "gw.example", h))
	checkSpan(t, rec, envoyTrace, envoySpan, map[attribute.Key]string{
		tracing.AttrDecision: "deny", tracing.AttrReason: ReasonMissingCredential, tracing.AttrCredential: CredNone,
	})
}

// TestCheckSpanOverGRPC: the same through a real gRPC server and client.
func TestCheckSpanOverGRPC(t *testing.T) {
	e, rec := tracedEnv(t)
	jwt := e.mint("", "alice")
	h := auth(jwt)
	h["traceparent"] = clientParent
	c := startGRPC(t, e.a)
	resp, err := c.Check(context.Background(), envoyCheckRequest("POST", "/alpha/mcp", "gw.example", h))
	if err != nil || resp.GetStatus().GetCode() != 0 {
		t.Fatalf("Check: %v %v", resp.GetStatus(), err)
	}
	checkSpan(t, rec, clientTrace, clientSpan, map[attribute.Key]string{
		tracing.AttrDecision: "allow", tracing.AttrAgent: "alpha", tracing.AttrCredential: CredOAuth,
	}, jwt)
}

func TestHTTPCheckSpan(t *testing.T) {
	e, rec := tracedEnv(t)
	jwt := e.mint("", "alice")
	req := httptest.NewRequest("GET", CheckPath, nil)
	req.Header.Set("X-Original-URI", "/alpha/mcp")
	req.Header.Set("X-Original-Method", "POST")
	req.Header.Set("Authorization", "Bearer "+jwt+"x") // a bad signature
	req.Header.Set("Traceparent", clientParent)
	w := httptest.NewRecorder()
	HTTPCheckHandler(e.a).ServeHTTP(w, req)
	if w.Code != http.StatusUnauthorized {
		t.Fatalf("status %d", w.Code)
	}
	checkSpan(t, rec, clientTrace, clientSpan, map[attribute.Key]string{
		tracing.AttrDecision: "deny", tracing.AttrReason: "invalid_token", tracing.AttrAgent: "alpha",
		tracing.AttrCredential: CredOAuth, tracing.AttrAdapter: "http", httpStatusKey: "401",
	}, jwt[:20], jwt[len(jwt)-20:])
	if n := rec.Ended()[0].Name(); n != "GET /authz/check" {
		t.Errorf("span name %q", n)
	}
}

// TestCheckSpanWithoutParent: no traceparent starts a new trace (a root).
func TestCheckSpanWithoutParent(t *testing.T) {
	e, rec := tracedEnv(t)
	grpcCheck(t, e, context.Background(), envoyCheckRequest("POST", "/alpha/mcp", "gw.example", map[string]string{"traceparent": "garbage"}))
	spans := rec.Ended()
	if len(spans) != 1 || spans[0].Parent().IsValid() || !spans[0].SpanContext().IsValid() {
		t.Fatalf("spans %v", spans)
	}
}

// TestCheckUntracedAllocs: with tracing off the Check allocates exactly
// what it did without tracing code (the count BenchmarkCheckServerSide
// gateway/jwt reports).
func TestCheckUntracedAllocs(t *testing.T) {
	e := newEnv(t)
	h := auth(e.mint("", "alice"))
	h["traceparent"] = clientParent
	raw := marshal(t, envoyCheckRequest("POST", "/alpha/mcp", "gw.example", h))
	s := &checkServer{a: e.a}
	codec := newCheckCodec()
	var n float64
	run := func() {
		var r checkRequest
		if err := codec.Unmarshal(mem.BufferSlice{mem.SliceBuffer(raw)}, &r); err != nil {
			t.Fatal(err)
		}
		out, _ := codec.Marshal(s.check(context.Background(), &r))
		out.Free() // as gRPC does once written: a pooled answer goes back
	}
	run()
	n = testing.AllocsPerRun(200, run)
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())
	e.a.tracer = tp.Tracer("t")
	traced := testing.AllocsPerRun(200, run)
	e.a.tracer = nil
	if again := testing.AllocsPerRun(200, run); again != n || traced <= n {
		t.Fatalf("allocations: off %v, on %v, off again %v", n, traced, again)
	}
	t.Logf("allocations per Check: tracing off %v, on %v", n, traced)
}

// BenchmarkCheckTraced is BenchmarkCheckServerSide's gateway/jwt with
// tracing on, spans recorded but sent nowhere: the SDK's price per Check.
func BenchmarkCheckTraced(b *testing.B) {
	e := benchEnv(b)
	tp := sdktrace.NewTracerProvider() // spans recorded, sent nowhere
	b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	e.a.tracer = tp.Tracer("bench")
	h := auth(e.mint("", "alice"))
	h["traceparent"] = clientParent
	raw := marshal(b, envoyCheckRequest("POST", "/alpha/mcp", "127.0.0.1:8000", h))
	s := &checkServer{a: e.a}
	codec := newCheckCodec()
	b.ReportAllocs()
	for b.Loop() {
		var r checkRequest
		if err := codec.Unmarshal(mem.BufferSlice{mem.SliceBuffer(raw)}, &r); err != nil {
			b.Fatal(err)
		}
		out, _ := codec.Marshal(s.check(context.Background(), &r))
		out.Free()
	}
}

// TestCheckSpanStoreDown: a 503 (store unreachable) is the gateway's
// failure, so its span is an error; a denial is not.
func TestCheckSpanStoreDown(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	e, f, _ := flakyEnv(t, func(o *Options) { o.Tracer = tp.Tracer("t") })
	oag := e.addKey("oag", token.PrefixUserKey, store.APIKey{Kind: store.KeyUser, User: "alice"})
	f.down.Store(true)
	h := auth(oag)
	h["traceparent"] = clientParent
	grpcCheck(t, e, context.Background(), envoyCheckRequest("POST", "/alpha/mcp", "gw.example", h))
	checkSpan(t, rec, clientTrace, clientSpan, map[attribute.Key]string{
		tracing.AttrDecision: "error", tracing.AttrReason: ReasonUnavailable, tracing.AttrCredential: CredUser,
		grpcStatusKey: "14",
	}, oag)
	if st := rec.Ended()[0].Status(); st.Code != otelcodes.Error {
		t.Errorf("span status %v, want Error", st)
	}
	rec.Reset()
	f.down.Store(false)
	grpcCheck(t, e, context.Background(), envoyCheckRequest("POST", "/alpha/mcp", "gw.example", map[string]string{"traceparent": clientParent}))
	if st := rec.Ended()[0].Status(); st.Code == otelcodes.Error {
		t.Errorf("a denial's span is an error: %v", st)
	}
}

// TestTracingDecider: dev mode's proxy decides in process; with tracing on
// each decision is a span continuing the request's traceparent.
func TestTracingDecider(t *testing.T) {
	if d := newEnv(t).a; d.TracingDecider() != Decider(d) {
		t.Fatal("tracing off: the decider is wrapped")
	}
	e, rec := tracedEnv(t)
	jwt := e.mint("", "alice")
	h := map[string]string{"authorization": "Bearer " + jwt, "traceparent": clientParent}
	d := e.a.TracingDecider().Decide(context.Background(), &Request{
		Method: "POST", Path: "/alpha/mcp", Adapter: "proxy",
		Header: func(name string) string { return h[name] },
	})
	if !d.Allow {
		t.Fatalf("decision %v", d.Reason)
	}
	checkSpan(t, rec, clientTrace, clientSpan, map[attribute.Key]string{
		tracing.AttrDecision: "allow", tracing.AttrAgent: "alpha", tracing.AttrCredential: CredOAuth,
		tracing.AttrAdapter: "proxy", httpStatusKey: "200",
	}, jwt)
	if n := rec.Ended()[0].Name(); n != "POST /{agent}/mcp" {
		t.Errorf("span name %q", n)
	}
}
