package chathandler_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	chatv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/chat/v1"
	messagingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/messaging/v1"

	"github.com/switchboard-cc/switchboard/pkg/bus"
	"github.com/switchboard-cc/switchboard/pkg/natsembed"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
	chathandler "github.com/switchboard-cc/switchboard/services/chat-handler"
	"github.com/switchboard-cc/switchboard/services/chat-handler/internal/chattest"
	"github.com/switchboard-cc/switchboard/services/chat-handler/internal/route"
	"github.com/switchboard-cc/switchboard/services/chat-handler/internal/webhook"
	twiliosim "github.com/switchboard-cc/switchboard/services/twilio-sim"
	"github.com/switchboard-cc/switchboard/services/twilio-sim/simclient"
)

const (
	brokerAccount = "AC22222222222222222222222222222222"
	brokerToken   = "22222222222222222222222222222222"
	brokerNumber  = "+12025550181"
)

func listen(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// serve runs fn until the test ends.
func serve(t *testing.T, name string, fn func(ctx context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fn(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%s: %v", name, err)
			}
		case <-time.After(20 * time.Second):
			t.Errorf("%s did not stop within 20s", name)
		}
	})
}

func authKeyHex(t *testing.T) string {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(k)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 30s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The broker stops: Twilio gets a 503 from the webhook and from the
// fallback URL, at once rather than after its timeout. The broker comes
// back on the same port with the same store: Twilio's retry of that
// webhook is accepted, and the stream holds every acknowledged message
// exactly once.
func TestBrokerStoppedThenRestarted(t *testing.T) {
	dir := t.TempDir()
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	ns, err := natsembed.Start(natsembed.Config{Port: -1, StoreDir: dir}, nil)
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			ns.Shutdown()
		}
	})
	u, _ := url.Parse(ns.ClientURL())
	port, _ := strconv.Atoi(u.Port())
	b, err := bus.Connect(ns.ClientURL(), "broker-test", log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)

	routes := route.NewStatic()
	routes.AddAddress(brokerNumber, &route.Route{Tenant: "demo", EntryID: "sms", ServiceID: "support", Channel: messagingv1.Channel_CHANNEL_SMS,
		AccountSID: brokerAccount, AuthTokens: []string{brokerToken}})
	chatLis := listen(t)
	chatURL := "http://" + chatLis.Addr().String()
	cfg := chathandler.Defaults()
	cfg.HTTPAddr, cfg.AuthKeys, cfg.PublishTimeout = chatLis.Addr().String(), authKeyHex(t), time.Second
	serve(t, "chat-handler", func(ctx context.Context) error {
		return chathandler.Run(ctx, cfg, chathandler.Deps{Listener: chatLis, Bus: b, Routes: routes}, log)
	})

	base := webhook.TenantURL(chatURL, "demo", "")
	simLis := listen(t)
	serve(t, "twilio-sim", func(ctx context.Context) error {
		return twiliosim.Run(ctx, twiliosim.Config{Accounts: []twiliosim.Account{{
			AccountSID: brokerAccount, AuthToken: brokerToken,
			Numbers: []twiliosim.PhoneNumber{{Address: brokerNumber, SmsURL: base + webhook.PathInbound, SmsFallbackURL: base + webhook.PathFallback}},
		}}}, twiliosim.Deps{Listener: simLis}, log)
	})
	sim := simclient.New("http://"+simLis.Addr().String(), nil)
	ctx := timeout(t)
	if err := sim.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "chat-handler ready", func() bool {
		res, err := http.Get(chatURL + "/readyz")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == http.StatusOK
	})

	before := send(t, ctx, sim, simclient.CustomerMessage{From: "+15556660001", To: brokerNumber, Body: "before the outage"})

	ns.Shutdown()
	stopped = true
	waitFor(t, "chat-handler sees the broker gone", func() bool { return !b.NC.IsConnected() })

	during, err := sim.SendMessage(ctx, simclient.CustomerMessage{From: "+15556660001", To: brokerNumber, Body: "during the outage"})
	if err != nil {
		t.Fatal(err)
	}
	if w := during.Webhook; w == nil || w.Status != http.StatusServiceUnavailable || w.FallbackStatus != http.StatusServiceUnavailable {
		t.Fatalf("webhook during the outage: %+v, want 503 from the URL and from the fallback URL", w)
	}
	attempts, err := sim.Webhooks(ctx, simclient.WebhookFilter{MessageSID: during.MessageSID})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range attempts {
		// An answer, not a timeout: Twilio can move on to its fallback
		// and retries instead of waiting 15 s.
		if a.StatusCode != http.StatusServiceUnavailable || a.Error != "" && strings.HasPrefix(a.Error, "timeout") {
			t.Errorf("attempt %s %s: status %d error %q, want a prompt 503", a.Kind, a.URL, a.StatusCode, a.Error)
		}
	}
	first := attempts[0]
	if first.Kind != "messaging" {
		t.Fatalf("first attempt kind %q, want messaging", first.Kind)
	}

	ns, err = natsembed.Start(natsembed.Config{Port: port, StoreDir: dir}, nil)
	if err != nil {
		t.Fatalf("restart nats on port %d: %v", port, err)
	}
	stopped = false
	waitFor(t, "chat-handler reconnects", func() bool { return b.NC.IsConnected() })

	// Twilio retries the webhook: the same URL, parameters, signature and
	// idempotency token. Retried twice, it is still one message.
	retry := func() (int, error) {
		req, err := http.NewRequestWithContext(ctx, first.Method, first.URL, strings.NewReader(url.Values(first.Params).Encode()))
		if err != nil {
			return 0, err
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Twilio-Signature", first.Signature)
		req.Header.Set("I-Twilio-Idempotency-Token", first.IdempotencyToken)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err
		}
		res.Body.Close()
		return res.StatusCode, nil
	}
	for i := range 2 {
		var status int
		waitFor(t, "the retry is answered", func() bool {
			s, err := retry()
			status = s
			// Right after reconnecting, JetStream may still be recovering
			// its streams; Twilio would simply retry again.
			return err == nil && s != http.StatusServiceUnavailable
		})
		if status != http.StatusOK {
			t.Fatalf("retry %d: status %d, want 200", i+1, status)
		}
	}

	mk := func() *chatv1.MessageReceived { return &chatv1.MessageReceived{} }
	all := chattest.Find(t, b.JS, subjects.ChatMessageReceived("demo"), mk, func(*chatv1.MessageReceived) bool { return true })
	count := map[string]int{}
	for _, m := range all {
		count[m.GetMessageSid()]++
	}
	if count[before.MessageSID] != 1 || count[during.MessageSID] != 1 || len(all) != 2 {
		t.Errorf("stream holds %v, want %s and %s once each", count, before.MessageSID, during.MessageSID)
	}
}
