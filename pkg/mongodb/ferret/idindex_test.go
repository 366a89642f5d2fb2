package ferret

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Every collection gets an index SQLite uses for FerretDB's _id lookups:
// the query plan of the exact statement FerretDB runs searches the index
// instead of scanning the table. (Asserting a plan, not a duration: these
// machines are shared.)
func TestIDLookupsUseAnIndex(t *testing.T) {
	dir := t.TempDir()
	srv, err := Start("127.0.0.1:0", dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	mc, err := mongo.Connect(options.Client().ApplyURI(srv.URI()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = mc.Disconnect(context.Background()) }()
	c := mc.Database("plans").Collection("messages")
	for i := range 50 {
		if _, err := c.InsertOne(ctx, bson.M{"_id": fmt.Sprintf("t/s/%03d", i), "n": i}); err != nil {
			t.Fatal(err)
		}
	}
	open := func() *sql.DB {
		db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "plans.sqlite"))
		if err != nil {
			t.Fatal(err)
		}
		return db
	}
	db := open()
	defer db.Close()
	var table string
	if err := db.QueryRowContext(ctx, `SELECT table_name FROM _ferretdb_collections WHERE name = 'messages'`).Scan(&table); err != nil {
		t.Fatal(err)
	}
	plan := func() string {
		db := open() // a connection of its own sees the current schema
		defer db.Close()
		rows, err := db.QueryContext(ctx, fmt.Sprintf(`EXPLAIN QUERY PLAN SELECT _ferretdb_sjson FROM %q WHERE _ferretdb_sjson->'$._id' = ?`, table), `"t/s/007"`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var b strings.Builder
		for rows.Next() {
			var id, parent, notused int
			var detail string
			_ = rows.Scan(&id, &parent, &notused, &detail)
			b.WriteString(detail + "; ")
		}
		return b.String()
	}
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(plan(), "USING INDEX") {
		if time.Now().After(deadline) {
			t.Fatalf("FerretDB's _id lookup still scans: %s", plan())
		}
		time.Sleep(50 * time.Millisecond)
	}
	// And the lookups answer as before.
	var got bson.M
	if err := c.FindOne(ctx, bson.M{"_id": "t/s/007"}).Decode(&got); err != nil || got["n"] != int32(7) {
		t.Errorf("find by _id = %v, %v", got, err)
	}
	if _, err := c.UpdateOne(ctx, bson.M{"_id": "t/s/007"}, bson.M{"$set": bson.M{"n": 70}}); err != nil {
		t.Fatal(err)
	}
	if err := c.FindOne(ctx, bson.M{"_id": "t/s/007"}).Decode(&got); err != nil || got["n"] != int32(70) {
		t.Errorf("after update: %v, %v", got, err)
	}
	if _, err := c.InsertOne(ctx, bson.M{"_id": "t/s/007"}); !mongo.IsDuplicateKeyError(err) {
		t.Errorf("duplicate _id insert = %v, want E11000", err)
	}
}
