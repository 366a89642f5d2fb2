package kvcas_test

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-cc/switchboard/pkg/kvcas"
	"github.com/switchboard-cc/switchboard/pkg/natsembed/natstest"
)

// GetLatest reads what Get reads, from the leader: the value and revision
// of a key, nothing for a missing or deleted key, and an error naming the
// bucket's stream when it does not exist.
func TestGetLatest(t *testing.T) {
	js := natstest.JetStream(t)
	ctx := context.Background()
	kv, err := kvcas.Bind(ctx, js, jetstream.KeyValueConfig{Bucket: "LATEST"})
	if err != nil {
		t.Fatal(err)
	}
	if v, rev, err := kvcas.GetLatest(ctx, js, "LATEST", "acme.alice"); err != nil || v != nil || rev != 0 {
		t.Fatalf("missing key: %q %d %v, want nothing", v, rev, err)
	}
	if _, err := kvcas.Put(ctx, kv, "acme.alice", []byte(`["s1"]`), 0); err != nil {
		t.Fatal(err)
	}
	rev, err := kvcas.Put(ctx, kv, "acme.alice", []byte(`["s1","s2"]`), 1)
	if err != nil {
		t.Fatal(err)
	}
	v, got, err := kvcas.GetLatest(ctx, js, "LATEST", "acme.alice")
	if err != nil || string(v) != `["s1","s2"]` || got != rev {
		t.Fatalf("got %q at %d (%v), want the second value at %d", v, got, err, rev)
	}
	m, err := kvcas.LastBySubject(ctx, js, "KV_LATEST", "$KV.LATEST.acme.alice")
	if err != nil || m == nil || m.Seq != rev || time.Since(m.Time) > time.Minute || time.Since(m.Time) < 0 {
		t.Fatalf("LastBySubject = %+v, %v; want sequence %d stored just now", m, err, rev)
	}
	if err := kv.Delete(ctx, "acme.alice"); err != nil {
		t.Fatal(err)
	}
	if v, rev, err := kvcas.GetLatest(ctx, js, "LATEST", "acme.alice"); err != nil || v != nil || rev != 0 {
		t.Fatalf("deleted key: %q %d %v, want nothing", v, rev, err)
	}
	if _, _, err := kvcas.GetLatest(ctx, js, "NOPE", "k"); err == nil {
		t.Fatal("a missing bucket read without error")
	}
}

// Many writers changing one key at once each get their change in: none is
// refused for losing the race too often, and none is lost.
func TestChangeUnderContention(t *testing.T) {
	js := natstest.JetStream(t)
	ctx := context.Background()
	kv, err := kvcas.Bind(ctx, js, jetstream.KeyValueConfig{Bucket: "CONTENDED"})
	if err != nil {
		t.Fatal(err)
	}
	const writers = 64
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() {
			_, err := kvcas.Change(ctx, kv, "acme.alice", func(cur []byte) ([]byte, error) {
				var ids []int
				if cur != nil {
					if err := json.Unmarshal(cur, &ids); err != nil {
						return nil, err
					}
				}
				return json.Marshal(append(ids, i))
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	v, _, err := kvcas.Get(ctx, kv, "acme.alice")
	if err != nil {
		t.Fatal(err)
	}
	var ids []int
	if err := json.Unmarshal(v, &ids); err != nil {
		t.Fatal(err)
	}
	slices.Sort(ids)
	if len(ids) != writers || ids[0] != 0 || ids[writers-1] != writers-1 || len(slices.Compact(ids)) != writers {
		t.Fatalf("the key holds %d changes %v, want each of %d once", len(ids), ids, writers)
	}
}
