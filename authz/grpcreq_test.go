package authz

import (
	"bytes"
	"context"
	"maps"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// requestOf is the reference for decodeCheckRequest: the Request the Check
// decided on when it unmarshalled the whole CheckRequest into messages.
func requestOf(req *authv3.CheckRequest) *Request {
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
		headers = map[string]string{}
	}
	return &Request{Method: method, Path: path, Headers: headers, Adapter: "grpc"}
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

// viewOf is what decodeCheckRequest must read from raw: requestOf on the
// fully unmarshalled message, headers narrowed to the ones the Check reads,
// the context extensions, and the body (raw_body, else body). ok is false
// when proto.Unmarshal refuses raw.
func viewOf(raw []byte) (checkRequest, bool) {
	var full authv3.CheckRequest
	if proto.Unmarshal(raw, &full) != nil {
		return checkRequest{}, false
	}
	r := requestOf(&full)
	kept := map[string]string{}
	for k, v := range r.Headers {
		if keepHeader(k) {
			kept[k] = v
		}
	}
	h := full.GetAttributes().GetRequest().GetHttp()
	body := h.GetRawBody()
	if len(body) == 0 {
		body = []byte(h.GetBody())
	}
	return checkRequest{method: r.Method, path: r.Path, headers: kept, x: &checkExtras{ext: full.GetAttributes().GetContextExtensions(), body: body}}, true
}

// checkDecode fails t unless decodeCheckRequest reads from raw what the
// message path reads, whenever proto.Unmarshal accepts raw: once asking for
// the body, once not (then no body is read).
func checkDecode(t *testing.T, raw []byte) {
	t.Helper()
	want, ok := viewOf(raw)
	for _, wantBody := range []bool{true, false} {
		got := checkRequest{}
		if wantBody {
			got = wantingBody()
		}
		err := decodeCheckRequest(raw, &got)
		if !ok {
			continue // refused by proto.Unmarshal: either answer is fine, no panic is the test
		}
		if err != nil {
			t.Fatalf("proto.Unmarshal accepts what decodeCheckRequest (wantBody %v) refuses: %v", wantBody, err)
		}
		if got.method != want.method || got.path != want.path || !maps.Equal(got.headers, want.headers) {
			t.Fatalf("decoded %q %q %q\nmessages give %q %q %q", got.method, got.path, got.headers, want.method, want.path, want.headers)
		}
		if !maps.Equal(got.extensions(), want.extensions()) {
			t.Fatalf("context_extensions decoded %q, messages give %q", got.extensions(), want.extensions())
		}
		switch {
		case wantBody && !bytes.Equal(got.requestBody(), want.requestBody()):
			t.Fatalf("body decoded %q, messages give %q", got.requestBody(), want.requestBody())
		case !wantBody && got.requestBody() != nil:
			t.Fatalf("body %q read although not asked for", got.requestBody())
		case !wantBody && got.extensions() == nil && got.x != nil:
			t.Fatal("extras allocated with nothing in them")
		}
		if got.headers == nil {
			t.Fatal("nil headers would make Decide use Header")
		}
	}
}

func marshal(t testing.TB, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// httpRequest wraps h in a CheckRequest.
func httpRequest(h *authv3.AttributeContext_HttpRequest) *authv3.CheckRequest {
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{Http: h}}}
}

