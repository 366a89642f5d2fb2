// Package chathandler runs chat-handler, the only door from Twilio into
// Switchboard: it validates webhook signatures, routes each webhook to its
// tenant and messaging entry, and publishes customer messages, conversation
// lifecycle events and delivery updates on the CHAT stream before answering
// Twilio. See README.md for the URLs to paste into the Twilio console.
package chathandler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"

	"github.com/switchboard-cc/switchboard/pkg/authn"
	"github.com/switchboard-cc/switchboard/pkg/bus"
	"github.com/switchboard-cc/switchboard/pkg/configcache"
	"github.com/switchboard-cc/switchboard/pkg/connect"
	"github.com/switchboard-cc/switchboard/pkg/httpserver"
	"github.com/switchboard-cc/switchboard/pkg/kvcas"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
	"github.com/switchboard-cc/switchboard/pkg/telemetry"
	"github.com/switchboard-cc/switchboard/services/chat-handler/internal/durability"
	"github.com/switchboard-cc/switchboard/services/chat-handler/internal/reconcile"
	"github.com/switchboard-cc/switchboard/services/chat-handler/internal/route"
	"github.com/switchboard-cc/switchboard/services/chat-handler/internal/webhook"
)

// Name is the service name.
const Name = "chat-handler"

// routeTimeout bounds a config service call on a route cache miss.
const routeTimeout = 1500 * time.Millisecond

// Durability modes (see README.md, "Durability").
const (
	// DurabilityFsync (the default): the NATS server fsyncs every write
	// before its PubAck (sync_interval: always).
	DurabilityFsync = string(durability.Fsync)
	// DurabilityReplicated: the CHAT stream has 3 or more replicas.
	DurabilityReplicated = string(durability.Replicated)
	// DurabilityNone: no requirement (development and benchmarks).
	DurabilityNone = string(durability.None)
)

// Config of chat-handler.
type Config struct {
	HTTPAddr string
	NATSURL  string
	// NATSAuth: credentials and TLS for NATS (NATS_USER, NATS_CREDS, …).
	NATSAuth   bus.Auth
	ConfigAddr string
	AuthKeys   string
	// PublicBaseURL is the scheme://host[:port][/prefix] the webhook URLs in
	// Twilio start with; signatures are checked against it. Empty: the URL
	// is rebuilt from each request (and trusted proxy headers).
	PublicBaseURL string
	// TrustedProxies (IPs or CIDRs) may set X-Forwarded-Proto/-Host/-Port
	// and Forwarded; from any other peer those headers are ignored.
	TrustedProxies []string
	MaxBodyBytes   int64
	// PublishTimeout bounds the wait for JetStream's PubAck; past it Twilio
	// gets a 503. Conversations webhooks time out after 5 s.
	PublishTimeout time.Duration
	Streams        subjects.StreamOptions
	// Durability is fsync (default when empty), replicated or none.
	Durability string
	// NATSMonitorURL is the NATS server's http monitoring base
	// (http://nats:8222); with durability fsync, start-up fails unless the
	// server fsyncs every write. Empty: not verified.
	NATSMonitorURL string
	// AllowHTTPMedia also takes plain http:// media URLs (the Twilio
	// emulator in development); Twilio's own are https and nothing else is
	// ever taken.
	AllowHTTPMedia bool
	// TwilioBaseURL redirects the reconciler's Twilio REST calls (the
	// emulator); empty for Twilio.
	TwilioBaseURL string
	// Heartbeat is how often a replica marks chat-handler up; a start
	// finding the last mark older than three of these reconciles the gap
	// from Twilio's history. Zero is 10 s.
	Heartbeat time.Duration
}

