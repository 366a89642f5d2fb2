package runner_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
	distributionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/distribution/v1"
	workflowv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/workflow/v1"

	"github.com/switchboard-cc/switchboard/pkg/subjects"
	"github.com/switchboard-cc/switchboard/pkg/workflowdef"
	"github.com/switchboard-cc/switchboard/services/workflow-runner/internal/runner"
)

// inactiveFixture runs def for service "desk" with an inactivity timeout.
func inactiveFixture(t *testing.T, def *workflowdef.Definition, inactivity time.Duration, goodbye string) *fixture {
	t.Helper()
	f := workflowFixture(t, nil, map[string]*workflowdef.Definition{"desk": validDef(t, def)})
	f.svcs.set("acme", &configv1.Service{Id: "desk", TenantId: "acme", Name: "Desk", WorkflowId: "desk",
		InactivityTimeout: durationpb.New(inactivity), InactivityMessage: goodbye})
	return f
}

// ended is the session's end request, or nil.
func (c *conversation) ended() *workflowv1.SessionEndRequested {
	for _, p := range c.f.pub.all() {
		if ev, ok := p.event.(*workflowv1.SessionEndRequested); ok && ev.GetSessionId() == c.session {
			return ev
		}
	}
	return nil
}

// due is when the session's pending timer fires, from now.
func (c *conversation) due() time.Duration {
	c.t.Helper()
	ev, at := c.f.timers.get("acme", c.session)
	if ev == nil {
		c.t.Fatal("no timer pending")
	}
	return at.Sub(c.f.clock.now())
}

var question = &workflowdef.Definition{Start: "ask", Activities: []workflowdef.Activity{
	act("ask", "collect_information", map[string]any{"prompt": "Your booking number?", "parameter": "booking", "type": "number", "timeout": "5m"},
		map[string]string{"next": "queue", "no_answer": "bye"}),
	act("queue", "queue_task", nil, nil),
	act("bye", "disconnect", map[string]any{"text": "No answer, bye."}, nil),
}}

// A customer silent for the service's inactivity timeout while a question
// waits ends the session abandoned, with the default goodbye; each message
// of theirs moves the deadline, and a timer of an earlier deadline does
// nothing.
func TestInactivityDuringAQuestion(t *testing.T) {
	f := inactiveFixture(t, question, 2*time.Minute, "")
	c := f.converse(t, "desk", sessionID)
	if d := c.due(); d != 2*time.Minute {
		t.Fatalf("timer due in %v, want the inactivity deadline (2m) before the question's timeout (5m)", d)
	}
	stale, _ := f.timers.get("acme", sessionID)
	f.clock.advance(59 * time.Second)
	c.say("soon") // not a number: the retry prompt, and the deadline moves
	if d := c.due(); d != 2*time.Minute {
		t.Fatalf("timer due in %v after the customer wrote, want 2m", d)
	}
	f.clock.advance(2 * time.Minute)
	if err := f.r.HandleTimerFired(context.Background(), msg(t, subjects.WorkflowTimerFired("acme"), stale)); err != nil {
		t.Fatal(err)
	}
	if c.ended() != nil || c.state().Status != runner.StatusWaiting {
		t.Fatalf("a timer of the first deadline ended the session (status %q)", c.state().Status)
	}
	c.fire()
	end := c.ended()
	if end == nil || end.GetCause() != workflowv1.EndCause_END_CAUSE_INACTIVITY || end.GetActivity() != "ask" {
		t.Fatalf("end request %v, want cause inactivity at ask", end)
	}
	if got, want := c.sent(), []string{"Your booking number?", "Your booking number?", runner.DefaultInactivityMessage}; !slices.Equal(got, want) {
		t.Errorf("sent %q, want %q", got, want)
	}
	if st := c.state(); st.Status != runner.StatusDone || st.Wait != nil {
		t.Errorf("status %q wait %+v, want done", st.Status, st.Wait)
	}
	if got := f.pub.steps(); !slices.Equal(got, []string{"ask "}) {
		t.Errorf("steps %q, want the question's step with no branch (the path ends where the customer went silent)", got)
	}
	before := len(f.pub.all())
	c.say("123") // too late: nothing waits
	if len(f.pub.all()) != before {
		t.Errorf("a message after the end published %q", f.pub.ids()[before:])
	}
}

