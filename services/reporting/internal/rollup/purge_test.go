package rollup_test

import (
	"context"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/switchboard-cc/switchboard/pkg/mongodb/mongotest"
	"github.com/switchboard-cc/switchboard/services/reporting/internal/rollup"
)

// A summary is deleted when its whole bucket is before the cutoff; the
// bucket the cutoff falls in, later ones and other tenants' stay.
func TestPurgeDeletesOnlyBucketsBeforeTheCutoff(t *testing.T) {
	ctx := context.Background()
	db := mongotest.Database(t)
	rs := rollup.New(db, nil)
	zurich, err := time.LoadLocation("Europe/Zurich")
	if err != nil {
		t.Fatal(err)
	}
	cutoff := time.Date(2026, 3, 10, 12, 7, 0, 0, time.UTC)
	type b struct {
		tenant, gran string
		loc          *time.Location
		start        time.Time
		gone         bool
	}
	buckets := []b{
		{"acme", rollup.G15m, time.UTC, time.Date(2026, 3, 10, 11, 45, 0, 0, time.UTC), true},
		{"acme", rollup.G15m, time.UTC, time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC), false},
		{"acme", rollup.GHour, time.UTC, time.Date(2026, 3, 10, 11, 0, 0, 0, time.UTC), true},
		{"acme", rollup.GHour, time.UTC, time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC), false},
		{"acme", rollup.GDay, zurich, time.Date(2026, 3, 9, 0, 0, 0, 0, zurich), true},
		{"acme", rollup.GDay, zurich, time.Date(2026, 3, 10, 0, 0, 0, 0, zurich), false},
		{"acme", rollup.GMonth, time.UTC, time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC), true},
		{"acme", rollup.GMonth, time.UTC, time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), false},
		{"other", rollup.GHour, time.UTC, time.Date(2026, 3, 10, 11, 0, 0, 0, time.UTC), false},
	}
	for _, x := range buckets {
		_, err := db.Collection("rollups").InsertOne(ctx, bson.M{"_id": rollup.DocID(x.tenant, x.gran, x.loc, x.start),
			"tenant": x.tenant, "gran": x.gran, "zone": x.loc.String(), "start": x.start, "hwm": int64(1), "sessions": int64(1)})
		if err != nil {
			t.Fatal(err)
		}
	}
	if n, err := rs.PurgeBefore(ctx, "acme", cutoff); err != nil || n != 4 {
		t.Errorf("PurgeBefore = %d, %v; want acme's 4 buckets that ended before the cutoff", n, err)
	}
	for _, x := range buckets {
		id := rollup.DocID(x.tenant, x.gran, x.loc, x.start)
		n, err := db.Collection("rollups").CountDocuments(ctx, bson.M{"_id": id})
		if err != nil {
			t.Fatal(err)
		}
		if gone := n == 0; gone != x.gone {
			t.Errorf("%s gone = %v, want %v", id, gone, x.gone)
		}
	}
}