// Defaults for one machine.
func Defaults() Config {
	return Config{
		HTTPAddr:       "127.0.0.1:8080",
		NATSURL:        "nats://127.0.0.1:4222",
		ConfigAddr:     "127.0.0.1:9090",
		MaxBodyBytes:   64 << 10,
		PublishTimeout: 3 * time.Second,
		Durability:     DurabilityFsync,
	}
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	for _, f := range []struct{ name, v string }{
		{"http address", c.HTTPAddr}, {"nats url", c.NATSURL}, {"config service address", c.ConfigAddr},
	} {
		if f.v == "" {
			errs = append(errs, fmt.Errorf("%s is required", f.name))
		}
	}
	if _, err := authn.ParseKeys(c.AuthKeys); err != nil {
		errs = append(errs, fmt.Errorf("auth keys: %w", err))
	}
	if c.PublicBaseURL != "" {
		u, err := url.Parse(c.PublicBaseURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			errs = append(errs, fmt.Errorf("public base url %q must be scheme://host[:port][/prefix]", c.PublicBaseURL))
		}
	}
	if _, err := httpserver.ParsePrefixes(c.TrustedProxies); err != nil {
		errs = append(errs, err)
	}
	if c.MaxBodyBytes < 1024 {
		errs = append(errs, fmt.Errorf("max body bytes %d is below 1024", c.MaxBodyBytes))
	}
	if maxPublish := 5*time.Second - routeTimeout - 500*time.Millisecond; c.PublishTimeout <= 0 || c.PublishTimeout > maxPublish {
		errs = append(errs, fmt.Errorf("publish timeout %s must be within (0, %s]: Conversations webhooks time out after 5s", c.PublishTimeout, maxPublish))
	}
	mode, err := durability.Parse(c.Durability)
	if err != nil {
		errs = append(errs, err)
	}
	if mode == durability.Replicated && c.Streams.Replicas < durability.MinReplicas {
		errs = append(errs, fmt.Errorf("durability replicated needs stream replicas >= %d, got %d", durability.MinReplicas, c.Streams.Replicas))
	}
	if c.TwilioBaseURL != "" {
		if u, err := url.Parse(c.TwilioBaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("twilio base url %q must be http(s)://host:port", c.TwilioBaseURL))
		}
	}
	if c.Heartbeat < 0 {
		errs = append(errs, fmt.Errorf("heartbeat %s is negative", c.Heartbeat))
	}
	if c.NATSMonitorURL != "" {
		if u, err := url.Parse(c.NATSMonitorURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("nats monitor url %q must be http(s)://host:port", c.NATSMonitorURL))
		}
	}
	return errors.Join(errs...)
}

// Deps may be injected; nil ones are built from Config.
type Deps struct {
	Listener   net.Listener
	Bus        *bus.Bus
	ConfigConn *grpc.ClientConn
	AuthKeys   *authn.Keys
	// Routes resolves webhooks to tenants and entries; nil uses the config
	// service.
	Routes route.Resolver
}

// emitter publishes through the bus and reports the connection state so a
// broker outage is answered with 503 at once.
type emitter struct{ b *bus.Bus }

func (e emitter) Emit(ctx context.Context, subject string, event proto.Message, msgID string) error {
	return e.b.Emit(ctx, subject, event, msgID)
}

func (e emitter) Connected() bool { return e.b.NC.IsConnected() }

