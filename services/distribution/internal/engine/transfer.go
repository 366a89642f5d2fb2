package engine

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	distributionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/distribution/v1"

	"github.com/switchboard-cc/switchboard/pkg/subjects"
)

// Transfer asks for an accepted task to move on: to another service's
// queue (ToService) or to one named agent (ToAgent), exactly one of them.
type Transfer struct {
	TaskID string
	// By: who transfers (for the events).
	By string
	// ByAgent, when set, must be the task's agent.
	ByAgent   string
	ToService *ServiceInfo
	ToAgent   string
	Note      string
}

// MaxNoteLen bounds a transfer's note.
const MaxNoteLen = 1000

// Transfer moves an accepted task away from its agent. To a service, the
// task queues there with its original arrival time (so it goes to its
// place) and the service's settings. To an agent, it is offered to that
// agent only, at once: the agent must be able to take it now (available,
// not RONA-flagged, not in after-call work, under capacity); on decline
// or RONA it goes back to the queue of its service. The transferring
// agent counts as having declined it (they get it back only after the
// cooldown). A refused transfer changes nothing.
func (e *Engine) Transfer(ctx context.Context, tenantID string, tr Transfer) (*distributionv1.Task, error) {
	if (tr.ToService == nil) == (tr.ToAgent == "") {
		return nil, fmt.Errorf("%w: name exactly one of a service and an agent to transfer to", ErrInvalid)
	}
	if len(tr.Note) > MaxNoteLen {
		return nil, fmt.Errorf("%w: note is %d characters, more than %d", ErrInvalid, len(tr.Note), MaxNoteLen)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.mine(tenantID); err != nil {
		return nil, err
	}
	t := e.tenant(tenantID)
	task, err := e.openTask(ctx, t, tenantID, tr.TaskID, "")
	if err != nil {
		return nil, err
	}
	if task.State != TaskAccepted {
		return nil, fmt.Errorf("%w: task %s is %s; only an accepted task can be transferred", ErrTaskState, task.ID, task.State)
	}
	if tr.ByAgent != "" && task.AgentID != tr.ByAgent {
		return nil, ErrNotYourTask
	}
	var target *agent
	if tr.ToAgent != "" {
		if tr.ToAgent == task.AgentID {
			return nil, fmt.Errorf("%w: agent %s already has task %s", ErrInvalid, tr.ToAgent, task.ID)
		}
		target = t.agents[tr.ToAgent]
		if target == nil || !directReady(target, task.Service) {
			return nil, fmt.Errorf("%w: agent %s is not available, is RONA-flagged, in after-call work or at capacity", ErrAgentBusy, tr.ToAgent)
		}
	}
	now := e.now()
	prev := *task
	from, fromService := task.AgentID, task.ServiceID
	task.State, task.AgentID, task.AcceptedAt = TaskQueued, "", time.Time{}
	task.ReplyDue, task.Replied, task.Overdue = time.Time{}, false, false
	task.Note, task.Transfers = tr.Note, task.Transfers+1
	if tr.ToService != nil {
		task.ServiceID, task.Service = tr.ToService.ID, *tr.ToService
	}
	if err := e.store.Save(ctx, task); err != nil {
		*task = prev
		return nil, fmt.Errorf("save task %s: %w", task.ID, err)
	}
	stopReplyTimer(task)
	delete(t.accepted, task.AcceptedOffer)
	task.AcceptedOffer = ""
	task.declined[from] = now
	if a := t.agents[from]; a != nil {
		delete(a.active, task.ID)
		e.touch(t, a, now)
	}
	if tr.ToService != nil {
		e.queue(t, *tr.ToService) // the newest settings of the service
		e.push(t, task)
	}
	var toService string
	if tr.ToService != nil {
		toService = tr.ToService.ID
	}
	if err := e.pub.Emit(ctx, subjects.TaskTransferred(tenantID), &distributionv1.TaskTransferred{
		TenantId: tenantID, TaskId: task.ID, SessionId: task.SessionID, FromServiceId: fromService, FromAgentId: from,
		ToServiceId: toService, ToAgentId: tr.ToAgent, Note: tr.Note, TransferredBy: tr.By,
		TransferredAt: timestamppb.New(now), Transfer: int32(task.Transfers),
	}, fmt.Sprintf("%s:transferred:%d", task.ID, task.Transfers)); err != nil {
		// The task is saved transferred: put it where it belongs all the
		// same, and say the event may be missing.
		e.log.ErrorContext(ctx, "publish transfer", "tenant", tenantID, "task", task.ID, "err", err)
	}
	if target != nil {
		e.offer(ctx, t, task, target, now, tr.By)
	}
	e.dispatch(ctx, tenantID)
	return e.view(task), nil
}

// directReady: the agent could be offered a task of svc by name now
// (membership of the service and skills aside: the transferring person
// chose them).
func directReady(a *agent, svc ServiceInfo) bool {
	return a.available() && !a.rona && len(a.wrapping) == 0 && a.load() < limit(a, svc)
}

// AgentReplied records an agent's message in a session: the first reply
// to an accepted task of theirs stops its first-reply timer. Replies of
// anyone else, or to tasks not accepted, change nothing.
func (e *Engine) AgentReplied(ctx context.Context, tenantID, sessionID, agentID string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.mine(tenantID); err != nil {
		return err
	}
	t := e.tenant(tenantID)
	task := t.sessions[sessionID]
	if task == nil || !task.State.held() || task.Replied || (agentID != "" && agentID != task.AgentID) {
		return nil
	}
	task.Replied = true
	if err := e.store.Save(ctx, task); err != nil {
		task.Replied = false
		return fmt.Errorf("save task %s: %w", task.ID, err)
	}
	stopReplyTimer(task)
	return nil
}

func (e *Engine) startReplyTimer(task *Task, d time.Duration) {
	stopReplyTimer(task)
	if task.ReplyDue.IsZero() || task.Replied || task.Overdue {
		return
	}
	tenantID, taskID, due := task.Tenant, task.ID, task.ReplyDue
	task.replyTimer = e.afterFunc(max(d, 0), func() { e.replyOverdue(tenantID, taskID, due) })
}

func stopReplyTimer(task *Task) {
	if task.replyTimer != nil {
		task.replyTimer.Stop()
		task.replyTimer = nil
	}
}

// replyOverdue is the first-reply timer running out: TaskReplyOverdue,
// once per acceptance. The task stays with its agent.
func (e *Engine) replyOverdue(tenantID, taskID string, due time.Time) {
	ctx := context.Background()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed || e.mine(tenantID) != nil {
		return
	}
	task := e.tenant(tenantID).tasks[taskID]
	if task == nil || !task.State.held() || task.Replied || task.Overdue || task.ReplyDue.IsZero() || !task.ReplyDue.Equal(due) {
		return // replied, transferred or ended in the meantime
	}
	task.Overdue = true
	if err := e.store.Save(ctx, task); err != nil {
		task.Overdue = false
		e.log.Error("save reply overdue; retrying", "tenant", tenantID, "task", taskID, "err", err)
		task.replyTimer = e.afterFunc(5*time.Second, func() { e.replyOverdue(tenantID, taskID, due) })
		return
	}
	task.replyTimer = nil
	t := e.tenant(tenantID)
	requeue := task.Service.FirstReplyRequeue
	if err := e.pub.Emit(ctx, subjects.TaskReplyOverdue(tenantID), &distributionv1.TaskReplyOverdue{
		TenantId: tenantID, TaskId: task.ID, SessionId: task.SessionID, ServiceId: task.ServiceID, AgentId: task.AgentID,
		AcceptedAt: timestamppb.New(task.AcceptedAt), DueAt: timestamppb.New(due), Requeued: requeue,
	}, fmt.Sprintf("%s:reply_overdue:%d", task.ID, task.Transfers)); err != nil {
		e.log.Error("publish reply overdue", "tenant", tenantID, "task", taskID, "err", err)
	}
	if requeue {
		e.requeueOverdue(ctx, t, task)
	}
	e.signal()
}

// requeueOverdue takes a task whose first reply is overdue from its agent
// and queues it again in its service at its place: a transfer to its own
// service by distribution (TaskTransferred, so the agent's desk lets the
// chat go), with the agent counting as having declined it.
func (e *Engine) requeueOverdue(ctx context.Context, t *tenant, task *Task) {
	now := e.now()
	prev := *task
	from := task.AgentID
	task.State, task.AgentID, task.AcceptedAt = TaskQueued, "", time.Time{}
	task.ReplyDue, task.Replied, task.Overdue = time.Time{}, false, false
	task.Note, task.Transfers = "first reply overdue", task.Transfers+1
	if err := e.store.Save(ctx, task); err != nil {
		// The task stays with the agent, overdue; said once.
		*task = prev
		e.log.ErrorContext(ctx, "save overdue task requeued; it stays with its agent", "tenant", task.Tenant, "task", task.ID, "err", err)
		return
	}
	delete(t.accepted, task.AcceptedOffer)
	task.AcceptedOffer = ""
	task.declined[from] = now
	if a := t.agents[from]; a != nil {
		delete(a.active, task.ID)
		e.touch(t, a, now)
	}
	e.queue(t, task.Service)
	e.push(t, task)
	if err := e.pub.Emit(ctx, subjects.TaskTransferred(task.Tenant), &distributionv1.TaskTransferred{
		TenantId: task.Tenant, TaskId: task.ID, SessionId: task.SessionID, FromServiceId: task.ServiceID, FromAgentId: from,
		ToServiceId: task.ServiceID, Note: task.Note, TransferredBy: "distribution",
		TransferredAt: timestamppb.New(now), Transfer: int32(task.Transfers),
	}, fmt.Sprintf("%s:transferred:%d", task.ID, task.Transfers)); err != nil {
		e.log.ErrorContext(ctx, "publish requeue of overdue task", "tenant", task.Tenant, "task", task.ID, "err", err)
	}
	e.dispatch(ctx, task.Tenant)
}
