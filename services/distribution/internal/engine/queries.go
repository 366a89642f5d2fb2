package engine

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	distributionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/distribution/v1"
)

// State returns an agent's state; an agent distribution has not seen is
// offline.
func (e *Engine) State(tenantID, agentID string) *distributionv1.AgentState {
	e.mu.Lock()
	defer e.mu.Unlock()
	t := e.tenant(tenantID)
	a, ok := t.agents[agentID]
	if !ok {
		return &distributionv1.AgentState{
			TenantId: tenantID, AgentId: agentID, Presence: distributionv1.Presence_PRESENCE_OFFLINE,
			Activity: distributionv1.AgentActivity_AGENT_ACTIVITY_OFFLINE,
		}
	}
	return e.stateLocked(tenantID, t, a)
}

func (e *Engine) stateLocked(tenantID string, t *tenant, a *agent) *distributionv1.AgentState {
	st := &distributionv1.AgentState{
		TenantId: tenantID, AgentId: a.info.ID, Presence: a.presence, Rona: a.rona,
		ActiveTasks: int32(len(a.active)), Capacity: int32(a.info.Capacity), Offers: sortedOffers(a),
		Activity: e.activity(t, a, nil),
	}
	var until time.Time
	for id, task := range a.wrapping {
		st.WrappingTaskIds = append(st.WrappingTaskIds, id)
		if task.WrapUntil.After(until) {
			until = task.WrapUntil
		}
	}
	slices.Sort(st.WrappingTaskIds)
	if !until.IsZero() {
		st.WrapUpUntil = timestamppb.New(until)
	}
	if st.Activity == distributionv1.AgentActivity_AGENT_ACTIVITY_AVAILABLE && a.load() == 0 {
		st.IdleSince = timestamppb.New(a.since)
	}
	if !a.graceUntil.IsZero() {
		st.GraceUntil = timestamppb.New(a.graceUntil)
	}
	return st
}

// activity sums an agent up for one service (q) or, with q nil, for any
// of their services distribution has a queue for.
func (e *Engine) activity(t *tenant, a *agent, q *queue) distributionv1.AgentActivity {
	switch {
	case a.presence == distributionv1.Presence_PRESENCE_AWAY:
		return distributionv1.AgentActivity_AGENT_ACTIVITY_AWAY
	case !a.available():
		return distributionv1.AgentActivity_AGENT_ACTIVITY_OFFLINE
	case len(a.wrapping) > 0:
		return distributionv1.AgentActivity_AGENT_ACTIVITY_WRAPPING
	case a.rona:
		return distributionv1.AgentActivity_AGENT_ACTIVITY_RONA
	}
	under := false
	if q != nil {
		under = a.load() < limit(a, q.svc)
	} else {
		seen := false
		for _, sid := range a.info.Services {
			if q := t.queues[sid]; q != nil {
				seen = true
				under = under || a.load() < limit(a, q.svc)
			}
		}
		if !seen {
			under = a.load() < limit(a, ServiceInfo{})
		}
	}
	if under {
		return distributionv1.AgentActivity_AGENT_ACTIVITY_AVAILABLE
	}
	return distributionv1.AgentActivity_AGENT_ACTIVITY_BUSY
}

var protoStates = map[TaskState]distributionv1.TaskState{
	TaskQueued:    distributionv1.TaskState_TASK_STATE_QUEUED,
	TaskOffered:   distributionv1.TaskState_TASK_STATE_OFFERED,
	TaskAccepted:  distributionv1.TaskState_TASK_STATE_ACCEPTED,
	TaskWrapping:  distributionv1.TaskState_TASK_STATE_WRAPPING,
	TaskParked:    distributionv1.TaskState_TASK_STATE_PARKED,
	TaskCompleted: distributionv1.TaskState_TASK_STATE_COMPLETED,
	TaskCanceled:  distributionv1.TaskState_TASK_STATE_CANCELED,
	TaskEnded:     distributionv1.TaskState_TASK_STATE_COMPLETED,
}

