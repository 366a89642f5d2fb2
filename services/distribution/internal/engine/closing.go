package engine

import (
	"context"
	"errors"

	"google.golang.org/protobuf/proto"
)

// Closing a task: its last events (TaskWrapUpEnded and TaskCompleted, or
// TaskCanceled) are stored with the closed task (Task.Outbox) in the
// bucket of open tasks, at the revision last seen, before the first of
// them is published; once they are all out the task leaves the bucket.
// The message or call that closed the task is settled only after that
// write, so the close is never lost between the store and the stream:
//
//   - a publish that fails leaves the task closing here: a redelivery of
//     the session's end, or the next Tick, sends the events again (under
//     the same message ids, so JetStream drops what already went out);
//   - a replica that stops (or loses its connection) after the write, or
//     whose write landed though its answer was lost, leaves the closed
//     task in the bucket: the replica that takes the tenant over loads it
//     and sends its events (writing its record first, which the one that
//     closed it may not have done).

// Event is one event to publish: its subject, message and JetStream
// message id.
type Event struct {
	Subject string
	Message proto.Message
	MsgID   string
}

// closingOf returns the closing task of a session, nil if none.
func (t *tenant) closingOf(sessionID string) *Task {
	for _, c := range t.closing {
		if c.SessionID == sessionID {
			return c
		}
	}
	return nil
}

// finish publishes a closed task's stored events and removes it from the
// bucket of open tasks. An error leaves it closing, to be finished again.
func (e *Engine) finish(ctx context.Context, t *tenant, task *Task) error {
	if task.unrecorded {
		// Loaded closed: its record may be missing (the writer failed
		// after the bucket); the write also checks that nobody finished
		// it meanwhile.
		if err := e.store.Save(ctx, task); err != nil {
			if errors.Is(err, ErrConflict) {
				delete(t.closing, task.ID)
			}
			return err
		}
		task.unrecorded = false
	}
	for _, ev := range task.Outbox {
		if err := e.pub.Emit(ctx, ev.Subject, ev.Message, ev.MsgID); err != nil {
			return err
		}
	}
	if e.open != nil {
		err := e.open.RemoveOpen(ctx, task)
		switch {
		case errors.Is(err, ErrConflict):
			e.staleLocked(task.Tenant)
		case err != nil:
			// The events are out; the next Tick removes it (sending them
			// again under the same ids).
			e.log.WarnContext(ctx, "remove closed task from the open tasks; retrying", "tenant", task.Tenant, "task", task.ID, "err", err)
			return nil
		}
	}
	delete(t.closing, task.ID)
	return nil
}

// finishClosing finishes the tenant's closing tasks (under e.mu).
func (e *Engine) finishClosing(ctx context.Context, t *tenant) {
	for _, task := range t.closing {
		if err := e.finish(ctx, t, task); err != nil {
			e.log.ErrorContext(ctx, "publish the events of a closed task; retrying", "tenant", task.Tenant, "task", task.ID, "err", err)
		}
	}
}
