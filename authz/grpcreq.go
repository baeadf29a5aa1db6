package authz

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/encoding"
	protoenc "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
)

// The Check request is read straight from the wire, like the answer is
// written (grpcwire.go). A CheckRequest carries everything Envoy knows about
// the request: all headers, addresses, route metadata, sometimes a body.
// Unmarshalling it into messages was a fifth of the server's CPU per Check
// (most of it the headers map, built through reflection) and most of its
// garbage, yet the decision reads a few things: the method, the path, the
// Authorization header, the names of any x-mcp-* headers, the route's
// context_extensions, and (for the MCP-aware checks to come) the MCP method
// and name headers, Origin, traceparent and, on request, the body.
// checkRequest is those, and decodeCheckRequest reads only them, skipping the
// rest after checking its framing. TestDecodeCheckRequest and
// FuzzDecodeCheckRequest compare it with proto.Unmarshal followed by what the
// Check read before.

// checkRequest is what the decision needs from a CheckRequest.
type checkRequest struct {
	method, path string
	// headers holds the request headers the Check reads (keepHeader),
	// lower-case name → value, repeats joined with "," as Envoy does.
	headers map[string]string
	// x holds what only some Checks carry, so the common one stays in a
	// smaller size class; nil when there is none and no body was asked for.
	x *checkExtras
}

// checkExtras are the context extensions and the body.
type checkExtras struct {
	// ext is attributes.context_extensions, set per route in Envoy's
	// ext_authz per-route config (nil when the route sets none).
	ext map[string]string
	// wantBody is an input: when set, the decoder copies the request body
	// (raw_body, else body) into body. Unset, the body is skipped, uncopied:
	// the buffer it sits in is reused once decoding ends.
	wantBody bool
	body     []byte
}

// bodyWanted is the shared, read-only request for the body: the decoder
// never writes into r.x, it replaces it (nil when there is nothing to keep),
// so asking for the body costs nothing when Envoy sends none.
var bodyWanted = &checkExtras{wantBody: true}

// wantingBody is an empty checkRequest that asks the decoder for the body.
func wantingBody() checkRequest { return checkRequest{x: bodyWanted} }

// extensions is attributes.context_extensions (nil when absent).
func (r *checkRequest) extensions() map[string]string {
	if r.x == nil {
		return nil
	}
	return r.x.ext
}

// requestBody is the body, when it was asked for (wantingBody) and sent.
func (r *checkRequest) requestBody() []byte {
	if r.x == nil {
		return nil
	}
	return r.x.body
}

// Header names the Check keeps besides authorization and x-mcp-*.
const (
	headerMCPMethod   = "mcp-method"
	headerMCPName     = "mcp-name"
	headerOrigin      = "origin"
	headerTraceparent = "traceparent"
)

// mcpMethod is the client's Mcp-Method header ("" when absent).
func (r *checkRequest) mcpMethod() string { return r.headers[headerMCPMethod] }

// mcpName is the client's Mcp-Name header ("" when absent).
func (r *checkRequest) mcpName() string { return r.headers[headerMCPName] }

// origin is the client's Origin header ("" when absent).
func (r *checkRequest) origin() string { return r.headers[headerOrigin] }

// traceparent is the client's W3C traceparent header ("" when absent).
func (r *checkRequest) traceparent() string { return r.headers[headerTraceparent] }

// keepHeader reports whether the Check reads header name: the credential,
// the pseudo-headers the method and path fall back to, every x-mcp-* header
// (they are stripped before the request goes on), and the MCP method and
// name, Origin and traceparent.
func keepHeader(name string) bool {
	switch {
	case len(name) >= len("x-mcp-") && strings.EqualFold(name[:len("x-mcp-")], "x-mcp-"):
		return true
	case len(name) == len("authorization"):
		return strings.EqualFold(name, "authorization")
	case len(name) == len(":path"):
		return strings.EqualFold(name, ":path")
	case len(name) == len(":method"):
		return strings.EqualFold(name, ":method")
	case len(name) == len(headerMCPMethod):
		return strings.EqualFold(name, headerMCPMethod)
	case len(name) == len(headerMCPName):
		return strings.EqualFold(name, headerMCPName)
	case len(name) == len(headerOrigin):
		return strings.EqualFold(name, headerOrigin)
	case len(name) == len(headerTraceparent):
		return strings.EqualFold(name, headerTraceparent)
	case len(name) == len(headerMCPProtocolVersion):
		return strings.EqualFold(name, headerMCPProtocolVersion)
	case len(name) == len(headerPartialBody):
		return strings.EqualFold(name, headerPartialBody)
	}
	return false
}

