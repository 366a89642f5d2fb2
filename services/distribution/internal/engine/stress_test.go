package engine_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	distributionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/distribution/v1"

	"github.com/switchboard-cc/switchboard/services/distribution/internal/engine"
)

// TestInvariantsUnderConcurrency lets agents accept, decline and ignore
// offers (RONA timers of a few milliseconds race their answers), end
// sessions, come back after RONA, while tasks arrive and customers leave,
// and a ticker re-dispatches. The engine publishes and saves under its lock,
// so the world's log is a linearization of its decisions; replaying it
// checks the invariants at every step:
//
//   - a task is never offered while already on offer, accepted or ended;
//   - an agent never holds more than its capacity in offers plus active tasks;
//   - an agent flagged by RONA gets no offer until it sets itself available
//     (a SetPresence call overlapping the RONA may take effect after it);
//   - no task of a session whose end has been processed is queued or offered;
//   - every offer ends at most once, and Accept's answer matches the log.
func TestInvariantsUnderConcurrency(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	ctx := context.Background()
	w := newWorld()
	e := engine.New(w.pub(), w.store(), slog.New(slog.DiscardHandler))
	e.DeclineCooldown = 2 * time.Millisecond
	defer e.Close()

	services := map[string]engine.ServiceInfo{
		"quick": {ID: "quick", Name: "Quick", RONATimeout: 3 * time.Millisecond, MaxParallelTasks: 2},
		"mid":   {ID: "mid", Name: "Mid", RONATimeout: 10 * time.Millisecond, MaxParallelTasks: 3},
		"slow":  {ID: "slow", Name: "Slow", RONATimeout: 40 * time.Millisecond, MaxParallelTasks: 1},
	}
	serviceIDs := []string{"quick", "mid", "slow"}
	agents := []engine.AgentInfo{
		agentInfo("a1", 1, "quick", "slow"),
		agentInfo("a2", 2, "quick", "mid"),
		agentInfo("a3", 0, "slow", "mid"),
		agentInfo("a4", 3, "quick", "slow", "mid"),
		agentInfo("a5", 0, "quick"),
	}
	w.notify = map[string]chan entry{}
	for _, a := range agents {
		w.notify[a.ID] = make(chan entry, 1<<14)
	}

	// What agents were told by Accept, per offer.
	var (
		resMu   sync.Mutex
		answers = map[string]string{} // offer id -> "accepted" or "not open"
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i, a := range agents {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(i)))
			var active []string // sessions
			tick := time.NewTicker(time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
					if len(active) > 0 && rng.IntN(4) == 0 {
						k := rng.IntN(len(active))
						s := active[k]
						active = append(active[:k], active[k+1:]...)
						if err := e.EndSession(ctx, tenant, s, "agent terminated"); err != nil {
							t.Errorf("EndSession(%s): %v", s, err)
						}
						w.marker("end-returned", "", s)
					}
				case en := <-w.notify[a.ID]:
					switch ev := en.event.(type) {
					case *distributionv1.TaskOfferTimedOut:
						w.marker("presence-start", a.ID, "")
						if _, err := e.SetPresence(ctx, tenant, a, distributionv1.Presence_PRESENCE_AVAILABLE); err != nil {
							t.Errorf("SetPresence(%s): %v", a.ID, err)
						}
						w.marker("presence-end", a.ID, "")
					case *distributionv1.TaskOffered:
						switch r := rng.IntN(10); {
						case r < 6:
							_, err := e.Accept(ctx, tenant, a.ID, ev.GetOfferId())
							resMu.Lock()
							switch {
							case err == nil:
								answers[ev.GetOfferId()] = "accepted"
								active = append(active, ev.GetSessionId())
							case errors.Is(err, engine.ErrOfferNotOpen):
								answers[ev.GetOfferId()] = "not open"
							default:
								t.Errorf("Accept(%s): %v", ev.GetOfferId(), err)
							}
							resMu.Unlock()
						case r < 8:
							if err := e.Decline(ctx, tenant, a.ID, ev.GetOfferId()); err != nil && !errors.Is(err, engine.ErrOfferNotOpen) {
								t.Errorf("Decline(%s): %v", ev.GetOfferId(), err)
							}
						default: // let it time out
						}
					}
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				e.Tick(ctx)
			}
		}
	}()
	for _, a := range agents {
		available(t, e, a)
	}

	// Tasks arrive; some customers leave while queued, some sessions end
	// before their task request is processed.
	const nTasks = 300
	rng := rand.New(rand.NewPCG(seed, 1000))
	tombstoned := map[string]bool{}
	var sessions []string
	for i := range nTasks {
		svc := services[serviceIDs[rng.IntN(len(serviceIDs))]]
		task := newTask(fmt.Sprintf("t%03d", i), svc)
		task.Priority = int32(rng.IntN(3))
		if i%13 == 0 {
			if err := e.EndSession(ctx, tenant, task.SessionID, "customer left"); err != nil {
				t.Fatal(err)
			}
			tombstoned[task.SessionID] = true
		}
		mustEnqueue(t, e, task)
		sessions = append(sessions, task.SessionID)
		if i%7 == 0 {
			s := sessions[rng.IntN(len(sessions))]
			if err := e.EndSession(ctx, tenant, s, "customer left"); err != nil {
				t.Fatal(err)
			}
			w.marker("end-returned", "", s)
		}
	}
	// Let the agents work through the queue, then end every session.
	waitFor(t, "every task accepted or canceled", func() bool {
		done := map[string]bool{}
		for _, en := range w.entries() {
			switch ev := en.event.(type) {
			case *distributionv1.TaskAccepted:
				done[ev.GetTaskId()] = true
			case *distributionv1.TaskCanceled:
				done[ev.GetTaskId()] = true
			}
		}
		return len(done) == nTasks-len(tombstoned)
	})
	for _, s := range sessions {
		if err := e.EndSession(ctx, tenant, s, "stale"); err != nil {
			t.Fatal(err)
		}
		w.marker("end-returned", "", s)
	}
	close(stop)
	wg.Wait()
	e.Close()

	limit := func(a engine.AgentInfo, svc string) int {
		switch {
		case a.Capacity > 0:
			return a.Capacity
		case services[svc].MaxParallelTasks > 0:
			return services[svc].MaxParallelTasks
		}
		return 1
	}
	byID := map[string]engine.AgentInfo{}
	for _, a := range agents {
		byID[a.ID] = a
	}
	type taskState struct {
		status, offer, agent, session string
	}
	type agentState struct {
		offers, active map[string]bool
		flagged        bool
		inflight       int // SetPresence calls started, not returned
	}
	tasks := map[string]*taskState{}
	as := map[string]*agentState{}
	for _, a := range agents {
		as[a.ID] = &agentState{offers: map[string]bool{}, active: map[string]bool{}}
	}
	endReturned := map[string]bool{}
	terminal := map[string]string{} // offer id -> how it ended
	errorf := func(i int, format string, args ...any) {
		t.Helper()
		t.Errorf("log entry %d: %s", i, fmt.Sprintf(format, args...))
	}
	closeOffer := func(i int, taskID, offerID, agentID, how string) *taskState {
		t.Helper()
		ts := tasks[taskID]
		if ts == nil || ts.status != "offered" || ts.offer != offerID || ts.agent != agentID {
			errorf(i, "%s of offer %s (task %s, agent %s) that is not open: %+v", how, offerID, taskID, agentID, ts)
			return &taskState{}
		}
		if prev, ok := terminal[offerID]; ok {
			errorf(i, "offer %s ended twice: %s, then %s", offerID, prev, how)
		}
		terminal[offerID] = how
		delete(as[agentID].offers, offerID)
		ts.offer, ts.agent = "", ""
		return ts
	}
	log := w.entries()
	for i, en := range log {
		switch en.op {
		case "presence-start":
			as[en.agent].flagged = false
			as[en.agent].inflight++
		case "presence-end":
			as[en.agent].inflight--
		case "end-returned":
			endReturned[en.sessionID] = true
		case "save":
			if en.state.Closed() {
				if ts := tasks[en.taskID]; ts != nil && ts.status == "accepted" {
					delete(as[ts.agent].active, en.taskID)
					ts.status = "ended"
				}
			}
		}
		switch ev := en.event.(type) {
		case *distributionv1.TaskQueued:
			if tasks[ev.GetTaskId()] != nil {
				errorf(i, "task %s queued twice", ev.GetTaskId())
			}
			if tombstoned[ev.GetSessionId()] || endReturned[ev.GetSessionId()] {
				errorf(i, "task %s of ended session %s queued", ev.GetTaskId(), ev.GetSessionId())
			}
			tasks[ev.GetTaskId()] = &taskState{status: "queued", session: ev.GetSessionId()}
		case *distributionv1.TaskOffered:
			ts := tasks[ev.GetTaskId()]
			a := as[ev.GetAgentId()]
			switch {
			case ts == nil || ts.status != "queued":
				errorf(i, "task %s offered to %s while %+v", ev.GetTaskId(), ev.GetAgentId(), ts)
				continue
			case endReturned[ts.session]:
				errorf(i, "task %s offered after its session %s ended", ev.GetTaskId(), ts.session)
			case a.flagged:
				errorf(i, "task %s offered to %s, who is flagged by RONA", ev.GetTaskId(), ev.GetAgentId())

			}
			if n, max := len(a.offers)+len(a.active)+1, limit(byID[ev.GetAgentId()], ev.GetServiceId()); n > max {
				errorf(i, "%s would hold %d tasks, capacity %d", ev.GetAgentId(), n, max)
			}
			ts.status, ts.offer, ts.agent = "offered", ev.GetOfferId(), ev.GetAgentId()
			a.offers[ev.GetOfferId()] = true
		case *distributionv1.TaskAccepted:
			ts := closeOffer(i, ev.GetTaskId(), ev.GetOfferId(), ev.GetAgentId(), "accepted")
			ts.status, ts.agent = "accepted", ev.GetAgentId()
			as[ev.GetAgentId()].active[ev.GetTaskId()] = true
		case *distributionv1.TaskDeclined:
			closeOffer(i, ev.GetTaskId(), ev.GetOfferId(), ev.GetAgentId(), "declined").status = "queued"
		case *distributionv1.TaskOfferTimedOut:
			closeOffer(i, ev.GetTaskId(), ev.GetOfferId(), ev.GetAgentId(), "rona").status = "queued"
			// A SetPresence in flight may take effect after the RONA: only
			// flag the agent when none is.
			as[ev.GetAgentId()].flagged = as[ev.GetAgentId()].inflight == 0
		case *distributionv1.TaskCanceled:
			ts := tasks[ev.GetTaskId()]
			if ev.GetOfferId() != "" {
				ts = closeOffer(i, ev.GetTaskId(), ev.GetOfferId(), ev.GetAgentId(), "canceled")
			} else if ts == nil || ts.status != "queued" {
				errorf(i, "task %s canceled while %+v", ev.GetTaskId(), ts)
				continue
			}
			ts.status = "ended"
		}
	}

	// Everything ended: nobody holds anything, in the log or in the engine.
	for id, ts := range tasks {
		if ts.status != "ended" {
			t.Errorf("task %s is %s after every session ended", id, ts.status)
		}
	}
	for _, a := range agents {
		st := e.State(tenant, a.ID)
		if len(as[a.ID].offers) != 0 || len(as[a.ID].active) != 0 || len(st.GetOffers()) != 0 || st.GetActiveTasks() != 0 {
			t.Errorf("%s at the end: log says offers %v active %v; engine says offers %d active %d; want none",
				a.ID, as[a.ID].offers, as[a.ID].active, len(st.GetOffers()), st.GetActiveTasks())
		}
	}
	// Accept's answers agree with the log.
	resMu.Lock()
	defer resMu.Unlock()
	counts := map[string]int{}
	for offer, answer := range answers {
		got := terminal[offer]
		counts[got]++
		if (answer == "accepted") != (got == "accepted") {
			t.Errorf("Accept of %s answered %q, but the offer ended as %q", offer, answer, got)
		}
	}
	for _, how := range terminal {
		counts["all "+how]++
	}
	t.Logf("offers ended: %v; %d log entries", counts, len(log))
	if counts["all accepted"] == 0 || counts["all declined"] == 0 || counts["all rona"] == 0 {
		t.Errorf("the run did not exercise every outcome: %v", counts)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.conflicts) > 0 {
		t.Errorf("different events published under one msg id: %q", w.conflicts)
	}
}
