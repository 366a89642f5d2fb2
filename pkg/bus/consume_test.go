package bus_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	chatv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/chat/v1"

	"github.com/switchboard-cc/switchboard/pkg/bus"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
)

func TestConsumerSpecConfig(t *testing.T) {
	tests := []struct {
		name string
		spec bus.ConsumerSpec
		want jetstream.ConsumerConfig
	}{
		{"defaults", bus.ConsumerSpec{Durable: "d"}, jetstream.ConsumerConfig{
			Durable: "d", AckPolicy: jetstream.AckExplicitPolicy, AckWait: 30 * time.Second, MaxDeliver: -1,
			MaxAckPending: 1000, DeliverPolicy: jetstream.DeliverAllPolicy}},
		{"one filter, new only", bus.ConsumerSpec{Durable: "d", FilterSubjects: []string{"a.>"}, DeliverNew: true, MaxDeliver: 3, AckWait: time.Second, MaxAckPending: 5},
			jetstream.ConsumerConfig{Durable: "d", AckPolicy: jetstream.AckExplicitPolicy, AckWait: time.Second, MaxDeliver: -1,
				MaxAckPending: 5, DeliverPolicy: jetstream.DeliverNewPolicy, FilterSubject: "a.>"}},
		{"two filters", bus.ConsumerSpec{Durable: "d", FilterSubjects: []string{"a.>", "b.>"}}, jetstream.ConsumerConfig{
			Durable: "d", AckPolicy: jetstream.AckExplicitPolicy, AckWait: 30 * time.Second, MaxDeliver: -1,
			MaxAckPending: 1000, DeliverPolicy: jetstream.DeliverAllPolicy, FilterSubjects: []string{"a.>", "b.>"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.spec.Config()
			if got.Durable != tt.want.Durable || got.AckPolicy != tt.want.AckPolicy || got.AckWait != tt.want.AckWait ||
				got.MaxDeliver != tt.want.MaxDeliver || got.MaxAckPending != tt.want.MaxAckPending || got.DeliverPolicy != tt.want.DeliverPolicy ||
				got.FilterSubject != tt.want.FilterSubject || strings.Join(got.FilterSubjects, ",") != strings.Join(tt.want.FilterSubjects, ",") {
				t.Errorf("Config() = %+v, want %+v", got, tt.want)
			}
		})
	}
	if d := (bus.ConsumerSpec{}).WithDefaults(); d.Backoff == nil || d.MaxDeliver != 8 || d.AckWait != 30*time.Second || d.MaxAckPending != 1000 {
		t.Errorf("WithDefaults() = %+v, want backoff, 8 deliveries, 30s, 1000 pending", d)
	}
}

// An outage is retried past MaxDeliver until the message is TransientFor
// old; anything else is given up on at MaxDeliver, a Permanent error at
// once.
func TestGivesUp(t *testing.T) {
	spec := bus.ConsumerSpec{MaxDeliver: 3, TransientFor: time.Hour}
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	fresh, old := time.Now().Add(-time.Minute), time.Now().Add(-2*time.Hour)
	for _, tt := range []struct {
		name      string
		err       error
		delivered uint64
		stored    time.Time
		want      bool
	}{
		{"an error before MaxDeliver", errors.New("x"), 2, fresh, false},
		{"an error at MaxDeliver", errors.New("x"), 3, fresh, true},
		{"permanent at once", bus.Permanent(refused), 1, fresh, true},
		{"gRPC Unavailable, wrapped", fmt.Errorf("get service: %w", status.Error(codes.Unavailable, "down")), 9, fresh, false},
		{"gRPC NotFound", status.Error(codes.NotFound, "no such service"), 3, fresh, true},
		{"connection refused", fmt.Errorf("insert: %w", refused), 20, fresh, false},
		{"a deadline", fmt.Errorf("find: %w", context.DeadlineExceeded), 5, fresh, false},
		{"marked transient", bus.Transient(errors.New("the store is electing a leader")), 5, fresh, false},
		{"an outage older than TransientFor", refused, 500, old, true},
	} {
		m := &bus.Message{Delivered: tt.delivered, Stored: tt.stored}
		if got := spec.GivesUp(m, tt.err); got != tt.want {
			t.Errorf("%s: GivesUp = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestGuard(t *testing.T) {
	if err := bus.Guard(func() error { return nil }); err != nil {
		t.Errorf("Guard(nil) = %v", err)
	}
	base := errors.New("x")
	if err := bus.Guard(func() error { return base }); err != base {
		t.Errorf("Guard(x) = %v, want x", err)
	}
	err := bus.Guard(func() error {
		var m *bus.Message
		_ = m.Subject
		return nil
	})
	if err == nil || !strings.Contains(err.Error(), "panic") || bus.IsPermanent(err) {
		t.Errorf("Guard(panic) = %v, want a redeliverable panic error", err)
	}
}

// consumePieces is a consumer built only of pkg/bus's exported pieces, as
// a package with its own scheduling (outbound-sender's lanes) builds one.
func consumePieces(t *testing.T, b *bus.Bus, spec bus.ConsumerSpec, h bus.Handler) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	spec = spec.WithDefaults()
	cons, err := b.JS.CreateOrUpdateConsumer(ctx, spec.Stream, spec.Config())
	if err != nil {
		t.Fatal(err)
	}
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		m, err := bus.Received(msg)
		if err != nil {
			t.Error(err)
			return
		}
		hctx, span := b.StartSpan(ctx, spec.Durable, m)
		defer span.End()
		stop := bus.KeepAlive(msg, spec.AckWait)
		herr := bus.Guard(func() error { return h(hctx, m) })
		stop()
		b.Settle(hctx, spec, msg, m, herr)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); cc.Stop() })
}

