// Package rollup keeps summaries of ended sessions so reports never read
// session records: per tenant and time bucket one document, keyed by _id
// "<tenant>/<granularity>/<zone>/<local start>", holding one row per
// combination of service, channel, entry, agent and outcome with counters,
// sums and log-scale histograms (hist.go) that merge by adding.
//
// Granularities: 15m and hour in UTC (every zone's offset is a multiple of
// 15 minutes, so a local hour or day anywhere is a union of them), day and
// month in UTC and in each zone of Options.Zones, and in each tenant's own
// zone from the first local midnight after the writer learnt it
// (tenantzone.go). A query covers its range with the largest documents
// that fit (query.go): a year by month in UTC or a stored zone is 12 reads.
//
// Exactly once: a session is rolled up once, from a single ordered reader
// of its SessionEnded events (run.go), in stream order. Each document
// keeps hwm, the highest stream sequence applied to it, and a session
// (sequence s) is added to a document only if s > hwm, in the same
// write that raises hwm. The reader restarts from a cursor that is only
// advanced after every document of a batch is written; everything after
// the cursor is replayed in the same order, so each document skips what
// it already has and applies what it missed.
package rollup

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"sort"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"golang.org/x/sync/errgroup"

	"github.com/switchboard-cc/switchboard/pkg/mongodb"
)

// Granularities.
const (
	G15m   = "15m"
	GHour  = "hour"
	GDay   = "day"
	GMonth = "month"
)

// Store holds the rollups.
type Store struct {
	c, state *mongo.Collection
	// owner names this store's writer in the writer lease.
	owner string
	// zones have day and month documents; UTC first.
	zones []*time.Location

	cache ttlCache[*doc]

	// Tenants' own zones (tenantzone.go): where their periods are kept,
	// who says a tenant's zone, the clock that dates a new period, the
	// periods the writer knows and those read for summaries.
	zonesC      *mongo.Collection
	tenantZones TenantZones
	now         func() time.Time
	log         *slog.Logger
	locs        sync.Map // name → *time.Location
	writerMu    sync.Mutex
	written     map[string][]period
	periodCache ttlCache[[]period]

	// Tenants' price tables (prices.go), and the last each had.
	tenantPrices TenantPrices
	lastPrices   sync.Map // tenant → *pricing.Table
}

// CacheTTL is how long a document read for a summary is used again
// without reading it: a dashboard asking for the same ranges again reads
// nothing. The writer's own process replaces what it writes at once; in
// another replica a summary is at most this much older than the rollups
// (which are ROLLUP_DELAY behind the sessions anyway).
const CacheTTL = 15 * time.Second

// cacheMax bounds the documents kept (a few kilobytes each).
const cacheMax = 8192

type cached[V any] struct {
	v  V // a document: nil when there is none
	at time.Time
}

// ttlCache keeps what was read for CacheTTL.
type ttlCache[V any] struct {
	mu sync.Mutex
	m  map[string]cached[V]
}

func (c *ttlCache[V]) get(id string) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[id]
	if !ok || time.Since(e.at) > CacheTTL {
		var zero V
		return zero, false
	}
	return e.v, true
}

func (c *ttlCache[V]) put(id string, v V, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= cacheMax {
		c.m = make(map[string]cached[V], 1024) // start afresh rather than track age
	}
	if e, ok := c.m[id]; ok && e.at.After(at) {
		return // a read that began before the write it would hide
	}
	c.m[id] = cached[V]{v, at}
}

func (c *ttlCache[V]) clear() {
	c.mu.Lock()
	c.m = nil
	c.mu.Unlock()
}

// ClearCache forgets the documents read (benchmarks measure cold reads).
func (s *Store) ClearCache() {
	s.cache.clear()
	s.periodCache.clear()
}

// New opens the rollups of db; zones (besides UTC) also get day and month
// documents.
func New(db *mongo.Database, zones []*time.Location) *Store {
	s := &Store{c: db.Collection("rollups"), state: db.Collection("rollup_state"), zones: []*time.Location{time.UTC},
		owner:  fmt.Sprintf("%s/%d/%x", host(), os.Getpid(), rand.Uint64()),
		zonesC: db.Collection("rollup_zones"), now: time.Now, log: slog.New(slog.DiscardHandler)}
	for _, z := range zones {
		if z != nil && z.String() != "UTC" && !slices.ContainsFunc(s.zones, func(o *time.Location) bool { return o.String() == z.String() }) {
			s.zones = append(s.zones, z)
		}
	}
	return s
}

