package hostile

import (
	"context"
	"maps"
	"regexp"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/mcpgateway/mcp-gateway/authz"
	"github.com/mcpgateway/mcp-gateway/config"
	"github.com/mcpgateway/mcp-gateway/oauthsrv"
)

// TestHostileMatrixTraced runs every case of the matrix with tracing on
// (memory store): the answers stay the same, and what the spans record is
// only known shapes (no client text but a validated agent id) and never a
// code, token, key or password the case handled.
func TestHostileMatrixTraced(t *testing.T) {
	b := backends(t)[0]
	for _, c := range matrix() {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			exp := tracetest.NewInMemoryExporter()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
			t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
			g := newGWWith(t, b, gwOptions{
				cfg:   c.tweak,
				authz: func(_ *gw, o *authz.Options) { o.Tracer = tp.Tracer("hostile") },
				oauth: func(_ *gw, o *oauthsrv.Options) { o.Tracer = tp.Tracer("hostile") },
			})
			r := c.run(t, g)
			writes := g.end()
			c.want.verify(t, g, r)
			if !maps.Equal(writes, c.want.writes) && (len(writes) > 0 || len(c.want.writes) > 0) {
				t.Errorf("store writes during the attack: %v, want %v", writes, c.want.writes)
			}
			if c.then != nil && !t.Failed() {
				c.then(t, g, r)
			}
			_ = tp.ForceFlush(context.Background())
			spans := exp.GetSpans()
			// The harness's proxy (devFront) decides in process, untraced.
			if len(spans) == 0 && !strings.HasPrefix(c.name, "proxy/") {
				t.Fatal("no span recorded")
			}
			for _, s := range spans {
				checkSpanShape(t, g, s)
			}
		})
	}
}

var (
	spanName = regexp.MustCompile(`^((GET|HEAD|POST|PUT|DELETE|CONNECT|OPTIONS|TRACE|PATCH|_OTHER) /[a-z/._{}-]*|envoy\.service\.auth\.v3\.Authorization/Check)$`)
	// Every attribute the gateway may set, with the shape of its value.
	spanAttrs = map[attribute.Key]*regexp.Regexp{
		"http.request.method":       regexp.MustCompile(`^(GET|HEAD|POST|PUT|DELETE|CONNECT|OPTIONS|TRACE|PATCH|_OTHER)$`),
		"http.route":                regexp.MustCompile(`^/[a-z/._-]*$`),
		"http.response.status_code": regexp.MustCompile(`^[1-5][0-9][0-9]$`),
		"rpc.system":                regexp.MustCompile(`^grpc$`),
		"rpc.service":               regexp.MustCompile(`^envoy\.service\.auth\.v3\.Authorization$`),
		"rpc.method":                regexp.MustCompile(`^Check$`),
		"rpc.grpc.status_code":      regexp.MustCompile(`^[0-9]{1,2}$`),
		"mcp_gateway.decision":      regexp.MustCompile(`^(allow|deny|error)$`),
		"mcp_gateway.reason":        regexp.MustCompile(`^[a-z_]{1,64}$`),
		"mcp_gateway.credential":    regexp.MustCompile(`^(oauth|agent_key|user_key|none)$`),
		"mcp_gateway.adapter":       regexp.MustCompile(`^(grpc|http)$`),
		"mcp_gateway.endpoint":      regexp.MustCompile(`^[a-z_]{1,32}$`),
		"mcp_gateway.agent":         nil, // config.ValidAgentID
	}
)

func checkSpanShape(t *testing.T, g *gw, s tracetest.SpanStub) {
	t.Helper()
	if !spanName.MatchString(s.Name) {
		t.Errorf("span name %q", s.Name)
	}
	for _, kv := range s.Attributes {
		v := kv.Value.Emit()
		re, known := spanAttrs[kv.Key]
		switch {
		case !known:
			t.Errorf("span %q: unexpected attribute %s=%q", s.Name, kv.Key, v)
		case re == nil && !config.ValidAgentID(v), re != nil && !re.MatchString(v):
			t.Errorf("span %q: attribute %s=%q has an unexpected shape", s.Name, kv.Key, v)
		}
		for _, sec := range g.secrets {
			if len(sec) >= 8 && strings.Contains(v, sec) {
				t.Errorf("span %q: attribute %s carries a secret (%.8s…)", s.Name, kv.Key, sec)
			}
		}
		for _, pw := range passwords {
			if strings.Contains(v, pw) {
				t.Errorf("span %q: attribute %s carries a password", s.Name, kv.Key)
			}
		}
	}
}
