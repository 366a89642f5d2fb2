package core

import (
	"context"
	"errors"
	"fmt"
	"time"

	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
	sessionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/session/v1"

	"github.com/switchboard-cc/switchboard/services/sessions/internal/store"
)

// DefaultStaleAfter applies to a tenant that sets no stale_after.
const DefaultStaleAfter = 24 * time.Hour

// RunStaleSweep ends stale sessions every interval until ctx ends.
func (c *Core) RunStaleSweep(ctx context.Context, every time.Duration, now func() time.Time) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if n, err := c.SweepStale(ctx, now()); err != nil {
				c.log.WarnContext(ctx, "stale sweep", "err", err, "ended", n)
			} else if n > 0 {
				c.log.InfoContext(ctx, "stale sessions ended", "ended", n)
			}
		}
	}
}

// SweepStale ends, as expired, every active session whose transcript has
// not changed for its tenant's stale_after (24 hours unless the tenant
// says otherwise; zero never). Several replicas may sweep at once: ending
// an ended session changes nothing.
func (c *Core) SweepStale(ctx context.Context, now time.Time) (int, error) {
	active, err := c.store.ActiveSessions(ctx)
	if err != nil {
		return 0, err
	}
	limits := map[string]time.Duration{}
	ended := 0
	var errs []error
	for _, p := range active {
		limit, ok := limits[p.Tenant]
		if !ok {
			limit = c.staleAfter(ctx, p.Tenant)
			limits[p.Tenant] = limit
		}
		if limit <= 0 {
			continue
		}
		sess, err := c.store.Session(ctx, p.Tenant, p.SessionID)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if sess.State != store.StateActive {
			continue
		}
		last, err := c.store.LastActivity(ctx, sess)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if now.Sub(last) < limit {
			continue
		}
		reason := fmt.Sprintf("stale: no message for %s", limit)
		if err := c.end(ctx, p.Tenant, p.SessionID, sessionv1.Outcome_OUTCOME_EXPIRED, reason); err != nil {
			errs = append(errs, err)
			continue
		}
		ended++
	}
	return ended, errors.Join(errs...)
}

// staleAfter reads the tenant's setting; the default when config cannot
// say.
func (c *Core) staleAfter(ctx context.Context, tenant string) time.Duration {
	if c.tenants == nil {
		return DefaultStaleAfter
	}
	res, err := c.tenants.GetTenant(ctx, &configv1.GetTenantRequest{Id: tenant})
	if err != nil {
		c.log.DebugContext(ctx, "stale_after unavailable; the default applies", "tenant", tenant, "err", err)
		return DefaultStaleAfter
	}
	if sa := res.GetTenant().GetStaleAfter(); sa != nil {
		return sa.AsDuration()
	}
	return DefaultStaleAfter
}
