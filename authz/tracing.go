package authz

import (
	"context"
	"net/http"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/metadata"

	"github.com/mcpgateway/mcp-gateway/internal/tracing"
)

// Tracing is off when Options.Tracer is nil: the adapters then test one
// pointer and do nothing else, so a Check costs what it did before
// (BenchmarkCheckServerSide). On, each Check is one server span continuing
// the caller's W3C trace context, with the decision as attributes; the
// decision itself (Decide) is untouched.

// w3c reads traceparent and tracestate.
var w3c propagation.TraceContext

var (
	authv3ServiceName = authv3.Authorization_ServiceDesc.ServiceName
	checkSpanName     = authv3ServiceName + "/Check"
)

// traceparentCarrier hands the propagator the traceparent the request
// decoder already kept (checkRequest.traceparent): no header is parsed twice.
type traceparentCarrier string

func (c traceparentCarrier) Get(key string) string {
	if key == headerTraceparent {
		return string(c)
	}
	return ""
}
func (traceparentCarrier) Set(string, string) {}
func (traceparentCarrier) Keys() []string     { return []string{headerTraceparent} }

// mdCarrier reads gRPC request metadata.
type mdCarrier metadata.MD

func (c mdCarrier) Get(key string) string {
	if v := metadata.MD(c).Get(key); len(v) > 0 {
		return v[0]
	}
	return ""
}
func (mdCarrier) Set(string, string) {}
func (c mdCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

// startGRPCCheckSpan starts the Check's span. Its parent is the trace
// context in the RPC's own metadata when there is one (Envoy with tracing
// on sends its ext_authz client span there), else the traceparent of the
// client request the CheckRequest carries.
func (a *Authorizer) startGRPCCheckSpan(ctx context.Context, r *checkRequest) (context.Context, trace.Span) {
	parent := ctx
	if md, ok := metadata.FromIncomingContext(ctx); ok && len(md.Get(headerTraceparent)) > 0 {
		parent = w3c.Extract(ctx, mdCarrier(md))
	}
	if !trace.SpanContextFromContext(parent).IsValid() {
		if tp := r.traceparent(); tp != "" {
			parent = w3c.Extract(ctx, traceparentCarrier(tp))
		}
	}
	return a.tracer.Start(parent, checkSpanName, trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(
			attribute.String("rpc.system", "grpc"),
			attribute.String("rpc.service", authv3ServiceName),
			attribute.String("rpc.method", "Check"),
			tracing.AttrAdapter.String("grpc"),
		))
}

// startHTTPCheckSpan starts the HTTP check adapter's span, continuing the
// trace context of the request's headers (nginx auth_request copies the
// client's; Envoy's http_service sends its own).
func (a *Authorizer) startHTTPCheckSpan(r *http.Request) (context.Context, trace.Span) {
	parent := w3c.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	method := tracing.Method(r.Method)
	return a.tracer.Start(parent, method+" "+CheckPath, trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(
			attribute.String("http.request.method", method),
			attribute.String("http.route", CheckPath),
			tracing.AttrAdapter.String("http"),
		))
}

// endCheckSpan records the decision on span and ends it. status is what
// the adapter answers (gRPC code or HTTP status), under key.
func endCheckSpan(span trace.Span, d *Decision, key attribute.Key, status int) {
	dec := "deny" // as the decisions metric labels it
	switch {
	case d.Allow:
		dec = "allow"
	case d.Reason == ReasonUnavailable:
		dec = "error"
	}
	attrs := []attribute.KeyValue{
		tracing.AttrDecision.String(dec),
		tracing.AttrReason.String(d.Reason),
		tracing.AttrCredential.String(d.Identity.Credential),
		key.Int(status),
	}
	if d.Identity.Agent != "" { // validated by AgentFromPath: [A-Za-z0-9._-]{1,128}
		attrs = append(attrs, tracing.AttrAgent.String(d.Identity.Agent))
	}
	span.SetAttributes(attrs...)
	if d.Status == http.StatusServiceUnavailable {
		// The gateway failed (store unreachable); a denial is not an error.
		span.SetStatus(codes.Error, d.Reason)
	}
	span.End()
}

// grpcStatusKey is the gRPC answer's status attribute.
const grpcStatusKey = attribute.Key("rpc.grpc.status_code")

// httpStatusKey is the HTTP check's answer status attribute.
const httpStatusKey = attribute.Key("http.response.status_code")

// A Decider decides requests in process.
type Decider interface {
	Decide(ctx context.Context, r *Request) *Decision
}

// TracingDecider is a for in-process callers (dev mode's proxy): with
// tracing on, each decision is a server span continuing the request's
// traceparent (adapter "proxy"); off, a itself.
func (a *Authorizer) TracingDecider() Decider {
	if a.tracer == nil {
		return a
	}
	return tracingDecider{a}
}

type tracingDecider struct{ a *Authorizer }

// agentRoute is the route of every MCP endpoint, as spans name it.
const agentRoute = "/{agent}/mcp"

func (t tracingDecider) Decide(ctx context.Context, r *Request) *Decision {
	var tp string
	switch {
	case r.Headers != nil:
		tp = r.Headers[headerTraceparent]
	case r.Header != nil:
		tp = r.Header(headerTraceparent)
	}
	if tp != "" {
		ctx = w3c.Extract(ctx, traceparentCarrier(tp))
	}
	method := tracing.Method(r.Method)
	ctx, span := t.a.tracer.Start(ctx, method+" "+agentRoute, trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(
			attribute.String("http.request.method", method),
			attribute.String("http.route", agentRoute),
			tracing.AttrAdapter.String("proxy"),
		))
	d := t.a.Decide(ctx, r)
	endCheckSpan(span, d, httpStatusKey, d.Status)
	return d
}
