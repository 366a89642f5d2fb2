package bus_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/switchboard-cc/switchboard/pkg/bus"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
)

// syncBuffer is a log sink the test reads while the bus writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// A service started while its three-node cluster has one node up (no
// meta leader: JetStream cannot answer) waits, says so, and creates its
// streams once the others join, instead of failing its start. (A new
// cluster elects its first meta leader once every configured node has
// met the others, so both are started.)
func TestEnsureStreamsWaitsForTheClusterToForm(t *testing.T) {
	routes := []int{freePort(t), freePort(t), freePort(t)}
	var routeURLs []*url.URL
	for _, p := range routes {
		routeURLs = append(routeURLs, &url.URL{Scheme: "nats", Host: fmt.Sprintf("127.0.0.1:%d", p)})
	}
	start := func(i int) *server.Server {
		opts := &server.Options{
			ServerName: fmt.Sprintf("n%d", i), Host: "127.0.0.1", Port: -1,
			JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: true,
			Cluster: server.ClusterOpts{Name: "ensure", Host: "127.0.0.1", Port: routes[i]},
			Routes:  routeURLs,
		}
		s, err := server.NewServer(opts)
		if err != nil {
			t.Fatal(err)
		}
		go s.Start()
		if !s.ReadyForConnections(10 * time.Second) {
			t.Fatalf("node %d not ready for connections", i)
		}
		t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
		return s
	}
	first := start(0)

	var logs syncBuffer
	b, err := bus.Connect(first.ClientURL(), t.Name(), slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- b.EnsureStreams(ctx, subjects.StreamOptions{}, subjects.StreamChat) }()

	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(logs.String(), "JetStream not ready") {
		select {
		case err := <-done:
			t.Fatalf("EnsureStreams ended with one node of three up (no quorum): %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("EnsureStreams did not say it was waiting for JetStream")
		}
		time.Sleep(50 * time.Millisecond)
	}
	start(1)
	start(2)
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
