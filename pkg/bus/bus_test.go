package bus_test

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	chatv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/chat/v1"

	"github.com/switchboard-cc/switchboard/pkg/bus"
	"github.com/switchboard-cc/switchboard/pkg/natsembed/natstest"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
)

func newBus(t *testing.T, opts ...bus.Option) *bus.Bus {
	t.Helper()
	srv := natstest.Start(t)
	b, err := bus.Connect(srv.ClientURL(), t.Name(), slog.New(slog.DiscardHandler), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	if err := b.EnsureStreams(context.Background(), subjects.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	return b
}

func fastBackoff(uint64) time.Duration { return 10 * time.Millisecond }

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func consume(t *testing.T, b *bus.Bus, spec bus.ConsumerSpec, h bus.Handler) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Consume(ctx, spec, h) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Consume: %v", err)
		}
	})
}

func countDeadLetters(t *testing.T, b *bus.Bus) (n int, reason, original string) {
	t.Helper()
	s, err := b.JS.Stream(context.Background(), subjects.StreamDeadLetter)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs == 0 {
		return 0, "", ""
	}
	raw, err := s.GetLastMsgForSubject(context.Background(), "deadletter.>")
	if err != nil {
		t.Fatal(err)
	}
	return int(info.State.Msgs), raw.Header.Get(bus.HeaderDeadLetterReason), raw.Header.Get(bus.HeaderOriginalSubject)
}

func event(sid string) *chatv1.MessageReceived {
	return &chatv1.MessageReceived{TenantId: "acme", MessageSid: sid, Body: "hello"}
}

