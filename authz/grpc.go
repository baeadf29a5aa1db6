package authz

import (
	"context"
	"runtime"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
)

// NewGRPCServer returns a gRPC server with the Envoy ext_authz
// Authorization service (envoy.service.auth.v3.Authorization/Check), the
// standard health service (SERVING while a.Ready(), for the whole server
// and for the Authorization service name) and server reflection.
//
// Check is registered by hand rather than through the generated
// RegisterAuthorizationServer so that its request and answer skip the
// message types: checkCodec reads the request straight into a checkRequest
// and writes the answer's bytes as they are (grpcreq.go, grpcwire.go).
// Clients see the standard service, descriptors included.
func NewGRPCServer(a *Authorizer, opts ...grpc.ServerOption) *grpc.Server {
	opts = append([]grpc.ServerOption{
		grpc.ForceServerCodecV2(newCheckCodec()),
		// Serve RPCs on long-lived goroutines: a new goroutine per Check
		// grew its stack on every call (newstack was an eighth of the
		// server's CPU under load). More in flight still get their own.
		grpc.NumStreamWorkers(uint32(runtime.GOMAXPROCS(0))),
	}, opts...)
	s := grpc.NewServer(opts...)
	s.RegisterService(&checkServiceDesc, &checkServer{a: a})
	hs := health.NewServer()
	healthpb.RegisterHealthServer(s, hs)
	a.watchReady(func(ready bool) {
		st := healthpb.HealthCheckResponse_NOT_SERVING
		if ready {
			st = healthpb.HealthCheckResponse_SERVING
		}
		hs.SetServingStatus("", st)
		hs.SetServingStatus(authv3.Authorization_ServiceDesc.ServiceName, st)
	})
	reflection.Register(s)
	return s
}

// checkServiceDesc is authv3.Authorization_ServiceDesc with its one method
// decoding into a checkRequest.
var checkServiceDesc = grpc.ServiceDesc{
	ServiceName: authv3.Authorization_ServiceDesc.ServiceName,
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Check",
		Handler:    checkHandler,
	}},
	Metadata: authv3.Authorization_ServiceDesc.Metadata,
}

var checkFullMethod = "/" + authv3.Authorization_ServiceDesc.ServiceName + "/Check"

func checkHandler(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
	c := &checkCall{req: wantingBody()}
	// Ask for the body: Envoy sends one only when with_request_body is
	// configured, and the tool policy reads it (policy.go).
	if err := dec(&c.req); err != nil {
		return nil, err
	}
	s := srv.(*checkServer)
	if interceptor == nil {
		return s.answer(ctx, &c.req, c), nil
	}
	info := &grpc.UnaryServerInfo{Server: srv, FullMethod: checkFullMethod}
	return interceptor(ctx, &c.req, info, func(ctx context.Context, req any) (any, error) {
		return s.answer(ctx, req.(*checkRequest), c), nil
	})
}

// checkCall is what one Check allocates besides what the request's
// decoding does: the request, the decision and the answer, in one object.
type checkCall struct {
	req checkRequest
	d   Decision
	ans checkAnswer
}

type checkServer struct{ a *Authorizer }

// check answers r (a checkCall of its own).
func (s *checkServer) check(ctx context.Context, r *checkRequest) *checkAnswer {
	return s.answer(ctx, r, &checkCall{})
}

// answer answers every request with a CheckResponse, never a Go error:
// Envoy treats a failed RPC per its failure_mode_allow setting, and a
// decision must not depend on that. c holds the decision and the answer.
func (s *checkServer) answer(ctx context.Context, r *checkRequest, c *checkCall) *checkAnswer {
	var span trace.Span // nil unless tracing is on (tracing.go)
	if s.a.tracer != nil {
		ctx, span = s.a.startGRPCCheckSpan(ctx, r)
	}
	req := Request{Method: r.method, Path: r.path, Headers: r.headers, Body: r.requestBody(), Adapter: "grpc"}
	if ext := r.extensions(); ext != nil { // v escapes: declared only when needed
		if v, ok := ext[ContextExtensionAgent]; ok {
			req.RouteAgent = &v
		}
	}
	d := &c.d
	s.a.decideInto(ctx, &req, d)
	if span != nil {
		endCheckSpan(span, d, grpcStatusKey, int(grpcCode(d.Status)))
	}
	c.ans.bufs[0] = answerBuffer(d, &c.ans.own)
	return &c.ans
}

// grpcCode is the CheckResponse status for a decision. Envoy denies on any
// non-OK code and answers with the DeniedHttpResponse status.
func grpcCode(status int) codes.Code {
	switch status {
	case 200:
		return codes.OK
	case 401:
		return codes.Unauthenticated
	case 404:
		return codes.NotFound
	case 429:
		return codes.ResourceExhausted
	case 503:
		return codes.Unavailable
	default:
		return codes.PermissionDenied
	}
}
