package runner_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	distributionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/distribution/v1"
	workflowv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/workflow/v1"

	"github.com/switchboard-cc/switchboard/pkg/subjects"
	"github.com/switchboard-cc/switchboard/pkg/workflowdef"
	"github.com/switchboard-cc/switchboard/services/workflow-runner/internal/runner"
)

// dist is a fake DistributionService: tasks by id, an estimated wait for
// every queued task, one availability answer for every service; down
// makes every call Unavailable.
type dist struct {
	distributionv1.DistributionServiceClient // anything else panics
	mu                                       sync.Mutex
	tasks                                    map[string]*distributionv1.Task
	wait                                     time.Duration
	avail                                    *distributionv1.GetServiceAvailabilityResponse
	canceled                                 []string
	priorities                               []int32
	down                                     bool
}

func (d *dist) put(id string, state distributionv1.TaskState, position int32) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.tasks[id] = &distributionv1.Task{TaskId: id, State: state, Position: position}
}

func (d *dist) task(id string) (*distributionv1.Task, error) {
	if d.down {
		return nil, status.Error(codes.Unavailable, "connection refused")
	}
	t, ok := d.tasks[id]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "task %q not found", id)
	}
	return t, nil
}

func (d *dist) GetTask(_ context.Context, r *distributionv1.GetTaskRequest, _ ...grpc.CallOption) (*distributionv1.GetTaskResponse, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	t, err := d.task(r.GetTaskId())
	if err != nil {
		return nil, err
	}
	return &distributionv1.GetTaskResponse{Task: t}, nil
}

func (d *dist) GetQueuePosition(_ context.Context, r *distributionv1.GetQueuePositionRequest, _ ...grpc.CallOption) (*distributionv1.GetQueuePositionResponse, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	t, err := d.task(r.GetTaskId())
	if err != nil {
		return nil, err
	}
	res := &distributionv1.GetQueuePositionResponse{TaskId: t.GetTaskId(), State: t.GetState(), Position: t.GetPosition()}
	if d.wait > 0 {
		res.EstimatedWait = durationpb.New(d.wait)
	}
	return res, nil
}

func (d *dist) CancelTask(_ context.Context, r *distributionv1.CancelTaskRequest, _ ...grpc.CallOption) (*distributionv1.CancelTaskResponse, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	t, err := d.task(r.GetTaskId())
	if err != nil {
		return nil, err
	}
	if st := t.GetState(); st != distributionv1.TaskState_TASK_STATE_QUEUED && st != distributionv1.TaskState_TASK_STATE_OFFERED {
		return nil, status.Errorf(codes.FailedPrecondition, "task is %v", st)
	}
	t.State, t.Position = distributionv1.TaskState_TASK_STATE_CANCELED, 0
	d.canceled = append(d.canceled, r.GetTaskId()+" "+r.GetReason())
	return &distributionv1.CancelTaskResponse{Task: t}, nil
}

func (d *dist) ReprioritizeTask(_ context.Context, r *distributionv1.ReprioritizeTaskRequest, _ ...grpc.CallOption) (*distributionv1.ReprioritizeTaskResponse, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	t, err := d.task(r.GetTaskId())
	if err != nil {
		return nil, err
	}
	d.priorities = append(d.priorities, r.GetPriority())
	return &distributionv1.ReprioritizeTaskResponse{Task: t}, nil
}

func (d *dist) GetServiceAvailability(_ context.Context, r *distributionv1.GetServiceAvailabilityRequest, _ ...grpc.CallOption) (*distributionv1.GetServiceAvailabilityResponse, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.down {
		return nil, status.Error(codes.Unavailable, "connection refused")
	}
	res := &distributionv1.GetServiceAvailabilityResponse{ServiceId: r.GetServiceId()}
	if d.avail != nil {
		res.Available, res.Busy, res.Away, res.Offline = d.avail.GetAvailable(), d.avail.GetBusy(), d.avail.GetAway(), d.avail.GetOffline()
	}
	return res, nil
}

func (d *dist) canceledTasks() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.canceled)
}

