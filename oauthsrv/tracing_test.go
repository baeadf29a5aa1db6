package oauthsrv

import (
	"context"
	"github.com/mcpgateway/mcp-gateway/internal/metrics"
	dto "github.com/prometheus/client_model/go"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/mcpgateway/mcp-gateway/config"
	"github.com/mcpgateway/mcp-gateway/internal/tracing"
)

const (
	testTrace  = "4bf92f3577b34da6a3ce929d0e0e4736"
	testSpan   = "00f067aa0ba902b7"
	testParent = "00-" + testTrace + "-" + testSpan + "-01"
)

// tracedEnv is an env whose server exports spans to an in-memory exporter.
func tracedEnv(t *testing.T) (*env, *tracetest.InMemoryExporter) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	e := newEnv(t, func(_ *config.Config, o *Options) { o.Tracer = tracing.NewProvider(tp).Tracer() })
	return e, exp
}

// spansBy waits until exp holds a span for each endpoint (a handler's span
// ends just after its response may have reached the client) and returns
// the last span of each.
func spansBy(t *testing.T, exp *tracetest.InMemoryExporter, endpoints ...string) map[string]tracetest.SpanStub {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := map[string]tracetest.SpanStub{}
		for _, s := range exp.GetSpans() {
			for _, kv := range s.Attributes {
				if kv.Key == tracing.AttrEndpoint {
					got[kv.Value.AsString()] = s
				}
			}
		}
		missing := ""
		for _, ep := range endpoints {
			if _, ok := got[ep]; !ok {
				missing = ep
			}
		}
		if missing == "" {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("no span for endpoint %s; spans: %v", missing, got)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func spanAttr(s tracetest.SpanStub, k attribute.Key) string {
	for _, kv := range s.Attributes {
		if kv.Key == k {
			return kv.Value.Emit()
		}
	}
	return ""
}

func withTraceparent(req *http.Request) *http.Request {
	req.Header.Set("Traceparent", testParent)
	return req
}

// TestOAuthSpans runs the whole flow with tracing on: each endpoint has its
// span, with route, status and agent, and no attribute of any span holds
// the code, the verifier, a token or the password.
func TestOAuthSpans(t *testing.T) {
	e, exp := tracedEnv(t)
	client := e.register("traced")
	code, verifier := e.browser().authorizeCode(client, "alice", e.url+"/demo/mcp")
	toks := e.tokens(client, code, verifier)
	rt, at := toks["refresh_token"].(string), toks["access_token"].(string)
	if resp := e.postForm("/oauth/revoke", url.Values{"token": {rt}, "client_id": {client}}); resp.StatusCode != http.StatusOK {
		t.Fatalf("revoke: %d", resp.StatusCode)
	}
	req, _ := http.NewRequest(http.MethodGet, e.url+"/.well-known/oauth-protected-resource/demo/mcp", nil)
	readBodyString(e.do(withTraceparent(req)))
	req, _ = http.NewRequest(http.MethodGet, e.url+"/.well-known/oauth-authorization-server", nil)
	readBodyString(e.do(withTraceparent(req)))
	// A replayed code: a JSON OAuth error whose code is the span's reason.
	form := url.Values{"grant_type": {"authorization_code"}, "client_id": {client}, "code": {code},
		"redirect_uri": {loopbackRedirect}, "code_verifier": {verifier}}
	req, _ = http.NewRequest(http.MethodPost, e.url+"/oauth/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	expectOAuthError(t, e.do(withTraceparent(req)), http.StatusBadRequest, "invalid_grant")

	got := spansBy(t, exp, "register", "authorize", "login", "consent", "token", "revoke", "prm", "as_metadata")
	want := map[string]map[attribute.Key]string{
		"register":    {"http.route": "/oauth/register", "http.request.method": "POST", "http.response.status_code": "201"},
		"authorize":   {"http.route": "/oauth/authorize", tracing.AttrAgent: "demo"},
		"login":       {"http.route": "/login"},
		"revoke":      {"http.response.status_code": "200"},
		"prm":         {tracing.AttrAgent: "demo", "http.response.status_code": "200"},
		"as_metadata": {"http.route": "/.well-known/oauth-authorization-server"},
		"token":       {"http.response.status_code": "400", tracing.AttrReason: "invalid_grant"},
	}
	for ep, attrs := range want {
		for k, v := range attrs {
			if g := spanAttr(got[ep], k); g != v {
				t.Errorf("%s span: %s = %q, want %q", ep, k, g, v)
			}
		}
	}
	for _, ep := range []string{"prm", "as_metadata", "token"} {
		s := got[ep]
		if s.SpanContext.TraceID().String() != testTrace || s.Parent.SpanID().String() != testSpan || s.SpanKind != trace.SpanKindServer {
			t.Errorf("%s span: trace %s parent %s kind %v, want the caller's trace continued", ep, s.SpanContext.TraceID(), s.Parent.SpanID(), s.SpanKind)
		}
	}
	if n := got["token"].Name; n != "POST /oauth/token" {
		t.Errorf("token span name %q", n)
	}
	secrets := []string{code, verifier, rt, at, passwords["alice"]}
	for _, s := range exp.GetSpans() {
		for _, kv := range s.Attributes {
			for _, sec := range secrets {
				if strings.Contains(kv.Value.Emit(), sec) {
					t.Errorf("span %q attribute %s carries a secret: %q", s.Name, kv.Key, kv.Value.Emit())
				}
			}
		}
	}
}

// TestOAuthUntraced: with no tracer the routes are the handlers themselves.
func TestOAuthUntraced(t *testing.T) {
	h := http.NewServeMux()
	if got, ok := (&Server{}).traced("/x", "x", h).(*http.ServeMux); !ok || got != h {
		t.Fatal("untraced route wrapped")
	}
}

// TestRequestsCountedOnce: with tracing on or off, every request is counted
// once in mcp_gateway_oauth_requests_total, by its status.
func TestRequestsCountedOnce(t *testing.T) {
	for name, e := range map[string]*env{"untraced": newEnv(t), "traced": func() *env { e, _ := tracedEnv(t); return e }()} {
		count := func() float64 {
			var m dto.Metric
			if err := metrics.OAuthRequests.WithLabelValues("prm", "200").Write(&m); err != nil {
				t.Fatal(err)
			}
			return m.GetCounter().GetValue()
		}
		before := count()
		for range 3 {
			req, _ := http.NewRequest(http.MethodGet, e.url+"/.well-known/oauth-protected-resource/demo/mcp", nil)
			if resp := e.do(req); resp.StatusCode != http.StatusOK {
				t.Fatalf("%s: %d", name, resp.StatusCode)
			}
		}
		if got := count() - before; got != 3 {
			t.Errorf("%s: 3 requests counted %v times", name, got)
		}
	}
}
