// Package runner executes IM workflows: one instance per chat session,
// started by SessionStarted. A service without a workflow runs the default
// one (accept, greet, queue). Every step publishes under an id derived from
// the session, the activity and how often the instance has been there, and
// the instance's position is saved after each step, so a redelivered start
// resumes where it stopped and repeats nothing.
//
// Activities that wait for the customer or a timer (Collect Information,
// Input Customer, Delay, Web Request, …) need durable timers and the
// customer's replies routed to the workflow; until the runner has them, a
// workflow that reaches one fails the session with a reason naming it, as
// does an activity that is not supported for IM at all.
package runner

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // opening hours in any IANA zone, whatever the image has

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
	"github.com/switchboard-cc/switchboard/pkg/mongodb"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
	"github.com/switchboard-cc/switchboard/pkg/workflowdef"
)

// Publisher publishes one event under a dedupe id.
type Publisher interface {
	Emit(ctx context.Context, subject string, event proto.Message, msgID string) error
}

// MaxSteps bounds one run, so a loop in a workflow cannot spin forever.
const MaxSteps = 200

// Instance is the state of one workflow run.
type Instance struct {
	Tenant      string
	SessionID   string
	WorkflowID  string
	ServiceName string
	Start       *sessionv1.SessionStarted
	// Activity is the id of the activity to run next; Entered says its
	// visit is already counted in Visits (a delivery stopped inside it).
	Activity string
	Entered  bool
	Visits   map[string]int
	Params   map[string]string
	Priority int32
	Steps    int
}

// Runner runs workflows.
type Runner struct {
	pub       Publisher
	services  configv1.ServiceServiceClient
	workflows configv1.WorkflowServiceClient
	instances *mongo.Collection
	now       func() time.Time
}

// New returns a runner storing instances in db. workflows may be nil when
// no service has a workflow of its own.
func New(pub Publisher, services configv1.ServiceServiceClient, workflows configv1.WorkflowServiceClient, db *mongo.Database) *Runner {
	return &Runner{pub: pub, services: services, workflows: workflows, instances: db.Collection("instances"), now: time.Now}
}

// TaskID is the deterministic id of a Queue Task or Transfer step.
func TaskID(sessionID, activity string, visit int) string {
	return "tk_" + strings.TrimPrefix(sessionID, "ss_") + "_" + activity + visitSuffix(visit)
}

func visitSuffix(visit int) string {
	if visit <= 1 {
		return ""
	}
	return "_" + strconv.Itoa(visit)
}

type instanceDoc struct {
	ID         string            `bson:"_id"`
	Tenant     string            `bson:"tenant"`
	SessionID  string            `bson:"session_id"`
	WorkflowID string            `bson:"workflow_id,omitempty"`
	Activity   string            `bson:"activity"`
	Entered    bool              `bson:"entered,omitempty"`
	Visits     map[string]int    `bson:"visits,omitempty"`
	Params     map[string]string `bson:"params,omitempty"`
	Priority   int32             `bson:"priority,omitempty"`
	Steps      int               `bson:"steps"`
	State      string            `bson:"state"`
	Reason     string            `bson:"reason,omitempty"`
	UpdatedAt  time.Time         `bson:"updated_at"`
}

// Instance states.
const (
	stateRunning = "running"
	stateDone    = "done"
	stateFailed  = "failed"
)

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
	case err == nil && doc.State != stateRunning:
		return nil // finished or failed on an earlier delivery
	case err != nil && !mongodb.IsNotFound(err):
		return fmt.Errorf("load instance %s: %w", key, err)
	}
	in := &Instance{
		Tenant: ev.GetTenantId(), SessionID: ev.GetSessionId(), Start: &ev,
		Activity: doc.Activity, Entered: doc.Entered, Visits: doc.Visits, Params: doc.Params, Priority: doc.Priority, Steps: doc.Steps,
	}
	if in.Visits == nil {
		in.Visits = map[string]int{}
	}
	if in.Params == nil {
		in.Params = map[string]string{}
	}

	svc, err := r.service(ctx, in.Tenant, ev.GetServiceId())
	if errors.Is(err, errNoService) {
		return r.fail(ctx, key, in, "Queue Task", fmt.Sprintf("service %q is not configured", ev.GetServiceId()))
	}
	if err != nil {
		return err
	}
	in.ServiceName = svc.GetName()
	def, err := r.definition(ctx, in, svc)
	if err != nil {
		var pf *permanentFailure
		if errors.As(err, &pf) {
			return r.fail(ctx, key, in, pf.activity, pf.reason)
		}
		return err
	}
	if in.Activity == "" {
		in.Activity = def.Start
	}
	for {
		if in.Steps >= MaxSteps {
			return r.fail(ctx, key, in, in.Activity, fmt.Sprintf("the workflow ran %d steps without queueing or ending the session", MaxSteps))
		}
		a, ok := def.Activity(in.Activity)
		if !ok {
			return r.fail(ctx, key, in, in.Activity, "the workflow has no activity with this id")
		}
		t, known := workflowdef.Lookup(a.Type)
		switch {
		case !known:
			return r.fail(ctx, key, in, a.Type, "unknown activity type")
		case !t.IM:
			return r.fail(ctx, key, in, t.Name, "this activity is not supported for Instant Messaging")
		}
		// Saving before running a step fixes its visit number, so a retry of
		// the step publishes under the same ids.
		if !in.Entered {
			in.Visits[a.ID]++
			in.Entered = true
		}
		if err := r.save(ctx, key, in, stateRunning, ""); err != nil {
			return err
		}
		outcome, end, err := r.run(ctx, in, a, t)
		if err != nil {
			var pf *permanentFailure
			if errors.As(err, &pf) {
				return r.fail(ctx, key, in, pf.activity, pf.reason)
			}
			return fmt.Errorf("session %s activity %s (%s): %w", in.SessionID, a.ID, t.Name, err)
		}
		next := a.Next[outcome]
		in.Steps++
		if end || next == "" {
			in.Activity = a.ID
			return r.save(ctx, key, in, stateDone, "")
		}
		in.Activity, in.Entered = next, false
	}
}

