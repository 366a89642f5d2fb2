package engine_test

import (
	"context"
	"testing"
	"time"
)

// The holder of a tenant dies with two offers open; the replica that
// takes the tenant over keeps the one with time left (its agent accepts
// it there) and times out the one that ran out meanwhile, as the holder
// would have: TaskOfferTimedOut, its agent flagged, the task waiting for
// the next agent rather than offered again in silence.
func TestOfferThatRanOutDuringATakeOverTimesOut(t *testing.T) {
	ctx := context.Background()
	w := newWorld()
	c := newClock()
	old, _, _ := replica(t, w, c)
	alice, bob := agentInfo("alice", 0, "sales"), agentInfo("bob", 0, "sales")
	available(t, old, alice, bob) // alice idle longer: offered first
	short := sales
	short.RONATimeout = time.Minute
	mustEnqueue(t, old, newTask("t1", short), newTask("t2", sales))
	checkEvents(t, w, 0, "queued t1 pos=1", "offered t1 to alice", "queued t2 pos=1", "offered t2 to bob")
	old.Close() // dies

	c.Advance(2 * time.Minute)
	e, timers, loaded := replica(t, w, c)
	if loaded != 2 {
		t.Fatalf("the new holder loaded %d tasks, want 2", loaded)
	}
	checkEvents(t, w, 4)
	timers.run() // t1's offer ran out while nobody held the tenant
	checkEvents(t, w, 4, "rona t1 by alice")
	if st := e.State(tenant, "alice"); !st.GetRona() || len(st.GetOffers()) != 0 {
		t.Errorf("alice after her offer ran out: %v, want RONA-flagged without offers", st)
	}
	if _, err := e.Accept(ctx, tenant, "bob", w.lastOffer(t, "t2").GetOfferId()); err != nil {
		t.Fatalf("bob accepting the offer made before the take-over: %v", err)
	}
	endSession(t, e, "t2")
	checkEvents(t, w, 5, "accepted t2 by bob", "completed t2 by bob", "offered t1 to bob")
}
