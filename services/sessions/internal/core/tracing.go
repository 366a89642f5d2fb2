package core

import (
	"context"

	"go.opentelemetry.io/otel/trace"

	"github.com/switchboard-cc/switchboard/pkg/telemetry"
	"github.com/switchboard-cc/switchboard/services/sessions/internal/store"
)

// inSessionTrace starts a span for work an agent's frame does on a
// session. An agent's frame starts a trace of its own (their action); the
// work it does on a session (a reply on its way to the customer)
// continues the session's trace, the trace of the customer message that
// opened it, so that one trace holds the customer's message, its way to
// the agent, and the replies to it. The span links to the frame's span.
// A session stored without a trace keeps the frame's trace.
func (c *Core) inSessionTrace(ctx context.Context, sess *store.Session, name string) (context.Context, trace.Span) {
	frame := trace.SpanContextFromContext(ctx)
	parent := ctx
	if sc := telemetry.SpanContextOf(sess.Trace); sc.IsValid() && sc.TraceID() != frame.TraceID() {
		parent = trace.ContextWithRemoteSpanContext(ctx, sc)
	}
	opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindInternal)}
	if frame.IsValid() {
		opts = append(opts, trace.WithLinks(trace.Link{SpanContext: frame}))
	}
	return c.tracer.Start(parent, name, opts...)
}