// The question's own timeout, when it comes first, takes its branch as
// before.
func TestQuestionTimeoutBeforeInactivity(t *testing.T) {
	f := inactiveFixture(t, question, 10*time.Minute, "")
	c := f.converse(t, "desk", sessionID)
	if d := c.due(); d != 5*time.Minute {
		t.Fatalf("timer due in %v, want the question's timeout", d)
	}
	c.fire()
	if got := f.pub.steps(); !slices.Equal(got, []string{"ask no_answer", "bye "}) {
		t.Errorf("steps %q, want no_answer then bye", got)
	}
	if end := c.ended(); end == nil || end.GetCause() != workflowv1.EndCause_END_CAUSE_UNSPECIFIED {
		t.Errorf("end request %v, want the Disconnect's", end)
	}
}

// Queued without a queue timeout, the customer's inactivity still ends
// the session (with the service's goodbye); their messages move it.
func TestInactivityWhileQueued(t *testing.T) {
	f := inactiveFixture(t, workflowdef.Default("Hi!"), 10*time.Minute, "Closing this chat, write again any time.")
	c := f.converse(t, "desk", sessionID)
	if st := c.state(); st.Status != runner.StatusQueued || st.Wait == nil {
		t.Fatalf("status %q wait %+v, want queued with a wait for the inactivity timer", st.Status, st.Wait)
	}
	f.clock.advance(5 * time.Minute)
	c.say("still there?")
	if d := c.due(); d != 10*time.Minute {
		t.Errorf("timer due in %v after the customer wrote, want 10m", d)
	}
	c.fire()
	end := c.ended()
	if end == nil || end.GetCause() != workflowv1.EndCause_END_CAUSE_INACTIVITY || end.GetActivity() != "queue" {
		t.Fatalf("end request %v, want cause inactivity at queue", end)
	}
	if got := c.sent(); got[len(got)-1] != "Closing this chat, write again any time." {
		t.Errorf("sent %q, want the service's goodbye last", got)
	}
	if st := c.state(); st.Queue != nil || st.Status != runner.StatusDone {
		t.Errorf("after abandoning: status %q queue %+v", st.Status, st.Queue)
	}
}

// An agent's accept cancels the inactivity timer.
func TestAcceptCancelsInactivity(t *testing.T) {
	f := inactiveFixture(t, workflowdef.Default(""), 10*time.Minute, "")
	c := f.converse(t, "desk", sessionID)
	if ev, _ := f.timers.get("acme", sessionID); ev == nil {
		t.Fatal("no inactivity timer while queued")
	}
	if err := f.r.HandleTaskAccepted(context.Background(), msg(t, subjects.TaskAccepted("acme"),
		&distributionv1.TaskAccepted{TenantId: "acme", SessionId: sessionID, TaskId: runner.TaskID(sessionID, "queue", 1)})); err != nil {
		t.Fatal(err)
	}
	if ev, _ := f.timers.get("acme", sessionID); ev != nil {
		t.Errorf("timer %v pending after the accept", ev)
	}
	c.say("hello agent")
	if c.ended() != nil {
		t.Error("the session was ended after the accept")
	}
}

