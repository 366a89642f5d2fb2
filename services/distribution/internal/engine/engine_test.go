package engine_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	distributionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/distribution/v1"

	"github.com/switchboard-cc/switchboard/pkg/subjects"
	"github.com/switchboard-cc/switchboard/services/distribution/internal/engine"
)

func checkEvents(t *testing.T, w *world, since int, want ...string) {
	t.Helper()
	if got := w.eventsSince(since); !slices.Equal(got, want) {
		t.Errorf("events:\n got  %q\n want %q", got, want)
	}
}

func TestEnqueueOffersToAvailableAgent(t *testing.T) {
	w := newWorld()
	e, _ := newEngine(t, w)
	available(t, e, agentInfo("alice", 0, "sales"))
	mustEnqueue(t, e, newTask("t1", sales))

	checkEvents(t, w, 0, "queued t1 pos=1", "offered t1 to alice")

	// The offer carries what the task card shows and an expiry one RONA
	// timeout after the offer.
	var offered *distributionv1.TaskOffered
	var subject, msgID string
	for _, en := range w.entries() {
		if o, ok := en.event.(*distributionv1.TaskOffered); ok {
			offered, subject, msgID = o, en.subject, en.msgID
		}
	}
	task := newTask("t1", sales)
	if subject != subjects.TaskOffered(tenant) {
		t.Errorf("offer subject = %q, want %q", subject, subjects.TaskOffered(tenant))
	}
	if want := offered.GetOfferId() + ":offered"; msgID != want {
		t.Errorf("offer msg id = %q, want %q", msgID, want)
	}
	if offered.GetServiceName() != "Sales" || offered.GetCustomerName() != task.CustomerName ||
		!proto.Equal(offered.GetConversation(), task.Conversation) || offered.GetSessionId() != "ss_t1" {
		t.Errorf("offer = %v, want service name Sales, customer %q, conversation %v, session ss_t1", offered, task.CustomerName, task.Conversation)
	}
	if got := offered.GetExpiresAt().AsTime().Sub(offered.GetOfferedAt().AsTime()); got != sales.RONATimeout {
		t.Errorf("offer expires %v after it was made, want the service's RONA timeout %v", got, sales.RONATimeout)
	}

	st := e.State(tenant, "alice")
	if len(st.GetOffers()) != 1 || st.GetOffers()[0].GetOfferId() != offered.GetOfferId() || st.GetOffers()[0].GetTaskId() != "t1" {
		t.Errorf("alice's state offers = %v, want the one offer %s of t1", st.GetOffers(), offered.GetOfferId())
	}
	if st.GetPresence() != distributionv1.Presence_PRESENCE_AVAILABLE || st.GetRona() || st.GetActiveTasks() != 0 {
		t.Errorf("alice's state = %v, want available, no RONA, no active tasks", st)
	}
}

func TestTasksWaitForAnAvailableAgent(t *testing.T) {
	w := newWorld()
	e, _ := newEngine(t, w)
	mustEnqueue(t, e, newTask("t1", sales), newTask("t2", sales))
	// An agent of another service, an away agent and one without a
	// license do not get the tasks.
	available(t, e, agentInfo("sam", 0, "support"))
	if _, err := e.SetPresence(context.Background(), tenant, agentInfo("alice", 0, "sales"), distributionv1.Presence_PRESENCE_AWAY); err != nil {
		t.Fatal(err)
	}
	unlicensed := agentInfo("ulla", 0, "sales")
	unlicensed.Eligible = false
	if _, err := e.SetPresence(context.Background(), tenant, unlicensed, distributionv1.Presence_PRESENCE_AVAILABLE); !errors.Is(err, engine.ErrNotEligible) {
		t.Errorf("SetPresence(unlicensed, available) = %v, want ErrNotEligible", err)
	}
	checkEvents(t, w, 0, "queued t1 pos=1", "queued t2 pos=2")

	available(t, e, agentInfo("alice", 0, "sales"))
	checkEvents(t, w, 2, "offered t1 to alice")
}

