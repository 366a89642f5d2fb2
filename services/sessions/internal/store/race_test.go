package store_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-cc/switchboard/services/sessions/internal/store"
)

// The steps that change a session run concurrently on the replicas (an
// offer event, the acceptance, a park, the end) and FerretDB applies an
// update by reading the document and writing it back whole, outside any
// transaction: two updates of one session at once could each undo the
// other. Raced against each other on many sessions, none of their changes
// may be lost: each session ends named after its agent, with its service,
// parameters and outcome, and an acceptance raced against the end either
// made it or left the session ended.
func TestConcurrentChangesOfASessionAreNotLost(t *testing.T) {
	st := newStore(t)
	ctx := context.Background()
	const n = 60
	id := func(i int) string { return fmt.Sprintf("race%02d", i) }
	for i := range n {
		s := &store.Session{Tenant: "acme", ID: id(i), ServiceID: "support", State: store.StateActive, StartedAt: time.Now(),
			Conversation: store.Conversation{Channel: "sms", Customer: fmt.Sprintf("+4179000%04d", i)}}
		if err := st.CreateSession(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	// Round one: the offer event and the acceptance at once, and a park.
	var wg sync.WaitGroup
	errs := make(chan error, 3*n)
	for i := range n {
		wg.Add(3)
		go func() {
			defer wg.Done()
			errs <- st.SetOffered(ctx, "acme", id(i), "Support", map[string]string{"name": "Ann"})
		}()
		go func() {
			defer wg.Done()
			errs <- st.Assign(ctx, "acme", id(i), "alice", "t"+id(i), time.Now())
		}()
		go func() {
			defer wg.Done()
			errs <- st.SetParked(ctx, "acme", id(i), "t"+id(i), true)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		got, err := st.Session(ctx, "acme", id(i))
		if err != nil {
			t.Fatal(err)
		}
		if got.AgentID != "alice" || got.TaskID != "t"+id(i) || got.State != store.StateActive {
			t.Errorf("%s after the offer, acceptance and park = agent %q, task %q, state %s; want alice's active task", id(i), got.AgentID, got.TaskID, got.State)
		}
	}
	// Round two: the end, raced against a resume (the even sessions) or
	// an acceptance by bob (the odd ones).
	var ended sync.Map
	errs = make(chan error, 2*n)
	for i := range n {
		wg.Add(2)
		go func() {
			defer wg.Done()
			ok, err := st.End(ctx, "acme", id(i), "OUTCOME_HANDLED", "done", time.Now())
			if ok {
				ended.Store(id(i), true)
			}
			errs <- err
		}()
		go func() {
			defer wg.Done()
			if i%2 == 0 {
				errs <- st.SetParked(ctx, "acme", id(i), "t"+id(i), false)
				return
			}
			errs <- st.Assign(ctx, "acme", id(i), "bob", "u"+id(i), time.Now())
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		if _, ok := ended.Load(id(i)); !ok {
			t.Errorf("%s: no End call reported ending it", id(i))
		}
		got, err := st.Session(ctx, "acme", id(i))
		if err != nil {
			t.Fatal(err)
		}
		if got.State != store.StateEnded || got.Outcome != "OUTCOME_HANDLED" || got.EndedAt.IsZero() {
			t.Errorf("%s after its end = state %s, outcome %q; want ended, handled", id(i), got.State, got.Outcome)
		}
		if got.ServiceName != "Support" || got.Parameters["name"] != "Ann" {
			t.Errorf("%s lost what its offer said: service %q, parameters %v", id(i), got.ServiceName, got.Parameters)
		}
		if got.AgentID != "alice" && !(i%2 == 1 && got.AgentID == "bob") {
			t.Errorf("%s ended with agent %q; want alice (or bob, who raced the end)", id(i), got.AgentID)
		}
	}
}
