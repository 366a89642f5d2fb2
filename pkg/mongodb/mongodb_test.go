package mongodb_test

import (
	"context"
	"os"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/switchboard-cc/switchboard/pkg/mongodb"
	"github.com/switchboard-cc/switchboard/pkg/mongodb/mongotest"
)

func TestMain(m *testing.M) { os.Exit(mongotest.Main(m)) }

// The services rely on these operations behaving the same on MongoDB and on
// the embedded FerretDB: keyed upserts with $set/$setOnInsert/$inc/$min,
// duplicate-key errors on _id, and not-found on a missing _id.
func TestOperationsServicesRelyOn(t *testing.T) {
	ctx := context.Background()
	c := mongotest.Database(t).Collection("records")
	t1 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	t0 := t1.Add(-time.Hour)
	up := options.UpdateOne().SetUpsert(true)
	if _, err := c.UpdateOne(ctx, bson.M{"_id": "a"}, bson.M{
		"$setOnInsert": bson.M{"created": t1},
		"$set":         bson.M{"state": "active"},
		"$inc":         bson.M{"n": 1},
		"$min":         bson.M{"first": t1},
	}, up); err != nil {
		t.Fatalf("upsert insert: %v", err)
	}
	if _, err := c.UpdateOne(ctx, bson.M{"_id": "a"}, bson.M{
		"$setOnInsert": bson.M{"created": t0},
		"$inc":         bson.M{"n": 2},
		"$min":         bson.M{"first": t0},
	}, up); err != nil {
		t.Fatalf("upsert update: %v", err)
	}
	var got struct {
		Created time.Time `bson:"created"`
		First   time.Time `bson:"first"`
		State   string    `bson:"state"`
		N       int       `bson:"n"`
	}
	if err := c.FindOne(ctx, bson.M{"_id": "a"}).Decode(&got); err != nil {
		t.Fatal(err)
	}
	if !got.Created.Equal(t1) || !got.First.Equal(t0) || got.State != "active" || got.N != 3 {
		t.Errorf("after upserts got %+v, want created=%v first=%v state=active n=3", got, t1, t0)
	}
	if _, err := c.InsertOne(ctx, bson.M{"_id": "a"}); !mongodb.IsDuplicateKey(err) {
		t.Errorf("second insert of _id a: err = %v, want duplicate key", err)
	}
	if err := c.FindOne(ctx, bson.M{"_id": "missing"}).Err(); !mongodb.IsNotFound(err) {
		t.Errorf("find missing: err = %v, want not found", err)
	}
	// A conditional update only matches in the expected state.
	res, err := c.UpdateOne(ctx, bson.M{"_id": "a", "state": "ended"}, bson.M{"$set": bson.M{"state": "x"}})
	if err != nil || res.MatchedCount != 0 {
		t.Errorf("conditional update on wrong state: matched %d, err %v", res.MatchedCount, err)
	}
}
