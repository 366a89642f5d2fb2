// Package ferret runs FerretDB v1.24.0 with its SQLite backend inside the
// process: the MongoDB wire protocol for the all-in-one binary and tests on a
// machine without MongoDB.
//
// FerretDB differs from MongoDB in ways the services design around: lookups
// by fields other than _id are full scans (and so were lookups by _id,
// until idindex.go), $group with several accumulators
// returns wrong results, and there are no transactions, change streams or TTL
// indexes.
package ferret

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
)

// Server is a running embedded FerretDB.
type Server struct {
	uri       string
	cancel    context.CancelFunc
	done      chan struct{}
	indexDone chan struct{}
}

// Start listens on addr ("127.0.0.1:0" for a free port) and stores data in dir.
func Start(addr, dir string, log *slog.Logger) (*Server, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("ferretdb data dir: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: addr},
		Handler:   "sqlite",
		SQLiteURL: "file:" + dir + "/",
		Logger:    log,
	})
	if err != nil {
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
	select {
	case s.uri = <-uriCh:
	case <-time.After(15 * time.Second):
		cancel()
		return nil, fmt.Errorf("ferretdb on %s did not start", addr)
	}
	if err := waitDial(s.uri, 15*time.Second); err != nil {
		s.Stop()
		return nil, err
	}
	// See idindex.go: without this, every lookup by _id is a table scan.
	ix := &idIndexer{dir: dir, log: log}
	s.indexDone = make(chan struct{})
	go func() {
		defer close(s.indexDone)
		ix.run(ctx, time.Second)
	}()
	return s, nil
}

func waitDial(uri string, timeout time.Duration) error {
	host := uri[len("mongodb://"):]
	if i := len(host) - 1; i >= 0 && host[i] == '/' {
		host = host[:i]
	}
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
