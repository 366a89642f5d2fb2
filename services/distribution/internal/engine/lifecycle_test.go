package engine_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	distributionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/distribution/v1"

	"github.com/switchboard-cc/switchboard/services/distribution/internal/engine"
)

// wrapped has after-call work long enough never to run out by itself in a
// test, and code lists.
var wrapped = engine.ServiceInfo{
	ID: "wrapped", Name: "Wrapped", RONATimeout: time.Hour, MaxParallelTasks: 2, AfterCallWork: time.Hour,
	ServiceCodes: []string{"new-booking", "complaint"}, SalesCodes: []string{"upgrade"}, Tags: []string{"vip"},
}

func withSkills(task *engine.Task, skills ...string) *engine.Task {
	task.RequiredSkills = skills
	return task
}

func skilled(a engine.AgentInfo, skills ...string) engine.AgentInfo {
	a.Skills = skills
	return a
}

func accept(t *testing.T, e *engine.Engine, w *world, agent, taskID string) {
	t.Helper()
	if _, err := e.Accept(context.Background(), tenant, agent, w.lastOffer(t, taskID).GetOfferId()); err != nil {
		t.Fatalf("Accept(%s, %s): %v", agent, taskID, err)
	}
}

func endSession(t *testing.T, e *engine.Engine, taskID string) {
	t.Helper()
	if err := e.EndSession(context.Background(), tenant, "ss_"+taskID, "agent terminated"); err != nil {
		t.Fatalf("EndSession(ss_%s): %v", taskID, err)
	}
}

func TestRequiredSkills(t *testing.T) {
	w := newWorld()
	e, _ := newEngine(t, w)
	// Nobody speaks French: the French task waits, the one behind it does
	// not wait for it.
	available(t, e, skilled(agentInfo("alice", 1, "support"), "de"), skilled(agentInfo("bob", 1, "support"), "de", "en"))
	mustEnqueue(t, e,
		withSkills(newTask("fr", support), "fr"),
		withSkills(newTask("de-en", support), "en", "de", "en"), // repeats and order do not matter
		withSkills(newTask("de", support), "de"),
	)
	checkEvents(t, w, 0, "queued fr pos=1", "queued de-en pos=2", "offered de-en to bob", "queued de pos=2", "offered de to alice")

	// Carl speaks French and takes it; a skill-less task goes to anyone.
	available(t, e, skilled(agentInfo("carl", 2, "support"), "fr"))
	mustEnqueue(t, e, newTask("any", support))
	checkEvents(t, w, 5, "offered fr to carl", "queued any pos=1", "offered any to carl")
}

func TestLongestIdleFirst(t *testing.T) {
	ctx := context.Background()
	w := newWorld()
	e, c := newEngine(t, w)
	available(t, e, agentInfo("bob", 1, "sales"), agentInfo("alice", 1, "sales"))
	mustEnqueue(t, e, newTask("t1", sales), newTask("t2", sales))
	checkEvents(t, w, 0, "queued t1 pos=1", "offered t1 to bob", "queued t2 pos=1", "offered t2 to alice")
	accept(t, e, w, "bob", "t1")
	accept(t, e, w, "alice", "t2")
	// bob was offered and accepted first, but alice finishes first: she
	// has been idle longer when the next task comes.
	endSession(t, e, "t2")
	c.Advance(time.Minute)
	endSession(t, e, "t1")
	c.Advance(time.Minute)
	n := len(w.events())
	mustEnqueue(t, e, newTask("t3", sales))
	checkEvents(t, w, n, "queued t3 pos=1", "offered t3 to alice")
	st := e.State(tenant, "bob")
	if st.GetIdleSince() == nil || st.GetActivity() != distributionv1.AgentActivity_AGENT_ACTIVITY_AVAILABLE {
		t.Errorf("bob = %v, want available and idle since his task ended", st)
	}
	if _, err := e.SetPresence(ctx, tenant, agentInfo("bob", 1, "sales"), distributionv1.Presence_PRESENCE_AVAILABLE); err != nil {
		t.Fatal(err)
	}
	if again := e.State(tenant, "bob").GetIdleSince(); !again.AsTime().Equal(st.GetIdleSince().AsTime()) {
		t.Errorf("saying available again reset bob's idle time from %v to %v", st.GetIdleSince().AsTime(), again.AsTime())
	}
}

