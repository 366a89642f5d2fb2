package store_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/switchboard-cc/switchboard/pkg/bus"
	"github.com/switchboard-cc/switchboard/pkg/erasure"
	"github.com/switchboard-cc/switchboard/pkg/mongodb/mongotest"
	"github.com/switchboard-cc/switchboard/pkg/natsembed/natstest"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
	"github.com/switchboard-cc/switchboard/services/sessions/internal/store"
)

// Two replicas share the database and the bucket: what one changes, the
// other's watch shows without a read, and an ended session never comes
// back, whatever arrives after its end.
func TestReplicasWatchActiveSessionStates(t *testing.T) {
	srv := natstest.Start(t)
	db := mongotest.Database(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	replica := func(name string) *store.Store {
		b, err := bus.Connect(srv.ClientURL(), name, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(b.Close)
		if err := b.EnsureStreams(ctx, subjects.StreamOptions{}, subjects.StreamTranscript); err != nil {
			t.Fatal(err)
		}
		st, err := store.New(ctx, db, b.JS, 1)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(st.Close)
		if err := st.WatchStates(ctx, slog.New(slog.DiscardHandler)); err != nil {
			t.Fatal(err)
		}
		return st
	}
	a, b := replica("a"), replica("b")
	watched := func(st *store.Store, what string, ok func(*store.Session) bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !ok(st.WatchedSession("acme", "ss1")) {
			if time.Now().After(deadline) {
				t.Fatalf("the other replica never saw %s; it holds %+v", what, st.WatchedSession("acme", "ss1"))
			}
			time.Sleep(5 * time.Millisecond)
		}
	}

	started := time.Date(2026, 12, 1, 9, 0, 0, 123_456_789, time.UTC)
	sess := &store.Session{
		Tenant: "acme", ID: "ss1", ServiceID: "support", EntryID: "e1", ConversationKey: "sms:+41790000001",
		Conversation:    store.Conversation{Channel: "sms", Path: "messaging", Customer: "+41790000001", Business: "+12025550100"},
		FirstMessageSID: "SM1", State: store.StateActive, StartedAt: started, CustomerName: "Ann",
	}
	if err := a.CreateSession(ctx, sess); err != nil {
		t.Fatal(err)
	}
	watched(b, "the new session", func(s *store.Session) bool { return s != nil })
	got := b.WatchedSession("acme", "ss1")
	fromDB, err := b.Session(ctx, "acme", "ss1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Conversation != fromDB.Conversation || got.FirstMessageSID != "SM1" || got.CustomerName != "Ann" ||
		!got.StartedAt.Equal(fromDB.StartedAt) || got.State != store.StateActive || got.ServiceID != "support" {
		t.Errorf("watched session %+v differs from the stored one %+v", got, fromDB)
	}

	if err := a.Assign(ctx, "acme", "ss1", "alice", "tk1", started.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	watched(b, "the assignment", func(s *store.Session) bool { return s != nil && s.AgentID == "alice" })
	if rec, err := b.Session(ctx, "acme", "ss1"); err != nil || rec.AgentID != "alice" {
		t.Errorf("the record's agent = %+v, %v; want alice", rec, err)
	}
	if err := a.SetParked(ctx, "acme", "ss1", "tk1", true); err != nil {
		t.Fatal(err)
	}
	watched(b, "the park", func(s *store.Session) bool { return s != nil && s.Parked })
	// Another task's park is not this one's.
	if err := a.SetParked(ctx, "acme", "ss1", "tk-other", false); err != nil {
		t.Fatal(err)
	}
	if err := a.Unassign(ctx, "acme", "ss1", "alice"); err != nil {
		t.Fatal(err)
	}
	watched(b, "the transfer away from alice", func(s *store.Session) bool { return s != nil && s.AgentID == "" && s.Parked })

	// Erasing the customer while the chat is open masks them in the
	// watched state as in the collection: a reply is not sent to them.
	stored, err := a.Session(ctx, "acme", "ss1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.MaskCustomer(ctx, stored); err != nil {
		t.Fatal(err)
	}
	watched(b, "the erasure", func(s *store.Session) bool {
		return s != nil && s.Conversation.Customer == erasure.Masked && s.CustomerName == ""
	})

	if ended, err := b.End(ctx, "acme", "ss1", "OUTCOME_HANDLED", "", started.Add(time.Hour)); err != nil || !ended {
		t.Fatalf("End = %v, %v", ended, err)
	}
	watched(a, "the end", func(s *store.Session) bool { return s == nil })
	// A late assignment (an accept racing the end) brings nothing back,
	// and the ended session is then read from the database.
	if err := a.Assign(ctx, "acme", "ss1", "bob", "tk2", started.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if s := a.WatchedSession("acme", "ss1"); s != nil {
		t.Errorf("an ended session is watched again: %+v", s)
	}
	if rec, err := a.Session(ctx, "acme", "ss1"); err != nil || rec.AgentID != "" {
		t.Errorf("the record's agent of the ended, unassigned session = %+v, %v; want the stored empty agent", rec, err)
	}
	// A replica that starts now sees the same: nothing for the ended one.
	c := replica("c")
	if err := a.CreateSession(ctx, &store.Session{Tenant: "acme", ID: "ss2", State: store.StateActive, StartedAt: started}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for c.WatchedSession("acme", "ss2") == nil {
		if time.Now().After(deadline) {
			t.Fatal("a replica started later never loaded the active sessions")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if s := c.WatchedSession("acme", "ss1"); s != nil {
		t.Errorf("a replica started later watches the ended session: %+v", s)
	}
}
