// Package sessions runs the sessions service: it owns chat sessions (their
// start, transcript and end), serves the agent websocket and the agent
// console, and carries agents' commands to distribution and outbound-sender.
//
// Consumers: sessions-inbound (CHAT), sessions-distribution (DISTRIBUTION),
// sessions-outbound (OUTBOUND), sessions-workflow (WORKFLOW). Publishes on
// SESSION and, for agent replies, OUTBOUND.
package sessions

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"

	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
	distributionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/distribution/v1"
	outboundv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/outbound/v1"

	"github.com/switchboard-cc/switchboard/pkg/authn"
	"github.com/switchboard-cc/switchboard/pkg/bus"
	"github.com/switchboard-cc/switchboard/pkg/connect"
	"github.com/switchboard-cc/switchboard/pkg/httpserver"
	"github.com/switchboard-cc/switchboard/pkg/retention"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
	"github.com/switchboard-cc/switchboard/pkg/telemetry"
	"github.com/switchboard-cc/switchboard/services/sessions/internal/console"
	"github.com/switchboard-cc/switchboard/services/sessions/internal/core"
	"github.com/switchboard-cc/switchboard/services/sessions/internal/gateway"
	"github.com/switchboard-cc/switchboard/services/sessions/internal/store"
)

// Name is the service name.
const Name = "sessions"

// Config of the sessions service.
type Config struct {
	// HTTPAddr serves the console, sign-in and the agent websocket.
	HTTPAddr string
	NATSURL  string
	// NATSAuth: credentials and TLS for NATS (NATS_USER, NATS_CREDS, …).
	NATSAuth         bus.Auth
	MongoURI         string
	Database         string
	ConfigAddr       string
	DistributionAddr string
	// OutboundAddr is outbound-sender's gRPC address, asked what may be
	// sent to a customer (opt-out, WhatsApp window) before the agent types;
	// empty leaves the checks to outbound-sender alone.
	OutboundAddr string
	AuthKeys     string
	// AgentTokenTTL is how long an agent's sign-in lasts (8 hours, at most
	// 24: every token's lifetime is capped).
	AgentTokenTTL time.Duration
	// InboundWorkers handle customer messages of different conversations
	// at once (each conversation's in order); 1 handles one at a time.
	InboundWorkers int
	// AgentAuthTimeout is how long a new websocket may take to send its
	// auth frame before it is closed with 4401 (10 s).
	AgentAuthTimeout time.Duration
	// OriginPatterns lets pages on other hosts open the websocket (the
	// console served here needs none).
	OriginPatterns []string
	// TrustedProxies (IPs or CIDRs) in front of the console: sign-ins are
	// throttled per client address, read from their X-Forwarded-For; from
	// any other peer the header is ignored.
	TrustedProxies []string
	// StaleSweepEvery is how often active sessions are checked against
	// their tenant's stale_after (10 minutes; 0 never checks).
	StaleSweepEvery time.Duration
	// RetentionSweepEvery is how often data older than each tenant's
	// retention_days is purged (1 hour; 0 never).
	RetentionSweepEvery time.Duration
	Streams             subjects.StreamOptions
	// PublicURL is where Twilio reaches this service (the console's
	// address as the internet sees it): agents' attachments are fetched
	// from PublicURL/media/<id>. Empty: agents cannot attach files.
	PublicURL string
}

