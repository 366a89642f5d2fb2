package engine_test

import (
	"context"
	"errors"
	"testing"

	distributionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/distribution/v1"

	"github.com/switchboard-cc/switchboard/services/distribution/internal/engine"
)

func TestParkFreesASlotWhenParkedDoesNotCount(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		counts bool
		want   []string // events after the park
	}{
		{"parked does not count", false, []string{"parked t1 of alice by alice counts=false", "offered t2 to alice"}},
		{"parked counts", true, []string{"parked t1 of alice by alice counts=true"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld()
			e, _ := newEngine(t, w)
			svc := sales // capacity 1
			svc.ParkedCounts = tc.counts
			available(t, e, agentInfo("alice", 0, "sales"))
			accepted(t, w, e, newTask("t1", svc), "alice")
			mustEnqueue(t, e, newTask("t2", svc)) // waits: alice is full

			n := len(w.events())
			got, err := e.Park(ctx, tenant, "t1", "alice", "alice")
			if err != nil {
				t.Fatal(err)
			}
			if got.GetState() != distributionv1.TaskState_TASK_STATE_PARKED || got.GetAgentId() != "alice" {
				t.Errorf("parked task = %v, want parked, alice's", got)
			}
			checkEvents(t, w, n, tc.want...)
			if saved := w.saved[tenant+"/t1"]; saved.State != engine.TaskParked || saved.Parks != 1 || saved.ParkCounts != tc.counts {
				t.Errorf("saved = %+v, want parked once, counts %v", saved, tc.counts)
			}

			// Resuming makes it active again, even above capacity.
			n = len(w.events())
			got, err = e.Resume(ctx, tenant, "t1", "sup", "")
			if err != nil {
				t.Fatal(err)
			}
			if got.GetState() != distributionv1.TaskState_TASK_STATE_ACCEPTED {
				t.Errorf("resumed task = %v, want accepted", got)
			}
			checkEvents(t, w, n, "resumed t1 of alice by sup")
		})
	}
}

func TestParkRefusals(t *testing.T) {
	ctx := context.Background()
	w := newWorld()
	e, _ := newEngine(t, w)
	available(t, e, agentInfo("alice", 0, "support"), agentInfo("bob", 0, "support"))
	accepted(t, w, e, newTask("t1", support), "alice")
	mustEnqueue(t, e, newTask("t2", support)) // offered to bob, not accepted

	n := len(w.events())
	for _, tc := range []struct {
		name string
		call func() error
		want error
	}{
		{"resume an active task", func() error { _, err := e.Resume(ctx, tenant, "t1", "alice", "alice"); return err }, engine.ErrTaskState},
		{"park an offered task", func() error { _, err := e.Park(ctx, tenant, "t2", "bob", "bob"); return err }, engine.ErrTaskState},
		{"park someone else's task", func() error { _, err := e.Park(ctx, tenant, "t1", "bob", "bob"); return err }, engine.ErrNotYourTask},
		{"park an unknown task", func() error { _, err := e.Park(ctx, tenant, "nope", "alice", "alice"); return err }, engine.ErrUnknownTask},
	} {
		if err := tc.call(); !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
	}
	checkEvents(t, w, n)

	if _, err := e.Park(ctx, tenant, "t1", "alice", "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Park(ctx, tenant, "t1", "alice", "alice"); !errors.Is(err, engine.ErrTaskState) {
		t.Errorf("parking a parked task: err = %v, want %v", err, engine.ErrTaskState)
	}
	if _, err := e.Transfer(ctx, tenant, engine.Transfer{TaskID: "t1", By: "alice", ToService: &sales}); !errors.Is(err, engine.ErrTaskState) {
		t.Errorf("transferring a parked task: err = %v, want %v", err, engine.ErrTaskState)
	}
}

func TestParkedTaskEndsWithItsSession(t *testing.T) {
	ctx := context.Background()
	w := newWorld()
	e, _ := newEngine(t, w)
	available(t, e, agentInfo("alice", 0, "sales"))
	accepted(t, w, e, newTask("t1", sales), "alice")
	if _, err := e.Park(ctx, tenant, "t1", "alice", "alice"); err != nil {
		t.Fatal(err)
	}
	n := len(w.events())
	if err := e.EndSession(ctx, tenant, "ss_t1", "customer_left"); err != nil {
		t.Fatal(err)
	}
	checkEvents(t, w, n, "completed t1 by alice")
	if st := e.State(tenant, "alice"); st.GetActiveTasks() != 0 {
		t.Errorf("alice holds %d tasks after the parked one ended", st.GetActiveTasks())
	}
}

func TestParkedTaskSurvivesRestore(t *testing.T) {
	ctx := context.Background()
	w := newWorld()
	e, _ := newEngine(t, w)
	svc := sales
	svc.ParkedCounts = false
	available(t, e, agentInfo("alice", 0, "sales"))
	accepted(t, w, e, newTask("t1", svc), "alice")
	if _, err := e.Park(ctx, tenant, "t1", "alice", "alice"); err != nil {
		t.Fatal(err)
	}
	e.Close()

	e2, _ := newEngine(t, w)
	if _, err := e2.Restore(ctx); err != nil {
		t.Fatal(err)
	}
	available(t, e2, agentInfo("alice", 0, "sales"))
	n := len(w.events())
	mustEnqueue(t, e2, newTask("t2", svc))
	checkEvents(t, w, n, "queued t2 pos=1", "offered t2 to alice")
	if _, err := e2.Resume(ctx, tenant, "t1", "alice", "alice"); err != nil {
		t.Errorf("resume after a restart: %v", err)
	}
}
