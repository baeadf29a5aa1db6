package authz

import (
	"context"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/mcpgateway/mcp-gateway/store"
	"github.com/mcpgateway/mcp-gateway/token"
)

// BenchmarkCheckServerSide is the server's share of one Check without the
// gRPC transport: decode the request bytes, answer, encode the response —
// for the gateway and for a no-op handler (the floor bench/noop serves).
// The difference is what the decision adds per Check.
func BenchmarkCheckServerSide(b *testing.B) {
	e := benchEnv(b)
	s := &checkServer{a: e.a}
	bak := e.addKey("bak", token.PrefixAgentKey, store.APIKey{Kind: store.KeyAgent, Agent: "alpha"})
	floor := func(context.Context, *authv3.CheckRequest) (*authv3.CheckResponse, error) {
		return &authv3.CheckResponse{
			Status:       &rpcstatus.Status{},
			HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{}},
		}, nil
	}
	for _, c := range []struct {
		name   string
		check  func(context.Context, *authv3.CheckRequest) (*authv3.CheckResponse, error)
		authz  map[string]string
		status int32
	}{
		{"floor", floor, auth(e.mint("", "alice")), 0},
		{"jwt", s.Check, auth(e.mint("", "alice")), 0},
		{"bak", s.Check, auth(bak), 0},
		{"none", s.Check, nil, 16},
	} {
		b.Run(c.name, func(b *testing.B) {
			raw, err := proto.Marshal(envoyCheckRequest("POST", "/alpha/mcp", "127.0.0.1:8000", c.authz))
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			once := func() []byte {
				var req authv3.CheckRequest
				if err := proto.Unmarshal(raw, &req); err != nil {
					b.Fatal(err)
				}
				resp, _ := c.check(ctx, &req)
				out, err := proto.Marshal(resp)
				if err != nil {
					b.Fatal(err)
				}
				return out
			}
			var resp authv3.CheckResponse // as the client sees it
			if err := proto.Unmarshal(once(), &resp); err != nil || resp.GetStatus().GetCode() != c.status {
				b.Fatalf("status %v, err %v", resp.GetStatus(), err)
			}
			b.ReportAllocs()
			for b.Loop() {
				once()
			}
		})
	}
}
