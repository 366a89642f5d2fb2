package runner

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	distributionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/distribution/v1"

	"github.com/switchboard-cc/switchboard/pkg/workflowdef"
)

// outcomeQueued is Queue Task's optional branch: the workflow goes on
// while the task waits.
const outcomeQueued = "queued"

// NotFoundGrace is how long after queueing a task distribution may not
// know it yet (it consumes the task request asynchronously): a lookup
// that finds nothing within it is retried, after it the task is taken as
// gone.
const NotFoundGrace = 30 * time.Second

// endQueued ends a run whose workflow ran out of activities while its task
// still waits: the instance stays queued until an agent accepts, and the
// Queue Task's timeout, if any, still applies.
func (r *Runner) endQueued(ctx context.Context, st *State, def *workflowdef.Definition) error {
	q := st.Queue
	st.Status, st.Activity, st.Entered = StatusQueued, q.Activity, true
	if q.DueAt.IsZero() && st.Inactivity <= 0 {
		return nil
	}
	a, ok := def.Activity(q.Activity)
	if !ok {
		return failf(q.Activity, "the workflow has no activity with this id")
	}
	w, err := r.wait(ctx, st, a, waitQueue, 0)
	st.Wait = w
	return err
}

func (r *Runner) needDistribution(t workflowdef.ActivityType) error {
	if r.dist == nil {
		return failf(t.Name, "workflow-runner has no distribution service configured (DISTRIBUTION_ADDR)")
	}
	return nil
}

// taskLookup interprets a distribution lookup's error: found, gone (the
// task does not exist), or an error to retry.
func (r *Runner) taskLookup(st *State, err error) (found bool, _ error) {
	switch status.Code(err) {
	case codes.OK:
		return true, nil
	case codes.NotFound:
		if q := st.Queue; q != nil && q.TaskID == st.TaskID && r.now().Sub(q.QueuedAt) < NotFoundGrace {
			return false, fmt.Errorf("task %s not at distribution yet: %w", st.TaskID, err)
		}
		return false, nil
	}
	return false, fmt.Errorf("ask distribution about task %s: %w", st.TaskID, err)
}

// distributionActivity runs the activities that ask distribution.
func (r *Runner) distributionActivity(ctx context.Context, st *State, a *workflowdef.Activity, t workflowdef.ActivityType) (result, error) {
	if err := r.needDistribution(t); err != nil {
		return result{}, err
	}
	next := result{outcome: workflowdef.OutcomeNext}
	switch a.Type {
	case "get_queue_position":
		pos, wait := int32(0), ""
		if st.TaskID != "" {
			res, err := r.dist.GetQueuePosition(ctx, &distributionv1.GetQueuePositionRequest{TenantId: st.Tenant, TaskId: st.TaskID})
			found, err := r.taskLookup(st, err)
			if err != nil {
				return result{}, err
			}
			if found {
				pos = res.GetPosition()
				if d := res.GetEstimatedWait(); d != nil && pos > 0 {
					wait = strconv.Itoa(WaitMinutes(d.AsDuration()))
				}
			}
		}
		st.Params[a.StringParam("parameter")] = strconv.Itoa(int(pos))
		if p := a.StringParam("estimated_wait_parameter"); p != "" {
			st.Params[p] = wait
		}
		return next, nil
	case "check_task":
		if st.TaskID == "" {
			return result{outcome: "not_queued"}, nil
		}
		res, err := r.dist.GetTask(ctx, &distributionv1.GetTaskRequest{TenantId: st.Tenant, TaskId: st.TaskID})
		found, err := r.taskLookup(st, err)
		if err != nil {
			return result{}, err
		}
		if found {
			switch res.GetTask().GetState() {
			case distributionv1.TaskState_TASK_STATE_QUEUED, distributionv1.TaskState_TASK_STATE_OFFERED:
				return result{outcome: "queued"}, nil
			case distributionv1.TaskState_TASK_STATE_ACCEPTED, distributionv1.TaskState_TASK_STATE_WRAPPING, distributionv1.TaskState_TASK_STATE_COMPLETED:
				// The agent's accept is on its way and ends the instance;
				// the workflow must not act on the customer meanwhile.
				st.Queue = nil
				st.Status, st.Reason = StatusDone, "accepted by an agent"
				return result{outcome: "accepted", end: true}, nil
			}
		}
		if st.Queue != nil && st.Queue.TaskID == st.TaskID {
			st.Queue = nil // canceled or gone: its timeout no longer applies
		}
		return result{outcome: "not_queued"}, nil
	case "cancel_task":
		_, err := r.cancelTask(ctx, st, t, "canceled by the workflow")
		return next, err
	case "get_available_users", "availability_routing":
		service := serviceOf(a, st)
		res, err := r.dist.GetServiceAvailability(ctx, &distributionv1.GetServiceAvailabilityRequest{TenantId: st.Tenant, ServiceId: service})
		if err != nil {
			return result{}, fmt.Errorf("get availability of service %q: %w", service, err)
		}
		if a.Type == "get_available_users" {
			st.Params[a.StringParam("parameter")] = strconv.Itoa(int(res.GetAvailable()))
			return next, nil
		}
		return result{outcome: AvailabilityBranch(res)}, nil
	}
	return result{}, failf(t.Name, "workflow-runner cannot run this activity yet")
}

