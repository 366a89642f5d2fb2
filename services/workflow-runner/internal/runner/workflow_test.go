package runner_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
	outboundv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/outbound/v1"
	workflowv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/workflow/v1"

	"github.com/switchboard-cc/switchboard/pkg/subjects"
	"github.com/switchboard-cc/switchboard/pkg/workflowdef"
	"github.com/switchboard-cc/switchboard/services/workflow-runner/internal/runner"
)

// workflows is a fake config WorkflowService.
type workflows struct {
	configv1.WorkflowServiceClient
	byID map[string]*workflowdef.Definition
}

func (w *workflows) GetWorkflow(_ context.Context, r *configv1.GetWorkflowRequest, _ ...grpc.CallOption) (*configv1.GetWorkflowResponse, error) {
	d, ok := w.byID[r.GetId()]
	if !ok {
		return nil, status.Error(codes.NotFound, "no workflow")
	}
	p, err := workflowdef.ToProto(d)
	if err != nil {
		return nil, err
	}
	return &configv1.GetWorkflowResponse{Workflow: &configv1.Workflow{Id: r.GetId(), Definition: p, Version: 1}}, nil
}

func act(id, typ string, params map[string]any, next map[string]string) workflowdef.Activity {
	return workflowdef.Activity{ID: id, Type: typ, Params: params, Next: next}
}

func then(id string) map[string]string { return map[string]string{workflowdef.OutcomeNext: id} }

// frontDesk greets, checks opening hours, and either queues with a raised
// priority for a VIP or says goodbye outside the hours.
var frontDesk = &workflowdef.Definition{Start: "accept", Activities: []workflowdef.Activity{
	act("accept", "accept", nil, then("tier")),
	act("tier", "save_to_parameter", map[string]any{"parameter": "tier", "value": "vip"}, then("hours")),
	act("hours", "check_opening_hours", nil, map[string]string{"open": "is-vip", "closed": "bye"}),
	act("is-vip", "check_parameter", map[string]any{"parameter": "tier", "operator": "equals", "value": "vip"}, map[string]string{"match": "prio", "no_match": "queue"}),
	act("prio", "distribution_priority", map[string]any{"priority": 7}, then("greet")),
	act("greet", "message", map[string]any{"text": "Hello ${tier} customer!"}, then("queue")),
	act("queue", "queue_task", nil, nil),
	act("bye", "disconnect", map[string]any{"text": "We are closed."}, nil),
}}

func workflowFixture(t *testing.T, hours *configv1.OpeningHours, defs map[string]*workflowdef.Definition) *fixture {
	t.Helper()
	svcs := &services{byKey: map[string]*configv1.Service{}}
	for id := range defs {
		svcs.set("acme", &configv1.Service{Id: id, TenantId: "acme", Name: "Desk", WorkflowId: id, OpeningHours: hours})
	}
	return newRunnerFixture(t, svcs, &workflows{byID: defs})
}

func alwaysClosed() *configv1.OpeningHours {
	return &configv1.OpeningHours{TimeZone: "UTC", Windows: nil, Holidays: []string{time.Now().UTC().Format("2006-01-02"), time.Now().UTC().Add(24 * time.Hour).Format("2006-01-02")}}
}

func TestConfiguredWorkflowOpen(t *testing.T) {
	f := workflowFixture(t, nil, map[string]*workflowdef.Definition{"front": frontDesk})
	if err := f.handle(t, start("acme", sessionID, "front")); err != nil {
		t.Fatal(err)
	}
	want := []string{
		subjects.OutboundRequested("acme") + " " + sessionID + "-greet",
		subjects.WorkflowTaskRequested("acme") + " " + runner.TaskID(sessionID, "queue", 1),
	}
	if got := f.pub.ids(); !slices.Equal(got, want) {
		t.Fatalf("published\n got  %q\n want %q", got, want)
	}
	out := f.pub.all()
	if body := out[0].event.(*outboundv1.OutboundMessageRequested).GetBody(); body != "Hello vip customer!" {
		t.Errorf("greeting = %q, want the parameter expanded", body)
	}
	if p := out[1].event.(*workflowv1.TaskRequested).GetPriority(); p != 7 {
		t.Errorf("task priority = %d, want 7 from Distribution Priority", p)
	}
	// A redelivery publishes nothing new.
	if err := f.handle(t, start("acme", sessionID, "front")); err != nil {
		t.Fatal(err)
	}
	if got := f.pub.ids(); !slices.Equal(got, want) {
		t.Errorf("after redelivery published %q", got)
	}
}

