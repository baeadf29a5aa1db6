package oauthsrv

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"time"

	"github.com/mcpgateway/mcp-gateway/internal/metrics"
)

// maxBody caps request bodies of the JSON and form endpoints.
const maxBody = 64 << 10

// errorBody is the RFC 6749 §5.2 / RFC 7591 §3.2.2 error body.
type errorBody struct {
	Error       string `json:"error"`
	Description string `json:"error_description,omitempty"`
}

// writeJSON sends v as a JSON answer that no cache keeps.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil { // only our own types are encoded; never expected
		b, status = []byte(`{"error":"server_error"}`), http.StatusServiceUnavailable
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// writeOAuthError sends the JSON error body of code and desc with status.
func writeOAuthError(w http.ResponseWriter, status int, code, desc string) {
	writeJSON(w, status, errorBody{Error: code, Description: desc})
}

// writeUnavailable answers a store outage: 503, retry in a few seconds.
func writeUnavailable(w http.ResponseWriter) {
	(&oauthError{status: http.StatusServiceUnavailable, code: "temporarily_unavailable",
		description: "the service is temporarily unavailable, retry shortly", header: map[string]string{"Retry-After": "5"}}).write(w)
}

// writeMethodNotAllowed answers 405 naming the allowed methods.
func writeMethodNotAllowed(w http.ResponseWriter, allow string) {
	(&oauthError{status: http.StatusMethodNotAllowed, code: "invalid_request", description: "method not allowed",
		header: map[string]string{"Allow": allow}}).write(w)
}

// writeRateLimited counts and answers a request over endpoint's limit.
func writeRateLimited(w http.ResponseWriter, endpoint string, retry time.Duration) {
	metricsRateLimited(endpoint)
	(&oauthError{status: http.StatusTooManyRequests, code: "rate_limited", description: "too many requests, retry later",
		header: map[string]string{"Retry-After": retryAfter(retry)}}).write(w)
}

// metricsRateLimited counts a refusal by endpoint's rate limit.
func metricsRateLimited(endpoint string) { metrics.RateLimited.WithLabelValues(endpoint).Inc() }

// retryAfter renders a Retry-After value in whole seconds, at least 1.
func retryAfter(d time.Duration) string {
	sec := int64((d + time.Second - 1) / time.Second)
	if sec < 1 {
		sec = 1
	}
	return strconv.FormatInt(sec, 10)
}

// hasMediaType reports whether the request's Content-Type is want (parameters
// such as charset allowed).
func hasMediaType(r *http.Request, want string) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return err == nil && mt == want
}

var (
	errTooLarge = errors.New("request body too large")
	// errBodyTimeout means the body did not arrive within http_limits.body_timeout
	// (the listener's read deadline, internal/slowbody).
	errBodyTimeout = errors.New("request body not received in time")
)

// readBody reads at most maxBody bytes of the request body.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return nil, errTooLarge
	case errors.Is(err, os.ErrDeadlineExceeded):
		return nil, errBodyTimeout
	}
	return b, err
}

// writeBodyError answers a body that could not be read (bodyError).
func writeBodyError(w http.ResponseWriter, err error) { bodyError(err).write(w) }

// bodyError is the refusal of a body that could not be read: 413 when too
// large, 408 when too slow (closing the connection, whose rest may never
// come), else 400.
func bodyError(err error) *oauthError {
	switch {
	case errors.Is(err, errTooLarge):
		return &oauthError{status: http.StatusRequestEntityTooLarge, code: "invalid_request", description: "request body too large"}
	case errors.Is(err, errBodyTimeout):
		return &oauthError{status: http.StatusRequestTimeout, code: "invalid_request", description: "the request body was not received in time",
			header: map[string]string{"Connection": "close"}}
	default:
		return &oauthError{status: http.StatusBadRequest, code: "invalid_request", description: "could not read the request body"}
	}
}

// readForm parses a form-encoded body (never the URL query) and refuses
// repeated parameters (RFC 6749 §3.2) with an oauthError.
func readForm(w http.ResponseWriter, r *http.Request) (url.Values, error) {
	if !hasMediaType(r, "application/x-www-form-urlencoded") {
		return nil, badRequest("invalid_request", "Content-Type must be application/x-www-form-urlencoded")
	}
	b, err := readBody(w, r)
	if err != nil {
		return nil, bodyError(err)
	}
	form, err := url.ParseQuery(string(b))
	if err != nil {
		return nil, badRequest("invalid_request", "malformed form body")
	}
	for k, v := range form {
		if len(v) > 1 {
			return nil, badRequest("invalid_request", "parameter "+strconv.Quote(trunc(k, 64))+" is repeated")
		}
	}
	return form, nil
}

// trunc returns at most the first n bytes of s.
func trunc(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// statusWriter remembers the response status for the metrics.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController and MaxBytesReader reach the writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// instrument counts requests by endpoint and status.
func instrument(endpoint string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w}
		h.ServeHTTP(sw, r)
		sw.count(endpoint)
	})
}

// count settles the status of a handler that wrote nothing (200) and
// counts the request.
func (w *statusWriter) count(endpoint string) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	metrics.OAuthRequests.WithLabelValues(endpoint, strconv.Itoa(w.status)).Inc()
}

// cors adds CORS to the endpoints browser-based MCP clients call directly
// and answers preflights. Cookies are never involved, so no credentials.
func (s *Server) cors(methods string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hdr := w.Header()
		origin := r.Header.Get("Origin")
		allowed := origin != "" && (s.corsAny || s.corsOrigins[origin])
		if !s.corsAny {
			hdr.Add("Vary", "Origin")
		}
		if allowed {
			if s.corsAny {
				hdr.Set("Access-Control-Allow-Origin", "*")
			} else {
				hdr.Set("Access-Control-Allow-Origin", origin)
			}
			hdr.Set("Access-Control-Expose-Headers", "WWW-Authenticate, Retry-After")
		}
		if r.Method == http.MethodOptions {
			if allowed && r.Header.Get("Access-Control-Request-Method") != "" {
				hdr.Set("Access-Control-Allow-Methods", methods)
				hdr.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, MCP-Protocol-Version")
				hdr.Set("Access-Control-Max-Age", "86400")
			}
			hdr.Set("Allow", methods)
			w.WriteHeader(http.StatusNoContent)
			return
		}
		h.ServeHTTP(w, r)
	})
}
