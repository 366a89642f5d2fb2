package rollup

import (
	"context"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/switchboard-cc/switchboard/pkg/mongodb"
)

// PurgeBefore deletes tenant's summaries whose bucket ended at or before
// cutoff (a bucket the cutoff falls in is kept whole). It scans the
// tenant's documents older than the cutoff (a retention sweep, never a
// hot path) and deletes them by _id.
func (s *Store) PurgeBefore(ctx context.Context, tenant string, cutoff time.Time) (int64, error) {
	cur, err := s.c.Find(ctx, bson.M{"tenant": tenant, "start": bson.M{"$lt": cutoff}},
		options.Find().SetProjection(bson.M{"_id": 1, "gran": 1, "zone": 1, "start": 1}).SetBatchSize(mongodb.ScanBatch))
	if err != nil {
		return 0, fmt.Errorf("scan rollups: %w", err)
	}
	defer func() { _ = cur.Close(ctx) }()
	var ids []string
	for cur.Next(ctx) {
		var d doc
		if err := cur.Decode(&d); err != nil {
			return 0, fmt.Errorf("scan rollups: %w", err)
		}
		loc, err := time.LoadLocation(d.Zone)
		if err != nil {
			continue
		}
		if !Next(d.Gran, loc, d.Start).After(cutoff) {
			ids = append(ids, d.ID)
		}
	}
	if err := cur.Err(); err != nil {
		return 0, fmt.Errorf("scan rollups: %w", err)
	}
	n, err := mongodb.DeleteIDs(ctx, s.c, ids)
	if n > 0 {
		s.ClearCache()
	}
	return n, err
}
