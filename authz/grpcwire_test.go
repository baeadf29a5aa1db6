package authz

import (
	"context"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/golang-jwt/jwt/v5"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/mcpgateway/mcp-gateway/store"
	"github.com/mcpgateway/mcp-gateway/token"
)

// wireRoundTrip encodes d's answer as the Check does (answerBuffer: shared,
// pooled or built), sends it through checkCodec as gRPC does (freeing it
// once written) and decodes it the way Envoy (or any client) does.
func wireRoundTrip(t *testing.T, d *Decision) *authv3.CheckResponse {
	t.Helper()
	var a checkAnswer
	a.bufs[0] = answerBuffer(d, &a.own)
	bs, err := newCheckCodec().Marshal(&a)
	if err != nil {
		t.Fatal(err)
	}
	raw := bs.Materialize()
	bs.Free()
	if want := appendCheckResponse(nil, d); string(raw) != string(want) {
		t.Fatalf("the answer sent differs from the one built for the decision:\n%x\n%x", raw, want)
	}
	var w wireDecision // the size a pooled buffer is asked for is exact
	if newWireDecision(d, &w); w.size() != len(raw) {
		t.Fatalf("size %d, encoded %d bytes", w.size(), len(raw))
	}
	var got authv3.CheckResponse
	if err := proto.Unmarshal(raw, &got); err != nil {
		t.Fatalf("the hand-encoded response does not decode: %v", err)
	}
	if u := got.ProtoReflect().GetUnknown(); len(u) != 0 {
		t.Fatalf("%d bytes decode as unknown fields", len(u))
	}
	return &got
}

// The hand-written wire form must decode into exactly the message the
// plain build (checkResponseMessage) makes, for every kind of decision.
func TestCheckResponseWire(t *testing.T) {
	e := newEnv(t)
	bak := e.addKey("bak", token.PrefixAgentKey, store.APIKey{Kind: store.KeyAgent, Agent: "alpha", User: "alice"})
	bakNoUser := e.addKey("bak-anon", token.PrefixAgentKey, store.APIKey{Kind: store.KeyAgent, Agent: "alpha"})
	oag := e.addKey("oag", token.PrefixUserKey, store.APIKey{Kind: store.KeyUser, User: "alice", Scopes: []string{"mcp"}})
	other := e.addKey("other", token.PrefixAgentKey, store.APIKey{Kind: store.KeyAgent, Agent: "demo"})
	bad := signWith(t, jwt.SigningMethodHS256, []byte("another-secret-that-is-long-enough-32"), "k1", baseClaims("alice"))
	for _, c := range []struct {
		name, path, authz string
		extra             map[string]string
		status            int
	}{
		{"jwt", "/alpha/mcp", "Bearer " + e.mint("", "alice"), nil, 200},
		{"jwt for the agent", "/alpha/mcp?x=1", "Bearer " + e.mint("", "bob", aud(pub+"/alpha/mcp")), nil, 200},
		{"agent key", "/alpha/mcp", "Bearer " + bak, nil, 200},
		{"agent key without user", "/alpha/mcp/", "Bearer " + bakNoUser, nil, 200},
		{"user key with scopes", "/alpha/mcp", "Bearer " + oag, nil, 200},
		{"spoofed identity headers", "/alpha/mcp", "Bearer " + bak,
			map[string]string{"x-mcp-user": "mallory", "x-mcp-admin": "1", "X-MCP-Extra": "2", "x-mcp-tenant": "t"}, 200},
		{"no credential", "/alpha/mcp", "", nil, 401},
		{"bad signature", "/alpha/mcp", "Bearer " + bad, nil, 401},
		{"expired", "/alpha/mcp", "Bearer " + e.mint("", "alice", expIn(-time.Hour)), nil, 401},
		{"wrong audience", "/alpha/mcp", "Bearer " + e.mint("", "alice", aud(pub+"/demo/mcp")), nil, 401},
		{"not the owner", "/demo/mcp", "Bearer " + e.mint("", "alice"), nil, 403},
		{"insufficient scope", "/scoped/mcp", "Bearer " + e.mint("", "alice"), nil, 403},
		{"agent key of another agent", "/alpha/mcp", "Bearer " + other, nil, 403},
		{"unknown agent", "/nope/mcp", "Bearer " + e.mint("", "alice"), nil, 404},
		{"bad path", "/alpha/../demo/mcp", "Bearer " + bak, nil, 404},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := map[string]string{":path": c.path, "content-type": "application/json"}
			for k, v := range c.extra {
				h[k] = v
			}
			if c.authz != "" {
				h["authorization"] = c.authz
			}
			d := e.a.Decide(context.Background(), &Request{Method: "POST", Path: c.path, Headers: h, Adapter: "grpc"})
			if d.Status != c.status {
				t.Fatalf("decision %d %s, want %d", d.Status, d.Reason, c.status)
			}
			got, want := wireRoundTrip(t, d), checkResponseMessage(d)
			if !proto.Equal(got, want) {
				t.Fatalf("wire form decodes to\n%v\nwant\n%v", got, want)
			}
		})
	}
}