func TestLeastLoadedAgentWhoWaitedLongest(t *testing.T) {
	w := newWorld()
	e, _ := newEngine(t, w)
	// bob became available before alice: at equal load he waited longer,
	// although his id sorts after hers.
	available(t, e, agentInfo("bob", 2, "support"), agentInfo("alice", 2, "support"))
	mustEnqueue(t, e, newTask("t1", support), newTask("t2", support), newTask("t3", support), newTask("t4", support))
	checkEvents(t, w, 0,
		"queued t1 pos=1", "offered t1 to bob", // equal load: bob waited longer
		"queued t2 pos=1", "offered t2 to alice", // alice is less loaded
		"queued t3 pos=1", "offered t3 to bob", // equal load: bob's last offer is older
		"queued t4 pos=1", "offered t4 to alice",
	)
	// Both are at capacity 2 now.
	mustEnqueue(t, e, newTask("t5", support))
	checkEvents(t, w, 8, "queued t5 pos=1")
}

func TestCapacity(t *testing.T) {
	for _, tc := range []struct {
		name     string
		capacity int // the user's
		service  engine.ServiceInfo
		want     int
	}{
		{"user capacity wins over service", 2, support, 2},
		{"service limit when user has none", 0, support, 3},
		{"one when neither sets one", 0, engine.ServiceInfo{ID: "support", Name: "Support", RONATimeout: time.Hour}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld()
			e, _ := newEngine(t, w)
			available(t, e, agentInfo("alice", tc.capacity, "support"))
			var tasks []*engine.Task
			for _, id := range []string{"t1", "t2", "t3", "t4", "t5"} {
				tasks = append(tasks, newTask(id, tc.service))
			}
			mustEnqueue(t, e, tasks...)
			if got := len(w.offers()); got != tc.want {
				t.Fatalf("offers made = %d, want %d; events %q", got, tc.want, w.events())
			}
			// Accepted tasks keep counting; ending one frees a slot for
			// the next queued task.
			first := w.offers()[0]
			if _, err := e.Accept(context.Background(), tenant, "alice", first.GetOfferId()); err != nil {
				t.Fatal(err)
			}
			if got := len(w.offers()); got != tc.want {
				t.Fatalf("after accept: offers made = %d, want still %d", got, tc.want)
			}
			st := e.State(tenant, "alice")
			if int(st.GetActiveTasks())+len(st.GetOffers()) != tc.want {
				t.Errorf("active %d + offers %d, want %d", st.GetActiveTasks(), len(st.GetOffers()), tc.want)
			}
			n := len(w.events())
			if err := e.EndSession(context.Background(), tenant, first.GetSessionId(), "customer left"); err != nil {
				t.Fatal(err)
			}
			next := tasks[tc.want].ID
			checkEvents(t, w, n, "completed t1 by alice", "offered "+next+" to alice")
		})
	}
}

func TestPriorityThenArrival(t *testing.T) {
	w := newWorld()
	e, _ := newEngine(t, w)
	low1, low2, high := newTask("low1", sales), newTask("low2", sales), newTask("high", sales)
	high.Priority = 5
	urgent := newTask("urgent", support) // another service, higher still
	urgent.Priority = 9
	mustEnqueue(t, e, low1, low2, high, urgent)
	checkEvents(t, w, 0, "queued low1 pos=1", "queued low2 pos=2", "queued high pos=1", "queued urgent pos=1")

	// One agent for both services, one task at a time.
	available(t, e, agentInfo("alice", 1, "sales", "support"))
	var order []string
	for range 4 {
		st := e.State(tenant, "alice")
		if len(st.GetOffers()) != 1 {
			t.Fatalf("alice has offers %v, want exactly one", st.GetOffers())
		}
		o := st.GetOffers()[0]
		order = append(order, o.GetTaskId())
		if _, err := e.Accept(context.Background(), tenant, "alice", o.GetOfferId()); err != nil {
			t.Fatal(err)
		}
		if err := e.EndSession(context.Background(), tenant, o.GetSessionId(), "done"); err != nil {
			t.Fatal(err)
		}
	}
	if want := []string{"urgent", "high", "low1", "low2"}; !slices.Equal(order, want) {
		t.Errorf("offer order = %q, want %q", order, want)
	}
}

