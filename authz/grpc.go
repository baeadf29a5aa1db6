package authz

import (
	"context"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
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
func NewGRPCServer(a *Authorizer, opts ...grpc.ServerOption) *grpc.Server {
	s := grpc.NewServer(opts...)
	authv3.RegisterAuthorizationServer(s, &checkServer{a: a})
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

type checkServer struct {
	authv3.UnimplementedAuthorizationServer
	a *Authorizer
}

// Check answers every request with a CheckResponse, never a Go error:
// Envoy treats a failed RPC per its failure_mode_allow setting, and a
// decision must not depend on that.
func (s *checkServer) Check(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	h := req.GetAttributes().GetRequest().GetHttp()
	headers := h.GetHeaders()
	if len(headers) == 0 && len(h.GetHeaderMap().GetHeaders()) > 0 {
		headers = rawHeaders(h.GetHeaderMap())
	}
	path := h.GetPath()
	if path == "" {
		path = headers[":path"]
	}
	method := h.GetMethod()
	if method == "" {
		method = headers[":method"]
	}
	if headers == nil {
		headers = map[string]string{} // Headers == nil would mean "use Header"
	}
	d := s.a.Decide(ctx, &Request{Method: method, Path: path, Headers: headers, Adapter: "grpc"})
	return checkResponse(d), nil
}

// rawHeaders flattens header_map (sent instead of headers when Envoy's
// encode_raw_headers is on) the way Envoy builds headers: lower-case keys,
// repeated values joined with ",".
func rawHeaders(m *corev3.HeaderMap) map[string]string {
	out := make(map[string]string, len(m.GetHeaders()))
	for _, hv := range m.GetHeaders() {
		k := strings.ToLower(hv.GetKey())
		v := hv.GetValue()
		if len(hv.GetRawValue()) > 0 {
			v = string(hv.GetRawValue())
		}
		if old, ok := out[k]; ok {
			v = old + "," + v
		}
		out[k] = v
	}
	return out
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
	case 503:
		return codes.Unavailable
	default:
		return codes.PermissionDenied
	}
}