var errNoService = errors.New("service not configured")

func (r *Runner) service(ctx context.Context, tenant, id string) (*configv1.Service, error) {
	res, err := r.services.GetService(ctx, &configv1.GetServiceRequest{TenantId: tenant, Id: id})
	switch status.Code(err) {
	case codes.OK:
		return res.GetService(), nil
	case codes.NotFound, codes.InvalidArgument:
		return nil, errNoService
	default:
		return nil, fmt.Errorf("get service %q: %w", id, err)
	}
}

type permanentFailure struct{ activity, reason string }

func (p *permanentFailure) Error() string { return p.activity + ": " + p.reason }

// definition is the service's workflow, or the default one.
func (r *Runner) definition(ctx context.Context, in *Instance, svc *configv1.Service) (*workflowdef.Definition, error) {
	if svc.GetWorkflowId() == "" {
		return workflowdef.Default(strings.TrimSpace(svc.GetGreeting())), nil
	}
	in.WorkflowID = svc.GetWorkflowId()
	if r.workflows == nil {
		return nil, errors.New("no workflow client configured")
	}
	res, err := r.workflows.GetWorkflow(ctx, &configv1.GetWorkflowRequest{TenantId: in.Tenant, Id: svc.GetWorkflowId(), Version: svc.GetWorkflowVersion()})
	switch status.Code(err) {
	case codes.OK:
	case codes.NotFound:
		return nil, &permanentFailure{"workflow", fmt.Sprintf("workflow %q (version %d) does not exist", svc.GetWorkflowId(), svc.GetWorkflowVersion())}
	default:
		return nil, fmt.Errorf("get workflow %q: %w", svc.GetWorkflowId(), err)
	}
	def := workflowdef.FromProto(res.GetWorkflow().GetDefinition())
	if err := workflowdef.Validate(def); err != nil {
		return nil, &permanentFailure{"workflow", err.Error()}
	}
	return def, nil
}

// run executes one activity and returns the outcome to follow, or end.
func (r *Runner) run(ctx context.Context, in *Instance, a *workflowdef.Activity, t workflowdef.ActivityType) (outcome string, end bool, err error) {
	switch a.Type {
	case "accept":
		return workflowdef.OutcomeNext, false, nil
	case "message":
		return workflowdef.OutcomeNext, false, r.message(ctx, in, a, expand(a.StringParam("text"), in.Params))
	case "save_to_parameter":
		in.Params[a.StringParam("parameter")] = expand(a.StringParam("value"), in.Params)
		return workflowdef.OutcomeNext, false, nil
	case "check_parameter":
		if checkParameter(in.Params, a) {
			return "match", false, nil
		}
		return "no_match", false, nil
	case "distribution_priority":
		in.Priority = int32(a.IntParam("priority", 0))
		return workflowdef.OutcomeNext, false, nil
	case "check_opening_hours":
		svc, err := r.service(ctx, in.Tenant, serviceOf(a, in))
		if errors.Is(err, errNoService) {
			return "", false, &permanentFailure{t.Name, fmt.Sprintf("service %q is not configured", serviceOf(a, in))}
		}
		if err != nil {
			return "", false, err
		}
		if Open(svc.GetOpeningHours(), r.now()) {
			return "open", false, nil
		}
		return "closed", false, nil
	case "queue_task", "transfer":
		priority := in.Priority
		if a.Type == "queue_task" {
			priority = int32(a.IntParam("priority", int64(priority)))
		}
		return "", true, r.queue(ctx, in, a, serviceOf(a, in), priority)
	case "disconnect":
		if err := r.message(ctx, in, a, expand(a.StringParam("text"), in.Params)); err != nil {
			return "", false, err
		}
		return "", true, r.pub.Emit(ctx, subjects.WorkflowEndRequested(in.Tenant), &workflowv1.SessionEndRequested{
			TenantId: in.Tenant, SessionId: in.SessionID, WorkflowId: in.WorkflowID, Activity: a.ID,
			OccurredAt: timestamppb.New(r.now()),
		}, in.SessionID+"-"+a.ID+visitSuffix(in.Visits[a.ID])+"-end")
	}
	return "", false, &permanentFailure{t.Name, "workflow-runner cannot run this activity yet (it waits for the customer or a timer)"}
}