func TestDeclineOffersToAnotherAgent(t *testing.T) {
	w := newWorld()
	e, _ := newEngine(t, w)
	available(t, e, agentInfo("alice", 1, "sales"), agentInfo("bob", 1, "sales"))
	mustEnqueue(t, e, newTask("t1", sales))
	o := w.lastOffer(t, "t1")
	if err := e.Decline(context.Background(), tenant, "alice", o.GetOfferId()); err != nil {
		t.Fatal(err)
	}
	checkEvents(t, w, 0, "queued t1 pos=1", "offered t1 to alice", "declined t1 by alice", "offered t1 to bob")
	if got := e.State(tenant, "alice").GetOffers(); len(got) != 0 {
		t.Errorf("alice still has offers %v after declining", got)
	}
	// bob declines too: nobody eligible is left within the cooldown.
	o = w.lastOffer(t, "t1")
	if err := e.Decline(context.Background(), tenant, "bob", o.GetOfferId()); err != nil {
		t.Fatal(err)
	}
	checkEvents(t, w, 4, "declined t1 by bob")
	e.Tick(context.Background())
	checkEvents(t, w, 5)
}

func TestDeclineCooldown(t *testing.T) {
	w := newWorld()
	e, c := newEngine(t, w)
	e.DeclineCooldown = time.Minute
	available(t, e, agentInfo("alice", 2, "sales", "support"))
	mustEnqueue(t, e, newTask("t1", support))
	if err := e.Decline(context.Background(), tenant, "alice", w.lastOffer(t, "t1").GetOfferId()); err != nil {
		t.Fatal(err)
	}
	// The declined task is not offered back within the cooldown, but a
	// later task the agent has not declined is.
	e.Tick(context.Background())
	mustEnqueue(t, e, newTask("t2", sales))
	checkEvents(t, w, 0, "queued t1 pos=1", "offered t1 to alice", "declined t1 by alice", "queued t2 pos=1", "offered t2 to alice")

	c.Advance(time.Minute)
	e.Tick(context.Background())
	checkEvents(t, w, 5, "offered t1 to alice")
}

// checkPrefix is checkEvents for sequences that later RONA timers may extend.
func checkPrefix(t *testing.T, w *world, since int, want ...string) {
	t.Helper()
	got := w.eventsSince(since)
	if len(got) < len(want) || !slices.Equal(got[:len(want)], want) {
		t.Errorf("events:\n got  %q\n want %q, then anything", got, want)
	}
}

func hasEvent(w *world, ev string) func() bool {
	return func() bool { return slices.Contains(w.events(), ev) }
}

func TestRONAFlagsAgentUntilAvailable(t *testing.T) {
	ctx := context.Background()
	w := newWorld()
	e, _ := newEngine(t, w)
	available(t, e, agentInfo("alice", 2, "fast", "sales"))
	mustEnqueue(t, e, newTask("t1", fast))
	first := w.lastOffer(t, "t1")
	waitFor(t, "RONA of alice's offer", hasEvent(w, "rona t1 by alice"))
	// Nothing else can happen: alice is flagged, nobody else is there.
	checkEvents(t, w, 0, "queued t1 pos=1", "offered t1 to alice", "rona t1 by alice")

	st := e.State(tenant, "alice")
	if !st.GetRona() || len(st.GetOffers()) != 0 {
		t.Errorf("alice after RONA: rona=%v offers=%v, want flagged with no offers", st.GetRona(), st.GetOffers())
	}
	if _, err := e.Accept(ctx, tenant, "alice", first.GetOfferId()); !errors.Is(err, engine.ErrOfferNotOpen) {
		t.Errorf("Accept of a timed-out offer = %v, want ErrOfferNotOpen", err)
	}
	// A new task, a tick and going away and back to away do not clear it.
	mustEnqueue(t, e, newTask("t2", sales))
	e.Tick(ctx)
	if _, err := e.SetPresence(ctx, tenant, agentInfo("alice", 2, "fast", "sales"), distributionv1.Presence_PRESENCE_AWAY); err != nil {
		t.Fatal(err)
	}
	checkEvents(t, w, 3, "queued t2 pos=1")
	if !e.State(tenant, "alice").GetRona() {
		t.Errorf("alice's RONA flag was cleared by going away")
	}

	// Available clears the flag: both tasks come to her, oldest first.
	n := len(w.events())
	st, err := e.SetPresence(ctx, tenant, agentInfo("alice", 2, "fast", "sales"), distributionv1.Presence_PRESENCE_AVAILABLE)
	if err != nil {
		t.Fatal(err)
	}
	if st.GetRona() {
		t.Errorf("SetPresence(available) returned rona=true")
	}
	checkPrefix(t, w, n, "offered t1 to alice", "offered t2 to alice")
}

