package rollup

import (
	"context"
	"testing"
	"time"

	"github.com/switchboard-cc/switchboard/pkg/mongodb/mongotest"
)

// One writer holds the lease; another gets it once it is released or
// lapses.
func TestWriterLease(t *testing.T) {
	ctx := context.Background()
	db := mongotest.Database(t)
	a, b := New(db, nil), New(db, nil)
	for _, step := range []struct {
		name string
		s    *Store
		d    time.Duration
		want bool
	}{
		{"a takes it", a, time.Minute, true},
		{"b waits", b, time.Minute, false},
		{"a renews it", a, 50 * time.Millisecond, true},
		{"b still waits", b, time.Minute, false},
	} {
		got, err := step.s.acquire(ctx, step.d)
		if err != nil || got != step.want {
			t.Fatalf("%s: got %v, %v; want %v", step.name, got, err, step.want)
		}
	}
	// a's lease lapses.
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := b.acquire(ctx, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if got {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("b never got the lapsed lease")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got, err := a.acquire(ctx, time.Minute); err != nil || got {
		t.Fatalf("a after b took it: got %v, %v; want false", got, err)
	}
	b.release(ctx)
	if got, err := a.acquire(ctx, time.Minute); err != nil || !got {
		t.Fatalf("a after b released it: got %v, %v; want true", got, err)
	}
}
