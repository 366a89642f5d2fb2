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

// startBus is a bus on an embedded NATS server with the OUTBOUND and
// DEADLETTER streams.
func startBus(t *testing.T) (*bus.Bus, *slog.Logger) {
	t.Helper()
	ns := natstest.Start(t)
	log := slog.New(slog.DiscardHandler)
	b, err := bus.Connect(ns.ClientURL(), "test", log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	if err := b.EnsureStreams(context.Background(), subjects.StreamOptions{}, subjects.StreamOutbound, subjects.StreamDeadLetter); err != nil {
		t.Fatal(err)
	}
	return b, log
}

// Messages of one lane are handled one at a time in order; a lane that
// blocks holds up only itself; a permanent error dead-letters; a failing
// message is redelivered.
func TestLanes(t *testing.T) {
	b, log := startBus(t)
	ctx, cancel := context.WithCancel(context.Background())
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
	b, log := startBus(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
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

// lastDelivery: the deliveries are used up and the message is
// TransientFor old.
func TestLastDeliveryWaitsForTheRetryTime(t *testing.T) {
	spec := Spec{MaxDeliver: 8, TransientFor: 3 * time.Minute}.WithDefaults()
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		delivered uint64
		age       time.Duration
		stored    bool
		want      bool
	}{
		{1, time.Hour, true, false},
		{7, time.Hour, true, false},
		{8, 30 * time.Second, true, false},
		{20, 2 * time.Minute, true, false},
		{8, 3 * time.Minute, true, true},
		{8, 0, false, true}, // no stored time known: MaxDeliver alone
	} {
		m := &bus.Message{Delivered: tc.delivered}
		if tc.stored {
			m.Stored = now.Add(-tc.age)
		}
		if got := lastDelivery(spec, m, now); got != tc.want {
			t.Errorf("delivered %d, %v old (stored %v): last = %v, want %v", tc.delivered, tc.age, tc.stored, got, tc.want)
		}
	}
}

// A message failing on every delivery is redelivered past MaxDeliver
// until it is TransientFor old, is never dead-lettered before its stages
// were told a delivery is the last, and is acked when the last delivery
// records a failure; one that fails even then is dead-lettered.
func TestFailuresAreRetriedUntilTheLastDelivery(t *testing.T) {
	b, log := startBus(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const transientFor = 1500 * time.Millisecond
	type job struct {
		value string
		last  bool
		m     *bus.Message
	}
	type seen struct {
		deliveries uint64
		lastAt     uint64 // the delivery Prepare was told was the last
		lastAge    time.Duration
		recorded   bool
	}
	var (
		mu  sync.Mutex
		got = map[string]*seen{}
	)
	stages := Stages[job]{
		Prepare: func(_ context.Context, m *bus.Message, last bool) (*job, error) {
			var v wrapperspb.StringValue
			if err := m.Decode(&v); err != nil {
				return nil, err
			}
			mu.Lock()
			defer mu.Unlock()
			s := got[v.Value]
			if s == nil {
				s = &seen{}
				got[v.Value] = s
			}
			s.deliveries = m.Delivered
			if last {
				s.lastAt, s.lastAge = m.Delivered, time.Since(m.Stored)
			}
			return &job{value: v.Value, last: last, m: m}, nil
		},
		Ordered: func(_ context.Context, j *job) error {
			if j.last && j.value == "a:recorded" {
				mu.Lock()
				got[j.value].recorded = true // a stage's definitive failure
				mu.Unlock()
				return nil
			}
			return errors.New("Twilio answered 503")
		},
		Finish: func(context.Context, *job) error { return nil },
	}
	const durable = "test-last"
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, b, Spec{Stream: subjects.StreamOutbound, Durable: durable, FilterSubjects: []string{"outbound.test.>"},
			MaxDeliver: 2, TransientFor: transientFor, Backoff: func(uint64) time.Duration { return 50 * time.Millisecond }},
			func(m *bus.Message) (string, error) {
				var v wrapperspb.StringValue
				if err := m.Decode(&v); err != nil {
					return "", err
				}
				return v.Value, nil
			}, stages, log)
	}()
	for _, v := range []string{"a:recorded", "b:fails-anyway"} {
		if _, err := b.Publish(ctx, "outbound.test.x.t1", wrapperspb.String(v)); err != nil {
			t.Fatal(err)
		}
	}
	st, err := b.JS.Stream(ctx, subjects.StreamDeadLetter)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		a, bb := got["a:recorded"], got["b:fails-anyway"]
		finished := a != nil && a.recorded && bb != nil && bb.lastAt > 0
		mu.Unlock()
		if finished {
			if _, err := st.GetLastMsgForSubject(ctx, subjects.DeadLetter(durable)); err == nil {
				break // b's dead letter is in
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("not settled: %+v %+v", a, bb)
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	for v, s := range got {
		if s.lastAt <= 2 {
			t.Errorf("%s: told last on delivery %d, want past MaxDeliver 2 (it was younger than %v before)", v, s.lastAt, transientFor)
		}
		if s.lastAge < transientFor {
			t.Errorf("%s: told last at %v old, want at least %v", v, s.lastAge, transientFor)
		}
		if s.deliveries != s.lastAt {
			t.Errorf("%s: delivered %d times after its last delivery %d", v, s.deliveries, s.lastAt)
		}
	}
	mu.Unlock()
	// Exactly one dead letter, b's: a was recorded on its last delivery.
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(subjects.DeadLetter(durable)))
	if err != nil {
		t.Fatal(err)
	}
	if n := info.State.Subjects[subjects.DeadLetter(durable)]; n != 1 {
		t.Errorf("%d dead letters, want 1 (b's, after its last delivery)", n)
	}
	msg, _ := st.GetLastMsgForSubject(ctx, subjects.DeadLetter(durable))
	if r := msg.Header.Get(bus.HeaderDeadLetterReason); !strings.Contains(r, "503") {
		t.Errorf("dead-letter reason %q", r)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