// Defaults for one machine.
func Defaults() Config {
	return Config{
		HTTPAddr:            "127.0.0.1:8081",
		NATSURL:             "nats://127.0.0.1:4222",
		MongoURI:            "mongodb://127.0.0.1:27017/",
		Database:            "switchboard_sessions",
		ConfigAddr:          "127.0.0.1:9090",
		DistributionAddr:    "127.0.0.1:9091",
		OutboundAddr:        "127.0.0.1:9093",
		AgentTokenTTL:       8 * time.Hour,
		AgentAuthTimeout:    10 * time.Second,
		InboundWorkers:      128,
		StaleSweepEvery:     10 * time.Minute,
		RetentionSweepEvery: retention.DefaultEvery,
	}
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	for _, f := range []struct{ name, v string }{
		{"http address", c.HTTPAddr}, {"nats url", c.NATSURL}, {"mongo uri", c.MongoURI}, {"database", c.Database},
		{"config service address", c.ConfigAddr}, {"distribution address", c.DistributionAddr},
	} {
		if f.v == "" {
			errs = append(errs, fmt.Errorf("%s is required", f.name))
		}
	}
	if _, err := authn.ParseKeys(c.AuthKeys); err != nil {
		errs = append(errs, fmt.Errorf("auth keys: %w", err))
	}
	if c.AgentTokenTTL < time.Minute || c.AgentTokenTTL > authn.MaxTTL {
		errs = append(errs, fmt.Errorf("agent token ttl %s: want a minute to %s", c.AgentTokenTTL, authn.MaxTTL))
	}
	if _, err := httpserver.ParsePrefixes(c.TrustedProxies); err != nil {
		errs = append(errs, err)
	}
	if c.PublicURL != "" {
		if u, err := url.Parse(c.PublicURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.User != nil {
			errs = append(errs, fmt.Errorf("public url %q: want http(s)://host[/path] (Twilio fetches agents' attachments there)", c.PublicURL))
		}
	}
	return errors.Join(errs...)
}

// Deps may be injected; nil ones are built from Config.
type Deps struct {
	Listener         net.Listener
	Bus              *bus.Bus
	Mongo            *mongo.Client
	ConfigConn       *grpc.ClientConn
	DistributionConn *grpc.ClientConn
	OutboundConn     *grpc.ClientConn
	AuthKeys         *authn.Keys
	// Now is the stale sweep's clock (tests); time.Now when nil.
	Now func() time.Time
}

// Run serves until ctx is done.
func Run(ctx context.Context, cfg Config, deps Deps, log *slog.Logger) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("sessions config: %w", err)
	}
	conns, err := connect.Open(ctx, log, connect.Spec{
		Name: Name, AuthKeys: cfg.AuthKeys, Keys: deps.AuthKeys, NATSURL: cfg.NATSURL, NATSAuth: cfg.NATSAuth, Bus: deps.Bus,
		Revocations: true, RevocationReplicas: cfg.Streams.Replicas,
		MongoURI: cfg.MongoURI, Mongo: deps.Mongo,
		GRPC: []connect.Target{
			{Addr: cfg.ConfigAddr, Conn: deps.ConfigConn},
			{Addr: cfg.DistributionAddr, Conn: deps.DistributionConn},
			{Addr: cfg.OutboundAddr, Conn: deps.OutboundConn}, // optional
		},
	})
	if err != nil {
		return err
	}
	defer conns.Close()
	keys, b, mc, cc, dc := conns.Keys, conns.Bus, conns.Mongo, conns.GRPC[0], conns.GRPC[1]
	var outbound outboundv1.OutboundServiceClient
	if oc := conns.GRPC[2]; oc != nil {
		outbound = outboundv1.NewOutboundServiceClient(oc)
	}
	lis, err := httpserver.Listen(deps.Listener, cfg.HTTPAddr)
	if err != nil {
		return err
	}
	if err := b.EnsureStreams(ctx, cfg.Streams, subjects.StreamTranscript, subjects.StreamChat, subjects.StreamSession, subjects.StreamDistribution,
		subjects.StreamOutbound, subjects.StreamWorkflow, subjects.StreamDeadLetter); err != nil {
		return err
	}
	st, err := store.New(ctx, mc.Database(cfg.Database), b.JS, cfg.Streams.Replicas)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.WatchStates(ctx, log); err != nil {
		return err
	}
	proxies, err := httpserver.ParsePrefixes(cfg.TrustedProxies)
	if err != nil {
		return err
	}
	var gw *gateway.Gateway
	domain := core.New(st, b, pusher{gw: &gw}, distributionv1.NewDistributionServiceClient(dc), outbound, log)
	domain.SetPublicURL(cfg.PublicURL)
	domain.SetConfig(configv1.NewServiceServiceClient(cc), configv1.NewTenantServiceClient(cc))
	domain.SetLookup(configv1.NewLookupServiceClient(cc))
	domain.SetTracing(b.TracerProvider())
	domain.SetLifetime(ctx)
	gw = gateway.New(domain, keys, configv1.NewLookupServiceClient(cc), b.NC, log, gateway.Options{
		TokenTTL: cfg.AgentTokenTTL, AuthTimeout: cfg.AgentAuthTimeout, OriginPatterns: cfg.OriginPatterns, Console: console.FS(),
		TrustedProxies: proxies, Tracing: b.TracerProvider(),
	})
	sub, err := gw.Subscribe()
	if err != nil {
		return fmt.Errorf("subscribe agent pushes: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()

	g, gctx := errgroup.WithContext(ctx)
	// Events of one session are handled in order, different sessions at once.
	consume := func(stream, durable string, kinds []string, h bus.Handler) {
		filters := make([]string, len(kinds))
		for i, k := range kinds {
			filters[i] = subjects.AllTenants(k)
		}
		g.Go(func() error {
			return b.ConsumeKeyed(gctx, bus.ConsumerSpec{Stream: stream, Durable: durable, FilterSubjects: filters}, cfg.InboundWorkers, bus.KeyByField("session_id"), h)
		})
	}
	// Customer messages: per conversation in order, conversations at once.
	g.Go(func() error {
		return b.ConsumeKeyed(gctx, bus.ConsumerSpec{
			Stream: subjects.StreamChat, Durable: subjects.ConsumerSessionsInbound,
			FilterSubjects: []string{
				subjects.AllTenants(subjects.KindChatMessageReceived), subjects.AllTenants(subjects.KindChatConversationStateUpdated),
			},
		}, cfg.InboundWorkers, core.ChatKey, domain.HandleChat)
	})
	consume(subjects.StreamDistribution, subjects.ConsumerSessionsDistribution, []string{
		subjects.KindTaskOffered, subjects.KindTaskAccepted, subjects.KindTaskDeclined, subjects.KindTaskOfferTimedOut, subjects.KindTaskCanceled,
		subjects.KindTaskTransferred, subjects.KindTaskWrapUpStarted, subjects.KindTaskWrapUpEnded,
		subjects.KindTaskParked, subjects.KindTaskResumed,
	}, domain.HandleDistribution)
	g.Go(func() error {
		return b.ConsumeKeyed(gctx, bus.ConsumerSpec{
			Stream: subjects.StreamOutbound, Durable: subjects.ConsumerSessionsOutbound,
			FilterSubjects: []string{
				subjects.AllTenants(subjects.KindOutboundRequested), subjects.AllTenants(subjects.KindOutboundSent),
				subjects.AllTenants(subjects.KindOutboundFailed), subjects.AllTenants(subjects.KindOutboundDeliveryUpdate),
				subjects.AllTenants(subjects.KindOutboundContactUpdated),
			},
		}, cfg.InboundWorkers, core.OutboundKey, domain.HandleOutbound)
	})
	consume(subjects.StreamWorkflow, subjects.ConsumerSessionsWorkflow, []string{
		subjects.KindWorkflowFailed, subjects.KindWorkflowEndRequested,
	}, domain.HandleWorkflow)
	g.Go(func() error {
		gw.RunRecheck(gctx)
		return nil
	})
	if cfg.StaleSweepEvery > 0 {
		now := deps.Now
		if now == nil {
			now = time.Now
		}
		g.Go(func() error {
			domain.RunStaleSweep(gctx, cfg.StaleSweepEvery, now)
			return nil
		})
	}
	retention.Start(gctx, g, b, cfg.RetentionSweepEvery, &retention.Sweeper{Service: Name, Tenants: configv1.NewTenantServiceClient(cc),
		Purge: domain.PurgeBefore, Log: log, Now: deps.Now}, subjects.ConsumerSessionsErasure, domain.EraseCustomer)
	srv := httpserver.New(telemetry.HTTPHandler(b.TracerProvider(), gw.Handler()))
	g.Go(func() error {
		err := httpserver.Serve(gctx, srv, lis, 3*time.Second)
		gw.Close()
		return err
	})
	log.InfoContext(ctx, "sessions serving", "http", lis.Addr().String())
	return g.Wait()
}

// pusher hands the domain's frames to the gateway (created after it).
type pusher struct{ gw **gateway.Gateway }

func (p pusher) Push(ctx context.Context, tenant, agentID string, frame []byte) {
	(*p.gw).Push(ctx, tenant, agentID, frame)
}
func (p pusher) PushSession(ctx context.Context, tenant, sessionID string, frame []byte) {
	(*p.gw).PushSession(ctx, tenant, sessionID, frame)
}
