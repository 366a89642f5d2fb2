package engine_test

import (
	"context"
	"sync"
	"testing"
	"time"

	distributionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/distribution/v1"
	messagingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/messaging/v1"

	"github.com/switchboard-cc/switchboard/services/distribution/internal/engine"
)

type recorded struct {
	mu   sync.Mutex
	last map[string]string // customer address -> agent
}

func (r *recorded) Record(_ string, conv *messagingv1.ConversationRef, agentID string, _ time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.last[conv.GetCustomerAddress()] = agentID
}

func preferring(id string, svc engine.ServiceInfo, agent string) *engine.Task {
	task := newTask(id, svc)
	task.PreferredAgent = agent
	return task
}

func TestPreferredAgent(t *testing.T) {
	svc := support // capacity 3
	svc.PreferredAgentWithin, svc.PreferredAgentWait = 7*24*time.Hour, 30*time.Second
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, w *world, e *engine.Engine)
		want  []string
	}{
		{"longest idle is not preferred: the preferred agent gets it", func(t *testing.T, w *world, e *engine.Engine) {}, []string{"queued t1 pos=1", "offered t1 to bob (preferred)"}},
		{"preferred agent offline: falls through at once", func(t *testing.T, w *world, e *engine.Engine) {
			if _, err := e.SetPresence(context.Background(), tenant, agentInfo("bob", 0, "support"), distributionv1.Presence_PRESENCE_OFFLINE); err != nil {
				t.Fatal(err)
			}
		}, []string{"queued t1 pos=1", "offered t1 to alice"}},
		{"preferred agent at capacity: falls through at once", func(t *testing.T, w *world, e *engine.Engine) {
			full := support
			full.MaxParallelTasks = 1
			available(t, e, agentInfo("bob", 1, "support"))
			mustEnqueue(t, e, preferring("t0", full, "bob"))
		}, []string{"queued t1 pos=1", "offered t1 to alice"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld()
			e, _ := newEngine(t, w)
			available(t, e, agentInfo("alice", 0, "support"), agentInfo("bob", 0, "support")) // alice idle longest
			tc.setup(t, w, e)
			n := len(w.events())
			mustEnqueue(t, e, preferring("t1", svc, "bob"))
			checkEvents(t, w, n, tc.want...)
		})
	}
}

func TestPreferredAgentWaitsThroughAfterCallWorkThenFallsThrough(t *testing.T) {
	ctx := context.Background()
	w := newWorld()
	e, c := newEngine(t, w)
	svc := support
	svc.AfterCallWork = time.Hour
	svc.PreferredAgentWithin, svc.PreferredAgentWait = time.Hour, 30*time.Second
	available(t, e, agentInfo("bob", 0, "support"))
	accepted(t, w, e, newTask("t0", svc), "bob")
	if err := e.EndSession(ctx, tenant, "ss_t0", "done"); err != nil {
		t.Fatal(err)
	}
	available(t, e, agentInfo("alice", 0, "support"))
	// bob is wrapping up: the task waits for him, not offered to alice.
	n := len(w.events())
	mustEnqueue(t, e, preferring("t1", svc, "bob"))
	checkEvents(t, w, n, "queued t1 pos=1")
	if got, _ := e.GetTask(ctx, tenant, "t1"); got.GetPreferredAgentId() != "bob" {
		t.Errorf("t1 = %v, want waiting for bob", got)
	}
	// The wait ends: anyone may take it.
	c.Advance(31 * time.Second)
	n = len(w.events())
	engine.Redispatch(e, tenant)
	checkEvents(t, w, n, "offered t1 to alice")
}

func TestPreferredAgentDeclineFallsThrough(t *testing.T) {
	ctx := context.Background()
	w := newWorld()
	e, _ := newEngine(t, w)
	svc := support
	svc.PreferredAgentWithin = time.Hour // default wait
	available(t, e, agentInfo("alice", 0, "support"), agentInfo("bob", 0, "support"))
	mustEnqueue(t, e, preferring("t1", svc, "bob"))
	o := w.lastOffer(t, "t1")
	if !o.GetPreferred() || o.GetAgentId() != "bob" {
		t.Fatalf("offer = %v, want preferred to bob", o)
	}
	n := len(w.events())
	if err := e.Decline(ctx, tenant, "bob", o.GetOfferId()); err != nil {
		t.Fatal(err)
	}
	checkEvents(t, w, n, "declined t1 by bob", "offered t1 to alice")
}

func TestLastAgentRecorded(t *testing.T) {
	ctx := context.Background()
	w := newWorld()
	e, _ := newEngine(t, w)
	r := &recorded{last: map[string]string{}}
	e.SetLastAgents(r)
	available(t, e, agentInfo("alice", 0, "sales"))
	task := newTask("t1", sales)
	accepted(t, w, e, task, "alice")
	if got := r.last[task.Conversation.GetCustomerAddress()]; got != "alice" {
		t.Errorf("last agent after accept = %q, want alice", got)
	}
	if err := e.EndSession(ctx, tenant, "ss_t1", "done"); err != nil {
		t.Fatal(err)
	}
}

func TestOverflowRelaxesSkills(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		keep []string
		want []string
	}{
		{"all dropped", nil, []string{"overflowed t1 [french legal]->[]", "offered t1 to alice (overflowed)"}},
		{"kept subset", []string{"legal"}, []string{"overflowed t1 [french legal]->[legal]", "offered t1 to alice (overflowed)"}},
		{"kept subset nobody has", []string{"french"}, []string{"overflowed t1 [french legal]->[french]"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld()
			e, _ := newEngine(t, w)
			svc := support
			svc.OverflowAfter, svc.OverflowSkills = 2*time.Minute, tc.keep
			a := agentInfo("alice", 0, "support")
			a.Skills = []string{"legal"}
			available(t, e, a)
			task := newTask("t1", svc)
			task.RequiredSkills = []string{"legal", "french"}
			mustEnqueue(t, e, task) // nobody speaks French: waits
			n := len(w.events())
			engine.FireOverflow(e, tenant, "t1")
			engine.FireOverflow(e, tenant, "t1") // once
			checkEvents(t, w, n, tc.want...)
			got, _ := e.GetTask(ctx, tenant, "t1")
			if !got.GetOverflowed() {
				t.Errorf("t1 = %v, want overflowed", got)
			}
			if saved := w.saved[tenant+"/t1"]; !saved.Overflowed {
				t.Error("overflow not saved")
			}
		})
	}
}