// queueLoop is the classic waiting loop: queue, then every minute tell the
// customer their place and estimated wait while the task is queued.
func queueLoop(timeout string) *workflowdef.Definition {
	q := map[string]any{}
	next := map[string]string{"queued": "wait"}
	if timeout != "" {
		q["timeout"], next["timeout"] = timeout, "busy"
	}
	def := &workflowdef.Definition{Start: "q", Activities: []workflowdef.Activity{
		act("q", "queue_task", q, next),
		act("wait", "delay", map[string]any{"duration": "60s"}, then("pos")),
		act("pos", "get_queue_position", map[string]any{"parameter": "position", "estimated_wait_parameter": "minutes"}, then("waiting")),
		act("waiting", "check_parameter", map[string]any{"parameter": "position", "operator": "greater_than", "value": "0"},
			map[string]string{"match": "known", "no_match": "check"}),
		act("known", "check_parameter", map[string]any{"parameter": "minutes", "operator": "empty"},
			map[string]string{"match": "tell", "no_match": "tell_wait"}),
		act("tell", "message", map[string]any{"text": "You are number ${position} in the queue."}, then("check")),
		act("tell_wait", "message", map[string]any{"text": "You are number ${position}, about ${minutes} minutes."}, then("check")),
		act("check", "check_task", nil, map[string]string{"queued": "wait", "not_queued": "gone"}),
		act("gone", "disconnect", map[string]any{"text": "Your request is no longer queued."}, nil),
	}}
	if timeout != "" {
		def.Activities = append(def.Activities, act("busy", "disconnect", map[string]any{"text": "All agents are busy."}, nil))
	}
	return def
}

func validDef(t *testing.T, def *workflowdef.Definition) *workflowdef.Definition {
	t.Helper()
	if err := workflowdef.Validate(def); err != nil {
		t.Fatalf("workflow does not validate: %v", err)
	}
	return def
}

// Queueing does not end the workflow: the loop tells the customer their
// place every minute while the task waits, and stops when an agent accepts.
func TestQueueLoopUntilAccepted(t *testing.T) {
	f := workflowFixture(t, nil, map[string]*workflowdef.Definition{"desk": validDef(t, queueLoop(""))})
	c := f.converse(t, "desk", sessionID)
	task := runner.TaskID(sessionID, "q", 1)
	if c.published(subjects.WorkflowTaskRequested("acme")) != 1 {
		t.Fatal("no task requested")
	}
	if st := c.state(); st.Status != runner.StatusWaiting || st.Queue == nil || st.Queue.TaskID != task || st.Activity != "wait" {
		t.Fatalf("after queueing: status %q activity %q queue %+v, want waiting in the delay with the task queued", st.Status, st.Activity, st.Queue)
	}
	f.dist.put(task, distributionv1.TaskState_TASK_STATE_QUEUED, 3)
	c.fire() // no estimate yet
	f.dist.put(task, distributionv1.TaskState_TASK_STATE_QUEUED, 2)
	f.dist.wait = 3*time.Minute + 10*time.Second
	c.fire()
	f.dist.put(task, distributionv1.TaskState_TASK_STATE_OFFERED, 0)
	c.fire() // offered: no place to tell, still queued
	want := []string{"You are number 3 in the queue.", "You are number 2, about 4 minutes."}
	if got := c.sent(); !slices.Equal(got, want) {
		t.Errorf("sent %q, want %q", got, want)
	}
	if ev, _ := f.timers.get("acme", sessionID); ev == nil || ev.GetActivity() != "wait" {
		t.Fatalf("pending timer %v, want the loop's next delay", ev)
	}
	if err := f.r.HandleTaskAccepted(context.Background(), msg(t, subjects.TaskAccepted("acme"),
		&distributionv1.TaskAccepted{TenantId: "acme", SessionId: sessionID, TaskId: task})); err != nil {
		t.Fatal(err)
	}
	if st := c.state(); st.Status != runner.StatusDone {
		t.Errorf("after accept: status %q, want done", st.Status)
	}
	if ev, _ := f.timers.get("acme", sessionID); ev != nil {
		t.Errorf("timer %v still pending after the accept", ev)
	}
}

