package authz

import (
	"strings"
	"sync/atomic"
	"unicode/utf8"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/structpb"
)

// The Check answer is written straight in the protobuf wire format and
// handed to gRPC as it is (checkCodec). Building the response as messages
// and marshalling them cost about as much as the decision itself — ~30
// small allocations, and a reflective walk of the metadata Struct's map —
// on every MCP request. Receivers decode the bytes into exactly the message
// checkResponseMessage (in the tests) builds; TestCheckResponseWire compares
// the two for every kind of decision.
//
// What the answer carries, and why no more: Envoy and the load generator
// decode every field of it on every MCP request, so an allow is only the
// ok_response (identity headers, headers to remove). Its gRPC status is
// left out — an absent status is code 0, OK — and so is dynamic_metadata:
// the identity is already in the x-mcp-* request headers, which Envoy's
// access log reads with %REQ(x-mcp-user)% in both the gRPC and the HTTP
// mode. A denial carries the status, the denied_response and
// dynamic_metadata with the reason and what is known of the caller, for
// the access log's %DYNAMIC_METADATA(envoy.filters.http.ext_authz:reason)%.

// Field numbers, from the generated descriptors rather than retyped.
var (
	fRespStatus   = fieldNum(&authv3.CheckResponse{}, "status")
	fRespDenied   = fieldNum(&authv3.CheckResponse{}, "denied_response")
	fRespOK       = fieldNum(&authv3.CheckResponse{}, "ok_response")
	fRespMetadata = fieldNum(&authv3.CheckResponse{}, "dynamic_metadata")
	fStatusCode   = fieldNum(&rpcstatus.Status{}, "code")
	fStatusMsg    = fieldNum(&rpcstatus.Status{}, "message")
	fDenStatus    = fieldNum(&authv3.DeniedHttpResponse{}, "status")
	fDenHeaders   = fieldNum(&authv3.DeniedHttpResponse{}, "headers")
	fDenBody      = fieldNum(&authv3.DeniedHttpResponse{}, "body")
	fHTTPCode     = fieldNum(&typev3.HttpStatus{}, "code")
	fOKHeaders    = fieldNum(&authv3.OkHttpResponse{}, "headers")
	fOKRemove     = fieldNum(&authv3.OkHttpResponse{}, "headers_to_remove")
	fOptHeader    = fieldNum(&corev3.HeaderValueOption{}, "header")
	fOptAction    = fieldNum(&corev3.HeaderValueOption{}, "append_action")
	fHVKey        = fieldNum(&corev3.HeaderValue{}, "key")
	fHVValue      = fieldNum(&corev3.HeaderValue{}, "value")
	fStructFields = fieldNum(&structpb.Struct{}, "fields")
	fValueString  = fieldNum(&structpb.Value{}, "string_value")
)

// Map entries are messages {key = 1; value = 2} by the protobuf spec.
const fMapKey, fMapValue protowire.Number = 1, 2

const overwrite = uint64(corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD)

func fieldNum(m proto.Message, name string) protowire.Number {
	f := m.ProtoReflect().Descriptor().Fields().ByName(protoreflect.Name(name))
	if f == nil {
		panic("authz: generated code has no field " + name) // caught by every test run
	}
	return f.Number()
}

