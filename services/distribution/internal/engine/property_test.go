package engine_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"
	"time"

	distributionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/distribution/v1"

	"github.com/switchboard-cc/switchboard/pkg/subjects"
	"github.com/switchboard-cc/switchboard/services/distribution/internal/engine"
)

// model is what the events say, replayed by the test, plus what the test
// itself told the engine (presence). Every step of a random sequence is
// checked against it.
type model struct {
	t        *testing.T
	agents   map[string]*mAgent
	services map[string]engine.ServiceInfo
	tasks    map[string]*mTask
}

type mAgent struct {
	info     engine.AgentInfo
	presence distributionv1.Presence
	rona     bool
	offers   map[string]string // offer id -> task id
	active   map[string]bool
	wrapping map[string]bool
}

type mTask struct {
	id, service, session string
	state                string // queued, offered, accepted, parked, wrapping, completed, canceled
	agent, offer         string
	// parkCounts: parked, the task counts toward its agent's capacity.
	parkCounts bool
	priority   int32
	skills     []string
	queuedAt   time.Time
	declinedBy map[string]bool
	// directTo: transferred to this agent by name, the offer to follow.
	directTo         string
	replied, overdue bool
}

// directReady: an agent may be offered a task by name (a transfer).
func (m *model) directReady(a *mAgent, task *mTask) bool {
	return a.presence == distributionv1.Presence_PRESENCE_AVAILABLE && a.info.Eligible && !a.rona && len(a.wrapping) == 0 &&
		m.load(a) < m.limit(a, task.service)
}

// load: what counts toward an agent's capacity: offers and accepted
// tasks, less parked ones whose service did not count them.
func (m *model) load(a *mAgent) int {
	n := len(a.offers)
	for id := range a.active {
		if task := m.tasks[id]; task.state != "parked" || task.parkCounts {
			n++
		}
	}
	return n
}

func (m *model) limit(a *mAgent, svc string) int {
	switch {
	case a.info.Capacity > 0:
		return a.info.Capacity
	case m.services[svc].MaxParallelTasks > 0:
		return m.services[svc].MaxParallelTasks
	}
	return 1
}

// eligible: the selection rules, as the README states them (the decline
// cooldown is a day here, so a decline excludes until the tenant moves to
// another replica: cooldowns are kept in memory only).
func (m *model) eligible(a *mAgent, task *mTask) bool {
	if a.presence != distributionv1.Presence_PRESENCE_AVAILABLE || !a.info.Eligible || a.rona || len(a.wrapping) > 0 ||
		!slices.Contains(a.info.Services, task.service) || task.declinedBy[a.info.ID] {
		return false
	}
	for _, s := range task.skills {
		if !slices.Contains(a.info.Skills, s) {
			return false
		}
	}
	return m.load(a) < m.limit(a, task.service)
}

