package engine_test

import (
	"context"
	"sync"
	"testing"
	"time"

	distributionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/distribution/v1"

	"github.com/switchboard-cc/switchboard/services/distribution/internal/engine"
)

// memPresence is a PresenceStore in memory, shared by the engines of one
// test as the KV bucket is shared across restarts.
type memPresence struct {
	mu   sync.Mutex
	recs map[string]engine.PresenceRecord
}

func (m *memPresence) SavePresence(_ context.Context, r engine.PresenceRecord) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.recs[r.Tenant+"."+r.Agent] = r
	return nil
}

func (m *memPresence) LoadPresence(context.Context) ([]engine.PresenceRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []engine.PresenceRecord
	for _, r := range m.recs {
		out = append(out, r)
	}
	return out, nil
}

func TestPresenceGrace(t *testing.T) {
	ctx := context.Background()
	w := newWorld()
	e, clk := newEngine(t, w)
	e.SetPresenceOptions(engine.PresenceOptions{Store: &memPresence{recs: map[string]engine.PresenceRecord{}}, Grace: 30 * time.Second})
	alice := agentInfo("alice", 0, "sales")
	available(t, e, alice)
	clk.Advance(10 * time.Second)

	// The console closes: offline pending, no offers.
	st, err := e.ConsoleClosed(ctx, tenant, alice, clk.Now())
	if err != nil {
		t.Fatal(err)
	}
	if until := st.GetGraceUntil().AsTime(); st.GetPresence() != distributionv1.Presence_PRESENCE_OFFLINE || until.Before(clk.Now().Add(29*time.Second)) || until.After(clk.Now().Add(30*time.Second)) {
		t.Fatalf("after the console closed: %v, want offline with a grace of 30 s", st)
	}
	mustEnqueue(t, e, newTask("t1", sales))
	if got := len(w.offers()); got != 0 {
		t.Fatalf("%d offers during the grace, want 0", got)
	}
	// Back within the grace: offered at once, idle since before she left.
	clk.Advance(10 * time.Second)
	st, err = e.SetPresence(ctx, tenant, alice, distributionv1.Presence_PRESENCE_AVAILABLE)
	if err != nil {
		t.Fatal(err)
	}
	if st.GetGraceUntil() != nil {
		t.Errorf("grace_until = %v after coming back, want unset", st.GetGraceUntil())
	}
	if got := w.lastOffer(t, "t1").GetAgentId(); got != "alice" {
		t.Errorf("t1 offered to %q, want alice", got)
	}

	// Gone for longer than the grace: her idle time starts again.
	bob := agentInfo("bob", 0, "support")
	available(t, e, bob)
	start := e.State(tenant, "bob").GetIdleSince().AsTime()
	clk.Advance(time.Minute)
	if _, err := e.ConsoleClosed(ctx, tenant, bob, clk.Now()); err != nil {
		t.Fatal(err)
	}
	engine.EndGrace(e, tenant, "bob")
	if st := e.State(tenant, "bob"); st.GetGraceUntil() != nil || st.GetPresence() != distributionv1.Presence_PRESENCE_OFFLINE {
		t.Fatalf("after the grace: %v, want offline without grace", st)
	}
	clk.Advance(time.Minute)
	st, err = e.SetPresence(ctx, tenant, bob, distributionv1.Presence_PRESENCE_AVAILABLE)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.GetIdleSince().AsTime(); got.Before(start.Add(2 * time.Minute)) {
		t.Errorf("bob idle since %v after the grace ran out, want since he came back (after %v)", got, start.Add(2*time.Minute))
	}

	// Within the grace, idle time goes on.
	carl := agentInfo("carl", 0, "support")
	available(t, e, carl)
	since := e.State(tenant, "carl").GetIdleSince().AsTime()
	clk.Advance(time.Minute)
	if _, err := e.ConsoleClosed(ctx, tenant, carl, clk.Now()); err != nil {
		t.Fatal(err)
	}
	clk.Advance(5 * time.Second)
	st, err = e.SetPresence(ctx, tenant, carl, distributionv1.Presence_PRESENCE_AVAILABLE)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.GetIdleSince().AsTime(); !got.Equal(since) {
		t.Errorf("carl idle since %v after coming back within the grace, want %v", got, since)
	}
}

