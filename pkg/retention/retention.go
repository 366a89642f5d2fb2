// Package retention runs a service's purge of session data older than each
// tenant's retention_days. The config service's Tenant.retention_days is
// the one place that decides how long a tenant's data is kept (0, the
// default: for ever); every service that stores session data lists the
// tenants from config on its own schedule (RETENTION_SWEEP_EVERY) and
// purges, in batches, what is older than now less that many days.
package retention

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"golang.org/x/sync/errgroup"

	"github.com/switchboard-cc/switchboard/pkg/bus"
	"github.com/switchboard-cc/switchboard/pkg/erasure"
	"github.com/switchboard-cc/switchboard/pkg/telemetry"
	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
)

// Bounds of Tenant.retention_days (0 keeps everything).
const (
	MinDays = 1
	MaxDays = 3650
)

// DefaultEvery is how often services sweep unless RETENTION_SWEEP_EVERY
// says otherwise.
const DefaultEvery = time.Hour

var (
	meter  = telemetry.NewMeter("github.com/switchboard-cc/switchboard/pkg/retention")
	purged = meter.Counter("switchboard.retention.purged",
		"Items removed or blanked by the retention sweep (and by erasures), by service and kind.")
	sweeps = meter.Counter("switchboard.retention.sweeps",
		"Retention sweeps by service and result (ok, error).")
)

// Count adds n items of kind removed by service to the purge metric.
func Count(service, kind string, n int64) {
	if n > 0 {
		purged.Add(context.Background(), n, metric.WithAttributes(attribute.String("service", service), attribute.String("kind", kind)))
	}
}

// Purge removes what tenant stored before cutoff and reports how many
// items of each kind it removed.
type Purge func(ctx context.Context, tenant string, cutoff time.Time) (map[string]int64, error)

// Sweeper purges every tenant that sets a retention.
type Sweeper struct {
	Service string
	Tenants configv1.TenantServiceClient
	Purge   Purge
	Log     *slog.Logger
	Now     func() time.Time
}

// Cutoff is the moment before which a tenant keeping days days has
// nothing; zero when it keeps everything.
func Cutoff(now time.Time, days int32) time.Time {
	if days <= 0 {
		return time.Time{}
	}
	return now.Add(-time.Duration(days) * 24 * time.Hour)
}

// Start runs in g, until ctx ends, what a service that keeps customer
// data runs for retention and erasure: the sweep every interval (none
// when every <= 0 or without a tenant client) and the consumer of
// customer erasures (erasure.Consume under durable, answered by erase).
func Start(ctx context.Context, g *errgroup.Group, b *bus.Bus, every time.Duration, s *Sweeper, durable string, erase erasure.Handler) {
	if every > 0 && s.Tenants != nil {
		g.Go(func() error {
			s.Run(ctx, every)
			return nil
		})
	}
	g.Go(func() error { return erasure.Consume(ctx, b, s.Service, durable, s.Log, erase) })
}

// Run sweeps every interval until ctx ends (the first sweep after one
// interval).
func (s *Sweeper) Run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := s.Sweep(ctx); err != nil && ctx.Err() == nil {
				s.Log.WarnContext(ctx, "retention sweep", "err", err)
			}
		}
	}
}

// Sweep purges, once, every tenant with a retention; it returns the counts
// by tenant and goes on past a tenant that fails.
func (s *Sweeper) Sweep(ctx context.Context) (map[string]map[string]int64, error) {
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	out := map[string]map[string]int64{}
	var errs []error
	token := ""
	for {
		res, err := s.Tenants.ListTenants(ctx, &configv1.ListTenantsRequest{PageSize: 1000, PageToken: token})
		if err != nil {
			sweeps.Add(ctx, 1, metric.WithAttributes(attribute.String("service", s.Service), attribute.String("result", "error")))
			return out, fmt.Errorf("list tenants: %w", err)
		}
		for _, t := range res.GetTenants() {
			cutoff := Cutoff(now(), t.GetRetentionDays())
			if cutoff.IsZero() {
				continue
			}
			counts, err := s.Purge(ctx, t.GetId(), cutoff)
			if err != nil {
				errs = append(errs, fmt.Errorf("tenant %q: %w", t.GetId(), err))
			}
			total := int64(0)
			for kind, n := range counts {
				Count(s.Service, kind, n)
				total += n
			}
			out[t.GetId()] = counts
			if total > 0 {
				s.Log.InfoContext(ctx, "retention purged", "tenant", t.GetId(), "retention_days", t.GetRetentionDays(), "cutoff", cutoff, "counts", counts)
			}
		}
		if token = res.GetNextPageToken(); token == "" {
			break
		}
	}
	result := "ok"
	if len(errs) > 0 {
		result = "error"
	}
	sweeps.Add(ctx, 1, metric.WithAttributes(attribute.String("service", s.Service), attribute.String("result", result)))
	return out, errors.Join(errs...)
}
