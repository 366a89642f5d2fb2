package telemetry_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchboard-cc/switchboard/pkg/telemetry"
)

func TestLogHandlerAddsTraceAndSpanIDs(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(telemetry.LogHandler(slog.NewTextHandler(&buf, nil))).With("service", "x")
	tp := sdktrace.NewTracerProvider()
	ctx, span := tp.Tracer("t").Start(context.Background(), "work")
	log.InfoContext(ctx, "in a span")
	span.End()
	log.Info("outside")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	sc := span.SpanContext()
	if !strings.Contains(lines[0], "trace_id="+sc.TraceID().String()) || !strings.Contains(lines[0], "span_id="+sc.SpanID().String()) {
		t.Errorf("line in a span = %q, want its trace_id and span_id", lines[0])
	}
	if strings.Contains(lines[1], "trace_id") {
		t.Errorf("line outside a span = %q, want no trace_id", lines[1])
	}
}

func TestHTTPHandlerSpans(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	mux := http.NewServeMux()
	var seen trace.SpanContext
	mux.HandleFunc("POST /tenants/{id}/status", func(w http.ResponseWriter, r *http.Request) {
		seen = trace.SpanContextFromContext(r.Context())
		w.WriteHeader(http.StatusAccepted)
	})
	h := telemetry.HTTPHandler(tp, mux)

	parent := "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	for _, tc := range []struct{ name, target, header string }{
		{"header", "/tenants/t1/status?To=%2B15550001111", parent},
		{"query parameter", "/tenants/t1/status?traceparent=" + parent, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec.Reset()
			r := httptest.NewRequest(http.MethodPost, tc.target, nil)
			if tc.header != "" {
				r.Header.Set("traceparent", tc.header)
			}
			h.ServeHTTP(httptest.NewRecorder(), r)
			spans := rec.Ended()
			if len(spans) != 1 {
				t.Fatalf("%d spans, want 1", len(spans))
			}
			s := spans[0]
			if s.Name() != "POST /tenants/{id}/status" {
				t.Errorf("span name %q, want the route", s.Name())
			}
			if got := s.SpanContext().TraceID().String(); got != "0af7651916cd43dd8448eb211c80319c" {
				t.Errorf("trace %s, want the caller's", got)
			}
			if seen.SpanID() != s.SpanContext().SpanID() {
				t.Error("the handler's context does not hold the request's span")
			}
			for _, kv := range s.Attributes() {
				if strings.Contains(kv.Value.String(), "15550001111") || strings.Contains(kv.Value.String(), "t1") {
					t.Errorf("attribute %s=%s carries the path or query", kv.Key, kv.Value.String())
				}
			}
		})
	}

	rec.Reset()
	r := httptest.NewRequest(http.MethodGet, "/tenants/t1/status", nil)
	r.Header.Set("Upgrade", "websocket")
	h.ServeHTTP(httptest.NewRecorder(), r)
	if n := len(rec.Ended()); n != 0 {
		t.Errorf("a websocket upgrade got %d spans, want none (its frames get theirs)", n)
	}
}