// Presence, the RONA flag and the idle time come back after a restart,
// and the agent is offered tasks without saying anything.
func TestPresenceSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	ps := &memPresence{recs: map[string]engine.PresenceRecord{}}
	w := newWorld()
	e1, clk := newEngine(t, w)
	e1.SetPresenceOptions(engine.PresenceOptions{Store: ps, Grace: 30 * time.Second})
	alice, bob := agentInfo("alice", 0, "sales"), agentInfo("bob", 0, "sales")
	available(t, e1, alice, bob)
	mustEnqueue(t, e1, newTask("t1", sales))
	offer := w.lastOffer(t, "t1")
	engine.FireRONA(e1, tenant, offer.GetOfferId()) // alice (idle longer) is flagged; bob gets it
	if got := w.lastOffer(t, "t1").GetAgentId(); got != "bob" {
		t.Fatalf("t1 re-offered to %q, want bob", got)
	}
	aliceBefore := e1.State(tenant, "alice")
	e1.Close()

	w2 := newWorld()
	e2, _ := newEngine(t, w2)
	engine.SetClock(e2, clk.Now)
	e2.SetPresenceOptions(engine.PresenceOptions{Store: ps, Grace: 30 * time.Second})
	n, err := e2.RestorePresence(ctx)
	if err != nil || n != 2 {
		t.Fatalf("RestorePresence = %d, %v; want 2 agents", n, err)
	}
	got := e2.State(tenant, "alice")
	if got.GetPresence() != distributionv1.Presence_PRESENCE_AVAILABLE || !got.GetRona() {
		t.Errorf("alice after the restart: %v, want available and RONA-flagged (before: %v)", got, aliceBefore)
	}
	// bob (not flagged) takes the next task without setting a presence.
	mustEnqueue(t, e2, newTask("t2", sales))
	if got := w2.lastOffer(t, "t2").GetAgentId(); got != "bob" {
		t.Errorf("t2 offered to %q, want bob", got)
	}
	// A supervisor resets alice's flag; that too is kept.
	st, err := e2.ResetRona(ctx, tenant, "alice")
	if err != nil || st.GetRona() || st.GetPresence() != distributionv1.Presence_PRESENCE_AVAILABLE {
		t.Fatalf("ResetRona = %v, %v; want available without the flag", st, err)
	}
	if r := ps.recs[tenant+".alice"]; r.RONA {
		t.Errorf("stored record of alice %+v still flagged", r)
	}
	if _, err := e2.ResetRona(ctx, tenant, "nobody"); err == nil {
		t.Errorf("ResetRona of an unknown agent succeeded")
	}
}

// A console's close reported late (the gateway retried it while
// distribution was unavailable, and meanwhile the agent reconnected and
// set themselves available) does not take the agent offline; one reported
// for a close after their last change does.
func TestStaleConsoleCloseIsIgnored(t *testing.T) {
	ctx := context.Background()
	w := newWorld()
	e, clk := newEngine(t, w)
	e.SetPresenceOptions(engine.PresenceOptions{Store: &memPresence{recs: map[string]engine.PresenceRecord{}}, Grace: 30 * time.Second})
	dana := agentInfo("dana", 0, "sales")
	available(t, e, dana)
	closedAt := clk.Now()
	clk.Advance(2 * time.Second)
	if _, err := e.SetPresence(ctx, tenant, dana, distributionv1.Presence_PRESENCE_AVAILABLE); err != nil {
		t.Fatal(err)
	}
	clk.Advance(3 * time.Second)
	st, err := e.ConsoleClosed(ctx, tenant, dana, closedAt)
	if err != nil {
		t.Fatal(err)
	}
	if st.GetPresence() != distributionv1.Presence_PRESENCE_AVAILABLE || st.GetGraceUntil() != nil {
		t.Fatalf("after a stale close: %v, want still available", st)
	}
	mustEnqueue(t, e, newTask("t1", sales))
	if got := w.lastOffer(t, "t1").GetAgentId(); got != "dana" {
		t.Errorf("t1 offered to %q, want dana", got)
	}
	// A close after her last change applies.
	st, err = e.ConsoleClosed(ctx, tenant, dana, clk.Now())
	if err != nil {
		t.Fatal(err)
	}
	if st.GetPresence() != distributionv1.Presence_PRESENCE_OFFLINE {
		t.Fatalf("after a current close: %v, want offline", st)
	}
}
