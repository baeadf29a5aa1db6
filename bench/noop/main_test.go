package main

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
)

// The floor answers an empty OK, or with -answers the canned response for
// the request's authorization header, byte for byte.
func TestNoopAnswers(t *testing.T) {
	denied := &authv3.CheckResponse{
		Status: &rpcstatus.Status{Code: 16, Message: "missing_credential"},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status: &typev3.HttpStatus{Code: typev3.StatusCode_Unauthorized}, Body: `{"error":"unauthorized"}`,
		}},
	}
	raw, err := proto.Marshal(denied)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ans := filepath.Join(dir, "none.answer")
	list := filepath.Join(dir, "answers.tsv")
	if err := os.WriteFile(ans, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(list, []byte("\t"+ans+"\n"), 0o644); err != nil { // no authorization header
		t.Fatal(err)
	}
	answers, err := loadAnswers(list)
	if err != nil {
		t.Fatal(err)
	}

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := newServer(&noop{answers: answers})
	go func() { _ = s.Serve(lis) }()
	t.Cleanup(s.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	c := authv3.NewAuthorizationClient(conn)
	check := func(headers map[string]string) *authv3.CheckResponse {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		resp, err := c.Check(ctx, &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
			Http: &authv3.AttributeContext_HttpRequest{Path: "/demo/mcp", Headers: headers},
		}}})
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	if got := check(map[string]string{":path": "/demo/mcp"}); !proto.Equal(got, denied) {
		t.Fatalf("canned answer: got %v, want %v", got, denied)
	}
	got := check(map[string]string{"authorization": "Bearer x"})
	if got.GetOkResponse() == nil || got.GetStatus().GetCode() != 0 || got.GetDynamicMetadata() != nil {
		t.Fatalf("no canned answer: got %v, want an empty OK", got)
	}

	if err := os.WriteFile(list, []byte("no tab here\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := loadAnswers(list); err == nil {
		t.Fatal("a malformed answers file was accepted")
	}
}
