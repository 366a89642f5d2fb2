package workflowrunner_test

import (
	"context"
	"encoding/hex"
	"log/slog"
	"net"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
	messagingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/messaging/v1"
	outboundv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/outbound/v1"
	sessionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/session/v1"

	"github.com/switchboard-cc/switchboard/pkg/authn"
	"github.com/switchboard-cc/switchboard/pkg/bus"
	"github.com/switchboard-cc/switchboard/pkg/grpcserver"
	"github.com/switchboard-cc/switchboard/pkg/natsembed/natstest"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
	"github.com/switchboard-cc/switchboard/pkg/workflowdef"
	workflowrunner "github.com/switchboard-cc/switchboard/services/workflow-runner"
)

// delayConfig serves one service whose workflow asks a question, waits
// two seconds and says so.
type delayConfig struct {
	configv1.UnimplementedServiceServiceServer
	configv1.UnimplementedWorkflowServiceServer
}

var delayFlow = &workflowdef.Definition{Start: "ask", Activities: []workflowdef.Activity{
	{ID: "ask", Type: "collect_information", Params: map[string]any{"prompt": "Your name?", "parameter": "name"}, Next: map[string]string{"next": "wait", "no_answer": "wait"}},
	{ID: "wait", Type: "delay", Params: map[string]any{"duration": "2s"}, Next: map[string]string{"next": "done"}},
	{ID: "done", Type: "message", Params: map[string]any{"text": "Waited, ${name}."}, Next: map[string]string{"next": "queue"}},
	{ID: "queue", Type: "queue_task"},
}}

func (delayConfig) GetService(_ context.Context, r *configv1.GetServiceRequest) (*configv1.GetServiceResponse, error) {
	return &configv1.GetServiceResponse{Service: &configv1.Service{Id: r.GetId(), TenantId: "acme", Name: "Desk", WorkflowId: "wf"}}, nil
}

func (delayConfig) GetWorkflow(_ context.Context, r *configv1.GetWorkflowRequest) (*configv1.GetWorkflowResponse, error) {
	p, err := workflowdef.ToProto(delayFlow)
	if err != nil {
		return nil, err
	}
	return &configv1.GetWorkflowResponse{Workflow: &configv1.Workflow{Id: "wf", Version: 3, Definition: p}}, nil
}

// A restart of workflow-runner in the middle of a question and of a Delay
// loses nothing and repeats nothing: the answer given while it was down is
// consumed after the restart, the Delay's timer (a JetStream message
// schedule) fires once, and the message after it is sent once.
func TestRestartMidQuestionAndDelay(t *testing.T) {
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	key := []byte("0123456789abcdef0123456789abcdef")
	keys, _ := authn.NewKeys(key)
	ns := natstest.Start(t)
	b, err := bus.Connect(ns.ClientURL(), t.Name(), log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	srv := grpcserver.New(log, keys)
	configv1.RegisterServiceServiceServer(srv.Server, delayConfig{})
	configv1.RegisterWorkflowServiceServer(srv.Server, delayConfig{})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sctx, stopSrv := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(sctx, lis) }()
	t.Cleanup(func() { stopSrv(); <-served })
	cc, err := grpcserver.Dial(lis.Addr().String(), keys, workflowrunner.Name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	cfg := workflowrunner.Defaults()
	cfg.AuthKeys = hex.EncodeToString(key)

	start := func() (stop func()) {
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() {
			done <- workflowrunner.Run(rctx, cfg, workflowrunner.Deps{Bus: b, ConfigConn: cc, AuthKeys: keys}, log)
		}()
		return func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		}
	}
	texts := func() []string {
		s, err := b.JS.Stream(ctx, subjects.StreamOutbound)
		if err != nil {
			return nil
		}
		c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		batch, err := c.FetchNoWait(100)
		if err != nil {
			t.Fatal(err)
		}
		for m := range batch.Messages() {
			var o outboundv1.OutboundMessageRequested
			if err := proto.Unmarshal(m.Data(), &o); err == nil {
				out = append(out, o.GetBody())
			}
		}
		return out
	}

	stop := start()
	conv := &messagingv1.ConversationRef{Channel: messagingv1.Channel_CHANNEL_SMS, CustomerAddress: "+15550100"}
	if _, err := b.Publish(ctx, subjects.SessionStarted("acme"), &sessionv1.SessionStarted{TenantId: "acme", SessionId: "ss_r1",
		ServiceId: "desk", Conversation: conv, StartedAt: timestamppb.Now()}, bus.MsgID("start")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the question", func() bool { return len(texts()) == 1 })
	stop()

	// The customer answers while the runner is down.
	if _, err := b.Publish(ctx, subjects.SessionMessageAdded("acme"), &sessionv1.MessageAdded{TenantId: "acme", SessionId: "ss_r1", MessageId: "m1",
		Sender: sessionv1.SenderKind_SENDER_KIND_CUSTOMER, Body: "Dana", OccurredAt: timestamppb.Now()}, bus.MsgID("m1")); err != nil {
		t.Fatal(err)
	}
	stop = start()
	// The answer is taken and the Delay's schedule is stored; stop before it fires.
	timers, err := b.JS.Stream(ctx, subjects.StreamWorkflowTimers)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := b.JS.KeyValue(ctx, subjects.BucketWorkflowInstances)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the instance to wait in the Delay", func() bool {
		e, err := kv.Get(ctx, "acme.ss_r1")
		return err == nil && strings.Contains(string(e.Value()), `"kind":"timer"`)
	})
	stop()
	if got := texts(); len(got) != 1 {
		t.Fatalf("sent %q before the Delay ended, want only the question", got)
	}
	// The schedule fires while the runner is down; the fired timer waits
	// in the stream for the restarted runner.
	waitFor(t, "the timer to fire", func() bool {
		info, err := timers.Info(ctx, jetstream.WithSubjectFilter(subjects.WorkflowTimerFired("acme")))
		return err == nil && info.State.Subjects[subjects.WorkflowTimerFired("acme")] == 1
	})
	stop = start()
	defer stop()
	waitFor(t, "the message after the Delay", func() bool { return len(texts()) == 2 })
	if got := texts(); got[1] != "Waited, Dana." {
		t.Errorf("after the Delay sent %q, want %q", got[1], "Waited, Dana.")
	}
	// Nothing more comes (give a repeat the chance to show up: the stream
	// holds exactly one fired timer, and the schedule is gone).
	if _, err := timers.GetLastMsgForSubject(ctx, subjects.WorkflowTimerSchedule("acme", "ss_r1")); err == nil {
		t.Error("the schedule is still pending after it fired")
	}
	if got := texts(); len(got) != 2 {
		t.Errorf("sent %q, want the question and one message after the Delay", got)
	}
}
