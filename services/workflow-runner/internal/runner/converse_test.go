package runner_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
	distributionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/distribution/v1"
	outboundv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/outbound/v1"
	sessionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/session/v1"
	workflowv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/workflow/v1"

	"github.com/switchboard-cc/switchboard/pkg/subjects"
	"github.com/switchboard-cc/switchboard/pkg/taskparams"
	"github.com/switchboard-cc/switchboard/pkg/workflowdef"
	"github.com/switchboard-cc/switchboard/services/workflow-runner/internal/runner"
)

// conversation drives one session through a fixture.
type conversation struct {
	t       *testing.T
	f       *fixture
	session string
	n       int
}

func (f *fixture) converse(t *testing.T, service, session string) *conversation {
	t.Helper()
	if err := f.handle(t, start("acme", session, service)); err != nil {
		t.Fatal(err)
	}
	return &conversation{t: t, f: f, session: session}
}

// say delivers a customer message (twice, as a redelivery would).
func (c *conversation) say(body string) {
	c.t.Helper()
	c.n++
	c.f.clock.advance(time.Second)
	ev := &sessionv1.MessageAdded{TenantId: "acme", SessionId: c.session, MessageId: fmt.Sprintf("m%d", c.n),
		Sender: sessionv1.SenderKind_SENDER_KIND_CUSTOMER, Body: body, OccurredAt: timestamppb.New(c.f.clock.now())}
	for range 2 {
		if err := c.f.r.HandleSession(context.Background(), msg(c.t, subjects.SessionMessageAdded("acme"), ev)); err != nil {
			c.t.Fatalf("message %q: %v", body, err)
		}
	}
}

// fire delivers the session's pending timer (twice) after its due time.
func (c *conversation) fire() {
	c.t.Helper()
	ev, due := c.f.timers.get("acme", c.session)
	if ev == nil {
		c.t.Fatal("no timer pending")
	}
	c.f.clock.advance(due.Sub(c.f.clock.now()))
	for range 2 {
		if err := c.f.r.HandleTimerFired(context.Background(), msg(c.t, subjects.WorkflowTimerFired("acme"), ev)); err != nil {
			c.t.Fatalf("timer: %v", err)
		}
	}
}

// sent is every text the customer got, in order.
func (c *conversation) sent() []string {
	var out []string
	for _, p := range c.f.pub.all() {
		if m, ok := p.event.(*outboundv1.OutboundMessageRequested); ok && m.GetSessionId() == c.session {
			out = append(out, m.GetBody())
		}
	}
	return out
}

func (c *conversation) published(subject string) int {
	n := 0
	for _, p := range c.f.pub.all() {
		if p.subject == subject {
			n++
		}
	}
	return n
}

func (c *conversation) state() *runner.State {
	c.t.Helper()
	st, _, err := c.f.store.Load(context.Background(), "acme", c.session)
	if err != nil || st == nil {
		c.t.Fatalf("load instance: %v %v", st, err)
	}
	return st
}

var intake = &workflowdef.Definition{Start: "menu", Activities: []workflowdef.Activity{
	act("menu", "input_customer", map[string]any{"prompt": "Good ${time_of_day}, ${customer_name}! How can we help?", "choices": []any{"Bookings", "Réclamation"},
		"parameter": "topic", "max_attempts": 2, "timeout": "2m"},
		map[string]string{"Bookings": "number", "Réclamation": "queue", "no_match": "bye"}),
	act("number", "collect_information", map[string]any{"prompt": "Your booking number?", "parameter": "booking", "type": "number",
		"retry_prompt": "Digits only, please.", "max_attempts": 2, "timeout": "5m"}, map[string]string{"next": "wait", "no_answer": "queue"}),
	act("wait", "delay", map[string]any{"duration": "10s"}, then("thanks")),
	act("thanks", "message", map[string]any{"text": "Thanks! Booking ${booking} (${topic}) on ${channel}."}, then("queue")),
	act("queue", "queue_task", map[string]any{"required_skills": []any{"en"}}, nil),
	act("bye", "disconnect", map[string]any{"text": "Bye."}, nil),
}}

