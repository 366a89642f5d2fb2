package lanes

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

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
	ordered := func(_ context.Context, job any) error {
		m := job.(*bus.Message)
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
			Backoff: func(uint64) time.Duration { return 10 * time.Millisecond }}, key, Stages{
			Prepare: func(_ context.Context, m *bus.Message, _ bool) (any, error) { return m, nil },
			Ordered: ordered,
			Finish:  func(context.Context, any) error { return nil },
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
