package engine

import (
	"context"
	"fmt"

	"google.golang.org/protobuf/types/known/timestamppb"

	distributionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/distribution/v1"

	"github.com/switchboard-cc/switchboard/pkg/subjects"
)

// Park sets an accepted task aside: it stays its agent's, and counts
// toward their capacity only when its service's ParkedCounts says so (if
// not, the slot it frees may take an offer at once). by: who parks (for
// the event); byAgent, when set, must be the task's agent.
func (e *Engine) Park(ctx context.Context, tenantID, taskID, by, byAgent string) (*distributionv1.Task, error) {
	return e.setParked(ctx, tenantID, taskID, by, byAgent, true)
}

// Resume makes a parked task active again. The agent may end up above
// their capacity (a parked task that did not count is theirs all the
// same); they get no offers until they are under it again.
func (e *Engine) Resume(ctx context.Context, tenantID, taskID, by, byAgent string) (*distributionv1.Task, error) {
	return e.setParked(ctx, tenantID, taskID, by, byAgent, false)
}

func (e *Engine) setParked(ctx context.Context, tenantID, taskID, by, byAgent string, park bool) (*distributionv1.Task, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.mine(tenantID); err != nil {
		return nil, err
	}
	t := e.tenant(tenantID)
	task, err := e.openTask(ctx, t, tenantID, taskID, "")
	if err != nil {
		return nil, err
	}
	from, to := TaskAccepted, TaskParked
	if !park {
		from, to = TaskParked, TaskAccepted
	}
	if task.State != from {
		if park {
			return nil, fmt.Errorf("%w: task %s is %s; only an accepted task can be parked", ErrTaskState, task.ID, task.State)
		}
		return nil, fmt.Errorf("%w: task %s is %s; only a parked task can be resumed", ErrTaskState, task.ID, task.State)
	}
	if byAgent != "" && task.AgentID != byAgent {
		return nil, ErrNotYourTask
	}
	prev := *task
	task.State = to
	if park {
		task.Parks++
		task.ParkCounts = task.Service.ParkedCounts
	}
	if err := e.store.Save(ctx, task); err != nil {
		*task = prev
		return nil, fmt.Errorf("save task %s: %w", task.ID, err)
	}
	now := e.now()
	if a := t.agents[task.AgentID]; a != nil {
		e.touch(t, a, now)
	}
	if park {
		err = e.pub.Emit(ctx, subjects.TaskParked(tenantID), &distributionv1.TaskParked{
			TenantId: tenantID, TaskId: task.ID, SessionId: task.SessionID, ServiceId: task.ServiceID, AgentId: task.AgentID,
			ParkedBy: by, ParkedAt: timestamppb.New(now), Park: int32(task.Parks), CountsTowardCapacity: task.ParkCounts,
		}, fmt.Sprintf("%s:parked:%d", task.ID, task.Parks))
	} else {
		err = e.pub.Emit(ctx, subjects.TaskResumed(tenantID), &distributionv1.TaskResumed{
			TenantId: tenantID, TaskId: task.ID, SessionId: task.SessionID, ServiceId: task.ServiceID, AgentId: task.AgentID,
			ResumedBy: by, ResumedAt: timestamppb.New(now), Park: int32(task.Parks),
		}, fmt.Sprintf("%s:resumed:%d", task.ID, task.Parks))
	}
	if err != nil {
		// Saved: the state stands; say the event may be missing.
		e.log.ErrorContext(ctx, "publish park or resume", "tenant", tenantID, "task", task.ID, "park", park, "err", err)
	}
	e.dispatch(ctx, tenantID)
	return e.view(task), nil
}