// view is a task as the API shows it.
func (e *Engine) view(task *Task) *distributionv1.Task {
	v := &distributionv1.Task{
		TenantId: task.Tenant, TaskId: task.ID, SessionId: task.SessionID, ServiceId: task.ServiceID,
		State: protoStates[task.State], Priority: task.Priority, RequiredSkills: task.RequiredSkills,
		QueuedAt: timestamppb.New(task.QueuedAt), AgentId: task.AgentID, Position: position(task),
		Note: task.Note, Transfers: int32(task.Transfers), Overflowed: task.Overflowed,
	}
	if task.PreferredAgent != "" && task.State == TaskQueued && e.now().Before(task.PreferredUntil) {
		v.PreferredAgentId, v.PreferredUntil = task.PreferredAgent, timestamppb.New(task.PreferredUntil)
	}
	if task.State.held() && !task.ReplyDue.IsZero() && !task.Replied {
		v.ReplyDueAt = timestamppb.New(task.ReplyDue)
	}
	if !task.AcceptedAt.IsZero() {
		v.AcceptedAt = timestamppb.New(task.AcceptedAt)
	}
	if !task.WrapUntil.IsZero() {
		v.WrapUpUntil = timestamppb.New(task.WrapUntil)
	}
	return v
}

// lookup finds a task, open (in memory) or closed (in the store).
func (e *Engine) lookup(ctx context.Context, t *tenant, tenantID, taskID string) (*Task, error) {
	if task := t.tasks[taskID]; task != nil {
		return task, nil
	}
	saved, err := e.store.Get(ctx, tenantID, taskID)
	if err != nil {
		return nil, fmt.Errorf("get task %s: %w", taskID, err)
	}
	if saved == nil {
		return nil, fmt.Errorf("%w: task %q", ErrUnknownTask, taskID)
	}
	return saved, nil
}

// GetTask returns a task, open or closed.
func (e *Engine) GetTask(ctx context.Context, tenantID, taskID string) (*distributionv1.Task, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	task, err := e.lookup(ctx, e.tenant(tenantID), tenantID, taskID)
	if err != nil {
		return nil, err
	}
	return e.view(task), nil
}

// serviceLoad counts the agents working a service: available members
// (whatever they are doing), and the tasks they can hold at once.
func (e *Engine) serviceLoad(t *tenant, q *queue) (agents, slots int) {
	for _, a := range t.agents {
		if a.available() && slices.Contains(a.info.Services, q.svc.ID) {
			agents++
			slots += limit(a, q.svc)
		}
	}
	return agents, slots
}

// QueuePosition says where a task waits and estimates how long: position ×
// average handle time ÷ the tasks the service's available agents can hold
// at once. Average handle time is accept → completion (after-call work
// included) over the service's last 50 completed tasks. No estimate without
// a completed task or an available agent.
func (e *Engine) QueuePosition(ctx context.Context, tenantID, taskID string) (*distributionv1.GetQueuePositionResponse, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	t := e.tenant(tenantID)
	task, err := e.lookup(ctx, t, tenantID, taskID)
	if err != nil {
		return nil, err
	}
	res := &distributionv1.GetQueuePositionResponse{TaskId: task.ID, ServiceId: task.ServiceID, State: protoStates[task.State], Position: position(task)}
	q := t.queues[task.ServiceID]
	if q == nil {
		return res, nil
	}
	res.Waiting = int32(q.waiting.Len())
	agents, slots := e.serviceLoad(t, q)
	res.AgentsAvailable = int32(agents)
	aht := q.averageHandle()
	if aht > 0 {
		res.AverageHandleTime = durationpb.New(aht)
	}
	if res.Position > 0 && aht > 0 && slots > 0 {
		res.EstimatedWait = durationpb.New(time.Duration(int64(aht) * int64(res.Position) / int64(slots)))
	}
	return res, nil
}

// ServiceAvailability lists the service's agents distribution knows (those
// who set a presence since it started) by activity.
func (e *Engine) ServiceAvailability(tenantID string, svc ServiceInfo) *distributionv1.GetServiceAvailabilityResponse {
	e.mu.Lock()
	defer e.mu.Unlock()
	t := e.tenant(tenantID)
	q := e.queue(t, svc)
	res := &distributionv1.GetServiceAvailabilityResponse{ServiceId: svc.ID}
	for _, a := range t.agents {
		if !slices.Contains(a.info.Services, svc.ID) {
			continue
		}
		act := e.activity(t, a, q)
		switch act {
		case distributionv1.AgentActivity_AGENT_ACTIVITY_AVAILABLE:
			res.Available++
		case distributionv1.AgentActivity_AGENT_ACTIVITY_AWAY:
			res.Away++
		case distributionv1.AgentActivity_AGENT_ACTIVITY_OFFLINE:
			res.Offline++
		default:
			res.Busy++
		}
		res.Agents = append(res.Agents, &distributionv1.AgentSummary{
			AgentId: a.info.ID, Activity: act, ActiveTasks: int32(len(a.active)), Offers: int32(len(a.offers)), Capacity: int32(limit(a, q.svc)),
		})
	}
	slices.SortFunc(res.Agents, func(x, y *distributionv1.AgentSummary) int {
		if x.AgentId < y.AgentId {
			return -1
		}
		return 1
	})
	return res
}