func TestMenuQuestionDelayQueue(t *testing.T) {
	f := workflowFixture(t, nil, map[string]*workflowdef.Definition{"desk": intake})
	c := f.converse(t, "desk", sessionID)
	c.say("hello?") // an answer that matches nothing: re-prompt
	c.say("  BOOKINGS! ")
	c.say("abc") // not a number: retry prompt
	c.say("123456")
	c.say("are you there?") // during the Delay: not consumed
	if n := c.published(subjects.WorkflowTaskRequested("acme")); n != 0 {
		t.Fatalf("queued before the Delay ended")
	}
	c.fire()
	want := []string{
		"Good morning, Dana! How can we help?\n1. Bookings\n2. Réclamation",
		"Sorry, I did not understand. Please answer with one of these numbers:\n1. Bookings\n2. Réclamation",
		"Your booking number?",
		"Digits only, please.",
		"Thanks! Booking 123456 (Bookings) on sms.",
	}
	if got := c.sent(); !slices.Equal(got, want) {
		t.Errorf("customer got\n %q\nwant\n %q", got, want)
	}
	out := f.pub.all()
	task, ok := out[len(out)-1].event.(*workflowv1.TaskRequested)
	if !ok || !slices.Equal(task.GetRequiredSkills(), []string{"en"}) {
		t.Errorf("last event %v, want a task request requiring en", out[len(out)-1].event)
	}
	// What the menu and the question collected goes to the agent's desk.
	if want := map[string]string{"topic": "Bookings", "booking": "123456"}; !maps.Equal(task.GetParameters(), want) {
		t.Errorf("task parameters %v, want %v", task.GetParameters(), want)
	}
	wantSteps := []string{"menu Bookings", "number next", "wait next", "thanks next", "queue "}
	if got := f.pub.steps(); !slices.Equal(got, wantSteps) {
		t.Errorf("steps %q, want %q", got, wantSteps)
	}
	if st := c.state(); st.Status != runner.StatusQueued {
		t.Errorf("status %q, want queued", st.Status)
	}
	// The agent accepts: later messages are the agent's business.
	accepted := &distributionv1.TaskAccepted{TenantId: "acme", TaskId: task.GetTaskId(), SessionId: sessionID}
	if err := f.r.HandleTaskAccepted(context.Background(), msg(t, subjects.TaskAccepted("acme"), accepted)); err != nil {
		t.Fatal(err)
	}
	before := len(f.pub.all())
	c.say("2")
	if st := c.state(); st.Status != runner.StatusDone || len(f.pub.all()) != before {
		t.Errorf("after accept: status %q, published %d more", st.Status, len(f.pub.all())-before)
	}
}

// Parameters past the desk's bounds are left out of the task request (a
// value too long is cut), and the task is queued all the same.
func TestQueuedParametersAreBounded(t *testing.T) {
	// p00…p49, then "half" and "a_note" (twice half: past the bound).
	acts := []workflowdef.Activity{}
	for i := range taskparams.MaxParams {
		acts = append(acts, act(fmt.Sprintf("p%02d", i), "save_to_parameter",
			map[string]any{"parameter": fmt.Sprintf("p%02d", i), "value": "v"}, then(fmt.Sprintf("p%02d", i+1))))
	}
	acts = append(acts,
		act(fmt.Sprintf("p%02d", taskparams.MaxParams), "save_to_parameter",
			map[string]any{"parameter": "half", "value": strings.Repeat("x", taskparams.MaxValueBytes-10)}, then("note")),
		act("note", "save_to_parameter", map[string]any{"parameter": "a_note", "value": "${half}${half}"}, then("queue")),
		act("queue", "queue_task", nil, nil))
	f := workflowFixture(t, nil, map[string]*workflowdef.Definition{"desk": {Start: "p00", Activities: acts}})
	c := f.converse(t, "desk", sessionID)
	if n := c.published(subjects.WorkflowTaskRequested("acme")); n != 1 {
		t.Fatalf("%d task requests, want 1: %v", n, f.pub.ids())
	}
	out := f.pub.all()
	task := out[len(out)-1].event.(*workflowv1.TaskRequested)
	params := task.GetParameters()
	if len(params) != taskparams.MaxParams || len(params["a_note"]) != taskparams.MaxValueBytes {
		t.Errorf("task carries %d parameters (a_note %d bytes), want %d and %d", len(params), len(params["a_note"]), taskparams.MaxParams, taskparams.MaxValueBytes)
	}
	if st := c.state(); len(st.Params) != taskparams.MaxParams+2 || len(st.Params["a_note"]) != 2*(taskparams.MaxValueBytes-10) {
		t.Errorf("the session keeps %d parameters (a_note %d bytes), want all %d uncut", len(st.Params), len(st.Params["a_note"]), taskparams.MaxParams+2)
	}
}

