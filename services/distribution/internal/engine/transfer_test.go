package engine_test

import (
	"context"
	"errors"
	"testing"
	"time"

	distributionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/distribution/v1"

	"github.com/switchboard-cc/switchboard/services/distribution/internal/engine"
)

// accepted enqueues a task of svc, which must be offered to agent, and
// has the agent accept it.
func accepted(t *testing.T, w *world, e *engine.Engine, task *engine.Task, agent string) {
	t.Helper()
	mustEnqueue(t, e, task)
	o := w.lastOffer(t, task.ID)
	if o.GetAgentId() != agent {
		t.Fatalf("%s offered to %s, want %s", task.ID, o.GetAgentId(), agent)
	}
	if _, err := e.Accept(context.Background(), tenant, agent, o.GetOfferId()); err != nil {
		t.Fatal(err)
	}
}

func TestTransferToServiceQueuesWithOriginalArrival(t *testing.T) {
	ctx := context.Background()
	w := newWorld()
	e, _ := newEngine(t, w)
	available(t, e, agentInfo("alice", 0, "sales"))
	first := newTask("t1", sales)
	accepted(t, w, e, first, "alice")
	queuedAt := first.QueuedAt
	// Two support tasks arrive later and wait: nobody serves support.
	mustEnqueue(t, e, newTask("t2", support), newTask("t3", support))

	n := len(w.events())
	got, err := e.Transfer(ctx, tenant, engine.Transfer{TaskID: "t1", By: "alice", ByAgent: "alice", ToService: &support, Note: "wants a refund"})
	if err != nil {
		t.Fatal(err)
	}
	checkEvents(t, w, n, "transferred t1 from alice to service support")
	if got.GetState() != distributionv1.TaskState_TASK_STATE_QUEUED || got.GetServiceId() != "support" || got.GetPosition() != 1 ||
		!got.GetQueuedAt().AsTime().Equal(queuedAt) || got.GetNote() != "wants a refund" || got.GetTransfers() != 1 || got.GetAgentId() != "" {
		t.Errorf("transferred task = %v; want queued first in support (it arrived first), note, 1 transfer, no agent", got)
	}
	if st := e.State(tenant, "alice"); st.GetActiveTasks() != 0 {
		t.Errorf("alice still holds %d tasks after transferring", st.GetActiveTasks())
	}
	// The next agent of support gets it first, with the note.
	n = len(w.events())
	available(t, e, agentInfo("sam", 1, "support"))
	checkEvents(t, w, n, "offered t1 to sam")
	if o := w.lastOffer(t, "t1"); o.GetNote() != "wants a refund" || o.GetServiceId() != "support" {
		t.Errorf("offer = %v, want the note and service support", o)
	}
	if saved := w.saved[tenant+"/t1"]; saved.ServiceID != "support" || saved.Note != "wants a refund" || saved.Transfers != 1 {
		t.Errorf("saved = %+v, want in support with the note", saved)
	}
}

func TestTransferToAgentAndBackOnDecline(t *testing.T) {
	ctx := context.Background()
	w := newWorld()
	e, _ := newEngine(t, w)
	available(t, e, agentInfo("alice", 0, "sales"))
	accepted(t, w, e, newTask("t1", sales), "alice")
	// Bob serves support only: a transfer by name does not ask.
	available(t, e, agentInfo("bob", 1, "support"))

	n := len(w.events())
	if _, err := e.Transfer(ctx, tenant, engine.Transfer{TaskID: "t1", By: "sup", ToAgent: "bob", Note: "VIP"}); err != nil {
		t.Fatal(err)
	}
	checkEvents(t, w, n, "transferred t1 from alice to agent bob", "offered t1 to bob")
	o := w.lastOffer(t, "t1")
	if o.GetNote() != "VIP" || o.GetTransferredBy() != "sup" {
		t.Errorf("offer = %v, want note VIP transferred by sup", o)
	}
	// Bob declines: back to sales' queue; alice (who transferred it) is
	// not offered it again within the cooldown, carol is.
	if err := e.Decline(ctx, tenant, "bob", o.GetOfferId()); err != nil {
		t.Fatal(err)
	}
	n = len(w.events())
	available(t, e, agentInfo("carol", 0, "sales"))
	checkEvents(t, w, n, "offered t1 to carol")
}

