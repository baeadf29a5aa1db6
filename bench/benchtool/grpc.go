package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
)

// cmdProtoset writes envoy/service/auth/v3/external_auth.proto and every
// file it imports, dependencies first, as a FileDescriptorSet for
// ghz --protoset. The descriptors are the ones compiled into
// go-control-plane, so ghz encodes exactly what the gateway decodes.
func cmdProtoset(args []string) error {
	fs := flag.NewFlagSet("protoset", flag.ContinueOnError)
	out := fs.String("o", "", "output file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" {
		return errors.New("-o is required")
	}
	var set descriptorpb.FileDescriptorSet
	seen := map[string]bool{}
	var add func(fd protoreflect.FileDescriptor)
	add = func(fd protoreflect.FileDescriptor) {
		if seen[fd.Path()] {
			return
		}
		seen[fd.Path()] = true
		imports := fd.Imports()
		for i := range imports.Len() {
			add(imports.Get(i).FileDescriptor)
		}
		set.File = append(set.File, protodesc.ToFileDescriptorProto(fd))
	}
	add(authv3.File_envoy_service_auth_v3_external_auth_proto)
	b, err := proto.Marshal(&set)
	if err != nil {
		return err
	}
	return os.WriteFile(*out, b, 0o644)
}

// cmdRequest writes a CheckRequest as Envoy's ext_authz filter builds it for
// an MCP POST (pseudo-headers, lower-case keys, addresses), in protojson
// for ghz -D, in the wire format for ghz -B, or framed for h2load -d.
func cmdRequest(args []string) error {
	fs := flag.NewFlagSet("request", flag.ContinueOnError)
	out := fs.String("o", "", "output file")
	authz := fs.String("auth", "", `authorization header value ("" = none)`)
	path := fs.String("path", "/demo/mcp", "request :path")
	host := fs.String("host", "127.0.0.1:8000", ":authority")
	bin := fs.Bool("binary", false, "write the protobuf wire format (ghz -B) instead of JSON (ghz -D)")
	frame := fs.Bool("grpc-frame", false, "write the wire format as one gRPC message frame (h2load -d)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" {
		return errors.New("-o is required")
	}
	req := envoyRequest(*authz, *path, *host)
	var b []byte
	var err error
	if *bin || *frame {
		b, err = proto.Marshal(req)
	} else {
		b, err = protojson.Marshal(req)
	}
	if err != nil {
		return err
	}
	if *frame { // not compressed, 4-byte big-endian length, the message
		b = append([]byte{0, byte(len(b) >> 24), byte(len(b) >> 16), byte(len(b) >> 8), byte(len(b))}, b...)
	}
	return os.WriteFile(*out, b, 0o644)
}

func envoyRequest(authz, path, host string) *authv3.CheckRequest {
	h := map[string]string{
		":authority":           host,
		":path":                path,
		":method":              "POST",
		":scheme":              "http",
		"content-type":         "application/json",
		"accept":               "application/json, text/event-stream",
		"mcp-protocol-version": "2025-11-25",
		"user-agent":           "mcp-bench/1.0",
		"x-forwarded-proto":    "http",
		"x-request-id":         "6f1c1b52-3f7e-4ac5-9d6b-0e0b1f5b9a11",
	}
	if authz != "" {
		h["authorization"] = authz
	}
	addr := func(ip string, port uint32) *corev3.Address {
		return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Address: ip, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
		}}}
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source:      &authv3.AttributeContext_Peer{Address: addr("127.0.0.1", 54321)},
		Destination: &authv3.AttributeContext_Peer{Address: addr("127.0.0.1", 8000)},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Id:       "1234567890",
			Method:   "POST",
			Headers:  h,
			Path:     path,
			Host:     host,
			Scheme:   "http",
			Protocol: "HTTP/1.1",
		}},
	}}
}

// cmdCheck sends the request in -data once and fails unless the answer's
// HTTP status (200 for OkResponse) is -want: a scenario is timed only once
// it is known to get the right decision. -save keeps the answer for the
// same-answer floor (noop -answers).
func cmdCheck(args []string) error {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	addr := fs.String("addr", "", "gRPC address")
	data := fs.String("data", "", "CheckRequest JSON file")
	want := fs.Int("want", 200, "expected HTTP status")
	wait := fs.Duration("wait", 10*time.Second, "how long to retry while the server starts")
	save := fs.String("save", "", "write the answer (wire format) to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	raw, err := os.ReadFile(*data)
	if err != nil {
		return err
	}
	var req authv3.CheckRequest
	if err := protojson.Unmarshal(raw, &req); err != nil {
		if err := proto.Unmarshal(raw, &req); err != nil {
			return fmt.Errorf("%s: neither CheckRequest JSON nor wire format: %w", *data, err)
		}
	}
	conn, err := grpc.NewClient(*addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	c := authv3.NewAuthorizationClient(conn)
	deadline := time.Now().Add(*wait)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		resp, err := c.Check(ctx, &req)
		cancel()
		if err != nil {
			if time.Now().Before(deadline) {
				time.Sleep(100 * time.Millisecond)
				continue
			}
			return err
		}
		got := 200
		if d := resp.GetDeniedResponse(); d != nil {
			got = int(d.GetStatus().GetCode())
		} else if resp.GetOkResponse() == nil {
			return fmt.Errorf("neither ok nor denied: %v", resp)
		}
		if got != *want {
			return fmt.Errorf("%s: got %d (%s), want %d", *data, got, resp.GetStatus().GetMessage(), *want)
		}
		if *save != "" {
			b, err := proto.Marshal(resp)
			if err != nil {
				return err
			}
			return os.WriteFile(*save, b, 0o644)
		}
		return nil
	}
}
