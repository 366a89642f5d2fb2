package ferret

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/writeconcern"
)

func startGated(t *testing.T) (*Server, *mongo.Client) {
	t.Helper()
	srv, err := Start("127.0.0.1:0", t.TempDir(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	mc, err := mongo.Connect(options.Client().ApplyURI(srv.URI()).SetMaxPoolSize(64))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mc.Disconnect(context.Background()) })
	return srv, mc
}

// Concurrent updates of one document all apply through the gate. FerretDB
// 1.24 applies an update by reading the document and writing it back
// outside any transaction, so without one write per database at a time
// two $inc of one document at once keep one of them; and the writers
// that met SQLite's lock slept in its busy handler.
func TestGateAppliesEveryConcurrentWrite(t *testing.T) {
	srv, mc := startGated(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := mc.Database("gate").Collection("counters")
	if _, err := c.InsertOne(ctx, bson.M{"_id": "n", "n": int64(0)}); err != nil {
		t.Fatal(err)
	}
	const writers, each = 16, 25
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				if _, err := c.UpdateOne(ctx, bson.M{"_id": "n"}, bson.M{"$inc": bson.M{"n": int64(1)}, "$addToSet": bson.M{"by": fmt.Sprint(w, "/", i)}}); err != nil {
					errs <- err
					return
				}
				if _, err := c.InsertOne(ctx, bson.M{"_id": fmt.Sprint("doc-", w, "-", i)}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var got struct {
		N  int64    `bson:"n"`
		By []string `bson:"by"`
	}
	if err := c.FindOne(ctx, bson.M{"_id": "n"}).Decode(&got); err != nil {
		t.Fatal(err)
	}
	if got.N != writers*each || len(got.By) != writers*each {
		t.Errorf("after %d concurrent updates the document counts %d and lists %d", writers*each, got.N, len(got.By))
	}
	docs, err := c.CountDocuments(ctx, bson.M{})
	if err != nil {
		t.Fatal(err)
	}
	if docs != writers*each+1 {
		t.Errorf("%d documents, want %d", docs, writers*each+1)
	}
	if g := srv.gate.gated.Load(); g < 2*writers*each {
		t.Errorf("the gate let %d writes through, want at least %d", g, 2*writers*each)
	}
}

// What the gate relays besides a command and its one answer: a cursor's
// batches (getMore), an unacknowledged write (no answer at all), and a
// command the server refuses.
func TestGateRelaysCursorsUnacknowledgedWritesAndErrors(t *testing.T) {
	_, mc := startGated(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := mc.Database("gate").Collection("items")
	docs := make([]any, 120)
	for i := range docs {
		docs[i] = bson.M{"_id": fmt.Sprintf("i%03d", i)}
	}
	if _, err := c.InsertMany(ctx, docs); err != nil {
		t.Fatal(err)
	}
	cur, err := c.Find(ctx, bson.M{}, options.Find().SetBatchSize(7))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for cur.Next(ctx) {
		n++
	}
	if err := cur.Err(); err != nil || n != len(docs) {
		t.Fatalf("a cursor in batches of 7 gave %d documents (%v), want %d", n, err, len(docs))
	}
	_ = cur.Close(ctx)

	w0 := mc.Database("gate").Collection("items", options.Collection().SetWriteConcern(writeconcern.Unacknowledged()))
	if _, err := w0.InsertOne(ctx, bson.M{"_id": "unacknowledged"}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := c.FindOne(ctx, bson.M{"_id": "unacknowledged"}).Err()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the unacknowledged insert never landed: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The connection is still in step: a duplicate is refused as such.
	if _, err := c.InsertOne(ctx, bson.M{"_id": "i001"}); !mongo.IsDuplicateKeyError(err) {
		t.Fatalf("a duplicate _id through the gate: %v, want a duplicate key error", err)
	}
	if err := c.FindOne(ctx, bson.M{"_id": "i002"}).Err(); err != nil {
		t.Fatal(err)
	}
}