type doc struct {
	ID     string    `bson:"_id"`
	Tenant string    `bson:"tenant"`
	Gran   string    `bson:"gran"`
	Zone   string    `bson:"zone"`
	Start  time.Time `bson:"start"`
	// HWM is the highest SESSION stream sequence applied.
	HWM      int64  `bson:"hwm"`
	Sessions int64  `bson:"sessions"`
	NRows    int    `bson:"n_rows"`
	Rows     []byte `bson:"rows"`
}

// DocID names the document of tenant, granularity, zone and start.
func DocID(tenant, gran string, loc *time.Location, start time.Time) string {
	return tenant + "/" + gran + "/" + loc.String() + "/" + start.In(loc).Format("2006-01-02T15:04")
}

// Floor is the start of the bucket of gran in loc holding t.
func Floor(gran string, loc *time.Location, t time.Time) time.Time {
	switch gran {
	case G15m:
		return t.UTC().Truncate(15 * time.Minute)
	case GHour:
		return t.UTC().Truncate(time.Hour)
	}
	l := t.In(loc)
	y, m, d := l.Date()
	if gran == GMonth {
		d = 1
	}
	return time.Date(y, m, d, 0, 0, 0, 0, loc)
}

// Next is the start of the bucket after the one starting at start.
func Next(gran string, loc *time.Location, start time.Time) time.Time {
	switch gran {
	case G15m:
		return start.Add(15 * time.Minute)
	case GHour:
		return start.Add(time.Hour)
	}
	l := start.In(loc)
	y, m, d := l.Date()
	if gran == GMonth {
		return time.Date(y, m+1, 1, 0, 0, 0, 0, loc)
	}
	return time.Date(y, m, d+1, 0, 0, 0, 0, loc)
}

type target struct {
	id, tenant, gran, zone string
	start                  time.Time
	sessions               []*Session
}

// targets are the documents a session at t counts in: 15 minutes and
// hours in UTC, days and months in the stored zones and in the tenant's
// zone of the period holding t.
func (s *Store) targets(tenant string, t time.Time, periods []period, add func(id, gran string, loc *time.Location, start time.Time)) {
	for _, g := range []string{G15m, GHour} {
		st := Floor(g, time.UTC, t)
		add(DocID(tenant, g, time.UTC, st), g, time.UTC, st)
	}
	zones := s.zones
	if z := zoneAt(periods, t); z != "" && !s.stored(z) {
		if loc, err := s.location(z); err == nil {
			zones = append(slices.Clip(zones), loc)
		}
	}
	for _, z := range zones {
		for _, g := range []string{GDay, GMonth} {
			st := Floor(g, z, t)
			add(DocID(tenant, g, z, st), g, z, st)
		}
	}
}

