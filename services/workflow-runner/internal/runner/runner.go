// Package runner executes IM workflows: one instance per chat session,
// started by SessionStarted and advanced by the customer's replies
// (MessageAdded), its durable timers (TimerFired) and distribution
// (TaskAccepted). An instance's state lives in a JetStream KV bucket and is
// written with the revision it was read at, so two deliveries of one event
// can never both advance it; a delivery that loses the race is redelivered
// and finds its event already applied.
//
// Everything an instance publishes has an id derived from the session, the
// activity and how often the instance has been there, and a run is
// computed from the stored state, so a retried event publishes under the
// same ids (JetStream drops the repeats) and repeats nothing.
package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	_ "time/tzdata" // opening hours in any IANA zone, whatever the image has

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
	distributionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/distribution/v1"
	messagingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/messaging/v1"
	outboundv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/outbound/v1"
	sessionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/session/v1"
	workflowv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/workflow/v1"

	"github.com/switchboard-cc/switchboard/pkg/bus"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
	"github.com/switchboard-cc/switchboard/pkg/taskparams"
	"github.com/switchboard-cc/switchboard/pkg/workflowdef"
)

// Publisher publishes one event under a dedupe id.
type Publisher interface {
	Emit(ctx context.Context, subject string, event proto.Message, msgID string) error
}

// AsyncPublisher is a Publisher that can also publish without waiting
// for the acknowledgement (bus.Bus): a run's events are then stored
// together, and the run waits for all of them before it saves the
// instance.
type AsyncPublisher interface {
	EmitAsync(ctx context.Context, subject string, event proto.Message, msgID string) (wait func(context.Context) error, _ error)
}

// emit publishes one of a run's events; with an AsyncPublisher it is
// in flight until flush.
func (r *Runner) emit(ctx context.Context, st *State, subject string, event proto.Message, msgID string) error {
	if ap, ok := r.pub.(AsyncPublisher); ok {
		wait, err := ap.EmitAsync(ctx, subject, event, msgID)
		if err != nil {
			return err
		}
		st.pending = append(st.pending, wait)
		return nil
	}
	return r.pub.Emit(ctx, subject, event, msgID)
}

// flush waits until every event of the run is stored: only then may the
// instance be saved past them (a retry of an unsaved run publishes the
// same ids again).
func (r *Runner) flush(ctx context.Context, st *State) error {
	var first error
	for _, wait := range st.pending {
		if err := wait(ctx); err != nil && first == nil {
			first = err
		}
	}
	st.pending = nil
	return first
}

// MaxSteps bounds the activities one event may run, so a loop in a
// workflow cannot spin forever.
const MaxSteps = 200

// Defaults of waiting activities.
const (
	DefaultAnswerTimeout = 5 * time.Minute
	DefaultMaxAttempts   = 3
)

// DefaultFailureMessage is what the customer receives when their
// workflow cannot go on.
const DefaultFailureMessage = "Sorry, something went wrong on our side and we cannot continue this conversation. Please write to us again later."

// Deps of a Runner; Timers and Log may be nil (no timers; discard logs),
// and Distribution too (its activities then fail the session).
type Deps struct {
	Pub          Publisher
	Services     configv1.ServiceServiceClient
	Workflows    configv1.WorkflowServiceClient
	Distribution distributionv1.DistributionServiceClient
	Store        *Store
	Timers       Timers
	Log          *slog.Logger
	Now          func() time.Time
	// Web configures Web Request and Bot (the SSRF guard's allow-list).
	Web WebOptions
	// Secrets reads the tenants' secrets (config's LookupService); nil:
	// none can be read, so what needs one takes its failure branch.
	Secrets Secrets
	// Contacts is outbound-sender's OutboundService, asked whether a
	// WhatsApp customer's window is open before a Message with a
	// template; nil: the window counts as open (the text is sent).
	Contacts Contacts
	// Tracing receives a span per workflow step; nil: the global provider.
	Tracing trace.TracerProvider
}

// Secrets reads a tenant's named secret (configv1.LookupServiceClient).
type Secrets interface {
	GetTenantSecret(ctx context.Context, in *configv1.GetTenantSecretRequest, opts ...grpc.CallOption) (*configv1.GetTenantSecretResponse, error)
}

// Runner runs workflows.
type Runner struct {
	pub       Publisher
	services  configv1.ServiceServiceClient
	workflows configv1.WorkflowServiceClient
	dist      distributionv1.DistributionServiceClient
	store     *Store
	timers    Timers
	log       *slog.Logger
	tracer    trace.Tracer
	now       func() time.Time
	web       *webClient
	secrets   Secrets
	contacts  Contacts

	mu   sync.Mutex
	defs map[string]*workflowdef.Definition // tenant/id/version: versions never change
}

