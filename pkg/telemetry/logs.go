package telemetry

import (
	"context"
	"log/slog"

	"go.opentelemetry.io/otel/trace"
)

// LogHandler adds the trace_id and span_id of the span in a record's
// context to every line logged with one (slog's …Context methods, or a
// handler given the request's or message's context), so a log line leads
// to its trace and back.
func LogHandler(h slog.Handler) slog.Handler { return traceLogs{h} }

type traceLogs struct{ slog.Handler }

func (t traceLogs) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r = r.Clone()
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return t.Handler.Handle(ctx, r)
}

func (t traceLogs) WithAttrs(a []slog.Attr) slog.Handler { return traceLogs{t.Handler.WithAttrs(a)} }
func (t traceLogs) WithGroup(n string) slog.Handler      { return traceLogs{t.Handler.WithGroup(n)} }