func TestAfterCallWork(t *testing.T) {
	ctx := context.Background()
	w := newWorld()
	e, _ := newEngine(t, w)
	available(t, e, agentInfo("alice", 2, "wrapped"), agentInfo("bob", 1, "sales"))
	mustEnqueue(t, e, newTask("t1", wrapped))
	accept(t, e, w, "alice", "t1")
	n := len(w.events())
	endSession(t, e, "t1")
	// alice wraps up: no offer although she has room for two.
	mustEnqueue(t, e, newTask("t2", wrapped))
	checkEvents(t, w, n, "wrapping t1 by alice", "queued t2 pos=1")
	st := e.State(tenant, "alice")
	if st.GetActivity() != distributionv1.AgentActivity_AGENT_ACTIVITY_WRAPPING || !slices.Equal(st.GetWrappingTaskIds(), []string{"t1"}) || st.GetWrapUpUntil() == nil {
		t.Errorf("alice = %v, want wrapping t1 with an end", st)
	}
	// A redelivered session end changes nothing.
	endSession(t, e, "t1")
	checkEvents(t, w, n, "wrapping t1 by alice", "queued t2 pos=1")

	n = len(w.events())
	for _, tc := range []struct {
		name                      string
		agent, task, session      string
		serviceCodes, sales, tags []string
		want                      error
	}{
		{"service code not in the list", "alice", "t1", "", []string{"refund"}, nil, nil, engine.ErrInvalid},
		{"sales code not in the list", "alice", "t1", "", nil, []string{"new-booking"}, nil, engine.ErrInvalid},
		{"tag not in the list", "alice", "t1", "", nil, nil, []string{"VIP"}, engine.ErrInvalid},
		{"another agent's wrap-up", "bob", "t1", "", nil, nil, nil, engine.ErrNotYourTask},
		{"a task not wrapping", "alice", "t2", "", nil, nil, nil, engine.ErrTaskState},
		{"an unknown task", "alice", "nope", "", nil, nil, nil, engine.ErrUnknownTask},
		{"an unknown session", "alice", "", "ss_nope", nil, nil, nil, engine.ErrUnknownTask},
	} {
		if _, err := e.SubmitWrapUp(ctx, tenant, tc.agent, tc.task, tc.session, tc.serviceCodes, tc.sales, tc.tags); !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
	}
	checkEvents(t, w, n)
	if got := e.State(tenant, "alice").GetActivity(); got != distributionv1.AgentActivity_AGENT_ACTIVITY_WRAPPING {
		t.Errorf("after rejected submissions alice is %v, want still wrapping", got)
	}

	// Submitted by session: recorded, completed, and the next task comes.
	task, err := e.SubmitWrapUp(ctx, tenant, "alice", "", "ss_t1", []string{"complaint", "new-booking"}, []string{"upgrade"}, []string{"vip"})
	if err != nil {
		t.Fatal(err)
	}
	if task.GetState() != distributionv1.TaskState_TASK_STATE_COMPLETED {
		t.Errorf("submitted task state = %v, want completed", task.GetState())
	}
	checkEvents(t, w, n, "wrapped t1 by alice [complaint new-booking] [upgrade] [vip]", "completed t1 by alice", "offered t2 to alice")
	if _, err := e.SubmitWrapUp(ctx, tenant, "alice", "t1", "", nil, nil, nil); !errors.Is(err, engine.ErrTaskState) {
		t.Errorf("submitting twice: err = %v, want ErrTaskState", err)
	}

	// Not submitted: it runs out, and that frees her too.
	accept(t, e, w, "alice", "t2")
	endSession(t, e, "t2")
	mustEnqueue(t, e, newTask("t3", wrapped))
	n = len(w.events())
	engine.ExpireWrapUp(e, tenant, "t2")
	checkEvents(t, w, n, "wrap-up of t2 by alice ran out", "completed t2 by alice", "offered t3 to alice")
}

