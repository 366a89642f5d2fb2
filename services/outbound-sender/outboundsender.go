// Package outboundsender runs outbound-sender, the only code that calls
// Twilio's REST API. It consumes outbound message requests (OUTBOUND
// stream) in one lane per Twilio sender, enforces opt-outs, the WhatsApp
// window and per-sender rates before calling Twilio, sends each request
// exactly once with twilio-go, keeps the delivery ledger, follows delivery
// reports and customer messages (CHAT stream), and serves OutboundService
// (contact state and the ledger) over gRPC. See README.md.
//
// Consumers: outbound-sender-requests (OUTBOUND), outbound-sender-deliveries
// and outbound-sender-inbound (CHAT). Publishes outbound.message.sent|failed,
// outbound.delivery.updated and outbound.contact.updated.
package outboundsender

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
	outboundv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/outbound/v1"

	"github.com/switchboard-cc/switchboard/pkg/authn"
	"github.com/switchboard-cc/switchboard/pkg/bus"
	"github.com/switchboard-cc/switchboard/pkg/configcache"
	"github.com/switchboard-cc/switchboard/pkg/connect"
	"github.com/switchboard-cc/switchboard/pkg/grpcserver"
	"github.com/switchboard-cc/switchboard/pkg/httpserver"
	"github.com/switchboard-cc/switchboard/pkg/retention"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
	"github.com/switchboard-cc/switchboard/services/outbound-sender/internal/contacts"
	"github.com/switchboard-cc/switchboard/services/outbound-sender/internal/grpcapi"
	"github.com/switchboard-cc/switchboard/services/outbound-sender/internal/lanes"
	"github.com/switchboard-cc/switchboard/services/outbound-sender/internal/ledger"
	"github.com/switchboard-cc/switchboard/services/outbound-sender/internal/media"
	"github.com/switchboard-cc/switchboard/services/outbound-sender/internal/ratelimit"
	"github.com/switchboard-cc/switchboard/services/outbound-sender/internal/sender"
	"github.com/switchboard-cc/switchboard/services/outbound-sender/internal/templates"
	"github.com/switchboard-cc/switchboard/services/outbound-sender/internal/twilioapi"
)

// Name is the service name.
const Name = "outbound-sender"

// Config of outbound-sender.
type Config struct {
	NATSURL string
	// NATSAuth: credentials and TLS for NATS (NATS_USER, NATS_CREDS, …).
	NATSAuth   bus.Auth
	MongoURI   string
	Database   string
	ConfigAddr string
	AuthKeys   string
	// GRPCAddr serves OutboundService; empty serves nothing.
	GRPCAddr string
	// TwilioBaseURL sends every Twilio API call to this base URL instead
	// (the emulator, e.g. http://127.0.0.1:8089). Empty for real Twilio.
	TwilioBaseURL string
	// StatusCallbackBaseURL is the public base URL of chat-handler, where
	// Twilio posts status callbacks.
	StatusCallbackBaseURL string
	// TwilioTimeout bounds one Twilio call; requests are redelivered after
	// twice this without progress.
	TwilioTimeout time.Duration
	// SMSRate and WhatsAppRate are the default per-sender limits
	// ("1seg/s", "10msg/s"); RateLimits overrides them per business
	// number, Messaging Service, Conversations service or connector:
	// "+12025550100=3seg/s,whatsapp:+12025550101=80msg/s,connector:main=1seg/s".
	SMSRate      string
	WhatsAppRate string
	RateLimits   string
	// Retries of a 429/5xx/unreachable call before the request goes back
	// to JetStream.
	Retries int
	// MaxConcurrentCalls to Twilio at once.
	MaxConcurrentCalls int
	// MaxPending bounds requests held at once (queued behind rate limits
	// and in flight).
	MaxPending int
	// Workers handle status reports of different messages, and customer
	// messages of different customers, at once (each key in order); 64
	// when zero.
	Workers int
	Streams subjects.StreamOptions
	// RetentionSweepEvery is how often the ledger's message bodies older
	// than each tenant's retention_days are blanked (1 hour; 0 never).
	RetentionSweepEvery time.Duration
}