// apply replays one event and checks it was allowed.
func (m *model) apply(step int, ev any) {
	t := m.t
	t.Helper()
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("step %d: %s", step, fmt.Sprintf(format, args...))
	}
	switch ev := ev.(type) {
	case *distributionv1.TaskQueued:
		task := m.tasks[ev.GetTaskId()]
		if task == nil || task.state != "new" {
			fail("task %s queued while %+v", ev.GetTaskId(), task)
		}
		task.state, task.queuedAt = "queued", ev.GetQueuedAt().AsTime()
	case *distributionv1.TaskOffered:
		task, a := m.tasks[ev.GetTaskId()], m.agents[ev.GetAgentId()]
		if task == nil || task.state != "queued" {
			fail("double offer: task %s offered to %s while %+v", ev.GetTaskId(), ev.GetAgentId(), task)
		}
		switch {
		case task.directTo != "":
			if a.info.ID != task.directTo || !m.directReady(a, task) {
				fail("task %s transferred to %s offered to %s: %+v", task.id, task.directTo, a.info.ID, a)
			}
			task.directTo = ""
		case !m.eligible(a, task):
			fail("task %s (skills %v) offered to %s, who is not eligible: %+v", task.id, task.skills, a.info.ID, a)
		}
		task.state, task.agent, task.offer = "offered", a.info.ID, ev.GetOfferId()
		a.offers[ev.GetOfferId()] = task.id
	case *distributionv1.TaskAccepted:
		task, a := m.tasks[ev.GetTaskId()], m.agents[ev.GetAgentId()]
		if task.state != "offered" || task.offer != ev.GetOfferId() || task.agent != a.info.ID {
			fail("accept of %s by %s while %+v", task.id, a.info.ID, task)
		}
		delete(a.offers, task.offer)
		a.active[task.id] = true
		task.state, task.replied, task.overdue = "accepted", false, false
	case *distributionv1.TaskDeclined:
		task, a := m.tasks[ev.GetTaskId()], m.agents[ev.GetAgentId()]
		if task.state != "offered" || task.offer != ev.GetOfferId() {
			fail("decline of %s while %+v", task.id, task)
		}
		delete(a.offers, task.offer)
		task.declinedBy[a.info.ID] = true
		task.state, task.agent, task.offer = "queued", "", ""
	case *distributionv1.TaskOfferTimedOut:
		task, a := m.tasks[ev.GetTaskId()], m.agents[ev.GetAgentId()]
		if task.state != "offered" || task.offer != ev.GetOfferId() {
			fail("RONA of %s while %+v", task.id, task)
		}
		delete(a.offers, task.offer)
		a.rona = true
		task.state, task.agent, task.offer = "queued", "", ""
	case *distributionv1.TaskCanceled:
		task := m.tasks[ev.GetTaskId()]
		switch task.state {
		case "offered":
			delete(m.agents[task.agent].offers, task.offer)
		case "queued":
		default:
			fail("cancel of %s while %+v", task.id, task)
		}
		task.state = "canceled"
	case *distributionv1.TaskWrapUpStarted:
		task, a := m.tasks[ev.GetTaskId()], m.agents[ev.GetAgentId()]
		if (task.state != "accepted" && task.state != "parked") || task.agent != a.info.ID {
			fail("wrap-up of %s by %s while %+v", task.id, a.info.ID, task)
		}
		delete(a.active, task.id)
		a.wrapping[task.id] = true
		task.state = "wrapping"
	case *distributionv1.TaskWrapUpEnded:
		task := m.tasks[ev.GetTaskId()]
		if task.state != "wrapping" {
			fail("wrap-up of %s ended while %+v", task.id, task)
		}
	case *distributionv1.TaskCompleted:
		task, a := m.tasks[ev.GetTaskId()], m.agents[ev.GetAgentId()]
		if task.state != "accepted" && task.state != "parked" && task.state != "wrapping" {
			fail("completion of %s while %+v", task.id, task)
		}
		delete(a.active, task.id)
		delete(a.wrapping, task.id)
		task.state = "completed"
	case *distributionv1.TaskTransferred:
		task, a := m.tasks[ev.GetTaskId()], m.agents[ev.GetFromAgentId()]
		if task.state != "accepted" || task.agent != a.info.ID {
			fail("transfer of %s from %s while %+v", task.id, ev.GetFromAgentId(), task)
		}
		delete(a.active, task.id)
		task.declinedBy[a.info.ID] = true
		task.state, task.agent, task.offer = "queued", "", ""
		if ev.GetToServiceId() != "" {
			task.service = ev.GetToServiceId()
		} else {
			task.directTo = ev.GetToAgentId()
		}
	case *distributionv1.TaskReplyOverdue:
		task := m.tasks[ev.GetTaskId()]
		if (task.state != "accepted" && task.state != "parked") || task.agent != ev.GetAgentId() || task.replied || task.overdue || m.services[task.service].FirstReplyTimeout == 0 {
			fail("reply overdue of %s while %+v", task.id, task)
		}
		task.overdue = true
	case *distributionv1.TaskReprioritized:
		task := m.tasks[ev.GetTaskId()]
		if task.state != "queued" && task.state != "offered" {
			fail("reprioritized %s while %+v", task.id, task)
		}
		task.priority = ev.GetPriority()
	case *distributionv1.TaskParked:
		task := m.tasks[ev.GetTaskId()]
		if task.state != "accepted" || task.agent != ev.GetAgentId() {
			fail("park of %s while %+v", task.id, task)
		}
		// Whether it counts is the setting of the service it is in now.
		if want := m.services[task.service].ParkedCounts; ev.GetCountsTowardCapacity() != want {
			fail("park of %s in %s counts toward capacity: %v, want %v", task.id, task.service, ev.GetCountsTowardCapacity(), want)
		}
		task.state, task.parkCounts = "parked", ev.GetCountsTowardCapacity()
	case *distributionv1.TaskResumed:
		task := m.tasks[ev.GetTaskId()]
		if task.state != "parked" || task.agent != ev.GetAgentId() {
			fail("resume of %s while %+v", task.id, task)
		}
		task.state = "accepted"
	default:
		fail("unexpected event %T", ev)
	}
}