func TestRONAOffersToTheNextAgent(t *testing.T) {
	w := newWorld()
	e, _ := newEngine(t, w)
	available(t, e, agentInfo("alice", 1, "fast"), agentInfo("bob", 1, "fast"))
	mustEnqueue(t, e, newTask("t1", fast))
	waitFor(t, "the task offered to bob", hasEvent(w, "offered t1 to bob"))
	checkPrefix(t, w, 0, "queued t1 pos=1", "offered t1 to alice", "rona t1 by alice", "offered t1 to bob")
	ronas := 0
	for _, ev := range w.events() {
		if ev == "rona t1 by alice" {
			ronas++
		}
	}
	if ronas != 1 {
		t.Errorf("alice timed out %d times, want once: %q", ronas, w.events())
	}
}

func TestAnswersToOffers(t *testing.T) {
	ctx := context.Background()
	w := newWorld()
	e, _ := newEngine(t, w)
	available(t, e, agentInfo("alice", 1, "sales"), agentInfo("bob", 1, "sales"))
	mustEnqueue(t, e, newTask("t1", sales))
	o := w.lastOffer(t, "t1") // alice's

	for _, tc := range []struct {
		name   string
		answer func() error
		want   error
	}{
		{"bob accepts alice's offer", func() error { _, err := e.Accept(ctx, tenant, "bob", o.GetOfferId()); return err }, engine.ErrNotYourOffer},
		{"bob declines alice's offer", func() error { return e.Decline(ctx, tenant, "bob", o.GetOfferId()) }, engine.ErrNotYourOffer},
		{"unknown offer accepted", func() error { _, err := e.Accept(ctx, tenant, "alice", "of_nope"); return err }, engine.ErrOfferNotOpen},
		{"unknown offer declined", func() error { return e.Decline(ctx, tenant, "alice", "of_nope") }, engine.ErrOfferNotOpen},
		{"offer of another tenant", func() error { _, err := e.Accept(ctx, "globex", "alice", o.GetOfferId()); return err }, engine.ErrOfferNotOpen},
	} {
		if err := tc.answer(); !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
	}
	// None of that touched the offer.
	if got := e.State(tenant, "alice").GetOffers(); len(got) != 1 || got[0].GetOfferId() != o.GetOfferId() {
		t.Fatalf("alice's offers = %v, want %s still open", got, o.GetOfferId())
	}

	task, err := e.Accept(ctx, tenant, "alice", o.GetOfferId())
	if err != nil {
		t.Fatal(err)
	}
	if task.ID != "t1" || task.SessionID != "ss_t1" || task.State != engine.TaskAccepted || task.AgentID != "alice" {
		t.Errorf("Accept returned %+v, want t1 of ss_t1 accepted by alice", task)
	}
	// A retried Accept (the gateway lost the answer) gets the same answer.
	if again, err := e.Accept(ctx, tenant, "alice", o.GetOfferId()); err != nil || again.ID != "t1" {
		t.Errorf("second Accept by alice = %v, %v; want t1 again", again, err)
	}
	if _, err := e.Accept(ctx, tenant, "bob", o.GetOfferId()); !errors.Is(err, engine.ErrNotYourOffer) {
		t.Errorf("bob's Accept of alice's accepted offer: err = %v, want ErrNotYourOffer", err)
	}
	if err := e.Decline(ctx, tenant, "alice", o.GetOfferId()); !errors.Is(err, engine.ErrOfferNotOpen) {
		t.Errorf("Decline after Accept: err = %v, want ErrOfferNotOpen", err)
	}
	checkEvents(t, w, 0, "queued t1 pos=1", "offered t1 to alice", "accepted t1 by alice")
	st := e.State(tenant, "alice")
	if st.GetActiveTasks() != 1 || len(st.GetOffers()) != 0 {
		t.Errorf("alice: active %d, offers %v; want 1 active, no offers", st.GetActiveTasks(), st.GetOffers())
	}
	if got := w.saved[tenant+"/t1"]; got.State != engine.TaskAccepted || got.AgentID != "alice" {
		t.Errorf("stored task: state %q agent %q, want accepted by alice", got.State, got.AgentID)
	}
}

