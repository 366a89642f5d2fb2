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
	state                string // queued, offered, accepted, wrapping, completed, canceled
	agent, offer         string
	priority             int32
	skills               []string
	queuedAt             time.Time
	declinedBy           map[string]bool
	// directTo: transferred to this agent by name, the offer to follow.
	directTo         string
	replied, overdue bool
}

// directReady: an agent may be offered a task by name (a transfer).
func (m *model) directReady(a *mAgent, task *mTask) bool {
	return a.presence == distributionv1.Presence_PRESENCE_AVAILABLE && a.info.Eligible && !a.rona && len(a.wrapping) == 0 &&
		len(a.offers)+len(a.active) < m.limit(a, task.service)
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
// cooldown is an hour here, so a decline excludes for the whole run).
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
	return len(a.offers)+len(a.active) < m.limit(a, task.service)
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
		if task.state != "accepted" || task.agent != a.info.ID {
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
		if task.state != "accepted" && task.state != "wrapping" {
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
		if task.state != "accepted" || task.agent != ev.GetAgentId() || task.replied || task.overdue || m.services[task.service].FirstReplyTimeout == 0 {
			fail("reply overdue of %s while %+v", task.id, task)
		}
		task.overdue = true
	case *distributionv1.TaskReprioritized:
		task := m.tasks[ev.GetTaskId()]
		if task.state != "queued" && task.state != "offered" {
			fail("reprioritized %s while %+v", task.id, task)
		}
		task.priority = ev.GetPriority()
	default:
		fail("unexpected event %T", ev)
	}
}

// check compares the engine with the model after a step.
func (m *model) check(step int, e *engine.Engine) {
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
	// Positions: 1..n in priority, then arrival order.
	for svc, tasks := range waiting {
		sort.Slice(tasks, func(i, j int) bool {
			if tasks[i].priority != tasks[j].priority {
				return tasks[i].priority > tasks[j].priority
			}
			return tasks[i].queuedAt.Before(tasks[j].queuedAt)
		})
		for i, task := range tasks {
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

func runSequence(t *testing.T, seed uint64, steps int) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(seed, 99))
	w := newWorld()
	e, c := newEngine(t, w)
	e.DeclineCooldown = 24 * time.Hour
	acw := wrapped
	plain := engine.ServiceInfo{ID: "plain", Name: "Plain", RONATimeout: time.Hour, MaxParallelTasks: 1, FirstReplyTimeout: time.Minute}
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
	seen := 0
	sync := func(step int) {
		t.Helper()
		for _, en := range w.entries()[seen:] {
			if en.event != nil {
				m.apply(step, en.event)
			}
		}
		seen = len(w.entries())
		m.check(step, e)
	}
	pick := func(states ...string) *mTask {
		var ids []string
		for id, task := range m.tasks {
			if slices.Contains(states, task.state) {
				ids = append(ids, id)
			}
		}
		if len(ids) == 0 {
			return nil
		}
		slices.Sort(ids)
		return m.tasks[ids[rng.IntN(len(ids))]]
	}
	counts := map[string]int{}
	n := 0
	for step := range steps {
		c.Advance(time.Duration(rng.IntN(5000)) * time.Millisecond)
		op := rng.IntN(100)
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
		default: // transfers and first replies
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
		}
		sync(step)
	}
	// Every session ends and every wrap-up runs out: every task ends.
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
		if err != nil || got.GetState() != map[string]distributionv1.TaskState{"completed": distributionv1.TaskState_TASK_STATE_COMPLETED, "canceled": distributionv1.TaskState_TASK_STATE_CANCELED}[task.state] {
			t.Errorf("GetTask(%s) = %v, %v; the events say %s", task.id, got, err, task.state)
		}
	}
	t.Logf("operations: %v", counts)
	for _, op := range []string{"arrive", "accept", "decline", "rona", "end accepted", "end queued", "wrap-up submitted", "wrap-up runs out", "cancel", "reprioritize",
		"transfer to service", "transfer to agent", "transfer refused", "reply", "reply timer"} {
		if counts[op] == 0 {
			t.Errorf("the sequence never did %q: %v", op, counts)
		}
	}
}
