// Package workflowrunner runs the workflow-runner service: one workflow
// instance per chat session, started by SessionStarted and advanced by the
// customer's messages, its durable timers and distribution's accepts,
// publishing outbound messages, task requests and step events. See README.md.
package workflowrunner

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"

	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
	distributionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/distribution/v1"
	outboundv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/outbound/v1"

	"github.com/switchboard-cc/switchboard/pkg/authn"
	"github.com/switchboard-cc/switchboard/pkg/bus"
	"github.com/switchboard-cc/switchboard/pkg/configcache"
	"github.com/switchboard-cc/switchboard/pkg/connect"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
	"github.com/switchboard-cc/switchboard/services/workflow-runner/internal/runner"
)

// Name is the service name.
const Name = "workflow-runner"

// Config of the workflow-runner.
type Config struct {
	NATSURL string
	// NATSAuth: credentials and TLS for NATS (NATS_USER, NATS_CREDS, …).
	NATSAuth bus.Auth
	// MongoURI and Database are not used: instances live in the
	// WORKFLOW_INSTANCES bucket. Kept until callers stop setting them.
	MongoURI   string
	Database   string
	ConfigAddr string
	// DistributionAddr: distribution's gRPC address, for the activities
	// that ask about or change a task (queue position, check and cancel
	// task, availability, priority of a waiting task).
	DistributionAddr string
	// OutboundAddr: outbound-sender's gRPC address, asked whether a
	// WhatsApp customer's 24-hour window is open before a Message with a
	// template; empty: not asked (the text is sent, and outbound-sender
	// refuses it when the window is closed).
	OutboundAddr string
	AuthKeys     string
	Streams      subjects.StreamOptions
	// Workers: sessions handled at once per consumer (one session's events
	// always in order); zero means 64.
	Workers int
	// WebAllowHosts (WEB_REQUEST_ALLOW_HOSTS): hosts Web Request may reach
	// although they resolve to loopback, private, link-local or metadata
	// addresses: "host" for every tenant, "tenant/host" for one.
	WebAllowHosts []string
}

// Defaults for one machine.
func Defaults() Config {
	return Config{
		NATSURL:          "nats://127.0.0.1:4222",
		ConfigAddr:       "127.0.0.1:9090",
		DistributionAddr: "127.0.0.1:9091",
		OutboundAddr:     "127.0.0.1:9093",
		Workers:          defaultWorkers,
	}
}

// defaultWorkers: a session's step mostly waits on NATS and config, so
// many run at once (16 fell behind at 200 new sessions/s).
const defaultWorkers = 64

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	for name, v := range map[string]string{"nats url": c.NATSURL, "config service address": c.ConfigAddr, "distribution service address": c.DistributionAddr} {
		if v == "" {
			errs = append(errs, fmt.Errorf("%s is required", name))
		}
	}
	if c.Workers < 0 {
		errs = append(errs, fmt.Errorf("workers must not be negative, got %d", c.Workers))
	}
	for _, h := range c.WebAllowHosts {
		host := h
		if i := strings.Index(h, "/"); i >= 0 {
			host = h[i+1:]
		}
		ipv6 := strings.Count(host, ":") >= 2
		if host == "" || strings.ContainsAny(host, "/@ []") || (strings.Contains(host, ":") && !ipv6) {
			errs = append(errs, fmt.Errorf("web request allow-list entry %q must be a host name or address without a port, or tenant/host", h))
		}
	}
	if _, err := authn.ParseKeys(c.AuthKeys); err != nil {
		errs = append(errs, fmt.Errorf("auth keys: %w", err))
	}
	return errors.Join(errs...)
}

// Deps may be injected; nil ones are built from Config.
type Deps struct {
	Bus *bus.Bus
	// Mongo is not used (see Config.MongoURI).
	Mongo            *mongo.Client
	ConfigConn       *grpc.ClientConn
	DistributionConn *grpc.ClientConn
	OutboundConn     *grpc.ClientConn
	AuthKeys         *authn.Keys
	// Now is the clock (tests); nil means time.Now.
	Now func() time.Time
	// WebRootCAs are the certificate authorities Web Request and Bot trust
	// (tests); nil means the system's.
	WebRootCAs *x509.CertPool
}

// InstanceTTL is how long an instance is kept after its last change: long
// past any event that could still be redelivered for it.
const InstanceTTL = 30 * 24 * time.Hour