func TestEndSession(t *testing.T) {
	ctx := context.Background()
	w := newWorld()
	e, _ := newEngine(t, w)
	available(t, e, agentInfo("alice", 2, "sales", "support"))
	mustEnqueue(t, e, newTask("accepted", support), newTask("offered", support), newTask("queued", support), newTask("next", support))
	if _, err := e.Accept(ctx, tenant, "alice", w.lastOffer(t, "accepted").GetOfferId()); err != nil {
		t.Fatal(err)
	}
	offered := w.lastOffer(t, "offered")
	checkEvents(t, w, 0,
		"queued accepted pos=1", "offered accepted to alice", "queued offered pos=1", "offered offered to alice",
		"queued queued pos=1", "queued next pos=2", "accepted accepted by alice")

	// A queued task is canceled; nobody is involved.
	n := len(w.events())
	if err := e.EndSession(ctx, tenant, "ss_queued", "customer left"); err != nil {
		t.Fatal(err)
	}
	checkEvents(t, w, n, "canceled queued")
	// An offered task is canceled with its offer, which can no longer be
	// accepted; the freed slot goes to the next task.
	n = len(w.events())
	if err := e.EndSession(ctx, tenant, "ss_offered", "customer left"); err != nil {
		t.Fatal(err)
	}
	checkEvents(t, w, n, "canceled offered offered to alice", "offered next to alice")
	if _, err := e.Accept(ctx, tenant, "alice", offered.GetOfferId()); !errors.Is(err, engine.ErrOfferNotOpen) {
		t.Errorf("Accept of a canceled offer: err = %v, want ErrOfferNotOpen", err)
	}
	var canceled *distributionv1.TaskCanceled
	for _, en := range w.entries() {
		if c, ok := en.event.(*distributionv1.TaskCanceled); ok && c.GetTaskId() == "offered" {
			canceled = c
		}
	}
	if canceled.GetOfferId() != offered.GetOfferId() || canceled.GetReason() != "customer left" {
		t.Errorf("cancel = %v, want offer %s and reason %q", canceled, offered.GetOfferId(), "customer left")
	}
	// An accepted task is completed and frees its agent (its service has
	// no after-call work).
	n = len(w.events())
	if err := e.EndSession(ctx, tenant, "ss_accepted", "agent terminated"); err != nil {
		t.Fatal(err)
	}
	checkEvents(t, w, n, "completed accepted by alice")
	n = len(w.events())
	if st := e.State(tenant, "alice"); st.GetActiveTasks() != 0 || len(st.GetOffers()) != 1 {
		t.Errorf("alice: active %d offers %d, want 0 and 1 (next)", st.GetActiveTasks(), len(st.GetOffers()))
	}
	// Ending again, or ending a session distribution never saw, is a no-op.
	for _, s := range []string{"ss_accepted", "ss_queued", "ss_unknown"} {
		if err := e.EndSession(ctx, tenant, s, "again"); err != nil {
			t.Errorf("EndSession(%s) again: %v", s, err)
		}
	}
	checkEvents(t, w, n)
	for _, id := range []string{"accepted", "offered", "queued"} {
		if got := w.saved[tenant+"/"+id].State; !got.Closed() {
			t.Errorf("stored %s: state %q, want ended", id, got)
		}
	}
}

func TestEnqueueIsIdempotent(t *testing.T) {
	ctx := context.Background()
	w := newWorld()
	e, _ := newEngine(t, w)
	available(t, e, agentInfo("alice", 1, "sales"))

	// A redelivered request while the task is open, after it was accepted
	// and after it ended.
	mustEnqueue(t, e, newTask("t1", sales), newTask("t1", sales))
	if _, err := e.Accept(ctx, tenant, "alice", w.lastOffer(t, "t1").GetOfferId()); err != nil {
		t.Fatal(err)
	}
	mustEnqueue(t, e, newTask("t1", sales))
	if err := e.EndSession(ctx, tenant, "ss_t1", "done"); err != nil {
		t.Fatal(err)
	}
	mustEnqueue(t, e, newTask("t1", sales))
	// A request for a session that already ended (the end overtook it).
	if err := e.EndSession(ctx, tenant, "ss_t2", "customer left"); err != nil {
		t.Fatal(err)
	}
	mustEnqueue(t, e, newTask("t2", sales))

	checkEvents(t, w, 0, "queued t1 pos=1", "offered t1 to alice", "accepted t1 by alice", "completed t1 by alice")
	if st := e.State(tenant, "alice"); st.GetActiveTasks() != 0 || len(st.GetOffers()) != 0 {
		t.Errorf("alice: %v, want idle", st)
	}
}

