package rollup_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-cc/switchboard/pkg/mongodb/mongotest"
	"github.com/switchboard-cc/switchboard/services/reporting/internal/rollup"
)

// zones answers tenants' zones as the config service would.
type zones struct {
	mu   sync.Mutex
	zone map[string]string
	err  error
}

func (z *zones) set(tenant, zone string) {
	z.mu.Lock()
	defer z.mu.Unlock()
	z.zone[tenant] = zone
}

func (z *zones) fail(err error) {
	z.mu.Lock()
	defer z.mu.Unlock()
	z.err = err
}

func (z *zones) TimeZone(_ context.Context, tenant string) (string, error) {
	z.mu.Lock()
	defer z.mu.Unlock()
	return z.zone[tenant], z.err
}

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) set(t time.Time) { c.mu.Lock(); c.now = t; c.mu.Unlock() }
func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

// A tenant's own zone, not one of ROLLUP_TIME_ZONES: its days and months
// have their own documents from the first local midnight after the writer
// learnt it, across a DST change; a change of zone starts the new zone at
// its next midnight and ends the old one there; summaries are right in
// either zone before and after, from documents where they are complete
// and from UTC hours elsewhere.
func TestTenantZoneDaysAcrossDSTAndAChange(t *testing.T) {
	ctx := context.Background()
	zurich, _ := time.LoadLocation("Europe/Zurich")
	ny, _ := time.LoadLocation("America/New_York")
	db := mongotest.Database(t)
	tz := &zones{zone: map[string]string{"acme": "Europe/Zurich"}}
	clk := &clock{now: time.Date(2026, 3, 27, 15, 0, 0, 0, zurich)}
	rs := rollup.New(db, nil) // no ROLLUP_TIME_ZONES
	rs.SetTenantZones(tz, clk.Now)

	// A session the day the writer learns the zone (before its period),
	// then sessions either side of local midnights around the change to
	// summer time (29 March 2026, 02:00 → 03:00: a 23-hour day).
	times := []time.Time{
		time.Date(2026, 3, 27, 16, 0, 0, 0, zurich),  // 27th, before the period
		time.Date(2026, 3, 28, 23, 30, 0, 0, zurich), // 28th (22:30 UTC)
		time.Date(2026, 3, 29, 0, 30, 0, 0, zurich),  // 29th (23:30 UTC the 28th)
		time.Date(2026, 3, 29, 3, 30, 0, 0, zurich),  // 29th, summer time (01:30 UTC)
		time.Date(2026, 3, 29, 23, 30, 0, 0, zurich), // 29th (21:30 UTC)
		time.Date(2026, 3, 30, 0, 15, 0, 0, zurich),  // 30th (22:15 UTC the 29th)
	}
	var batch []rollup.Session
	for i, at := range times {
		batch = append(batch, session(uint64(i+1), at, "ann", 10*time.Second))
	}
	if err := rs.Apply(ctx, batch); err != nil {
		t.Fatal(err)
	}
	reader := rollup.New(db, nil) // another replica: nothing cached
	days := func(loc *time.Location, from, to time.Time) (map[string]int64, int) {
		t.Helper()
		return counts(t, reader, rollup.Query{Tenant: "acme", Loc: loc, From: from, To: to, GroupBy: []string{rollup.DimBucket}, Bucket: rollup.GDay})
	}
	got, read := days(zurich, time.Date(2026, 3, 28, 0, 0, 0, 0, zurich), time.Date(2026, 3, 31, 0, 0, 0, 0, zurich))
	if want := map[string]int64{"2026-03-28T00:00": 1, "2026-03-29T00:00": 3, "2026-03-30T00:00": 1}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Zurich days: got %v, want %v", got, want)
	}
	if read != 3 {
		t.Errorf("three Zurich days read %d documents, want 3 (their own)", read)
	}
	// The 27th began before the period: made of UTC hours, and right.
	got, read = days(zurich, time.Date(2026, 3, 27, 0, 0, 0, 0, zurich), time.Date(2026, 3, 28, 0, 0, 0, 0, zurich))
	if got["2026-03-27T00:00"] != 1 || read != 24 {
		t.Errorf("the 27th in Zurich: %v from %d documents, want 1 session from 24 hours", got, read)
	}
	// UTC days as ever.
	got, _ = days(time.UTC, time.Date(2026, 3, 28, 0, 0, 0, 0, time.UTC), time.Date(2026, 3, 31, 0, 0, 0, 0, time.UTC))
	if want := map[string]int64{"2026-03-28T00:00": 2, "2026-03-29T00:00": 3}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("UTC days: got %v, want %v", got, want)
	}

	// Config cannot answer for a while: the last zone goes on.
	tz.fail(errors.New("config unavailable"))
	clk.set(time.Date(2026, 3, 31, 12, 0, 0, 0, zurich))
	if err := rs.Apply(ctx, []rollup.Session{session(20, time.Date(2026, 3, 31, 12, 0, 0, 0, zurich), "ann", time.Second)}); err != nil {
		t.Fatal(err)
	}
	tz.fail(nil)

	// The tenant moves to New York on 1 April at noon in Zurich (06:00 in
	// New York): New York's days start at its next midnight, 2 April.
	tz.set("acme", "America/New_York")
	clk.set(time.Date(2026, 4, 1, 12, 0, 0, 0, zurich))
	later := []time.Time{
		time.Date(2026, 4, 1, 20, 0, 0, 0, zurich), // 1st in both (14:00 NY)
		time.Date(2026, 4, 1, 23, 30, 0, 0, ny),    // 1st NY, 2nd Zurich (05:30): still the Zurich period
		time.Date(2026, 4, 2, 0, 30, 0, 0, ny),     // 2nd in both (06:30 Zurich): the New York period
		time.Date(2026, 4, 2, 22, 0, 0, 0, ny),     // 2nd NY, 3rd Zurich (04:00)
	}
	batch = nil
	for i, at := range later {
		batch = append(batch, session(uint64(30+i), at, "ann", 10*time.Second))
	}
	if err := rs.Apply(ctx, batch); err != nil {
		t.Fatal(err)
	}
	reader.ClearCache()
	got, read = days(ny, time.Date(2026, 4, 1, 0, 0, 0, 0, ny), time.Date(2026, 4, 3, 0, 0, 0, 0, ny))
	if want := map[string]int64{"2026-04-01T00:00": 2, "2026-04-02T00:00": 2}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("New York days: got %v, want %v", got, want)
	}
	if read != 24+1 {
		t.Errorf("1-2 April in New York read %d documents, want 25 (24 hours of the 1st, its own day the 2nd)", read)
	}
	// Zurich days stay right: the 31st and 1st from its documents, the 2nd
	// (the Zurich period ended at 06:00) and 3rd from hours.
	got, read = days(zurich, time.Date(2026, 3, 31, 0, 0, 0, 0, zurich), time.Date(2026, 4, 4, 0, 0, 0, 0, zurich))
	if want := map[string]int64{"2026-03-31T00:00": 1, "2026-04-01T00:00": 1, "2026-04-02T00:00": 2, "2026-04-03T00:00": 1}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Zurich days after the move: got %v, want %v", got, want)
	}
	if read != 2+24+24 {
		t.Errorf("31 March-3 April in Zurich read %d documents, want 50 (two days of its own, two of hours)", read)
	}
	// Months in either zone, whatever they are made of.
	month := func(loc *time.Location, y int, m time.Month) int64 {
		t.Helper()
		got, _ := counts(t, reader, rollup.Query{Tenant: "acme", Loc: loc, From: time.Date(y, m, 1, 0, 0, 0, 0, loc), To: time.Date(y, m+1, 1, 0, 0, 0, 0, loc)})
		var n int64
		for _, c := range got {
			n += c
		}
		return n
	}
	if z, n := month(zurich, 2026, time.March), month(ny, 2026, time.April); z != 7 || n != 4 {
		t.Errorf("March in Zurich %d sessions, April in New York %d; want 7 and 4", z, n)
	}

	// A replay of everything changes nothing.
	if err := rs.Apply(ctx, append([]rollup.Session{session(20, time.Date(2026, 3, 31, 12, 0, 0, 0, zurich), "ann", time.Second)}, batch...)); err != nil {
		t.Fatal(err)
	}
	reader.ClearCache()
	got, _ = days(ny, time.Date(2026, 4, 1, 0, 0, 0, 0, ny), time.Date(2026, 4, 3, 0, 0, 0, 0, ny))
	if want := map[string]int64{"2026-04-01T00:00": 2, "2026-04-02T00:00": 2}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("New York days after a replay: got %v, want %v", got, want)
	}
}
