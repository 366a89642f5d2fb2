package engine_test

import (
	"context"
	"testing"

	"github.com/switchboard-cc/switchboard/pkg/subjects"
)

// A session end whose TaskCompleted could not be published (after the
// task was stored closed) returns the error, so the end is redelivered;
// the redelivery publishes it, then offers the freed agent the next task.
func TestFailedCompletionPublicationIsRetried(t *testing.T) {
	ctx := context.Background()
	w := newWorld()
	e, _ := newEngine(t, w)
	available(t, e, agentInfo("alice", 1, "sales"))
	mustEnqueue(t, e, newTask("t1", sales), newTask("t2", sales))
	accept(t, e, w, "alice", "t1")
	n := len(w.events())
	w.failNextEmit(subjects.KindTaskCompleted)
	if err := e.EndSession(ctx, tenant, "ss_t1", "done"); err == nil {
		t.Fatal("EndSession succeeded although TaskCompleted could not be published")
	}
	checkEvents(t, w, n)
	if st := e.State(tenant, "alice"); st.GetActiveTasks() != 0 {
		t.Errorf("alice still holds %d tasks after the end", st.GetActiveTasks())
	}
	endSession(t, e, "t1") // the redelivery
	endSession(t, e, "t1") // and another: nothing new
	checkEvents(t, w, n, "completed t1 by alice", "offered t2 to alice")
}

// A cancel whose TaskCanceled could not be published goes out at the next
// Tick, without a redelivery.
func TestFailedCancelPublicationGoesOutAtTheNextTick(t *testing.T) {
	ctx := context.Background()
	w := newWorld()
	e, _ := newEngine(t, w)
	mustEnqueue(t, e, newTask("t1", sales))
	w.failNextEmit(subjects.KindTaskCanceled)
	if err := e.EndSession(ctx, tenant, "ss_t1", "customer left"); err == nil {
		t.Fatal("EndSession succeeded although TaskCanceled could not be published")
	}
	checkEvents(t, w, 1)
	e.Tick(ctx)
	e.Tick(ctx)
	checkEvents(t, w, 1, "canceled t1")
}