// Defaults for one machine.
func Defaults() Config {
	return Config{
		NATSURL:            "nats://127.0.0.1:4222",
		MongoURI:           "mongodb://127.0.0.1:27017/",
		Database:           "switchboard_outbound",
		ConfigAddr:         "127.0.0.1:9090",
		GRPCAddr:           "127.0.0.1:9093",
		TwilioTimeout:      10 * time.Second,
		SMSRate:            "1seg/s",
		WhatsAppRate:       "10msg/s",
		Retries:            4,
		MaxConcurrentCalls: 64,
		MaxPending:         10000,

		RetentionSweepEvery: retention.DefaultEvery,
	}
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	for _, f := range []struct{ name, v string }{
		{"nats url", c.NATSURL}, {"mongo uri", c.MongoURI}, {"database", c.Database}, {"config service address", c.ConfigAddr},
	} {
		if f.v == "" {
			errs = append(errs, fmt.Errorf("%s is required", f.name))
		}
	}
	if _, err := authn.ParseKeys(c.AuthKeys); err != nil {
		errs = append(errs, fmt.Errorf("auth keys: %w", err))
	}
	if c.GRPCAddr != "" {
		if _, _, err := net.SplitHostPort(c.GRPCAddr); err != nil {
			errs = append(errs, fmt.Errorf("grpc address %q: %v", c.GRPCAddr, err))
		}
	}
	for name, v := range map[string]string{"twilio base url": c.TwilioBaseURL, "status callback base url": c.StatusCallbackBaseURL} {
		if v == "" {
			continue
		}
		if u, err := url.Parse(v); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("%s %q is not an http(s) URL", name, v))
		}
	}
	if c.TwilioTimeout <= 0 {
		errs = append(errs, errors.New("twilio timeout must be positive"))
	}
	if _, err := c.rules(); err != nil {
		errs = append(errs, err)
	}
	if c.Retries < 0 || c.MaxConcurrentCalls < 0 || c.MaxPending < 0 {
		errs = append(errs, errors.New("retries, max concurrent calls and max pending must not be negative"))
	}
	return errors.Join(errs...)
}

func (c Config) rules() (ratelimit.Rules, error) {
	r := ratelimit.DefaultRules()
	var errs []error
	if c.SMSRate != "" {
		l, err := ratelimit.ParseLimit(c.SMSRate)
		if err != nil {
			errs = append(errs, fmt.Errorf("sms rate: %w", err))
		}
		r.SMS = l
	}
	if c.WhatsAppRate != "" {
		l, err := ratelimit.ParseLimit(c.WhatsAppRate)
		if err != nil {
			errs = append(errs, fmt.Errorf("whatsapp rate: %w", err))
		}
		r.WhatsApp = l
	}
	by, err := ratelimit.ParseOverrides(c.RateLimits)
	if err != nil {
		errs = append(errs, err)
	}
	r.ByKey = by
	return r, errors.Join(errs...)
}

// Deps may be injected; nil ones are built from Config.
type Deps struct {
	Bus          *bus.Bus
	Mongo        *mongo.Client
	ConfigConn   *grpc.ClientConn
	AuthKeys     *authn.Keys
	GRPCListener net.Listener
	// Credentials replaces the config service lookups (benchmarks, tools).
	Credentials sender.Credentials
	// Transport carries Twilio calls; nil uses a keep-alive pool.
	Transport http.RoundTripper
}

