package rollup

import (
	"context"
	"fmt"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/switchboard-cc/switchboard/pkg/mongodb"
)

// A tenant's own time zone (config's Tenant.time_zone) gets day and month
// documents like the zones of Options.Zones, but only for the time it is
// the tenant's zone. The writer keeps, per tenant, the periods of its
// zones in collection rollup_zones ({_id: tenant, periods: [{zone,
// from}]}): a session starting at t counts in the day and month of the
// period holding t. When the writer learns a new zone it starts a period
// at the first midnight of the new zone after now: every session starting
// from then on is rolled up after that moment, so the new zone's days and
// months from there are complete, and which period a session belongs to
// never changes once it is rolled up (a replay after a crash puts it in
// the same documents). The documents of a zone are used by summaries only
// for buckets that lie within one of its periods; before the first one
// (and for a zone the tenant had only for a while, outside that while)
// the summary is made of UTC days and hours, as for any zone not stored.

// TenantZones says a tenant's time zone: an IANA name, "" for UTC.
type TenantZones interface {
	TimeZone(ctx context.Context, tenant string) (string, error)
}

// period: from From (a local midnight of Zone) until the next period's
// From, the tenant's sessions have day and month documents in Zone.
type period struct {
	Zone string    `bson:"zone"`
	From time.Time `bson:"from"`
}

type zonesDoc struct {
	ID      string   `bson:"_id"`
	Periods []period `bson:"periods"`
}

// span: the documents of loc are complete for buckets within [from,
// until); zero bounds are open.
type span struct {
	loc         *time.Location
	from, until time.Time
}

func (sp span) holds(start, end time.Time) bool {
	return (sp.from.IsZero() || !start.Before(sp.from)) && (sp.until.IsZero() || !end.After(sp.until))
}

// SetTenantZones makes the writer follow each tenant's zone as z says it;
// now dates new periods (nil: time.Now). Call it before Run or Apply.
func (s *Store) SetTenantZones(z TenantZones, now func() time.Time) {
	s.tenantZones = z
	if now != nil {
		s.now = now
	}
}

// stored reports whether zone has day and month documents for everyone.
func (s *Store) stored(zone string) bool {
	return slices.ContainsFunc(s.zones, func(l *time.Location) bool { return l.String() == zone })
}

func (s *Store) location(zone string) (*time.Location, error) {
	if l, ok := s.locs.Load(zone); ok {
		return l.(*time.Location), nil
	}
	l, err := time.LoadLocation(zone)
	if err != nil || zone == "Local" || zone == "" {
		return nil, fmt.Errorf("%q is not an IANA time zone", zone)
	}
	s.locs.Store(zone, l)
	return l, nil
}

// zoneAt is the zone of the period holding t; "" before the first.
func zoneAt(periods []period, t time.Time) string {
	zone := ""
	for _, p := range periods {
		if t.Before(p.From) {
			break
		}
		zone = p.Zone
	}
	return zone
}

func (s *Store) readPeriods(ctx context.Context, tenant string) ([]period, error) {
	var d zonesDoc
	err := s.zonesC.FindOne(ctx, bson.M{"_id": tenant}).Decode(&d)
	if mongodb.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read time zones of %s: %w", tenant, err)
	}
	return d.Periods, nil
}

// forgetPeriods makes the writer read the periods again (it starts over
// from the cursor, perhaps after another writer held the lease).
func (s *Store) forgetPeriods() {
	s.writerMu.Lock()
	s.written = nil
	s.writerMu.Unlock()
}

// writerPeriods are the periods of the batch's tenants, each tenant's
// brought up to date with its zone first.
func (s *Store) writerPeriods(ctx context.Context, batch []Session) (map[string][]period, error) {
	s.writerMu.Lock()
	defer s.writerMu.Unlock()
	if s.written == nil {
		s.written = map[string][]period{}
	}
	out := map[string][]period{}
	for i := range batch {
		tenant := batch[i].Tenant
		if _, done := out[tenant]; done {
			continue
		}
		ps, known := s.written[tenant]
		if !known {
			var err error
			if ps, err = s.readPeriods(ctx, tenant); err != nil {
				return nil, err
			}
			s.written[tenant] = ps
		}
		next, changed := s.follow(ctx, tenant, ps)
		if changed {
			if _, err := s.zonesC.ReplaceOne(ctx, bson.M{"_id": tenant}, zonesDoc{ID: tenant, Periods: next}, options.Replace().SetUpsert(true)); err != nil {
				return nil, fmt.Errorf("write time zones of %s: %w", tenant, err)
			}
			s.log.InfoContext(ctx, "rollups: tenant time zone", "tenant", tenant, "zone", next[len(next)-1].Zone, "from", next[len(next)-1].From)
			s.written[tenant], ps = next, next
			s.periodCache.put(tenant, next, time.Now())
		}
		out[tenant] = ps
	}
	return out, nil
}

// follow returns ps with a period for the tenant's current zone, if it
// has a new one. A zone that cannot be learnt now changes nothing: the
// last period goes on.
func (s *Store) follow(ctx context.Context, tenant string, ps []period) ([]period, bool) {
	if s.tenantZones == nil {
		return ps, false
	}
	zone, err := s.tenantZones.TimeZone(ctx, tenant)
	if err != nil {
		s.log.WarnContext(ctx, "rollups: the tenant's time zone is not known now; its last one goes on", "tenant", tenant, "err", err)
		return ps, false
	}
	if zone == "" {
		zone = "UTC"
	}
	loc, err := s.location(zone)
	if err != nil {
		s.log.WarnContext(ctx, "rollups: the tenant's time zone is not usable; its last one goes on", "tenant", tenant, "zone", zone)
		return ps, false
	}
	now := s.now()
	n := len(ps)
	switch {
	case n == 0 && s.stored(zone):
		return ps, false // stored anyway: nothing to start or end
	case n > 0 && ps[n-1].Zone == zone:
		return ps, false
	}
	next := slices.Clone(ps)
	if n > 0 && ps[n-1].From.After(now) {
		// The last period has not begun (two changes in a day): no
		// session is in it yet, so it is replaced.
		next = next[:n-1]
		if m := len(next); (m > 0 && next[m-1].Zone == zone) || (m == 0 && s.stored(zone)) {
			return next, true
		}
	}
	return append(next, period{Zone: zone, From: Next(GDay, loc, Floor(GDay, loc, now))}), true
}

// spans are where day and month documents may be used for tenant: the
// stored zones always, the tenant's zones within their periods.
func (s *Store) spans(ctx context.Context, tenant string) ([]span, error) {
	out := make([]span, 0, len(s.zones)+2)
	for _, z := range s.zones {
		out = append(out, span{loc: z})
	}
	ps, ok := s.periodCache.get(tenant)
	if !ok {
		at := time.Now()
		var err error
		if ps, err = s.readPeriods(ctx, tenant); err != nil {
			return nil, err
		}
		s.periodCache.put(tenant, ps, at)
	}
	for i, p := range ps {
		if s.stored(p.Zone) {
			continue
		}
		loc, err := s.location(p.Zone)
		if err != nil {
			continue
		}
		sp := span{loc: loc, from: p.From}
		if i+1 < len(ps) {
			sp.until = ps[i+1].From
		}
		out = append(out, sp)
	}
	return out, nil
}
