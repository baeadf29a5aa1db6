// Command noop is the benchmark floor: an Envoy ext_authz Check server that
// answers at once, with health and reflection registered like the gateway's.
//
// By default it is a plain grpc.NewServer() answering an empty OK: the
// cheapest Check a default gRPC server can give, and the floor the
// benchmark's target is measured against.
//
// With -tuned it uses the transport the gateway uses (authz.NewGRPCServer):
// stream workers, and a codec that hands the Check its request bytes
// undecoded and sends its answer bytes as they are. A no-op needs nothing
// from the request, so it decodes none of it: the least any server on this
// transport can do per Check.
//
// With -answers it answers each request with a canned response chosen by
// the request's authorization header — bench/run.sh records the gateway's
// own answers there — so the gap between it and the gateway is the decision
// alone, without the cost of carrying the answer Envoy needs (identity
// headers, challenge, denial metadata) through gRPC and the load generator.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	protoenc "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/reflection"
	"google.golang.org/protobuf/proto"
)

// answer is one canned Check answer in the wire format.
type answer struct {
	authorization string
	wire          []byte
}

type noop struct {
	authv3.UnimplementedAuthorizationServer
	answers []answer // read-only
	// msgs are the answers as messages for the plain server: the wire
	// form as the unknown fields of an empty message, as the gateway used
	// to send its own, so marshalling one costs a copy.
	msgs map[string]*authv3.CheckResponse
}

var emptyOK = &authv3.CheckResponse{
	Status:       &rpcstatus.Status{},
	HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{}},
}

// Check (plain server) answers with the canned response for the request's
// authorization header, or allows with an empty OkHttpResponse.
func (n *noop) Check(_ context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	if a, ok := n.msgs[req.GetAttributes().GetRequest().GetHttp().GetHeaders()["authorization"]]; ok {
		return a, nil
	}
	return emptyOK, nil
}

// rawCheck is a Check request the tuned server leaves undecoded; raw is
// kept only when there are canned answers to choose from.
type rawCheck struct{ raw []byte }

// rawAnswer is an answer in the wire format, sent as it is.
type rawAnswer struct{ wire []byte }

var emptyOKWire = func() []byte {
	b, err := proto.Marshal(emptyOK)
	if err != nil {
		panic(err)
	}
	return b
}()

// checkRaw (tuned server) picks the canned answer whose authorization value
// the request bytes contain; a request without a recorded one gets the
// answer recorded for no authorization header, else an empty OK.
func (n *noop) checkRaw(r *rawCheck) *rawAnswer {
	fallback := emptyOKWire
	for _, a := range n.answers {
		if a.authorization == "" {
			fallback = a.wire
		} else if bytes.Contains(r.raw, []byte(a.authorization)) {
			return &rawAnswer{a.wire}
		}
	}
	return &rawAnswer{fallback}
}

// tunedCodec is the standard codec except for the Check's request and answer.
type tunedCodec struct {
	encoding.CodecV2
	keep bool // keep the request bytes
}

func (c tunedCodec) Unmarshal(data mem.BufferSlice, v any) error {
	r, ok := v.(*rawCheck)
	if !ok {
		return c.CodecV2.Unmarshal(data, v)
	}
	if c.keep {
		r.raw = data.Materialize()
	}
	return nil
}

func (c tunedCodec) Marshal(v any) (mem.BufferSlice, error) {
	if a, ok := v.(*rawAnswer); ok {
		return mem.BufferSlice{mem.SliceBuffer(a.wire)}, nil
	}
	return c.CodecV2.Marshal(v)
}

func main() {
	addr := flag.String("listen", "127.0.0.1:19192", "gRPC listen address")
	answers := flag.String("answers", "", "file of canned answers: lines of <authorization header>TAB<CheckResponse wire-format file>")
	tuned := flag.Bool("tuned", false, "use the gateway's transport: stream workers, Check request and answer left in the wire format")
	flag.Parse()
	n := &noop{}
	if *answers != "" {
		var err error
		if n.answers, err = loadAnswers(*answers); err != nil {
			fmt.Fprintln(os.Stderr, "noop:", err)
			os.Exit(1)
		}
	}
	if err := run(*addr, n, *tuned); err != nil {
		fmt.Fprintln(os.Stderr, "noop:", err)
		os.Exit(1)
	}
}

// loadAnswers reads the canned answers, each checked to be a CheckResponse.
func loadAnswers(path string) ([]answer, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []answer
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
		out = append(out, answer{authz, b})
	}
	return out, nil
}

// newServer is the floor's gRPC server with the services the gateway
// registers: Authorization, health, reflection.
func newServer(n *noop, tuned bool) *grpc.Server {
	var s *grpc.Server
	if tuned {
		s = grpc.NewServer(
			grpc.ForceServerCodecV2(tunedCodec{encoding.GetCodecV2(protoenc.Name), len(n.answers) > 0}),
			grpc.NumStreamWorkers(uint32(runtime.GOMAXPROCS(0))),
		)
		s.RegisterService(&grpc.ServiceDesc{
			ServiceName: authv3.Authorization_ServiceDesc.ServiceName,
			HandlerType: (*any)(nil),
			Methods: []grpc.MethodDesc{{MethodName: "Check", Handler: func(_ any, _ context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
				var r rawCheck
				if err := dec(&r); err != nil {
					return nil, err
				}
				return n.checkRaw(&r), nil
			}}},
			Metadata: authv3.Authorization_ServiceDesc.Metadata,
		}, n)
	} else {
		n.msgs = map[string]*authv3.CheckResponse{}
		for _, a := range n.answers {
			m := &authv3.CheckResponse{}
			m.ProtoReflect().SetUnknown(a.wire)
			n.msgs[a.authorization] = m
		}
		s = grpc.NewServer()
		authv3.RegisterAuthorizationServer(s, n)
	}
	hs := health.NewServer()
	hs.SetServingStatus(authv3.Authorization_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(s, hs)
	reflection.Register(s)
	return s
}

func run(addr string, n *noop, tuned bool) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	s := newServer(n, tuned)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		s.GracefulStop()
	}()
	slog.Info("noop Check server listening", "addr", ln.Addr().String(), "tuned", tuned, "answers", len(n.answers))
	return s.Serve(ln)
}
