package authz

import (
	"net/http"
	"strings"

	"go.opentelemetry.io/otel/trace"
)

// CheckPath is where the HTTP check adapter listens.
const CheckPath = "/authz/check"

// HTTPCheckHandler is the decision over plain HTTP, for proxies that ask a
// URL before forwarding:
//
//   - nginx auth_request: GET /authz/check with the original target in
//     X-Original-URI ($request_uri, raw, with query) and the method in
//     X-Original-Method (the request's own method when absent);
//   - Envoy ext_authz http_service with path_prefix /authz/check:
//     /authz/check/<original path and query>, method as sent.
//
// It answers only 200 (identity in x-mcp-* response headers, headers to
// strip in x-envoy-auth-headers-to-remove), 401 or 403 (WWW-Authenticate
// challenge, JSON body): nginx turns any other status into a 500. So a 404
// decision (not an MCP path, unknown agent) answers 403, and a 503 decision
// (store unreachable) answers 403 with a temporarily_unavailable body and
// Retry-After — a refusal, never an allow, and not a 401 that would send
// clients into a pointless OAuth flow.
//
// It reads the raw request target, so it must see requests before any
// path cleaning: http.ServeMux redirects /authz/check//x and
// /authz/check/a/../b; mount it with WithHTTPCheck.
func HTTPCheckHandler(a *Authorizer) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw := r.RequestURI
		if raw == "" || raw[0] != '/' {
			raw = r.URL.RequestURI() // absolute-form target, or a handler test
		}
		var target string
		method := r.Method
		switch {
		case raw == CheckPath || strings.HasPrefix(raw, CheckPath+"?"):
			target = r.Header.Get("X-Original-URI")
			if m := r.Header.Get("X-Original-Method"); m != "" {
				method = m
			}
		case strings.HasPrefix(raw, CheckPath+"/"):
			target = raw[len(CheckPath):]
		}
		ctx := r.Context()
		var span trace.Span // nil unless tracing is on (tracing.go)
		if a.tracer != nil {
			ctx, span = a.startHTTPCheckSpan(r)
		}
		d := a.Decide(ctx, &Request{
			Method: method,
			Path:   target,
			Header: func(name string) string {
				vs := r.Header.Values(name)
				switch len(vs) {
				case 0:
					return ""
				case 1:
					return vs[0]
				}
				return strings.Join(vs, ",")
			},
			HeaderNames: func(yield func(string) bool) {
				for k := range r.Header {
					if !yield(k) {
						return
					}
				}
			},
			Adapter: "http",
		})
		if span != nil {
			endCheckSpan(span, d, httpStatusKey, HTTPStatus(d))
		}
		writeHTTPDecision(w, d)
	})
}

// HeaderError carries a denial's OAuth-style error code ("invalid_token",
// "origin_not_allowed"…) on the HTTP check's answer.
const HeaderError = "X-Mcp-Error"

// HTTPStatus is the status the HTTP check adapter answers for a decision.
func HTTPStatus(d *Decision) int {
	switch {
	case d.Allow:
		return http.StatusOK
	case d.Status == http.StatusUnauthorized:
		return http.StatusUnauthorized
	default:
		return http.StatusForbidden
	}
}

func writeHTTPDecision(w http.ResponseWriter, d *Decision) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	if d.Allow {
		for _, u := range d.UpstreamHeaders {
			h.Set(u.Key, u.Value)
		}
		h.Set("X-Envoy-Auth-Headers-To-Remove", strings.Join(d.RemoveHeaders, ", "))
		w.WriteHeader(http.StatusOK)
		return
	}
	for _, v := range d.Headers {
		h.Set(v.Key, v.Value)
	}
	// nginx replaces a 403's body with its own: it rebuilds it from these
	// (deploy/nginx/mcp-gateway.conf.template), so a refusal without a
	// challenge (not your agent, an unreadable MCP request) still says why.
	if r := &reasons[d.rsn]; d.rsn != rOK && r.err != "" {
		h.Set(HeaderError, r.err)
		h.Set("X-Mcp-Error-Description", r.desc)
	}
	w.WriteHeader(HTTPStatus(d))
	_, _ = w.Write(d.Body)
}

// WithHTTPCheck serves CheckPath and everything under it with
// HTTPCheckHandler, matching the raw request target before next (typically
// a ServeMux, which would clean and redirect tricky paths) sees it.
func WithHTTPCheck(a *Authorizer, next http.Handler) http.Handler {
	check := HTTPCheckHandler(a)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw := r.RequestURI
		if raw == CheckPath || strings.HasPrefix(raw, CheckPath+"/") || strings.HasPrefix(raw, CheckPath+"?") {
			check.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}
