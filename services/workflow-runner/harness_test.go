package workflowrunner_test

import (
	"context"
	"encoding/hex"
	"log/slog"
	"net"
	"sync"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
	distributionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/distribution/v1"
	messagingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/messaging/v1"
	outboundv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/outbound/v1"

	"github.com/switchboard-cc/switchboard/pkg/authn"
	"github.com/switchboard-cc/switchboard/pkg/bus"
	"github.com/switchboard-cc/switchboard/pkg/grpcserver"
	"github.com/switchboard-cc/switchboard/pkg/natsembed/natstest"
	"github.com/switchboard-cc/switchboard/pkg/workflowdef"
	workflowrunner "github.com/switchboard-cc/switchboard/services/workflow-runner"
)

// flowConfig serves service "desk" running one workflow.
type flowConfig struct {
	configv1.UnimplementedServiceServiceServer
	configv1.UnimplementedWorkflowServiceServer
	def *workflowdef.Definition
	svc *configv1.Service
}

func (c *flowConfig) GetService(_ context.Context, r *configv1.GetServiceRequest) (*configv1.GetServiceResponse, error) {
	if r.GetId() != "desk" {
		return nil, status.Error(codes.NotFound, "no such service")
	}
	svc := proto.Clone(c.svc).(*configv1.Service)
	svc.Id, svc.TenantId, svc.WorkflowId = "desk", r.GetTenantId(), "wf"
	return &configv1.GetServiceResponse{Service: svc}, nil
}

func (c *flowConfig) GetWorkflow(context.Context, *configv1.GetWorkflowRequest) (*configv1.GetWorkflowResponse, error) {
	p, err := workflowdef.ToProto(c.def)
	if err != nil {
		return nil, err
	}
	return &configv1.GetWorkflowResponse{Workflow: &configv1.Workflow{Id: "wf", Version: 1, Definition: p}}, nil
}

// queueDist is a fake DistributionService: every task is queued at
// position 3 until closed, then canceled.
type queueDist struct {
	distributionv1.UnimplementedDistributionServiceServer
	mu     sync.Mutex
	closed bool
}

func (d *queueDist) close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
}

func (d *queueDist) GetQueuePosition(context.Context, *distributionv1.GetQueuePositionRequest) (*distributionv1.GetQueuePositionResponse, error) {
	return &distributionv1.GetQueuePositionResponse{Position: 3}, nil
}

func (d *queueDist) GetTask(_ context.Context, r *distributionv1.GetTaskRequest) (*distributionv1.GetTaskResponse, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	state := distributionv1.TaskState_TASK_STATE_QUEUED
	if d.closed {
		state = distributionv1.TaskState_TASK_STATE_CANCELED
	}
	return &distributionv1.GetTaskResponse{Task: &distributionv1.Task{TaskId: r.GetTaskId(), State: state}}, nil
}

// contactState is a fake OutboundService: every WhatsApp customer's
// window is closed.
type contactState struct {
	outboundv1.UnimplementedOutboundServiceServer
}

func (contactState) GetContactState(_ context.Context, r *outboundv1.GetContactStateRequest) (*outboundv1.GetContactStateResponse, error) {
	wa := r.GetConversation().GetChannel() == messagingv1.Channel_CHANNEL_WHATSAPP
	return &outboundv1.GetContactStateResponse{State: &outboundv1.ContactState{WindowApplies: wa, WindowOpen: false}}, nil
}

// harness runs workflow-runner on embedded NATS against gRPC fakes of
// config, distribution and outbound-sender, and can restart it.
type harness struct {
	t    *testing.T
	b    *bus.Bus
	dist *queueDist
	run  func() (stop func())
}

func newHarness(t *testing.T, cfg *flowConfig, workers int) *harness {
	t.Helper()
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
	h := &harness{t: t, b: b, dist: &queueDist{}}
	srv := grpcserver.New(log, keys)
	configv1.RegisterServiceServiceServer(srv.Server, cfg)
	configv1.RegisterWorkflowServiceServer(srv.Server, cfg)
	distributionv1.RegisterDistributionServiceServer(srv.Server, h.dist)
	outboundv1.RegisterOutboundServiceServer(srv.Server, contactState{})
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
	rc := workflowrunner.Defaults()
	rc.AuthKeys, rc.OutboundAddr, rc.Workers = hex.EncodeToString(key), "", workers
	h.run = func() func() {
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() {
			done <- workflowrunner.Run(rctx, rc, workflowrunner.Deps{Bus: b, ConfigConn: cc, DistributionConn: cc, OutboundConn: cc, AuthKeys: keys}, log)
		}()
		return func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		}
	}
	return h
}

// messages returns every message of a stream's subject, decoded into
// fresh values of new's type, with their Nats-Msg-Id.
func messages[T proto.Message](t *testing.T, b *bus.Bus, stream, subject string, fresh func() T) ([]T, []string) {
	t.Helper()
	ctx := context.Background()
	s, err := b.JS.Stream(ctx, stream)
	if err != nil {
		return nil, nil
	}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	if err != nil {
		t.Fatal(err)
	}
	// Polled often: delete the consumer rather than leave it to expire
	// (the streams cap their consumers).
	defer func() { _ = s.DeleteConsumer(ctx, c.CachedInfo().Name) }()
	var out []T
	var ids []string
	for {
		batch, err := c.FetchNoWait(1000)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			v := fresh()
			if err := proto.Unmarshal(m.Data(), v); err != nil {
				t.Fatal(err)
			}
			out = append(out, v)
			ids = append(ids, m.Headers().Get(jetstream.MsgIDHeader))
		}
		if n == 0 {
			return out, ids
		}
	}
}
