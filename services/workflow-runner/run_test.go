package workflowrunner_test

import (
	"context"
	"encoding/hex"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
	outboundv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/outbound/v1"
	sessionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/session/v1"
	workflowv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/workflow/v1"

	"github.com/switchboard-cc/switchboard/pkg/authn"
	"github.com/switchboard-cc/switchboard/pkg/bus"
	"github.com/switchboard-cc/switchboard/pkg/grpcserver"
	"github.com/switchboard-cc/switchboard/pkg/natsembed/natstest"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
	workflowrunner "github.com/switchboard-cc/switchboard/services/workflow-runner"
)

type fakeConfig struct {
	configv1.UnimplementedServiceServiceServer
}

func (fakeConfig) GetService(_ context.Context, r *configv1.GetServiceRequest) (*configv1.GetServiceResponse, error) {
	if r.GetTenantId() != "acme" || r.GetId() != "sales" {
		return nil, status.Error(codes.NotFound, "no such service")
	}
	return &configv1.GetServiceResponse{Service: &configv1.Service{Id: "sales", TenantId: "acme", Name: "Sales", Greeting: "Hi!"}}, nil
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Run consumes session starts from JetStream and publishes the greeting and
// the task request; a start redelivered after the dedupe window publishes
// nothing; a start for a missing service fails the workflow.
func TestRun(t *testing.T) {
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	key := []byte("0123456789abcdef0123456789abcdef")
	keys, err := authn.NewKeys(key)
	if err != nil {
		t.Fatal(err)
	}
	ns := natstest.Start(t)
	b, err := bus.Connect(ns.ClientURL(), t.Name(), log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	cfg := workflowrunner.Defaults()
	cfg.AuthKeys = hex.EncodeToString(key)

	cfgSrv := grpcserver.New(log, keys)
	configv1.RegisterServiceServiceServer(cfgSrv.Server, fakeConfig{})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- cfgSrv.Serve(sctx, lis) }()
	t.Cleanup(func() { stop(); <-served })
	cc, err := grpcserver.Dial(lis.Addr().String(), keys, workflowrunner.Name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })

	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- workflowrunner.Run(rctx, cfg, workflowrunner.Deps{Bus: b, ConfigConn: cc, AuthKeys: keys}, log)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	streams := map[string]jetstream.Stream{}
	waitFor(t, "Run to create its streams", func() bool {
		for _, n := range []string{subjects.StreamSession, subjects.StreamWorkflow, subjects.StreamOutbound} {
			s, err := b.JS.Stream(ctx, n)
			if err != nil {
				return false
			}
			streams[n] = s
		}
		return true
	})
	count := func(stream string) uint64 {
		info, err := streams[stream].Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return info.State.Msgs
	}
	countSubject := func(stream, subject string) uint64 {
		info, err := streams[stream].Info(ctx, jetstream.WithSubjectFilter(subject))
		if err != nil {
			t.Fatal(err)
		}
		return info.State.Subjects[subject]
	}
	publishStart := func(session, service, msgID string) {
		t.Helper()
		ev := &sessionv1.SessionStarted{TenantId: "acme", SessionId: session, ServiceId: service, StartedAt: timestamppb.Now()}
		if _, err := b.Publish(ctx, subjects.SessionStarted("acme"), ev, bus.MsgID(msgID)); err != nil {
			t.Fatal(err)
		}
	}

	publishStart("ss_1", "sales", "start-1")
	waitFor(t, "the greeting and the task request", func() bool {
		return count(subjects.StreamOutbound) == 1 && countSubject(subjects.StreamWorkflow, subjects.WorkflowTaskRequested("acme")) == 1
	})
	greeting, err := streams[subjects.StreamOutbound].GetLastMsgForSubject(ctx, subjects.OutboundRequested("acme"))
	if err != nil {
		t.Fatal(err)
	}
	var out outboundv1.OutboundMessageRequested
	if err := proto.Unmarshal(greeting.Data, &out); err != nil || out.GetBody() != "Hi!" || out.GetRequestId() != "ss_1-greet" {
		t.Errorf("greeting = %v (%v), want Hi! as ss_1-greet", &out, err)
	}
	task, err := streams[subjects.StreamWorkflow].GetLastMsgForSubject(ctx, subjects.WorkflowTaskRequested("acme"))
	if err != nil {
		t.Fatal(err)
	}
	var req workflowv1.TaskRequested
	if err := proto.Unmarshal(task.Data, &req); err != nil || req.GetTaskId() != "tk_1_queue" || req.GetServiceId() != "sales" {
		t.Errorf("task request = %v (%v), want tk_1_1 for sales", &req, err)
	}

	// A redelivered start, then a start for a missing service behind it:
	// once the failure is out, the redelivery has been handled.
	publishStart("ss_1", "sales", "start-1-again")
	publishStart("ss_2", "gone", "start-2")
	waitFor(t, "the workflow failure", func() bool { return countSubject(subjects.StreamWorkflow, subjects.WorkflowFailed("acme")) == 1 })
	failedMsg, err := streams[subjects.StreamWorkflow].GetLastMsgForSubject(ctx, subjects.WorkflowFailed("acme"))
	if err != nil {
		t.Fatal(err)
	}
	var failed workflowv1.WorkflowFailed
	if err := proto.Unmarshal(failedMsg.Data, &failed); err != nil || failed.GetSessionId() != "ss_2" {
		t.Errorf("failure = %v (%v), want ss_2", &failed, err)
	}
	// The greeting of ss_1 once (ss_2's start names no conversation to
	// send a failure message to).
	if got := count(subjects.StreamOutbound); got != 1 {
		t.Errorf("OUTBOUND holds %d messages after a redelivered start, want 1", got)
	}
}
