package workflowrunner_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
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

// threeQuestions asks a name, an age and an email address, then queues.
var threeQuestions = &workflowdef.Definition{Start: "name", Activities: []workflowdef.Activity{
	{ID: "name", Type: "collect_information", Params: map[string]any{"prompt": "Your name?", "parameter": "name"}, Next: map[string]string{"next": "age", "no_answer": "queue"}},
	{ID: "age", Type: "collect_information", Params: map[string]any{"prompt": "Your age, ${name}?", "parameter": "age", "type": "number"}, Next: map[string]string{"next": "email", "no_answer": "queue"}},
	{ID: "email", Type: "collect_information", Params: map[string]any{"prompt": "Your email?", "parameter": "email", "type": "email"}, Next: map[string]string{"next": "queue", "no_answer": "queue"}},
	{ID: "queue", Type: "queue_task"},
}}

// answers to threeQuestions' prompts, by the prompt's activity.
var answers = map[string]string{"name": "Dana", "age": "42", "email": "dana@example.com"}

// 1,000 conversations at once through a three-question Collect
// Information flow on real JetStream (the runner's own consumers, KV and
// publishes): every customer answers each question when it arrives, and
// every conversation reaches Queue Task with its three answers. A load
// test, not timed; skipped with -short.
func TestThousandConversationsLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: a 1,000-conversation load test; make test runs it")
	}
	if err := workflowdef.Validate(threeQuestions); err != nil {
		t.Fatal(err)
	}
	const n = 1000
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h := newHarness(t, &flowConfig{def: threeQuestions, svc: &configv1.Service{Name: "Desk"}}, 32)
	stop := h.run()
	defer stop()
	if err := h.b.EnsureStreams(ctx, subjects.StreamOptions{}, subjects.StreamOutbound, subjects.StreamSession, subjects.StreamWorkflow); err != nil {
		t.Fatal(err)
	}

	// The customers: each prompt is answered as it arrives.
	s, err := h.b.JS.Stream(ctx, subjects.StreamOutbound)
	if err != nil {
		t.Fatal(err)
	}
	oc, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subjects.OutboundRequested("acme")}})
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 1)
	cc, err := oc.Consume(func(m jetstream.Msg) {
		var req outboundv1.OutboundMessageRequested
		if err := proto.Unmarshal(m.Data(), &req); err != nil {
			return
		}
		session := req.GetSessionId()
		activity := strings.TrimPrefix(req.GetRequestId(), session+"-")
		answer, ok := answers[activity]
		if !ok {
			select {
			case errs <- fmt.Errorf("session %s was sent %q (%s), not a question", session, req.GetBody(), req.GetRequestId()):
			default:
			}
			return
		}
		id := session + "-" + activity
		if _, err := h.b.Publish(ctx, subjects.SessionMessageAdded("acme"), &sessionv1.MessageAdded{TenantId: "acme", SessionId: session,
			MessageId: id, Sender: sessionv1.SenderKind_SENDER_KIND_CUSTOMER, Body: answer, OccurredAt: timestamppb.Now()}, bus.MsgID(id)); err != nil {
			select {
			case errs <- err:
			default:
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Stop()

	for i := range n {
		session := fmt.Sprintf("ss_load%04d", i)
		conv := &messagingv1.ConversationRef{Channel: messagingv1.Channel_CHANNEL_SMS, CustomerAddress: fmt.Sprintf("+1555%07d", i)}
		if _, err := h.b.Publish(ctx, subjects.SessionStarted("acme"), &sessionv1.SessionStarted{TenantId: "acme", SessionId: session,
			ServiceId: "desk", Conversation: conv, StartedAt: timestamppb.Now()}, bus.MsgID(session)); err != nil {
			t.Fatal(err)
		}
	}

	wf, err := h.b.JS.Stream(ctx, subjects.StreamWorkflow)
	if err != nil {
		t.Fatal(err)
	}
	queued := func() uint64 {
		info, err := wf.Info(ctx, jetstream.WithSubjectFilter(subjects.WorkflowTaskRequested("acme")))
		if err != nil {
			return 0
		}
		return info.State.Subjects[subjects.WorkflowTaskRequested("acme")]
	}
	deadline := time.Now().Add(3 * time.Minute) // a bound against hanging, not a timing assertion
	for queued() < n {
		select {
		case err := <-errs:
			t.Fatal(err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d conversations reached Queue Task", queued(), n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	tasks, _ := messages(t, h.b, subjects.StreamWorkflow, subjects.WorkflowTaskRequested("acme"), func() *workflowv1.TaskRequested { return &workflowv1.TaskRequested{} })
	seen := map[string]bool{}
	for _, task := range tasks {
		seen[task.GetSessionId()] = true
	}
	if len(seen) != n {
		t.Errorf("%d distinct sessions queued, want %d", len(seen), n)
	}
	kv, err := h.b.JS.KeyValue(ctx, subjects.BucketWorkflowInstances)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{0, n / 2, n - 1} {
		e, err := kv.Get(ctx, fmt.Sprintf("acme.ss_load%04d", i))
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{`"name":"Dana"`, `"age":"42"`, `"email":"dana@example.com"`} {
			if !strings.Contains(string(e.Value()), want) {
				t.Errorf("instance %d lacks %s: %s", i, want, e.Value())
			}
		}
	}
	prompts, _ := messages(t, h.b, subjects.StreamOutbound, subjects.OutboundRequested("acme"), func() *outboundv1.OutboundMessageRequested { return &outboundv1.OutboundMessageRequested{} })
	if len(prompts) != 3*n {
		t.Errorf("%d prompts sent, want %d (three per conversation, no retry)", len(prompts), 3*n)
	}
}
