// Package mongotest gives tests a MongoDB wire-protocol server: the one named
// by MONGO_URI when set, otherwise an embedded FerretDB shared by the test
// binary. Tests never skip for lack of a database.
package mongotest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/switchboard-cc/switchboard/pkg/mongodb"
	"github.com/switchboard-cc/switchboard/pkg/mongodb/ferret"
)

var (
	once   sync.Once
	uri    string
	srv    *ferret.Server
	dir    string
	errRun error
)

// URI returns the connection string of the test database server, starting
// the embedded one on first use.
func URI(tb testing.TB) string {
	tb.Helper()
	once.Do(func() {
		if u := os.Getenv("MONGO_URI"); u != "" {
			uri = u
			return
		}
		dir, errRun = os.MkdirTemp("", "switchboard-ferretdb-")
		if errRun != nil {
			return
		}
		srv, errRun = ferret.Start("127.0.0.1:0", dir, nil)
		if errRun == nil {
			uri = srv.URI()
		}
	})
	if errRun != nil {
		tb.Fatalf("start embedded ferretdb: %v", errRun)
	}
	return uri
}

// Main wraps testing.M.Run so the embedded server and its files are removed
// when the test binary ends. Use it from TestMain: os.Exit(mongotest.Main(m)).
func Main(m *testing.M) int {
	code := m.Run()
	if srv != nil {
		srv.Stop()
	}
	if dir != "" {
		_ = os.RemoveAll(dir)
	}
	return code
}

// DatabaseName returns a database name unique to this test.
func DatabaseName(tb testing.TB) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	name := strings.NewReplacer("/", "_", " ", "_", ".", "_").Replace(tb.Name())
	if len(name) > 40 {
		name = name[:40]
	}
	return fmt.Sprintf("t_%s_%s", strings.ToLower(name), hex.EncodeToString(b))
}

// Database connects to a fresh database for this test and drops it after.
func Database(tb testing.TB) *mongo.Database {
	tb.Helper()
	c, err := mongodb.Connect(context.Background(), URI(tb))
	if err != nil {
		tb.Fatalf("connect: %v", err)
	}
	db := c.Database(DatabaseName(tb))
	tb.Cleanup(func() {
		_ = db.Drop(context.Background())
		_ = c.Disconnect(context.Background())
	})
	return db
}
