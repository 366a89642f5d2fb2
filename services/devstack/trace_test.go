package devstack_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"

	"github.com/switchboard-cc/switchboard/services/devstack/devstacktest"
	"github.com/switchboard-cc/switchboard/services/sessions/agentclient"
	"github.com/switchboard-cc/switchboard/services/twilio-sim/simclient"
)

// One trace follows a customer's message from chat-handler's webhook
// through sessions, workflow-runner and distribution to the offer frame on
// the agent's socket; the agent's reply continues it (docs/operate.md,
// Traces) through outbound-sender's call to Twilio and Twilio's status
// callback. No span carries the customer's number or a message's text.
func TestOneTracePerCustomerMessage(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	var logs lockedBuffer
	info := devstacktest.StartLogged(t, slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}), devstacktest.Tracing(rec))
	ctx := timeout(t)
	sim := simclient.New(info.TwilioSimURL, nil)
	alice := agent(t, ctx, info, "alice@demo.example")

	customer, business := "whatsapp:+15551239876", "whatsapp:+12025550101"
	body := "Parcel 4711 never came, please help"
	if _, err := sim.SendMessage(ctx, simclient.CustomerMessage{From: customer, To: business, Body: body, ProfileName: "Ann"}); err != nil {
		t.Fatalf("customer send: %v", err)
	}
	o := waitOffer(t, ctx, alice, customer)
	acceptOffer(t, ctx, alice, o)
	reply := "So sorry, it ships again today"
	ack, err := alice.Request(ctx, "message.send", map[string]string{"session_id": o.SessionID, "body": reply, "client_msg_id": "trace-1"})
	if err != nil {
		t.Fatalf("send reply: %v", err)
	}
	replyID := ack.Field("message_id")
	if _, err := sim.WaitInboxMessage(ctx, customer, func(m simclient.OutboundMessage) bool { return m.Body == reply }); err != nil {
		t.Fatalf("reply never reached the customer: %v", err)
	}
	// Twilio's status callback, through chat-handler and outbound-sender,
	// shows the agent the reply delivered.
	if _, err := alice.WaitFor(ctx, "message.status", func(f agentclient.Frame) bool {
		return f.Field("message_id") == replyID && f.Field("status") == "delivered"
	}); err != nil {
		t.Fatalf("no delivered status for the reply: %v", err)
	}

	// Spans end just after the work they cover (a frame's after it is
	// written): wait until the whole trace is recorded.
	var spans []sdktrace.ReadOnlySpan
	err = waitFor(ctx, func() error {
		spans = rec.Ended()
		return checkCustomerTrace(spans, replyID)
	})
	if err != nil {
		t.Fatal(err)
	}

	// No line the stack logged at info or above carries the customer's
	// number or a message's text (docs/operate.md, Logs).
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) < 2 {
		t.Fatalf("the stack logged %d lines at info or above; the check below needs its log", len(lines))
	}
	t.Logf("%d log lines at info or above checked", len(lines))
	for _, line := range lines {
		for _, secret := range []string{"15551239876", body, reply} {
			if strings.Contains(line, secret) {
				t.Errorf("a log line carries %q: %s", secret, line)
			}
		}
	}

	// The agent's frame started a trace of its own, linked from the span
	// that continues the session's trace.
	frame := find(spans, "sessions", "websocket receive message.send", nil)
	sessionReply := find(spans, "sessions", "session reply", nil)
	if frame == nil || sessionReply == nil {
		t.Fatal("no span for the agent's message.send frame or its session reply")
	}
	offer := find(spans, "sessions", "websocket send offer.created", nil)
	if frame.SpanContext().TraceID() == offer.SpanContext().TraceID() {
		t.Error("the agent's frame continues the customer's trace; it should start its own")
	}
	linked := false
	for _, l := range sessionReply.Links() {
		linked = linked || l.SpanContext.SpanID() == frame.SpanContext().SpanID()
	}
	if !linked {
		t.Error("the session reply span does not link to the agent's frame span")
	}

	for _, s := range spans {
		if leak := leaks(s, "15551239876", body, reply); leak != "" {
			t.Errorf("span %q of %s carries %s", s.Name(), service(s), leak)
		}
	}
}

