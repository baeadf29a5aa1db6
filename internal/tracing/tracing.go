// Package tracing sets up OpenTelemetry span export from the standard OTEL_*
// environment variables, so operators of Envoy and Istio can follow one
// request through the mesh and into the gateway's Check and OAuth endpoints.
//
// Export is off unless the environment asks for it (Enabled). It uses the
// official SDK and its OTLP/gRPC exporter: the gateway already speaks gRPC,
// so the exporter adds no transport, and the exporter, batcher, sampler,
// resource and limits read their own variables (OTEL_EXPORTER_OTLP_*,
// OTEL_BSP_*, OTEL_TRACES_SAMPLER*, OTEL_SERVICE_NAME,
// OTEL_RESOURCE_ATTRIBUTES, OTEL_SPAN_*) as the specification says.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// ScopeName is the instrumentation scope of every span the gateway starts.
const ScopeName = "github.com/mcpgateway/mcp-gateway"

// ServiceName is service.name unless OTEL_SERVICE_NAME or
// OTEL_RESOURCE_ATTRIBUTES says otherwise.
const ServiceName = "mcp-gateway"

// Enabled reports whether the environment asks for span export:
//
//   - OTEL_SDK_DISABLED=true (any case) turns everything off;
//   - OTEL_TRACES_EXPORTER lists exporters: "otlp" turns export on, "none"
//     (alone) off; other names are not built in and are ignored with a
//     warning, as the specification asks;
//   - unset, export is on when an OTLP endpoint is configured
//     (OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT).
//     The specification defaults to "otlp"; the gateway stays off instead,
//     so a deployment that never configured a collector does not try
//     localhost:4317 forever.
//
// It fails on an OTLP protocol other than grpc: this build exports over
// OTLP/gRPC only, and sending gRPC to an http/protobuf port would lose every
// span in silence.
func Enabled(getenv func(string) string, log *slog.Logger) (bool, error) {
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") {
		return false, nil
	}
	on := getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
	if list := strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER")); list != "" {
		on = false
		for _, e := range strings.Split(list, ",") {
			switch e = strings.ToLower(strings.TrimSpace(e)); e {
			case "otlp":
				on = true
			case "none", "":
			default:
				log.Warn("OTEL_TRACES_EXPORTER names an exporter this build lacks; ignored (supported: otlp, none)", "exporter", e)
			}
		}
	}
	if !on {
		return false, nil
	}
	proto := getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if proto == "" {
		proto = getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	if proto != "" && proto != "grpc" {
		return false, fmt.Errorf("tracing: OTLP protocol %q is not supported: the gateway exports OTLP over gRPC (collector port 4317); set OTEL_EXPORTER_OTLP_PROTOCOL=grpc or unset it", proto)
	}
	return true, nil
}

// Provider is the gateway's tracer provider; the zero Provider (tracing
// off) hands out a nil Tracer, which every caller checks before doing any
// tracing work, so the off path costs one comparison.
type Provider struct {
	tp *sdktrace.TracerProvider
}

// Setup builds the provider the environment asks for (Enabled): OTLP/gRPC
// exporter, batch span processor, the SDK's sampler (default: parent-based,
// always on, so Envoy's sampling decision is kept). Export errors are logged
// through log. With tracing off it returns the zero Provider. It reads the
// process environment, as the SDK's parts do.
func Setup(ctx context.Context, version string, log *slog.Logger) (*Provider, error) {
	on, err := Enabled(os.Getenv, log)
	if err != nil || !on {
		return &Provider{}, err
	}
	exp, err := otlptracegrpc.New(ctx) // endpoint, headers, TLS, timeout… from OTEL_EXPORTER_OTLP_*
	if err != nil {
		return nil, fmt.Errorf("tracing: OTLP exporter: %w", err)
	}
	// Later detectors win: the environment overrides the defaults.
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", ServiceName), attribute.String("service.version", version)),
		resource.WithTelemetrySDK(),
		resource.WithFromEnv(),
	)
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		_ = exp.Shutdown(ctx)
		return nil, fmt.Errorf("tracing: resource (OTEL_RESOURCE_ATTRIBUTES): %w", err)
	}
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		log.Warn("opentelemetry", "err", err)
	}))
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	log.Info("tracing on: exporting spans over OTLP/gRPC (OTEL_* environment)")
	return &Provider{tp: tp}, nil
}

// NewProvider wraps an SDK provider (tests use one with an in-memory
// exporter or a span recorder).
func NewProvider(tp *sdktrace.TracerProvider) *Provider { return &Provider{tp: tp} }

// Tracer is the gateway's tracer, or nil when tracing is off.
func (p *Provider) Tracer() trace.Tracer {
	if p == nil || p.tp == nil {
		return nil
	}
	return p.tp.Tracer(ScopeName)
}

// Shutdown exports the spans still queued and stops the provider; a no-op
// when tracing is off.
func (p *Provider) Shutdown(ctx context.Context) error {
	if p == nil || p.tp == nil {
		return nil
	}
	return p.tp.Shutdown(ctx)
}

// Span attributes the gateway sets. Values are bounded, known strings (or
// an agent id, itself validated); never a token, code or secret.
const (
	AttrDecision   = attribute.Key("mcp_gateway.decision")   // allow | deny | error (store unreachable)
	AttrReason     = attribute.Key("mcp_gateway.reason")     // decision reason, or OAuth error code
	AttrAgent      = attribute.Key("mcp_gateway.agent")      // agent id
	AttrCredential = attribute.Key("mcp_gateway.credential") // oauth | agent_key | user_key | none
	AttrAdapter    = attribute.Key("mcp_gateway.adapter")    // grpc | http | proxy (dev mode)
	AttrEndpoint   = attribute.Key("mcp_gateway.endpoint")   // OAuth endpoint: token, authorize…
)

// Method is an HTTP method as spans record it: the known methods as they
// are, anything else "_OTHER" (as the semantic conventions say), so a
// client cannot put arbitrary text in a span name.
func Method(m string) string {
	switch m {
	case "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH":
		return m
	}
	return "_OTHER"
}
