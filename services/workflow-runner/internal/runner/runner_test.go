package runner_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
	distributionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/distribution/v1"
	messagingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/messaging/v1"
	outboundv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/outbound/v1"
	sessionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/session/v1"
	workflowv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/workflow/v1"

	"github.com/switchboard-cc/switchboard/pkg/bus"
	"github.com/switchboard-cc/switchboard/pkg/natsembed/natstest"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
	"github.com/switchboard-cc/switchboard/services/workflow-runner/internal/runner"
)

// services is a fake config ServiceService: GetService from a map; an
// unknown "config-down" answers Unavailable, an empty id InvalidArgument.
type services struct {
	configv1.ServiceServiceClient // anything else panics
	mu                            sync.Mutex
	byKey                         map[string]*configv1.Service
	calls                         int
}

func (s *services) GetService(_ context.Context, r *configv1.GetServiceRequest, _ ...grpc.CallOption) (*configv1.GetServiceResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	svc, ok := s.byKey[r.GetTenantId()+"/"+r.GetId()]
	switch {
	case ok:
	case r.GetId() == "config-down":
		return nil, status.Error(codes.Unavailable, "connection refused")
	case r.GetId() == "":
		return nil, status.Error(codes.InvalidArgument, "id is required")
	default:
		return nil, status.Errorf(codes.NotFound, "service %q not found", r.GetId())
	}
	return &configv1.GetServiceResponse{Service: svc}, nil
}

func (s *services) set(tenant string, svc *configv1.Service) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.byKey[tenant+"/"+svc.GetId()] = svc
}

type published struct {
	subject, msgID string
	event          proto.Message
}

// pub records what is published, dropping a repeated id as JetStream's
// dedupe window does; step events are kept apart (steps). The attempt
// numbered fail (from 1) fails.
type pub struct {
	mu       sync.Mutex
	out      []published
	stepsOut []published
	seen     map[string]bool
	attempts int
	fail     int
}

func (p *pub) Emit(_ context.Context, subject string, ev proto.Message, msgID string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, step := ev.(*workflowv1.StepCompleted); !step {
		p.attempts++
		if p.attempts == p.fail {
			return fmt.Errorf("publish %s: nats: timeout", subject)
		}
	}
	if p.seen == nil {
		p.seen = map[string]bool{}
	}
	if p.seen[subject+" "+msgID] {
		return nil
	}
	p.seen[subject+" "+msgID] = true
	if _, ok := ev.(*workflowv1.StepCompleted); ok {
		p.stepsOut = append(p.stepsOut, published{subject, msgID, proto.Clone(ev)})
		return nil
	}
	p.out = append(p.out, published{subject, msgID, proto.Clone(ev)})
	return nil
}

// steps are the step events published, as "activity branch".
func (p *pub) steps() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, x := range p.stepsOut {
		s := x.event.(*workflowv1.StepCompleted)
		out = append(out, s.GetActivity()+" "+s.GetBranch())
	}
	return out
}

func (p *pub) all() []published {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]published(nil), p.out...)
}

// endCauses are the causes of the SessionEndRequested events published.
func (p *pub) endCauses() []workflowv1.EndCause {
	var out []workflowv1.EndCause
	for _, x := range p.all() {
		if e, ok := x.event.(*workflowv1.SessionEndRequested); ok {
			out = append(out, e.GetCause())
		}
	}
	return out
}

// ids describes what was published as "subject id".
func (p *pub) ids() []string {
	var out []string
	for _, x := range p.all() {
		out = append(out, x.subject+" "+x.msgID)
	}
	return out
}

func (p *pub) failOn(attempt int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fail = attempt
}

const sessionID = "ss_01jq3k5v8m9n0p1q2r3s4t5v6w"

var conv = &messagingv1.ConversationRef{Channel: messagingv1.Channel_CHANNEL_SMS, CustomerAddress: "+15550100", BusinessAddress: "+15550199"}

func start(tenant, session, service string) *sessionv1.SessionStarted {
	return &sessionv1.SessionStarted{TenantId: tenant, SessionId: session, ServiceId: service, EntryId: "entry-1",
		Conversation: conv, CustomerName: "Dana", StartedAt: timestamppb.New(time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC))}
}