func TestConfiguredWorkflowClosedDisconnects(t *testing.T) {
	f := workflowFixture(t, alwaysClosed(), map[string]*workflowdef.Definition{"front": frontDesk})
	if err := f.handle(t, start("acme", sessionID, "front")); err != nil {
		t.Fatal(err)
	}
	want := []string{
		subjects.OutboundRequested("acme") + " " + sessionID + "-bye",
		subjects.WorkflowEndRequested("acme") + " " + sessionID + "-bye-end",
	}
	if got := f.pub.ids(); !slices.Equal(got, want) {
		t.Fatalf("published\n got  %q\n want %q", got, want)
	}
	// The Disconnect after the closed branch says why: reporting counts
	// the session as out of hours.
	if got := f.pub.endCauses(); !slices.Equal(got, []workflowv1.EndCause{workflowv1.EndCause_END_CAUSE_OUT_OF_HOURS}) {
		t.Errorf("end causes %v, want out of hours", got)
	}
}

// A workflow that reaches an activity the runner cannot run fails the
// session, naming the activity.
func TestWorkflowFailuresNameTheActivity(t *testing.T) {
	defs := map[string]*workflowdef.Definition{
		"music": {Start: "a", Activities: []workflowdef.Activity{
			act("a", "accept", nil, then("m")),
			act("m", "play_music", nil, then("q")),
			act("q", "queue_task", nil, nil),
		}},
	}
	tests := map[string]string{"music": "Play Music", "gone": "workflow"}
	for svc, activity := range tests {
		f := workflowFixture(t, nil, defs)
		f.svcs.set("acme", &configv1.Service{Id: "gone", TenantId: "acme", WorkflowId: "missing"})
		if err := f.handle(t, start("acme", sessionID, svc)); err != nil {
			t.Fatalf("%s: %v", svc, err)
		}
		out := f.pub.all()
		if len(out) != 2 || out[0].subject != subjects.OutboundRequested("acme") || out[1].subject != subjects.WorkflowFailed("acme") {
			t.Fatalf("%s: published %q, want the failure message and one WorkflowFailed", svc, f.pub.ids())
		}
		ev := out[1].event.(*workflowv1.WorkflowFailed)
		if ev.GetActivity() != activity || ev.GetReason() == "" {
			t.Errorf("%s: WorkflowFailed activity %q reason %q, want activity %q with a reason", svc, ev.GetActivity(), ev.GetReason(), activity)
		}
	}
}

func TestOpen(t *testing.T) {
	zurich := &configv1.OpeningHours{
		TimeZone: "Europe/Zurich",
		Windows:  []*configv1.OpeningWindow{{Weekday: 1, Start: "08:00", End: "17:30"}},
		Holidays: []string{"2026-12-28"},
	}
	tests := []struct {
		at   string
		want bool
	}{
		{"2026-11-23T07:30:00Z", true},  // Monday 08:30 in Zurich
		{"2026-11-23T06:30:00Z", false}, // Monday 07:30 in Zurich
		{"2026-11-23T16:30:00Z", false}, // Monday 17:30 in Zurich: the end is exclusive
		{"2026-11-24T09:00:00Z", false}, // Tuesday
		{"2026-12-28T09:00:00Z", false}, // a Monday, but a holiday
	}
	for _, tt := range tests {
		at, _ := time.Parse(time.RFC3339, tt.at)
		if got := runner.Open(zurich, at); got != tt.want {
			t.Errorf("Open(%s) = %v, want %v", tt.at, got, tt.want)
		}
	}
	if !runner.Open(nil, time.Now()) {
		t.Error("no opening hours should mean always open")
	}
}