// decodeSeeds are requests Envoy sends and the wire-format corners a
// reader of only some fields could get wrong.
func decodeSeeds(t testing.TB) map[string][]byte {
	envoy := marshal(t, envoyCheckRequest("POST", "/alpha/mcp", "gw.example", map[string]string{
		"authorization": "Bearer abc", "x-mcp-user": "mallory", "X-MCP-Extra": "1", "x-mcpx": "no",
	}))
	hm := func(hs ...*corev3.HeaderValue) *authv3.AttributeContext_HttpRequest {
		return &authv3.AttributeContext_HttpRequest{HeaderMap: &corev3.HeaderMap{Headers: hs}}
	}
	seeds := map[string][]byte{
		"envoy":   envoy,
		"empty":   nil,
		"no http": marshal(t, &authv3.CheckRequest{Attributes: &authv3.AttributeContext{}}),
		"pseudo headers only": marshal(t, httpRequest(&authv3.AttributeContext_HttpRequest{Headers: map[string]string{
			":path": "/alpha/mcp", ":method": "GET", "authorization": "Bearer x",
		}})),
		"header_map (encode_raw_headers)": marshal(t, httpRequest(hm(
			&corev3.HeaderValue{Key: ":path", RawValue: []byte("/alpha/mcp")},
			&corev3.HeaderValue{Key: "Authorization", RawValue: []byte("Bearer raw")},
			&corev3.HeaderValue{Key: "x-mcp-a", Value: "1"}, &corev3.HeaderValue{Key: "X-MCP-A", RawValue: []byte("2")},
			&corev3.HeaderValue{Key: "host", Value: "h"},
		))),
		// headers wins over header_map when it has any entry, even one the
		// decision does not read.
		"headers and header_map": marshal(t, httpRequest(&authv3.AttributeContext_HttpRequest{
			Headers:   map[string]string{"host": "h"},
			HeaderMap: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{{Key: "authorization", Value: "Bearer hidden"}}},
		})),
		"path field and :path differ": marshal(t, httpRequest(&authv3.AttributeContext_HttpRequest{
			Path: "/alpha/mcp", Method: "POST", Headers: map[string]string{":path": "/beta/mcp", ":method": "GET"},
		})),
	}
	// Messages split over repeated occurrences merge; the last scalar wins.
	a := marshal(t, httpRequest(&authv3.AttributeContext_HttpRequest{Path: "/a/mcp", Headers: map[string]string{"authorization": "Bearer 1", "x-mcp-one": "1"}}))
	b := marshal(t, httpRequest(&authv3.AttributeContext_HttpRequest{Method: "GET", Headers: map[string]string{"authorization": "Bearer 2"}}))
	seeds["merged occurrences"] = append(append([]byte{}, a...), b...)
	// A field number the reader wants, with another wire type: unknown.
	var odd []byte
	odd = protowire.AppendTag(odd, fReqAttributes, protowire.VarintType)
	odd = protowire.AppendVarint(odd, 7)
	seeds["attributes as varint"] = append(odd, envoy...)
	// Unknown fields of every wire type around the ones read.
	var unk []byte
	unk = protowire.AppendTag(unk, 999, protowire.Fixed64Type)
	unk = protowire.AppendFixed64(unk, 1)
	unk = protowire.AppendTag(unk, 998, protowire.StartGroupType)
	unk = protowire.AppendTag(unk, 998, protowire.EndGroupType)
	unk = protowire.AppendTag(unk, 997, protowire.Fixed32Type)
	unk = protowire.AppendFixed32(unk, 1)
	seeds["unknown fields"] = append(unk, envoy...)
	// What the MCP-aware checks read: the MCP headers, Origin, traceparent,
	// the route's context extensions and the body, in both body forms.
	mcp := envoyCheckRequest("POST", "/alpha/mcp", "gw.example", map[string]string{
		"authorization": "Bearer abc", "mcp-method": "tools/call", "mcp-name": "whoami",
		"origin": "https://app.example", "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
	})
	mcp.Attributes.ContextExtensions = map[string]string{"agent": "alpha", "other": "x"}
	mcp.Attributes.Request.Http.Body = `{"jsonrpc":"2.0","id":1,"method":"tools/call"}`
	seeds["mcp headers, context extensions, body"] = marshal(t, mcp)
	rawBody := proto.Clone(mcp).(*authv3.CheckRequest)
	rawBody.Attributes.Request.Http.Body = "not this one"
	rawBody.Attributes.Request.Http.RawBody = []byte("\xff\x00binary")
	seeds["raw_body wins over body"] = marshal(t, rawBody)
	seeds["header_map with mcp headers"] = marshal(t, httpRequest(hm(
		&corev3.HeaderValue{Key: "Mcp-Method", RawValue: []byte("tools/list")},
		&corev3.HeaderValue{Key: "ORIGIN", Value: "null"},
		&corev3.HeaderValue{Key: "traceparent", Value: "a"}, &corev3.HeaderValue{Key: "Traceparent", Value: "b"},
		&corev3.HeaderValue{Key: "mcp-names", Value: "not read"},
	)))
	// Extensions in two AttributeContext occurrences merge per key.
	e1 := marshal(t, &authv3.CheckRequest{Attributes: &authv3.AttributeContext{ContextExtensions: map[string]string{"agent": "alpha", "a": "1"}}})
	e2 := marshal(t, &authv3.CheckRequest{Attributes: &authv3.AttributeContext{ContextExtensions: map[string]string{"agent": "beta"}}})
	seeds["context extensions merged"] = append(append(append([]byte{}, e1...), e2...), envoy...)
	seeds["bad utf-8 context extension"] = extEntryRequest("agent", "alpha\xff")
	seeds["bad utf-8 body"] = bodyRequest("{\xff}")
	seeds["truncated"] = envoy[:len(envoy)/2]
	seeds["bad utf-8 authorization"] = headerEntryRequest("authorization", "Bearer \xff")
	seeds["bad utf-8 in a header not read"] = headerEntryRequest("x-other", "\xff")
	return seeds
}

