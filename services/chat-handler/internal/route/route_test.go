package route_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
	messagingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/messaging/v1"

	"github.com/switchboard-cc/switchboard/pkg/bus"
	"github.com/switchboard-cc/switchboard/pkg/configcache"
	"github.com/switchboard-cc/switchboard/pkg/natsembed"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
	"github.com/switchboard-cc/switchboard/services/chat-handler/internal/route"
)

func answer(mod func(*configv1.ResolveWebhookResponse)) *configv1.ResolveWebhookResponse {
	r := &configv1.ResolveWebhookResponse{
		Tenant: &configv1.Tenant{Id: "acme", Modalities: &configv1.ModalitySettings{InstantMessaging: true, Twilio: true, Sms: true, Whatsapp: true}},
		Entry: &configv1.MessagingEntry{Id: "sms", Channel: messagingv1.Channel_CHANNEL_SMS, MessagingServiceSid: "MG1",
			Path: messagingv1.TwilioPath_TWILIO_PATH_MESSAGING},
		Service:    &configv1.Service{Id: "support"},
		AccountSid: "AC1",
		AuthTokens: []string{"primary", "secondary"},
	}
	if mod != nil {
		mod(r)
	}
	return r
}

func TestFromResponse(t *testing.T) {
	r := route.FromResponse(answer(nil))
	if r.Tenant != "acme" || r.EntryID != "sms" || r.ServiceID != "support" || r.AccountSID != "AC1" || len(r.AuthTokens) != 2 ||
		r.MessagingServiceSID != "MG1" || r.Disabled {
		t.Errorf("FromResponse = %+v", r)
	}
	for _, tt := range []struct {
		name string
		mod  func(*configv1.ResolveWebhookResponse)
		want string
	}{
		{"entry disabled", func(r *configv1.ResolveWebhookResponse) { r.Entry.Disabled = true }, "disabled"},
		{"IM off", func(r *configv1.ResolveWebhookResponse) { r.Tenant.Modalities.InstantMessaging = false }, "Instant Messaging"},
		{"SMS off", func(r *configv1.ResolveWebhookResponse) { r.Tenant.Modalities.Sms = false }, "SMS switched off"},
		{"WhatsApp off", func(r *configv1.ResolveWebhookResponse) {
			r.Entry.Channel = messagingv1.Channel_CHANNEL_WHATSAPP
			r.Tenant.Modalities.Whatsapp = false
		}, "WhatsApp switched off"},
		{"no service", func(r *configv1.ResolveWebhookResponse) { r.Service = nil }, "not assigned to a service"},
	} {
		r := route.FromResponse(answer(tt.mod))
		if !r.Disabled || !strings.Contains(r.DisabledReason, tt.want) {
			t.Errorf("%s: Disabled %v reason %q, want %q", tt.name, r.Disabled, r.DisabledReason, tt.want)
		}
	}
}

// lookup is a LookupService that counts calls.
type lookup struct {
	configv1.LookupServiceClient
	calls atomic.Int64
	err   error
}

func (l *lookup) ResolveWebhook(context.Context, *configv1.ResolveWebhookRequest, ...grpc.CallOption) (*configv1.ResolveWebhookResponse, error) {
	l.calls.Add(1)
	if l.err != nil {
		return nil, l.err
	}
	return answer(nil), nil
}

// The hot path reads routes from memory: many webhooks, one config call;
// a ConfigChanged event of the tenant makes the next webhook read again.
func TestCachedResolvesFromMemory(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ns, err := natsembed.Start(natsembed.Config{Port: -1, StoreDir: t.TempDir()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	b, err := bus.Connect(ns.ClientURL(), "route-test", log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := b.EnsureStreams(ctx, subjects.StreamOptions{}, subjects.StreamConfig); err != nil {
		t.Fatal(err)
	}
	l := &lookup{}
	cache := configcache.New(l, b, log, configcache.Options{})
	go func() { _ = cache.Run(ctx) }()
	for deadline := time.Now().Add(10 * time.Second); !cache.Ready(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("cache not following changes within 10s")
		}
	}
	r := route.Cached{Cache: cache}
	for range 100 {
		got, err := r.Resolve(ctx, "acme", "", "+15550001111")
		if err != nil || got.EntryID != "sms" {
			t.Fatalf("Resolve = %+v, %v", got, err)
		}
	}
	if n := l.calls.Load(); n != 1 {
		t.Fatalf("%d config calls for 100 webhooks, want 1", n)
	}
	if _, err := b.Publish(ctx, subjects.ConfigChanged(subjects.EntityMessagingEntry, "acme"),
		&configv1.ConfigChanged{TenantId: "acme", Kind: configv1.EntityKind_ENTITY_KIND_MESSAGING_ENTRY, Id: "sms"}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := r.Resolve(ctx, "acme", "", "+15550001111"); err != nil {
			t.Fatal(err)
		}
		if l.calls.Load() == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("config change did not reach the cache within 10s")
		}
	}
}

func TestCachedErrors(t *testing.T) {
	for _, tt := range []struct {
		err     error
		unknown bool
	}{
		{status.Error(codes.NotFound, "no entry"), true},
		{status.Error(codes.InvalidArgument, "bad sid"), true},
		{status.Error(codes.Unavailable, "config down"), false},
		{status.Error(codes.PermissionDenied, "bad service token"), false},
	} {
		cache := configcache.New(&lookup{err: tt.err}, nil, slog.New(slog.NewTextHandler(io.Discard, nil)), configcache.Options{})
		_, err := route.Cached{Cache: cache}.Resolve(context.Background(), "acme", "IS1", "")
		if err == nil || errors.Is(err, route.ErrUnknown) != tt.unknown {
			t.Errorf("%v: Resolve error %v, want unknown=%v", tt.err, err, tt.unknown)
		}
	}
}

func TestStatic(t *testing.T) {
	s := route.NewStatic()
	s.AddAddress("WhatsApp: +15550002222", &route.Route{Tenant: "acme", EntryID: "wa"})
	if r, err := s.Resolve(context.Background(), "acme", "", "whatsapp:+15550002222"); err != nil || r.EntryID != "wa" {
		t.Errorf("Resolve normalized address = %+v, %v", r, err)
	}
	if _, err := s.Resolve(context.Background(), "other", "", "whatsapp:+15550002222"); !errors.Is(err, route.ErrUnknown) {
		t.Errorf("another tenant's address: %v, want ErrUnknown", err)
	}
}

// BenchmarkCachedResolve is the per-webhook cost of routing from the cache.
func BenchmarkCachedResolve(b *testing.B) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ns, err := natsembed.Start(natsembed.Config{Port: -1, StoreDir: b.TempDir()}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer ns.Shutdown()
	bs, err := bus.Connect(ns.ClientURL(), "route-bench", log)
	if err != nil {
		b.Fatal(err)
	}
	defer bs.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := bs.EnsureStreams(ctx, subjects.StreamOptions{}, subjects.StreamConfig); err != nil {
		b.Fatal(err)
	}
	cache := configcache.New(&lookup{}, bs, log, configcache.Options{})
	go func() { _ = cache.Run(ctx) }()
	for deadline := time.Now().Add(10 * time.Second); !cache.Ready(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatal("cache not following changes within 10s")
		}
	}
	r := route.Cached{Cache: cache}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Resolve(ctx, "acme", "", "+15550001111"); err != nil {
			b.Fatal(err)
		}
	}
}
