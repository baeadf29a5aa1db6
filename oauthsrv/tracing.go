package oauthsrv

import (
	"bytes"
	"encoding/json"
	"mime"
	"net/http"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/mcpgateway/mcp-gateway/internal/tracing"
)

// traced wraps one route's handler in a server span continuing the
// request's W3C trace context, and counts it as instrument does, through
// the one status-keeping writer (tracing off: h itself; Handler then uses
// instrument). The span carries the
// route, the endpoint, the status, the OAuth error code of a JSON error and
// the agent when the URL names one (metadata, authorize). Nothing of the
// query or the body is recorded: they hold codes, verifiers, secrets and
// tokens.
func (s *Server) traced(route, endpoint string, h http.Handler) http.Handler {
	if s.tracer == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := propagation.TraceContext{}.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		method := tracing.Method(r.Method)
		ctx, span := s.tracer.Start(ctx, method+" "+route, trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(
				attribute.String("http.request.method", method),
				attribute.String("http.route", route),
				tracing.AttrEndpoint.String(endpoint),
			))
		defer span.End()
		if agent := s.urlAgent(endpoint, r); agent != "" {
			span.SetAttributes(tracing.AttrAgent.String(agent))
		}
		tw := &traceWriter{statusWriter: statusWriter{ResponseWriter: w}}
		h.ServeHTTP(tw, r.WithContext(ctx))
		tw.count(endpoint)
		span.SetAttributes(attribute.Int("http.response.status_code", tw.status))
		if code := tw.oauthError(); code != "" {
			span.SetAttributes(tracing.AttrReason.String(code))
		}
		if tw.status >= 500 {
			span.SetStatus(codes.Error, http.StatusText(tw.status))
		}
	})
}

// urlAgent is the agent the request's URL names, or "": the protected
// resource metadata's path, the authorize request's resource parameter.
func (s *Server) urlAgent(endpoint string, r *http.Request) string {
	switch endpoint {
	case "prm":
		id, _, _ := s.res.ParseMetadata(r.URL.Path)
		return id
	case "authorize":
		return s.resourceAgent(r.URL.Query().Get("resource"))
	}
	return ""
}

// maxErrorPeek bounds what traceWriter keeps of an error body.
const maxErrorPeek = 1024

// traceWriter is a statusWriter that also keeps the start of a JSON error
// body, where the OAuth error code is. A success body (tokens) is never kept.
type traceWriter struct {
	statusWriter
	peek []byte
}

func (w *traceWriter) Write(b []byte) (int, error) {
	n, err := w.statusWriter.Write(b)
	if w.status >= 400 && len(w.peek) < maxErrorPeek {
		w.peek = append(w.peek, b[:min(n, maxErrorPeek-len(w.peek))]...)
	}
	return n, err
}

// oauthError is the "error" of a JSON error body when it is an error-code
// token (RFC 6749 §5.2: printable ASCII; here [a-z_], as every code the
// server writes), else "".
func (w *traceWriter) oauthError() string {
	if w.status < 400 || len(w.peek) == 0 {
		return ""
	}
	if mt, _, _ := mime.ParseMediaType(w.Header().Get("Content-Type")); mt != "application/json" {
		return ""
	}
	var body struct {
		Error string `json:"error"`
	}
	if json.NewDecoder(bytes.NewReader(w.peek)).Decode(&body) != nil || len(body.Error) > 64 {
		return ""
	}
	for _, c := range []byte(body.Error) {
		if (c < 'a' || c > 'z') && c != '_' {
			return ""
		}
	}
	return body.Error
}
