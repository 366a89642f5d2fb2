// Package reporting runs the reporting service: it builds session records
// from SESSION, DISTRIBUTION and OUTBOUND events and serves them to analysts
// over gRPC (ReportingService, with server reflection for grpcurl).
package reporting

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
	reportingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/reporting/v1"

	"github.com/switchboard-cc/switchboard/pkg/authn"
	"github.com/switchboard-cc/switchboard/pkg/bus"
	"github.com/switchboard-cc/switchboard/pkg/configcache"
	"github.com/switchboard-cc/switchboard/pkg/connect"
	"github.com/switchboard-cc/switchboard/pkg/grpcserver"
	"github.com/switchboard-cc/switchboard/pkg/httpserver"
	"github.com/switchboard-cc/switchboard/pkg/retention"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
	"github.com/switchboard-cc/switchboard/services/reporting/internal/grpcapi"
	"github.com/switchboard-cc/switchboard/services/reporting/internal/records"
	"github.com/switchboard-cc/switchboard/services/reporting/internal/rollup"
)

// Name is the service name.
const Name = "reporting"

// Config of the reporting service.
type Config struct {
	GRPCAddr string
	NATSURL  string
	// NATSAuth: credentials and TLS for NATS (NATS_USER, NATS_CREDS, …).
	NATSAuth bus.Auth
	MongoURI string
	Database string
	AuthKeys string
	// ConfigAddr is the config service, which says each tenant's time
	// zone (followed through its CONFIG events); empty: every tenant is
	// in UTC.
	ConfigAddr string
	// Workers apply events at once (in any order: the record's updates
	// commute); 128 when zero. More at once means larger group commits in
	// which a record's updates merge into one.
	Workers int
	Streams subjects.StreamOptions

	// RollupDelay: how long after a SessionEnded its session is rolled
	// up (events of the other streams catch up meanwhile); zero means
	// none.
	RollupDelay time.Duration
	// RollupZones (IANA names) get day and month rollups besides UTC, so
	// long summaries in them read few documents.
	RollupZones []string
	// NoRollupWriter leaves rolling up to other processes. Those that
	// run the writer share a lease: one of them writes at a time.
	NoRollupWriter bool

	// RetentionSweepEvery is how often records and summaries older than
	// each tenant's retention_days are deleted (1 hour; 0 never). Needs
	// the config service.
	RetentionSweepEvery time.Duration
}

// Defaults for one machine.
func Defaults() Config {
	return Config{
		GRPCAddr:   "127.0.0.1:9092",
		NATSURL:    "nats://127.0.0.1:4222",
		ConfigAddr: "127.0.0.1:9090",
		MongoURI:   "mongodb://127.0.0.1:27017/",
		Database:   "switchboard_reporting",

		RollupDelay: time.Minute,

		RetentionSweepEvery: retention.DefaultEvery,
	}
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	for _, f := range []struct{ name, v string }{
		{"grpc address", c.GRPCAddr}, {"nats url", c.NATSURL}, {"mongo uri", c.MongoURI}, {"database", c.Database},
	} {
		if f.v == "" {
			errs = append(errs, fmt.Errorf("%s is required", f.name))
		}
	}
	if c.RollupDelay < 0 {
		errs = append(errs, fmt.Errorf("rollup delay %s is negative", c.RollupDelay))
	}
	if _, err := c.zones(); err != nil {
		errs = append(errs, err)
	}
	if _, err := authn.ParseKeys(c.AuthKeys); err != nil {
		errs = append(errs, fmt.Errorf("auth keys: %w", err))
	}
	return errors.Join(errs...)
}

func (c Config) zones() ([]*time.Location, error) {
	var out []*time.Location
	for _, z := range c.RollupZones {
		l, err := time.LoadLocation(strings.TrimSpace(z))
		if err != nil || z == "Local" || z == "" {
			return nil, fmt.Errorf("rollup time zone %q is not an IANA time zone", z)
		}
		out = append(out, l)
	}
	return out, nil
}

// Deps may be injected; nil ones are built from Config.
type Deps struct {
	GRPCListener net.Listener
	Bus          *bus.Bus
	Mongo        *mongo.Client
	AuthKeys     *authn.Keys
	// ConfigConn reaches the config service (instead of ConfigAddr).
	ConfigConn *grpc.ClientConn
}

// tenantZones reads tenants' time zones from config through the cache,
// which forgets a tenant's answer when config announces a change of it.
type tenantZones struct{ c *configcache.Cache }