// Values across the varint length classes, a 503 with its retry header,
// and strings that are not UTF-8 (which a receiver would refuse).
func TestCheckResponseWireEdges(t *testing.T) {
	for _, n := range []int{0, 1, 127, 128, 16383, 16384, 70000} {
		v := strings.Repeat("v", n)
		for _, allow := range []bool{true, false} {
			d := &Decision{Allow: allow, Status: 200, Reason: "ok", KeyID: v,
				Identity:        Identity{User: v, Agent: "a", ClientID: v, Scope: v, Credential: "oauth"},
				UpstreamHeaders: []HeaderValue{{HeaderUser, v}, {HeaderScope, v}},
				RemoveHeaders:   []string{"authorization", "x-mcp-" + v},
			}
			if !allow {
				d.Status, d.Reason, d.Body = 503, ReasonUnavailable, []byte(`{"error":"`+v+`"}`)
				d.Headers = []HeaderValue{jsonHeader, {"retry-after", "1"}, {"x-long", v}}
			}
			if got, want := wireRoundTrip(t, d), checkResponseMessage(d); !proto.Equal(got, want) {
				t.Fatalf("len %d allow %v: wire form differs from the plain build", n, allow)
			}
		}
	}

	d := &Decision{Allow: true, Status: 200, Reason: "ok",
		Identity:        Identity{User: "al\xffice", Agent: "a", Credential: "oauth"},
		UpstreamHeaders: []HeaderValue{{HeaderUser, "al\xffice"}, {"x-\xfe", "v"}},
		RemoveHeaders:   []string{"authorization", "x-mcp-\xff"},
	}
	got := wireRoundTrip(t, d)
	deny := wireRoundTrip(t, &Decision{Status: 403, Reason: "forbidden", Identity: d.Identity})
	if u := deny.GetDynamicMetadata().GetFields()["user"].GetStringValue(); u != "al\uFFFDice" {
		t.Fatalf("metadata user %q", u)
	}
	ok := got.GetOkResponse()
	if ok.GetHeaders()[0].GetHeader().GetValue() != "al\uFFFDice" || ok.GetHeaders()[1].GetHeader().GetKey() != "x-\uFFFD" ||
		ok.GetHeadersToRemove()[1] != "x-mcp-\uFFFD" {
		t.Fatalf("not made UTF-8: %v", ok)
	}
	if d.Identity.User != "al\xffice" || d.UpstreamHeaders[0].Value != "al\xffice" || d.RemoveHeaders[1] != "x-mcp-\xff" {
		t.Fatal("encoding changed the decision")
	}
}

// checkResponseMessage builds the CheckResponse for d as messages: the
// plain form of what appendCheckResponse writes, and the reference it is
// compared against.
func checkResponseMessage(d *Decision) *authv3.CheckResponse {
	if d.Allow {
		return &authv3.CheckResponse{HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{
			Headers:         headerOptions(d.UpstreamHeaders),
			HeadersToRemove: d.RemoveHeaders,
		}}}
	}
	md := &structpb.Struct{Fields: map[string]*structpb.Value{
		"reason":     structpb.NewStringValue(d.Reason),
		"agent":      structpb.NewStringValue(d.Identity.Agent),
		"user":       structpb.NewStringValue(d.Identity.User),
		"client_id":  structpb.NewStringValue(d.Identity.ClientID),
		"credential": structpb.NewStringValue(d.Identity.Credential),
	}}
	if d.KeyID != "" {
		md.Fields["key_id"] = structpb.NewStringValue(d.KeyID)
	}
	resp := &authv3.CheckResponse{
		Status:          &rpcstatus.Status{Code: int32(grpcCode(d.Status))},
		DynamicMetadata: md,
	}
	resp.Status.Message = d.Reason
	resp.HttpResponse = &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
		Status:  &typev3.HttpStatus{Code: typev3.StatusCode(d.Status)},
		Headers: headerOptions(d.Headers),
		Body:    string(d.Body),
	}}
	return resp
}

func headerOptions(hs []HeaderValue) []*corev3.HeaderValueOption {
	out := make([]*corev3.HeaderValueOption, len(hs))
	for i, h := range hs {
		out[i] = &corev3.HeaderValueOption{
			Header:       &corev3.HeaderValue{Key: h.Key, Value: h.Value},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
		}
	}
	return out
}