func TestHandlerContract(t *testing.T) {
	ctx := context.Background()
	b := newBus(t)
	var (
		mu       sync.Mutex
		attempts = map[string]int{}
		acked    = map[string]bool{}
	)
	consume(t, b, bus.ConsumerSpec{
		Stream: subjects.StreamChat, Durable: "test-contract", MaxDeliver: 3, Backoff: fastBackoff,
	}, func(_ context.Context, m *bus.Message) error {
		var ev chatv1.MessageReceived
		if err := m.Decode(&ev); err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		attempts[ev.MessageSid]++
		switch ev.MessageSid {
		case "ok":
		case "flaky": // fails twice, then succeeds
			if attempts["flaky"] < 3 {
				return errors.New("transient")
			}
		case "poison":
			return bus.Permanentf("cannot handle %s", ev.MessageSid)
		case "always":
			return errors.New("still broken")
		}
		acked[ev.MessageSid] = true
		return nil
	})
	for _, sid := range []string{"ok", "flaky", "poison", "always"} {
		if _, err := b.Publish(ctx, subjects.ChatMessageReceived("acme"), event(sid), bus.MsgID(sid)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "ok and flaky acked, two dead letters", func() bool {
		mu.Lock()
		defer mu.Unlock()
		n, _, _ := countDeadLetters(t, b)
		return acked["ok"] && acked["flaky"] && n == 2
	})
	mu.Lock()
	defer mu.Unlock()
	if attempts["ok"] != 1 || attempts["flaky"] != 3 || attempts["poison"] != 1 || attempts["always"] != 3 {
		t.Errorf("attempts = %v, want ok:1 flaky:3 poison:1 always:3 (MaxDeliver)", attempts)
	}
	_, reason, orig := countDeadLetters(t, b)
	if reason == "" || orig != subjects.ChatMessageReceived("acme") {
		t.Errorf("dead letter headers: reason %q, original subject %q", reason, orig)
	}
}

func TestUndecodablePayloadIsDeadLettered(t *testing.T) {
	b := newBus(t)
	if _, err := b.JS.Publish(context.Background(), subjects.ChatMessageReceived("acme"), []byte{0xff, 0xff, 0xff}); err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	consume(t, b, bus.ConsumerSpec{Stream: subjects.StreamChat, Durable: "test-decode", Backoff: fastBackoff},
		func(_ context.Context, m *bus.Message) error {
			calls.Add(1)
			return m.Decode(&chatv1.MessageReceived{})
		})
	waitFor(t, "dead letter", func() bool { n, _, _ := countDeadLetters(t, b); return n == 1 })
	if got := calls.Load(); got != 1 {
		t.Errorf("handler called %d times for a poison payload, want 1", got)
	}
}

func TestPublishDedupesByMsgID(t *testing.T) {
	ctx := context.Background()
	b := newBus(t)
	for i := 0; i < 3; i++ {
		ack, err := b.Publish(ctx, subjects.ChatMessageReceived("acme"), event("SM1"), bus.MsgID("SM1"))
		if err != nil {
			t.Fatal(err)
		}
		if want := i > 0; ack.Duplicate != want {
			t.Errorf("publish %d: Duplicate = %v, want %v", i+1, ack.Duplicate, want)
		}
	}
	s, _ := b.JS.Stream(ctx, subjects.StreamChat)
	info, _ := s.Info(ctx)
	if info.State.Msgs != 1 {
		t.Errorf("stream holds %d messages, want 1", info.State.Msgs)
	}
}

func TestTraceContextCrossesTheBus(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := trace.NewTracerProvider(trace.WithSpanProcessor(rec))
	b := newBus(t, bus.WithTracerProvider(tp))
	ctx, parent := tp.Tracer("test").Start(context.Background(), "webhook")
	if _, err := b.Publish(ctx, subjects.ChatMessageReceived("acme"), event("SM2")); err != nil {
		t.Fatal(err)
	}
	parent.End()
	got := make(chan string, 1)
	consume(t, b, bus.ConsumerSpec{Stream: subjects.StreamChat, Durable: "test-trace"}, func(_ context.Context, m *bus.Message) error {
		select {
		case got <- m.Header.Get("traceparent"):
		default:
		}
		return nil
	})
	tp0 := <-got
	if tp0 == "" {
		t.Fatal("no traceparent header on the message")
	}
	waitFor(t, "consumer span", func() bool { return len(rec.Ended()) >= 2 })
	var consumer bool
	for _, s := range rec.Ended() {
		if s.Name() == "consume chat.message.received" {
			consumer = true
			if s.Parent().TraceID() != parent.SpanContext().TraceID() {
				t.Errorf("consumer span trace %s, want %s", s.Parent().TraceID(), parent.SpanContext().TraceID())
			}
		}
	}
	if !consumer {
		t.Error("no consumer span recorded")
	}
}

func TestPermanent(t *testing.T) {
	base := errors.New("x")
	if !bus.IsPermanent(bus.Permanent(base)) || bus.IsPermanent(base) || bus.Permanent(nil) != nil {
		t.Error("Permanent/IsPermanent disagree")
	}
	if !errors.Is(bus.Permanent(base), base) {
		t.Error("Permanent does not unwrap")
	}
}

// A handler that runs past the ack wait keeps its message: in-progress
// acks stop JetStream from redelivering it to someone else meanwhile.
func TestSlowHandlerIsNotRedelivered(t *testing.T) {
	b := newBus(t)
	var calls atomic.Int32
	done := make(chan struct{})
	consume(t, b, bus.ConsumerSpec{Stream: subjects.StreamChat, Durable: "test-slow", AckWait: 300 * time.Millisecond},
		func(context.Context, *bus.Message) error {
			if calls.Add(1) == 1 {
				time.Sleep(time.Second) // the work itself outlasts three ack waits
				close(done)
			}
			return nil
		})
	if _, err := b.Publish(context.Background(), subjects.ChatMessageReceived("acme"), event("SM-slow")); err != nil {
		t.Fatal(err)
	}
	<-done
	if _, err := b.Publish(context.Background(), subjects.ChatMessageReceived("acme"), event("SM-marker")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the marker", func() bool { return calls.Load() >= 2 })
	if got := calls.Load(); got != 2 {
		t.Errorf("handler called %d times, want 2 (the slow message once, then the marker)", got)
	}
}
