package distribution_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	sessionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/session/v1"

	"github.com/switchboard-cc/switchboard/pkg/subjects"
)

// Inputs that piled up while no replica ran (or a lane fell behind) are
// handled together, task requests and session ends in batches, in their
// order with the other inputs: every request is queued once, an end that
// follows its session's request cancels it, a bad request is
// dead-lettered alone, and the one agent with room gets exactly one offer.
func TestInputsThatPiledUpAreHandledInOrder(t *testing.T) {
	e := newEnv(t)
	c, stop := e.run(t)
	setAvailable(t, c)
	e.observe(t)
	stop()

	const n = 40
	for i := range n {
		id := fmt.Sprint(i)
		e.publish(t, subjects.WorkflowTaskRequested("acme"), request("tk_"+id, "ss_"+id, "sales"), "req-"+id)
		switch i {
		case 7:
			e.publish(t, subjects.SessionEnded("acme"), &sessionv1.SessionEnded{TenantId: "acme", SessionId: "ss_7", Reason: "left"}, "end-7")
		case 20:
			e.publish(t, subjects.WorkflowTaskRequested("acme"), request("tk_bad", "ss_bad", ""), "req-bad")
		case 30:
			e.publish(t, subjects.WorkflowTaskRequested("acme"), request("tk_3", "ss_3", "sales"), "req-3-again")
		}
	}
	// A run of ends, handled together.
	for i := 30; i < n; i++ {
		id := fmt.Sprint(i)
		e.publish(t, subjects.SessionEnded("acme"), &sessionv1.SessionEnded{TenantId: "acme", SessionId: "ss_" + id, Reason: "left"}, "end-"+id)
	}
	e.run(t)
	// The offer follows the queueing of its task: wait for both.
	waitFor(t, "every request queued and one offered", func() bool {
		q, o := 0, 0
		for _, ev := range e.events.events() {
			switch {
			case strings.HasPrefix(ev, "queued "):
				q++
			case strings.HasPrefix(ev, "offered "):
				o++
			}
		}
		return q >= n-11 && o >= 1
	})
	queued := map[string]int{}
	offers := 0
	for _, ev := range e.events.events() {
		switch f := strings.Fields(ev); f[0] {
		case "queued":
			queued[f[1]]++
		case "offered":
			offers++
		}
	}
	for i := range n {
		if id := fmt.Sprint("tk_", i); i != 7 && i < 30 && queued[id] != 1 {
			t.Errorf("%s queued %d times, want once", id, queued[id])
		}
	}
	// tk_7's session ended: a redelivery (the first deliveries found the
	// tenant not yet held) may bring the end before the request, which is
	// then not queued; else the end cancels it.
	// So with the ends of ss_30 to ss_39.
	for _, i := range []int{7, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39} {
		id := fmt.Sprint("tk_", i)
		if queued[id] > 1 {
			t.Errorf("%s queued %d times", id, queued[id])
		}
		if queued[id] > 0 {
			waitFor(t, id+" canceled", func() bool { return slices.Contains(e.events.events(), "canceled "+id) })
		}
	}
	if queued["tk_bad"] != 0 {
		t.Error("the request without a service was queued")
	}
	if offers != 1 {
		t.Errorf("%d offers to the one agent with room for one, want 1: %q", offers, e.events.events())
	}
}