// The after-call work timer runs on its own.
func TestAfterCallWorkRunsOut(t *testing.T) {
	w := newWorld()
	e, _ := newEngine(t, w)
	short := wrapped
	short.AfterCallWork = 20 * time.Millisecond
	available(t, e, agentInfo("alice", 1, "wrapped"))
	mustEnqueue(t, e, newTask("t1", short))
	accept(t, e, w, "alice", "t1")
	endSession(t, e, "t1")
	mustEnqueue(t, e, newTask("t2", short))
	waitFor(t, "t2 offered to alice after her wrap-up", hasEvent(w, "offered t2 to alice"))
	checkPrefix(t, w, 3, "wrapping t1 by alice", "queued t2 pos=1", "wrap-up of t1 by alice ran out", "completed t1 by alice", "offered t2 to alice")
}

func TestReprioritizeAndCancel(t *testing.T) {
	ctx := context.Background()
	w := newWorld()
	e, _ := newEngine(t, w)
	mustEnqueue(t, e, newTask("a", sales), newTask("b", sales), newTask("c", sales))
	n := len(w.events())
	for _, tc := range []struct {
		name     string
		task     string
		priority int32
		want     error
	}{
		{"negative", "b", -1, engine.ErrInvalid},
		{"absurd", "b", engine.MaxPriority + 1, engine.ErrInvalid},
		{"unknown task", "zz", 5, engine.ErrUnknownTask},
	} {
		if _, err := e.Reprioritize(ctx, tenant, tc.task, tc.priority); !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, err := e.Reprioritize(ctx, "globex", "b", 5); !errors.Is(err, engine.ErrUnknownTask) {
		t.Errorf("another tenant's task: err = %v, want ErrUnknownTask", err)
	}
	checkEvents(t, w, n)

	got, err := e.Reprioritize(ctx, tenant, "c", 7)
	if err != nil {
		t.Fatal(err)
	}
	if got.GetPosition() != 1 || got.GetPriority() != 7 {
		t.Errorf("reprioritized c = %v, want position 1 priority 7", got)
	}
	if _, err := e.Reprioritize(ctx, tenant, "c", 7); err != nil { // the same: nothing to say
		t.Fatal(err)
	}
	positions := func() []int32 {
		var out []int32
		for _, id := range []string{"a", "b", "c"} {
			p, err := e.QueuePosition(ctx, tenant, id)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, p.GetPosition())
		}
		return out
	}
	if got := positions(); !slices.Equal(got, []int32{2, 3, 1}) {
		t.Errorf("positions of a, b, c = %v, want [2 3 1]", got)
	}

	canceled, err := e.CancelTask(ctx, tenant, "a", "queue timeout")
	if err != nil {
		t.Fatal(err)
	}
	if canceled.GetState() != distributionv1.TaskState_TASK_STATE_CANCELED {
		t.Errorf("canceled a = %v", canceled)
	}
	if got := positions(); !slices.Equal(got, []int32{0, 2, 1}) {
		t.Errorf("positions after canceling a = %v, want [0 2 1]", got)
	}
	if _, err := e.CancelTask(ctx, tenant, "a", ""); !errors.Is(err, engine.ErrTaskState) {
		t.Errorf("canceling again: err = %v, want ErrTaskState", err)
	}
	if got, err := e.GetTask(ctx, tenant, "a"); err != nil || got.GetState() != distributionv1.TaskState_TASK_STATE_CANCELED {
		t.Errorf("GetTask(a) = %v, %v; want canceled", got, err)
	}
	// Accepted: neither canceled nor reprioritized.
	available(t, e, agentInfo("alice", 1, "sales"))
	accept(t, e, w, "alice", "c")
	if _, err := e.CancelTask(ctx, tenant, "c", ""); !errors.Is(err, engine.ErrTaskState) {
		t.Errorf("canceling an accepted task: err = %v, want ErrTaskState", err)
	}
	if _, err := e.Reprioritize(ctx, tenant, "c", 1); !errors.Is(err, engine.ErrTaskState) {
		t.Errorf("reprioritizing an accepted task: err = %v, want ErrTaskState", err)
	}
	checkEvents(t, w, n, "reprioritized c 0->7", "canceled a", "offered c to alice", "accepted c by alice")
	if _, err := e.GetTask(ctx, tenant, "zz"); !errors.Is(err, engine.ErrUnknownTask) {
		t.Errorf("GetTask(zz): err = %v, want ErrUnknownTask", err)
	}
}

