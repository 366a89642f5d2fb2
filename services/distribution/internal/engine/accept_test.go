package engine_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	distributionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/distribution/v1"

	"github.com/switchboard-cc/switchboard/services/distribution/internal/engine"
)

// Accepts arriving together are committed together: every agent accepting
// its offer, each several times at once (a double click, a retry racing
// its first try), gets its task; an agent accepting another's offer is
// refused; one save that fails fails only its own accept, which a retry
// then completes; each task is accepted once, by its agent, and no agent
// is over capacity.
func TestConcurrentAccepts(t *testing.T) {
	ctx := context.Background()
	w := newWorld()
	e, _ := newEngine(t, w)
	const n = 40
	for i := range n {
		available(t, e, agentInfo(fmt.Sprintf("agent%02d", i), 1, "sales"))
	}
	for i := range n {
		mustEnqueue(t, e, newTask(fmt.Sprintf("t%02d", i), sales))
	}
	offers := map[string]*distributionv1.TaskOffered{} // agent → offer
	for _, o := range w.offers() {
		offers[o.GetAgentId()] = o
	}
	if len(offers) != n {
		t.Fatalf("%d agents got an offer, want %d", len(offers), n)
	}
	w.mu.Lock()
	w.failSave = 1
	w.mu.Unlock()
	var (
		mu      sync.Mutex
		failed  []string // agents whose accept failed
		wg      sync.WaitGroup
		results = map[string]map[string]bool{} // agent → task ids answered
	)
	for agentID, o := range offers {
		for range 3 {
			wg.Go(func() {
				task, err := e.Accept(ctx, tenant, agentID, o.GetOfferId())
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					failed = append(failed, agentID)
					return
				}
				if results[agentID] == nil {
					results[agentID] = map[string]bool{}
				}
				results[agentID][task.ID] = true
			})
		}
		wg.Go(func() {
			thief := "agent00"
			if agentID == thief {
				thief = "agent01"
			}
			_, err := e.Accept(ctx, tenant, thief, o.GetOfferId())
			if !errors.Is(err, engine.ErrNotYourOffer) && !errors.Is(err, engine.ErrOfferNotOpen) {
				t.Errorf("%s accepting %s's offer: %v, want it refused", thief, agentID, err)
			}
		})
	}
	wg.Wait()
	if len(failed) > 1 {
		t.Errorf("%d accepts failed (%v), want at most the one whose save failed", len(failed), failed)
	}
	// The failed one retries.
	for _, agentID := range failed {
		task, err := e.Accept(ctx, tenant, agentID, offers[agentID].GetOfferId())
		if err != nil {
			t.Fatalf("%s retrying: %v", agentID, err)
		}
		if results[agentID] == nil {
			results[agentID] = map[string]bool{}
		}
		results[agentID][task.ID] = true
	}
	for agentID, o := range offers {
		if got := results[agentID]; len(got) != 1 || !got[o.GetTaskId()] {
			t.Errorf("%s was answered tasks %v, want only %s", agentID, got, o.GetTaskId())
		}
		st := e.State(tenant, agentID)
		if st.GetActiveTasks() != 1 || len(st.GetOffers()) != 0 {
			t.Errorf("%s: %d active tasks, %d offers; want 1 and none", agentID, st.GetActiveTasks(), len(st.GetOffers()))
		}
	}
	accepted := map[string]string{} // task → agent
	for _, en := range w.entries() {
		if a, ok := en.event.(*distributionv1.TaskAccepted); ok {
			if prev, dup := accepted[a.GetTaskId()]; dup {
				t.Errorf("task %s accepted twice (by %s and %s)", a.GetTaskId(), prev, a.GetAgentId())
			}
			accepted[a.GetTaskId()] = a.GetAgentId()
		}
	}
	if len(accepted) != n {
		t.Errorf("%d tasks accepted, want %d", len(accepted), n)
	}
	for agentID, o := range offers {
		if accepted[o.GetTaskId()] != agentID {
			t.Errorf("task %s accepted by %q, want %s", o.GetTaskId(), accepted[o.GetTaskId()], agentID)
		}
	}
}