func TestBranchesOfWaitingActivities(t *testing.T) {
	for _, tc := range []struct {
		name  string
		do    func(c *conversation)
		steps []string
		last  string // last text sent
	}{
		{"menu by number with accents ignored", func(c *conversation) { c.say("2") }, []string{"menu Réclamation", "queue "}, ""},
		{"menu by word", func(c *conversation) { c.say("une reclamation svp") }, []string{"menu Réclamation", "queue "}, ""},
		{"menu attempts run out", func(c *conversation) { c.say("x"); c.say("y") }, []string{"menu no_match", "bye "}, "Bye."},
		{"menu times out", func(c *conversation) { c.fire() }, []string{"menu no_match", "bye "}, "Bye."},
		{"question attempts run out", func(c *conversation) { c.say("1"); c.say("x"); c.say("y") }, []string{"menu Bookings", "number no_answer", "queue "}, ""},
		{"question times out", func(c *conversation) { c.say("1"); c.fire() }, []string{"menu Bookings", "number no_answer", "queue "}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := workflowFixture(t, nil, map[string]*workflowdef.Definition{"desk": intake})
			c := f.converse(t, "desk", sessionID)
			tc.do(c)
			if got := f.pub.steps(); !slices.Equal(got, tc.steps) {
				t.Errorf("steps %q, want %q", got, tc.steps)
			}
			if tc.last != "" {
				if s := c.sent(); s[len(s)-1] != tc.last {
					t.Errorf("last text %q, want %q", s[len(s)-1], tc.last)
				}
			}
		})
	}
}

// A message written before the question (the customer's first one, which
// sessions reports after the start) does not answer it; a timer of an
// earlier wait does nothing.
func TestEarlyMessagesAndStaleTimers(t *testing.T) {
	f := workflowFixture(t, nil, map[string]*workflowdef.Definition{"desk": intake})
	c := f.converse(t, "desk", sessionID)
	first := &sessionv1.MessageAdded{TenantId: "acme", SessionId: sessionID, MessageId: "m0", Sender: sessionv1.SenderKind_SENDER_KIND_CUSTOMER,
		Body: "1", OccurredAt: timestamppb.New(f.clock.now().Add(-time.Second))}
	if err := f.r.HandleMessageAdded(context.Background(), msg(t, subjects.SessionMessageAdded("acme"), first)); err != nil {
		t.Fatal(err)
	}
	if got := f.pub.steps(); len(got) != 0 {
		t.Fatalf("the first message answered the menu: %q", got)
	}
	stale, _ := f.timers.get("acme", sessionID)
	c.say("1") // now at the booking question, with its own timer
	if err := f.r.HandleTimerFired(context.Background(), msg(t, subjects.WorkflowTimerFired("acme"), stale)); err != nil {
		t.Fatal(err)
	}
	if got := f.pub.steps(); !slices.Equal(got, []string{"menu Bookings"}) {
		t.Errorf("steps %q after a stale timer, want the menu only", got)
	}
}

func TestCheckParameter(t *testing.T) {
	params := map[string]string{"n": "10", "name": "Zoë", "blank": " "}
	for _, tc := range []struct {
		param, op, value string
		want             bool
	}{
		{"n", "equals", "10.0", true}, {"name", "equals", "zoë", true}, {"n", "not_equals", "11", true}, {"missing", "not_equals", "x", true},
		{"name", "contains", "OË", true}, {"name", "matches", "^Z", true}, {"n", "exists", "", true}, {"missing", "exists", "", false},
		{"blank", "empty", "", true}, {"missing", "empty", "", true}, {"n", "greater_than", "9", true}, {"n", "greater_than", "10", false},
		{"n", "greater_or_equal", "10", true}, {"n", "less_than", "9.5", false}, {"n", "less_or_equal", "10", true}, {"name", "less_than", "5", false},
		{"n", "greater_than", "${n}", false},
	} {
		a := act("c", "check_parameter", map[string]any{"parameter": tc.param, "operator": tc.op, "value": tc.value}, nil)
		if got := runner.CheckParameter(params, &a); got != tc.want {
			t.Errorf("%s %s %q = %v, want %v", tc.param, tc.op, tc.value, got, tc.want)
		}
	}
}

