package records

import (
	"context"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/switchboard-cc/switchboard/pkg/erasure"
	"github.com/switchboard-cc/switchboard/pkg/mongodb"
)

// scanLimit bounds the records one purge pass deletes; the next sweep
// goes on.
const scanLimit = 100_000

// PurgeBefore deletes tenant's records of sessions that ended before
// cutoff, and of sessions that never ended but started before it. It
// scans (a retention sweep, never a hot path) and deletes by _id.
func (s *Store) PurgeBefore(ctx context.Context, tenant string, cutoff time.Time) (int64, error) {
	var n int64
	for _, filter := range []bson.M{
		{"tenant": tenant, "ended_at": bson.M{"$lt": cutoff}},
		{"tenant": tenant, "ended_at": bson.M{"$exists": false}, "started_at": bson.M{"$lt": cutoff}},
	} {
		d, err := mongodb.DeleteMatching(ctx, s.c, filter, scanLimit)
		n += d
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// MaskCustomer replaces the customer's address (+E.164, either channel)
// with erasure.Masked in tenant's records; it returns how many it masked.
// The masks go through the store's single writer, so they are ordered
// with the consumers' upserts.
func (s *Store) MaskCustomer(ctx context.Context, tenant, customer string) (int64, error) {
	ids, err := mongodb.IDsMatching(ctx, s.c, bson.M{"tenant": tenant, "customer": bson.M{"$in": []string{customer, "whatsapp:" + customer}}}, scanLimit)
	if err != nil {
		return 0, err
	}
	for _, id := range ids {
		if err := s.w.Update(ctx, id, bson.M{"$set": bson.M{"customer": erasure.Masked}}); err != nil {
			return 0, err
		}
	}
	return int64(len(ids)), nil
}
