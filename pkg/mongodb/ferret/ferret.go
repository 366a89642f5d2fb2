// Package ferret runs FerretDB v1.24.0 with its SQLite backend inside the
// process: the MongoDB wire protocol for the all-in-one binary and tests on a
// machine without MongoDB.
//
// FerretDB differs from MongoDB in ways the services design around: lookups
// by fields other than _id are full scans (and so were lookups by _id,
// until idindex.go), $group with several accumulators
// returns wrong results, and there are no transactions, change streams or TTL
// indexes. Clients reach it through a write gate (gate.go) that lets one
// write per database through at a time: SQLite's own lock made concurrent
// writers poll for it, and FerretDB's read-modify-write updates lost one
// of two concurrent updates of a document.
package ferret

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
)

// Server is a running embedded FerretDB.
type Server struct {
	uri       string
	cancel    context.CancelFunc
	done      chan struct{}
	indexDone chan struct{}
	gate      *gate
}

// Start listens on addr ("127.0.0.1:0" for a free port) and stores data in dir.
// Clients reach the server through the write gate (gate.go) on addr; the
// server itself listens on a free loopback port.
func Start(addr, dir string, log *slog.Logger) (*Server, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("ferretdb data dir: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("ferretdb: %w", err)
	}
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: "127.0.0.1:0"},
		Handler:   "sqlite",
		SQLiteURL: "file:" + dir + "/",
		Logger:    log,
	})
	if err != nil {
		_ = lis.Close()
		return nil, fmt.Errorf("ferretdb: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		_ = f.Run(ctx)
	}()
	// MongoDBURI needs the listener, which Run sets up.
	uriCh := make(chan string, 1)
	go func() { uriCh <- f.MongoDBURI() }()
	var inner string
	select {
	case inner = <-uriCh:
	case <-time.After(15 * time.Second):
		cancel()
		_ = lis.Close()
		return nil, fmt.Errorf("ferretdb on %s did not start", addr)
	}
	if err := waitDial(inner, 15*time.Second); err != nil {
		_ = lis.Close()
		s.Stop()
		return nil, err
	}
	s.gate = newGate(lis, hostOf(inner))
	s.uri = "mongodb://" + lis.Addr().String() + "/"
	// See idindex.go: without this, every lookup by _id is a table scan.
	ix := &idIndexer{dir: dir, log: log}
	s.indexDone = make(chan struct{})
	go func() {
		defer close(s.indexDone)
		ix.run(ctx, time.Second)
	}()
	return s, nil
}

// hostOf is a mongodb:// URI's host:port.
func hostOf(uri string) string {
	host := strings.TrimPrefix(uri, "mongodb://")
	if i := strings.IndexAny(host, "/?"); i >= 0 {
		host = host[:i]
	}
	return host
}

func waitDial(uri string, timeout time.Duration) error {
	host := hostOf(uri)
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", host, time.Second)
		if err == nil {
			_ = c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("ferretdb at %s: %w", host, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// URI is the mongodb:// connection string.
func (s *Server) URI() string { return s.uri }

// Stop shuts the server down and waits for it.
func (s *Server) Stop() {
	if s.gate != nil {
		s.gate.close()
	}
	s.cancel()
	for _, ch := range []chan struct{}{s.done, s.indexDone} {
		if ch == nil {
			continue
		}
		select {
		case <-ch:
		case <-time.After(10 * time.Second):
		}
	}
}
