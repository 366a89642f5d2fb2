package sender

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/trace"
)

func TestWithTraceParam(t *testing.T) {
	base := "https://chat.example/api/acs/chat-handler/tenants/t1/messaging/status"
	if got := withTraceParam(context.Background(), base); got != base {
		t.Errorf("without a span: %s, want the URL unchanged", got)
	}
	tid, _ := trace.TraceIDFromHex("0af7651916cd43dd8448eb211c80319c")
	sid, _ := trace.SpanIDFromHex("b7ad6b7169203331")
	ctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled}))
	want := base + "?traceparent=00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	if got := withTraceParam(ctx, base); got != want {
		t.Errorf("with a span: %s, want %s", got, want)
	}
	if got := withTraceParam(ctx, base+"?a=1"); got != base+"?a=1&traceparent=00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" {
		t.Errorf("with a query: %s", got)
	}
}
