// Command noop is the benchmark floor: an Envoy ext_authz Check server that
// answers at once, with the same gRPC build and server options as the
// gateway's (grpc.NewServer with no options, health and reflection on).
//
// By default it answers an empty OK: the cheapest possible Check. With
// -answers it answers each request with a canned response chosen by the
// request's authorization header — bench/run.sh records the gateway's own
// answers there — so the gap between it and the gateway is the decision
// alone, without the cost of carrying the answer Envoy needs (identity
// headers, challenge, dynamic metadata) through gRPC and the load generator.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	"google.golang.org/protobuf/proto"
)

type noop struct {
	authv3.UnimplementedAuthorizationServer
	answers map[string]*authv3.CheckResponse // by authorization header; read-only
}

// Check answers with the canned response for the request's authorization
// header, or allows with an empty OkHttpResponse: the least a real server
// can answer. Canned responses are shared: gRPC only reads them.
func (n *noop) Check(_ context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	if n.answers != nil {
		if a, ok := n.answers[req.GetAttributes().GetRequest().GetHttp().GetHeaders()["authorization"]]; ok {
			return a, nil
		}
	}
	return &authv3.CheckResponse{
		Status:       &rpcstatus.Status{},
		HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{}},
	}, nil
}

func main() {
	addr := flag.String("listen", "127.0.0.1:19192", "gRPC listen address")
	answers := flag.String("answers", "", "file of canned answers: lines of <authorization header>TAB<CheckResponse wire-format file>")
	flag.Parse()
	n := &noop{}
	if *answers != "" {
		var err error
		if n.answers, err = loadAnswers(*answers); err != nil {
			fmt.Fprintln(os.Stderr, "noop:", err)
			os.Exit(1)
		}
	}
	if err := run(*addr, n); err != nil {
		fmt.Fprintln(os.Stderr, "noop:", err)
		os.Exit(1)
	}
}

// loadAnswers reads the canned answers. Each is kept in the wire format as
// the unknown fields of an empty message, as the gateway sends its own, so
// marshalling it costs the same copy.
func loadAnswers(path string) (map[string]*authv3.CheckResponse, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := map[string]*authv3.CheckResponse{}
	for line := range strings.Lines(string(raw)) {
		line = strings.TrimRight(line, "\r\n") // not TrimSpace: a line may start with the empty header's tab
		if line == "" {
			continue
		}
		authz, file, ok := strings.Cut(line, "\t")
		if !ok {
			return nil, fmt.Errorf("%s: line %q: want <authorization>TAB<file>", path, line)
		}
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		var check authv3.CheckResponse
		if err := proto.Unmarshal(b, &check); err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		resp := &authv3.CheckResponse{}
		resp.ProtoReflect().SetUnknown(b)
		out[authz] = resp
	}
	return out, nil
}

// newServer is grpc.NewServer() with the services the gateway registers:
// Authorization, health, reflection.
func newServer(n *noop) *grpc.Server {
	s := grpc.NewServer()
	authv3.RegisterAuthorizationServer(s, n)
	hs := health.NewServer()
	hs.SetServingStatus(authv3.Authorization_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(s, hs)
	reflection.Register(s)
	return s
}

func run(addr string, n *noop) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	s := newServer(n)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		s.GracefulStop()
	}()
	slog.Info("noop Check server listening", "addr", ln.Addr().String())
	return s.Serve(ln)
}