// utf8Safe returns s with invalid UTF-8 replaced: proto3 strings must be
// UTF-8 or receivers reject the message.
// Every string here already is (identities, constants, header names that
// arrived in a decoded CheckRequest); this keeps it so.
func utf8Safe(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// The size functions return encoded lengths. A proto3 scalar at its zero
// value is not written; a message field, a oneof member and a repeated
// element always are.

// sizeStr is the size of string field n holding s.
func sizeStr(n protowire.Number, s string) int {
	if s == "" {
		return 0
	}
	return protowire.SizeTag(n) + protowire.SizeBytes(len(s))
}

func sizeVarint(n protowire.Number, v uint64) int {
	if v == 0 {
		return 0
	}
	return protowire.SizeTag(n) + protowire.SizeVarint(v)
}

func sizeMsg(n protowire.Number, size int) int {
	return protowire.SizeTag(n) + protowire.SizeBytes(size)
}

// appendTag and appendLen take the one-byte fast path that every tag here
// and most lengths take.
func appendTag(b []byte, n protowire.Number, t protowire.Type) []byte {
	if n < 16 {
		return append(b, byte(n)<<3|byte(t))
	}
	return protowire.AppendTag(b, n, t)
}

func appendLen(b []byte, v int) []byte {
	if v < 0x80 {
		return append(b, byte(v))
	}
	return protowire.AppendVarint(b, uint64(v))
}

func appendBytesField(b []byte, n protowire.Number, s string) []byte {
	b = appendTag(b, n, protowire.BytesType)
	b = appendLen(b, len(s))
	return append(b, s...)
}

func appendStr(b []byte, n protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	return appendBytesField(b, n, s)
}

func appendVarint(b []byte, n protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = appendTag(b, n, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

func appendMsgHeader(b []byte, n protowire.Number, size int) []byte {
	b = appendTag(b, n, protowire.BytesType)
	return appendLen(b, size)
}

// sizeHeaderValue is the size of
// HeaderValueOption{header: {key, value}, append_action: OVERWRITE_IF_EXISTS_OR_ADD}.
func sizeHeaderValue(h HeaderValue) int {
	return sizeStr(fHVKey, h.Key) + sizeStr(fHVValue, h.Value)
}

func sizeOption(hvSize int) int {
	return sizeMsg(fOptHeader, hvSize) + sizeVarint(fOptAction, overwrite)
}

func sizeOptions(n protowire.Number, hs []HeaderValue) int {
	size := 0
	for _, h := range hs {
		size += sizeMsg(n, sizeOption(sizeHeaderValue(h)))
	}
	return size
}

func appendOptions(b []byte, n protowire.Number, hs []HeaderValue) []byte {
	for _, h := range hs {
		hv := sizeHeaderValue(h)
		b = appendMsgHeader(b, n, sizeOption(hv))
		b = appendMsgHeader(b, fOptHeader, hv)
		b = appendStr(b, fHVKey, h.Key)
		b = appendStr(b, fHVValue, h.Value)
		b = appendVarint(b, fOptAction, overwrite)
	}
	return b
}

// sizeValue is the size of Value{string_value: v}, as in
// Struct{fields: {k: Value{string_value: v}}}; string_value is a oneof
// member, so it is written even when empty.
func sizeValue(v string) int { return protowire.SizeTag(fValueString) + protowire.SizeBytes(len(v)) }

func sizeEntry(k string, valueSize int) int {
	return sizeStr(fMapKey, k) + sizeMsg(fMapValue, valueSize)
}

// bodyString is d.Body as a string, without a copy for the bodies of the
// reasons table (all of them, in practice).
func bodyString(d *Decision) string {
	for i := range reasons {
		if r := &reasons[i]; r.name == d.Reason && string(r.body) == string(d.Body) {
			return r.bodyStr
		}
	}
	return utf8Safe(string(d.Body))
}

// wireDecision is what goes on the wire for d, every string UTF-8.
type wireDecision struct {
	allow         bool
	code, status  uint64
	message, body string
	headers       []HeaderValue // upstream (allow) or response (deny)
	remove        []string
	metadata      [12]string // key, value pairs
	nMetadata     int
	// The encoded lengths of the status, the http response and the
	// metadata, computed once the fields above are final.
	statusLen, httpLen, mdLen int
}

func newWireDecision(d *Decision, w *wireDecision) {
	w.allow = d.Allow
	w.code = uint64(grpcCode(d.Status))
	w.status = uint64(d.Status)
	w.headers = d.Headers
	if d.Allow { // an allow carries no metadata (see above)
		w.headers = d.UpstreamHeaders
		w.remove = d.RemoveHeaders
	} else {
		w.message = utf8Safe(d.Reason)
		w.body = bodyString(d)
		w.metadata = [12]string{
			"reason", w.message,
			"agent", utf8Safe(d.Identity.Agent),
			"user", utf8Safe(d.Identity.User),
			"client_id", utf8Safe(d.Identity.ClientID),
			"credential", utf8Safe(d.Identity.Credential),
			"key_id", utf8Safe(d.KeyID),
		}
		w.nMetadata = len(w.metadata)
		if d.KeyID == "" {
			w.nMetadata -= 2
		}
	}
	// Copies only in the case that never happens in practice.
	for i, h := range w.headers {
		if !utf8.ValidString(h.Key) || !utf8.ValidString(h.Value) {
			hs := append([]HeaderValue(nil), w.headers...)
			for j := i; j < len(hs); j++ {
				hs[j] = HeaderValue{Key: utf8Safe(hs[j].Key), Value: utf8Safe(hs[j].Value)}
			}
			w.headers = hs
			break
		}
	}
	for i, r := range w.remove {
		if !utf8.ValidString(r) {
			rm := append([]string(nil), w.remove...)
			for j := i; j < len(rm); j++ {
				rm[j] = utf8Safe(rm[j])
			}
			w.remove = rm
			break
		}
	}
	w.httpLen = w.httpSize()
	if !w.allow {
		w.statusLen, w.mdLen = w.statusSize(), w.metadataSize()
	}
}

func (w *wireDecision) statusSize() int {
	return sizeVarint(fStatusCode, w.code) + sizeStr(fStatusMsg, w.message)
}

func (w *wireDecision) httpSize() int {
	if w.allow {
		size := sizeOptions(fOKHeaders, w.headers)
		for _, r := range w.remove {
			size += protowire.SizeTag(fOKRemove) + protowire.SizeBytes(len(r))
		}
		return size
	}
	return sizeMsg(fDenStatus, sizeVarint(fHTTPCode, w.status)) + sizeOptions(fDenHeaders, w.headers) + sizeStr(fDenBody, w.body)
}

func (w *wireDecision) metadataSize() int {
	size := 0
	for i := 0; i < w.nMetadata; i += 2 {
		size += sizeMsg(fStructFields, sizeEntry(w.metadata[i], sizeValue(w.metadata[i+1])))
	}
	return size
}

// appendCheckResponse appends the wire form of the CheckResponse for d:
// ok_response for an allow; status, denied_response and dynamic_metadata
// (reason, agent, user, client_id, credential, key_id) for a denial.
func appendCheckResponse(b []byte, d *Decision) []byte {
	var w wireDecision
	newWireDecision(d, &w)
	if b == nil {
		b = make([]byte, 0, w.size())
	}
	return w.append(b)
}

// pooledAnswer is the size above which an answer goes in a buffer of
// gRPC's pool: the pool's smallest tier is 256 bytes, and larger requests
// get a 4 KiB buffer, which gRPC takes back once it has written it.
const pooledAnswer = 256

// encodeCheckResponse is d's CheckResponse as gRPC sends it: in a buffer
// of gRPC's pool (returned to it once written, as gRPC's own codec does)
// when it is larger than pooledAnswer — an allow carrying the identity
// assertion is ~1 KiB — else in a new slice, which own backs so that
// boxing it as a mem.Buffer costs no allocation.
func encodeCheckResponse(d *Decision, own *mem.SliceBuffer) mem.Buffer {
	var w wireDecision
	newWireDecision(d, &w)
	size := w.size()
	if size <= pooledAnswer {
		*own = w.append(make([]byte, 0, size))
		return own
	}
	pool := mem.DefaultBufferPool()
	buf := pool.Get(size)
	*buf = w.append((*buf)[:0])
	return mem.NewBuffer(buf, pool)
}

// size is the encoded length of the CheckResponse.
func (w *wireDecision) size() int {
	if w.allow {
		return sizeMsg(fRespOK, w.httpLen)
	}
	return sizeMsg(fRespStatus, w.statusLen) + sizeMsg(fRespDenied, w.httpLen) + sizeMsg(fRespMetadata, w.mdLen)
}

// append appends the CheckResponse.
func (w *wireDecision) append(b []byte) []byte {
	if w.allow {
		b = appendMsgHeader(b, fRespOK, w.httpLen)
		b = appendOptions(b, fOKHeaders, w.headers)
		for _, r := range w.remove {
			b = appendBytesField(b, fOKRemove, r) // repeated: written even if empty
		}
		return b
	}

	b = appendMsgHeader(b, fRespStatus, w.statusLen)
	b = appendVarint(b, fStatusCode, w.code)
	b = appendStr(b, fStatusMsg, w.message)

	b = appendMsgHeader(b, fRespDenied, w.httpLen)
	b = appendMsgHeader(b, fDenStatus, sizeVarint(fHTTPCode, w.status))
	b = appendVarint(b, fHTTPCode, w.status)
	b = appendOptions(b, fDenHeaders, w.headers)
	b = appendStr(b, fDenBody, w.body)

	b = appendMsgHeader(b, fRespMetadata, w.mdLen)
	for i := 0; i < w.nMetadata; i += 2 {
		k, v := w.metadata[i], w.metadata[i+1]
		vs := sizeValue(v)
		b = appendMsgHeader(b, fStructFields, sizeEntry(k, vs))
		b = appendStr(b, fMapKey, k)
		b = appendMsgHeader(b, fMapValue, vs)
		b = appendBytesField(b, fValueString, v) // a oneof member: written even if empty
	}
	return b
}

// nDenied is the number of shareable 401 answers per agent (deniedSlot).
const nDenied = 5

// deniedSlot is where d's encoded answer is shared in its agent's
// agentInfo.denied, or nil when it cannot be: only 401s carrying the
// agent's precomputed challenge (d.sharedChallenge: a registered agent, the
// endpoint's plain form) that name no caller — no credential, a malformed
// or unknown one, an expired token — so that the answer is a function of
// the agent, the reason and the credential kind alone.
func (d *Decision) deniedSlot() *atomic.Pointer[mem.SliceBuffer] {
	ai := d.ai
	if !d.sharedChallenge || d.Identity.User != "" || d.Identity.ClientID != "" || d.KeyID != "" {
		return nil
	}
	i := -1
	switch cred := d.Identity.Credential; d.rsn {
	case rMissing:
		if cred == CredNone {
			i = 0
		}
	case rInvalid:
		switch cred {
		case CredOAuth:
			i = 1
		case CredAgent:
			i = 2
		case CredUser:
			i = 3
		}
	case rExpired:
		if cred == CredOAuth {
			i = 4
		}
	}
	if i < 0 {
		return nil
	}
	return &ai.denied[i]
}

// answerBuffer is d's encoded answer: the one its agent shares for this
// 401 (deniedSlot), built by the first such Check, else one built for d.
func answerBuffer(d *Decision, own *mem.SliceBuffer) mem.Buffer {
	slot := d.deniedSlot()
	if slot == nil {
		return encodeCheckResponse(d, own)
	}
	if b := slot.Load(); b != nil {
		return b // read-only: gRPC copies it out and never writes to it
	}
	b := mem.SliceBuffer(appendCheckResponse(nil, d))
	slot.Store(&b) // Checks racing here store equal bytes
	return &b
}
