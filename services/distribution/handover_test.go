package distribution_test

import (
	"context"
	"strings"
	"testing"
	"time"

	distributionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/distribution/v1"

	"github.com/switchboard-cc/switchboard/pkg/subjects"
	"github.com/switchboard-cc/switchboard/services/distribution/internal/engine"
	"github.com/switchboard-cc/switchboard/services/distribution/internal/presence"
	"github.com/switchboard-cc/switchboard/services/distribution/internal/store"
)

// Two engines that both believe they hold a tenant (a hand-over seen late
// by one of them): the one with the older view fails to offer a task the
// other offered, publishes nothing, and reloads the tenant, after which it
// sees the other's offer.
func TestStaleHolderCannotOfferAgain(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	if err := e.bus.EnsureStreams(ctx, subjects.StreamOptions{}, subjects.StreamDistribution); err != nil {
		t.Fatal(err)
	}
	e.observe(t)
	holder := func() *engine.Engine {
		st, err := store.New(ctx, e.deps.Mongo.Database(e.db))
		if err != nil {
			t.Fatal(err)
		}
		if err := st.OpenTasks(ctx, e.bus.JS, 1); err != nil {
			t.Fatal(err)
		}
		ps, err := presence.Open(ctx, e.bus.JS, 1)
		if err != nil {
			t.Fatal(err)
		}
		eng := engine.New(e.bus, st, testLog())
		t.Cleanup(eng.Close)
		eng.SetPresenceOptions(engine.PresenceOptions{Store: ps})
		eng.SetPartitions(1)
		if _, _, err := eng.Acquire(ctx, []int{0}); err != nil {
			t.Fatal(err)
		}
		return eng
	}
	fresh, stale := holder(), holder()
	sales := engine.ServiceInfo{ID: "sales", Name: "Sales", RONATimeout: time.Hour, MaxParallelTasks: 1}
	if err := fresh.Enqueue(ctx, &engine.Task{ID: "tk_h1", Tenant: "acme", SessionID: "ss_h1", ServiceID: "sales", Service: sales}); err != nil {
		t.Fatal(err)
	}
	// The stale one loads the queued task, then misses what follows.
	stale.Release([]int{0})
	if _, _, err := stale.Acquire(ctx, []int{0}); err != nil {
		t.Fatal(err)
	}
	agent := func(id string) engine.AgentInfo {
		return engine.AgentInfo{ID: id, Eligible: true, Services: []string{"sales"}}
	}
	if _, err := fresh.SetPresence(ctx, "acme", agent("alice"), distributionv1.Presence_PRESENCE_AVAILABLE); err != nil {
		t.Fatal(err)
	}
	if got := len(fresh.State("acme", "alice").GetOffers()); got != 1 {
		t.Fatalf("alice holds %d offers on the fresh holder, want 1", got)
	}
	// bob becomes available on the stale holder, which still sees the
	// task queued: its offer to bob must not happen.
	if _, err := stale.SetPresence(ctx, "acme", agent("bob"), distributionv1.Presence_PRESENCE_AVAILABLE); err != nil {
		t.Fatal(err)
	}
	if got := stale.State("acme", "bob").GetOffers(); len(got) != 0 {
		t.Errorf("bob was offered %v by the stale holder", got)
	}
	waitFor(t, "the stale holder to reload and see alice's offer", func() bool {
		return len(stale.State("acme", "alice").GetOffers()) == 1
	})
	waitFor(t, "the events", func() bool {
		return len(e.events.events()) >= 2
	})
	time.Sleep(100 * time.Millisecond) // nothing else may follow; give it the chance
	var offers []string
	for _, ev := range e.events.events() {
		if strings.HasPrefix(ev, "offered tk_h1") {
			offers = append(offers, ev)
		}
	}
	if len(offers) != 1 || offers[0] != "offered tk_h1 to alice" {
		t.Errorf("offers of tk_h1 published: %q, want one, to alice", offers)
	}
}