// Run consumes sessions' events, distribution's accepts and the runner's
// own timers until ctx is done.
func Run(ctx context.Context, cfg Config, deps Deps, log *slog.Logger) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("workflow-runner config: %w", err)
	}
	conns, err := connect.Open(ctx, log, connect.Spec{
		Name: Name, AuthKeys: cfg.AuthKeys, Keys: deps.AuthKeys, NATSURL: cfg.NATSURL, NATSAuth: cfg.NATSAuth, Bus: deps.Bus,
		GRPC: []connect.Target{{Addr: cfg.ConfigAddr, Conn: deps.ConfigConn}, {Addr: cfg.DistributionAddr, Conn: deps.DistributionConn},
			{Addr: cfg.OutboundAddr, Conn: deps.OutboundConn}}, // outbound-sender: optional
	})
	if err != nil {
		return err
	}
	defer conns.Close()
	b, cc, dc := conns.Bus, conns.GRPC[0], conns.GRPC[1]
	var contacts runner.Contacts
	if oc := conns.GRPC[2]; oc != nil {
		contacts = outboundv1.NewOutboundServiceClient(oc)
	}
	if err := b.EnsureStreams(ctx, cfg.Streams, subjects.StreamSession, subjects.StreamWorkflow, subjects.StreamOutbound,
		subjects.StreamDistribution, subjects.StreamWorkflowTimers, subjects.StreamDeadLetter); err != nil {
		return err
	}
	kv, err := b.JS.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: subjects.BucketWorkflowInstances, Description: "Workflow instances, one per session (workflow-runner)",
		History: 1, TTL: InstanceTTL, Storage: jetstream.FileStorage, Replicas: max(cfg.Streams.Replicas, 1),
	})
	if err != nil {
		return fmt.Errorf("ensure bucket %s: %w", subjects.BucketWorkflowInstances, err)
	}
	timers, err := runner.NewJetStreamTimers(ctx, b)
	if err != nil {
		return err
	}
	// Services are read through a cache that follows config's changes: a
	// session entering a service costs no call to config.
	services := configv1.NewServiceServiceClient(cc)
	cache := configcache.New(configv1.NewLookupServiceClient(cc), b, log, configcache.Options{Services: services})
	r := runner.New(runner.Deps{
		Pub: b, Services: cachedServices{services, cache}, Workflows: configv1.NewWorkflowServiceClient(cc),
		Distribution: distributionv1.NewDistributionServiceClient(dc),
		Store:        runner.NewStore(kv), Timers: timers, Log: log, Now: deps.Now,
		Web:      runner.WebOptions{AllowHosts: cfg.WebAllowHosts, RootCAs: deps.WebRootCAs},
		Secrets:  configv1.NewLookupServiceClient(cc),
		Contacts: contacts, Tracing: b.TracerProvider(),
	})
	workers := cfg.Workers
	if workers == 0 {
		workers = defaultWorkers
	}
	bySession := bus.KeyByField("session_id")
	log.InfoContext(ctx, "workflow-runner consuming sessions, accepted tasks and timers", "workers", workers)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return cache.Run(gctx) })
	// Sessions run concurrently; one session's events in order.
	g.Go(func() error {
		return b.ConsumeKeyed(gctx, bus.ConsumerSpec{
			Stream: subjects.StreamSession, Durable: subjects.ConsumerWorkflowSessions,
			FilterSubjects: []string{subjects.AllTenants(subjects.KindSessionStarted), subjects.AllTenants(subjects.KindSessionMessageAdded),
				subjects.AllTenants(subjects.KindSessionEnded)},
		}, workers, bySession, r.HandleSession)
	})
	g.Go(func() error {
		return b.ConsumeKeyed(gctx, bus.ConsumerSpec{
			Stream: subjects.StreamDistribution, Durable: subjects.ConsumerWorkflowDistribution,
			FilterSubjects: []string{subjects.AllTenants(subjects.KindTaskAccepted)},
		}, workers, bySession, r.HandleTaskAccepted)
	})
	g.Go(func() error {
		return b.ConsumeKeyed(gctx, bus.ConsumerSpec{
			Stream: subjects.StreamWorkflowTimers, Durable: subjects.ConsumerWorkflowTimers,
			FilterSubjects: []string{subjects.AllTenants(subjects.KindWorkflowTimerFired)},
		}, workers, bySession, r.HandleTimerFired)
	})
	return g.Wait()
}

// cachedServices is ServiceService with GetService answered by the cache.
type cachedServices struct {
	configv1.ServiceServiceClient
	cache *configcache.Cache
}

func (c cachedServices) GetService(ctx context.Context, req *configv1.GetServiceRequest, _ ...grpc.CallOption) (*configv1.GetServiceResponse, error) {
	svc, err := c.cache.Service(ctx, req.GetTenantId(), req.GetId())
	if err != nil {
		return nil, err
	}
	return &configv1.GetServiceResponse{Service: svc}, nil
}
