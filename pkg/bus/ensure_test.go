package bus_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-cc/switchboard/pkg/bus"
	"github.com/switchboard-cc/switchboard/pkg/natsembed/natstest"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
)

// A service started while its three-node cluster has one node up (no
// meta leader: JetStream cannot answer) waits, says so, and creates its
// streams once the others join, instead of failing its start.
func TestEnsureStreamsWaitsForTheClusterToForm(t *testing.T) {
	cluster := natstest.NewCluster(t, 3)
	first := cluster.Node(0)
	var logs natstest.LogBuffer
	b, err := bus.Connect(first.ClientURL(), t.Name(), slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- b.EnsureStreams(ctx, subjects.StreamOptions{}, subjects.StreamChat) }()
	logs.WaitForLog(t, "JetStream not ready", func() error {
		select {
		case err := <-done:
			return fmt.Errorf("EnsureStreams ended with one node of three up (no quorum): %v", err)
		default:
			return nil
		}
	})
	cluster.Node(1)
	cluster.Node(2)
	if err := <-done; err != nil {
		t.Fatalf("EnsureStreams once the cluster has a quorum: %v", err)
	}
	if _, err := b.JS.Stream(ctx, subjects.StreamChat); err != nil {
		t.Fatalf("stream %s after EnsureStreams: %v", subjects.StreamChat, err)
	}
}

// When the caller gives up, EnsureStreams ends with the caller's reason
// and what JetStream last answered.
func TestEnsureStreamsGivesUpWithItsContext(t *testing.T) {
	opts := &server.Options{Host: "127.0.0.1", Port: -1, NoSigs: true, NoLog: true} // no JetStream
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	b, err := bus.Connect(s.ClientURL(), t.Name(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	err = b.EnsureStreams(ctx, subjects.StreamOptions{}, subjects.StreamChat)
	if err == nil || !strings.Contains(err.Error(), "ensure stream "+subjects.StreamChat) {
		t.Fatalf("EnsureStreams without JetStream: %v, want it to fail naming the stream", err)
	}
	t.Log(err)
}

// Await tries a start-up step again while JetStream says it is not ready
// (503, no answer in time), logging each retry with the step, and fails at
// once on any other error, naming the step.
func TestAwaitRetriesOnlyWhileJetStreamIsNotReady(t *testing.T) {
	var logs natstest.LogBuffer
	b, err := bus.Connect(natstest.Start(t).ClientURL(), t.Name(), slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	ctx := context.Background()
	tries := 0
	err = b.Await(ctx, "open the widgets bucket", func(context.Context) error {
		tries++
		switch tries {
		case 1:
			return &jetstream.APIError{Code: 503, ErrorCode: 10008, Description: "JetStream system temporarily unavailable"}
		case 2:
			return fmt.Errorf("widgets: %w", context.DeadlineExceeded)
		}
		return nil
	})
	if err != nil || tries != 3 {
		t.Fatalf("Await = %v after %d tries; want success at the third", err, tries)
	}
	if n := strings.Count(logs.String(), "JetStream not ready"); n != 2 || !strings.Contains(logs.String(), "open the widgets bucket") {
		t.Errorf("%d retries logged, want 2 naming the step:\n%s", n, logs.String())
	}
	tries = 0
	refused := &jetstream.APIError{Code: 400, ErrorCode: 10058, Description: "stream name already in use with a different configuration"}
	err = b.Await(ctx, "ensure stream WIDGETS", func(context.Context) error { tries++; return refused })
	if tries != 1 || !errors.Is(err, refused) || !strings.HasPrefix(err.Error(), "ensure stream WIDGETS: ") {
		t.Errorf("Await on a refusal = %v after %d tries; want it at once, naming the step", err, tries)
	}
}