// The Queue Task's timeout fires in the middle of the loop, cancels the
// task at distribution and takes the timeout branch.
func TestQueueLoopTimeout(t *testing.T) {
	f := workflowFixture(t, nil, map[string]*workflowdef.Definition{"desk": validDef(t, queueLoop("90s"))})
	c := f.converse(t, "desk", sessionID)
	task := runner.TaskID(sessionID, "q", 1)
	f.dist.put(task, distributionv1.TaskState_TASK_STATE_QUEUED, 1)
	c.fire() // the first minute
	if _, due := f.timers.get("acme", sessionID); !due.Equal(f.clock.now().Add(30 * time.Second)) {
		t.Errorf("next timer due %v, want the queue timeout (30s from now), not the delay", due.Sub(f.clock.now()))
	}
	c.fire()
	if got, want := f.dist.canceledTasks(), []string{task + " queue timeout"}; !slices.Equal(got, want) {
		t.Errorf("canceled %q, want %q", got, want)
	}
	if got := c.sent(); !slices.Equal(got, []string{"You are number 1 in the queue.", "All agents are busy."}) {
		t.Errorf("sent %q", got)
	}
	if steps := f.pub.steps(); steps[len(steps)-2] != "q timeout" {
		t.Errorf("steps %q, want the queue's timeout branch before the end", steps)
	}
	if c.published(subjects.WorkflowEndRequested("acme")) != 1 {
		t.Error("no end request after the queue timeout")
	}
	if got := f.pub.endCauses(); !slices.Equal(got, []workflowv1.EndCause{workflowv1.EndCause_END_CAUSE_NO_AGENT}) {
		t.Errorf("end causes %v, want no agent (the Disconnect follows the queue's timeout)", got)
	}
}

// A timeout that loses the race to an agent's accept takes no branch: the
// accept ends the instance.
func TestQueueTimeoutAfterAccept(t *testing.T) {
	def := &workflowdef.Definition{Start: "q", Activities: []workflowdef.Activity{
		act("q", "queue_task", map[string]any{"timeout": "15m"}, map[string]string{"timeout": "busy"}),
		act("busy", "disconnect", map[string]any{"text": "All agents are busy."}, nil),
	}}
	f := workflowFixture(t, nil, map[string]*workflowdef.Definition{"desk": def})
	c := f.converse(t, "desk", sessionID)
	f.dist.put(runner.TaskID(sessionID, "q", 1), distributionv1.TaskState_TASK_STATE_ACCEPTED, 0)
	c.fire()
	if st := c.state(); st.Status != runner.StatusDone || len(c.sent()) != 0 || c.published(subjects.WorkflowEndRequested("acme")) != 0 {
		t.Errorf("status %q, sent %q: want done, silent, no end request", st.Status, c.sent())
	}
}

