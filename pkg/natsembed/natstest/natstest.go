// Package natstest starts an embedded JetStream server for a test.
package natstest

import (
	"testing"

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
