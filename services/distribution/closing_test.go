package distribution_test

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	distributionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/distribution/v1"

	"github.com/switchboard-cc/switchboard/pkg/subjects"
	"github.com/switchboard-cc/switchboard/services/distribution/internal/engine"
	"github.com/switchboard-cc/switchboard/services/distribution/internal/presence"
	"github.com/switchboard-cc/switchboard/services/distribution/internal/store"
)

// cutOff publishes through the bus until cut, then fails every publish
// (a replica whose connection went away between its store write and its
// event).
type cutOff struct {
	pub engine.Publisher
	cut atomic.Bool
}

func (c *cutOff) Emit(ctx context.Context, subject string, ev proto.Message, msgID string) error {
	if c.cut.Load() {
		return errors.New("connection closed")
	}
	return c.pub.Emit(ctx, subject, ev, msgID)
}

// The holder of a tenant stores an accepted task completed and then
// cannot publish TaskCompleted (it is cut off, and stops); the end of the
// session goes back to the queue. The replica that takes the tenant over
// publishes the completion when it loads the tenant, and the redelivered
// end then changes nothing.
func TestCompletionSurvivesTheHolderDyingBeforeItsEvent(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	if err := e.bus.EnsureStreams(ctx, subjects.StreamOptions{}, subjects.StreamDistribution); err != nil {
		t.Fatal(err)
	}
	e.observe(t)
	var st *store.Store
	holder := func(pub engine.Publisher) *engine.Engine {
		var err error
		st, err = store.New(ctx, e.deps.Mongo.Database(e.db))
		if err != nil {
			t.Fatal(err)
		}
		if err := st.OpenTasks(ctx, e.bus.JS, 1); err != nil {
			t.Fatal(err)
		}
		ps, err := presence.Open(ctx, e.bus.JS, 1)
		if err != nil {
			t.Fatal(err)
		}
		eng := engine.New(pub, st, testLog())
		t.Cleanup(eng.Close)
		eng.SetPresenceOptions(engine.PresenceOptions{Store: ps})
		eng.SetPartitions(1)
		if _, _, err := eng.Acquire(ctx, []int{0}); err != nil {
			t.Fatal(err)
		}
		return eng
	}
	pub := &cutOff{pub: e.bus}
	old := holder(pub)
	sales := engine.ServiceInfo{ID: "sales", Name: "Sales", RONATimeout: time.Hour, MaxParallelTasks: 1}
	if err := old.Enqueue(ctx, &engine.Task{ID: "tk_c1", Tenant: "acme", SessionID: "ss_c1", ServiceID: "sales", Service: sales}); err != nil {
		t.Fatal(err)
	}
	if _, err := old.SetPresence(ctx, "acme", engine.AgentInfo{ID: "alice", Eligible: true, Services: []string{"sales"}}, distributionv1.Presence_PRESENCE_AVAILABLE); err != nil {
		t.Fatal(err)
	}
	offers := old.State("acme", "alice").GetOffers()
	if len(offers) != 1 {
		t.Fatalf("alice holds %d offers, want 1", len(offers))
	}
	if _, err := old.Accept(ctx, "acme", "alice", offers[0].GetOfferId()); err != nil {
		t.Fatal(err)
	}
	pub.cut.Store(true)
	if err := old.EndSession(ctx, "acme", "ss_c1", "done"); err == nil {
		t.Fatal("EndSession succeeded although TaskCompleted could not be published")
	}
	old.Close()

	fresh := holder(e.bus)
	completed := func() int {
		n := 0
		for _, ev := range e.events.events() {
			if ev == subjects.KindTaskCompleted {
				n++
			}
		}
		return n
	}
	waitFor(t, "TaskCompleted from the new holder", func() bool { return completed() == 1 })
	if err := fresh.EndSession(ctx, "acme", "ss_c1", "done"); err != nil { // the redelivery
		t.Fatal(err)
	}
	if got := fresh.State("acme", "alice"); got.GetActiveTasks() != 0 {
		t.Errorf("alice holds %d tasks on the new holder, want 0", got.GetActiveTasks())
	}
	if rec, err := st.Get(ctx, "acme", "tk_c1"); err != nil || rec == nil || rec.State != engine.TaskCompleted {
		t.Errorf("record of tk_c1 = %+v, %v; want completed", rec, err)
	}
	if open, err := st.LoadOpenOf(ctx, func(string) bool { return true }); err != nil || len(open) != 0 {
		t.Errorf("open tasks after the completion went out: %v, %v; want none", open, err)
	}
	if evs := e.events.events(); !slices.Contains(evs, "accepted tk_c1 by alice") {
		t.Errorf("events %q lack the accept", evs)
	}
}
