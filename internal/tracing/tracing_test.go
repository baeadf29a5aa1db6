package tracing

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/mcpgateway/mcp-gateway/internal/logtest"
)

func TestEnabled(t *testing.T) {
	const ep = "OTEL_EXPORTER_OTLP_ENDPOINT"
	for _, c := range []struct {
		name string
		env  map[string]string
		on   bool
		err  string
		warn bool
	}{
		{name: "nothing set: off", env: nil},
		{name: "endpoint: on", env: map[string]string{ep: "http://collector:4317"}, on: true},
		{name: "traces endpoint: on", env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4317"}, on: true},
		{name: "exporter otlp, default endpoint: on", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, on: true},
		{name: "exporter none wins over an endpoint", env: map[string]string{ep: "http://c:4317", "OTEL_TRACES_EXPORTER": "none"}},
		{name: "SDK disabled wins", env: map[string]string{ep: "http://c:4317", "OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "TRUE"}},
		{name: "SDK disabled=false is not disabled", env: map[string]string{ep: "http://c:4317", "OTEL_SDK_DISABLED": "false"}, on: true},
		{name: "unknown exporter ignored with a warning", env: map[string]string{ep: "http://c:4317", "OTEL_TRACES_EXPORTER": "zipkin"}, warn: true},
		{name: "list with otlp", env: map[string]string{"OTEL_TRACES_EXPORTER": "console, OTLP"}, on: true, warn: true},
		{name: "grpc protocol", env: map[string]string{ep: "http://c:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, on: true},
		{name: "http protocol refused", env: map[string]string{ep: "http://c:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, err: "not supported"},
		{name: "traces protocol wins", env: map[string]string{ep: "http://c:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"}, on: true},
		{name: "protocol irrelevant when off", env: map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var logs logtest.Buffer
			on, err := Enabled(func(k string) string { return c.env[k] }, slog.New(slog.NewJSONHandler(&logs, nil)))
			if on != c.on || (err == nil) != (c.err == "") || (err != nil && !strings.Contains(err.Error(), c.err)) {
				t.Fatalf("Enabled = %v, %v; want %v, error containing %q", on, err, c.on, c.err)
			}
			if warned := strings.Contains(logs.String(), "WARN"); warned != c.warn {
				t.Errorf("warning logged %v, want %v: %s", warned, c.warn, logs.String())
			}
		})
	}
}

// TestSetup: off, the provider hands out no tracer and shutting it down is
// a no-op; on, a tracer; a refused protocol is an error.
func TestSetup(t *testing.T) {
	for _, k := range []string{"OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"} {
		t.Setenv(k, "")
	}
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	log := slog.New(slog.DiscardHandler)
	p, err := Setup(context.Background(), "test", log)
	if err != nil || p.Tracer() != nil || p.Shutdown(context.Background()) != nil {
		t.Fatalf("off: %v %v", p, err)
	}
	var nilP *Provider
	if nilP.Tracer() != nil || nilP.Shutdown(context.Background()) != nil {
		t.Fatal("nil provider")
	}
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
	p, err = Setup(context.Background(), "test", log)
	if err != nil || p.Tracer() == nil {
		t.Fatalf("on: %v %v", p, err)
	}
	_ = p.Shutdown(context.Background())
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
	if _, err := Setup(context.Background(), "test", log); err == nil {
		t.Fatal("http/protobuf accepted")
	}
}