func (z tenantZones) TimeZone(ctx context.Context, tenant string) (string, error) {
	t, err := z.c.Tenant(ctx, tenant)
	if status.Code(err) == codes.NotFound {
		return "", nil // a tenant config does not know: UTC
	}
	if err != nil {
		return "", err
	}
	return t.GetTimeZone(), nil
}

// Run serves until ctx is done.
func Run(ctx context.Context, cfg Config, deps Deps, log *slog.Logger) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("reporting config: %w", err)
	}
	conns, err := connect.Open(ctx, log, connect.Spec{
		Name: Name, AuthKeys: cfg.AuthKeys, Keys: deps.AuthKeys, NATSURL: cfg.NATSURL, NATSAuth: cfg.NATSAuth, Bus: deps.Bus,
		Revocations: true, RevocationReplicas: cfg.Streams.Replicas,
		MongoURI: cfg.MongoURI, Mongo: deps.Mongo,
		GRPC: []connect.Target{{Addr: cfg.ConfigAddr, Conn: deps.ConfigConn}},
	})
	if err != nil {
		return err
	}
	defer conns.Close()
	keys, b, mc := conns.Keys, conns.Bus, conns.Mongo
	lis, err := httpserver.Listen(deps.GRPCListener, cfg.GRPCAddr)
	if err != nil {
		return err
	}
	if err := b.EnsureStreams(ctx, cfg.Streams, subjects.StreamSession, subjects.StreamDistribution, subjects.StreamOutbound, subjects.StreamWorkflow, subjects.StreamDeadLetter); err != nil {
		return err
	}
	st, err := records.New(ctx, mc.Database(cfg.Database))
	if err != nil {
		return err
	}
	defer st.Close() // after g.Wait: the consumers have drained
	zones, _ := cfg.zones()
	rollups := rollup.New(mc.Database(cfg.Database), zones)
	api := &grpcapi.Server{Records: st, Rollups: rollups, JS: b.JS}
	g, gctx := errgroup.WithContext(ctx)
	if cc := conns.GRPC[0]; cc != nil {
		cache := configcache.New(configv1.NewLookupServiceClient(cc), b, log,
			configcache.Options{Tenants: configv1.NewTenantServiceClient(cc)})
		g.Go(func() error { return cache.Run(gctx) })
		api.Zones = tenantZones{cache}
		rollups.SetTenantZones(tenantZones{cache}, nil)
		api.Prices = tenantPrices{cache}
		rollups.SetTenantPrices(tenantPrices{cache})
		retention.Start(gctx, g, b, cfg.RetentionSweepEvery, &retention.Sweeper{Service: Name, Tenants: configv1.NewTenantServiceClient(cc),
			Purge: purger(st, rollups), Log: log}, subjects.ConsumerReportingErasure, eraser(st))
	}
	srv := grpcserver.New(log, keys)
	reportingv1.RegisterReportingServiceServer(srv.Server, api)

	workers := cfg.Workers
	if workers <= 0 {
		workers = 128
	}
	for _, c := range []struct {
		stream, durable string
		h               bus.Handler
	}{
		{subjects.StreamSession, subjects.ConsumerReportingSessions, st.HandleSession},
		{subjects.StreamDistribution, subjects.ConsumerReportingTasks, st.HandleDistribution},
		{subjects.StreamOutbound, subjects.ConsumerReportingOutbound, st.HandleOutbound},
		{subjects.StreamWorkflow, subjects.ConsumerReportingWorkflow, st.HandleWorkflow},
	} {
		var filters []string
		for _, k := range records.Consumed[c.stream] {
			filters = append(filters, subjects.AllTenants(k))
		}
		// Any events at once (the operators commute); a session's events
		// that meet in one group commit become one update.
		g.Go(func() error {
			return b.ConsumeKeyed(gctx, bus.ConsumerSpec{Stream: c.stream, Durable: c.durable, FilterSubjects: filters},
				workers, records.EventKey, c.h)
		})
	}
	if !cfg.NoRollupWriter {
		delay := cfg.RollupDelay
		if delay == 0 {
			delay = -1 // none
		}
		g.Go(func() error {
			return rollups.Run(gctx, b.JS, st, rollup.RunOptions{Delay: delay}, log)
		})
	}
	g.Go(func() error { return srv.Serve(gctx, lis) })
	log.InfoContext(ctx, "reporting serving", "grpc", lis.Addr().String())
	return g.Wait()
}