// checkCustomerTrace names what is missing from the trace of the offer
// frame (the customer's message), or returns nil.
func checkCustomerTrace(spans []sdktrace.ReadOnlySpan, replyID string) error {
	offer := find(spans, "sessions", "websocket send offer.created", nil)
	if offer == nil {
		return errors.New("no span for the offer frame written to the agent's socket (sessions)")
	}
	id := offer.SpanContext().TraceID()
	inTrace := func(s sdktrace.ReadOnlySpan) bool { return s.SpanContext().TraceID() == id }
	var missing []string
	for _, want := range []struct {
		service, name string
		match         func(sdktrace.ReadOnlySpan) bool
	}{
		{"chat-handler", "POST /api/acs/chat-handler/tenants/{tenantId}/messaging/inbound", nil},
		{"sessions", "consume chat.message.received", nil},
		{"workflow-runner", "consume session.session.started", nil},
		{"workflow-runner", "workflow step queue_task", nil},
		{"distribution", "consume workflow.task.requested", nil},
		{"sessions", "consume distribution.task.offered", nil},
		{"sessions", "session reply", nil},
		{"outbound-sender", "consume outbound.message.requested", nil},
		{"outbound-sender", "twilio create message", func(s sdktrace.ReadOnlySpan) bool { return attr(s, "sb.request_id") == replyID }},
		{"chat-handler", "POST /api/acs/chat-handler/tenants/{tenantId}/messaging/status", nil},
		{"outbound-sender", "consume chat.delivery.updated", nil},
	} {
		match := inTrace
		if want.match != nil {
			match = func(s sdktrace.ReadOnlySpan) bool { return inTrace(s) && want.match(s) }
		}
		if find(spans, want.service, want.name, match) == nil {
			missing = append(missing, fmt.Sprintf("%s: %q", want.service, want.name))
		}
	}
	if len(missing) > 0 {
		var names []string
		for _, s := range spans {
			if inTrace(s) {
				names = append(names, service(s)+": "+s.Name())
			}
		}
		return fmt.Errorf("the customer's trace %s lacks spans of\n\t%s\nit has\n\t%s", id, strings.Join(missing, "\n\t"), strings.Join(names, "\n\t"))
	}
	return nil
}

// find returns the first span of service with name that match accepts
// (any, when nil).
func find(spans []sdktrace.ReadOnlySpan, svc, name string, match func(sdktrace.ReadOnlySpan) bool) sdktrace.ReadOnlySpan {
	for _, s := range spans {
		if service(s) == svc && s.Name() == name && (match == nil || match(s)) {
			return s
		}
	}
	return nil
}

func service(s sdktrace.ReadOnlySpan) string {
	v, _ := s.Resource().Set().Value(semconv.ServiceNameKey)
	return v.AsString()
}

func attr(s sdktrace.ReadOnlySpan, key attribute.Key) string {
	for _, kv := range s.Attributes() {
		if kv.Key == key {
			return kv.Value.String()
		}
	}
	return ""
}

// leaks names which of secrets the span's name, attributes, events or
// status carry ("" for none).
func leaks(s sdktrace.ReadOnlySpan, secrets ...string) string {
	texts := []string{s.Name(), s.Status().Description}
	kvs := append([]attribute.KeyValue{}, s.Attributes()...)
	for _, e := range s.Events() {
		texts = append(texts, e.Name)
		kvs = append(kvs, e.Attributes...)
	}
	for _, kv := range kvs {
		texts = append(texts, string(kv.Key)+"="+kv.Value.String())
	}
	for _, text := range texts {
		for _, secret := range secrets {
			if strings.Contains(text, secret) {
				return fmt.Sprintf("%q (in %q)", secret, text)
			}
		}
	}
	return ""
}

// waitFor calls check until it returns nil or ctx ends, and then returns
// check's last error.
func waitFor(ctx context.Context, check func() error) error {
	for {
		err := check()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(50 * time.Millisecond):
		}
	}
}
