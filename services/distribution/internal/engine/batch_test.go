package engine_test

import (
	"context"
	"strings"
	"testing"

	"github.com/switchboard-cc/switchboard/services/distribution/internal/engine"
)

// A lane that fell behind hands the engine its task requests together:
// each request gets its own answer, and the batch does what the requests
// one by one would (a second copy in the batch, a known task and a task of
// an ended session change nothing), the offers going to the agents with room.
func TestEnqueueBatch(t *testing.T) {
	w := newWorld()
	e, _ := newEngine(t, w)
	available(t, e, agentInfo("alice", 2, "support"), agentInfo("bob", 1, "support"))
	ctx := context.Background()
	if err := w.store().MarkSessionEnded(ctx, tenant, "ss_gone"); err != nil {
		t.Fatal(err)
	}
	old := newTask("old", support)
	old.State = engine.TaskCompleted
	if err := w.store().Save(ctx, old); err != nil {
		t.Fatal(err)
	}
	n := len(w.events())
	batch := []*engine.Task{newTask("a", support), newTask("b", support), newTask("a", support), newTask("gone", support),
		newTask("old", support), newTask("c", support), newTask("d", support)}
	for i, err := range e.EnqueueBatch(ctx, batch) {
		if err != nil {
			t.Errorf("task %d (%s): %v", i, batch[i].ID, err)
		}
	}
	var queued, offered []string
	for _, ev := range w.events()[n:] {
		switch {
		case strings.HasPrefix(ev, "queued "):
			queued = append(queued, strings.Fields(ev)[1])
		case strings.HasPrefix(ev, "offered "):
			offered = append(offered, ev)
		}
	}
	if strings.Join(queued, " ") != "a b c d" {
		t.Errorf("queued %v, want a b c d once each in order", queued)
	}
	// Alice has room for two, Bob for one; the oldest three are offered.
	want := map[string]bool{"a": true, "b": true, "c": true}
	to := map[string]int{}
	for _, ev := range offered {
		f := strings.Fields(ev) // offered <task> to <agent>
		if !want[f[1]] {
			t.Errorf("%q: only a, b and c should be offered", ev)
		}
		to[f[3]]++
	}
	if len(offered) != 3 || to["alice"] != 2 || to["bob"] != 1 {
		t.Errorf("offers %v, want a, b and c: two to alice, one to bob", offered)
	}

	// A store failure fails that request only (it is redelivered); the
	// other is queued.
	w.mu.Lock()
	w.failSave = 1
	w.mu.Unlock()
	errs := e.EnqueueBatch(ctx, []*engine.Task{newTask("e", support), newTask("f", support)})
	failed := 0
	for _, err := range errs {
		if err != nil {
			failed++
		}
	}
	if failed != 1 {
		t.Fatalf("errors %v, want exactly one", errs)
	}
}