// headerEntryRequest is a CheckRequest with one headers entry, written by
// hand: proto.Marshal refuses invalid UTF-8, and that is what it is for.
func headerEntryRequest(k, v string) []byte {
	wrap := func(n protowire.Number, v []byte) []byte {
		return protowire.AppendBytes(protowire.AppendTag(nil, n, protowire.BytesType), v)
	}
	entry := append(wrap(fMapKey, []byte(k)), wrap(fMapValue, []byte(v))...)
	return wrap(fReqAttributes, wrap(fAttrRequest, wrap(fRequestHTTP, wrap(fHTTPHeaders, entry))))
}

// extEntryRequest is a CheckRequest with one context_extensions entry,
// written by hand (invalid UTF-8 allowed).
func extEntryRequest(k, v string) []byte {
	wrap := func(n protowire.Number, v []byte) []byte {
		return protowire.AppendBytes(protowire.AppendTag(nil, n, protowire.BytesType), v)
	}
	entry := append(wrap(fMapKey, []byte(k)), wrap(fMapValue, []byte(v))...)
	return wrap(fReqAttributes, wrap(fAttrExt, entry))
}

// bodyRequest is a CheckRequest whose http.body is b, written by hand.
func bodyRequest(b string) []byte {
	wrap := func(n protowire.Number, v []byte) []byte {
		return protowire.AppendBytes(protowire.AppendTag(nil, n, protowire.BytesType), v)
	}
	return wrap(fReqAttributes, wrap(fAttrRequest, wrap(fRequestHTTP, wrap(fHTTPBody, []byte(b)))))
}

func TestDecodeCheckRequest(t *testing.T) {
	for name, raw := range decodeSeeds(t) {
		t.Run(name, func(t *testing.T) { checkDecode(t, raw) })
	}
	// Spot checks that the reference itself reads what Envoy means.
	var r checkRequest
	if err := decodeCheckRequest(decodeSeeds(t)["header_map (encode_raw_headers)"], &r); err != nil {
		t.Fatal(err)
	}
	if r.path != "/alpha/mcp" || r.headers["authorization"] != "Bearer raw" || r.headers["x-mcp-a"] != "1,2" || len(r.headers) != 3 {
		t.Fatalf("header_map read as %q %q", r.path, r.headers)
	}
	if err := decodeCheckRequest(decodeSeeds(t)["bad utf-8 authorization"], &r); err == nil {
		t.Fatal("invalid UTF-8 in the authorization header accepted")
	}
	if err := decodeCheckRequest(decodeSeeds(t)["truncated"], &r); err == nil {
		t.Fatal("truncated request accepted")
	}
	r = wantingBody()
	if err := decodeCheckRequest(decodeSeeds(t)["mcp headers, context extensions, body"], &r); err != nil {
		t.Fatal(err)
	}
	if r.mcpMethod() != "tools/call" || r.mcpName() != "whoami" || r.origin() != "https://app.example" ||
		!strings.HasPrefix(r.traceparent(), "00-4bf9") || r.extensions()["agent"] != "alpha" || !strings.Contains(string(r.requestBody()), "tools/call") {
		t.Fatalf("read %q %q %q %q, extensions %q, body %q", r.mcpMethod(), r.mcpName(), r.origin(), r.traceparent(), r.extensions(), r.requestBody())
	}
	r = wantingBody()
	if err := decodeCheckRequest(decodeSeeds(t)["raw_body wins over body"], &r); err != nil || string(r.requestBody()) != "\xff\x00binary" {
		t.Fatalf("raw_body read as %q, %v", r.requestBody(), err)
	}
	r = checkRequest{}
	if err := decodeCheckRequest(decodeSeeds(t)["context extensions merged"], &r); err != nil || r.extensions()["agent"] != "beta" || r.extensions()["a"] != "1" {
		t.Fatalf("merged extensions %q, %v", r.extensions(), err)
	}
	if err := decodeCheckRequest(decodeSeeds(t)["bad utf-8 context extension"], &r); err == nil {
		t.Fatal("invalid UTF-8 in a context extension accepted")
	}
	r = wantingBody()
	if err := decodeCheckRequest(decodeSeeds(t)["bad utf-8 body"], &r); err == nil {
		t.Fatal("invalid UTF-8 in body accepted when read")
	}
}