// New returns a runner.
func New(d Deps) *Runner {
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Tracing == nil {
		d.Tracing = otel.GetTracerProvider()
	}
	return &Runner{pub: d.Pub, services: d.Services, workflows: d.Workflows, dist: d.Distribution, store: d.Store, timers: d.Timers,
		log: d.Log, tracer: d.Tracing.Tracer("github.com/switchboard-cc/switchboard/services/workflow-runner"), now: d.Now, web: newWebClient(d.Web), secrets: d.Secrets, contacts: d.Contacts, defs: map[string]*workflowdef.Definition{}}
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

// event is what advances a waiting instance.
type event struct {
	// input is a customer message (for input waits).
	input *sessionv1.MessageAdded
	// timer fired (for any wait with a timer), due at due.
	timer bool
	due   time.Time
}

// HandleSessionStarted creates the session's instance and runs its
// workflow to its first wait or its end.
func (r *Runner) HandleSessionStarted(ctx context.Context, m *bus.Message) error {
	var ev sessionv1.SessionStarted
	if err := m.Decode(&ev); err != nil {
		return err
	}
	if ev.GetSessionId() == "" || ev.GetTenantId() != m.Tenant() {
		return bus.Permanentf("session start on %s lacks a session id or names another tenant", m.Subject)
	}
	if agent := ev.GetStartedByAgentId(); agent != "" {
		// A business-initiated conversation: the chat is the agent's from
		// the start, so no workflow runs (no greeting, no queue) and no
		// instance is stored; the session's later events find none.
		r.log.InfoContext(ctx, "session started by an agent: no workflow", "tenant", ev.GetTenantId(), "session", ev.GetSessionId(),
			"agent", agent, "service", ev.GetServiceId())
		return nil
	}
	st, _, err := r.store.Load(ctx, ev.GetTenantId(), ev.GetSessionId())
	if err != nil || st != nil {
		return err // an earlier delivery created it
	}
	raw, err := proto.Marshal(&ev)
	if err != nil {
		return bus.Permanent(err)
	}
	st = &State{Tenant: ev.GetTenantId(), SessionID: ev.GetSessionId(), Start: raw, ServiceID: ev.GetServiceId(),
		Status: StatusRunning, Visits: map[string]int{}, Params: map[string]string{}, start: &ev}
	def, err := r.enterService(ctx, st, ev.GetServiceId())
	if err == nil {
		err = r.advance(ctx, st, def, nil)
	}
	return r.finish(ctx, st, 0, err)
}

// HandleMessageAdded gives a customer's message to the activity waiting
// for it, if any; otherwise the message is only in the transcript.
func (r *Runner) HandleMessageAdded(ctx context.Context, m *bus.Message) error {
	var ev sessionv1.MessageAdded
	if err := m.Decode(&ev); err != nil {
		return err
	}
	if ev.GetSender() != sessionv1.SenderKind_SENDER_KIND_CUSTOMER || ev.GetSessionId() == "" {
		return nil
	}
	st, rev, err := r.store.Load(ctx, m.Tenant(), ev.GetSessionId())
	if err != nil || st == nil || (st.Status != StatusWaiting && st.Status != StatusQueued) || st.Wait == nil {
		return err
	}
	written := r.now()
	if at := ev.GetOccurredAt(); at != nil && at.AsTime().Before(written) {
		written = at.AsTime()
	}
	// The customer is there: their inactivity counts from their message
	// (a redelivered or late message moves the deadline no earlier).
	moved := false
	if d := written.Add(st.Inactivity); !st.InactiveAt.IsZero() && d.After(st.InactiveAt) {
		st.InactiveAt, moved = d, true
	}
	if st.Wait.Kind != waitInput || written.Before(st.Wait.Since) || slices.Contains(st.Consumed, ev.GetMessageId()) {
		// Not an answer: in the transcript, for the agent (or written
		// before the question was asked, or consumed already).
		if !moved {
			return nil
		}
		return r.finish(ctx, st, rev, r.schedule(ctx, st, st.Wait))
	}
	return r.resume(ctx, st, rev, event{input: &ev})
}

// HandleTimerFired advances the instance whose wait the timer belongs to;
// a timer of an earlier wait is ignored.
func (r *Runner) HandleTimerFired(ctx context.Context, m *bus.Message) error {
	var ev workflowv1.TimerFired
	if err := m.Decode(&ev); err != nil {
		return err
	}
	st, rev, err := r.store.Load(ctx, m.Tenant(), ev.GetSessionId())
	if err != nil || st == nil {
		return err
	}
	if st.Status == StatusRunning || (st.Status != StatusDone && st.Status != StatusFailed && ev.GetStep() > st.Steps) {
		// The wait this timer belongs to is not saved yet (its run is in
		// flight): come back later.
		return fmt.Errorf("timer of session %s step %d is ahead of the instance (step %d)", ev.GetSessionId(), ev.GetStep(), st.Steps)
	}
	if (st.Status != StatusWaiting && st.Status != StatusQueued) || st.Wait == nil || st.Wait.DueAt.IsZero() ||
		st.Wait.Step != ev.GetStep() || st.Wait.Activity != ev.GetActivity() {
		return nil
	}
	return r.resume(ctx, st, rev, event{timer: true, due: ev.GetDueAt().AsTime()})
}

// HandleTaskAccepted ends the instance: the agent has the conversation.
func (r *Runner) HandleTaskAccepted(ctx context.Context, m *bus.Message) error {
	var ev distributionv1.TaskAccepted
	if err := m.Decode(&ev); err != nil {
		return err
	}
	return r.stop(ctx, m.Tenant(), ev.GetSessionId(), "accepted by an agent")
}

// HandleSessionEnded ends the instance of an ended session.
func (r *Runner) HandleSessionEnded(ctx context.Context, m *bus.Message) error {
	var ev sessionv1.SessionEnded
	if err := m.Decode(&ev); err != nil {
		return err
	}
	return r.stop(ctx, m.Tenant(), ev.GetSessionId(), "session ended")
}

// HandleSession dispatches the SESSION stream's events.
func (r *Runner) HandleSession(ctx context.Context, m *bus.Message) error {
	switch m.Kind() {
	case subjects.KindSessionStarted:
		return r.HandleSessionStarted(ctx, m)
	case subjects.KindSessionMessageAdded:
		return r.HandleMessageAdded(ctx, m)
	case subjects.KindSessionEnded:
		return r.HandleSessionEnded(ctx, m)
	}
	return nil
}

func (r *Runner) stop(ctx context.Context, tenant, session, reason string) error {
	if session == "" {
		return nil
	}
	st, rev, err := r.store.Load(ctx, tenant, session)
	if err != nil || st == nil || st.Status == StatusDone || st.Status == StatusFailed {
		return err
	}
	hadTimer := st.Wait != nil && !st.Wait.DueAt.IsZero()
	if st.Wait != nil {
		if err := r.lastStep(ctx, st); err != nil {
			return err
		}
		if err := r.flush(ctx, st); err != nil {
			return err
		}
	}
	st.Status, st.Reason, st.Wait, st.UpdatedAt = StatusDone, reason, nil, r.now()
	if err := r.store.Save(ctx, st, rev); err != nil {
		return err
	}
	if hadTimer {
		r.cancelTimer(ctx, st)
	}
	return nil
}

// resume applies ev to the waiting activity and runs on from it.
func (r *Runner) resume(ctx context.Context, st *State, rev uint64, ev event) error {
	if ev.timer {
		if at := st.InactiveAt; !at.IsZero() && !ev.due.Before(at) {
			return r.abandon(ctx, st, rev)
		}
		if q := st.Queue; q != nil && !q.DueAt.IsZero() && !ev.due.Before(q.DueAt) {
			// The queued task's time is up, whatever the workflow is doing
			// meanwhile: the Queue Task takes its timeout branch.
			st.Activity, st.Entered = q.Activity, true
			st.Wait = &Wait{Kind: waitQueue, Activity: q.Activity, Step: st.Steps, Since: st.Wait.Since, DueAt: q.DueAt, TimeoutAt: q.DueAt}
		} else if own := st.Wait.timeout(st); own.IsZero() || ev.due.Before(own) {
			return nil // due for an inactivity deadline the customer has since moved
		}
	}
	def, err := r.definition(ctx, st)
	if err == nil {
		err = r.advance(ctx, st, def, &ev)
	}
	if err == nil && ev.input != nil && st.Wait != nil && (st.Status == StatusWaiting || st.Status == StatusQueued) {
		// The same wait goes on (an answer that did not fit): its timer
		// moves with the customer's new inactivity deadline.
		err = r.schedule(ctx, st, st.Wait)
	}
	return r.finish(ctx, st, rev, err)
}

// DefaultInactivityMessage is the goodbye of a session that ends because
// the customer stopped answering, when the service has none.
const DefaultInactivityMessage = "We have not heard from you for a while, so we are closing this conversation. Write to us again any time."

// abandon ends a session whose customer was silent for the service's
// inactivity timeout while the workflow waited for them: the goodbye,
// then SessionEndRequested with cause inactivity (sessions ends the
// session abandoned; distribution cancels its task).
func (r *Runner) abandon(ctx context.Context, st *State, rev uint64) error {
	text := st.InactivityMessage
	if text == "" {
		text = DefaultInactivityMessage
	}
	if st.started().GetConversation() != nil {
		if err := r.send(ctx, st, st.SessionID+"-inactive", text); err != nil {
			return err
		}
	}
	if st.Wait != nil {
		if err := r.lastStep(ctx, st); err != nil {
			return err
		}
	}
	if err := r.emit(ctx, st, subjects.WorkflowEndRequested(st.Tenant), &workflowv1.SessionEndRequested{
		TenantId: st.Tenant, SessionId: st.SessionID, WorkflowId: st.WorkflowID, Activity: st.Activity,
		Cause: workflowv1.EndCause_END_CAUSE_INACTIVITY, OccurredAt: timestamppb.New(r.now()),
	}, st.SessionID+"-inactive-end"); err != nil {
		return err
	}
	r.log.InfoContext(ctx, "customer inactive: session ends abandoned", "tenant", st.Tenant, "session", st.SessionID,
		"activity", st.Activity, "inactivity_timeout", st.Inactivity)
	st.Status, st.Reason = StatusDone, "the customer was inactive for "+st.Inactivity.String()
	st.Wait, st.Queue, st.InactiveAt, st.UpdatedAt = nil, nil, time.Time{}, r.now()
	if err := r.flush(ctx, st); err != nil {
		return err
	}
	return r.store.Save(ctx, st, rev)
}

// finish saves the instance after a run, failing it first when the run
// hit a permanent failure.
func (r *Runner) finish(ctx context.Context, st *State, rev uint64, err error) error {
	var pf *permanentFailure
	if errors.As(err, &pf) {
		recordFailure(pf.kind)
		if ferr := r.fail(ctx, st, pf.activity, pf.reason); ferr != nil {
			return ferr
		}
	} else if err != nil {
		return fmt.Errorf("session %s activity %s: %w", st.SessionID, st.Activity, err)
	}
	if err := r.flush(ctx, st); err != nil {
		return fmt.Errorf("session %s activity %s: %w", st.SessionID, st.Activity, err)
	}
	st.UpdatedAt = r.now()
	return r.store.Save(ctx, st, rev)
}

type permanentFailure struct {
	activity, reason string
	// kind is the type of the activity that failed, when known (metrics).
	kind string
}

func (p *permanentFailure) Error() string { return p.activity + ": " + p.reason }

func failf(activity, format string, args ...any) error {
	return &permanentFailure{activity: activity, reason: fmt.Sprintf(format, args...)}
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

// enterService makes service id the one whose workflow runs (at the start
// and on a Transfer), pins its workflow's current version and returns it.
func (r *Runner) enterService(ctx context.Context, st *State, id string) (*workflowdef.Definition, error) {
	svc, err := r.service(ctx, st.Tenant, id)
	if errors.Is(err, errNoService) {
		return nil, failf("Queue Task", "service %q is not configured", id)
	}
	if err != nil {
		return nil, err
	}
	st.ServiceID, st.ServiceName, st.TimeZone = id, svc.GetName(), svc.GetOpeningHours().GetTimeZone()
	st.WorkflowID, st.WorkflowVersion, st.Greeting = svc.GetWorkflowId(), svc.GetWorkflowVersion(), strings.TrimSpace(svc.GetGreeting())
	st.FailureMessage = strings.TrimSpace(svc.GetWorkflowFailureMessage())
	st.Inactivity, st.InactivityMessage = svc.GetInactivityTimeout().AsDuration(), strings.TrimSpace(svc.GetInactivityMessage())
	if st.Inactivity < 0 {
		st.Inactivity = 0
	}
	st.Activity, st.Entered = "", false
	def, err := r.definition(ctx, st)
	if err != nil {
		return nil, err
	}
	st.Activity = def.Start
	return def, nil
}

// definition is the instance's workflow at its pinned version (pinning the
// latest when none is), or the default workflow of a service without one.
func (r *Runner) definition(ctx context.Context, st *State) (*workflowdef.Definition, error) {
	if st.WorkflowID == "" {
		return workflowdef.Default(st.Greeting), nil
	}
	key := st.Tenant + "/" + st.WorkflowID + "/" + strconv.FormatInt(st.WorkflowVersion, 10)
	r.mu.Lock()
	def, ok := r.defs[key]
	r.mu.Unlock()
	if ok && st.WorkflowVersion != 0 {
		return def, nil
	}
	if r.workflows == nil {
		return nil, errors.New("no workflow client configured")
	}
	res, err := r.workflows.GetWorkflow(ctx, &configv1.GetWorkflowRequest{TenantId: st.Tenant, Id: st.WorkflowID, Version: st.WorkflowVersion})
	switch status.Code(err) {
	case codes.OK:
	case codes.NotFound:
		return nil, failf("workflow", "workflow %q (version %d) does not exist", st.WorkflowID, st.WorkflowVersion)
	default:
		return nil, fmt.Errorf("get workflow %q: %w", st.WorkflowID, err)
	}
	def = workflowdef.FromProto(res.GetWorkflow().GetDefinition())
	if err := workflowdef.Validate(def); err != nil {
		return nil, failf("workflow", "%v", err)
	}
	if v := res.GetWorkflow().GetVersion(); v != 0 {
		st.WorkflowVersion = v
		key = st.Tenant + "/" + st.WorkflowID + "/" + strconv.FormatInt(v, 10)
	}
	r.mu.Lock()
	if len(r.defs) > 10000 {
		clear(r.defs)
	}
	r.defs[key] = def
	r.mu.Unlock()
	return def, nil
}

// result of entering or resuming an activity.
type result struct {
	outcome string
	// end: the workflow ends here.
	end bool
	// wait: the activity waits (stays current).
	wait *Wait
	// transfer: continue with this service's workflow.
	transfer string
}

// advance runs the workflow from the instance's current activity (first
// applying ev to it, when it waits) until an activity waits or the
// workflow ends.
func (r *Runner) advance(ctx context.Context, st *State, def *workflowdef.Definition, ev *event) (err error) {
	pendingTimer := false
	defer func() {
		var pf *permanentFailure
		if pendingTimer && (err == nil || errors.As(err, &pf)) && (st.Wait == nil || st.Wait.DueAt.IsZero()) {
			r.cancelTimer(ctx, st)
		}
		if errors.As(err, &pf) && pf.kind == "" {
			if a, ok := def.Activity(st.Activity); ok {
				pf.kind = a.Type
			}
		}
	}()
	for ran := 0; ; ran++ {
		if ran >= MaxSteps {
			return failf(st.Activity, "the workflow ran %d steps without waiting or ending", MaxSteps)
		}
		a, ok := def.Activity(st.Activity)
		if !ok {
			return failf(st.Activity, "the workflow has no activity with this id")
		}
		t, known := workflowdef.Lookup(a.Type)
		switch {
		case !known:
			return failf(a.Type, "unknown activity type")
		case !t.IM:
			return failf(t.Name, "this activity is not supported for Instant Messaging")
		}
		var res result
		var err error
		fired := false
		sctx, span := r.tracer.Start(ctx, "workflow step "+a.Type, trace.WithAttributes(
			attribute.String("workflow.activity.id", a.ID), attribute.String("workflow.activity.type", a.Type)))
		if ev != nil && st.Wait != nil && st.Wait.Activity == a.ID {
			fired = ev.timer
			res, err = r.resumeActivity(sctx, st, a, t, *ev)
			ev = nil
		} else {
			if !st.Entered {
				st.Visits[a.ID]++
				st.Entered, st.EnteredAt = true, r.now()
			}
			res, err = r.enter(sctx, st, a, t)
		}
		endStep(span, res, err)
		if err != nil {
			return err
		}
		if res.wait != nil {
			st.Wait = res.wait
			if st.Status != StatusQueued {
				st.Status = StatusWaiting
			}
			return nil
		}
		if st.Wait != nil && !st.Wait.DueAt.IsZero() && !fired {
			// Answered before the timeout: the timer is canceled when the
			// run ends, unless a new wait's timer replaced it by then.
			pendingTimer = true
		}
		st.Wait = nil
		if err := r.stepCompleted(ctx, st, a, res.outcome); err != nil {
			return err
		}
		next := a.Next[res.outcome]
		switch {
		case res.transfer != "":
			if def, err = r.enterService(ctx, st, res.transfer); err != nil {
				return err
			}
			st.Status = StatusRunning
			continue
		case res.end || next == "":
			if st.Queue != nil {
				return r.endQueued(ctx, st, def)
			}
			if st.Status != StatusQueued {
				st.Status = StatusDone
			}
			return nil
		}
		st.Status = StatusRunning
		st.Activity, st.Entered = next, false
	}
}

// endStep ends a step's span with its outcome: the branch taken, that it
// waits, or its error.
func endStep(span trace.Span, res result, err error) {
	switch {
	case err != nil:
		span.SetStatus(otelcodes.Error, err.Error())
	case res.wait != nil:
		span.SetAttributes(attribute.String("workflow.step.waits", res.wait.Kind))
	default:
		span.SetAttributes(attribute.String("workflow.step.branch", res.outcome))
	}
	span.End()
}

func (r *Runner) stepCompleted(ctx context.Context, st *State, a *workflowdef.Activity, branch string) error {
	st.Steps++
	recordStep(a.Type)
	now := r.now()
	dur := time.Duration(0)
	if !st.EnteredAt.IsZero() && now.After(st.EnteredAt) {
		dur = now.Sub(st.EnteredAt)
	}
	return r.emit(ctx, st, subjects.WorkflowStepCompleted(st.Tenant), &workflowv1.StepCompleted{
		TenantId: st.Tenant, SessionId: st.SessionID, WorkflowId: st.WorkflowID, WorkflowVersion: st.WorkflowVersion,
		Activity: a.ID, ActivityType: a.Type, Branch: branch, Duration: durationpb.New(dur), Step: st.Steps,
		OccurredAt: timestamppb.New(now), ActivityLabel: a.Label,
	}, st.SessionID+"-step-"+strconv.FormatInt(st.Steps, 10))
}

// lastStep writes the step event of the activity the workflow stopped in
// without taking a branch (it failed there, the customer went silent, the
// session ended or was accepted while it waited), so the session's path
// (reporting's workflow path) ends where the workflow did. Without the
// definition (config unreachable) the path goes without it.
func (r *Runner) lastStep(ctx context.Context, st *State) error {
	def, err := r.definition(ctx, st)
	if err != nil {
		r.log.DebugContext(ctx, "last step not written: no definition", "tenant", st.Tenant, "session", st.SessionID, "err", err)
		return nil
	}
	a, ok := def.Activity(st.Activity)
	if !ok {
		return nil
	}
	st.Entered = false
	return r.stepCompleted(ctx, st, a, "")
}

func (r *Runner) cancelTimer(ctx context.Context, st *State) {
	if r.timers == nil {
		return
	}
	// A timer that still fires finds no wait of its step and is ignored;
	// cancelling only spares it the trip.
	if err := r.timers.Cancel(ctx, st.Tenant, st.SessionID); err != nil {
		r.log.DebugContext(ctx, "cancel workflow timer", "tenant", st.Tenant, "session", st.SessionID, "err", err)
	}
}

// wait starts waiting in activity a; a timeout > 0 schedules its timer.
func (r *Runner) wait(ctx context.Context, st *State, a *workflowdef.Activity, kind string, timeout time.Duration) (*Wait, error) {
	w := &Wait{Kind: kind, Activity: a.ID, Step: st.Steps, Since: r.now()}
	if kind == waitInput && !st.EnteredAt.IsZero() && st.EnteredAt.Before(w.Since) {
		// The prompt went out before the wait is saved: an answer written
		// since the activity began answers it.
		w.Since = st.EnteredAt
	}
	if timeout > 0 {
		w.TimeoutAt = r.now().Add(timeout)
	}
	switch {
	case st.Inactivity <= 0 || !waitsForCustomer(st, kind):
		st.InactiveAt = time.Time{}
	case st.InactiveAt.IsZero():
		st.InactiveAt = r.now().Add(st.Inactivity) // the customer's turn begins
	}
	return w, r.schedule(ctx, st, w)
}

// waitsForCustomer: a wait of this kind counts toward the customer's
// inactivity (a question, a menu, a bot, or the task queued, a Delay of
// the queue loop included).
func waitsForCustomer(st *State, kind string) bool {
	return kind == waitInput || kind == waitQueue || st.Queue != nil || st.Status == StatusQueued
}

// schedule sets wait w's timer to the earliest of its own timeout, the
// queued task's and the customer's inactivity deadline, replacing the
// session's pending timer when that changed.
func (r *Runner) schedule(ctx context.Context, st *State, w *Wait) error {
	due := w.timeout(st)
	if q := st.Queue; q != nil && !q.DueAt.IsZero() && (due.IsZero() || q.DueAt.Before(due)) {
		due = q.DueAt // the queued task times out first
	}
	if at := st.InactiveAt; !at.IsZero() && (due.IsZero() || at.Before(due)) {
		due = at
	}
	if due.IsZero() || due.Equal(w.DueAt) {
		return nil
	}
	if r.timers == nil {
		return errors.New("no timers configured")
	}
	if err := r.timers.Schedule(ctx, &workflowv1.TimerFired{TenantId: st.Tenant, SessionId: st.SessionID, Step: w.Step,
		Activity: w.Activity, DueAt: timestamppb.New(due)}, due); err != nil {
		return err
	}
	w.DueAt = due
	return nil
}

// enter runs activity a from its beginning.
func (r *Runner) enter(ctx context.Context, st *State, a *workflowdef.Activity, t workflowdef.ActivityType) (result, error) {
	next := result{outcome: workflowdef.OutcomeNext}
	switch a.Type {
	case "accept":
		return next, nil
	case "message":
		return next, r.sendMessage(ctx, st, a)
	case "save_to_parameter":
		st.Params[a.StringParam("parameter")] = r.expand(st, a.StringParam("value"))
		return next, nil
	case "check_parameter":
		if CheckParameter(st.Params, a) {
			return result{outcome: "match"}, nil
		}
		return result{outcome: "no_match"}, nil
	case "distribution_priority":
		st.Priority = int32(a.IntParam("priority", 0))
		return next, r.reprioritize(ctx, st, t)
	case "get_queue_position", "check_task", "cancel_task", "get_available_users", "availability_routing":
		return r.distributionActivity(ctx, st, a, t)
	case "check_opening_hours":
		id := serviceOf(a, st)
		svc, err := r.service(ctx, st.Tenant, id)
		if errors.Is(err, errNoService) {
			return result{}, failf(t.Name, "service %q is not configured", id)
		}
		if err != nil {
			return result{}, err
		}
		if Open(svc.GetOpeningHours(), r.now()) {
			st.Closing = workflowv1.EndCause_END_CAUSE_UNSPECIFIED
			return result{outcome: "open"}, nil
		}
		st.Closing = workflowv1.EndCause_END_CAUSE_OUT_OF_HOURS
		return result{outcome: "closed"}, nil
	case "delay":
		w, err := r.wait(ctx, st, a, waitTimer, a.DurationParam("duration", time.Second))
		return result{wait: w}, err
	case "collect_information":
		if err := r.message(ctx, st, a, "", r.expand(st, a.StringParam("prompt"))); err != nil {
			return result{}, err
		}
		w, err := r.wait(ctx, st, a, waitInput, a.DurationParam("timeout", DefaultAnswerTimeout))
		return result{wait: w}, err
	case "input_customer":
		if err := r.message(ctx, st, a, "", menu(r.expand(st, a.StringParam("prompt")), a.StringsParam("choices"))); err != nil {
			return result{}, err
		}
		w, err := r.wait(ctx, st, a, waitInput, a.DurationParam("timeout", DefaultAnswerTimeout))
		return result{wait: w}, err
	case "queue_task":
		service := serviceOf(a, st)
		// Another service than the session's must exist: distribution
		// could never queue a task for it, and the customer would wait
		// for ever.
		if service != st.ServiceID {
			if _, err := r.service(ctx, st.Tenant, service); errors.Is(err, errNoService) {
				return result{}, failf(t.Name, "service %q is not configured", service)
			} else if err != nil {
				return result{}, err
			}
		}
		priority := int32(a.IntParam("priority", int64(st.Priority)))
		if err := r.queue(ctx, st, a, service, priority, a.StringsParam("required_skills")); err != nil {
			return result{}, err
		}
		st.Closing = workflowv1.EndCause_END_CAUSE_UNSPECIFIED
		if _, goOn := a.Next[outcomeQueued]; goOn {
			st.Queue = &Queued{Activity: a.ID, TaskID: st.TaskID, QueuedAt: r.now()}
			if timeout := a.DurationParam("timeout", 0); timeout > 0 {
				st.Queue.DueAt = r.now().Add(timeout)
			}
			return result{outcome: outcomeQueued}, nil
		}
		st.Status = StatusQueued
		if timeout := a.DurationParam("timeout", 0); timeout > 0 || st.Inactivity > 0 {
			w, err := r.wait(ctx, st, a, waitQueue, timeout)
			return result{wait: w}, err
		}
		return result{end: true}, nil
	case "web_request":
		secrets, err := r.headerSecrets(ctx, st, a)
		var unset *secretNotSet
		switch {
		case errors.As(err, &unset):
			return result{outcome: r.applyWeb(st, a, webResult{failure: unset.Error()})}, nil
		case err != nil:
			return result{}, err
		}
		return result{outcome: r.applyWeb(st, a, r.webRequest(ctx, st, a, secrets))}, nil
	case "bot":
		return r.enterBot(ctx, st, a)
	case "transfer":
		return result{transfer: a.StringParam("service_id")}, nil
	case "disconnect":
		if err := r.message(ctx, st, a, "", r.expand(st, a.StringParam("text"))); err != nil {
			return result{}, err
		}
		st.Queue = nil // distribution cancels the task of an ended session
		return result{end: true}, r.emit(ctx, st, subjects.WorkflowEndRequested(st.Tenant), &workflowv1.SessionEndRequested{
			TenantId: st.Tenant, SessionId: st.SessionID, WorkflowId: st.WorkflowID, Activity: a.ID,
			Cause: st.Closing, OccurredAt: timestamppb.New(r.now()),
		}, st.SessionID+"-"+a.ID+visitSuffix(st.Visits[a.ID])+"-end")
	}
	return result{}, failf(t.Name, "workflow-runner cannot run this activity yet")
}

// resumeActivity applies a customer message or a timer to waiting activity a.
func (r *Runner) resumeActivity(ctx context.Context, st *State, a *workflowdef.Activity, t workflowdef.ActivityType, ev event) (result, error) {
	w := st.Wait
	stay := result{wait: w}
	switch a.Type {
	case "delay":
		if ev.timer {
			return result{outcome: workflowdef.OutcomeNext}, nil
		}
	case "queue_task":
		if ev.timer {
			accepted, err := r.cancelTask(ctx, st, t, "queue timeout")
			if err != nil {
				return result{}, err
			}
			if accepted {
				// The agent's accept is on its way and ends the instance.
				st.Status, st.Reason, st.Wait = StatusDone, "accepted by an agent", nil
				return result{outcome: "accepted", end: true}, nil
			}
			st.Status, st.Closing = StatusRunning, workflowv1.EndCause_END_CAUSE_NO_AGENT
			return result{outcome: "timeout"}, nil
		}
	case "bot":
		return r.resumeBot(ctx, st, a, ev)
	case "collect_information", "input_customer":
		if ev.timer {
			return result{outcome: noAnswer(a.Type)}, nil
		}
		st.Consumed = append(st.Consumed, ev.input.GetMessageId())
		if len(st.Consumed) > maxConsumed {
			st.Consumed = st.Consumed[len(st.Consumed)-maxConsumed:]
		}
		if a.Type == "collect_information" {
			if v, ok := Answer(a, ev.input.GetBody()); ok {
				st.Params[a.StringParam("parameter")] = v
				return result{outcome: workflowdef.OutcomeNext}, nil
			}
		} else if c := Choose(a.StringsParam("choices"), ev.input.GetBody()); c != "" {
			if p := a.StringParam("parameter"); p != "" {
				st.Params[p] = c
			}
			return result{outcome: c}, nil
		}
		w.Attempts++
		if w.Attempts >= int(a.IntParam("max_attempts", DefaultMaxAttempts)) {
			return result{outcome: noAnswer(a.Type)}, nil
		}
		retry := r.expand(st, a.StringParam("retry_prompt"))
		if a.Type == "input_customer" {
			if retry == "" {
				retry = "Sorry, I did not understand. Please answer with one of these numbers:"
			}
			retry = menu(retry, a.StringsParam("choices"))
		} else if retry == "" {
			retry = r.expand(st, a.StringParam("prompt"))
		}
		return stay, r.message(ctx, st, a, "-retry-"+strconv.Itoa(w.Attempts), retry)
	}
	return stay, nil
}

// maxConsumed bounds the message ids an instance remembers: far more than
// a redelivery can be behind.
const maxConsumed = 32

// noAnswer is the branch of a question or menu left without a fitting answer.
func noAnswer(activityType string) string {
	if activityType == "input_customer" {
		return "no_match"
	}
	return "no_answer"
}

func serviceOf(a *workflowdef.Activity, st *State) string {
	if s := a.StringParam("service_id"); s != "" {
		return s
	}
	return st.ServiceID
}

func (r *Runner) expand(st *State, s string) string {
	return expand(s, st.Params, func(name string) (string, bool) { return r.system(st, name) })
}

// system parameters: the customer, the channel, the service and the time.
func (r *Runner) system(st *State, name string) (string, bool) {
	start := st.started()
	conv := start.GetConversation()
	switch name {
	case "customer_address":
		return strings.TrimPrefix(conv.GetCustomerAddress(), "whatsapp:"), true
	case "customer_name":
		return start.GetCustomerName(), true
	case "channel":
		switch conv.GetChannel() {
		case messagingv1.Channel_CHANNEL_SMS:
			return "sms", true
		case messagingv1.Channel_CHANNEL_WHATSAPP:
			return "whatsapp", true
		}
		return "", true
	case "service_name":
		return st.ServiceName, true
	case "time", "time_of_day", "date", "weekday":
		loc, err := time.LoadLocation(st.TimeZone)
		if err != nil {
			loc = time.UTC
		}
		now := r.now().In(loc)
		switch name {
		case "time":
			return now.Format("15:04"), true
		case "date":
			return now.Format("2006-01-02"), true
		case "weekday":
			return now.Weekday().String(), true
		}
		switch h := now.Hour(); {
		case h >= 5 && h < 12:
			return "morning", true
		case h >= 12 && h < 18:
			return "afternoon", true
		default:
			return "evening", true
		}
	}
	return "", false
}

// message sends text to the customer under the activity's id (plus suffix).
func (r *Runner) message(ctx context.Context, st *State, a *workflowdef.Activity, suffix, text string) error {
	if strings.TrimSpace(text) == "" {
		return nil
	}
	return r.send(ctx, st, st.SessionID+"-"+a.ID+visitSuffix(st.Visits[a.ID])+suffix, text)
}

func (r *Runner) send(ctx context.Context, st *State, id, text string) error {
	start := st.started()
	return r.emit(ctx, st, subjects.OutboundRequested(st.Tenant), &outboundv1.OutboundMessageRequested{
		TenantId: st.Tenant, RequestId: id, SessionId: st.SessionID, EntryId: start.GetEntryId(),
		Conversation: start.GetConversation(), Body: text, Origin: outboundv1.Origin_ORIGIN_WORKFLOW,
		Author: st.ServiceName, RequestedAt: timestamppb.New(r.now()),
	}, id)
}

func (r *Runner) queue(ctx context.Context, st *State, a *workflowdef.Activity, service string, priority int32, skills []string) error {
	taskID := TaskID(st.SessionID, a.ID, st.Visits[a.ID])
	st.TaskID = taskID
	start := st.started()
	// What the workflow collected goes with the task to the agent's desk,
	// bounded; what does not fit is left out, the task still queued.
	params, dropped := taskparams.Bound(st.Params)
	if dropped.Any() {
		r.log.WarnContext(ctx, "task parameters bounded", "tenant", st.Tenant, "session_id", st.SessionID, "task", taskID,
			"dropped", dropped.Params, "truncated", dropped.Truncated)
	}
	return r.emit(ctx, st, subjects.WorkflowTaskRequested(st.Tenant), &workflowv1.TaskRequested{
		TenantId: st.Tenant, TaskId: taskID, SessionId: st.SessionID, ServiceId: service,
		Conversation: start.GetConversation(), Priority: priority, CustomerName: start.GetCustomerName(),
		RequestedAt: timestamppb.New(r.now()), RequiredSkills: skills, Parameters: params,
	}, taskID)
}

// fail tells the customer (the service's failure message, or the
// default), reports the failure (sessions ends the session
// as failed) and logs it.
func (r *Runner) fail(ctx context.Context, st *State, activity, reason string) error {
	if st.started().GetConversation() != nil {
		text := st.FailureMessage
		if text == "" {
			text = DefaultFailureMessage
		}
		if err := r.send(ctx, st, st.SessionID+"-failed", text); err != nil {
			return err
		}
	}
	if st.Entered {
		if err := r.lastStep(ctx, st); err != nil {
			return err
		}
	}
	if err := r.emit(ctx, st, subjects.WorkflowFailed(st.Tenant), &workflowv1.WorkflowFailed{
		TenantId: st.Tenant, SessionId: st.SessionID, WorkflowId: st.WorkflowID, Activity: activity, Reason: reason,
		OccurredAt: timestamppb.New(r.now()),
	}, st.SessionID+"-failed"); err != nil {
		return err
	}
	if st.Wait != nil && !st.Wait.DueAt.IsZero() {
		r.cancelTimer(ctx, st)
	}
	st.Status, st.Reason, st.Wait = StatusFailed, activity+": "+reason, nil
	r.log.WarnContext(ctx, "workflow failed", "tenant", st.Tenant, "session", st.SessionID, "workflow", st.WorkflowID,
		"workflow_version", st.WorkflowVersion, "activity", activity, "reason", reason)
	return nil
}
