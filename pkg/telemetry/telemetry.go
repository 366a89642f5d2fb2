// Package telemetry sets up OpenTelemetry tracing for a process: W3C trace
// context propagation always, and span export over OTLP/HTTP when an
// endpoint is configured.
package telemetry

import (
	"context"
	"errors"
	"fmt"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
)

// Config of tracing.
type Config struct {
	ServiceName string
	// OTLPEndpoint is the collector's OTLP/HTTP endpoint URL, e.g.
	// http://otel-collector:4318. Empty disables export.
	OTLPEndpoint string
	// SampleRatio of new traces to keep (parent decisions are honoured);
	// 0 means 1.
	SampleRatio float64
}

// Setup installs the global propagator and, with an endpoint, a tracer
// provider. The returned function flushes and stops it.
func Setup(ctx context.Context, cfg Config) (func(context.Context) error, error) {
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	if cfg.OTLPEndpoint == "" {
		return func(context.Context) error { return nil }, nil
	}
	if cfg.SampleRatio < 0 || cfg.SampleRatio > 1 {
		return nil, errors.New("telemetry: sample ratio must be within [0, 1]")
	}
	if cfg.SampleRatio == 0 {
		cfg.SampleRatio = 1
	}
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(cfg.OTLPEndpoint))
	if err != nil {
		return nil, fmt.Errorf("otlp exporter %s: %w", cfg.OTLPEndpoint, err)
	}
	res := resource.NewWithAttributes(semconv.SchemaURL, semconv.ServiceName(cfg.ServiceName))
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(cfg.SampleRatio))),
	)
	otel.SetTracerProvider(tp)
	return tp.Shutdown, nil
}