func TestQueueAnswers(t *testing.T) {
	ctx := context.Background()
	w := newWorld()
	e, c := newEngine(t, w)
	// One agent, one task at a time; the first task takes 4 minutes.
	available(t, e, agentInfo("alice", 1, "sales"))
	mustEnqueue(t, e, newTask("t0", sales))
	accept(t, e, w, "alice", "t0")
	c.Advance(4 * time.Minute)
	endSession(t, e, "t0")
	var aht time.Duration
	for _, en := range w.entries() {
		if ev, ok := en.event.(*distributionv1.TaskCompleted); ok {
			aht = ev.GetHandleTime().AsDuration()
		}
	}
	mustEnqueue(t, e, newTask("t1", sales), newTask("t2", sales), newTask("t3", sales))
	for i, id := range []string{"t2", "t3"} {
		p, err := e.QueuePosition(ctx, tenant, id)
		if err != nil {
			t.Fatal(err)
		}
		pos := int32(i + 1)
		if p.GetPosition() != pos || p.GetWaiting() != 2 || p.GetAgentsAvailable() != 1 {
			t.Errorf("%s: %v, want position %d of 2 waiting, 1 agent", id, p, pos)
		}
		if want := time.Duration(pos) * aht; p.GetEstimatedWait().AsDuration() != want || p.GetAverageHandleTime().AsDuration() != aht {
			t.Errorf("%s: estimated wait %v (aht %v), want %v (position × %v ÷ 1 slot)", id, p.GetEstimatedWait().AsDuration(), p.GetAverageHandleTime().AsDuration(), want, aht)
		}
	}
	if p, err := e.QueuePosition(ctx, tenant, "t1"); err != nil || p.GetPosition() != 0 || p.GetState() != distributionv1.TaskState_TASK_STATE_OFFERED {
		t.Errorf("t1 (on offer): %v, %v; want position 0, offered", p, err)
	}

	// Agents of every kind, and a RONA.
	if _, err := e.SetPresence(ctx, tenant, agentInfo("carl", 1, "sales"), distributionv1.Presence_PRESENCE_AWAY); err != nil {
		t.Fatal(err)
	}
	if _, err := e.SetPresence(ctx, tenant, agentInfo("olga", 1, "sales"), distributionv1.Presence_PRESENCE_OFFLINE); err != nil {
		t.Fatal(err)
	}
	available(t, e, agentInfo("sam", 1, "support")) // another service
	engine.FireRONA(e, tenant, w.lastOffer(t, "t1").GetOfferId())
	available(t, e, agentInfo("dave", 1, "sales")) // takes t1
	c.Advance(time.Minute)

	av := e.ServiceAvailability(tenant, sales)
	var who []string
	for _, a := range av.GetAgents() {
		who = append(who, a.GetAgentId()+":"+a.GetActivity().String())
	}
	wantWho := []string{"alice:AGENT_ACTIVITY_RONA", "carl:AGENT_ACTIVITY_AWAY", "dave:AGENT_ACTIVITY_BUSY", "olga:AGENT_ACTIVITY_OFFLINE"}
	if !slices.Equal(who, wantWho) || av.GetAvailable() != 0 || av.GetBusy() != 2 || av.GetAway() != 1 || av.GetOffline() != 1 {
		t.Errorf("availability = %v %v, want %q, 0 available, 2 busy, 1 away, 1 offline", who, av, wantWho)
	}
	st := e.QueueStatistics(tenant, sales)
	if st.GetWaiting() != 2 || st.GetOffered() != 1 || st.GetOffersLastHour() != 3 || st.GetRonasLastHour() != 1 ||
		st.GetAgentsRona() != 1 || st.GetAgentsBusy() != 1 || st.GetAgentsAway() != 1 || st.GetAgentsOffline() != 1 {
		t.Errorf("statistics = %v, want 2 waiting, 1 offered, 3 offers and 1 RONA in the hour, agents: 1 rona, 1 busy, 1 away, 1 offline", st)
	}
	if st.GetLongestWait().AsDuration() < time.Minute {
		t.Errorf("longest wait %v, want at least the minute that passed", st.GetLongestWait().AsDuration())
	}
	// An hour later the offers and RONAs have aged out.
	c.Advance(time.Hour)
	if st := e.QueueStatistics(tenant, sales); st.GetOffersLastHour() != 0 || st.GetRonasLastHour() != 0 {
		t.Errorf("an hour later: %d offers, %d RONAs in the last hour, want 0", st.GetOffersLastHour(), st.GetRonasLastHour())
	}
}