// A failed run sends the service's own failure message when it has one,
// the default otherwise.
func TestFailureMessagePerService(t *testing.T) {
	defs := map[string]*workflowdef.Definition{"music": {Start: "m", Activities: []workflowdef.Activity{
		act("m", "play_music", nil, then("q")),
		act("q", "queue_task", nil, nil),
	}}}
	for _, custom := range []string{"Sorry! Please call us on 044 000 00 00.", ""} {
		f := workflowFixture(t, nil, defs)
		f.svcs.set("acme", &configv1.Service{Id: "music", TenantId: "acme", Name: "Desk", WorkflowId: "music", WorkflowFailureMessage: custom})
		if err := f.handle(t, start("acme", sessionID, "music")); err != nil {
			t.Fatal(err)
		}
		want := custom
		if want == "" {
			want = runner.DefaultFailureMessage
		}
		out := f.pub.all()
		if len(out) == 0 || out[0].subject != subjects.OutboundRequested("acme") {
			t.Fatalf("published %q, want the failure message first", f.pub.ids())
		}
		if got := out[0].event.(*outboundv1.OutboundMessageRequested).GetBody(); got != want {
			t.Errorf("failure message = %q, want %q", got, want)
		}
	}
}

// Config accepts exactly what the runner runs: every activity the
// catalogue marks as supported for IM runs with only its required
// parameters, without failing the session.
func TestEveryIMActivityRuns(t *testing.T) {
	sample := func(p workflowdef.Param) any {
		switch p.Kind {
		case workflowdef.KindInt:
			return p.Min
		case workflowdef.KindDuration:
			return p.MinDuration.String()
		case workflowdef.KindBool:
			return true
		case workflowdef.KindEnum:
			return p.Values[0]
		case workflowdef.KindServiceID:
			return "plain"
		case workflowdef.KindParameterName:
			return "p"
		case workflowdef.KindURL:
			return "https://169.254.169.254/latest" // refused: the failure branch, no network
		case workflowdef.KindSecretName:
			return "bot_signing_key"
		case workflowdef.KindStringList:
			return []any{"a"}
		case workflowdef.KindStringMap, workflowdef.KindHeaders, workflowdef.KindParameterMap:
			return map[string]any{}
		}
		return "x"
	}
	n := 0
	for _, typ := range workflowdef.Catalogue() {
		if !typ.IM {
			continue
		}
		n++
		a := workflowdef.Activity{ID: "a", Type: typ.Type, Params: map[string]any{}, Next: map[string]string{}}
		for _, p := range typ.Params {
			if p.Required {
				a.Params[p.Name] = sample(p)
			}
		}
		for _, o := range a.Outcomes() {
			a.Next[o] = "end"
		}
		def := &workflowdef.Definition{Start: "a", Activities: []workflowdef.Activity{a}}
		if len(a.Next) > 0 {
			def.Activities = append(def.Activities, act("end", "disconnect", nil, nil))
		}
		if err := workflowdef.Validate(def); err != nil {
			t.Errorf("%s: %v", typ.Name, err)
			continue
		}
		f := workflowFixture(t, nil, map[string]*workflowdef.Definition{"svc": def})
		f.svcs.set("acme", &configv1.Service{Id: "plain", TenantId: "acme", Name: "Plain"})
		if err := f.handle(t, start("acme", sessionID, "svc")); err != nil {
			t.Errorf("%s: %v", typ.Name, err)
			continue
		}
		for _, p := range f.pub.all() {
			if ev, ok := p.event.(*workflowv1.WorkflowFailed); ok {
				t.Errorf("%s: the session failed: %s: %s", typ.Name, ev.GetActivity(), ev.GetReason())
			}
		}
	}
	if n != 19 {
		t.Errorf("%d IM activities in the catalogue, want 19", n)
	}
}
