package reconcile_test

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"

	"github.com/switchboard-cc/switchboard/pkg/kvcas"
	"github.com/switchboard-cc/switchboard/pkg/natsembed/natstest"
	"github.com/switchboard-cc/switchboard/services/chat-handler/internal/reconcile"
)

// countingEntries is a config with no tenants that counts who asked.
type countingEntries struct{ asked atomic.Int32 }

func (c *countingEntries) Tenants(context.Context) ([]string, error) {
	c.asked.Add(1)
	return nil, nil
}

func (c *countingEntries) Entries(context.Context, string) ([]*configv1.MessagingEntry, error) {
	return nil, nil
}

// Replicas starting together after an outage reconcile its gap once
// between them; a replica starting while another marks chat-handler up
// finds no gap.
func TestWatchReconcilesAnOutageOnce(t *testing.T) {
	js := natstest.JetStream(t)
	ctx := context.Background()
	kv, err := kvcas.Bind(ctx, js, jetstream.KeyValueConfig{Bucket: reconcile.Bucket})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "last", []byte(time.Now().Add(-time.Hour).UTC().Format(time.RFC3339Nano))); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	start := func(entries reconcile.Entries, n int) (stop func()) {
		wctx, cancel := context.WithCancel(ctx)
		var wg sync.WaitGroup
		for range n {
			w := &reconcile.Watch{R: reconcile.New(nil, nil, nil, reconcile.Options{}, log), Entries: entries, KV: kv,
				Heartbeat: 100 * time.Millisecond, Skew: time.Minute, Log: log}
			wg.Go(func() { _ = w.Run(wctx) })
		}
		return func() { cancel(); wg.Wait() }
	}

	after := &countingEntries{}
	stop := start(after, 3)
	deadline := time.Now().Add(10 * time.Second)
	for after.asked.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // room for a second claim, were there one
	stop()
	if n := after.asked.Load(); n != 1 {
		t.Fatalf("three replicas back from an hour's outage reconciled it %d times, want once", n)
	}

	// chat-handler was marked up a moment ago: no gap.
	fresh := &countingEntries{}
	stop = start(fresh, 2)
	time.Sleep(500 * time.Millisecond)
	stop()
	if n := fresh.asked.Load(); n != 0 {
		t.Fatalf("replicas starting right after a mark reconciled %d times, want never", n)
	}
}
