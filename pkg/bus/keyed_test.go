package bus_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	chatv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/chat/v1"

	"github.com/switchboard-cc/switchboard/pkg/bus"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
)

func bySID(m *bus.Message) (string, error) {
	var ev chatv1.MessageReceived
	if err := m.Decode(&ev); err != nil {
		return "", err
	}
	return ev.MessageSid, nil
}

func consumeKeyed(t *testing.T, b *bus.Bus, spec bus.ConsumerSpec, h bus.Handler) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.ConsumeKeyed(ctx, spec, 4, bySID, h) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ConsumeKeyed: %v", err)
		}
	})
}

// The key here is the profile name. Messages of one key are handled one at a time in stream order; other
// keys run alongside (a slow key does not stop them).
func TestConsumeKeyedOrderAndConcurrency(t *testing.T) {
	b := newBus(t)
	ctx := context.Background()
	const keys, perKey = 8, 25
	var (
		mu      sync.Mutex
		seen    = map[string][]int{}
		running = map[string]int{}
		overlap bool
		maxPar  int
		par     int
	)
	release := make(chan struct{})
	ctxC, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- b.ConsumeKeyed(ctxC, bus.ConsumerSpec{Stream: subjects.StreamChat, Durable: "test-keyed"}, 16,
			func(m *bus.Message) (string, error) {
				var ev chatv1.MessageReceived
				if err := m.Decode(&ev); err != nil {
					return "", err
				}
				return ev.ProfileName, nil
			},
			func(_ context.Context, m *bus.Message) error {
				var ev chatv1.MessageReceived
				if err := m.Decode(&ev); err != nil {
					return err
				}
				var n int
				fmt.Sscanf(ev.Body, "%d", &n)
				mu.Lock()
				running[ev.ProfileName]++
				if running[ev.ProfileName] > 1 {
					overlap = true
				}
				par++
				maxPar = max(maxPar, par)
				mu.Unlock()
				if ev.ProfileName == "k0" && n == 0 {
					select { // the first message of k0 is slow
					case <-release:
					case <-ctxC.Done():
					}
				}
				mu.Lock()
				running[ev.ProfileName]--
				par--
				seen[ev.ProfileName] = append(seen[ev.ProfileName], n)
				mu.Unlock()
				return nil
			})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ConsumeKeyed: %v", err)
		}
	})
	for i := 0; i < perKey; i++ {
		for k := 0; k < keys; k++ {
			ev := &chatv1.MessageReceived{MessageSid: fmt.Sprintf("k%d-%d", k, i), ProfileName: fmt.Sprintf("k%d", k), Body: fmt.Sprint(i)}
			if _, err := b.Publish(ctx, subjects.ChatMessageReceived("acme"), ev, bus.MsgID(ev.MessageSid)); err != nil {
				t.Fatal(err)
			}
		}
	}
	// While k0 is stuck, keys in other lanes finish.
	waitFor(t, "some other key done while k0 waits", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for k, got := range seen {
			if k != "k0" && len(got) == perKey {
				return true
			}
		}
		return false
	})
	close(release)
	waitFor(t, "every message handled", func() bool {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, got := range seen {
			n += len(got)
		}
		return n == keys*perKey
	})
	mu.Lock()
	defer mu.Unlock()
	if overlap {
		t.Error("two messages of one key ran at once")
	}
	for k, got := range seen {
		for i, n := range got {
			if n != i {
				t.Fatalf("key %s handled out of order: %v", k, got)
			}
		}
	}
	if maxPar < 2 {
		t.Errorf("at most %d handlers ran at once, want concurrency across keys", maxPar)
	}
}

func TestKeyByField(t *testing.T) {
	b := newBus(t)
	ctx := context.Background()
	got := make(chan string, 4)
	consumeKeyedWith(t, b, bus.KeyByField("message_sid"), func(_ context.Context, m *bus.Message) error { return nil }, got)
	for _, sid := range []string{"SM1", ""} {
		if _, err := b.Publish(ctx, subjects.ChatMessageReceived("acme"), &chatv1.MessageReceived{MessageSid: sid, Body: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []string{"acme/SM1", subjects.ChatMessageReceived("acme")} {
		if k := <-got; k != want {
			t.Errorf("key = %q, want %q", k, want)
		}
	}
}

// consumeKeyedWith consumes with key, reporting each key it computed.
func consumeKeyedWith(t *testing.T, b *bus.Bus, key bus.KeyFunc, h bus.Handler, keys chan<- string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- b.ConsumeKeyed(ctx, bus.ConsumerSpec{Stream: subjects.StreamChat, Durable: "test-key-by-field"}, 1+1,
			func(m *bus.Message) (string, error) {
				k, err := key(m)
				keys <- k
				return k, err
			}, h)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ConsumeKeyed: %v", err)
		}
	})
}