// Run serves until ctx is done.
func Run(ctx context.Context, cfg Config, deps Deps, log *slog.Logger) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("outbound-sender config: %w", err)
	}
	rules, _ := cfg.rules()
	config := connect.Target{Addr: cfg.ConfigAddr, Conn: deps.ConfigConn}
	if deps.Credentials != nil {
		config = connect.Target{} // credentials are given: no config service
	}
	conns, err := connect.Open(ctx, log, connect.Spec{
		Name: Name, AuthKeys: cfg.AuthKeys, Keys: deps.AuthKeys, NATSURL: cfg.NATSURL, NATSAuth: cfg.NATSAuth, Bus: deps.Bus,
		Revocations: true, RevocationReplicas: cfg.Streams.Replicas,
		MongoURI: cfg.MongoURI, Mongo: deps.Mongo, GRPC: []connect.Target{config},
	})
	if err != nil {
		return err
	}
	defer conns.Close()
	keys, b, mc := conns.Keys, conns.Bus, conns.Mongo
	if err := b.EnsureStreams(ctx, cfg.Streams, subjects.StreamOutbound, subjects.StreamChat, subjects.StreamDeadLetter); err != nil {
		return err
	}
	var lis net.Listener
	if deps.GRPCListener != nil || cfg.GRPCAddr != "" {
		if lis, err = httpserver.Listen(deps.GRPCListener, cfg.GRPCAddr); err != nil {
			return err
		}
	}

	g, gctx := errgroup.WithContext(ctx)
	creds := deps.Credentials
	if creds == nil {
		cache := configcache.New(configv1.NewLookupServiceClient(conns.GRPC[0]), b, log, configcache.Options{})
		g.Go(func() error { return cache.Run(gctx) })
		creds = cache
	}
	topts := twilioapi.Options{Timeout: cfg.TwilioTimeout, Transport: deps.Transport}
	if cfg.TwilioBaseURL != "" {
		topts.BaseURL, _ = url.Parse(cfg.TwilioBaseURL)
		log.WarnContext(ctx, "twilio calls go to an emulator", "base_url", cfg.TwilioBaseURL)
	}
	twilio := twilioapi.New(topts)
	db := mc.Database(cfg.Database)
	led := ledger.New(db)
	defer led.Close()
	var tenants configv1.TenantServiceClient
	if conns.GRPC[0] != nil {
		tenants = configv1.NewTenantServiceClient(conns.GRPC[0])
	}
	retention.Start(gctx, g, b, cfg.RetentionSweepEvery, &retention.Sweeper{Service: Name, Tenants: tenants, Log: log,
		Purge: func(ctx context.Context, tenant string, cutoff time.Time) (map[string]int64, error) {
			n, err := led.BlankBefore(ctx, tenant, cutoff)
			return map[string]int64{"requests_blanked": n}, err
		}}, subjects.ConsumerOutboundErasure,
		func(ctx context.Context, req *configv1.CustomerErasureRequested) (map[string]int64, error) {
			n, err := led.EraseCustomer(ctx, req.GetTenantId(), req.GetAddress())
			return map[string]int64{"requests_blanked": n}, err
		})
	s := sender.New(sender.Deps{
		Pub: b, Credentials: creds, Twilio: twilio, Ledger: led, Contacts: contacts.New(db),
		Progress: &inboundProgress{js: b.JS}, Tracing: b.TracerProvider(),
	}, sender.Options{
		StatusCallbackBaseURL: cfg.StatusCallbackBaseURL, Timeout: cfg.TwilioTimeout, Rules: rules,
		Retries: cfg.Retries, MaxConcurrentCalls: cfg.MaxConcurrentCalls,
	}, log)
	stopSending := context.AfterFunc(gctx, s.Stop)
	defer stopSending()
	// Contact changes made by any replica drop this one's cached copy.
	contactSub, err := b.NC.Subscribe(subjects.AllTenants(subjects.KindOutboundContactUpdated), func(m *nats.Msg) {
		var ev outboundv1.OutboundContactUpdated
		if proto.Unmarshal(m.Data, &ev) == nil {
			s.Invalidate(ev.GetTenantId(), ev.GetConversation().GetCustomerAddress())
		}
	})
	if err != nil {
		return fmt.Errorf("follow contact updates: %w", err)
	}
	defer func() { _ = contactSub.Unsubscribe() }()

	g.Go(func() error {
		return lanes.Run(gctx, b, lanes.Spec{
			Stream: subjects.StreamOutbound, Durable: subjects.ConsumerOutboundRequests,
			FilterSubjects: []string{subjects.AllTenants(subjects.KindOutboundRequested)},
			AckWait:        2 * cfg.TwilioTimeout, MaxAckPending: cfg.MaxPending,
			// A reply Twilio keeps refusing with 429/5xx (or cannot be
			// reached for) is retried for this long, past its 8
			// deliveries, before it is reported failed to the agent: a
			// short Twilio incident or broker restart delays replies
			// instead of failing them.
			TransientFor: sendRetryFor,
		}, s.LaneKey, s.Stages(), log)
	})
	workers := cfg.Workers
	if workers <= 0 {
		workers = 64
	}
	g.Go(func() error {
		// Keyed by tenant and Twilio SID: one message's reports in order.
		return b.ConsumeKeyed(gctx, bus.ConsumerSpec{
			Stream: subjects.StreamChat, Durable: subjects.ConsumerOutboundDeliveries,
			FilterSubjects: []string{subjects.AllTenants(subjects.KindChatDeliveryUpdated)},
			// A report that overtook its send's ledger write is retried for
			// two minutes (sender.lateReport), then dropped, not dead-lettered.
			MaxDeliver: 30,
		}, workers, sender.DeliveryKey, s.HandleDelivery)
	})
	g.Go(func() error {
		// Keyed by tenant and customer: one customer's messages in order.
		return b.ConsumeKeyed(gctx, bus.ConsumerSpec{
			Stream: subjects.StreamChat, Durable: subjects.ConsumerOutboundInbound,
			FilterSubjects: []string{subjects.AllTenants(subjects.KindChatMessageReceived)},
		}, workers, sender.InboundKey, s.HandleInbound)
	})
	if lis != nil {
		srv := grpcserver.New(log, keys)
		outboundv1.RegisterOutboundServiceServer(srv.Server, &grpcapi.Server{Sender: s, Templates: templates.New(creds, twilio, 0, nil),
			Media: media.New(creds, deps.Transport, topts.BaseURL, 0)})
		g.Go(func() error { return srv.Serve(gctx, lis) })
		log.InfoContext(ctx, "outbound-sender serving", "grpc", lis.Addr().String())
	}
	log.InfoContext(ctx, "outbound-sender consuming requests", "sms_rate", rules.SMS.String(), "whatsapp_rate", rules.WhatsApp.String(), "overrides", len(rules.ByKey))
	return g.Wait()
}

