// Package engine is distribution's core: per-tenant queues of tasks per
// service, agents with presence and capacity, offers with a RONA timer.
// It decides under one lock and reports every decision as an event through
// Publisher before the lock is released, so events leave in decision order.
package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	distributionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/distribution/v1"
	messagingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/messaging/v1"

	"github.com/switchboard-cc/switchboard/pkg/ids"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
)

// Errors the gRPC adapter maps to status codes.
var (
	ErrOfferNotOpen = errors.New("offer is no longer open")
	ErrNotYourOffer = errors.New("offer belongs to another agent")
	ErrUnknownAgent = errors.New("agent is not known to distribution")
	ErrNotEligible  = errors.New("user may not take IM tasks")
)

// Publisher sends one event durably (idempotent under msgID).
type Publisher interface {
	Emit(ctx context.Context, subject string, event proto.Message, msgID string) error
}

// TaskStore keeps tasks across restarts.
type TaskStore interface {
	Save(ctx context.Context, t *Task) error
	// Known reports whether a task was ever saved.
	Known(ctx context.Context, tenant, taskID string) (bool, error)
	LoadOpen(ctx context.Context) ([]*Task, error)
	// MarkSessionEnded and SessionEnded remember ended sessions, so a task
	// request that arrives after its session ended is not queued.
	MarkSessionEnded(ctx context.Context, tenant, sessionID string) error
	SessionEnded(ctx context.Context, tenant, sessionID string) (bool, error)
}

// AgentInfo is what distribution needs to know about a user.
type AgentInfo struct {
	ID       string
	Eligible bool // agent role with an IM license
	Services []string
	Capacity int // 0: the services' own limit
}

// ServiceInfo is what distribution needs to know about a service.
type ServiceInfo struct {
	ID               string
	Name             string
	RONATimeout      time.Duration
	MaxParallelTasks int
}

// TaskState is where a task is in its life.
type TaskState string

const (
	TaskQueued   TaskState = "queued"
	TaskOffered  TaskState = "offered"
	TaskAccepted TaskState = "accepted"
	TaskEnded    TaskState = "ended"
)

// Task is one session waiting for, or handled by, an agent.
type Task struct {
	ID           string
	Tenant       string
	SessionID    string
	ServiceID    string
	Conversation *messagingv1.ConversationRef
	CustomerName string
	Priority     int32
	QueuedAt     time.Time
	State        TaskState
	AgentID      string
	// Service snapshot taken when the task arrived.
	Service ServiceInfo

	offerID  string
	declined map[string]time.Time
	// acceptedOffer is the offer the task was accepted through, so a
	// retried Accept gets the same answer.
	acceptedOffer string
	// queuedSent: TaskQueued was published by this process. A restored
	// task has it unset, so a redelivered request (the one whose handling
	// the restart cut short) publishes it again under the same id.
	queuedSent bool
}

type offer struct {
	id      string
	task    *Task
	agentID string
	expires time.Time
	timer   *time.Timer
}

type agent struct {
	info     AgentInfo
	presence distributionv1.Presence
	rona     bool
	active   map[string]*Task // accepted, not ended
	offers   map[string]*offer
	lastSeen time.Time // when last offered or accepted; older goes first
}

func (a *agent) load() int { return len(a.active) + len(a.offers) }

type tenant struct {
	queues   map[string][]*Task // service id -> queued tasks
	tasks    map[string]*Task   // task id -> task (not ended)
	sessions map[string]*Task   // session id -> task
	agents   map[string]*agent
	offers   map[string]*offer
	accepted map[string]*Task // offer id -> task accepted through it (not ended)
}

// Engine is safe for concurrent use.
type Engine struct {
	mu      sync.Mutex
	tenants map[string]*tenant
	pub     Publisher
	store   TaskStore
	log     *slog.Logger
	now     func() time.Time
	// DeclineCooldown keeps a declining agent from being offered the same
	// task again right away.
	DeclineCooldown time.Duration
	closed          bool
}

// New returns an engine.
func New(pub Publisher, store TaskStore, log *slog.Logger) *Engine {
	return &Engine{
		tenants:         map[string]*tenant{},
		pub:             pub,
		store:           store,
		log:             log,
		now:             time.Now,
		DeclineCooldown: 30 * time.Second,
	}
}