// taskStates are the engine's names of the model's states.
var taskStates = map[string]distributionv1.TaskState{
	"queued": distributionv1.TaskState_TASK_STATE_QUEUED, "offered": distributionv1.TaskState_TASK_STATE_OFFERED,
	"accepted": distributionv1.TaskState_TASK_STATE_ACCEPTED, "parked": distributionv1.TaskState_TASK_STATE_PARKED,
	"wrapping": distributionv1.TaskState_TASK_STATE_WRAPPING, "completed": distributionv1.TaskState_TASK_STATE_COMPLETED,
	"canceled": distributionv1.TaskState_TASK_STATE_CANCELED,
}

// check compares the engine with the model after a step.
func (m *model) check(step int, e *engine.Engine, all bool) {
	t := m.t
	t.Helper()
	ctx := context.Background()
	// Work-conserving: nothing waits while an agent could take it.
	waiting := map[string][]*mTask{}
	for _, task := range m.tasks {
		if task.state != "queued" {
			continue
		}
		waiting[task.service] = append(waiting[task.service], task)
		for _, a := range m.agents {
			if m.eligible(a, task) {
				t.Fatalf("step %d: task %s waits while %s could take it: %+v", step, task.id, a.info.ID, a)
			}
		}
	}
	// Positions: 1..n in priority, then arrival order. Checked for every
	// task when all is set, else for the first two, the last and every
	// 16th from an offset that moves with the step.
	for svc, tasks := range waiting {
		sort.Slice(tasks, func(i, j int) bool {
			if tasks[i].priority != tasks[j].priority {
				return tasks[i].priority > tasks[j].priority
			}
			return tasks[i].queuedAt.Before(tasks[j].queuedAt)
		})
		for i, task := range tasks {
			if !all && i >= 2 && i != len(tasks)-1 && (i+step)%16 != 0 {
				continue
			}
			p, err := e.QueuePosition(ctx, tenant, task.id)
			if err != nil {
				t.Fatal(err)
			}
			if p.GetPosition() != int32(i+1) || p.GetWaiting() != int32(len(tasks)) {
				for _, x := range tasks {
					g, _ := e.GetTask(ctx, tenant, x.id)
					t.Logf("%s model prio %d at %v; engine %v", x.id, x.priority, x.queuedAt, g)
				}
				t.Fatalf("step %d: %s position %d of %d, want %d of %d in %s", step, task.id, p.GetPosition(), p.GetWaiting(), i+1, len(tasks), svc)
			}
		}
	}
	// Tasks held by an agent: accepted, parked or in after-call work.
	for _, task := range m.tasks {
		if task.state != "accepted" && task.state != "parked" && task.state != "wrapping" {
			continue
		}
		if got, err := e.GetTask(ctx, tenant, task.id); err != nil || got.GetState() != taskStates[task.state] || got.GetAgentId() != task.agent {
			t.Fatalf("step %d: GetTask(%s) = %v, %v; the events say %+v", step, task.id, got, err, task)
		}
	}
	// Agents: the engine holds what the events say; capacity is kept.
	for _, a := range m.agents {
		st := e.State(tenant, a.info.ID)
		if len(st.GetOffers()) != len(a.offers) || int(st.GetActiveTasks()) != len(a.active) || len(st.GetWrappingTaskIds()) != len(a.wrapping) || st.GetRona() != a.rona {
			t.Fatalf("step %d: engine says %s has offers %d active %d wrapping %d rona %v; events say %+v", step, a.info.ID,
				len(st.GetOffers()), st.GetActiveTasks(), len(st.GetWrappingTaskIds()), st.GetRona(), a)
		}
	}
}