func TestTransferToAgentBackOnRONA(t *testing.T) {
	ctx := context.Background()
	w := newWorld()
	e, _ := newEngine(t, w)
	available(t, e, agentInfo("alice", 0, "sales"), agentInfo("bob", 0, "sales"))
	accepted(t, w, e, newTask("t1", sales), "alice")
	if _, err := e.Transfer(ctx, tenant, engine.Transfer{TaskID: "t1", By: "alice", ByAgent: "alice", ToAgent: "bob"}); err != nil {
		t.Fatal(err)
	}
	o := w.lastOffer(t, "t1")
	n := len(w.events())
	engine.FireRONA(e, tenant, o.GetOfferId())
	// Back in sales; bob is flagged and alice declined: it waits.
	checkEvents(t, w, n, "rona t1 by bob")
	got, err := e.GetTask(ctx, tenant, "t1")
	if err != nil || got.GetState() != distributionv1.TaskState_TASK_STATE_QUEUED || got.GetServiceId() != "sales" {
		t.Errorf("GetTask = %v, %v; want queued in sales", got, err)
	}
}

func TestTransferRefusalsChangeNothing(t *testing.T) {
	ctx := context.Background()
	w := newWorld()
	e, _ := newEngine(t, w)
	available(t, e, agentInfo("alice", 0, "sales"), agentInfo("bob", 1, "sales"))
	accepted(t, w, e, newTask("t1", sales), "alice")
	accepted(t, w, e, newTask("t2", sales), "bob") // bob is at capacity
	mustEnqueue(t, e, newTask("t3", sales))        // waits
	if _, err := e.SetPresence(ctx, tenant, agentInfo("dave", 0, "sales"), distributionv1.Presence_PRESENCE_AWAY); err != nil {
		t.Fatal(err)
	}
	n := len(w.events())
	for _, c := range []struct {
		name string
		tr   engine.Transfer
		want error
	}{
		{"unknown task", engine.Transfer{TaskID: "nope", ToService: &support}, engine.ErrUnknownTask},
		{"not accepted", engine.Transfer{TaskID: "t3", ToService: &support}, engine.ErrTaskState},
		{"another agent's task", engine.Transfer{TaskID: "t1", ByAgent: "bob", ToService: &support}, engine.ErrNotYourTask},
		{"no target", engine.Transfer{TaskID: "t1"}, engine.ErrInvalid},
		{"two targets", engine.Transfer{TaskID: "t1", ToService: &support, ToAgent: "bob"}, engine.ErrInvalid},
		{"to themselves", engine.Transfer{TaskID: "t1", ToAgent: "alice"}, engine.ErrInvalid},
		{"agent at capacity", engine.Transfer{TaskID: "t1", ToAgent: "bob"}, engine.ErrAgentBusy},
		{"agent away", engine.Transfer{TaskID: "t1", ToAgent: "dave"}, engine.ErrAgentBusy},
		{"agent unknown to distribution", engine.Transfer{TaskID: "t1", ToAgent: "zed"}, engine.ErrAgentBusy},
		{"note too long", engine.Transfer{TaskID: "t1", ToService: &support, Note: string(make([]byte, engine.MaxNoteLen+1))}, engine.ErrInvalid},
	} {
		if _, err := e.Transfer(ctx, tenant, c.tr); !errors.Is(err, c.want) {
			t.Errorf("%s: Transfer = %v, want %v", c.name, err, c.want)
		}
	}
	checkEvents(t, w, n)
	if got, _ := e.GetTask(ctx, tenant, "t1"); got.GetState() != distributionv1.TaskState_TASK_STATE_ACCEPTED || got.GetAgentId() != "alice" {
		t.Errorf("t1 = %v after refused transfers, want accepted by alice", got)
	}
	// A failed save changes nothing either.
	w.mu.Lock()
	w.failSave = 1
	w.mu.Unlock()
	if _, err := e.Transfer(ctx, tenant, engine.Transfer{TaskID: "t1", ToService: &support}); err == nil {
		t.Error("Transfer with a failing store succeeded")
	}
	if got, _ := e.GetTask(ctx, tenant, "t1"); got.GetState() != distributionv1.TaskState_TASK_STATE_ACCEPTED || got.GetServiceId() != "sales" {
		t.Errorf("t1 = %v after a failed save, want accepted in sales", got)
	}
	checkEvents(t, w, n)
}

