// Package natstest starts an embedded JetStream server for a test.
package natstest

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-cc/switchboard/pkg/natsembed"
)

// Start runs a server on a free loopback port for the duration of the test
// and returns it.
func Start(tb testing.TB) *natsembed.Server {
	tb.Helper()
	s, err := natsembed.Start(natsembed.Config{Port: -1, StoreDir: tb.TempDir()}, nil)
	if err != nil {
		tb.Fatalf("start nats: %v", err)
	}
	tb.Cleanup(s.Shutdown)
	return s
}

// JetStream starts a server (Start) and returns a JetStream client
// connected to it, closed when the test ends.
func JetStream(tb testing.TB) jetstream.JetStream {
	tb.Helper()
	nc, err := nats.Connect(Start(tb).ClientURL())
	if err != nil {
		tb.Fatalf("connect to nats: %v", err)
	}
	tb.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		tb.Fatalf("jetstream: %v", err)
	}
	return js
}

// Cluster is a JetStream cluster of n nodes on free loopback ports, each
// started by Node; a test starts some of them to see the cluster before it
// has a quorum.
type Cluster struct {
	tb     testing.TB
	routes []*url.URL
	ports  []int
}

// NewCluster reserves the routes of an n-node cluster; no node runs yet.
func NewCluster(tb testing.TB, n int) *Cluster {
	tb.Helper()
	c := &Cluster{tb: tb}
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		p := l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		c.ports = append(c.ports, p)
		c.routes = append(c.routes, &url.URL{Scheme: "nats", Host: fmt.Sprintf("127.0.0.1:%d", p)})
	}
	return c
}

// Node starts node i (from 0) until the test ends and returns it. (A new
// cluster elects its first meta leader once every node has met the
// others.)
func (c *Cluster) Node(i int) *server.Server {
	c.tb.Helper()
	s, err := server.NewServer(&server.Options{
		ServerName: fmt.Sprintf("n%d", i), Host: "127.0.0.1", Port: -1,
		JetStream: true, StoreDir: c.tb.TempDir(), NoSigs: true, NoLog: true,
		Cluster: server.ClusterOpts{Name: "test", Host: "127.0.0.1", Port: c.ports[i]},
		Routes:  c.routes,
	})
	if err != nil {
		c.tb.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		c.tb.Fatalf("node %d not ready for connections", i)
	}
	c.tb.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s
}

// LogBuffer is a log sink a test reads while others write to it.
type LogBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// WaitForLog waits up to a minute for the log to say what, failing the
// test otherwise (or when stop, polled meanwhile, says to).
func (l *LogBuffer) WaitForLog(tb testing.TB, what string, stop func() error) {
	tb.Helper()
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(l.String(), what) {
		if err := stop(); err != nil {
			tb.Fatalf("waiting for the log to say %q: %v", what, err)
		}
		if time.Now().After(deadline) {
			tb.Fatalf("the log did not say %q", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
