package chathandler_test

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/switchboard-cc/switchboard/pkg/bus"
	chathandler "github.com/switchboard-cc/switchboard/services/chat-handler"
	"github.com/switchboard-cc/switchboard/services/chat-handler/internal/route"
)

// natsWithMonitoring runs a NATS server with its http monitoring port.
func natsWithMonitoring(t *testing.T, syncAlways bool) (clientURL, monitorURL string) {
	t.Helper()
	s, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, HTTPHost: "127.0.0.1", HTTPPort: -1,
		JetStream: true, StoreDir: t.TempDir(), SyncAlways: syncAlways, NoSigs: true, NoLog: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats not ready")
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s.ClientURL(), "http://" + s.MonitorAddr().String()
}

// runOnce starts chat-handler and reports the error it stops with, or nil
// when it was serving (and is then stopped).
func runOnce(t *testing.T, cfg chathandler.Config, natsURL string) error {
	t.Helper()
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	b, err := bus.Connect(natsURL, "durability-test", log)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	lis := listen(t)
	cfg.HTTPAddr, cfg.AuthKeys = lis.Addr().String(), authKeyHex(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- chathandler.Run(ctx, cfg, chathandler.Deps{Listener: lis, Bus: b, Routes: route.NewStatic()}, log)
	}()
	// Serving means the start-up checks passed.
	hc := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case err := <-done:
			return err
		default:
		}
		if res, err := hc.Get("http://" + lis.Addr().String() + "/healthz"); err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				cancel()
				return <-done
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("chat-handler neither served nor failed within 15s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestDurabilitySetting(t *testing.T) {
	t.Run("fsync verified on a server that syncs every write", func(t *testing.T) {
		natsURL, mon := natsWithMonitoring(t, true)
		cfg := chathandler.Defaults()
		cfg.NATSMonitorURL = mon
		if err := runOnce(t, cfg, natsURL); err != nil {
			t.Fatalf("Run: %v, want it to serve", err)
		}
	})
	t.Run("fsync refused on a server with the default sync interval", func(t *testing.T) {
		natsURL, mon := natsWithMonitoring(t, false)
		cfg := chathandler.Defaults()
		cfg.NATSMonitorURL = mon
		err := runOnce(t, cfg, natsURL)
		if err == nil || !strings.Contains(err.Error(), "does not fsync every write") {
			t.Fatalf("Run: %v, want a durability error", err)
		}
	})
	t.Run("replicated needs three replicas", func(t *testing.T) {
		cfg := chathandler.Defaults()
		cfg.AuthKeys = authKeyHex(t)
		cfg.Durability = chathandler.DurabilityReplicated
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "replicas") {
			t.Fatalf("Validate: %v, want a replicas error", err)
		}
	})
	t.Run("unknown mode", func(t *testing.T) {
		cfg := chathandler.Defaults()
		cfg.AuthKeys = authKeyHex(t)
		cfg.Durability = "eventually"
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "durability") {
			t.Fatalf("Validate: %v, want a durability error", err)
		}
	})
	t.Run("none serves on any server", func(t *testing.T) {
		natsURL, _ := natsWithMonitoring(t, false)
		cfg := chathandler.Defaults()
		cfg.Durability = chathandler.DurabilityNone
		if err := runOnce(t, cfg, natsURL); err != nil {
			t.Fatalf("Run: %v, want it to serve", err)
		}
	})
}