// Check Task's branches, and an outage of distribution retried.
func TestCheckTask(t *testing.T) {
	for _, tt := range []struct {
		name   string
		state  distributionv1.TaskState // unspecified: not at distribution
		want   string
		queued bool // the instance still has the task queued afterwards
	}{
		{"queued", distributionv1.TaskState_TASK_STATE_QUEUED, "check queued", true},
		{"offered", distributionv1.TaskState_TASK_STATE_OFFERED, "check queued", true},
		{"canceled", distributionv1.TaskState_TASK_STATE_CANCELED, "check not_queued", false},
		{"accepted: the instance ends", distributionv1.TaskState_TASK_STATE_ACCEPTED, "check accepted", false},
		{"completed", distributionv1.TaskState_TASK_STATE_COMPLETED, "check accepted", false},
		{"unknown", distributionv1.TaskState_TASK_STATE_UNSPECIFIED, "check not_queued", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			def := validDef(t, &workflowdef.Definition{Start: "q", Activities: []workflowdef.Activity{
				act("q", "queue_task", nil, map[string]string{"queued": "wait"}),
				act("wait", "delay", map[string]any{"duration": "40s"}, then("check")),
				act("check", "check_task", nil, map[string]string{"queued": "wait", "not_queued": "bye"}),
				act("bye", "disconnect", nil, nil),
			}})
			f := workflowFixture(t, nil, map[string]*workflowdef.Definition{"desk": def})
			c := f.converse(t, "desk", sessionID)
			if tt.state != distributionv1.TaskState_TASK_STATE_UNSPECIFIED {
				f.dist.put(runner.TaskID(sessionID, "q", 1), tt.state, 0)
			} else {
				f.clock.advance(runner.NotFoundGrace) // long enough for distribution to have it
			}
			c.fire()
			steps := f.pub.steps()
			if got := steps[len(steps)-1]; got != tt.want && steps[len(steps)-2] != tt.want {
				t.Errorf("steps %q, want %q", steps, tt.want)
			}
			st := c.state()
			if (st.Queue != nil) != tt.queued {
				t.Errorf("queue %+v, want queued %v", st.Queue, tt.queued)
			}
			if tt.want == "check accepted" && (st.Status != runner.StatusDone || c.published(subjects.WorkflowEndRequested("acme")) != 0) {
				t.Errorf("status %q after an accept: want done and no end request", st.Status)
			}
		})
	}
	t.Run("not queued without a task", func(t *testing.T) {
		def := validDef(t, &workflowdef.Definition{Start: "check", Activities: []workflowdef.Activity{
			act("check", "check_task", nil, map[string]string{"queued": "q", "not_queued": "q"}),
			act("q", "queue_task", nil, nil),
		}})
		f := workflowFixture(t, nil, map[string]*workflowdef.Definition{"desk": def})
		f.converse(t, "desk", sessionID)
		if got := f.pub.steps(); got[0] != "check not_queued" {
			t.Errorf("steps %q", got)
		}
	})
	t.Run("distribution down is retried", func(t *testing.T) {
		def := validDef(t, &workflowdef.Definition{Start: "q", Activities: []workflowdef.Activity{
			act("q", "queue_task", nil, map[string]string{"queued": "wait"}),
			act("wait", "delay", map[string]any{"duration": "40s"}, then("check")),
			act("check", "check_task", nil, map[string]string{"queued": "wait", "not_queued": "wait"}),
		}})
		f := workflowFixture(t, nil, map[string]*workflowdef.Definition{"desk": def})
		c := f.converse(t, "desk", sessionID)
		ev, due := f.timers.get("acme", sessionID)
		f.clock.advance(due.Sub(f.clock.now()))
		f.dist.down = true
		if err := f.r.HandleTimerFired(context.Background(), msg(t, subjects.WorkflowTimerFired("acme"), ev)); err == nil {
			t.Fatal("no error while distribution is down: the timer would be lost")
		}
		if st := c.state(); st.Status != runner.StatusWaiting || st.Activity != "wait" {
			t.Errorf("status %q at %q after the failed attempt, want still waiting in the delay", st.Status, st.Activity)
		}
		f.dist.down = false
		f.dist.put(runner.TaskID(sessionID, "q", 1), distributionv1.TaskState_TASK_STATE_QUEUED, 1)
		c.fire()
		if steps := f.pub.steps(); steps[len(steps)-1] != "check queued" {
			t.Errorf("steps %q after recovery", steps)
		}
	})
}

// Get Queue Position: the place and the estimate; a task distribution
// has not seen yet is asked again (an error, redelivered) within the
// grace period; no task is place 0.
func TestGetQueuePosition(t *testing.T) {
	def := validDef(t, &workflowdef.Definition{Start: "q", Activities: []workflowdef.Activity{
		act("q", "queue_task", nil, map[string]string{"queued": "pos"}),
		act("pos", "get_queue_position", map[string]any{"parameter": "position", "estimated_wait_parameter": "minutes"}, then("tell")),
		act("tell", "message", map[string]any{"text": "${position}/${minutes}"}, then("wait")),
		act("wait", "delay", map[string]any{"duration": "1m"}, then("pos")),
	}})
	f := workflowFixture(t, nil, map[string]*workflowdef.Definition{"desk": def})
	if err := f.handle(t, start("acme", sessionID, "desk")); err == nil {
		t.Fatal("a task distribution does not know yet was taken as gone")
	}
	f.dist.put(runner.TaskID(sessionID, "q", 1), distributionv1.TaskState_TASK_STATE_QUEUED, 5)
	f.dist.wait = 90 * time.Second
	c := f.converse(t, "desk", sessionID)
	if got := c.sent(); !slices.Equal(got, []string{"5/2"}) {
		t.Errorf("sent %q, want 5/2", got)
	}

	noTask := validDef(t, &workflowdef.Definition{Start: "pos", Activities: []workflowdef.Activity{
		act("pos", "get_queue_position", map[string]any{"parameter": "position", "estimated_wait_parameter": "minutes"}, then("tell")),
		act("tell", "message", map[string]any{"text": "[${position}][${minutes}]"}, then("bye")),
		act("bye", "disconnect", nil, nil),
	}})
	f = workflowFixture(t, nil, map[string]*workflowdef.Definition{"desk": noTask})
	if got := f.converse(t, "desk", sessionID).sent(); !slices.Equal(got, []string{"[0][]"}) {
		t.Errorf("sent %q without a task, want [0][]", got)
	}
}

