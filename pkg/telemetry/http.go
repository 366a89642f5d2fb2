package telemetry

import (
	"net/http"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// TraceParam is the query parameter that carries W3C trace context where a
// caller cannot set headers: outbound-sender adds it to the status
// callback URL it gives Twilio, so the callback continues the trace of the
// message it reports on.
const TraceParam = "traceparent"

// HTTPHandler gives every request a server span "<METHOD> <route>",
// continuing the trace context of the request's traceparent header (or of
// its TraceParam query parameter). Only the method, route pattern and
// status are recorded: paths and queries may carry addresses. A websocket
// upgrade gets no span (it would last as long as the socket): the
// service gives each frame its own.
func HTTPHandler(tp trace.TracerProvider, h http.Handler) http.Handler {
	tracer := tp.Tracer("github.com/switchboard-cc/switchboard/pkg/telemetry")
	prop := propagation.TraceContext{}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			h.ServeHTTP(w, r)
			return
		}
		carrier := propagation.HeaderCarrier(r.Header)
		if r.Header.Get(TraceParam) == "" {
			if tp := r.URL.Query().Get(TraceParam); tp != "" {
				carrier = propagation.HeaderCarrier(http.Header{"Traceparent": {tp}})
			}
		}
		ctx, span := tracer.Start(prop.Extract(r.Context(), carrier), r.Method,
			trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(attribute.String("http.request.method", r.Method)))
		defer span.End()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		r = r.WithContext(ctx)
		h.ServeHTTP(sw, r)
		if r.Pattern != "" {
			route := r.Pattern
			if _, path, ok := strings.Cut(route, " "); ok {
				route = path
			}
			span.SetName(r.Method + " " + route)
			span.SetAttributes(attribute.String("http.route", route))
		}
		span.SetAttributes(attribute.Int("http.response.status_code", sw.status))
		if sw.status >= 500 {
			span.SetStatus(codes.Error, http.StatusText(sw.status))
		}
	})
}

// statusWriter remembers the status a handler wrote.
type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (flushes,
// deadlines).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
