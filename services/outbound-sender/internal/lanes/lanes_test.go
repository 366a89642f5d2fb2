package lanes

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/switchboard-cc/switchboard/pkg/bus"
	"github.com/switchboard-cc/switchboard/pkg/natsembed/natstest"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
)

// Messages of one lane are handled one at a time in order; a lane that
// blocks holds up only itself; a permanent error dead-letters; a failing
// message is redelivered.
func TestLanes(t *testing.T) {
	ns := natstest.Start(t)
	log := slog.New(slog.DiscardHandler)
	b, err := bus.Connect(ns.ClientURL(), "test", log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	ctx, cancel := context.WithCancel(context.Background())
	if err := b.EnsureStreams(ctx, subjects.StreamOptions{}, subjects.StreamOutbound, subjects.StreamDeadLetter); err != nil {
		t.Fatal(err)
	}
	var (
		mu       sync.Mutex
		order    = map[string][]string{}
		inFlight = map[string]int{}
		overlap  bool
		failedOn = map[string]bool{}
	)
	release := make(chan struct{})
	key := func(m *bus.Message) (string, error) {
		var v wrapperspb.StringValue
		if err := m.Decode(&v); err != nil {
			return "", err
		}
		lane, _, _ := strings.Cut(v.Value, ":")
		return lane, nil
	}
	ordered := func(_ context.Context, m *bus.Message) error {
		var v wrapperspb.StringValue
		_ = m.Decode(&v)
		lane, _, _ := strings.Cut(v.Value, ":")
		mu.Lock()
		inFlight[lane]++
		if inFlight[lane] > 1 {
			overlap = true
		}
		mu.Unlock()
		defer func() { mu.Lock(); inFlight[lane]--; mu.Unlock() }()
		switch {
		case lane == "slow":
			<-release
		case v.Value == "b:poison":
			return bus.Permanent(errors.New("poison"))
		case v.Value == "b:flaky":
			mu.Lock()
			first := !failedOn[v.Value]
			failedOn[v.Value] = true
			mu.Unlock()
			if first {
				return errors.New("try again")
			}
		}
		mu.Lock()
		order[lane] = append(order[lane], v.Value)
		mu.Unlock()
		return nil
	}
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, b, Spec{Stream: subjects.StreamOutbound, Durable: "test-lanes", FilterSubjects: []string{"outbound.test.>"},
			Backoff: func(uint64) time.Duration { return 10 * time.Millisecond }}, key, Stages[bus.Message]{
			Prepare: func(_ context.Context, m *bus.Message, _ bool) (*bus.Message, error) { return m, nil },
			Ordered: ordered,
			Finish:  func(context.Context, *bus.Message) error { return nil },
		}, log)
	}()
	publish := func(v string) {
		if _, err := b.Publish(ctx, "outbound.test.x.t1", wrapperspb.String(v)); err != nil {
			t.Fatal(err)
		}
	}
	publish("slow:1")
	for _, v := range []string{"a:1", "b:1", "a:2", "b:poison", "a:3", "b:flaky", "b:2"} {
		publish(v)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		na, nb := len(order["a"]), len(order["b"])
		mu.Unlock()
		if na == 3 && nb == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("lanes a and b did not finish while slow was blocked: %v", order)
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(release)
	mu.Lock()
	if got := strings.Join(order["a"], ","); got != "a:1,a:2,a:3" {
		t.Errorf("lane a order = %s", got)
	}
	if got := strings.Join(order["b"], ","); got != "b:1,b:2,b:flaky" && got != "b:1,b:flaky,b:2" {
		t.Errorf("lane b = %s, want b:1, b:2 and the redelivered b:flaky", got)
	}
	if overlap {
		t.Error("two messages of one lane were handled at once")
	}
	mu.Unlock()
	st, _ := b.JS.Stream(ctx, subjects.StreamDeadLetter)
	msg, err := st.GetLastMsgForSubject(ctx, subjects.DeadLetter("test-lanes"))
	if err != nil {
		t.Fatalf("no dead letter: %v", err)
	}
	if r := msg.Header.Get(bus.HeaderDeadLetterReason); r != "poison" {
		t.Errorf("dead-letter reason %q", r)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// A message Prepare settles itself (a nil job) is acked on its first
// delivery without the Ordered and Finish stages, and does not hold up its
// lane; a panicking stage is an error (redelivered), not a crash.
func TestSettledInPrepare(t *testing.T) {
	ns := natstest.Start(t)
	log := slog.New(slog.DiscardHandler)
	b, err := bus.Connect(ns.ClientURL(), "test", log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := b.EnsureStreams(ctx, subjects.StreamOptions{}, subjects.StreamOutbound, subjects.StreamDeadLetter); err != nil {
		t.Fatal(err)
	}
	type job struct{ value string }
	var (
		mu       sync.Mutex
		ordered  []string
		finished []string
		panicked = map[string]bool{}
	)
	stages := Stages[job]{
		Prepare: func(_ context.Context, m *bus.Message, _ bool) (*job, error) {
			var v wrapperspb.StringValue
			if err := m.Decode(&v); err != nil {
				return nil, err
			}
			if strings.HasSuffix(v.Value, ":settled") {
				return nil, nil // recorded elsewhere; nothing to call
			}
			return &job{v.Value}, nil
		},
		Ordered: func(_ context.Context, j *job) error {
			mu.Lock()
			defer mu.Unlock()
			if j.value == "a:panics-once" && !panicked[j.value] {
				panicked[j.value] = true
				var nothing *job
				_ = nothing.value // a nil dereference, as the old lanes made
			}
			ordered = append(ordered, j.value)
			return nil
		},
		Finish: func(_ context.Context, j *job) error {
			mu.Lock()
			defer mu.Unlock()
			finished = append(finished, j.value)
			return nil
		},
	}
	const durable = "test-settled"
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, b, Spec{Stream: subjects.StreamOutbound, Durable: durable, FilterSubjects: []string{"outbound.test.>"},
			Backoff: func(uint64) time.Duration { return 10 * time.Millisecond }},
			func(m *bus.Message) (string, error) {
				var v wrapperspb.StringValue
				if err := m.Decode(&v); err != nil {
					return "", err
				}
				lane, _, _ := strings.Cut(v.Value, ":")
				return lane, nil
			}, stages, log)
	}()
	values := []string{"a:settled", "a:1", "a:settled", "a:panics-once", "a:2"}
	for _, v := range values {
		if _, err := b.Publish(ctx, "outbound.test.x.t1", wrapperspb.String(v)); err != nil {
			t.Fatal(err)
		}
	}
	// Run creates the consumer in its own goroutine: wait for it.
	var cons jetstream.Consumer
	for {
		var err error
		if cons, err = b.JS.Consumer(ctx, subjects.StreamOutbound, durable); err == nil {
			break
		} else if !errors.Is(err, jetstream.ErrConsumerNotFound) {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Every message acked; only the panicking one delivered twice.
	want := uint64(len(values) + 1)
	deadline := time.Now().Add(20 * time.Second)
	for {
		info, err := cons.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.Delivered.Consumer > want {
			t.Fatalf("%d deliveries, want %d (each message once, the panicking one twice)", info.Delivered.Consumer, want)
		}
		if info.AckFloor.Consumer == want && info.NumAckPending == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not all acked: ack floor %d of %d, %d pending", info.AckFloor.Consumer, want, info.NumAckPending)
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	if got := strings.Join(ordered, ","); got != "a:1,a:2,a:panics-once" && got != "a:1,a:panics-once,a:2" {
		t.Errorf("ordered stage saw %s, want a:1, a:2 and the redelivered a:panics-once, and no settled message", got)
	}
	if len(finished) != 3 {
		t.Errorf("finish stage saw %v, want the three messages that were called", finished)
	}
	mu.Unlock()
	st, _ := b.JS.Stream(ctx, subjects.StreamDeadLetter)
	if msg, err := st.GetLastMsgForSubject(ctx, subjects.DeadLetter(durable)); err == nil {
		t.Errorf("dead-lettered: %s", msg.Header.Get(bus.HeaderDeadLetterReason))
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