// AvailabilityBranch is Availability-based Routing's branch: available
// when an agent could take a task now, busy when agents are signed in
// (available, wrapping up or flagged) but none can, offline otherwise
// (away agents are not signed in for tasks).
func AvailabilityBranch(res *distributionv1.GetServiceAvailabilityResponse) string {
	switch {
	case res.GetAvailable() > 0:
		return "available"
	case res.GetBusy() > 0:
		return "busy"
	}
	return "offline"
}

// WaitMinutes rounds an estimated wait up to whole minutes, at least one.
func WaitMinutes(d time.Duration) int {
	m := int((d + time.Minute - 1) / time.Minute)
	return max(m, 1)
}

// cancelTask takes the session's task out of distribution; accepted
// reports that an agent accepted it first. A task never queued, already
// canceled or unknown is nothing to cancel.
func (r *Runner) cancelTask(ctx context.Context, st *State, t workflowdef.ActivityType, reason string) (accepted bool, _ error) {
	task := st.TaskID
	if task == "" {
		return false, nil
	}
	if err := r.needDistribution(t); err != nil {
		return false, err
	}
	_, err := r.dist.CancelTask(ctx, &distributionv1.CancelTaskRequest{TenantId: st.Tenant, TaskId: task, Reason: reason})
	switch status.Code(err) {
	case codes.OK:
	case codes.NotFound:
		if _, err := r.taskLookup(st, err); err != nil {
			return false, err // not at distribution yet: it would queue it after the cancel
		}
	case codes.FailedPrecondition:
		// Neither queued nor offered: canceled already (a redelivery, or
		// an earlier Cancel Task), or an agent has it.
		res, err := r.dist.GetTask(ctx, &distributionv1.GetTaskRequest{TenantId: st.Tenant, TaskId: task})
		if err != nil {
			return false, fmt.Errorf("get task %s: %w", task, err)
		}
		accepted = res.GetTask().GetState() != distributionv1.TaskState_TASK_STATE_CANCELED
	default:
		return false, fmt.Errorf("cancel task %s: %w", task, err)
	}
	if st.Queue != nil && st.Queue.TaskID == task {
		st.Queue = nil
	}
	return accepted, nil
}

// reprioritize applies Distribution Priority to a task that waits while
// the workflow goes on; a task not queued yet takes the priority when it is.
func (r *Runner) reprioritize(ctx context.Context, st *State, t workflowdef.ActivityType) error {
	if st.Queue == nil {
		return nil
	}
	if err := r.needDistribution(t); err != nil {
		return err
	}
	_, err := r.dist.ReprioritizeTask(ctx, &distributionv1.ReprioritizeTaskRequest{TenantId: st.Tenant, TaskId: st.Queue.TaskID, Priority: st.Priority})
	switch status.Code(err) {
	case codes.OK, codes.FailedPrecondition:
		return nil
	case codes.NotFound:
		_, err := r.taskLookup(st, err)
		return err
	}
	return fmt.Errorf("reprioritize task %s: %w", st.Queue.TaskID, err)
}