// QueueStatistics sums up a service's queue.
func (e *Engine) QueueStatistics(tenantID string, svc ServiceInfo) *distributionv1.GetQueueStatisticsResponse {
	e.mu.Lock()
	defer e.mu.Unlock()
	t := e.tenant(tenantID)
	return e.statistics(t, e.queue(t, svc), e.now())
}

// Snapshot is what WatchQueues sends: the statistics of the given services
// (none: every service with a queue) and the states of their agents.
func (e *Engine) Snapshot(tenantID string, svcs []ServiceInfo) *distributionv1.WatchQueuesResponse {
	e.mu.Lock()
	defer e.mu.Unlock()
	t := e.tenant(tenantID)
	now := e.now()
	var qs []*queue
	if len(svcs) == 0 {
		for _, q := range t.queues {
			qs = append(qs, q)
		}
	} else {
		for _, svc := range svcs {
			if q := t.queues[svc.ID]; q != nil {
				qs = append(qs, q) // keep the queue's own settings
			} else {
				qs = append(qs, e.queue(t, svc))
			}
		}
	}
	slices.SortFunc(qs, func(x, y *queue) int { return strings.Compare(x.svc.ID, y.svc.ID) })
	qs = slices.CompactFunc(qs, func(x, y *queue) bool { return x == y })
	res := &distributionv1.WatchQueuesResponse{At: timestamppb.New(now)}
	for _, q := range qs {
		res.Services = append(res.Services, e.statistics(t, q, now))
	}
	for _, a := range t.agents {
		if slices.ContainsFunc(qs, func(q *queue) bool { return slices.Contains(a.info.Services, q.svc.ID) }) {
			res.Agents = append(res.Agents, e.stateLocked(tenantID, t, a))
		}
	}
	slices.SortFunc(res.Agents, func(x, y *distributionv1.AgentState) int { return strings.Compare(x.AgentId, y.AgentId) })
	return res
}

func (e *Engine) statistics(t *tenant, q *queue, now time.Time) *distributionv1.GetQueueStatisticsResponse {
	svc := q.svc
	q.offers, q.ronas = trim(q.offers, now), trim(q.ronas, now)
	res := &distributionv1.GetQueueStatisticsResponse{
		ServiceId: svc.ID, Waiting: int32(q.waiting.Len()), LongestWait: durationpb.New(0),
		OffersLastHour: int32(len(q.offers)), RonasLastHour: int32(len(q.ronas)),
		AverageHandleTime: durationpb.New(q.averageHandle()),
	}
	if oldest, ok := q.byAge.Min(); ok {
		res.LongestWait = durationpb.New(max(now.Sub(oldest.QueuedAt), 0))
	}
	for _, task := range t.tasks {
		if task.ServiceID != svc.ID {
			continue
		}
		switch task.State {
		case TaskOffered:
			res.Offered++
		case TaskAccepted, TaskParked:
			res.Active++
		}
	}
	for _, a := range t.agents {
		if !slices.Contains(a.info.Services, svc.ID) {
			continue
		}
		switch e.activity(t, a, q) {
		case distributionv1.AgentActivity_AGENT_ACTIVITY_AVAILABLE:
			res.AgentsAvailable++
		case distributionv1.AgentActivity_AGENT_ACTIVITY_BUSY:
			res.AgentsBusy++
		case distributionv1.AgentActivity_AGENT_ACTIVITY_WRAPPING:
			res.AgentsWrapping++
		case distributionv1.AgentActivity_AGENT_ACTIVITY_RONA:
			res.AgentsRona++
		case distributionv1.AgentActivity_AGENT_ACTIVITY_AWAY:
			res.AgentsAway++
		default:
			res.AgentsOffline++
		}
	}
	return res
}