func TestAnswerTypes(t *testing.T) {
	for _, tc := range []struct {
		typ, pattern, in, want string
		ok                     bool
	}{
		{"text", "", " hi ", "hi", true}, {"text", "", "  ", "", false},
		{"number", "", "12,5", "12.5", true}, {"number", "", "twelve", "", false},
		{"email", "", "dana@example.com", "dana@example.com", true}, {"email", "", "dana@", "", false},
		{"phone", "", "+41 44 555-01 00", "+41445550100", true}, {"phone", "", "0041445550100", "+41445550100", true}, {"phone", "", "044 555", "", false},
		{"date", "", "1.3.2026", "2026-03-01", true}, {"date", "", "2026-03-01", "2026-03-01", true}, {"date", "", "tomorrow", "", false},
		{"yes_no", "", "Ja", "yes", true}, {"yes_no", "", "NO!", "no", true}, {"yes_no", "", "maybe", "", false},
		{"", `^[0-9]{6}$|^0$`, "123456", "123456", true}, {"", `^[0-9]{6}$|^0$`, "12345", "", false},
	} {
		a := act("q", "collect_information", map[string]any{"type": tc.typ, "pattern": tc.pattern}, nil)
		got, ok := runner.Answer(&a, tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("%s %q: got %q %v, want %q %v", tc.typ, tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestChoose(t *testing.T) {
	choices := []string{"Sales", "Service après-vente", "Billing"}
	for in, want := range map[string]string{"1": "Sales", "2.": "Service après-vente", "4": "", "SERVICE APRES-VENTE": "Service après-vente",
		"billing please": "Billing", "sales or billing": "", "": "", "nothing": ""} {
		if got := runner.Choose(choices, in); got != want {
			t.Errorf("Choose(%q) = %q, want %q", in, got, want)
		}
	}
}

// versioned is a WorkflowService with versions: GetWorkflow with version 0
// answers the latest.
type versioned struct {
	configv1.WorkflowServiceClient
	mu       sync.Mutex
	versions []*workflowdef.Definition
}

func (v *versioned) GetWorkflow(_ context.Context, r *configv1.GetWorkflowRequest, _ ...grpc.CallOption) (*configv1.GetWorkflowResponse, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	n := r.GetVersion()
	if n == 0 {
		n = int64(len(v.versions))
	}
	p, err := workflowdef.ToProto(v.versions[n-1])
	if err != nil {
		return nil, err
	}
	return &configv1.GetWorkflowResponse{Workflow: &configv1.Workflow{Id: r.GetId(), Definition: p, Version: n}}, nil
}

// An admin edit while a session waits changes nothing for it; new
// sessions get the new version.
func TestEditDuringALiveSession(t *testing.T) {
	v1 := &workflowdef.Definition{Start: "q", Activities: []workflowdef.Activity{
		act("q", "collect_information", map[string]any{"prompt": "Name?", "parameter": "name"}, map[string]string{"next": "hi", "no_answer": "queue"}),
		act("hi", "message", map[string]any{"text": "Hi ${name} (v1)"}, then("queue")),
		act("queue", "queue_task", nil, nil),
	}}
	v2 := &workflowdef.Definition{Start: "x", Activities: []workflowdef.Activity{
		act("x", "message", map[string]any{"text": "v2 says hello"}, then("queue")),
		act("queue", "queue_task", nil, nil),
	}}
	wfs := &versioned{versions: []*workflowdef.Definition{v1}}
	svcs := &services{byKey: map[string]*configv1.Service{}}
	svcs.set("acme", &configv1.Service{Id: "desk", Name: "Desk", WorkflowId: "wf"})
	f := newRunnerFixture(t, svcs, wfs)
	c := f.converse(t, "desk", sessionID)
	wfs.mu.Lock()
	wfs.versions = append(wfs.versions, v2)
	wfs.mu.Unlock()
	c.say("Dana")
	if got, want := c.sent(), []string{"Name?", "Hi Dana (v1)"}; !slices.Equal(got, want) {
		t.Errorf("live session got %q, want %q", got, want)
	}
	if st := c.state(); st.WorkflowVersion != 1 {
		t.Errorf("instance pinned version %d, want 1", st.WorkflowVersion)
	}
	c2 := f.converse(t, "desk", "ss_other")
	if got, want := c2.sent(), []string{"v2 says hello"}; !slices.Equal(got, want) {
		t.Errorf("new session got %q, want %q", got, want)
	}
}

// Transfer runs the target service's own workflow (a transfer-only
// service without one queues with its default workflow).
func TestTransfer(t *testing.T) {
	front := &workflowdef.Definition{Start: "t", Activities: []workflowdef.Activity{act("t", "transfer", map[string]any{"service_id": "refunds"}, nil)}}
	f := workflowFixture(t, nil, map[string]*workflowdef.Definition{"front": front})
	f.svcs.set("acme", &configv1.Service{Id: "refunds", Name: "Refunds", Greeting: "Refunds here."})
	c := f.converse(t, "front", sessionID)
	if got := c.sent(); !slices.Equal(got, []string{"Refunds here."}) {
		t.Errorf("sent %q, want the refunds greeting", got)
	}
	out := f.pub.all()
	if task := out[len(out)-1].event.(*workflowv1.TaskRequested); task.GetServiceId() != "refunds" {
		t.Errorf("task for %q, want refunds", task.GetServiceId())
	}
}

// Queue Task's timeout branch runs when no agent accepted in time.
func TestQueueTimeout(t *testing.T) {
	def := &workflowdef.Definition{Start: "q", Activities: []workflowdef.Activity{
		act("q", "queue_task", map[string]any{"timeout": "15m"}, map[string]string{"timeout": "busy"}),
		act("busy", "disconnect", map[string]any{"text": "All agents are busy."}, nil),
	}}
	f := workflowFixture(t, nil, map[string]*workflowdef.Definition{"desk": def})
	c := f.converse(t, "desk", sessionID)
	c.say("hello?") // queued: not consumed
	c.fire()
	if got := f.pub.steps(); !slices.Equal(got, []string{"q timeout", "busy "}) {
		t.Errorf("steps %q", got)
	}
	if c.published(subjects.WorkflowEndRequested("acme")) != 1 {
		t.Error("no end request after the queue timeout")
	}
}

func TestOpenAcrossDST(t *testing.T) {
	zurich := &configv1.OpeningHours{TimeZone: "Europe/Zurich", Windows: []*configv1.OpeningWindow{{Weekday: 1, Start: "08:00", End: "17:30"}}}
	for at, want := range map[string]bool{
		"2026-03-23T07:30:00Z": true,  // Monday 08:30 CET (UTC+1)
		"2026-03-30T06:30:00Z": true,  // Monday 08:30 CEST (UTC+2), the day after the change
		"2026-03-30T06:00:00Z": true,  // 08:00 CEST
		"2026-03-30T05:30:00Z": false, // 07:30 CEST, though 06:30 would be 07:30 CET
		"2026-03-30T15:45:00Z": false, // 17:45 CEST
		"2026-10-26T16:15:00Z": true,  // Monday 17:15 CET, the day after the change back
		"2026-10-26T16:30:00Z": false, // 17:30 CET
	} {
		tm, _ := time.Parse(time.RFC3339, at)
		if got := runner.Open(zurich, tm); got != want {
			t.Errorf("Open(%s) = %v, want %v", at, got, want)
		}
	}
}

// Many conversations at once through a three-question flow all complete
// (a load test, not timed).
func TestManyConcurrentConversations(t *testing.T) {
	three := &workflowdef.Definition{Start: "a", Activities: []workflowdef.Activity{
		act("a", "collect_information", map[string]any{"prompt": "Name?", "parameter": "name"}, map[string]string{"next": "b", "no_answer": "q"}),
		act("b", "collect_information", map[string]any{"prompt": "Age?", "parameter": "age", "type": "number"}, map[string]string{"next": "c", "no_answer": "q"}),
		act("c", "input_customer", map[string]any{"prompt": "Topic?", "choices": []any{"Sales", "Support"}}, map[string]string{"Sales": "q", "Support": "q", "no_match": "q"}),
		act("q", "queue_task", nil, nil),
	}}
	f := workflowFixture(t, nil, map[string]*workflowdef.Definition{"desk": three})
	const n = 200
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			c := f.converse(t, "desk", fmt.Sprintf("ss_load%04d", i))
			c.say("Dana")
			c.say("42")
			c.say("support")
		})
	}
	wg.Wait()
	queued := 0
	for _, p := range f.pub.all() {
		if p.subject == subjects.WorkflowTaskRequested("acme") {
			queued++
		}
	}
	if queued != n {
		t.Errorf("%d of %d conversations reached Queue Task", queued, n)
	}
}