func (e *Engine) tenant(id string) *tenant {
	t := e.tenants[id]
	if t == nil {
		t = &tenant{
			queues:   map[string][]*Task{},
			tasks:    map[string]*Task{},
			sessions: map[string]*Task{},
			agents:   map[string]*agent{},
			offers:   map[string]*offer{},
			accepted: map[string]*Task{},
		}
		e.tenants[id] = t
	}
	return t
}

// Restore loads open tasks after a restart: offered tasks go back to the
// queue (their timers are gone), accepted ones keep counting against their
// agent's capacity once the agent is back.
func (e *Engine) Restore(ctx context.Context) (int, error) {
	open, err := e.store.LoadOpen(ctx)
	if err != nil {
		return 0, fmt.Errorf("load open tasks: %w", err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	sort.Slice(open, func(i, j int) bool { return open[i].QueuedAt.Before(open[j].QueuedAt) })
	for _, task := range open {
		t := e.tenant(task.Tenant)
		t.tasks[task.ID] = task
		t.sessions[task.SessionID] = task
		task.declined = map[string]time.Time{}
		switch task.State {
		case TaskAccepted:
			a := t.agentOrStub(task.AgentID)
			a.active[task.ID] = task
		default:
			task.State = TaskQueued
			task.AgentID = ""
			t.queues[task.ServiceID] = append(t.queues[task.ServiceID], task)
		}
	}
	return len(open), nil
}

func (t *tenant) agentOrStub(id string) *agent {
	a := t.agents[id]
	if a == nil {
		a = &agent{info: AgentInfo{ID: id}, presence: distributionv1.Presence_PRESENCE_OFFLINE, active: map[string]*Task{}, offers: map[string]*offer{}}
		t.agents[id] = a
	}
	return a
}

// Enqueue adds a task and dispatches. A task id seen before, or a task of a
// session that already ended, is ignored: requests may be redelivered, and
// the session's end may overtake its task request.
func (e *Engine) Enqueue(ctx context.Context, task *Task) error {
	// The checks run under the lock: EndSession records the end before it
	// takes the lock, so either the check sees the end or EndSession finds
	// the task queued here and cancels it. Checked outside the lock, an end
	// processed in between would leave the task on offer for good.
	e.mu.Lock()
	defer e.mu.Unlock()
	t := e.tenant(task.Tenant)
	if open, ok := t.tasks[task.ID]; ok {
		if open.queuedSent {
			return nil
		}
		// An earlier delivery failed to publish TaskQueued and asked for
		// this redelivery: finish its work.
		return e.queued(ctx, t, open)
	}
	known, err := e.store.Known(ctx, task.Tenant, task.ID)
	if err != nil {
		return fmt.Errorf("look up task %s: %w", task.ID, err)
	}
	ended, err := e.store.SessionEnded(ctx, task.Tenant, task.SessionID)
	if err != nil {
		return fmt.Errorf("look up session %s: %w", task.SessionID, err)
	}
	if known || ended {
		return nil
	}
	task.State = TaskQueued
	task.declined = map[string]time.Time{}
	if task.QueuedAt.IsZero() {
		task.QueuedAt = e.now()
	}
	if err := e.store.Save(ctx, task); err != nil {
		return fmt.Errorf("save task %s: %w", task.ID, err)
	}
	t.tasks[task.ID] = task
	t.sessions[task.SessionID] = task
	t.queues[task.ServiceID] = insertByPriority(t.queues[task.ServiceID], task)
	return e.queued(ctx, t, task)
}

// queued publishes TaskQueued and dispatches. On a publish error the task
// stays queued and the error asks for a redelivery of the request, which
// comes back here.
func (e *Engine) queued(ctx context.Context, t *tenant, task *Task) error {
	var pos int32 // 0: no longer waiting (a redelivery after an offer)
	for i, q := range t.queues[task.ServiceID] {
		if q == task {
			pos = int32(i + 1)
		}
	}
	if err := e.pub.Emit(ctx, subjects.TaskQueued(task.Tenant), &distributionv1.TaskQueued{
		TenantId: task.Tenant, TaskId: task.ID, SessionId: task.SessionID, ServiceId: task.ServiceID,
		Position: pos, QueuedAt: timestamppb.New(task.QueuedAt),
	}, "queued:"+task.ID); err != nil {
		return err
	}
	task.queuedSent = true
	e.dispatch(ctx, task.Tenant)
	return nil
}

// insertByPriority keeps higher priority first, then arrival order.
func insertByPriority(q []*Task, task *Task) []*Task {
	i := sort.Search(len(q), func(i int) bool { return q[i].Priority < task.Priority })
	q = append(q, nil)
	copy(q[i+1:], q[i:])
	q[i] = task
	return q
}

// SetPresence records an agent's presence; available clears RONA.
func (e *Engine) SetPresence(ctx context.Context, tenantID string, info AgentInfo, p distributionv1.Presence) (*distributionv1.AgentState, error) {
	if p == distributionv1.Presence_PRESENCE_AVAILABLE && !info.Eligible {
		return nil, ErrNotEligible
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	t := e.tenant(tenantID)
	a := t.agentOrStub(info.ID)
	a.info = info
	a.presence = p
	if p == distributionv1.Presence_PRESENCE_AVAILABLE {
		a.rona = false
	}
	if a.lastSeen.IsZero() {
		a.lastSeen = e.now()
	}
	e.dispatch(ctx, tenantID)
	return e.stateLocked(tenantID, a), nil
}

// State returns an agent's state.
func (e *Engine) State(tenantID, agentID string) *distributionv1.AgentState {
	e.mu.Lock()
	defer e.mu.Unlock()
	t := e.tenant(tenantID)
	a, ok := t.agents[agentID]
	if !ok {
		return &distributionv1.AgentState{TenantId: tenantID, AgentId: agentID, Presence: distributionv1.Presence_PRESENCE_OFFLINE}
	}
	return e.stateLocked(tenantID, a)
}

func (e *Engine) stateLocked(tenantID string, a *agent) *distributionv1.AgentState {
	st := &distributionv1.AgentState{
		TenantId: tenantID, AgentId: a.info.ID, Presence: a.presence, Rona: a.rona,
		ActiveTasks: int32(len(a.active)), Capacity: int32(a.info.Capacity),
	}
	for _, o := range a.offers {
		st.Offers = append(st.Offers, offerProto(o))
	}
	sort.Slice(st.Offers, func(i, j int) bool { return st.Offers[i].OfferId < st.Offers[j].OfferId })
	return st
}

func offerProto(o *offer) *distributionv1.Offer {
	return &distributionv1.Offer{
		OfferId: o.id, TaskId: o.task.ID, SessionId: o.task.SessionID, ServiceId: o.task.ServiceID,
		ServiceName: o.task.Service.Name, Conversation: o.task.Conversation, CustomerName: o.task.CustomerName,
		ExpiresAt: timestamppb.New(o.expires),
	}
}

// Accept turns an open offer into an accepted task. Accept is idempotent:
// the same agent accepting the same offer again (a retry after an error or
// a lost answer) gets the task again and TaskAccepted is published again
// under the same id, so an event that failed to go out the first time is
// not lost.
func (e *Engine) Accept(ctx context.Context, tenantID, agentID, offerID string) (*Task, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	t := e.tenant(tenantID)
	o, ok := t.offers[offerID]
	if !ok {
		task := t.accepted[offerID]
		if task == nil {
			return nil, ErrOfferNotOpen
		}
		if task.AgentID != agentID {
			return nil, ErrNotYourOffer
		}
		if err := e.emitAccepted(ctx, task); err != nil {
			return nil, err
		}
		return task, nil
	}
	if o.agentID != agentID {
		return nil, ErrNotYourOffer
	}
	task := o.task
	prev := *task
	task.State, task.AgentID, task.offerID, task.acceptedOffer = TaskAccepted, agentID, "", offerID
	if err := e.store.Save(ctx, task); err != nil {
		*task = prev
		return nil, fmt.Errorf("save task %s: %w", task.ID, err)
	}
	e.closeOffer(t, o)
	t.accepted[offerID] = task
	a := t.agentOrStub(agentID)
	a.active[task.ID] = task
	a.lastSeen = e.now()
	if err := e.emitAccepted(ctx, task); err != nil {
		return nil, err
	}
	return task, nil
}

func (e *Engine) emitAccepted(ctx context.Context, task *Task) error {
	return e.pub.Emit(ctx, subjects.TaskAccepted(task.Tenant), &distributionv1.TaskAccepted{
		TenantId: task.Tenant, TaskId: task.ID, SessionId: task.SessionID, ServiceId: task.ServiceID,
		AgentId: task.AgentID, OfferId: task.acceptedOffer, AcceptedAt: timestamppb.New(e.now()),
	}, task.acceptedOffer+":accepted")
}

// Decline puts the task back in the queue, ahead of later arrivals.
func (e *Engine) Decline(ctx context.Context, tenantID, agentID, offerID string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	t := e.tenant(tenantID)
	o, ok := t.offers[offerID]
	if !ok {
		return ErrOfferNotOpen
	}
	if o.agentID != agentID {
		return ErrNotYourOffer
	}
	task := o.task
	e.closeOffer(t, o)
	task.declined[agentID] = e.now()
	e.requeue(t, task)
	if err := e.pub.Emit(ctx, subjects.TaskDeclined(tenantID), &distributionv1.TaskDeclined{
		TenantId: tenantID, TaskId: task.ID, SessionId: task.SessionID, ServiceId: task.ServiceID,
		AgentId: agentID, OfferId: offerID, DeclinedAt: timestamppb.New(e.now()),
	}, offerID+":declined"); err != nil {
		return err
	}
	e.dispatch(ctx, tenantID)
	return nil
}

// timeout is the RONA timer firing.
func (e *Engine) timeout(tenantID, offerID string) {
	ctx := context.Background()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return
	}
	t := e.tenant(tenantID)
	o, ok := t.offers[offerID]
	if !ok {
		return // answered in the meantime
	}
	task := o.task
	e.closeOffer(t, o)
	if a := t.agents[o.agentID]; a != nil {
		a.rona = true
	}
	e.requeue(t, task)
	if err := e.pub.Emit(ctx, subjects.TaskOfferTimedOut(tenantID), &distributionv1.TaskOfferTimedOut{
		TenantId: tenantID, TaskId: task.ID, SessionId: task.SessionID, ServiceId: task.ServiceID,
		AgentId: o.agentID, OfferId: offerID, TimedOutAt: timestamppb.New(e.now()),
	}, offerID+":rona"); err != nil {
		e.log.Error("publish rona", "tenant", tenantID, "task", task.ID, "err", err)
	}
	e.dispatch(ctx, tenantID)
}

// EndSession releases whatever the session holds: a queued or offered task
// is canceled, an accepted one frees its agent.
func (e *Engine) EndSession(ctx context.Context, tenantID, sessionID, reason string) error {
	if err := e.store.MarkSessionEnded(ctx, tenantID, sessionID); err != nil {
		return fmt.Errorf("mark session %s ended: %w", sessionID, err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	t := e.tenant(tenantID)
	task, ok := t.sessions[sessionID]
	if !ok {
		return nil
	}
	prevState := task.State
	var offeredTo, offerID string
	if task.offerID != "" {
		if o := t.offers[task.offerID]; o != nil {
			offeredTo, offerID = o.agentID, o.id
			e.closeOffer(t, o)
		}
	}
	t.queues[task.ServiceID] = remove(t.queues[task.ServiceID], task)
	if a := t.agents[task.AgentID]; a != nil {
		delete(a.active, task.ID)
	}
	task.State = TaskEnded
	if err := e.store.Save(ctx, task); err != nil {
		return fmt.Errorf("save task %s: %w", task.ID, err)
	}
	delete(t.tasks, task.ID)
	delete(t.sessions, sessionID)
	delete(t.accepted, task.acceptedOffer)
	if prevState != TaskAccepted {
		if err := e.pub.Emit(ctx, subjects.TaskCanceled(tenantID), &distributionv1.TaskCanceled{
			TenantId: tenantID, TaskId: task.ID, SessionId: sessionID, ServiceId: task.ServiceID,
			Reason: reason, CanceledAt: timestamppb.New(e.now()), AgentId: offeredTo, OfferId: offerID,
		}, task.ID+":canceled"); err != nil {
			return err
		}
	}
	e.dispatch(ctx, tenantID)
	return nil
}

func remove(q []*Task, task *Task) []*Task {
	for i, x := range q {
		if x == task {
			return append(q[:i:i], q[i+1:]...)
		}
	}
	return q
}

func (e *Engine) closeOffer(t *tenant, o *offer) {
	o.timer.Stop()
	delete(t.offers, o.id)
	if a := t.agents[o.agentID]; a != nil {
		delete(a.offers, o.id)
	}
	o.task.offerID = ""
}

func (e *Engine) requeue(t *tenant, task *Task) {
	task.State, task.AgentID = TaskQueued, ""
	// Back to its place by arrival: it keeps its original queue time.
	q := remove(t.queues[task.ServiceID], task)
	i := sort.Search(len(q), func(i int) bool {
		return q[i].Priority < task.Priority || (q[i].Priority == task.Priority && q[i].QueuedAt.After(task.QueuedAt))
	})
	q = append(q, nil)
	copy(q[i+1:], q[i:])
	q[i] = task
	t.queues[task.ServiceID] = q
}

// dispatch offers queued tasks to eligible agents until no pair is left.
func (e *Engine) dispatch(ctx context.Context, tenantID string) {
	t := e.tenant(tenantID)
	now := e.now()
	for {
		task, a := e.nextPair(t, now)
		if task == nil {
			return
		}
		timeout := task.Service.RONATimeout
		if timeout <= 0 {
			timeout = 30 * time.Second
		}
		o := &offer{id: ids.New("of_"), task: task, agentID: a.info.ID, expires: now.Add(timeout)}
		oid := o.id
		o.timer = time.AfterFunc(timeout, func() { e.timeout(tenantID, oid) })
		t.offers[o.id] = o
		a.offers[o.id] = o
		a.lastSeen = now
		task.State, task.offerID = TaskOffered, o.id
		t.queues[task.ServiceID] = remove(t.queues[task.ServiceID], task)
		if err := e.pub.Emit(ctx, subjects.TaskOffered(tenantID), &distributionv1.TaskOffered{
			TenantId: tenantID, TaskId: task.ID, SessionId: task.SessionID, ServiceId: task.ServiceID,
			AgentId: a.info.ID, OfferId: o.id, ExpiresAt: timestamppb.New(o.expires),
			Conversation: task.Conversation, ServiceName: task.Service.Name, CustomerName: task.CustomerName,
			OfferedAt: timestamppb.New(now),
		}, o.id+":offered"); err != nil {
			// The agent never learns of an offer that was not published:
			// withdraw it and try again on the next change.
			e.log.Error("publish offer; task stays queued", "tenant", tenantID, "task", task.ID, "err", err)
			e.closeOffer(t, o)
			e.requeue(t, task)
			return
		}
	}
}

// nextPair picks the oldest head-of-queue task that has an eligible agent,
// and for it the least loaded agent who waited longest.
func (e *Engine) nextPair(t *tenant, now time.Time) (*Task, *agent) {
	var heads []*Task
	for _, q := range t.queues {
		if len(q) > 0 {
			heads = append(heads, q...)
		}
	}
	sort.Slice(heads, func(i, j int) bool {
		if heads[i].Priority != heads[j].Priority {
			return heads[i].Priority > heads[j].Priority
		}
		return heads[i].QueuedAt.Before(heads[j].QueuedAt)
	})
	for _, task := range heads {
		var best *agent
		for _, a := range t.agents {
			if !e.eligible(a, task, now) {
				continue
			}
			if best == nil || a.load() < best.load() || (a.load() == best.load() && a.lastSeen.Before(best.lastSeen)) ||
				(a.load() == best.load() && a.lastSeen.Equal(best.lastSeen) && a.info.ID < best.info.ID) {
				best = a
			}
		}
		if best != nil {
			return task, best
		}
	}
	return nil, nil
}

func (e *Engine) eligible(a *agent, task *Task, now time.Time) bool {
	if a.presence != distributionv1.Presence_PRESENCE_AVAILABLE || a.rona || !a.info.Eligible {
		return false
	}
	member := false
	for _, s := range a.info.Services {
		if s == task.ServiceID {
			member = true
		}
	}
	if !member {
		return false
	}
	if at, ok := task.declined[a.info.ID]; ok && now.Sub(at) < e.DeclineCooldown {
		return false
	}
	limit := a.info.Capacity
	if limit <= 0 {
		limit = task.Service.MaxParallelTasks
	}
	if limit <= 0 {
		limit = 1
	}
	return a.load() < limit
}

// Tick re-runs dispatch for every tenant: tasks declined by everyone become
// offerable again once the cooldown passes.
func (e *Engine) Tick(ctx context.Context) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for id := range e.tenants {
		e.dispatch(ctx, id)
	}
}

// Close stops all timers; offers in flight are re-queued by Restore on the
// next start.
func (e *Engine) Close() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.closed = true
	for _, t := range e.tenants {
		for _, o := range t.offers {
			o.timer.Stop()
		}
	}
}