// Apply adds sessions, in increasing Seq, to their documents: each
// document is read once, given the sessions above its hwm, and written
// once. Documents are written concurrently; an error leaves some written
// and some not, which a replay of the same sessions repairs.
func (s *Store) Apply(ctx context.Context, batch []Session) error {
	periods, err := s.writerPeriods(ctx, batch)
	if err != nil {
		return err
	}
	byID := map[string]*target{}
	var order []*target
	for i := range batch {
		ss := &batch[i]
		s.targets(ss.Tenant, ss.At, periods[ss.Tenant], func(id, gran string, loc *time.Location, start time.Time) {
			t := byID[id]
			if t == nil {
				t = &target{id: id, tenant: ss.Tenant, gran: gran, zone: loc.String(), start: start}
				byID[id] = t
				order = append(order, t)
			}
			if n := len(t.sessions); n == 0 || t.sessions[n-1] != ss {
				t.sessions = append(t.sessions, ss)
			}
		})
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for _, t := range order {
		g.Go(func() error { return s.applyDoc(gctx, t) })
	}
	return g.Wait()
}

func (s *Store) applyDoc(ctx context.Context, t *target) error {
	var d doc
	err := s.c.FindOne(ctx, bson.M{"_id": t.id}).Decode(&d)
	switch {
	case mongodb.IsNotFound(err):
		d = doc{ID: t.id, Tenant: t.tenant, Gran: t.gran, Zone: t.zone, Start: t.start}
	case err != nil:
		return fmt.Errorf("read rollup %s: %w", t.id, err)
	}
	rows := map[Dims]*Row{}
	if err := decodeRows(d.Rows, func(r *Row) { rows[r.Dims] = r }); err != nil {
		return fmt.Errorf("read rollup %s: %w", t.id, err)
	}
	applied := false
	for _, ss := range t.sessions {
		if int64(ss.Seq) <= d.HWM {
			continue // applied before
		}
		for i := range ss.Rows {
			r := &ss.Rows[i]
			if have := rows[r.Dims]; have != nil {
				have.Merge(r)
			} else {
				c := &Row{Dims: r.Dims}
				c.Merge(r)
				rows[r.Dims] = c
			}
			d.Sessions += r.C[Sessions]
		}
		d.HWM = int64(ss.Seq)
		applied = true
	}
	if !applied {
		return nil
	}
	list := make([]*Row, 0, len(rows))
	for _, r := range rows {
		list = append(list, r)
	}
	sort.Slice(list, func(i, j int) bool { return lessDims(list[i].Dims, list[j].Dims) })
	d.Rows, d.NRows = encodeRows(list), len(list)
	if _, err := s.c.ReplaceOne(ctx, bson.M{"_id": t.id}, &d, options.Replace().SetUpsert(true)); err != nil {
		return fmt.Errorf("write rollup %s: %w", t.id, err)
	}
	s.cache.put(t.id, &d, time.Now())
	return nil
}

func lessDims(a, b Dims) bool {
	if a.Service != b.Service {
		return a.Service < b.Service
	}
	if a.Channel != b.Channel {
		return a.Channel < b.Channel
	}
	if a.Entry != b.Entry {
		return a.Entry < b.Entry
	}
	if a.Agent != b.Agent {
		return a.Agent < b.Agent
	}
	return a.Outcome < b.Outcome
}

// Cursor is the last SESSION stream sequence whose session is in every
// one of its documents.
func (s *Store) Cursor(ctx context.Context) (uint64, error) {
	var st struct {
		Seq int64 `bson:"seq"`
	}
	err := s.state.FindOne(ctx, bson.M{"_id": "cursor"}).Decode(&st)
	if mongodb.IsNotFound(err) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read rollup cursor: %w", err)
	}
	return uint64(st.Seq), nil
}

// SetCursor records that every session up to seq is applied.
func (s *Store) SetCursor(ctx context.Context, seq uint64) error {
	_, err := s.state.UpdateOne(ctx, bson.M{"_id": "cursor"}, bson.M{"$max": bson.M{"seq": int64(seq)}}, options.UpdateOne().SetUpsert(true))
	if err != nil {
		return fmt.Errorf("write rollup cursor: %w", err)
	}
	return nil
}

// read fetches documents by _id, several at once; missing ones are nil.
func (s *Store) read(ctx context.Context, ids []string) (map[string]*doc, error) {
	out := make(map[string]*doc, len(ids))
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for _, id := range ids {
		if d, ok := s.cache.get(id); ok {
			if d != nil {
				mu.Lock()
				out[id] = d
				mu.Unlock()
			}
			continue
		}
		g.Go(func() error {
			at := time.Now()
			var d doc
			err := s.c.FindOne(gctx, bson.M{"_id": id}).Decode(&d)
			if mongodb.IsNotFound(err) {
				s.cache.put(id, nil, at)
				return nil
			}
			if err != nil {
				return fmt.Errorf("read rollup %s: %w", id, err)
			}
			s.cache.put(id, &d, at)
			mu.Lock()
			out[id] = &d
			mu.Unlock()
			return nil
		})
	}
	return out, g.Wait()
}

func host() string {
	h, _ := os.Hostname()
	return h
}

// acquire takes or renews the writer lease until now+d; it reports false
// while another writer holds it. The lease document is the only one of
// rollup_state the filter can scan (FerretDB), and on MongoDB the update
// is atomic: an unexpired lease of another owner matches nothing, so the
// upsert's insert collides with its _id.
func (s *Store) acquire(ctx context.Context, d time.Duration) (bool, error) {
	now := time.Now()
	_, err := s.state.UpdateOne(ctx,
		bson.M{"_id": "writer", "$or": bson.A{bson.M{"owner": s.owner}, bson.M{"until": bson.M{"$lt": now}}}},
		bson.M{"$set": bson.M{"owner": s.owner, "until": now.Add(d)}}, options.UpdateOne().SetUpsert(true))
	if mongo.IsDuplicateKeyError(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("writer lease: %w", err)
	}
	return true, nil
}

// release gives the lease up (on a clean stop), so another writer need
// not wait for it to expire.
func (s *Store) release(ctx context.Context) {
	_, _ = s.state.UpdateOne(ctx, bson.M{"_id": "writer", "owner": s.owner}, bson.M{"$set": bson.M{"until": time.Unix(0, 0)}})
}