func TestWaitMinutes(t *testing.T) {
	for d, want := range map[time.Duration]int{0: 1, time.Second: 1, time.Minute: 1, 61 * time.Second: 2, 4 * time.Minute: 4} {
		if got := runner.WaitMinutes(d); got != want {
			t.Errorf("WaitMinutes(%v) = %d, want %d", d, got, want)
		}
	}
}

// Cancel Task withdraws the waiting task; the workflow then ends without
// a queued task.
func TestCancelTask(t *testing.T) {
	def := validDef(t, &workflowdef.Definition{Start: "q", Activities: []workflowdef.Activity{
		act("q", "queue_task", nil, map[string]string{"queued": "cancel"}),
		act("cancel", "cancel_task", nil, then("again")),
		act("again", "cancel_task", nil, then("bye")),
		act("bye", "disconnect", map[string]any{"text": "We will call you back."}, nil),
	}})
	f := workflowFixture(t, nil, map[string]*workflowdef.Definition{"desk": def})
	task := runner.TaskID(sessionID, "q", 1)
	f.dist.put(task, distributionv1.TaskState_TASK_STATE_QUEUED, 1)
	c := f.converse(t, "desk", sessionID)
	if got := f.dist.canceledTasks(); !slices.Equal(got, []string{task + " canceled by the workflow"}) {
		t.Errorf("canceled %q", got)
	}
	if st := c.state(); st.Status != runner.StatusDone || st.Queue != nil {
		t.Errorf("status %q queue %+v, want done without a queued task", st.Status, st.Queue)
	}
	// Nothing queued: nothing to cancel, the workflow goes on.
	f = workflowFixture(t, nil, map[string]*workflowdef.Definition{"desk": &workflowdef.Definition{Start: "cancel", Activities: def.Activities[1:]}})
	if got := f.converse(t, "desk", sessionID).sent(); !slices.Equal(got, []string{"We will call you back."}) || len(f.dist.canceledTasks()) != 0 {
		t.Errorf("sent %q canceled %q", got, f.dist.canceledTasks())
	}
}

// Availability-based Routing branches on the service's agents; Get
// Available Users saves how many could take a task now.
func TestAvailability(t *testing.T) {
	def := validDef(t, &workflowdef.Definition{Start: "count", Activities: []workflowdef.Activity{
		act("count", "get_available_users", map[string]any{"parameter": "agents"}, then("route")),
		act("route", "availability_routing", nil, map[string]string{"available": "q", "busy": "q", "offline": "q"}),
		act("q", "queue_task", nil, nil),
	}})
	for _, tt := range []struct {
		avail       *distributionv1.GetServiceAvailabilityResponse
		branch, num string
	}{
		{&distributionv1.GetServiceAvailabilityResponse{Available: 2, Busy: 1}, "available", "2"},
		{&distributionv1.GetServiceAvailabilityResponse{Busy: 3, Away: 1}, "busy", "0"},
		{&distributionv1.GetServiceAvailabilityResponse{Away: 1, Offline: 4}, "offline", "0"},
		{&distributionv1.GetServiceAvailabilityResponse{}, "offline", "0"},
	} {
		f := workflowFixture(t, nil, map[string]*workflowdef.Definition{"desk": def})
		f.dist.avail = tt.avail
		c := f.converse(t, "desk", sessionID)
		if got := f.pub.steps(); got[1] != "route "+tt.branch {
			t.Errorf("%v: steps %q, want route %s", tt.avail, got, tt.branch)
		}
		if got := c.state().Params["agents"]; got != tt.num {
			t.Errorf("%v: agents = %q, want %s", tt.avail, got, tt.num)
		}
	}
}