func serviceOf(a *workflowdef.Activity, in *Instance) string {
	if s := a.StringParam("service_id"); s != "" {
		return s
	}
	return in.Start.GetServiceId()
}

func (r *Runner) message(ctx context.Context, in *Instance, a *workflowdef.Activity, text string) error {
	if strings.TrimSpace(text) == "" {
		return nil
	}
	id := in.SessionID + "-" + a.ID + visitSuffix(in.Visits[a.ID])
	return r.pub.Emit(ctx, subjects.OutboundRequested(in.Tenant), &outboundv1.OutboundMessageRequested{
		TenantId: in.Tenant, RequestId: id, SessionId: in.SessionID, EntryId: in.Start.GetEntryId(),
		Conversation: in.Start.GetConversation(), Body: text, Origin: outboundv1.Origin_ORIGIN_WORKFLOW,
		Author: in.ServiceName, RequestedAt: timestamppb.New(r.now()),
	}, id)
}

func (r *Runner) queue(ctx context.Context, in *Instance, a *workflowdef.Activity, service string, priority int32) error {
	taskID := TaskID(in.SessionID, a.ID, in.Visits[a.ID])
	return r.pub.Emit(ctx, subjects.WorkflowTaskRequested(in.Tenant), &workflowv1.TaskRequested{
		TenantId: in.Tenant, TaskId: taskID, SessionId: in.SessionID, ServiceId: service,
		Conversation: in.Start.GetConversation(), Priority: priority, CustomerName: in.Start.GetCustomerName(),
		RequestedAt: timestamppb.New(r.now()),
	}, taskID)
}

var paramRef = regexp.MustCompile(`\$\{([A-Za-z0-9_.-]+)\}`)

// expand replaces ${name} with the session parameter's value.
func expand(s string, params map[string]string) string {
	return paramRef.ReplaceAllStringFunc(s, func(m string) string {
		return params[m[2:len(m)-1]]
	})
}

func checkParameter(params map[string]string, a *workflowdef.Activity) bool {
	v, ok := params[a.StringParam("parameter")]
	want := expand(a.StringParam("value"), params)
	switch a.StringParam("operator") {
	case "equals":
		return ok && v == want
	case "not_equals":
		return v != want
	case "contains":
		return ok && strings.Contains(v, want)
	case "matches":
		re, err := regexp.Compile(want)
		return ok && err == nil && re.MatchString(v)
	case "exists":
		return ok
	case "empty":
		return v == ""
	}
	return false
}

// Open reports whether the opening hours are open at t; no opening hours
// means always open.
func Open(h *configv1.OpeningHours, t time.Time) bool {
	if h == nil || (len(h.GetWindows()) == 0 && len(h.GetHolidays()) == 0) {
		return true
	}
	loc, err := time.LoadLocation(h.GetTimeZone())
	if err != nil {
		loc = time.UTC
	}
	local := t.In(loc)
	day := local.Format("2006-01-02")
	for _, hd := range h.GetHolidays() {
		if hd == day {
			return false
		}
	}
	now := local.Format("15:04")
	for _, w := range h.GetWindows() {
		if int(w.GetWeekday()) == int(local.Weekday()) && now >= w.GetStart() && now < w.GetEnd() {
			return true
		}
	}
	return false
}

func (r *Runner) save(ctx context.Context, key string, in *Instance, state, reason string) error {
	_, err := r.instances.ReplaceOne(ctx, bson.M{"_id": key}, instanceDoc{
		ID: key, Tenant: in.Tenant, SessionID: in.SessionID, WorkflowID: in.WorkflowID, Activity: in.Activity,
		Entered: in.Entered, Visits: in.Visits, Params: in.Params, Priority: in.Priority, Steps: in.Steps, State: state, Reason: reason,
		UpdatedAt: r.now(),
	}, options.Replace().SetUpsert(true))
	if err != nil {
		return fmt.Errorf("save instance %s: %w", key, err)
	}
	return nil
}

// fail reports a workflow that cannot go on; sessions ends the session as failed.
func (r *Runner) fail(ctx context.Context, key string, in *Instance, activity, reason string) error {
	if err := r.pub.Emit(ctx, subjects.WorkflowFailed(in.Tenant), &workflowv1.WorkflowFailed{
		TenantId: in.Tenant, SessionId: in.SessionID, WorkflowId: in.WorkflowID, Activity: activity, Reason: reason,
		OccurredAt: timestamppb.New(r.now()),
	}, in.SessionID+"-failed"); err != nil {
		return err
	}
	return r.save(ctx, key, in, stateFailed, activity+": "+reason)
}