func TestSessionEndRacingItsTaskRequest(t *testing.T) {
	// The task request passed the ended-session check just before the
	// session's end was recorded and processed: the task must still not
	// stay on offer for an ended session.
	ctx := context.Background()
	w := newWorld()
	e, _ := newEngine(t, w)
	available(t, e, agentInfo("alice", 1, "sales"))

	checked, release := make(chan struct{}), make(chan struct{})
	w.afterSessionEnded = func(string) {
		close(checked)
		<-release
	}
	enqueued := make(chan error, 1)
	go func() { enqueued <- e.Enqueue(ctx, newTask("t1", sales)) }()
	<-checked
	ended := make(chan error, 1)
	go func() { ended <- e.EndSession(ctx, tenant, "ss_t1", "customer left") }()
	waitFor(t, "the session end to be recorded", func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		return w.ended[tenant+"/ss_t1"]
	})
	// Let EndSession run as far as it can without the Enqueue finishing.
	select {
	case err := <-ended:
		ended <- err
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	if err := <-enqueued; err != nil {
		t.Fatal(err)
	}
	if err := <-ended; err != nil {
		t.Fatal(err)
	}

	if st := e.State(tenant, "alice"); len(st.GetOffers()) != 0 {
		t.Errorf("alice holds offers %v of an ended session", st.GetOffers())
	}
	if got := w.saved[tenant+"/t1"]; got.ID != "" && !got.State.Closed() {
		t.Errorf("stored task state %q, want ended or never stored", got.State)
	}
}