// Distribution Priority re-orders a task that already waits.
func TestPriorityOfWaitingTask(t *testing.T) {
	def := validDef(t, &workflowdef.Definition{Start: "q", Activities: []workflowdef.Activity{
		act("q", "queue_task", nil, map[string]string{"queued": "wait"}),
		act("wait", "delay", map[string]any{"duration": "5m"}, then("vip")),
		act("vip", "distribution_priority", map[string]any{"priority": 50}, then("wait")),
	}})
	f := workflowFixture(t, nil, map[string]*workflowdef.Definition{"desk": def})
	c := f.converse(t, "desk", sessionID)
	f.dist.put(runner.TaskID(sessionID, "q", 1), distributionv1.TaskState_TASK_STATE_QUEUED, 4)
	c.fire()
	if !slices.Equal(f.dist.priorities, []int32{50}) {
		t.Errorf("reprioritized to %v, want [50]", f.dist.priorities)
	}
}

// Without a distribution client the activities that need it fail the
// session naming the activity.
func TestNoDistribution(t *testing.T) {
	def := &workflowdef.Definition{Start: "check", Activities: []workflowdef.Activity{
		act("check", "check_task", nil, map[string]string{"queued": "q", "not_queued": "q"}),
		act("q", "queue_task", nil, nil),
	}}
	f := workflowFixture(t, nil, map[string]*workflowdef.Definition{"desk": def})
	f.r = runner.New(runner.Deps{Pub: f.pub, Services: f.svcs, Workflows: &workflows{byID: map[string]*workflowdef.Definition{"desk": def}}, Store: f.store, Timers: f.timers, Now: f.clock.now})
	c := f.converse(t, "desk", sessionID)
	st := c.state()
	if st.Status != runner.StatusFailed || st.Reason == "" {
		t.Errorf("status %q reason %q, want failed naming Check Task", st.Status, st.Reason)
	}
}

// A Queue Task naming a service config does not have fails the session,
// naming the service, rather than requesting a task distribution can never
// queue (it would leave the customer waiting for ever); one naming another
// configured service queues there.
func TestQueueTaskOtherService(t *testing.T) {
	toService := func(id string) *workflowdef.Definition {
		return validDef(t, &workflowdef.Definition{Start: "q", Activities: []workflowdef.Activity{
			act("q", "queue_task", map[string]any{"service_id": id}, nil),
		}})
	}
	f := workflowFixture(t, nil, map[string]*workflowdef.Definition{"desk": toService("retired"), "billing": toService("desk")})
	st := f.converse(t, "desk", sessionID).state()
	if st.Status != runner.StatusFailed || !strings.Contains(st.Reason, `service "retired" is not configured`) {
		t.Errorf("status %q reason %q, want failed: service \"retired\" is not configured", st.Status, st.Reason)
	}
	var failed bool
	for _, id := range f.pub.ids() {
		if strings.HasPrefix(id, subjects.WorkflowTaskRequested("acme")+" ") {
			t.Errorf("requested a task for a service that does not exist: %s", id)
		}
		failed = failed || strings.HasPrefix(id, subjects.WorkflowFailed("acme")+" ")
	}
	if !failed {
		t.Errorf("published %q, want the workflow's failure", f.pub.ids())
	}

	const other = "ss_01hqother0000000000000000"
	f.converse(t, "billing", other)
	want := subjects.WorkflowTaskRequested("acme") + " " + runner.TaskID(other, "q", 1)
	if !slices.Contains(f.pub.ids(), want) {
		t.Errorf("published %q, want %s", f.pub.ids(), want)
	}
}
