package workflowrunner_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/timestamppb"

	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
	messagingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/messaging/v1"
	outboundv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/outbound/v1"
	sessionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/session/v1"
	workflowv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/workflow/v1"

	"github.com/switchboard-cc/switchboard/pkg/bus"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
	"github.com/switchboard-cc/switchboard/pkg/workflowdef"
)

// queueLoopFlow queues the session and, every second while the task is
// queued, tells the customer their place.
var queueLoopFlow = &workflowdef.Definition{Start: "q", Activities: []workflowdef.Activity{
	{ID: "q", Type: "queue_task", Next: map[string]string{"queued": "wait"}},
	{ID: "wait", Type: "delay", Params: map[string]any{"duration": "1s"}, Next: map[string]string{"next": "pos"}},
	{ID: "pos", Type: "get_queue_position", Params: map[string]any{"parameter": "position"}, Next: map[string]string{"next": "tell"}},
	{ID: "tell", Type: "message", Params: map[string]any{"text": "You are number ${position}."}, Next: map[string]string{"next": "check"}},
	{ID: "check", Type: "check_task", Next: map[string]string{"queued": "wait", "not_queued": "gone"}},
	{ID: "gone", Type: "disconnect", Params: map[string]any{"text": "Your request is no longer queued."}},
}}

// A restart of workflow-runner in the middle of the queue loop (Delay →
// Get Queue Position → Message → Check Task → Delay …), with the loop's
// timer firing while it is down, resumes the loop where it was: every
// visit's message is sent once, in order, none skipped, and the steps
// are numbered without a gap or a repeat.
func TestRestartMidQueueLoop(t *testing.T) {
	if err := workflowdef.Validate(queueLoopFlow); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	h := newHarness(t, &flowConfig{def: queueLoopFlow, svc: &configv1.Service{Name: "Desk"}}, 4)
	const session = "ss_loop1"
	sent := func() ([]*outboundv1.OutboundMessageRequested, []string) {
		return messages(t, h.b, subjects.StreamOutbound, subjects.OutboundRequested("acme"), func() *outboundv1.OutboundMessageRequested { return &outboundv1.OutboundMessageRequested{} })
	}
	stop := h.run()
	conv := &messagingv1.ConversationRef{Channel: messagingv1.Channel_CHANNEL_SMS, CustomerAddress: "+15550100"}
	if _, err := h.b.Publish(ctx, subjects.SessionStarted("acme"), &sessionv1.SessionStarted{TenantId: "acme", SessionId: session,
		ServiceId: "desk", Conversation: conv, StartedAt: timestamppb.Now()}, bus.MsgID("start")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "two turns of the loop", func() bool { m, _ := sent(); return len(m) >= 2 })
	stop()

	// The loop's Delay fires while the runner is down.
	timers, err := h.b.JS.Stream(ctx, subjects.StreamWorkflowTimers)
	if err != nil {
		t.Fatal(err)
	}
	fired := func() uint64 {
		info, err := timers.Info(ctx, jetstream.WithSubjectFilter(subjects.WorkflowTimerFired("acme")))
		if err != nil {
			return 0
		}
		return info.State.Subjects[subjects.WorkflowTimerFired("acme")]
	}
	down := fired()
	waitFor(t, "the Delay to fire while the runner is down", func() bool { return fired() > down })
	// (A run cut short by the stop may have stored its message without
	// saving the instance: the retry after the restart publishes it under
	// the same id, which the stream drops.)
	before, _ := sent()

	stop = h.run()
	defer stop()
	waitFor(t, "two more turns after the restart", func() bool { m, _ := sent(); return len(m) >= len(before)+2 })
	h.dist.close()
	waitFor(t, "the end of the loop", func() bool {
		m, _ := sent()
		return len(m) > 0 && m[len(m)-1].GetBody() == "Your request is no longer queued."
	})

	msgs, ids := sent()
	turns := len(msgs) - 1
	for i, m := range msgs[:turns] {
		want := session + "-tell"
		if i > 0 {
			want += fmt.Sprintf("_%d", i+1)
		}
		if ids[i] != want || m.GetRequestId() != want || m.GetBody() != "You are number 3." {
			t.Errorf("message %d: %q %q, want %q %q", i, ids[i], m.GetBody(), want, "You are number 3.")
		}
	}
	steps, _ := messages(t, h.b, subjects.StreamWorkflow, subjects.WorkflowStepCompleted("acme"), func() *workflowv1.StepCompleted { return &workflowv1.StepCompleted{} })
	delays := 0
	for i, s := range steps {
		if s.GetStep() != int64(i+1) {
			t.Fatalf("step event %d is step %d: steps are repeated or lost", i+1, s.GetStep())
		}
		if s.GetActivity() == "wait" {
			delays++
		}
	}
	if delays != turns {
		t.Errorf("%d Delays completed for %d messages, want one each", delays, turns)
	}
	if n := len(steps); n != 1+4*turns+1 {
		t.Errorf("%d steps for %d turns, want the queue, four per turn and the disconnect", n, turns)
	}
	ends, _ := messages(t, h.b, subjects.StreamWorkflow, subjects.WorkflowEndRequested("acme"), func() *workflowv1.SessionEndRequested { return &workflowv1.SessionEndRequested{} })
	if len(ends) != 1 {
		t.Errorf("%d end requests, want 1", len(ends))
	}
}
