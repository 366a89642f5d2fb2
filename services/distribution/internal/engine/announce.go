package engine

import (
	"context"
	"time"
)

// An accept saves the task accepted, then publishes TaskAccepted, which
// is what makes sessions assign the chat. A publish that fails (the
// stream's leader gone for a moment) used to rely on the agent asking
// again; an agent who gave up, or a replica that died between the two
// steps, left the task accepted with no assignment: the customer's
// messages reached nobody. Now the event goes out until it is confirmed:
//
//   - an accept whose publish failed marks the task (announce) and every
//     Tick publishes its TaskAccepted again, under the same message id;
//   - a replica that takes a tenant over marks the tasks accepted within
//     announceWindow, which the replica before it may have saved without
//     publishing. JetStream drops the copy of an event that went out
//     (the message id, within the stream's duplicate window, two minutes),
//     so a takeover sends nothing twice.

// announceWindow: accepts this recent may have been saved without their
// event when the replica that made them stopped. Shorter than the
// stream's duplicate window, so a republished event that did go out is
// dropped by JetStream.
const announceWindow = 90 * time.Second

// recentlyAccepted reports whether a task loaded accepted was accepted
// within announceWindow of now.
func recentlyAccepted(task *Task, now time.Time) bool {
	return !task.AcceptedAt.IsZero() && now.Sub(task.AcceptedAt) < announceWindow
}

// announceAccepted publishes TaskAccepted for the tenant's accepted tasks
// whose event is not confirmed (TaskQueued first for a task an agent
// started) (under e.mu).
func (e *Engine) announceAccepted(ctx context.Context, t *tenant) {
	for _, task := range t.tasks {
		if !task.announce || !task.State.held() {
			continue
		}
		if err := e.announceTask(ctx, task); err != nil {
			e.log.WarnContext(ctx, "publish an accepted task's TaskAccepted; retrying", "tenant", task.Tenant, "task", task.ID, "err", err)
			continue
		}
		task.announce = false
	}
}