func TestRestore(t *testing.T) {
	ctx := context.Background()
	w := newWorld()
	e, _ := newEngine(t, w)
	available(t, e, agentInfo("alice", 1, "sales"), agentInfo("bob", 1, "sales"))
	hi := newTask("hi", sales)
	hi.Priority = 3
	mustEnqueue(t, e, newTask("accepted", sales), newTask("offered", sales), newTask("queued", sales), hi, newTask("ended", sales))
	if _, err := e.Accept(ctx, tenant, "alice", w.lastOffer(t, "accepted").GetOfferId()); err != nil {
		t.Fatal(err)
	}
	if err := e.EndSession(ctx, tenant, "ss_ended", "gone"); err != nil {
		t.Fatal(err)
	}
	checkPrefix(t, w, 0, "queued accepted pos=1", "offered accepted to alice", "queued offered pos=1", "offered offered to bob")
	e.Close()

	// A new process over the same store.
	w2 := newWorld()
	w2.saved, w2.ended = w.saved, w.ended
	e2, _ := newEngine(t, w2)
	n, err := e2.Restore(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n != 4 {
		t.Errorf("Restore = %d tasks, want 4 (accepted, offered, queued, hi)", n)
	}
	// Restored, the accepted task keeps counting against alice; the task
	// that was on offer is queued again, in its priority and arrival place.
	available(t, e2, agentInfo("alice", 1, "sales"))
	checkEvents(t, w2, 0)
	if st := e2.State(tenant, "alice"); st.GetActiveTasks() != 1 {
		t.Errorf("restored alice: active %d, want 1", st.GetActiveTasks())
	}
	available(t, e2, agentInfo("bob", 3, "sales"))
	checkEvents(t, w2, 0, "offered hi to bob", "offered offered to bob", "offered queued to bob")
	// Ending the restored accepted session frees alice; the ended session
	// stays ended.
	if err := e2.EndSession(ctx, tenant, "ss_accepted", "done"); err != nil {
		t.Fatal(err)
	}
	if st := e2.State(tenant, "alice"); st.GetActiveTasks() != 0 {
		t.Errorf("alice after the end: active %d, want 0", st.GetActiveTasks())
	}
	checkEvents(t, w2, 3, "completed accepted by alice")
	mustEnqueue(t, e2, newTask("ended", sales), newTask("accepted", sales))
	checkEvents(t, w2, 4)
}

func TestFailedOfferPublicationWithdrawsTheOffer(t *testing.T) {
	ctx := context.Background()
	w := newWorld()
	e, _ := newEngine(t, w)
	available(t, e, agentInfo("alice", 1, "sales"))
	w.failNextEmit(subjects.KindTaskOffered)
	mustEnqueue(t, e, newTask("t1", sales))
	checkEvents(t, w, 0, "queued t1 pos=1")
	if st := e.State(tenant, "alice"); len(st.GetOffers()) != 0 {
		t.Fatalf("alice holds an offer nobody told her about: %v", st.GetOffers())
	}
	e.Tick(ctx)
	checkEvents(t, w, 1, "offered t1 to alice")
}

func TestAcceptCanBeRetriedWhenItsEventWasNotPublished(t *testing.T) {
	ctx := context.Background()
	w := newWorld()
	e, _ := newEngine(t, w)
	available(t, e, agentInfo("alice", 1, "sales"))
	mustEnqueue(t, e, newTask("t1", sales))
	o := w.lastOffer(t, "t1")
	w.failNextEmit(subjects.KindTaskAccepted)
	if _, err := e.Accept(ctx, tenant, "alice", o.GetOfferId()); err == nil {
		t.Fatal("Accept succeeded although TaskAccepted could not be published")
	}
	// The caller retries: the answer must be the same task, and the event
	// must get out under the same id.
	task, err := e.Accept(ctx, tenant, "alice", o.GetOfferId())
	if err != nil {
		t.Fatalf("retried Accept: %v", err)
	}
	if task.ID != "t1" {
		t.Errorf("retried Accept returned task %s, want t1", task.ID)
	}
	checkEvents(t, w, 0, "queued t1 pos=1", "offered t1 to alice", "accepted t1 by alice")
	var ids []string
	for _, en := range w.entries() {
		if en.event != nil {
			ids = append(ids, en.msgID)
		}
	}
	if want := o.GetOfferId() + ":accepted"; ids[2] != want {
		t.Errorf("TaskAccepted msg id = %q, want %q", ids[2], want)
	}
	// Ending the session forgets the offer.
	if err := e.EndSession(ctx, tenant, "ss_t1", "done"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Accept(ctx, tenant, "alice", o.GetOfferId()); !errors.Is(err, engine.ErrOfferNotOpen) {
		t.Errorf("Accept after the session ended: err = %v, want ErrOfferNotOpen", err)
	}
}

// Enqueue returns the publish error so the request is redelivered; the
// redelivery must then publish what the first attempt could not, not
// swallow it as a duplicate.
func TestFailedQueuedPublicationIsRetried(t *testing.T) {
	ctx := context.Background()
	w := newWorld()
	e, _ := newEngine(t, w)
	available(t, e, agentInfo("alice", 1, "sales"))
	w.failNextEmit(subjects.KindTaskQueued)
	if err := e.Enqueue(ctx, newTask("t1", sales)); err == nil {
		t.Fatal("Enqueue succeeded although TaskQueued could not be published")
	}
	checkEvents(t, w, 0)
	mustEnqueue(t, e, newTask("t1", sales)) // the redelivery
	mustEnqueue(t, e, newTask("t1", sales)) // and another: nothing new
	checkEvents(t, w, 0, "queued t1 pos=1", "offered t1 to alice")
}

// A RONA whose event JetStream refused is not lost: the task stays with
// its offer (which can no longer be accepted) until the event is out,
// and only then goes to the next agent. Offered again first, the two
// offers would look open at once to everyone following the stream, and
// the first agent's console would keep a card for an offer that is gone.
func TestRONAEventRefusedIsPublishedBeforeTheNextOffer(t *testing.T) {
	ctx := context.Background()
	w := newWorld()
	e, _ := newEngine(t, w)
	w.failNextEmit(subjects.KindTaskOfferTimedOut)
	w.failNextEmit(subjects.KindTaskOfferTimedOut)
	available(t, e, agentInfo("alice", 1, "fast"), agentInfo("bob", 1, "fast"))
	mustEnqueue(t, e, newTask("t1", fast))
	first := w.lastOffer(t, "t1")
	waitFor(t, "the task offered to bob", hasEvent(w, "offered t1 to bob"))
	checkPrefix(t, w, 0, "queued t1 pos=1", "offered t1 to alice", "rona t1 by alice", "offered t1 to bob")
	if _, err := e.Accept(ctx, tenant, "alice", first.GetOfferId()); !errors.Is(err, engine.ErrOfferNotOpen) {
		t.Errorf("alice accepting her timed-out offer: %v, want %v", err, engine.ErrOfferNotOpen)
	}
}

// A decline whose event JetStream refused changes nothing: the agent is
// told, the offer stays open, and the decline asked again goes through,
// its event before the task's next offer.
func TestDeclineEventRefusedLeavesTheOfferOpen(t *testing.T) {
	ctx := context.Background()
	w := newWorld()
	e, _ := newEngine(t, w)
	available(t, e, agentInfo("alice", 1, "sales"), agentInfo("bob", 1, "sales"))
	mustEnqueue(t, e, newTask("t1", sales))
	o := w.lastOffer(t, "t1")
	w.failNextEmit(subjects.KindTaskDeclined)
	if err := e.Decline(ctx, tenant, "alice", o.GetOfferId()); err == nil {
		t.Fatal("a decline whose event was refused succeeded")
	}
	if got := e.State(tenant, "alice").GetOffers(); len(got) != 1 || got[0].GetOfferId() != o.GetOfferId() {
		t.Fatalf("alice's offers after the refused decline = %v, want %s still open", got, o.GetOfferId())
	}
	if err := e.Decline(ctx, tenant, "alice", o.GetOfferId()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the task offered to bob", hasEvent(w, "offered t1 to bob"))
	checkPrefix(t, w, 0, "queued t1 pos=1", "offered t1 to alice", "declined t1 by alice", "offered t1 to bob")
}

// An accept whose TaskAccepted could not be published, by an agent who
// never asks again, is announced by the next Tick: the session is
// assigned whatever the agent does.
func TestUnpublishedAcceptIsAnnouncedByTick(t *testing.T) {
	ctx := context.Background()
	w := newWorld()
	e, _ := newEngine(t, w)
	available(t, e, agentInfo("alice", 1, "sales"))
	mustEnqueue(t, e, newTask("t1", sales))
	o := w.lastOffer(t, "t1")
	w.failNextEmit(subjects.KindTaskAccepted)
	if _, err := e.Accept(ctx, tenant, "alice", o.GetOfferId()); err == nil {
		t.Fatal("Accept succeeded although TaskAccepted could not be published")
	}
	checkEvents(t, w, 0, "queued t1 pos=1", "offered t1 to alice")
	e.Tick(ctx)
	checkEvents(t, w, 0, "queued t1 pos=1", "offered t1 to alice", "accepted t1 by alice")
	// Once out, it is not sent again.
	e.Tick(ctx)
	checkEvents(t, w, 0, "queued t1 pos=1", "offered t1 to alice", "accepted t1 by alice")
}

// A replica that saved an accept and died before its TaskAccepted went
// out: the replica taking the tenant over publishes it (and a takeover
// after an event that did go out sends nothing new).
func TestTakeoverAnnouncesAnAcceptItsPredecessorDidNotPublish(t *testing.T) {
	ctx := context.Background()
	w := newWorld()
	c := newClock()
	a, _, _ := replica(t, w, c)
	available(t, a, agentInfo("alice", 1, "sales"))
	mustEnqueue(t, a, newTask("t1", sales))
	o := w.lastOffer(t, "t1")
	w.failNextEmit(subjects.KindTaskAccepted)
	if _, err := a.Accept(ctx, tenant, "alice", o.GetOfferId()); err == nil {
		t.Fatal("Accept succeeded although TaskAccepted could not be published")
	}
	a.Close() // dies before any Tick
	c.Advance(5 * time.Second)
	replica(t, w, c)
	checkEvents(t, w, 0, "queued t1 pos=1", "offered t1 to alice", "accepted t1 by alice")
	c.Advance(5 * time.Second)
	replica(t, w, c)
	checkEvents(t, w, 0, "queued t1 pos=1", "offered t1 to alice", "accepted t1 by alice")
}