// The handler contract holds for Consume and for a consumer assembled from
// the exported pieces alike: nil acks, Permanent dead-letters at once, other
// errors and panics are redelivered and dead-lettered after MaxDeliver.
func TestExportedPiecesKeepTheContract(t *testing.T) {
	for _, tt := range []struct {
		name string
		run  func(*testing.T, *bus.Bus, bus.ConsumerSpec, bus.Handler)
	}{{"Consume", consume}, {"exported pieces", consumePieces}, {"ConsumeKeyed", consumeKeyed}} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			b := newBus(t)
			var (
				mu       sync.Mutex
				attempts = map[string]int{}
				acked    = map[string]bool{}
			)
			tt.run(t, b, bus.ConsumerSpec{Stream: subjects.StreamChat, Durable: "test-pieces", MaxDeliver: 3, Backoff: fastBackoff},
				func(_ context.Context, m *bus.Message) error {
					var ev chatv1.MessageReceived
					if err := m.Decode(&ev); err != nil {
						return err
					}
					mu.Lock()
					attempts[ev.MessageSid]++
					n := attempts[ev.MessageSid]
					mu.Unlock()
					switch ev.MessageSid {
					case "flaky":
						if n < 3 {
							return errors.New("transient")
						}
					case "outage":
						// A dependency down for longer than MaxDeliver's
						// deliveries: retried until it is back.
						if n < 6 {
							return fmt.Errorf("get service: %w", status.Error(codes.Unavailable, "connection refused"))
						}
					case "poison":
						return bus.Permanentf("cannot handle %s", ev.MessageSid)
					case "panics":
						var nothing *chatv1.MessageReceived
						_ = nothing.MessageSid
					}
					mu.Lock()
					acked[ev.MessageSid] = true
					mu.Unlock()
					return nil
				})
			for _, sid := range []string{"ok", "flaky", "outage", "poison", "panics"} {
				if _, err := b.Publish(ctx, subjects.ChatMessageReceived("acme"), event(sid), bus.MsgID(sid)); err != nil {
					t.Fatal(err)
				}
			}
			waitFor(t, "ok, flaky and outage acked, two dead letters", func() bool {
				mu.Lock()
				defer mu.Unlock()
				n, _, _ := countDeadLetters(t, b)
				return acked["ok"] && acked["flaky"] && acked["outage"] && n == 2
			})
			mu.Lock()
			defer mu.Unlock()
			if attempts["ok"] != 1 || attempts["flaky"] != 3 || attempts["outage"] != 6 || attempts["poison"] != 1 || attempts["panics"] != 3 {
				t.Errorf("attempts = %v, want ok:1 flaky:3 outage:6 (transient, past MaxDeliver) poison:1 panics:3 (MaxDeliver)", attempts)
			}
			_, reason, orig := countDeadLetters(t, b)
			if !strings.Contains(reason, "panic") || orig != subjects.ChatMessageReceived("acme") {
				t.Errorf("last dead letter: reason %q, original subject %q; want the panic", reason, orig)
			}
		})
	}
}

// KeepAlive keeps a message held past its ack wait from being redelivered.
func TestKeepAliveHoldsAMessage(t *testing.T) {
	b := newBus(t)
	ctx := context.Background()
	spec := bus.ConsumerSpec{Stream: subjects.StreamChat, Durable: "test-keepalive", AckWait: 300 * time.Millisecond}
	cons, err := b.JS.CreateOrUpdateConsumer(ctx, spec.Stream, spec.Config())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Publish(ctx, subjects.ChatMessageReceived("acme"), event("SM-held")); err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(1)
	if err != nil {
		t.Fatal(err)
	}
	msg := <-batch.Messages()
	if msg == nil {
		t.Fatal("no message fetched")
	}
	stop := bus.KeepAlive(msg, spec.AckWait)
	// Hold it for several ack waits: JetStream must not offer it again.
	again, err := cons.Fetch(1, jetstream.FetchMaxWait(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for m := range again.Messages() {
		t.Errorf("message redelivered while kept alive: %s", m.Subject())
	}
	stop()
	m, err := bus.Received(msg)
	if err != nil {
		t.Fatal(err)
	}
	b.Settle(ctx, spec, msg, m, nil)
	waitFor(t, "ack", func() bool {
		info, err := cons.Info(ctx)
		return err == nil && info.NumAckPending == 0 && info.AckFloor.Stream >= m.Sequence
	})
}

// A durable consumer an earlier release created with a delivery limit is
// updated to the unlimited one Settle relies on when the service starts.
func TestALimitedConsumerIsUpdated(t *testing.T) {
	b := newBus(t)
	ctx := context.Background()
	spec := bus.ConsumerSpec{Stream: subjects.StreamChat, Durable: "test-upgrade"}
	old := spec.Config()
	old.MaxDeliver = 8
	if _, err := b.JS.CreateOrUpdateConsumer(ctx, spec.Stream, old); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- b.Consume(cctx, spec, func(context.Context, *bus.Message) error { return nil }) }()
	waitFor(t, "the consumer updated", func() bool {
		c, err := b.JS.Consumer(ctx, spec.Stream, spec.Durable)
		return err == nil && c.CachedInfo().Config.MaxDeliver == -1
	})
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Consume: %v", err)
	}
}