// sendRetryFor: how long a request is retried at least before
// outbound-sender reports it failed.
const sendRetryFor = 3 * time.Minute

// inboundProgress compares the last customer message of a tenant on the
// CHAT stream with how far outbound-sender-inbound has acknowledged.
type inboundProgress struct {
	js jetstream.JetStream

	mu     sync.Mutex
	stream jetstream.Stream
	cons   jetstream.Consumer
}

func (p *inboundProgress) handles(ctx context.Context) (jetstream.Stream, jetstream.Consumer, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stream == nil {
		st, err := p.js.Stream(ctx, subjects.StreamChat)
		if err != nil {
			return nil, nil, fmt.Errorf("stream %s: %w", subjects.StreamChat, err)
		}
		p.stream = st
	}
	if p.cons == nil {
		c, err := p.js.Consumer(ctx, subjects.StreamChat, subjects.ConsumerOutboundInbound)
		if err != nil {
			return nil, nil, fmt.Errorf("consumer %s: %w", subjects.ConsumerOutboundInbound, err)
		}
		p.cons = c
	}
	return p.stream, p.cons, nil
}

// CaughtUp implements sender.InboundProgress.
func (p *inboundProgress) CaughtUp(ctx context.Context, tenant string) (bool, error) {
	st, cons, err := p.handles(ctx)
	if err != nil {
		return false, err
	}
	last, err := st.GetLastMsgForSubject(ctx, subjects.ChatMessageReceived(tenant))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("last customer message of %s: %w", tenant, err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return false, fmt.Errorf("consumer %s info: %w", subjects.ConsumerOutboundInbound, err)
	}
	return info.AckFloor.Stream >= last.Sequence, nil
}