// Field numbers, from the generated descriptors.
var (
	fReqAttributes = fieldNum(&authv3.CheckRequest{}, "attributes")
	fAttrRequest   = fieldNum(&authv3.AttributeContext{}, "request")
	fAttrExt       = fieldNum(&authv3.AttributeContext{}, "context_extensions")
	fRequestHTTP   = fieldNum(&authv3.AttributeContext_Request{}, "http")
	fHTTPMethod    = fieldNum(&authv3.AttributeContext_HttpRequest{}, "method")
	fHTTPHeaders   = fieldNum(&authv3.AttributeContext_HttpRequest{}, "headers")
	fHTTPPath      = fieldNum(&authv3.AttributeContext_HttpRequest{}, "path")
	fHTTPHeaderMap = fieldNum(&authv3.AttributeContext_HttpRequest{}, "header_map")
	fHTTPBody      = fieldNum(&authv3.AttributeContext_HttpRequest{}, "body")
	fHTTPRawBody   = fieldNum(&authv3.AttributeContext_HttpRequest{}, "raw_body")
	fHeaderMapList = fieldNum(&corev3.HeaderMap{}, "headers")
	fHVRawValue    = fieldNum(&corev3.HeaderValue{}, "raw_value")
)

var errUTF8 = errors.New("string field contains invalid UTF-8")

// decodeCheckRequest reads a wire-format CheckRequest into r. It accepts
// every message proto.Unmarshal accepts and reads the same values from it
// (repeated message fields merge, the last scalar wins, a field of an
// unexpected wire type is an unknown field), validating UTF-8 in the strings
// it reads; the fields it skips are only checked for framing.
// The body, when r asks for it (wantingBody), is copied; else it is skipped and
// its UTF-8 is not checked.
func decodeCheckRequest(b []byte, r *checkRequest) error {
	d := requestDecoder{wantBody: r.x != nil && r.x.wantBody}
	err := eachLenField(b, func(n protowire.Number, v []byte) error {
		if n != fReqAttributes {
			return nil
		}
		return eachLenField(v, func(n protowire.Number, v []byte) error {
			if n == fAttrExt {
				return d.extEntry(v)
			}
			if n != fAttrRequest {
				return nil
			}
			return eachLenField(v, func(n protowire.Number, v []byte) error {
				if n != fRequestHTTP {
					return nil
				}
				return eachLenField(v, d.httpField)
			})
		})
	})
	if err != nil {
		return fmt.Errorf("decoding CheckRequest: %w", err)
	}
	d.finish(r)
	return nil
}

// requestDecoder accumulates AttributeContext.HttpRequest fields over
// every occurrence of the message, as proto.Unmarshal merges them.
type requestDecoder struct {
	method, path string
	nHeaders     int               // entries in headers, kept or not
	headers      map[string]string // the kept ones
	raw          []rawHeader       // header_map entries, kept ones only
	nRaw         int               // entries in header_map, kept or not
	ext          map[string]string // context_extensions

	wantBody      bool
	body, rawBody []byte // the last of each, pointing into the input
}

type rawHeader struct{ key, value string }

