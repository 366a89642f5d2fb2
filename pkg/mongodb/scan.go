package mongodb

import (
	"context"
	"fmt"
	"slices"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Background and admin work (retention, erasure) may filter on fields
// other than _id: FerretDB reads the whole collection for such a filter,
// so these helpers read only the _ids, at most limit of them per call,
// and write by _id in batches. Never use them on a hot path.

// ScanBatch is how many documents one scan round trip or bulk write
// carries.
const ScanBatch = 500

// IDsMatching reads the _id of at most limit documents filter finds.
func IDsMatching(ctx context.Context, c *mongo.Collection, filter any, limit int64) ([]string, error) {
	cur, err := c.Find(ctx, filter, options.Find().SetProjection(bson.M{"_id": 1}).SetLimit(limit).SetBatchSize(ScanBatch))
	if err != nil {
		return nil, fmt.Errorf("scan %s: %w", c.Name(), err)
	}
	defer func() { _ = cur.Close(ctx) }()
	var ids []string
	for cur.Next(ctx) {
		var doc struct {
			ID string `bson:"_id"`
		}
		if cur.Decode(&doc) == nil {
			ids = append(ids, doc.ID)
		}
	}
	if err := cur.Err(); err != nil {
		return nil, fmt.Errorf("scan %s: %w", c.Name(), err)
	}
	return ids, nil
}

// DeleteIDs deletes the documents ids, ScanBatch at a time, and returns
// how many it deleted.
func DeleteIDs(ctx context.Context, c *mongo.Collection, ids []string) (int64, error) {
	return WriteIDs(ctx, c, ids, func(id string) mongo.WriteModel {
		return mongo.NewDeleteOneModel().SetFilter(bson.M{"_id": id})
	})
}

// WriteIDs applies model(id) to each of ids, ScanBatch at a time, and
// returns how many documents were deleted or modified.
func WriteIDs(ctx context.Context, c *mongo.Collection, ids []string, model func(id string) mongo.WriteModel) (int64, error) {
	var n int64
	for batch := range slices.Chunk(ids, ScanBatch) {
		models := make([]mongo.WriteModel, len(batch))
		for i, id := range batch {
			models[i] = model(id)
		}
		res, err := c.BulkWrite(ctx, models, options.BulkWrite().SetOrdered(false))
		if res != nil {
			n += res.DeletedCount + res.ModifiedCount
		}
		if err != nil {
			return n, fmt.Errorf("write %s: %w", c.Name(), err)
		}
	}
	return n, nil
}

// DeleteMatching deletes at most limit documents filter finds, by _id.
func DeleteMatching(ctx context.Context, c *mongo.Collection, filter any, limit int64) (int64, error) {
	ids, err := IDsMatching(ctx, c, filter, limit)
	if err != nil {
		return 0, err
	}
	return DeleteIDs(ctx, c, ids)
}