func TestFirstReplyTimer(t *testing.T) {
	ctx := context.Background()
	w := newWorld()
	e, c := newEngine(t, w)
	svc := sales
	svc.MaxParallelTasks = 2
	svc.FirstReplyTimeout = 2 * time.Minute
	available(t, e, agentInfo("alice", 0, "sales"))
	accepted(t, w, e, newTask("t1", svc), "alice")
	accepted(t, w, e, newTask("t2", svc), "alice")
	got, _ := e.GetTask(ctx, tenant, "t1")
	if due := got.GetReplyDueAt().AsTime().Sub(got.GetAcceptedAt().AsTime()); due != 2*time.Minute {
		t.Errorf("reply due %v after the accept, want 2m", due)
	}

	// alice replies in t2's session (someone else's reply in t1's does not count).
	if err := e.AgentReplied(ctx, tenant, "ss_t1", "mallory"); err != nil {
		t.Fatal(err)
	}
	if err := e.AgentReplied(ctx, tenant, "ss_t2", "alice"); err != nil {
		t.Fatal(err)
	}
	c.Advance(3 * time.Minute)
	n := len(w.events())
	engine.FireReplyTimer(e, tenant, "t1")
	engine.FireReplyTimer(e, tenant, "t2")
	engine.FireReplyTimer(e, tenant, "t1") // once only
	checkEvents(t, w, n, "reply overdue t1 by alice")
	for _, en := range w.entries() {
		ev, ok := en.event.(*distributionv1.TaskReplyOverdue)
		if ok && (!ev.GetDueAt().AsTime().Equal(got.GetReplyDueAt().AsTime()) || !ev.GetAcceptedAt().AsTime().Equal(got.GetAcceptedAt().AsTime())) {
			t.Errorf("overdue = %v, want due %v accepted %v", ev, got.GetReplyDueAt(), got.GetAcceptedAt())
		}
	}
	// The task stays with alice.
	if got, _ := e.GetTask(ctx, tenant, "t1"); got.GetState() != distributionv1.TaskState_TASK_STATE_ACCEPTED || got.GetAgentId() != "alice" {
		t.Errorf("t1 = %v, want still accepted by alice", got)
	}
	if saved := w.saved[tenant+"/t1"]; !saved.Overdue {
		t.Error("overdue not saved: a restart would publish it again")
	}
	if saved := w.saved[tenant+"/t2"]; !saved.Replied {
		t.Error("reply not saved")
	}
}

func TestFirstReplyTimerOffAndAfterTransfer(t *testing.T) {
	ctx := context.Background()
	w := newWorld()
	e, _ := newEngine(t, w)
	available(t, e, agentInfo("alice", 0, "sales", "support"))
	accepted(t, w, e, newTask("t1", sales), "alice") // no first-reply time
	n := len(w.events())
	engine.FireReplyTimer(e, tenant, "t1")
	checkEvents(t, w, n)

	// Transferred, the next acceptance starts its own timer.
	timed := support
	timed.FirstReplyTimeout = time.Minute
	if _, err := e.Transfer(ctx, tenant, engine.Transfer{TaskID: "t1", ToService: &timed}); err != nil {
		t.Fatal(err)
	}
	available(t, e, agentInfo("sam", 0, "support"))
	o := w.lastOffer(t, "t1")
	if _, err := e.Accept(ctx, tenant, o.GetAgentId(), o.GetOfferId()); err != nil {
		t.Fatal(err)
	}
	n = len(w.events())
	engine.FireReplyTimer(e, tenant, "t1")
	checkEvents(t, w, n, "reply overdue t1 by sam")
}

func TestFirstReplyOverdueRequeues(t *testing.T) {
	ctx := context.Background()
	w := newWorld()
	e, c := newEngine(t, w)
	svc := sales
	svc.FirstReplyTimeout = time.Minute
	svc.FirstReplyRequeue = true
	available(t, e, agentInfo("alice", 0, "sales"))
	first := newTask("t1", svc)
	accepted(t, w, e, first, "alice")
	queuedAt := first.QueuedAt
	mustEnqueue(t, e, newTask("t2", svc)) // waits behind t1's arrival

	c.Advance(2 * time.Minute)
	n := len(w.events())
	engine.FireReplyTimer(e, tenant, "t1")
	// t1 goes back to its place (before t2); alice, who let it lapse,
	// counts as having declined it and is offered t2.
	checkEvents(t, w, n, "reply overdue t1 by alice requeued", "transferred t1 from alice to service sales", "offered t2 to alice")
	got, _ := e.GetTask(ctx, tenant, "t1")
	if got.GetState() != distributionv1.TaskState_TASK_STATE_QUEUED || got.GetPosition() != 1 || !got.GetQueuedAt().AsTime().Equal(queuedAt) || got.GetAgentId() != "" {
		t.Errorf("t1 = %v, want queued first with its arrival time", got)
	}
	// The next agent gets it, and their own timer starts.
	available(t, e, agentInfo("bob", 0, "sales"))
	o := w.lastOffer(t, "t1")
	if o.GetAgentId() != "bob" {
		t.Fatalf("t1 offered to %s, want bob", o.GetAgentId())
	}
	if _, err := e.Accept(ctx, tenant, "bob", o.GetOfferId()); err != nil {
		t.Fatal(err)
	}
	n = len(w.events())
	engine.FireReplyTimer(e, tenant, "t1")
	checkEvents(t, w, n, "reply overdue t1 by bob requeued", "transferred t1 from bob to service sales")
}
