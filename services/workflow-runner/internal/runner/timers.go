package runner

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	workflowv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/workflow/v1"

	"github.com/switchboard-cc/switchboard/pkg/bus"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
)

// Timers schedules and cancels an instance's one pending timer.
type Timers interface {
	// Schedule replaces the session's pending timer with ev, due at at.
	Schedule(ctx context.Context, ev *workflowv1.TimerFired, at time.Time) error
	// Cancel drops the session's pending timer, if any.
	Cancel(ctx context.Context, tenant, session string) error
}

// JetStreamTimers keeps timers as JetStream message schedules on the
// WORKFLOW_TIMERS stream: the schedule subject names the session, so a new
// timer replaces the old one and purging the subject cancels it; the
// server delivers a due timer to wftimer.timer.fired.<tenant>, and keeps it
// across restarts of workflow-runner (and of the server).
type JetStreamTimers struct {
	b      *bus.Bus
	stream jetstream.Stream
}

// NewJetStreamTimers uses the WORKFLOW_TIMERS stream, which must exist.
func NewJetStreamTimers(ctx context.Context, b *bus.Bus) (*JetStreamTimers, error) {
	s, err := b.JS.Stream(ctx, subjects.StreamWorkflowTimers)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", subjects.StreamWorkflowTimers, err)
	}
	return &JetStreamTimers{b: b, stream: s}, nil
}

// Schedule publishes the schedule. Schedules have second precision, so the
// time is rounded up: a timer never fires early.
func (t *JetStreamTimers) Schedule(ctx context.Context, ev *workflowv1.TimerFired, at time.Time) error {
	if r := at.Truncate(time.Second); !r.Equal(at) {
		at = r.Add(time.Second)
	}
	opt := func(_ *nats.Msg, o *[]jetstream.PublishOpt) {
		*o = append(*o, jetstream.WithScheduleAt(at), jetstream.WithScheduleTarget(subjects.WorkflowTimerFired(ev.GetTenantId())))
	}
	_, err := t.b.Publish(ctx, subjects.WorkflowTimerSchedule(ev.GetTenantId(), ev.GetSessionId()), ev, opt)
	return err
}

// Cancel purges the session's schedule subject.
func (t *JetStreamTimers) Cancel(ctx context.Context, tenant, session string) error {
	subj := subjects.WorkflowTimerSchedule(tenant, session)
	if err := t.stream.Purge(ctx, jetstream.WithPurgeSubject(subj)); err != nil {
		return fmt.Errorf("purge %s: %w", subj, err)
	}
	return nil
}