// Run serves until ctx is done.
func Run(ctx context.Context, cfg Config, deps Deps, log *slog.Logger) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("chat-handler config: %w", err)
	}
	config := connect.Target{Addr: cfg.ConfigAddr, Conn: deps.ConfigConn}
	if deps.Routes != nil {
		config = connect.Target{} // routes are given: no config service
	}
	conns, err := connect.Open(ctx, log, connect.Spec{
		Name: Name, AuthKeys: cfg.AuthKeys, Keys: deps.AuthKeys, NATSURL: cfg.NATSURL, NATSAuth: cfg.NATSAuth, Bus: deps.Bus,
		GRPC:        []connect.Target{config},
		Revocations: true, RevocationReplicas: cfg.Streams.Replicas,
	})
	if err != nil {
		return err
	}
	defer conns.Close()
	b := conns.Bus
	routes := deps.Routes
	if routes == nil {
		cc := conns.GRPC[0]
		// Routes come from memory, refreshed by ConfigChanged events: no
		// config service call per webhook. A miss may call the config
		// service; its bound plus the publish timeout stays under
		// Twilio's 5 s.
		cache := configcache.New(configv1.NewLookupServiceClient(cc), b, log, configcache.Options{CallTimeout: routeTimeout})
		cctx, stopCache := context.WithCancel(ctx)
		cacheDone := make(chan struct{})
		go func() {
			defer close(cacheDone)
			_ = cache.Run(cctx)
		}()
		defer func() { stopCache(); <-cacheDone }()
		routes = route.Cached{Cache: cache}
	}
	lis, err := httpserver.Listen(deps.Listener, cfg.HTTPAddr)
	if err != nil {
		return err
	}
	if err := b.EnsureStreams(ctx, cfg.Streams, subjects.StreamChat, subjects.StreamDeadLetter); err != nil {
		_ = lis.Close()
		return err
	}
	if err := checkDurability(ctx, cfg, b, log); err != nil {
		_ = lis.Close()
		return err
	}
	proxies, _ := httpserver.ParsePrefixes(cfg.TrustedProxies)
	h := webhook.New(routes, emitter{b}, webhook.Options{
		PublicBaseURL: cfg.PublicBaseURL, TrustedProxies: proxies,
		MaxBodyBytes: cfg.MaxBodyBytes, PublishTimeout: cfg.PublishTimeout, AllowHTTPMedia: cfg.AllowHTTPMedia,
	}, log)
	mux := http.NewServeMux()
	h.Routes(mux)
	if deps.Routes == nil {
		stop, err := startReconciler(ctx, cfg, b, conns, routes, mux, log)
		if err != nil {
			_ = lis.Close()
			return err
		}
		defer stop()
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !b.NC.IsConnected() {
			http.Error(w, "nats disconnected", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	log.InfoContext(ctx, "chat-handler serving", "http", lis.Addr().String(), "public_base_url", cfg.PublicBaseURL,
		"trusted_proxies", len(proxies))
	return httpserver.Serve(ctx, httpserver.New(telemetry.HTTPHandler(b.TracerProvider(), mux)), lis, 5*time.Second)
}

// checkDurability verifies the durability requirement against the CHAT
// stream (and the server, when its monitoring URL is known).
func checkDurability(ctx context.Context, cfg Config, b *bus.Bus, log *slog.Logger) error {
	mode, _ := durability.Parse(cfg.Durability)
	s, err := b.JS.Stream(ctx, subjects.StreamChat)
	if err != nil {
		return fmt.Errorf("inspect stream %s: %w", subjects.StreamChat, err)
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	note, err := durability.Check(cctx, mode, s.CachedInfo().Config.Replicas, cfg.NATSMonitorURL, &http.Client{Timeout: 5 * time.Second})
	if err != nil {
		return fmt.Errorf("chat-handler durability: %w", err)
	}
	level := slog.LevelInfo
	if mode == durability.None {
		level = slog.LevelWarn
	}
	log.Log(ctx, level, "chat-handler durability", "mode", string(mode), "check", note)
	return nil
}

// startReconciler serves on-demand reconciliation on mux and starts the
// watch that reconciles after an outage; stop ends the watch.
func startReconciler(ctx context.Context, cfg Config, b *bus.Bus, conns *connect.Conns, routes route.Resolver, mux *http.ServeMux, log *slog.Logger) (stop func(), err error) {
	var base *url.URL
	if cfg.TwilioBaseURL != "" {
		base, _ = url.Parse(cfg.TwilioBaseURL)
	}
	cc := conns.GRPC[0]
	rec := reconcile.New(lookupCredentials{configv1.NewLookupServiceClient(cc)}, routes, emitter{b},
		reconcile.Options{TwilioBaseURL: base, AllowHTTPMedia: cfg.AllowHTTPMedia}, log)
	entries := reconcile.ConfigEntries{TenantsClient: configv1.NewTenantServiceClient(cc), Channels: configv1.NewChannelServiceClient(cc)}
	mux.Handle(reconcile.Path, reconcile.NewHandler(rec, entries, conns.Keys, log))
	kv, err := kvcas.Bind(ctx, b.JS, jetstream.KeyValueConfig{
		Bucket: reconcile.Bucket, Description: "when chat-handler last answered Twilio, and the outages reconciled since",
		Replicas: max(cfg.Streams.Replicas, 1), TTL: 30 * 24 * time.Hour,
	})
	if err != nil {
		return nil, err
	}
	heartbeat := cfg.Heartbeat
	if heartbeat == 0 {
		heartbeat = 10 * time.Second
	}
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		w := &reconcile.Watch{R: rec, Entries: entries, KV: kv, Heartbeat: heartbeat, Skew: time.Minute, Log: log}
		if err := w.Run(wctx); err != nil && wctx.Err() == nil {
			log.ErrorContext(wctx, "the outage watch stopped; reconcile on demand after an outage", "err", err)
		}
	}()
	return func() { cancel(); <-done }, nil
}

// lookupCredentials adapts the config service's LookupService.
type lookupCredentials struct{ c configv1.LookupServiceClient }

func (l lookupCredentials) GetSendingCredentials(ctx context.Context, tenant, entryID string) (*configv1.GetSendingCredentialsResponse, error) {
	return l.c.GetSendingCredentials(ctx, &configv1.GetSendingCredentialsRequest{TenantId: tenant, EntryId: entryID})
}
