package store_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	distributionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/distribution/v1"

	"github.com/switchboard-cc/switchboard/pkg/bus"
	"github.com/switchboard-cc/switchboard/pkg/mongodb/mongotest"
	"github.com/switchboard-cc/switchboard/pkg/natsembed/natstest"
	"github.com/switchboard-cc/switchboard/services/distribution/internal/engine"
	"github.com/switchboard-cc/switchboard/services/distribution/internal/store"
)

// Two replicas over one bucket of open tasks: each writes at the revision
// it last saw, so the one with an older view fails rather than overwrite
// an offer; a load of some tenants reads theirs only; a closed task stays
// with its closing events until it is removed.
func TestOpenTasksAcrossReplicas(t *testing.T) {
	ctx := context.Background()
	b, err := bus.Connect(natstest.Start(t).ClientURL(), t.Name(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	db := mongotest.Database(t)
	replica := func() *store.Store {
		s, err := store.New(ctx, db)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.OpenTasks(ctx, b.JS, 1); err != nil {
			t.Fatal(err)
		}
		return s
	}
	a, c := replica(), replica()
	t1, t2 := task("acme", "t1", engine.TaskQueued), task("globex", "t2", engine.TaskQueued)
	for _, tk := range []*engine.Task{t1, t2} {
		if err := a.Save(ctx, tk); err != nil {
			t.Fatal(err)
		}
	}
	// c takes acme over: it loads acme's tasks only.
	got, err := c.LoadOpenOf(ctx, func(tenant string) bool { return tenant == "acme" })
	if err != nil || len(got) != 1 || got[0].ID != "t1" {
		t.Fatalf("LoadOpenOf(acme) = %v, %v; want t1 only", got, err)
	}
	// c offers t1; a, which has not seen it, cannot offer it again.
	offered := *got[0]
	offered.State, offered.AgentID, offered.OfferID, offered.OfferExpires = engine.TaskOffered, "bob", "of_1", time.Now().Add(time.Minute).UTC().Truncate(time.Millisecond)
	if err := c.SaveOpen(ctx, &offered); err != nil {
		t.Fatalf("SaveOpen by the holder: %v", err)
	}
	stale := *t1
	stale.State, stale.AgentID, stale.OfferID = engine.TaskOffered, "alice", "of_2"
	if err := a.SaveOpen(ctx, &stale); !errors.Is(err, engine.ErrConflict) {
		t.Fatalf("SaveOpen with an older view: %v, want ErrConflict", err)
	}
	// The offer is what a later load finds.
	got, err = a.LoadOpenOf(ctx, func(string) bool { return true })
	if err != nil || len(got) != 2 {
		t.Fatalf("LoadOpenOf(all) = %v, %v", got, err)
	}
	for _, tk := range got {
		if tk.ID == "t1" && (tk.OfferID != "of_1" || tk.AgentID != "bob" || !tk.OfferExpires.Equal(offered.OfferExpires)) {
			t.Errorf("t1 loaded as offer %q to %q until %v, want of_1 to bob until %v", tk.OfferID, tk.AgentID, tk.OfferExpires, offered.OfferExpires)
		}
	}
	// Closed: in the bucket with its events until removed (its record
	// stays in MongoDB).
	done := *got[0]
	done.State = engine.TaskCompleted
	done.Outbox = []engine.Event{{Subject: "distribution.task.completed." + done.Tenant, MsgID: done.ID + ":completed",
		Message: &distributionv1.TaskCompleted{TenantId: done.Tenant, TaskId: done.ID, AgentId: "bob"}}}
	if err := a.Save(ctx, &done); err != nil {
		t.Fatal(err)
	}
	got, err = c.LoadOpenOf(ctx, func(tenant string) bool { return tenant == done.Tenant })
	if err != nil || len(got) != 1 || got[0].State != engine.TaskCompleted || len(got[0].Outbox) != 1 {
		t.Fatalf("after %s closed, LoadOpenOf = %v, %v; want it completed with its event", done.ID, got, err)
	}
	if ev := got[0].Outbox[0]; ev.MsgID != done.ID+":completed" || !proto.Equal(ev.Message, done.Outbox[0].Message) {
		t.Errorf("stored event %s %v, want %s %v", ev.MsgID, ev.Message, done.ID+":completed", done.Outbox[0].Message)
	}
	// c (which loaded it) removes it; a's removal after that, at the
	// revision a wrote, fails.
	if err := c.RemoveOpen(ctx, &done); err != nil {
		t.Fatal(err)
	}
	if err := a.RemoveOpen(ctx, &done); !errors.Is(err, engine.ErrConflict) {
		t.Fatalf("RemoveOpen with an older view: %v, want ErrConflict", err)
	}
	got, err = c.LoadOpenOf(ctx, func(string) bool { return true })
	if err != nil || len(got) != 1 || got[0].ID == done.ID {
		t.Errorf("after %s was removed, LoadOpenOf = %v, %v", done.ID, got, err)
	}
}

// Tasks open in MongoDB before the bucket existed are copied to it once.
func TestMigrateOpen(t *testing.T) {
	ctx := context.Background()
	b, err := bus.Connect(natstest.Start(t).ClientURL(), t.Name(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	db := mongotest.Database(t)
	old, err := store.New(ctx, db) // an earlier version: MongoDB only
	if err != nil {
		t.Fatal(err)
	}
	for _, tk := range []*engine.Task{task("acme", "t1", engine.TaskQueued), task("acme", "t2", engine.TaskCompleted)} {
		if err := old.Save(ctx, tk); err != nil {
			t.Fatal(err)
		}
	}
	s, err := store.New(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.OpenTasks(ctx, b.JS, 1); err != nil {
		t.Fatal(err)
	}
	for i, want := range []int{1, 0} {
		if n, err := s.MigrateOpen(ctx); err != nil || n != want {
			t.Errorf("MigrateOpen #%d = %d, %v; want %d", i+1, n, err, want)
		}
	}
	got, err := s.LoadOpenOf(ctx, func(string) bool { return true })
	if err != nil || len(got) != 1 || got[0].ID != "t1" {
		t.Errorf("LoadOpenOf = %v, %v; want t1", got, err)
	}
}

// With the bucket of open tasks, a task's MongoDB record is written when
// it closes, not at each step before: Known and Get find a closed task,
// and an open one is the bucket's alone.
func TestRecordWrittenOnClose(t *testing.T) {
	ctx := context.Background()
	b, err := bus.Connect(natstest.Start(t).ClientURL(), t.Name(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	s, err := store.New(ctx, mongotest.Database(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.OpenTasks(ctx, b.JS, 1); err != nil {
		t.Fatal(err)
	}
	tk := task("acme", "t1", engine.TaskQueued)
	for _, st := range []engine.TaskState{engine.TaskQueued, engine.TaskAccepted} {
		tk.State = st
		if err := s.Save(ctx, tk); err != nil {
			t.Fatal(err)
		}
		if known, err := s.Known(ctx, "acme", "t1"); known || err != nil {
			t.Fatalf("Known while %s = %v, %v; want no record yet", st, known, err)
		}
	}
	if open, err := s.LoadOpenOf(ctx, func(string) bool { return true }); err != nil || len(open) != 1 || open[0].State != engine.TaskAccepted {
		t.Fatalf("LoadOpenOf = %v, %v; want t1 accepted", open, err)
	} else if open[0].Trace != tk.Trace {
		t.Fatalf("loaded trace %q, want %q (a replica taking over continues the task's trace)", open[0].Trace, tk.Trace)
	}
	tk.State = engine.TaskCompleted
	if err := s.Save(ctx, tk); err != nil {
		t.Fatal(err)
	}
	if known, err := s.Known(ctx, "acme", "t1"); !known || err != nil {
		t.Fatalf("Known once completed = %v, %v; want true", known, err)
	}
	if got, err := s.Get(ctx, "acme", "t1"); err != nil || got == nil || got.State != engine.TaskCompleted {
		t.Fatalf("Get once completed = %v, %v; want the completed record", got, err)
	}
	if err := s.RemoveOpen(ctx, tk); err != nil {
		t.Fatal(err)
	}
	if open, err := s.LoadOpenOf(ctx, func(string) bool { return true }); err != nil || len(open) != 0 {
		t.Fatalf("LoadOpenOf once completed and removed = %v, %v; want none", open, err)
	}
}