func TestRandomSequencesKeepTheRules(t *testing.T) {
	seeds := []uint64{1, 2, 3, 4, 5, 6, 7, 8}
	for _, seed := range seeds {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) { runSequence(t, seed, 1500) })
	}
}

// runSequence runs random steps against engines that hold the tenant as
// replicas do (over stores that behave as the production ones, see
// replica), killing them now and then for another to take over. Timers
// run only when a step says so (timers.run): the clock is the test's.
func runSequence(t *testing.T, seed uint64, steps int) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(seed, 99))
	w := newWorld()
	c := newClock()
	start := func() (*engine.Engine, *timers, int) {
		e, tm, loaded := replica(t, w, c)
		e.DeclineCooldown = 24 * time.Hour
		return e, tm, loaded
	}
	e, tm, _ := start()
	// A parked task counts toward capacity in one service, not in the other.
	acw := wrapped
	acw.ParkedCounts = true
	plain := engine.ServiceInfo{ID: "plain", Name: "Plain", RONATimeout: 2 * time.Minute, MaxParallelTasks: 1, FirstReplyTimeout: time.Minute}
	m := &model{t: t, agents: map[string]*mAgent{}, tasks: map[string]*mTask{},
		services: map[string]engine.ServiceInfo{"wrapped": acw, "plain": plain}}
	infos := []engine.AgentInfo{
		skilled(agentInfo("a1", 1, "wrapped", "plain"), "de"),
		skilled(agentInfo("a2", 2, "wrapped"), "fr", "de"),
		skilled(agentInfo("a3", 0, "plain"), "fr"),
		agentInfo("a4", 3, "wrapped", "plain"),
		skilled(agentInfo("a5", 0, "wrapped", "plain"), "de", "fr"),
	}
	for _, info := range infos {
		info.Skills = append([]string(nil), info.Skills...)
		m.agents[info.ID] = &mAgent{info: info, presence: distributionv1.Presence_PRESENCE_OFFLINE,
			offers: map[string]string{}, active: map[string]bool{}, wrapping: map[string]bool{}}
	}
	counts := map[string]int{}
	seen := 0
	checkAll := false // the next check looks at every waiting task's position
	sync := func(step int) {
		t.Helper()
		news := w.entriesSince(seen)
		for _, en := range news {
			if en.event != nil {
				m.apply(step, en.event)
			}
		}
		seen += len(news)
		m.check(step, e, checkAll)
		checkAll = false
	}
	// pickIn picks one of the states listed (a state listed twice twice as
	// often) that some task ok accepts is in, then one of those tasks.
	pickIn := func(states []string, ok func(*mTask) bool) *mTask {
		in := map[string][]string{}
		for id, task := range m.tasks {
			if slices.Contains(states, task.state) && (ok == nil || ok(task)) {
				in[task.state] = append(in[task.state], id)
			}
		}
		var listed []string
		for _, s := range states {
			if len(in[s]) > 0 {
				listed = append(listed, s)
			}
		}
		if len(listed) == 0 {
			return nil
		}
		ids := in[listed[rng.IntN(len(listed))]]
		slices.Sort(ids)
		return m.tasks[ids[rng.IntN(len(ids))]]
	}
	pick := func(states ...string) *mTask { return pickIn(states, nil) }
	stillOpen := func() int {
		n := 0
		for _, task := range m.tasks {
			if task.state != "completed" && task.state != "canceled" {
				n++
			}
		}
		return n
	}
	// takeOver starts another replica over the stores, after the holder
	// stopped or died and the tenant was held by nobody for a while; it
	// loads every open task, closed ones whose events were not all out
	// included (each is still open in the model: its events are not out).
	takeOver := func(step int) {
		t.Helper()
		e.Close()
		downtime := time.Duration(rng.IntN(30)) * time.Second
		if rng.IntN(5) == 0 {
			downtime = time.Duration(60+rng.IntN(60)) * time.Minute // everything runs out
		}
		c.Advance(downtime)
		want := stillOpen()
		var loaded int
		e, tm, loaded = start()
		if loaded != want {
			t.Fatalf("step %d: the new holder loaded %d tasks; %d are open", step, loaded, want)
		}
		checkAll = true
		// Decline cooldowns were in the old holder's memory only.
		for _, task := range m.tasks {
			clear(task.declinedBy)
			if task.state == "offered" {
				counts["offers across a take-over"]++
			}
		}
		// The timers that ran out while nobody held the tenant run now:
		// offers time out (TaskOfferTimedOut), first replies are overdue,
		// after-call work ends.
		before := w.size()
		counts["timers after a take-over"] += tm.run()
		for _, en := range w.entriesSince(before) {
			if _, ok := en.event.(*distributionv1.TaskOfferTimedOut); ok {
				counts["offers run out during a take-over"]++
			}
		}
	}
	n := 0
	for step := range steps {
		c.Advance(time.Duration(rng.IntN(5000)) * time.Millisecond)
		op := rng.IntN(111)
		switch {
		case op < 25: // a task arrives
			n++
			svc := []engine.ServiceInfo{acw, plain}[rng.IntN(2)]
			task := newTask(fmt.Sprintf("t%04d", n), svc)
			task.Priority = int32(rng.IntN(3))
			task.RequiredSkills = [][]string{nil, nil, {"de"}, {"fr"}, {"de", "fr"}}[rng.IntN(5)]
			m.tasks[task.ID] = &mTask{id: task.ID, service: svc.ID, session: task.SessionID, state: "new", priority: task.Priority,
				skills: task.RequiredSkills, declinedBy: map[string]bool{}}
			mustEnqueue(t, e, task)
			counts["arrive"]++
		case op < 40: // presence
			a := m.agents[infos[rng.IntN(len(infos))].ID]
			p := []distributionv1.Presence{distributionv1.Presence_PRESENCE_AVAILABLE, distributionv1.Presence_PRESENCE_AVAILABLE,
				distributionv1.Presence_PRESENCE_AWAY, distributionv1.Presence_PRESENCE_OFFLINE}[rng.IntN(4)]
			if _, err := e.SetPresence(ctx, tenant, a.info, p); err != nil {
				t.Fatal(err)
			}
			a.presence = p
			if p == distributionv1.Presence_PRESENCE_AVAILABLE {
				a.rona = false
			}
			counts["presence"]++
		case op < 55: // an agent answers an offer
			task := pick("offered")
			if task == nil {
				continue
			}
			switch r := rng.IntN(10); {
			case r < 6:
				if _, err := e.Accept(ctx, tenant, task.agent, task.offer); err != nil {
					t.Fatalf("step %d: Accept: %v", step, err)
				}
				counts["accept"]++
			case r < 8:
				if err := e.Decline(ctx, tenant, task.agent, task.offer); err != nil {
					t.Fatalf("step %d: Decline: %v", step, err)
				}
				counts["decline"]++
			default:
				engine.FireRONA(e, tenant, task.offer)
				counts["rona"]++
			}
		case op < 70: // a session ends
			task := pick("queued", "offered", "accepted", "accepted", "accepted", "wrapping")
			if task == nil {
				continue
			}
			if err := e.EndSession(ctx, tenant, task.session, "ended"); err != nil {
				t.Fatal(err)
			}
			counts["end "+task.state]++
		case op < 80: // after-call work ends
			task := pick("wrapping")
			if task == nil {
				continue
			}
			if rng.IntN(2) == 0 {
				engine.ExpireWrapUp(e, tenant, task.id)
				counts["wrap-up runs out"]++
			} else {
				if _, err := e.SubmitWrapUp(ctx, tenant, task.agent, task.id, "", []string{"complaint"}, nil, []string{"vip"}); err != nil {
					t.Fatalf("step %d: SubmitWrapUp: %v", step, err)
				}
				counts["wrap-up submitted"]++
			}
		case op < 85: // bad input changes nothing
			task := pick("accepted", "wrapping", "completed")
			if task == nil {
				continue
			}
			if _, err := e.SubmitWrapUp(ctx, tenant, task.agent, task.id, "", []string{"not-a-code"}, nil, nil); err == nil {
				t.Fatalf("step %d: SubmitWrapUp with a bad code succeeded", step)
			}
			if _, err := e.CancelTask(ctx, tenant, task.id, ""); !errors.Is(err, engine.ErrTaskState) {
				t.Fatalf("step %d: CancelTask of a %s task: %v", step, task.state, err)
			}
			counts["bad input"]++
		case op < 88: // a workflow cancels
			task := pick("queued", "offered")
			if task == nil {
				continue
			}
			if _, err := e.CancelTask(ctx, tenant, task.id, "queue timeout"); err != nil {
				t.Fatal(err)
			}
			counts["cancel"]++
		case op < 93: // a supervisor reprioritizes
			task := pick("queued", "offered")
			if task == nil {
				continue
			}
			if _, err := e.Reprioritize(ctx, tenant, task.id, int32(rng.IntN(5))); err != nil {
				t.Fatal(err)
			}
			counts["reprioritize"]++
		case op < 100: // transfers and first replies
			task := pick("accepted")
			if task == nil {
				continue
			}
			switch r := rng.IntN(10); {
			case r < 4:
				svc := []engine.ServiceInfo{acw, plain}[rng.IntN(2)]
				by := []string{task.agent, ""}[rng.IntN(2)]
				if _, err := e.Transfer(ctx, tenant, engine.Transfer{TaskID: task.id, By: "x", ByAgent: by, ToService: &svc, Note: "n"}); err != nil {
					t.Fatalf("step %d: Transfer to %s: %v", step, svc.ID, err)
				}
				counts["transfer to service"]++
			case r < 7:
				to := m.agents[infos[rng.IntN(len(infos))].ID]
				var ready []*mAgent
				for _, info := range infos {
					if a := m.agents[info.ID]; a.info.ID != task.agent && m.directReady(a, task) {
						ready = append(ready, a)
					}
				}
				if len(ready) > 0 && rng.IntN(3) > 0 {
					to = ready[rng.IntN(len(ready))]
				}
				_, err := e.Transfer(ctx, tenant, engine.Transfer{TaskID: task.id, By: task.agent, ByAgent: task.agent, ToAgent: to.info.ID})
				switch {
				case to.info.ID == task.agent:
					if !errors.Is(err, engine.ErrInvalid) {
						t.Fatalf("step %d: Transfer to its own agent: %v", step, err)
					}
				case m.directReady(to, task):
					if err != nil {
						t.Fatalf("step %d: Transfer to %s: %v", step, to.info.ID, err)
					}
					counts["transfer to agent"]++
				default:
					if !errors.Is(err, engine.ErrAgentBusy) {
						t.Fatalf("step %d: Transfer to %s, who cannot take it: %v", step, to.info.ID, err)
					}
					counts["transfer refused"]++
				}
			case r < 9:
				if err := e.AgentReplied(ctx, tenant, task.session, task.agent); err != nil {
					t.Fatal(err)
				}
				task.replied = true
				counts["reply"]++
			default:
				want := task.overdue || (!task.replied && m.services[task.service].FirstReplyTimeout > 0)
				engine.FireReplyTimer(e, tenant, task.id)
				sync(step)
				if want != task.overdue {
					t.Fatalf("step %d: after the first-reply timer of %+v, overdue = %v, want %v", step, task, task.overdue, want)
				}
				counts["reply timer"]++
			}
		case op < 108: // the agent holding a task parks or resumes it
			task, park := pick("accepted", "parked"), false
			if task != nil {
				park = task.state == "accepted"
			}
			if rng.IntN(3) == 0 { // or what may not be done
				task = pick("queued", "offered", "accepted", "parked", "wrapping", "completed", "canceled")
				if task != nil {
					park = task.state == "parked" || (task.state != "accepted" && rng.IntN(2) == 0)
				}
			}
			if task == nil {
				continue
			}
			do, what := e.Resume, "resume"
			if park {
				do, what = e.Park, "park"
			}
			before := w.size()
			_, err := do(ctx, tenant, task.id, task.agent, task.agent)
			switch {
			case park && task.state == "accepted", !park && task.state == "parked":
				if err != nil {
					t.Fatalf("step %d: %s of %+v: %v", step, what, task, err)
				}
				counts[what]++
			default: // parking what is not accepted, resuming what is not parked: refused, nothing changes
				if !errors.Is(err, engine.ErrTaskState) {
					t.Fatalf("step %d: %s of a %s task: %v, want %v", step, what, task.state, err, engine.ErrTaskState)
				}
				if after := w.size(); after != before {
					t.Fatalf("step %d: a refused %s of a %s task wrote %v", step, what, task.state, w.entriesSince(before))
				}
				counts["bad "+what]++
			}
		case op < 110: // the replica holding the tenant stops or dies; another takes the tenant over
			switch r := rng.IntN(4); {
			case r == 0: // a hand-over: the holder lets the tenant go first
				e.Release([]int{0})
				if _, err := e.SetPresence(ctx, tenant, infos[0], distributionv1.Presence_PRESENCE_AVAILABLE); !errors.Is(err, engine.ErrNotOwner) {
					t.Fatalf("step %d: SetPresence on a replica that let the tenant go: %v", step, err)
				}
				takeOver(step)
				counts["hand-over"]++
			case r == 1: // it dies between two steps
				takeOver(step)
				counts["crash"]++
			default: // it dies while closing a task: stored closed, its last event not out
				task := pickIn([]string{"queued", "offered", "accepted", "parked", "wrapping"}, func(task *mTask) bool {
					// An accepted task's end closes it unless its service has after-call work.
					return (task.state != "accepted" && task.state != "parked") || m.services[task.service].AfterCallWork == 0
				})
				if task == nil {
					continue
				}
				kind := subjects.KindTaskCompleted
				if task.state == "queued" || task.state == "offered" {
					kind = subjects.KindTaskCanceled
				}
				w.failNextEmit(kind)
				var err error
				if task.state == "wrapping" {
					engine.ExpireWrapUp(e, tenant, task.id) // TaskWrapUpEnded goes out, TaskCompleted does not
				} else {
					err = e.EndSession(ctx, tenant, task.session, "ended")
				}
				w.mu.Lock()
				tried := w.failEmit[kind] == 0
				w.failEmit[kind] = 0
				w.mu.Unlock()
				if !tried || (task.state != "wrapping" && err == nil) {
					t.Fatalf("step %d: closing %+v did not fail on publishing %s: %v", step, task, kind, err)
				}
				takeOver(step)
				if task.state != "wrapping" {
					// The end, redelivered to the new holder: its events are out already.
					before := w.size()
					if err := e.EndSession(ctx, tenant, task.session, "ended"); err != nil {
						t.Fatalf("step %d: the redelivered end of %s: %v", step, task.id, err)
					}
					for _, en := range w.entriesSince(before) {
						if en.event != nil {
							t.Fatalf("step %d: the redelivered end of %s published %s", step, task.id, describe(en.event))
						}
					}
				}
				counts["crash while closing"]++
				counts["crash while closing "+task.state]++
			}
		default: // time passes: the timers due run (RONA, first reply, after-call work)
			counts["timers run"] += tm.run()
			counts["time passes"]++
		}
		sync(step)
	}
	// Every session ends and every wrap-up runs out: every task ends.
	checkAll = true
	for _, task := range m.tasks {
		if err := e.EndSession(ctx, tenant, task.session, "stale"); err != nil {
			t.Fatal(err)
		}
	}
	sync(steps)
	for _, task := range m.tasks {
		if task.state == "wrapping" {
			engine.ExpireWrapUp(e, tenant, task.id)
		}
	}
	sync(steps + 1)
	for _, task := range m.tasks {
		if task.state != "completed" && task.state != "canceled" {
			t.Errorf("task %s is %s after every session ended", task.id, task.state)
		}
		got, err := e.GetTask(ctx, tenant, task.id)
		if err != nil || got.GetState() != taskStates[task.state] {
			t.Errorf("GetTask(%s) = %v, %v; the events say %s", task.id, got, err, task.state)
		}
	}
	// Nothing is left for a next holder.
	if _, _, loaded := replica(t, w, c); loaded != 0 || w.openTasks.len() != 0 {
		t.Errorf("after every task ended, a new holder loads %d tasks (%d in the bucket), want none", loaded, w.openTasks.len())
	}
	t.Logf("operations: %v", counts)
	for _, op := range []string{"arrive", "accept", "decline", "rona", "end accepted", "end queued", "wrap-up submitted", "wrap-up runs out", "cancel", "reprioritize",
		"transfer to service", "transfer to agent", "transfer refused", "reply", "reply timer",
		"park", "resume", "bad park", "bad resume", "hand-over", "crash", "crash while closing", "time passes", "timers after a take-over", "offers across a take-over"} {
		if counts[op] == 0 {
			t.Errorf("the sequence never did %q: %v", op, counts)
		}
	}
}