// In the queue loop the Delays run while the customer's inactivity
// deadline stands; a message during a Delay moves it; when it passes the
// session ends abandoned, wherever the loop is.
func TestInactivityInTheQueueLoop(t *testing.T) {
	f := inactiveFixture(t, queueLoop(""), 150*time.Second, "")
	c := f.converse(t, "desk", sessionID)
	task := runner.TaskID(sessionID, "q", 1)
	f.dist.put(task, distributionv1.TaskState_TASK_STATE_QUEUED, 4)
	if d := c.due(); d != 60*time.Second {
		t.Fatalf("timer due in %v, want the Delay's 60s", d)
	}
	c.fire() // 60s: tells the place
	f.clock.advance(30 * time.Second)
	c.say("ok") // at 91s: the deadline moves to 241s
	c.fire()    // 120s: the Delay
	c.fire()    // 180s
	if d := c.due(); d != 60*time.Second || c.ended() != nil {
		t.Fatalf("at 180s: timer due in %v, ended %v; want the next Delay", d, c.ended())
	}
	c.fire() // 240s: the Delay
	if d := c.due(); d != time.Second {
		t.Fatalf("at 240s: timer due in %v, want the inactivity deadline 1s on", d)
	}
	c.fire()
	if end := c.ended(); end == nil || end.GetCause() != workflowv1.EndCause_END_CAUSE_INACTIVITY || end.GetActivity() != "wait" {
		t.Fatalf("end request %v, want cause inactivity in the Delay", end)
	}
	if got := c.sent(); len(got) != 5 || got[4] != runner.DefaultInactivityMessage {
		t.Errorf("sent %q, want four places and the goodbye", got)
	}
}

// A Delay outside the queue is not the customer's turn: no inactivity
// deadline runs while it waits.
func TestNoInactivityDuringAPlainDelay(t *testing.T) {
	def := &workflowdef.Definition{Start: "ask", Activities: []workflowdef.Activity{
		act("ask", "collect_information", map[string]any{"prompt": "Name?", "parameter": "name"}, map[string]string{"next": "wait", "no_answer": "wait"}),
		act("wait", "delay", map[string]any{"duration": "1h"}, then("done")),
		act("done", "message", map[string]any{"text": "Thanks ${name}."}, then("queue")),
		act("queue", "queue_task", nil, nil),
	}}
	f := inactiveFixture(t, def, 5*time.Minute, "")
	c := f.converse(t, "desk", sessionID)
	c.say("Dana")
	if d := c.due(); d != time.Hour || !c.state().InactiveAt.IsZero() {
		t.Fatalf("timer due in %v, inactive at %v; want the Delay's hour and no deadline", d, c.state().InactiveAt)
	}
	c.fire()
	if c.ended() != nil || c.state().Status != runner.StatusQueued {
		t.Fatalf("status %q, ended %v: want queued", c.state().Status, c.ended())
	}
	if d := c.due(); d != 5*time.Minute {
		t.Errorf("queued: timer due in %v, want the inactivity deadline", d)
	}
}

// Without an inactivity timeout nothing changes: a queued session has no
// timer.
func TestInactivityOff(t *testing.T) {
	f := newFixture(t)
	c := f.converse(t, "sales", sessionID)
	if ev, _ := f.timers.get("acme", sessionID); ev != nil {
		t.Errorf("timer %v pending without an inactivity timeout", ev)
	}
	if st := c.state(); st.Wait != nil || !st.InactiveAt.IsZero() {
		t.Errorf("wait %+v inactive at %v, want neither", st.Wait, st.InactiveAt)
	}
}

// An answered question's timer is canceled when the run ends without a
// timer, and replaced (not canceled after) when the next wait has one.
func TestAnsweredQuestionTimer(t *testing.T) {
	two := &workflowdef.Definition{Start: "a", Activities: []workflowdef.Activity{
		act("a", "collect_information", map[string]any{"prompt": "Name?", "parameter": "name", "timeout": "5m"}, map[string]string{"next": "b", "no_answer": "b"}),
		act("b", "collect_information", map[string]any{"prompt": "Age?", "parameter": "age", "timeout": "7m"}, map[string]string{"next": "q", "no_answer": "q"}),
		act("q", "queue_task", nil, nil),
	}}
	f := workflowFixture(t, nil, map[string]*workflowdef.Definition{"desk": validDef(t, two)})
	c := f.converse(t, "desk", sessionID)
	c.say("Dana")
	if ev, _ := f.timers.get("acme", sessionID); ev == nil || ev.GetActivity() != "b" || c.due() != 7*time.Minute {
		t.Fatalf("pending timer %v, want the second question's", ev)
	}
	c.say("42")
	if ev, _ := f.timers.get("acme", sessionID); ev != nil {
		t.Errorf("timer %v pending once queued without a timeout", ev)
	}
}
