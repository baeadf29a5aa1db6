package authz

import (
	"context"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	"github.com/mcpgateway/mcp-gateway/store"
	"github.com/mcpgateway/mcp-gateway/token"
)

// BenchmarkCheckServerSide is the server's share of one Check without the
// gRPC transport: decode the request bytes, answer, encode the answer.
//   - floor: the standard codec and an empty OK, what bench/noop does;
//   - messages/<cred>: the standard codec, Decide, and the answer built as
//     messages (how the gateway worked before checkCodec);
//   - gateway/<cred>: checkCodec and checkHandler, as NewGRPCServer serves
//     the Check, the answer freed once "written" as gRPC does.
func BenchmarkCheckServerSide(b *testing.B) {
	e := benchEnv(b)
	s := &checkServer{a: e.a}
	bak := e.addKey("bak", token.PrefixAgentKey, store.APIKey{Kind: store.KeyAgent, Agent: "alpha"})
	codec := newCheckCodec()
	creds := []struct {
		name   string
		authz  map[string]string
		status int32
	}{
		{"jwt", auth(e.mint("", "alice")), 0},
		{"bak", auth(bak), 0},
		{"none", nil, 16},
	}
	floor := func(raw []byte) []byte {
		var req authv3.CheckRequest
		if err := codec.Unmarshal(mem.BufferSlice{mem.SliceBuffer(raw)}, &req); err != nil {
			b.Fatal(err)
		}
		out, err := codec.Marshal(&authv3.CheckResponse{
			Status:       &rpcstatus.Status{},
			HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{}},
		})
		if err != nil {
			b.Fatal(err)
		}
		return out.Materialize()
	}
	messages := func(raw []byte) []byte {
		var req authv3.CheckRequest
		if err := proto.Unmarshal(raw, &req); err != nil {
			b.Fatal(err)
		}
		out, err := proto.Marshal(checkResponseMessage(e.a.Decide(context.Background(), requestOf(&req))))
		if err != nil {
			b.Fatal(err)
		}
		return out
	}
	var in mem.BufferSlice // the request as gRPC hands it to the codec
	dec := func(v any) error { return codec.Unmarshal(in, v) }
	keep := false // copy the answer out (to check it) before freeing it
	gateway := func([]byte) []byte {
		ans, err := checkHandler(s, context.Background(), dec, nil)
		if err != nil {
			b.Fatal(err)
		}
		out, err := codec.Marshal(ans)
		if err != nil {
			b.Fatal(err)
		}
		var wire []byte
		if keep {
			wire = out.Materialize()
		}
		out.Free()
		return wire
	}
	run := func(b *testing.B, raw []byte, status int32, once func([]byte) []byte) {
		in = mem.BufferSlice{mem.SliceBuffer(raw)}
		keep = true
		first := once(raw)
		keep = false
		var resp authv3.CheckResponse // as the client sees it
		if err := proto.Unmarshal(first, &resp); err != nil || resp.GetStatus().GetCode() != status {
			b.Fatalf("status %v, err %v", resp.GetStatus(), err)
		}
		b.ReportAllocs()
		for b.Loop() {
			once(raw)
		}
	}
	request := func(authz map[string]string) []byte {
		return marshal(b, envoyCheckRequest("POST", "/alpha/mcp", "127.0.0.1:8000", authz))
	}
	b.Run("floor", func(b *testing.B) { run(b, request(creds[0].authz), 0, floor) })
	for _, c := range creds {
		b.Run("messages/"+c.name, func(b *testing.B) { run(b, request(c.authz), c.status, messages) })
	}
	for _, c := range creds {
		b.Run("gateway/"+c.name, func(b *testing.B) { run(b, request(c.authz), c.status, gateway) })
	}
}