func msg(t *testing.T, subject string, ev proto.Message) *bus.Message {
	t.Helper()
	data, err := proto.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return &bus.Message{Subject: subject, Data: data, Delivered: 1}
}

type fixture struct {
	r      *runner.Runner
	pub    *pub
	svcs   *services
	timers *timers
	clock  *clock
	store  *runner.Store
	dist   *dist
	wfs    configv1.WorkflowServiceClient
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	svcs := &services{byKey: map[string]*configv1.Service{}}
	svcs.set("acme", &configv1.Service{Id: "sales", TenantId: "acme", Name: "Sales", Greeting: "Hi! An agent will be with you shortly."})
	svcs.set("acme", &configv1.Service{Id: "quiet", TenantId: "acme", Name: "Quiet", Greeting: "  \n\t"})
	return newRunnerFixture(t, svcs, nil)
}

// newRunnerFixture runs a runner on a real KV bucket (embedded NATS) with
// recorded timers and an adjustable clock.
func newRunnerFixture(t *testing.T, svcs *services, wfs configv1.WorkflowServiceClient) *fixture {
	t.Helper()
	ns := natstest.Start(t)
	b, err := bus.Connect(ns.ClientURL(), t.Name(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	kv, err := b.JS.CreateKeyValue(context.Background(), jetstream.KeyValueConfig{Bucket: subjects.BucketWorkflowInstances})
	if err != nil {
		t.Fatal(err)
	}
	p := &pub{}
	clk := &clock{t: time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)} // a Monday
	tm := &timers{}
	f := &fixture{pub: p, svcs: svcs, timers: tm, clock: clk, store: runner.NewStore(kv), dist: &dist{tasks: map[string]*distributionv1.Task{}}, wfs: wfs}
	f.r = runner.New(runner.Deps{Pub: p, Services: svcs, Workflows: wfs, Distribution: f.dist, Store: f.store, Timers: tm, Now: clk.now})
	return f
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// timers records each session's pending timer as Timers would keep it.
type timers struct {
	mu      sync.Mutex
	pending map[string]*workflowv1.TimerFired
	due     map[string]time.Time
}

func (tm *timers) Schedule(_ context.Context, ev *workflowv1.TimerFired, at time.Time) error {
	tm.mu.Lock()
	defer tm.mu.Unlock()
	if tm.pending == nil {
		tm.pending, tm.due = map[string]*workflowv1.TimerFired{}, map[string]time.Time{}
	}
	tm.pending[ev.GetTenantId()+"/"+ev.GetSessionId()] = proto.Clone(ev).(*workflowv1.TimerFired)
	tm.due[ev.GetTenantId()+"/"+ev.GetSessionId()] = at
	return nil
}

func (tm *timers) Cancel(_ context.Context, tenant, session string) error {
	tm.mu.Lock()
	defer tm.mu.Unlock()
	delete(tm.pending, tenant+"/"+session)
	return nil
}

func (tm *timers) get(tenant, session string) (*workflowv1.TimerFired, time.Time) {
	tm.mu.Lock()
	defer tm.mu.Unlock()
	return tm.pending[tenant+"/"+session], tm.due[tenant+"/"+session]
}

func (f *fixture) handle(t *testing.T, ev *sessionv1.SessionStarted) error {
	t.Helper()
	return f.r.HandleSessionStarted(context.Background(), msg(t, subjects.SessionStarted(ev.GetTenantId()), ev))
}

func TestStartGreetsThenQueues(t *testing.T) {
	f := newFixture(t)
	if err := f.handle(t, start("acme", sessionID, "sales")); err != nil {
		t.Fatal(err)
	}
	taskID := runner.TaskID(sessionID, "queue", 1)
	if taskID != "tk_01jq3k5v8m9n0p1q2r3s4t5v6w_queue" {
		t.Errorf("TaskID = %q, want tk_<session without ss_>_<activity>", taskID)
	}
	want := []string{subjects.OutboundRequested("acme") + " " + sessionID + "-greet", subjects.WorkflowTaskRequested("acme") + " " + taskID}
	if got := f.pub.ids(); !slices.Equal(got, want) {
		t.Fatalf("published\n got  %q\n want %q", got, want)
	}
	out := f.pub.all()
	greeting, ok := out[0].event.(*outboundv1.OutboundMessageRequested)
	if !ok {
		t.Fatalf("first event is %T, want OutboundMessageRequested", out[0].event)
	}
	wantGreeting := &outboundv1.OutboundMessageRequested{TenantId: "acme", RequestId: sessionID + "-greet", SessionId: sessionID, EntryId: "entry-1",
		Conversation: conv, Body: "Hi! An agent will be with you shortly.", Origin: outboundv1.Origin_ORIGIN_WORKFLOW, Author: "Sales",
		RequestedAt: greeting.GetRequestedAt()}
	if greeting.GetRequestedAt() == nil || !proto.Equal(greeting, wantGreeting) {
		t.Errorf("greeting\n got  %v\n want %v", greeting, wantGreeting)
	}
	task, ok := out[1].event.(*workflowv1.TaskRequested)
	if !ok {
		t.Fatalf("second event is %T, want TaskRequested", out[1].event)
	}
	wantTask := &workflowv1.TaskRequested{TenantId: "acme", TaskId: taskID, SessionId: sessionID, ServiceId: "sales",
		Conversation: conv, CustomerName: "Dana", RequestedAt: task.GetRequestedAt()}
	if task.GetRequestedAt() == nil || !proto.Equal(task, wantTask) {
		t.Errorf("task request\n got  %v\n want %v", task, wantTask)
	}
}

func TestRedeliveredStartPublishesNothingNew(t *testing.T) {
	f := newFixture(t)
	for i := range 3 {
		if err := f.handle(t, start("acme", sessionID, "sales")); err != nil {
			t.Fatalf("delivery %d: %v", i+1, err)
		}
	}
	if got := len(f.pub.all()); got != 2 {
		t.Errorf("published %d events over three deliveries, want 2: %q", got, f.pub.ids())
	}
}

// A delivery that fails part-way (a publish times out) is redelivered; the
// retry goes on from the step that failed, under the same ids.
func TestRetryAfterAFailedStep(t *testing.T) {
	for _, tc := range []struct {
		name      string
		failOn    int // the publish attempt that fails
		wantAfter int // events the retry publishes
	}{
		{"greeting fails", 1, 2},
		{"task request fails", 2, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.pub.failOn(tc.failOn)
			err := f.handle(t, start("acme", sessionID, "sales"))
			if err == nil || bus.IsPermanent(err) {
				t.Fatalf("first delivery: err = %v, want a retryable error", err)
			}
			before := len(f.pub.all())
			if err := f.handle(t, start("acme", sessionID, "sales")); err != nil {
				t.Fatalf("retry: %v", err)
			}
			if got := len(f.pub.all()) - before; got != tc.wantAfter {
				t.Errorf("retry published %d events, want %d: %q", got, tc.wantAfter, f.pub.ids())
			}
			want := []string{subjects.OutboundRequested("acme") + " " + sessionID + "-greet", subjects.WorkflowTaskRequested("acme") + " " + runner.TaskID(sessionID, "queue", 1)}
			if got := f.pub.ids(); !slices.Equal(got, want) {
				t.Errorf("published overall\n got  %q\n want %q", got, want)
			}
		})
	}
}

func TestEmptyGreetingIsSkipped(t *testing.T) {
	f := newFixture(t)
	if err := f.handle(t, start("acme", sessionID, "quiet")); err != nil {
		t.Fatal(err)
	}
	// The task keeps the id of its step, greeting or not.
	want := []string{subjects.WorkflowTaskRequested("acme") + " " + runner.TaskID(sessionID, "queue", 1)}
	if got := f.pub.ids(); !slices.Equal(got, want) {
		t.Errorf("published\n got  %q\n want %q", got, want)
	}
}

func TestMissingServiceFailsTheWorkflow(t *testing.T) {
	for _, service := range []string{"gone", ""} {
		t.Run(fmt.Sprintf("service %q", service), func(t *testing.T) {
			f := newFixture(t)
			for range 2 { // the second delivery publishes nothing new
				if err := f.handle(t, start("acme", sessionID, service)); err != nil {
					t.Fatalf("HandleSessionStarted: %v", err)
				}
			}
			out := f.pub.all()
			if len(out) != 2 {
				t.Fatalf("published %q, want the failure message and one WorkflowFailed", f.pub.ids())
			}
			if sorry := out[0].event.(*outboundv1.OutboundMessageRequested); sorry.GetBody() != runner.DefaultFailureMessage || sorry.GetRequestId() != sessionID+"-failed" {
				t.Errorf("customer got %q as %q, want the default failure message", sorry.GetBody(), sorry.GetRequestId())
			}
			out = out[1:]
			if out[0].subject != subjects.WorkflowFailed("acme") || out[0].msgID != sessionID+"-failed" {
				t.Errorf("published %s under %q, want %s under %q", out[0].subject, out[0].msgID, subjects.WorkflowFailed("acme"), sessionID+"-failed")
			}
			failed, ok := out[0].event.(*workflowv1.WorkflowFailed)
			if !ok {
				t.Fatalf("published %T, want WorkflowFailed", out[0].event)
			}
			if failed.GetTenantId() != "acme" || failed.GetSessionId() != sessionID || failed.GetActivity() == "" || failed.GetReason() == "" || failed.GetOccurredAt() == nil {
				t.Errorf("WorkflowFailed = %v, want tenant, session, activity, reason and time", failed)
			}
		})
	}
}

func TestConfigOutageIsRetried(t *testing.T) {
	f := newFixture(t)
	err := f.handle(t, start("acme", sessionID, "config-down"))
	if err == nil || bus.IsPermanent(err) {
		t.Fatalf("err = %v, want a retryable error", err)
	}
	if got := f.pub.ids(); len(got) != 0 {
		t.Errorf("published %q while config was down, want nothing", got)
	}
	// Config is back (the service id resolves): the retry runs the workflow.
	f.svcs.set("acme", &configv1.Service{Id: "config-down", Name: "Back", Greeting: "Hello"})
	if err := f.handle(t, start("acme", sessionID, "config-down")); err != nil {
		t.Fatal(err)
	}
	if got := len(f.pub.all()); got != 2 {
		t.Errorf("published %q after config came back, want greeting and task", f.pub.ids())
	}
}

func TestSessionsAndTenantsAreSeparate(t *testing.T) {
	f := newFixture(t)
	f.svcs.set("globex", &configv1.Service{Id: "sales", Name: "Globex Sales", Greeting: "Hej"})
	other := "ss_01jq3k5v8m9n0p1q2r3s4t5v6x"
	for _, ev := range []*sessionv1.SessionStarted{start("acme", sessionID, "sales"), start("acme", other, "sales"), start("globex", "ss_g1", "sales")} {
		if err := f.handle(t, ev); err != nil {
			t.Fatal(err)
		}
	}
	ids := map[string]bool{}
	for _, p := range f.pub.all() {
		if ids[p.msgID] {
			t.Errorf("msg id %q used twice", p.msgID)
		}
		ids[p.msgID] = true
	}
	if len(ids) != 6 {
		t.Errorf("published %q, want a greeting and a task per session", f.pub.ids())
	}
	// A done instance of one tenant does not stop the same session id in
	// another (ids are unique, but instances are keyed per tenant too).
	if err := f.handle(t, start("globex", sessionID, "sales")); err != nil {
		t.Fatal(err)
	}
	if got := len(f.pub.all()); got != 8 {
		t.Errorf("globex's session %s published %d events in all, want 8", sessionID, got)
	}
}

func TestBadStarts(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		m    *bus.Message
	}{
		{"undecodable", &bus.Message{Subject: subjects.SessionStarted("acme"), Data: []byte{0xff, 0x01}}},
		{"no session id", msg(t, subjects.SessionStarted("acme"), start("acme", "", "sales"))},
		{"tenant differs from subject", msg(t, subjects.SessionStarted("acme"), start("globex", sessionID, "sales"))},
	} {
		if err := f.r.HandleSessionStarted(ctx, tc.m); !bus.IsPermanent(err) {
			t.Errorf("%s: err = %v, want permanent", tc.name, err)
		}
	}
	if got := f.pub.ids(); len(got) != 0 {
		t.Errorf("published %q for bad starts", got)
	}
	if f.svcs.calls != 0 {
		t.Errorf("looked up %d services for bad starts", f.svcs.calls)
	}
}