func (d *requestDecoder) httpField(n protowire.Number, v []byte) error {
	switch n {
	case fHTTPMethod:
		if !utf8.Valid(v) {
			return errUTF8
		}
		d.method = httpMethod(v)
	case fHTTPPath:
		if !utf8.Valid(v) {
			return errUTF8
		}
		// Envoy sends the path twice, as path and as the :path header
		// before it: one string serves both.
		if p, ok := d.headers[":path"]; ok && p == string(v) {
			d.path = p
		} else {
			d.path = string(v)
		}
	case fHTTPHeaders:
		return d.mapEntry(v)
	case fHTTPBody:
		if !d.wantBody {
			return nil
		}
		if !utf8.Valid(v) {
			return errUTF8
		}
		d.body = v
	case fHTTPRawBody:
		if d.wantBody {
			d.rawBody = v
		}
	case fHTTPHeaderMap:
		return eachLenField(v, func(n protowire.Number, v []byte) error {
			if n != fHeaderMapList {
				return nil
			}
			return d.headerValue(v)
		})
	}
	return nil
}

// stringEntry reads one map<string, string> entry: {key = 1; value = 2}.
func stringEntry(v []byte) (key, value []byte, err error) {
	err = eachLenField(v, func(n protowire.Number, v []byte) error {
		switch n {
		case fMapKey:
			key = v
		case fMapValue:
			value = v
		}
		return nil
	})
	if err == nil && (!utf8.Valid(key) || !utf8.Valid(value)) {
		err = errUTF8
	}
	return key, value, err
}

// extEntry reads one context_extensions entry; a repeated key keeps the
// last value, as proto.Unmarshal does.
func (d *requestDecoder) extEntry(v []byte) error {
	key, value, err := stringEntry(v)
	if err != nil {
		return err
	}
	if d.ext == nil {
		d.ext = make(map[string]string, 1)
	}
	d.ext[string(key)] = string(value)
	return nil
}

// mapEntry reads one headers entry.
func (d *requestDecoder) mapEntry(v []byte) error {
	key, value, err := stringEntry(v)
	if err != nil {
		return err
	}
	d.nHeaders++
	name, ok := keptName(key)
	if !ok {
		return nil
	}
	if d.headers == nil {
		d.headers = make(map[string]string, 4)
	}
	switch name {
	case headerMCPProtocolVersion:
		d.headers[name] = protocolVersion(value)
		return nil
	case ":method":
		d.headers[name] = httpMethod(value)
		return nil
	}
	d.headers[name] = string(value)
	return nil
}

// knownVersions are the MCP protocol versions clients send, kept as
// constants so reading the header costs no allocation on every Check.
var knownVersions = [...]string{"2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25", "2026-07-28"}

// protocolVersion is string(v), without a copy for a known version.
func protocolVersion(v []byte) string {
	for _, k := range knownVersions {
		if string(v) == k {
			return k
		}
	}
	return string(v)
}

// knownMethods are the HTTP methods MCP clients use, kept as constants for
// the same reason.
var knownMethods = [...]string{"POST", "GET", "DELETE", "OPTIONS", "HEAD", "PUT", "PATCH"}

// httpMethod is string(v), without a copy for a known method.
func httpMethod(v []byte) string {
	for _, k := range knownMethods {
		if string(v) == k {
			return k
		}
	}
	return string(v)
}

// keptName is the map key for header name b if the decision reads it;
// the names Envoy always sends come without an allocation.
func keptName(b []byte) (string, bool) {
	switch string(b) { // compared without a conversion
	case "authorization":
		return "authorization", true
	case ":path":
		return ":path", true
	case ":method":
		return ":method", true
	case headerMCPMethod:
		return headerMCPMethod, true
	case headerMCPName:
		return headerMCPName, true
	case headerOrigin:
		return headerOrigin, true
	case headerTraceparent:
		return headerTraceparent, true
	case headerMCPProtocolVersion:
		return headerMCPProtocolVersion, true
	}
	if keepHeader(string(b)) {
		return string(b), true
	}
	return "", false
}

