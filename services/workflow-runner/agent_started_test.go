package workflowrunner_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
	distributionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/distribution/v1"
	messagingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/messaging/v1"
	outboundv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/outbound/v1"
	sessionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/session/v1"
	workflowv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/workflow/v1"

	"github.com/switchboard-cc/switchboard/pkg/bus"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
	"github.com/switchboard-cc/switchboard/pkg/workflowdef"
)

// greetAskQueueFlow greets, asks for an order number and queues.
var greetAskQueueFlow = &workflowdef.Definition{Start: "hello", Activities: []workflowdef.Activity{
	{ID: "hello", Type: "message", Params: map[string]any{"text": "Hello, this is Desk."}, Next: map[string]string{"next": "ask"}},
	{ID: "ask", Type: "collect_information", Params: map[string]any{"prompt": "Your order number?", "parameter": "order"}, Next: map[string]string{"next": "queue", "no_answer": "queue"}},
	{ID: "queue", Type: "queue_task"},
}}

// A session an agent started (a WhatsApp template, SessionStarted with
// started_by_agent_id) runs no workflow: next to a customer-started
// session of the same service, which is greeted, asked, answered, queued,
// accepted and ended, the agent's session — its start, a customer
// message, distribution's accept (no offer) and its end — gets no
// instance, no message, no question, no task request and no step, and
// nothing is dead-lettered.
func TestAgentStartedSessionRunsNoWorkflow(t *testing.T) {
	if err := workflowdef.Validate(greetAskQueueFlow); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	h := newHarness(t, &flowConfig{def: greetAskQueueFlow, svc: &configv1.Service{Name: "Desk"}}, 4)
	stop := h.run()
	defer stop()
	const cust, agent = "ss_cust1", "ss_agent1"
	publish := func(subject string, ev proto.Message, id string) {
		t.Helper()
		if _, err := h.b.Publish(ctx, subject, ev, bus.MsgID(id)); err != nil {
			t.Fatal(err)
		}
	}
	wa := func(n string) *messagingv1.ConversationRef {
		return &messagingv1.ConversationRef{Channel: messagingv1.Channel_CHANNEL_WHATSAPP, CustomerAddress: "whatsapp:+1555010" + n, BusinessAddress: "whatsapp:+15550199"}
	}
	sent := func(session string) []string {
		msgs, _ := messages(t, h.b, subjects.StreamOutbound, subjects.OutboundRequested("acme"), func() *outboundv1.OutboundMessageRequested { return &outboundv1.OutboundMessageRequested{} })
		var out []string
		for _, m := range msgs {
			if m.GetSessionId() == session {
				out = append(out, m.GetBody())
			}
		}
		return out
	}
	tasks := func(session string) int {
		reqs, _ := messages(t, h.b, subjects.StreamWorkflow, subjects.WorkflowTaskRequested("acme"), func() *workflowv1.TaskRequested { return &workflowv1.TaskRequested{} })
		n := 0
		for _, r := range reqs {
			if r.GetSessionId() == session {
				n++
			}
		}
		return n
	}

	publish(subjects.SessionStarted("acme"), &sessionv1.SessionStarted{TenantId: "acme", SessionId: agent, ServiceId: "desk", EntryId: "wa",
		Conversation: wa("1"), CustomerName: "Ari", StartedAt: timestamppb.Now(), StartedByAgentId: "u_agent7"}, "start-"+agent)
	publish(subjects.SessionStarted("acme"), &sessionv1.SessionStarted{TenantId: "acme", SessionId: cust, ServiceId: "desk", EntryId: "wa",
		Conversation: wa("2"), CustomerName: "Dana", FirstMessageSid: "SM1", StartedAt: timestamppb.Now()}, "start-"+cust)
	waitFor(t, "the customer-started session's greeting and question", func() bool { return len(sent(cust)) == 2 })

	// Each customer writes; distribution then queues and accepts both
	// tasks (the agent's without an offer), and both sessions end.
	for i, s := range []string{agent, cust} {
		publish(subjects.SessionMessageAdded("acme"), &sessionv1.MessageAdded{TenantId: "acme", SessionId: s, MessageId: "m-" + s,
			Direction: sessionv1.Direction_DIRECTION_INBOUND, Sender: sessionv1.SenderKind_SENDER_KIND_CUSTOMER, Body: "A-" + string(rune('1'+i)),
			OccurredAt: timestamppb.Now()}, "msg-"+s)
	}
	waitFor(t, "the customer-started session's task request", func() bool { return tasks(cust) == 1 })
	for _, s := range []string{agent, cust} {
		publish(subjects.TaskAccepted("acme"), &distributionv1.TaskAccepted{TenantId: "acme", TaskId: "tk_" + s, SessionId: s, ServiceId: "desk",
			AgentId: "u_agent7", AcceptedAt: timestamppb.Now()}, "accepted-"+s)
		publish(subjects.SessionEnded("acme"), &sessionv1.SessionEnded{TenantId: "acme", SessionId: s, Outcome: sessionv1.Outcome_OUTCOME_HANDLED,
			AgentId: "u_agent7", ServiceId: "desk", EndedAt: timestamppb.Now()}, "ended-"+s)
	}

	kv, err := h.b.JS.KeyValue(ctx, subjects.BucketWorkflowInstances)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the customer-started session's instance to be done", func() bool {
		e, err := kv.Get(ctx, "acme."+cust)
		if err != nil {
			return false
		}
		var st struct {
			Status string `json:"status"`
		}
		return json.Unmarshal(e.Value(), &st) == nil && st.Status == "done"
	})
	// Every event of both sessions has been handled and acknowledged.
	waitFor(t, "the consumers to acknowledge everything", func() bool {
		for stream, durable := range map[string]string{subjects.StreamSession: subjects.ConsumerWorkflowSessions,
			subjects.StreamDistribution: subjects.ConsumerWorkflowDistribution} {
			c, err := h.b.JS.Consumer(ctx, stream, durable)
			if err != nil {
				return false
			}
			info, err := c.Info(ctx)
			if err != nil || info.NumPending != 0 || info.NumAckPending != 0 {
				return false
			}
		}
		return true
	})

	if got, want := sent(cust), []string{"Hello, this is Desk.", "Your order number?"}; !slices.Equal(got, want) {
		t.Errorf("customer-started session was sent %q, want %q", got, want)
	}
	if got := sent(agent); len(got) != 0 {
		t.Errorf("agent-started session was sent %q, want nothing (no workflow)", got)
	}
	if n := tasks(agent); n != 0 {
		t.Errorf("agent-started session requested %d tasks, want none", n)
	}
	if _, err := kv.Get(ctx, "acme."+agent); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Errorf("agent-started session's instance: err = %v, want none stored", err)
	}
	steps, _ := messages(t, h.b, subjects.StreamWorkflow, subjects.WorkflowStepCompleted("acme"), func() *workflowv1.StepCompleted { return &workflowv1.StepCompleted{} })
	for _, s := range steps {
		if s.GetSessionId() == agent {
			t.Errorf("agent-started session completed step %v", s)
		}
	}
	count := func(stream, subject string) uint64 {
		t.Helper()
		s, err := h.b.JS.Stream(ctx, stream)
		if err != nil {
			t.Fatal(err)
		}
		info, err := s.Info(ctx, jetstream.WithSubjectFilter(subject))
		if err != nil {
			t.Fatal(err)
		}
		return info.State.Subjects[subject]
	}
	for _, subject := range []string{subjects.WorkflowEndRequested("acme"), subjects.WorkflowFailed("acme")} {
		if n := count(subjects.StreamWorkflow, subject); n != 0 {
			t.Errorf("%d events on %s, want none", n, subject)
		}
	}
	dl, err := h.b.JS.Stream(ctx, subjects.StreamDeadLetter)
	if err != nil {
		t.Fatal(err)
	}
	if info, err := dl.Info(ctx); err != nil {
		t.Fatal(err)
	} else if info.State.Msgs != 0 {
		t.Errorf("%d messages dead-lettered, want none", info.State.Msgs)
	}
}
