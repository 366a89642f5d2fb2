// Package configtest starts a real config service for tests: gRPC on
// 127.0.0.1:0, embedded NATS JetStream and a fresh database on embedded
// FerretDB (or MONGO_URI), with its log captured so tests can read it.
// Test binaries that use it need TestMain calling mongotest.Main.
package configtest

import (
	"bytes"
	"context"
	"encoding/hex"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/switchboard-cc/switchboard/pkg/authn"
	"github.com/switchboard-cc/switchboard/pkg/bus"
	"github.com/switchboard-cc/switchboard/pkg/grpcserver"
	"github.com/switchboard-cc/switchboard/pkg/mongodb/mongotest"
	"github.com/switchboard-cc/switchboard/pkg/natsembed/natstest"
	configsvc "github.com/switchboard-cc/switchboard/services/config"
)

// Env is a running config service.
type Env struct {
	Addr       string
	AuthKeys   *authn.Keys
	AuthHex    string
	SecretHex  string
	NATSURL    string
	Bus        *bus.Bus
	DB         *mongo.Database
	Log        *SyncBuffer
	Config     configsvc.Config
	cancel     context.CancelFunc
	done       chan error
	stopOnce   sync.Once
	stopResult error
}

// SyncBuffer is a goroutine-safe log sink.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String is everything logged so far.
func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Key hex strings used by every Env (tests assert they never leak either).
var (
	AuthKeyHex   = strings.Repeat("a1", 32)
	SecretKeyHex = strings.Repeat("5e", 32)
)

// Start runs the service until the test ends.
func Start(t testing.TB) *Env {
	t.Helper()
	db := mongotest.Database(t)
	ns := natstest.Start(t)
	log := &SyncBuffer{}
	logger := slog.New(slog.NewJSONHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	b, err := bus.Connect(ns.ClientURL(), "config-test", logger)
	if err != nil {
		t.Fatalf("connect nats: %v", err)
	}
	t.Cleanup(b.Close)
	keys, err := authn.ParseKeys(AuthKeyHex)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := configsvc.Config{
		MongoDatabase: db.Name(),
		SecretKeys:    SecretKeyHex,
		BcryptCost:    4,
	}
	e := &Env{
		Addr: lis.Addr().String(), AuthKeys: keys, AuthHex: AuthKeyHex, SecretHex: SecretKeyHex,
		NATSURL: ns.ClientURL(), Bus: b, DB: db, Log: log, Config: cfg, done: make(chan error, 1),
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	go func() {
		e.done <- configsvc.Run(ctx, cfg, configsvc.Deps{Listener: lis, Bus: b, Mongo: db.Client(), AuthKeys: keys}, logger)
	}()
	t.Cleanup(func() {
		if err := e.Stop(); err != nil {
			t.Errorf("config service stopped with %v", err)
		}
	})
	e.waitServing(t)
	return e
}

// Stop shuts the service down and returns Run's result.
func (e *Env) Stop() error {
	e.stopOnce.Do(func() {
		e.cancel()
		select {
		case e.stopResult = <-e.done:
		case <-time.After(15 * time.Second):
			e.stopResult = context.DeadlineExceeded
		}
	})
	return e.stopResult
}

func (e *Env) waitServing(t testing.TB) {
	t.Helper()
	conn, err := grpc.NewClient(e.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hc := healthpb.NewHealthClient(conn)
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case err := <-e.done:
			t.Fatalf("config service exited during start: %v", err)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		r, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: "switchboard.config.v1.LookupService"})
		cancel()
		if err == nil && r.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("config service not serving after 20s: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Token mints a token with the given tenant and roles.
func (e *Env) Token(t testing.TB, tenant string, roles ...string) string {
	t.Helper()
	tok, err := e.AuthKeys.Mint(authn.Claims{
		Tenant:           tenant,
		Roles:            roles,
		RegisteredClaims: jwt.RegisteredClaims{Subject: "test:" + strings.Join(roles, "+") + "@" + tenant},
	}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// Conn dials the service with a token of tenant and roles.
func (e *Env) Conn(t testing.TB, tenant string, roles ...string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(e.Addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(grpcserver.BearerToken(e.Token(t, tenant, roles...))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// Platform dials as a platform operator.
func (e *Env) Platform(t testing.TB) *grpc.ClientConn { return e.Conn(t, "", authn.RolePlatform) }

// Admin dials as an admin of tenant.
func (e *Env) Admin(t testing.TB, tenant string) *grpc.ClientConn {
	return e.Conn(t, tenant, authn.RoleAdmin)
}

// Service dials as a Switchboard service.
func (e *Env) Service(t testing.TB) *grpc.ClientConn {
	t.Helper()
	conn, err := grpcserver.Dial(e.Addr, e.AuthKeys, "test-service")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// HexKey is a helper for tests that need another key.
func HexKey(b byte) string { return hex.EncodeToString(bytes.Repeat([]byte{b}, 32)) }