// headerValue reads one header_map entry: HeaderValue{key, value, raw_value}.
func (d *requestDecoder) headerValue(v []byte) error {
	var key, value, rawValue []byte
	err := eachLenField(v, func(n protowire.Number, v []byte) error {
		switch n {
		case fHVKey:
			key = v
		case fHVValue:
			value = v
		case fHVRawValue:
			rawValue = v
		}
		return nil
	})
	if err != nil {
		return err
	}
	if !utf8.Valid(key) || !utf8.Valid(value) { // raw_value is bytes: not checked
		return errUTF8
	}
	d.nRaw++
	if !keepHeader(string(key)) {
		return nil
	}
	if len(rawValue) > 0 {
		value = rawValue
	}
	d.raw = append(d.raw, rawHeader{strings.ToLower(string(key)), string(value)})
	return nil
}

// finish turns the fields into what the Check reads: headers when Envoy
// sent the headers map, else header_map flattened the way Envoy builds
// headers (lower-case names, repeats joined with ","); then the method and
// path, falling back to the pseudo-headers.
func (d *requestDecoder) finish(r *checkRequest) {
	r.headers = d.headers
	if d.nHeaders == 0 && d.nRaw > 0 {
		r.headers = make(map[string]string, len(d.raw))
		for _, h := range d.raw {
			if old, ok := r.headers[h.key]; ok {
				h.value = old + "," + h.value
			}
			r.headers[h.key] = h.value
		}
	}
	if r.headers == nil {
		r.headers = map[string]string{} // Headers == nil would mean "use Header"
	}
	r.method, r.path = d.method, d.path
	if r.path == "" {
		r.path = r.headers[":path"]
	}
	if r.method == "" {
		r.method = r.headers[":method"]
	}
	body := d.rawBody // Envoy sends raw_body when pack_as_bytes is on
	if len(body) == 0 {
		body = d.body
	}
	if d.ext == nil && len(body) == 0 {
		r.x = nil
		return
	}
	r.x = &checkExtras{ext: d.ext}
	if len(body) > 0 {
		r.x.body = append([]byte(nil), body...)
	}
}

// eachLenField calls fn with the number and value of every
// length-delimited field of the message in b, in order, and checks the
// framing of the others. A field number the reader expects as a message or
// string but that arrives with another wire type is unknown to
// proto.Unmarshal too, so fn never sees it.
func eachLenField(b []byte, fn func(protowire.Number, []byte) error) error {
	for len(b) > 0 {
		n, t, l := protowire.ConsumeTag(b)
		if l < 0 {
			return protowire.ParseError(l)
		}
		b = b[l:]
		if t != protowire.BytesType {
			l = protowire.ConsumeFieldValue(n, t, b)
			if l < 0 {
				return protowire.ParseError(l)
			}
			b = b[l:]
			continue
		}
		v, l := protowire.ConsumeBytes(b)
		if l < 0 {
			return protowire.ParseError(l)
		}
		b = b[l:]
		if err := fn(n, v); err != nil {
			return err
		}
	}
	return nil
}

// checkCodec is the gateway's gRPC codec: the standard protobuf codec,
// except that a Check request is decoded by decodeCheckRequest and a Check
// answer is already in the wire format. Health and reflection messages go
// through the standard codec.
type checkCodec struct{ encoding.CodecV2 }

func newCheckCodec() checkCodec { return checkCodec{encoding.GetCodecV2(protoenc.Name)} }

func (c checkCodec) Unmarshal(data mem.BufferSlice, v any) error {
	r, ok := v.(*checkRequest)
	if !ok {
		return c.CodecV2.Unmarshal(data, v)
	}
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	defer buf.Free()
	return decodeCheckRequest(buf.ReadOnlyData(), r)
}

func (c checkCodec) Marshal(v any) (mem.BufferSlice, error) {
	if a, ok := v.(*checkAnswer); ok {
		return a.bufs[:], nil
	}
	return c.CodecV2.Marshal(v)
}

// checkAnswer is a CheckResponse in the wire format (answerBuffer), as
// the one-buffer slice gRPC sends and then frees; own backs a small
// answer built for this Check alone.
type checkAnswer struct {
	bufs [1]mem.Buffer
	own  mem.SliceBuffer
}
