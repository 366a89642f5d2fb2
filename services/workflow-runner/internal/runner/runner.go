// Package runner executes IM workflows: one instance per chat session,
// started by SessionStarted. Every step is idempotent (deterministic ids for
// what it publishes), so a redelivered start replays safely.
package runner

import (
	"context"
	"fmt"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
	outboundv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/outbound/v1"
	sessionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/session/v1"
	workflowv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/workflow/v1"

	"github.com/switchboard-cc/switchboard/pkg/bus"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
)

// Publisher publishes one event under a dedupe id.
type Publisher interface {
	Emit(ctx context.Context, subject string, event proto.Message, msgID string) error
}

// Activity is one step of a workflow.
type Activity interface {
	Name() string
	Run(ctx context.Context, r *Runner, in *Instance) error
}

// Message sends a text to the customer.
type Message struct{ Text string }

func (Message) Name() string { return "Message" }

func (a Message) Run(ctx context.Context, r *Runner, in *Instance) error {
	if strings.TrimSpace(a.Text) == "" {
		return nil
	}
	id := fmt.Sprintf("%s-wf%d", in.SessionID, in.Step)
	return r.pub.Emit(ctx, subjects.OutboundRequested(in.Tenant), &outboundv1.OutboundMessageRequested{
		TenantId: in.Tenant, RequestId: id, SessionId: in.SessionID, EntryId: in.Start.GetEntryId(),
		Conversation: in.Start.GetConversation(), Body: a.Text, Origin: outboundv1.Origin_ORIGIN_WORKFLOW,
		Author: in.ServiceName, RequestedAt: timestamppb.New(r.now()),
	}, id)
}

// QueueTask asks distribution to queue the session for a service.
type QueueTask struct {
	ServiceID string
	Priority  int32
}

func (QueueTask) Name() string { return "Queue Task" }

func (a QueueTask) Run(ctx context.Context, r *Runner, in *Instance) error {
	svc := a.ServiceID
	if svc == "" {
		svc = in.Start.GetServiceId()
	}
	taskID := TaskID(in.SessionID, in.Step)
	return r.pub.Emit(ctx, subjects.WorkflowTaskRequested(in.Tenant), &workflowv1.TaskRequested{
		TenantId: in.Tenant, TaskId: taskID, SessionId: in.SessionID, ServiceId: svc,
		Conversation: in.Start.GetConversation(), Priority: a.Priority, CustomerName: in.Start.GetCustomerName(),
		RequestedAt: timestamppb.New(r.now()),
	}, taskID)
}

// TaskID is the deterministic task id of a Queue Task step.
func TaskID(sessionID string, step int) string {
	return fmt.Sprintf("tk_%s_%d", strings.TrimPrefix(sessionID, "ss_"), step)
}

// Instance is the state of one workflow run.
type Instance struct {
	Tenant      string
	SessionID   string
	ServiceName string
	Start       *sessionv1.SessionStarted
	// Step is the index of the activity being run.
	Step int
}

// DefaultIMWorkflow greets the customer and queues the session for its
// service: what a service without a configured workflow gets.
func DefaultIMWorkflow(greeting string) []Activity {
	return []Activity{Message{Text: greeting}, QueueTask{}}
}

// Runner runs workflows.
type Runner struct {
	pub       Publisher
	services  configv1.ServiceServiceClient
	instances *mongo.Collection
	now       func() time.Time
}

// New returns a runner storing instances in db.
func New(pub Publisher, services configv1.ServiceServiceClient, db *mongo.Database) *Runner {
	return &Runner{pub: pub, services: services, instances: db.Collection("instances"), now: time.Now}
}

type instanceDoc struct {
	ID        string    `bson:"_id"`
	Tenant    string    `bson:"tenant"`
	SessionID string    `bson:"session_id"`
	Step      int       `bson:"step"`
	State     string    `bson:"state"`
	UpdatedAt time.Time `bson:"updated_at"`
}

// HandleSessionStarted runs the session's workflow from where a previous
// delivery left it.
func (r *Runner) HandleSessionStarted(ctx context.Context, m *bus.Message) error {
	var ev sessionv1.SessionStarted
	if err := m.Decode(&ev); err != nil {
		return err
	}
	if ev.GetSessionId() == "" || ev.GetTenantId() != m.Tenant() {
		return bus.Permanentf("session start on %s lacks a session id or names another tenant", m.Subject)
	}
	key := ev.GetTenantId() + "/" + ev.GetSessionId()
	var doc instanceDoc
	err := r.instances.FindOne(ctx, bson.M{"_id": key}).Decode(&doc)
	switch {
	case err == nil && doc.State != "running":
		return nil // finished or failed on an earlier delivery
	case err != nil && err != mongo.ErrNoDocuments:
		return fmt.Errorf("load instance %s: %w", key, err)
	}
	in := &Instance{Tenant: ev.GetTenantId(), SessionID: ev.GetSessionId(), Start: &ev, Step: doc.Step}

	res, err := r.services.GetService(ctx, &configv1.GetServiceRequest{TenantId: ev.GetTenantId(), Id: ev.GetServiceId()})
	if status.Code(err) == codes.NotFound || status.Code(err) == codes.InvalidArgument {
		return r.fail(ctx, in, "Queue Task", fmt.Sprintf("service %q is not configured", ev.GetServiceId()))
	}
	if err != nil {
		return fmt.Errorf("get service %q: %w", ev.GetServiceId(), err)
	}
	in.ServiceName = res.GetService().GetName()
	flow := DefaultIMWorkflow(res.GetService().GetGreeting())
	for ; in.Step < len(flow); in.Step++ {
		if err := r.save(ctx, key, in, "running"); err != nil {
			return err
		}
		if err := flow[in.Step].Run(ctx, r, in); err != nil {
			return fmt.Errorf("session %s step %d (%s): %w", in.SessionID, in.Step, flow[in.Step].Name(), err)
		}
	}
	return r.save(ctx, key, in, "done")
}

func (r *Runner) save(ctx context.Context, key string, in *Instance, state string) error {
	_, err := r.instances.ReplaceOne(ctx, bson.M{"_id": key}, instanceDoc{
		ID: key, Tenant: in.Tenant, SessionID: in.SessionID, Step: in.Step, State: state, UpdatedAt: r.now(),
	}, options.Replace().SetUpsert(true))
	if err != nil {
		return fmt.Errorf("save instance %s: %w", key, err)
	}
	return nil
}

// fail reports a workflow that cannot go on; sessions ends the session as failed.
func (r *Runner) fail(ctx context.Context, in *Instance, activity, reason string) error {
	if err := r.pub.Emit(ctx, subjects.WorkflowFailed(in.Tenant), &workflowv1.WorkflowFailed{
		TenantId: in.Tenant, SessionId: in.SessionID, Activity: activity, Reason: reason,
		OccurredAt: timestamppb.New(r.now()),
	}, in.SessionID+"-failed"); err != nil {
		return err
	}
	return r.save(ctx, in.Tenant+"/"+in.SessionID, in, "failed")
}
