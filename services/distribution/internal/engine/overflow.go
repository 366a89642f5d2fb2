package engine

import (
	"context"
	"slices"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	distributionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/distribution/v1"
	messagingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/messaging/v1"

	"github.com/switchboard-cc/switchboard/pkg/subjects"
)

// LastAgents learns which agent took a customer's chat (for the preferred
// agent of their next one). Record must not block: it is called under the
// engine's lock.
type LastAgents interface {
	Record(tenant string, conv *messagingv1.ConversationRef, agentID string, at time.Time)
}

// SetLastAgents sets where accepts and completions are recorded.
func (e *Engine) SetLastAgents(l LastAgents) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.lastAgents = l
}

func (e *Engine) recordLastAgent(task *Task, at time.Time) {
	if e.lastAgents != nil && task.AgentID != "" && task.Conversation.GetCustomerAddress() != "" {
		e.lastAgents.Record(task.Tenant, task.Conversation, task.AgentID, at)
	}
}

// startWaitTimers arms a queued task's timers: the end of its preferred
// agent's wait (the task falls through to anyone) and its overflow.
func (e *Engine) startWaitTimers(task *Task) {
	stopWaitTimers(task)
	now := e.now()
	tenantID, taskID := task.Tenant, task.ID
	if task.PreferredAgent != "" && now.Before(task.PreferredUntil) {
		task.preferTimer = e.afterFunc(task.PreferredUntil.Sub(now), func() { e.redispatch(tenantID) })
	}
	if d := task.Service.OverflowAfter; d > 0 && !task.Overflowed && len(task.RequiredSkills) > 0 {
		task.overflowTimer = e.afterFunc(max(task.QueuedAt.Add(d).Sub(now), 0), func() { e.overflow(tenantID, taskID) })
	}
}

func stopWaitTimers(task *Task) {
	for _, tm := range []*time.Timer{task.preferTimer, task.overflowTimer} {
		if tm != nil {
			tm.Stop()
		}
	}
	task.preferTimer, task.overflowTimer = nil, nil
}

// redispatch offers what may be offered now (a preferred agent's wait
// ended).
func (e *Engine) redispatch(tenantID string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed || e.mine(tenantID) != nil {
		return
	}
	e.dispatch(context.Background(), tenantID)
}

// overflow relaxes a waiting task's required skills to its service's
// OverflowSkills: the task moves to that skill set's pool (O(log n); a
// new pool is filled once per skill set) and TaskOverflowed says so. An
// offered task keeps its offer and goes back relaxed if it returns.
func (e *Engine) overflow(tenantID, taskID string) {
	ctx := context.Background()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed || e.mine(tenantID) != nil {
		return
	}
	t := e.tenant(tenantID)
	task := t.tasks[taskID]
	if task == nil || task.Overflowed || (task.State != TaskQueued && task.State != TaskOffered) {
		return
	}
	keep := task.Service.OverflowSkills
	var relaxed []string
	for _, s := range task.RequiredSkills {
		if slices.Contains(keep, s) {
			relaxed = append(relaxed, s)
		}
	}
	prevSkills := task.RequiredSkills
	queued := task.pool != nil
	e.pull(task)
	task.RequiredSkills, task.Overflowed = relaxed, true
	if err := e.store.Save(ctx, task); err != nil {
		task.RequiredSkills, task.Overflowed = prevSkills, false
		if queued {
			e.push(t, task)
		}
		e.log.Error("save overflowed task; retrying", "tenant", tenantID, "task", taskID, "err", err)
		task.overflowTimer = e.afterFunc(5*time.Second, func() { e.overflow(tenantID, taskID) })
		return
	}
	if queued {
		e.push(t, task)
	}
	if err := e.pub.Emit(ctx, subjects.TaskOverflowed(tenantID), &distributionv1.TaskOverflowed{
		TenantId: tenantID, TaskId: task.ID, SessionId: task.SessionID, ServiceId: task.ServiceID,
		PreviousSkills: prevSkills, RequiredSkills: relaxed, OverflowedAt: timestamppb.New(e.now()),
	}, task.ID+":overflowed"); err != nil {
		e.log.Error("publish overflow", "tenant", tenantID, "task", taskID, "err", err)
	}
	e.dispatch(ctx, tenantID)
}
