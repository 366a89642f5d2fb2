package mongodb_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/switchboard-cc/switchboard/pkg/mongodb"
	"github.com/switchboard-cc/switchboard/pkg/mongodb/mongotest"
)

// Concurrent writers share batches, and each learns its own write's fate,
// in a batch of several chunks too (2n > GroupChunk).
func TestGroupWriter(t *testing.T) {
	ctx := context.Background()
	c := mongotest.Database(t).Collection("group")
	w := mongodb.NewGroupWriter(c, "test doc")
	defer w.Close()
	const n = 200
	errs := make([]error, 2*n)
	var wg sync.WaitGroup
	for i := range 2 * n {
		wg.Go(func() { errs[i] = w.Insert(ctx, bson.M{"_id": fmt.Sprintf("d%03d", i%n), "i": i}) })
	}
	wg.Wait()
	dup := 0
	for _, err := range errs {
		switch {
		case errors.Is(err, mongodb.ErrDuplicate):
			dup++
		case err != nil:
			t.Fatalf("insert: %v", err)
		}
	}
	if dup != n {
		t.Errorf("%d inserts reported duplicate, want %d (each _id written twice)", dup, n)
	}
	if err := w.Upsert(ctx, "u1", bson.M{"$inc": bson.M{"n": 1}}); err != nil {
		t.Fatal(err)
	}
	if err := w.Update(ctx, "u1", bson.M{"$inc": bson.M{"n": 2}}); err != nil {
		t.Fatal(err)
	}
	var got struct{ N int }
	if err := c.FindOne(ctx, bson.M{"_id": "u1"}).Decode(&got); err != nil || got.N != 3 {
		t.Errorf("u1 = %+v, %v; want n 3", got, err)
	}
	if count, err := c.CountDocuments(ctx, bson.M{}); err != nil || count != n+1 {
		t.Errorf("%d documents, %v; want %d", count, err, n+1)
	}
	w.Close()
	if err := w.Insert(ctx, bson.M{"_id": "late"}); err == nil {
		t.Error("a write after Close succeeded")
	}
}

// Upserts of one document in one batch merge into one statement; every
// write learns its fate and none is lost.
func TestGroupWriterMergesUpserts(t *testing.T) {
	ctx := context.Background()
	c := mongotest.Database(t).Collection("merged")
	merges := 0
	var mu sync.Mutex
	w := mongodb.NewGroupWriter(c, "test doc", mongodb.WithMergedUpserts(func(a, b bson.M) bson.M {
		mu.Lock()
		merges++
		mu.Unlock()
		ai, _ := a["$inc"].(bson.M)
		bi, _ := b["$inc"].(bson.M)
		return bson.M{"$inc": bson.M{"n": ai["n"].(int) + bi["n"].(int)}}
	}))
	defer w.Close()
	const n = 400
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { errs[i] = w.Upsert(ctx, fmt.Sprintf("d%d", i%4), bson.M{"$inc": bson.M{"n": 1}}) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for i := range 4 {
		var got struct{ N int }
		if err := c.FindOne(ctx, bson.M{"_id": fmt.Sprintf("d%d", i)}).Decode(&got); err != nil || got.N != n/4 {
			t.Errorf("d%d = %+v, %v; want n %d", i, got, err, n/4)
		}
	}
	t.Logf("%d merges", merges)
}
