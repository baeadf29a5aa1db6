package main

import (
	"context"
	"encoding/hex"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/mcpgateway/mcp-gateway/internal/logtest"
)

// otlpReceiver is an OTLP/gRPC collector: the standard TraceService,
// keeping every span it is sent with its resource's attributes.
type otlpReceiver struct {
	coltracepb.UnimplementedTraceServiceServer
	mu    sync.Mutex
	spans []receivedSpan
}

type receivedSpan struct {
	span     *tracepb.Span
	resource map[string]string
}

func (r *otlpReceiver) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		res := kvs(rs.GetResource().GetAttributes())
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				r.spans = append(r.spans, receivedSpan{span: s, resource: res})
			}
		}
	}
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

func (r *otlpReceiver) received() []receivedSpan {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]receivedSpan(nil), r.spans...)
}

func kvs(attrs []*commonpb.KeyValue) map[string]string {
	m := map[string]string{}
	for _, kv := range attrs {
		v := kv.GetValue()
		switch {
		case v.GetStringValue() != "":
			m[kv.GetKey()] = v.GetStringValue()
		default:
			m[kv.GetKey()] = strings.TrimSpace(v.String())
		}
	}
	return m
}

// startReceiver serves an otlpReceiver on a loopback port.
func startReceiver(t *testing.T) (*otlpReceiver, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rcv := &otlpReceiver{}
	s := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(s, rcv)
	go func() { _ = s.Serve(ln) }()
	t.Cleanup(s.Stop)
	return rcv, ln.Addr().String()
}

// TestDevExportsSpansOverOTLP runs dev mode configured for tracing through
// the OTEL_* environment only, sends a gRPC Check, an HTTP check, a
// metadata request and an MCP request through the gate, each with a client
// traceparent, stops the gateway (which flushes) and reads what a real
// OTLP/gRPC collector received.
func TestDevExportsSpansOverOTLP(t *testing.T) {
	rcv, collector := startReceiver(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+collector) // http: plaintext gRPC
	t.Setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=otlp-test")
	t.Setenv("OTEL_SDK_DISABLED", "")
	t.Setenv("OTEL_TRACES_EXPORTER", "")
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "")
	t.Setenv("MCPGW_CONFIG", "")
	t.Setenv("MCPGW_ADMIN_TOKEN", "")
	t.Setenv("MCPGW_DEV_PASSWORD", "tracing-test-pw")
	listen, admin, grpcAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var out logtest.Buffer
	go func() {
		done <- runDev(ctx, []string{"--listen", listen, "--admin", admin, "--grpc", grpcAddr, "--shutdown-timeout", "2s"}, &out)
	}()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			stop()
			<-done
		}
	})
	for end := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if resp, err := http.Get("http://" + admin + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(end) {
			t.Fatalf("dev mode never became ready\n%s", out.String())
		}
	}

	const (
		traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
		parent  = "00-" + traceID + "-00f067aa0ba902b7-01"
		bogus   = "mcpgw-bogus-credential-0123456789"
	)
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hv := func(k, v string) *corev3.HeaderValue { return &corev3.HeaderValue{Key: k, Value: v} }
	resp, err := authv3.NewAuthorizationClient(conn).Check(context.Background(), &authv3.CheckRequest{
		Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: "POST", Path: "/demo/mcp",
			HeaderMap: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
				hv(":path", "/demo/mcp"), hv(":method", "POST"), hv("traceparent", parent), hv("authorization", "Bearer "+bogus),
			}},
		}}},
	})
	if err != nil || resp.GetStatus().GetCode() == 0 {
		t.Fatalf("Check: %v %v", resp.GetStatus(), err)
	}
	for _, path := range []string{"/.well-known/oauth-authorization-server", "/authz/check/demo/mcp", "/demo/mcp"} {
		req, _ := http.NewRequest(http.MethodGet, "http://"+listen+path, nil)
		req.Header.Set("Traceparent", parent)
		req.Header.Set("Authorization", "Bearer "+bogus)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("dev mode: %v", err)
	}
	stopped = true

	byName := map[string]receivedSpan{}
	for _, s := range rcv.received() {
		byName[s.span.GetName()] = s
	}
	want := map[string]map[string]string{
		"envoy.service.auth.v3.Authorization/Check": {
			"mcp_gateway.decision": "deny", "mcp_gateway.reason": "invalid_token",
			"mcp_gateway.agent": "demo", "mcp_gateway.credential": "oauth", "mcp_gateway.adapter": "grpc",
		},
		"GET /authz/check": {"mcp_gateway.decision": "deny", "mcp_gateway.agent": "demo", "mcp_gateway.adapter": "http"},
		"GET /.well-known/oauth-authorization-server": {"mcp_gateway.endpoint": "as_metadata"},
		"GET /{agent}/mcp":                            {"mcp_gateway.decision": "deny", "mcp_gateway.agent": "demo", "mcp_gateway.adapter": "proxy"},
	}
	for name, attrs := range want {
		s, ok := byName[name]
		if !ok {
			t.Errorf("the collector got no span %q; got %d spans\n%s", name, len(byName), out.String())
			continue
		}
		if got := hex.EncodeToString(s.span.GetTraceId()); got != traceID {
			t.Errorf("%s: trace id %s, want the client's %s", name, got, traceID)
		}
		if got := hex.EncodeToString(s.span.GetParentSpanId()); got != "00f067aa0ba902b7" {
			t.Errorf("%s: parent %s", name, got)
		}
		got := kvs(s.span.GetAttributes())
		for k, v := range attrs {
			if got[k] != v {
				t.Errorf("%s: %s = %q, want %q", name, k, got[k], v)
			}
		}
		for k, v := range got {
			if strings.Contains(v, bogus) {
				t.Errorf("%s: attribute %s carries the credential", name, k)
			}
		}
		if s.resource["service.name"] != "mcp-gateway" || s.resource["deployment.environment.name"] != "otlp-test" {
			t.Errorf("%s: resource %v", name, s.resource)
		}
	}
}
