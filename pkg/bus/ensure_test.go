package bus_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

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