// The body is copied out of the input: the codec reuses its buffer once
// decoding ends.
func TestDecodeCheckRequestBodyIsACopy(t *testing.T) {
	raw := bytes.Clone(decodeSeeds(t)["mcp headers, context extensions, body"])
	r := wantingBody()
	if err := decodeCheckRequest(raw, &r); err != nil {
		t.Fatal(err)
	}
	want := string(r.requestBody())
	clear(raw)
	if string(r.requestBody()) != want {
		t.Fatalf("body changed with the input buffer: %q", r.requestBody())
	}
}

// The codec is the standard one for every other message.
func TestCheckCodecPassesOthersThrough(t *testing.T) {
	c := newCheckCodec()
	req := envoyCheckRequest("GET", "/alpha/mcp", "h", nil)
	bs, err := c.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	var back authv3.CheckRequest
	if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(bs.Materialize())}, &back); err != nil || !proto.Equal(&back, req) {
		t.Fatalf("round trip through the codec: %v", err)
	}
	if c.Name() != "proto" {
		t.Fatalf("codec name %q", c.Name())
	}
}

// FuzzDecodeCheckRequest: for any bytes proto.Unmarshal accepts,
// decodeCheckRequest reads the same method, path and headers; for any
// bytes, it does not panic.
func FuzzDecodeCheckRequest(f *testing.F) {
	for _, raw := range decodeSeeds(f) {
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		checkDecode(t, raw)
	})
}

// rawMsg and rawCodec let a test client send any bytes as the request.
type rawMsg struct{ b []byte }

type rawCodec struct{}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(v.(*rawMsg).b)}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	v.(*rawMsg).b = data.Materialize()
	return nil
}

func (rawCodec) Name() string { return "proto" }

// Bytes the decoder refuses end the RPC with an error, which Envoy (with
// failure_mode_allow off) turns into a denial: never an allow.
func TestCheckRefusesUndecodableRequest(t *testing.T) {
	e := newEnv(t)
	conn := startGRPCConn(t, e.a, grpc.WithDefaultCallOptions(grpc.ForceCodecV2(rawCodec{})))
	call := func(b []byte) (*authv3.CheckResponse, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var out rawMsg
		if err := conn.Invoke(ctx, checkFullMethod, &rawMsg{b}, &out); err != nil {
			return nil, err
		}
		var resp authv3.CheckResponse
		if err := proto.Unmarshal(out.b, &resp); err != nil {
			t.Fatalf("answer does not decode: %v", err)
		}
		return &resp, nil
	}
	good := marshal(t, envoyCheckRequest("POST", "/alpha/mcp", "h", auth(e.mint("", "alice"))))
	if resp, err := call(good); err != nil || resp.GetOkResponse() == nil {
		t.Fatalf("well-formed request: %v, %v", resp, err)
	}
	for name, b := range map[string][]byte{
		"truncated":                   good[:len(good)-3],
		"invalid UTF-8 authorization": headerEntryRequest("authorization", "Bearer "+e.mint("", "alice")+"\xff"),
		"stray end-group":             protowire.AppendTag(nil, 5, protowire.EndGroupType),
	} {
		resp, err := call(b)
		if status.Code(err) != codes.Internal {
			t.Errorf("%s: answer %v, error %v; want an Internal RPC error", name, resp, err)
		}
	}
}
