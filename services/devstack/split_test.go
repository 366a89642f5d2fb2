package devstack_test

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-cc/switchboard/pkg/mongodb/mongotest"
	"github.com/switchboard-cc/switchboard/services/devstack"
	"github.com/switchboard-cc/switchboard/services/devstack/internal/split"
	"github.com/switchboard-cc/switchboard/services/sessions/agentclient"
	"github.com/switchboard-cc/switchboard/services/twilio-sim/simclient"
)

// freeAddr is a loopback address nothing listens on (the processes are
// told their ports before they start).
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// make run-split: every service's real binary as its own process, against
// one NATS (each service its own user) and one database. A customer's
// message reaches an agent over the websocket, the agent's reply reaches
// the customer, and Ctrl-C (cancel) stops every process.
func TestSplitProcessesConverse(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: this test builds every service binary and runs them as processes; make test runs it")
	}
	bin := t.TempDir()
	bctx, bcancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer bcancel()
	var buildOut bytes.Buffer
	if err := split.Build(bctx, bin, &buildOut); err != nil {
		t.Fatalf("build: %v\n%s", err, buildOut.String())
	}

	cfg := devstack.Defaults()
	cfg.DataDir = t.TempDir()
	cfg.NATSAddr = "127.0.0.1:0"
	cfg.MongoURI = mongotest.URI(t)
	cfg.DatabasePrefix = mongotest.DatabaseName(t) + "_"
	cfg.ChatHandlerAddr, cfg.SessionsAddr, cfg.TwilioSimAddr = freeAddr(t), freeAddr(t), freeAddr(t)
	cfg.ConfigAddr, cfg.DistributionAddr, cfg.ReportingAddr, cfg.OutboundAddr = freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)
	cfg.SyncAlways = false
	metrics := map[string]string{"sessions": freeAddr(t)}

	logs := &lockedBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan devstack.Info, 1)
	done := make(chan error, 1)
	go func() {
		done <- split.Run(ctx, split.Options{BinDir: bin, Stack: cfg, MetricsAddrs: metrics, Logs: logs,
			Ready: func(i devstack.Info) { ready <- i }}, slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})))
	}()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("split.Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("the processes did not stop within 30s")
		}
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("processes' logs:\n%s", logs.String())
		}
	})
	var info devstack.Info
	select {
	case info = <-ready:
	case err := <-done:
		stopped = true
		t.Fatalf("stopped before it was ready: %v", err)
	case <-time.After(90 * time.Second):
		t.Fatal("not ready within 90s")
	}

	wctx := timeout(t)
	alice := agent(t, wctx, info, "alice@demo.example")
	sim := simclient.New(info.TwilioSimURL, nil)
	const customer = "+15551238801"
	if _, err := sim.SendMessage(wctx, simclient.CustomerMessage{From: customer, To: devstack.DemoSMSNumber, Body: "Hello from a split stack"}); err != nil {
		t.Fatalf("customer send: %v", err)
	}
	o := waitOffer(t, wctx, alice, customer)
	if _, err := alice.Request(wctx, "offer.accept", map[string]string{"offer_id": o.OfferID}); err != nil {
		t.Fatalf("accept: %v", err)
	}
	if _, err := alice.WaitFor(wctx, "session.assigned", func(f agentclient.Frame) bool { return f.Field("session_id") == o.SessionID }); err != nil {
		t.Fatal(err)
	}
	const reply = "Hello from the agent"
	if _, err := alice.Request(wctx, "message.send", map[string]string{"session_id": o.SessionID, "body": reply, "client_msg_id": "r1"}); err != nil {
		t.Fatalf("send reply: %v", err)
	}
	if _, err := sim.WaitInboxMessage(wctx, customer, func(m simclient.OutboundMessage) bool { return m.Body == reply }); err != nil {
		t.Fatalf("reply never reached the customer: %v", err)
	}
	// Each process serves its own metrics.
	body := scrape(t, wctx, "http://"+metrics["sessions"]+"/metrics")
	if !strings.Contains(body, "switchboard_sessions_websocket_connections") {
		t.Errorf("sessions' /metrics lacks its websocket gauge:\n%s", body)
	}
	alice.Close()

	stop()
	out := logs.String()
	for _, s := range split.Services {
		if !strings.Contains(out, s) {
			t.Errorf("no log line from %s", s)
		}
	}
}
