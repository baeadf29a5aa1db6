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
	ok := &authv3.CheckResponse{HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{HeadersToRemove: []string{"authorization"}}}}
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
	okRaw, err := proto.Marshal(ok)
	if err != nil {
		t.Fatal(err)
	}
	okAns := filepath.Join(dir, "x.answer")
	if err := os.WriteFile(okAns, okRaw, 0o644); err != nil {
		t.Fatal(err)
	}
	// One answer for no authorization header, one for "Bearer x".
	if err := os.WriteFile(list, []byte("\t"+ans+"\nBearer x\t"+okAns+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	answers, err := loadAnswers(list)
	if err != nil {
		t.Fatal(err)
	}

	for _, tuned := range []bool{false, true} {
		c := client(t, &noop{answers: answers}, tuned)
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
			t.Fatalf("tuned=%v: canned answer: got %v, want %v", tuned, got, denied)
		}
		// The tuned server finds the header's value in the raw bytes.
		if got := check(map[string]string{"authorization": "Bearer x"}); !proto.Equal(got, ok) {
			t.Fatalf("tuned=%v: answer for Bearer x: got %v, want %v", tuned, got, ok)
		}
		// A value nobody recorded: the plain server sees the header and
		// answers the empty OK; the tuned one cannot tell it from no header.
		want := emptyOK
		if tuned {
			want = denied
		}
		if got := check(map[string]string{"authorization": "Bearer y"}); !proto.Equal(got, want) {
			t.Fatalf("tuned=%v: unrecorded header: got %v, want %v", tuned, got, want)
		}
		// Without answers: the empty OK, in both modes.
		if got, err := client(t, &noop{}, tuned).Check(context.Background(), &authv3.CheckRequest{}); err != nil || !proto.Equal(got, emptyOK) {
			t.Fatalf("tuned=%v: empty floor: %v, %v", tuned, got, err)
		}
	}

	if err := os.WriteFile(list, []byte("no tab here\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := loadAnswers(list); err == nil {
		t.Fatal("a malformed answers file was accepted")
	}
}

// client serves n on loopback for the test's lifetime.
func client(t *testing.T, n *noop, tuned bool) authv3.AuthorizationClient {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := newServer(n, tuned)
	go func() { _ = s.Serve(lis) }()
	t.Cleanup(s.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return authv3.NewAuthorizationClient(conn)
}
