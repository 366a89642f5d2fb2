// Package engine is distribution's core: per-tenant queues of tasks per
// service, agents with presence, skills and capacity, offers with a RONA
// timer, and after-call work. It decides under one lock and reports every
// decision as an event through Publisher before the lock is released, so
// events leave in decision order (and so in order per task).
//
// Selection: an agent is eligible for a task when they are a member of its
// service, IM-licensed, available, under capacity (their own, else the
// service's max_parallel_tasks, else 1), not flagged by RONA, not in
// after-call work, have every skill the task requires, and did not decline
// it within DeclineCooldown. Among eligible agents the longest idle goes
// first (idle: holding no task or offer, since their last task ended or
// they became available); agents holding tasks come after the idle ones,
// fewer tasks first. Tasks go by priority, then by time waited. The indexes
// in index.go keep one decision at O(P·log n).
package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	distributionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/distribution/v1"
	messagingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/messaging/v1"

	"github.com/switchboard-cc/switchboard/pkg/ids"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
	"github.com/switchboard-cc/switchboard/pkg/telemetry"
)

// Errors the gRPC adapter maps to status codes. Errors about a request's
// content wrap one of them with what was wrong.
var (
	ErrOfferNotOpen = errors.New("offer is no longer open")
	ErrNotYourOffer = errors.New("offer belongs to another agent")
	ErrUnknownAgent = errors.New("agent is not known to distribution")
	ErrNotEligible  = errors.New("user may not take IM tasks")
	ErrUnknownTask  = errors.New("task is not known to distribution")
	ErrNotYourTask  = errors.New("task belongs to another agent")
	// ErrTaskState: the task is not in a state that allows the request.
	ErrTaskState = errors.New("task state does not allow this")
	// ErrInvalid: the request's content is not acceptable (codes not in
	// the service's lists, priority out of range).
	ErrInvalid = errors.New("invalid request")
	// ErrAgentBusy: the agent named for a transfer cannot take a task now.
	ErrAgentBusy = errors.New("agent cannot take a task now")
	// ErrNotMember: the agent is not a member of the service.
	ErrNotMember = errors.New("agent is not a member of the service")
	// ErrAtCapacity: the agent holds as many tasks as they may.
	ErrAtCapacity = errors.New("agent is at capacity")
)

// Priorities: 0 is normal, higher is offered first.
const (
	MinPriority = 0
	MaxPriority = 1000
)

// Publisher sends one event durably (idempotent under msgID).
type Publisher interface {
	Emit(ctx context.Context, subject string, event proto.Message, msgID string) error
}

// AsyncPublisher is a Publisher that can also publish without waiting for
// the acknowledgement (wait reports it), so the engine overlaps an event
// with a store write. Publishes reach the server in call order.
type AsyncPublisher interface {
	Publisher
	EmitAsync(ctx context.Context, subject string, event proto.Message, msgID string) (wait func(context.Context) error, err error)
}

// TaskStore keeps tasks across restarts.
type TaskStore interface {
	Save(ctx context.Context, t *Task) error
	// Known reports whether a task was ever saved.
	Known(ctx context.Context, tenant, taskID string) (bool, error)
	// Get returns a saved task, nil if there is none.
	Get(ctx context.Context, tenant, taskID string) (*Task, error)
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
	Skills   []string
}

// ServiceInfo is what distribution needs to know about a service.
type ServiceInfo struct {
	ID               string
	Name             string
	RONATimeout      time.Duration
	MaxParallelTasks int
	// AfterCallWork blocks the agent after a session ends; 0: none.
	AfterCallWork time.Duration
	ServiceCodes  []string
	SalesCodes    []string
	Tags          []string
	// FirstReplyTimeout: after an accept, TaskReplyOverdue is published
	// when the agent has not replied within it; 0: no first-reply timer.
	FirstReplyTimeout time.Duration
	// FirstReplyRequeue: an overdue task is taken from its agent and
	// queued again at its place.
	FirstReplyRequeue bool
	// ParkedCounts: a parked task still counts toward its agent's
	// capacity (else parking frees a slot at once).
	ParkedCounts bool
	// PreferredAgentWithin: a task whose customer's chat an agent took
	// within it waits PreferredAgentWait (0: DefaultPreferredWait) for
	// that agent (see Task.PreferredAgent); 0: off.
	PreferredAgentWithin time.Duration
	PreferredAgentWait   time.Duration
	// OverflowAfter: a task that waited this long has its required skills
	// relaxed to those in OverflowSkills (none: all dropped); 0: off.
	OverflowAfter  time.Duration
	OverflowSkills []string
}

// DefaultPreferredWait is how long a task waits for its preferred agent
// when the service names no time.
const DefaultPreferredWait = 30 * time.Second

// TaskState is where a task is in its life.
type TaskState string

const (
	TaskQueued   TaskState = "queued"
	TaskOffered  TaskState = "offered"
	TaskAccepted TaskState = "accepted"
	TaskWrapping TaskState = "wrapping"
	// TaskParked: accepted and set aside by its agent until resumed.
	TaskParked    TaskState = "parked"
	TaskCompleted TaskState = "completed"
	TaskCanceled  TaskState = "canceled"
	// TaskEnded is what earlier versions stored for both outcomes.
	TaskEnded TaskState = "ended"
)

// Closed reports whether the task's life is over.
func (s TaskState) Closed() bool { return s == TaskCompleted || s == TaskCanceled || s == TaskEnded }

// OpenStates are the states of a task distribution still holds.
var OpenStates = []TaskState{TaskQueued, TaskOffered, TaskAccepted, TaskWrapping, TaskParked}

// held: accepted by an agent and not ended (active or parked).
func (s TaskState) held() bool { return s == TaskAccepted || s == TaskParked }

// Task is one session waiting for, or handled by, an agent.
type Task struct {
	ID             string
	Tenant         string
	SessionID      string
	ServiceID      string
	Conversation   *messagingv1.ConversationRef
	CustomerName   string
	Parameters     map[string]string // what the workflow collected (TaskRequested's), for the agent's desk
	Priority       int32
	RequiredSkills []string
	QueuedAt       time.Time
	State          TaskState
	AgentID        string
	AcceptedAt     time.Time
	WrapUntil      time.Time
	// Service snapshot taken when the task arrived (or was transferred).
	Service ServiceInfo
	// Note of the last transfer, for the next agent; Transfers counts them.
	Note      string
	Transfers int
	// ReplyDue: when the accepting agent's first reply is due (zero: no
	// first-reply timer). Replied: they replied; Overdue: TaskReplyOverdue
	// was published.
	ReplyDue time.Time
	Replied  bool
	Overdue  bool

	// OfferID and OfferExpires: the open offer of an offered task, stored
	// with it, so a replica that takes the task over keeps the offer (the
	// agent may still accept it) rather than offering the task again.
	OfferID      string
	OfferExpires time.Time
	// AcceptedOffer is the offer the task was accepted through, so a
	// retried Accept gets the same answer.
	AcceptedOffer string
	// Parks counts the task's parks; ParkCounts: while parked, it counts
	// toward its agent's capacity (the service's setting when parked).
	Parks      int
	ParkCounts bool
	// PreferredAgent: the customer's last agent, set by the caller of
	// Enqueue; the task is offered to them alone until PreferredUntil
	// while they can take it. Cleared when it falls through.
	PreferredAgent string
	PreferredUntil time.Time
	// Overflowed: the required skills were relaxed after the service's
	// OverflowAfter.
	Overflowed bool
	// Outbox: the events of the task's closing (completed or canceled),
	// stored with the closed task before the first of them is published,
	// so that they go out even when the replica that closed it fails in
	// between (see closing.go).
	Outbox []Event

	// Trace: the W3C traceparent of the request that queued the task,
	// stored with it; its offers continue that trace, whatever made them
	// and on whichever replica.
	Trace string

	// announce: TaskAccepted may not have gone out (its publish failed,
	// or the task was loaded accepted moments after the accept): Tick
	// publishes it again, under its id, until it does (announce.go).
	announce bool

	declined map[string]time.Time
	// queuedSent: TaskQueued was published by this process. A restored
	// task has it unset, so a redelivered request (the one whose handling
	// the restart cut short) publishes it again under the same id.
	queuedSent bool
	// unrecorded: a closed task loaded from the bucket of open tasks,
	// whose record (MongoDB) may not have been written.
	unrecorded bool
	pool       *pool // while queued
	wrapTimer  *time.Timer
	replyTimer *time.Timer
	// Timers of the preferred agent's wait and of the overflow.
	preferTimer, overflowTimer *time.Timer
}

type offer struct {
	id      string
	task    *Task
	agentID string
	expires time.Time
	timer   *time.Timer
	// timedOut: its RONA timer fired and its event is not out yet; it can
	// no longer be accepted or declined.
	timedOut bool
}

type agent struct {
	info     AgentInfo
	presence distributionv1.Presence
	rona     bool
	active   map[string]*Task // accepted, not ended
	offers   map[string]*offer
	wrapping map[string]*Task // in after-call work
	// since: when the agent's load last changed or they became available;
	// while they hold nothing, the time they have been idle since.
	since time.Time
	// The sort key the agent has in the pools it is in (see refresh).
	kLoad  int
	kSince time.Time
	pools  map[*pool]struct{}
	// A running grace period (see PresenceOptions.Grace): the presence the
	// agent had before their console closed, and until when it holds.
	graceUntil    time.Time
	gracePresence distributionv1.Presence
	graceTimer    *time.Timer
	// setAt: when the agent's presence was last set (by anyone); a
	// console's close reported after it (ConsoleClosed) is stale.
	setAt time.Time
}

// load: offers and accepted tasks, less parked ones that do not count.
func (a *agent) load() int {
	n := len(a.active) + len(a.offers)
	for _, task := range a.active {
		if task.State == TaskParked && !task.ParkCounts {
			n--
		}
	}
	return n
}

type tenant struct {
	queues   map[string]*queue // service id -> queue
	tasks    map[string]*Task  // task id -> task (not closed)
	sessions map[string]*Task  // session id -> task
	agents   map[string]*agent
	offers   map[string]*offer
	accepted map[string]*Task // offer id -> task accepted through it (not closed)
	// closing: closed tasks whose stored closing events are not all out
	// yet (task id -> task).
	closing map[string]*Task
}

// Engine is safe for concurrent use.
type Engine struct {
	mu      sync.Mutex
	tenants map[string]*tenant
	pub     Publisher
	store   TaskStore
	log     *slog.Logger
	now     func() time.Time
	// afterFunc starts every timer (RONA, after-call work, first reply,
	// grace, preferred agent, overflow): time.AfterFunc, which tests
	// replace to run timers when their clock says so.
	afterFunc func(time.Duration, func()) *time.Timer
	// DeclineCooldown keeps a declining agent from being offered the same
	// task again right away.
	DeclineCooldown time.Duration
	closed          bool
	presence        PresenceOptions
	// wake is closed (and replaced) on every change watchers may see.
	wake chan struct{}
	// open: the store's offer-keeping side, when it has one.
	open OpenTaskStore
	// partitions (0: ownership off, every tenant is held), the partitions
	// held, and the tenants being reloaded after a conflict.
	partitions int
	owned      map[int]bool
	reloading  map[string]bool
	// lastAgents records who took a customer's chat (nil: nowhere).
	lastAgents LastAgents
	// async: the publisher's non-waiting side, when it has one.
	async AsyncPublisher
	// accepts waiting to be handled together (accept.go).
	acceptMu  sync.Mutex
	acceptQ   []*acceptReq
	accepting bool
}

// New returns an engine.
func New(pub Publisher, store TaskStore, log *slog.Logger) *Engine {
	e := &Engine{
		tenants:         map[string]*tenant{},
		log:             log,
		now:             time.Now,
		afterFunc:       time.AfterFunc,
		DeclineCooldown: 30 * time.Second,
		wake:            make(chan struct{}),
	}
	e.pub = signaling{pub, e}
	e.async, _ = pub.(AsyncPublisher)
	e.store = conflictWatch{store, e}
	e.open, _ = store.(OpenTaskStore)
	return e
}

// signaling wakes watchers on every event (published under e.mu).
type signaling struct {
	Publisher
	e *Engine
}

func (s signaling) Emit(ctx context.Context, subject string, event proto.Message, msgID string) error {
	err := s.Publisher.Emit(ctx, subject, event, msgID)
	s.e.signal()
	return err
}

// emitStart publishes an event and returns the wait for its
// acknowledgement (under e.mu): without waiting when the publisher can,
// else having waited.
func (e *Engine) emitStart(ctx context.Context, subject string, event proto.Message, msgID string) (wait func(context.Context) error) {
	if e.async == nil {
		err := e.pub.Emit(ctx, subject, event, msgID)
		return func(context.Context) error { return err }
	}
	w, err := e.async.EmitAsync(ctx, subject, event, msgID)
	if err != nil {
		return func(context.Context) error { return err }
	}
	return func(ctx context.Context) error {
		err := w(ctx)
		e.signal()
		return err
	}
}

// signal wakes the watchers (under e.mu).
func (e *Engine) signal() {
	close(e.wake)
	e.wake = make(chan struct{})
}

// Changes returns a channel closed at the next change of any tenant's
// tasks or agents.
func (e *Engine) Changes() <-chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.wake
}

func (e *Engine) tenant(id string) *tenant {
	t := e.tenants[id]
	if t == nil {
		t = &tenant{
			queues:   map[string]*queue{},
			tasks:    map[string]*Task{},
			sessions: map[string]*Task{},
			agents:   map[string]*agent{},
			offers:   map[string]*offer{},
			accepted: map[string]*Task{},
			closing:  map[string]*Task{},
		}
		e.tenants[id] = t
	}
	return t
}

// Restore loads open tasks after a restart: offered tasks go back to the
// queue (their timers are gone), accepted ones keep counting against their
// agent's capacity once the agent is back, and after-call work resumes for
// what is left of it.
func (e *Engine) Restore(ctx context.Context) (int, error) {
	open, err := e.store.LoadOpen(ctx)
	if err != nil {
		return 0, fmt.Errorf("load open tasks: %w", err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.installTasks(open, e.now())
	return len(open), nil
}

// installTasks puts loaded open tasks in place. An offer goes on (its
// agent may accept it) when the store kept it, with the time it has left;
// else the task is queued again.
func (e *Engine) installTasks(open []*Task, now time.Time) {
	for _, task := range open {
		t := e.tenant(task.Tenant)
		if task.State.Closed() {
			// Closed, its events maybe not all out: installLocked
			// finishes it.
			task.unrecorded = true
			t.closing[task.ID] = task
			continue
		}
		t.tasks[task.ID] = task
		t.sessions[task.SessionID] = task
		task.declined = map[string]time.Time{}
		task.RequiredSkills = normSkills(task.RequiredSkills)
		if task.AcceptedOffer != "" && (task.State.held() || task.State == TaskWrapping) {
			t.accepted[task.AcceptedOffer] = task
		}
		switch task.State {
		case TaskAccepted, TaskParked:
			t.agentOrStub(task.AgentID, now).active[task.ID] = task
			e.startReplyTimer(task, task.ReplyDue.Sub(now))
			task.announce = recentlyAccepted(task, now)
		case TaskWrapping:
			t.agentOrStub(task.AgentID, now).wrapping[task.ID] = task
			e.startWrapTimer(task, task.WrapUntil.Sub(now))
		case TaskOffered:
			if task.OfferID != "" && task.AgentID != "" && !task.OfferExpires.IsZero() {
				// An offer that ran out while no replica held the tenant
				// runs out now (its timer fires at once), as it would have
				// on the holder: TaskOfferTimedOut, the agent flagged, the
				// task back at its place. Queued again silently, it was
				// offered anew while the first offer stayed on its agent's
				// console, answered by no event.
				a := t.agentOrStub(task.AgentID, now)
				o := &offer{id: task.OfferID, task: task, agentID: task.AgentID, expires: task.OfferExpires}
				tenantID, oid := task.Tenant, o.id
				o.timer = e.afterFunc(max(task.OfferExpires.Sub(now), 0), func() { e.timeout(tenantID, oid) })
				t.offers[o.id] = o
				a.offers[o.id] = o
				e.queue(t, task.Service)
				break
			}
			e.restoreQueued(t, task)
		default:
			e.restoreQueued(t, task)
		}
	}
}

func (e *Engine) restoreQueued(t *tenant, task *Task) {
	task.State, task.AgentID, task.OfferID, task.OfferExpires = TaskQueued, "", "", time.Time{}
	e.push(t, task)
	e.startWaitTimers(task)
}

func (t *tenant) agentOrStub(id string, now time.Time) *agent {
	a := t.agents[id]
	if a == nil {
		a = &agent{
			info: AgentInfo{ID: id}, presence: distributionv1.Presence_PRESENCE_OFFLINE, since: now,
			active: map[string]*Task{}, offers: map[string]*offer{}, wrapping: map[string]*Task{}, pools: map[*pool]struct{}{},
		}
		t.agents[id] = a
	}
	return a
}

// Enqueue adds a task and dispatches. A task id seen before, or a task of a
// session that already ended, is ignored: requests may be redelivered, and
// the session's end may overtake its task request. A priority out of range
// is brought into it (the request comes from a workflow, not a person).
func (e *Engine) Enqueue(ctx context.Context, task *Task) error {
	return e.EnqueueBatch(ctx, []*Task{task})[0]
}

// EnqueueBatch is Enqueue for several task requests at once, in their
// order, with one round of the stores' reads and one of their writes for
// all of them rather than one per task; the error at i is task i's.
func (e *Engine) EnqueueBatch(ctx context.Context, tasks []*Task) []error {
	errs := make([]error, len(tasks))
	// The checks run under the lock: EndSession records the end before it
	// takes the lock, so either the check sees the end or EndSession finds
	// the task queued here and cancels it. Checked outside the lock, an end
	// processed in between would leave the task on offer for good.
	e.mu.Lock()
	defer e.mu.Unlock()
	type fresh struct {
		i                int
		task             *Task
		known, ended     bool
		knownErr, endErr error
	}
	var news []*fresh
	inBatch := map[string]bool{}
	touched := map[string]bool{}
	for i, task := range tasks {
		if err := e.mine(task.Tenant); err != nil {
			errs[i] = err
			continue
		}
		t := e.tenant(task.Tenant)
		if open, ok := t.tasks[task.ID]; ok {
			if !open.queuedSent {
				// An earlier delivery failed to publish TaskQueued and
				// asked for this redelivery: finish its work.
				errs[i] = e.queued(ctx, t, open)
			}
			continue
		}
		if task.Trace == "" { // a batch's tasks come with their own
			task.Trace = telemetry.TraceParent(ctx)
		}
		if k := task.Tenant + "/" + task.ID; !inBatch[k] {
			inBatch[k] = true // a second copy in the batch is the first's
			news = append(news, &fresh{i: i, task: task})
		}
	}
	// Two reads by key per new task, every one at once.
	var wg sync.WaitGroup
	for _, f := range news {
		wg.Go(func() { f.ended, f.endErr = e.store.SessionEnded(ctx, f.task.Tenant, f.task.SessionID) })
		wg.Go(func() { f.known, f.knownErr = e.store.Known(ctx, f.task.Tenant, f.task.ID) })
	}
	wg.Wait()
	var queued []*fresh
	for _, f := range news {
		task := f.task
		switch {
		case f.knownErr != nil:
			errs[f.i] = fmt.Errorf("look up task %s: %w", task.ID, f.knownErr)
			continue
		case f.endErr != nil:
			errs[f.i] = fmt.Errorf("look up session %s: %w", task.SessionID, f.endErr)
			continue
		case f.known || f.ended:
			continue
		}
		e.admit(task)
		queued = append(queued, f)
	}
	// TaskQueued goes out while the task is stored: the request is
	// acknowledged only once both are durable, and a failure of either
	// asks for its redelivery, which comes back here (the event under the
	// same id, so JetStream keeps one).
	waits := make([]func(context.Context) error, len(queued))
	saveErrs := make([]error, len(queued))
	for j, f := range queued {
		waits[j] = e.emitStart(ctx, subjects.TaskQueued(f.task.Tenant), queuedEvent(f.task), "queued:"+f.task.ID)
	}
	for j, f := range queued {
		wg.Go(func() { saveErrs[j] = e.rawStore().Save(ctx, f.task) })
	}
	wg.Wait()
	for j, f := range queued {
		task, t := f.task, e.tenant(f.task.Tenant)
		if err := saveErrs[j]; err != nil {
			if errors.Is(err, ErrConflict) {
				e.staleLocked(task.Tenant)
			}
			_ = waits[j](ctx)
			e.pull(task)
			e.forget(t, task)
			errs[f.i] = fmt.Errorf("save task %s: %w", task.ID, err)
			continue
		}
		e.startWaitTimers(task)
		if err := waits[j](ctx); err != nil {
			errs[f.i] = err
			continue
		}
		task.queuedSent = true
		touched[task.Tenant] = true
	}
	for tenantID := range touched {
		e.dispatch(ctx, tenantID)
	}
	return errs
}

// admit puts a new task in its tenant's maps and its queue (under e.mu).
func (e *Engine) admit(task *Task) {
	t := e.tenant(task.Tenant)
	if p := min(max(task.Priority, MinPriority), MaxPriority); p != task.Priority {
		e.log.Warn("task priority out of range; clamped", "tenant", task.Tenant, "task", task.ID, "priority", task.Priority, "clamped_to", p)
		task.Priority = p
	}
	task.State = TaskQueued
	task.RequiredSkills = normSkills(task.RequiredSkills)
	task.declined = map[string]time.Time{}
	if task.QueuedAt.IsZero() {
		task.QueuedAt = e.now()
	}
	if task.PreferredAgent != "" {
		wait := task.Service.PreferredAgentWait
		if wait <= 0 {
			wait = DefaultPreferredWait
		}
		task.PreferredUntil = e.now().Add(wait)
	}
	t.tasks[task.ID] = task
	t.sessions[task.SessionID] = task
	e.queue(t, task.Service) // the newest settings of the service
	e.push(t, task)
}

// rawStore is the task store without the conflict watch, for writes made
// at once from several goroutines: their caller reports conflicts
// (staleLocked) once they are all back, under e.mu.
func (e *Engine) rawStore() TaskStore {
	if cw, ok := e.store.(conflictWatch); ok {
		return cw.TaskStore
	}
	return e.store
}

func queuedEvent(task *Task) *distributionv1.TaskQueued {
	return &distributionv1.TaskQueued{
		TenantId: task.Tenant, TaskId: task.ID, SessionId: task.SessionID, ServiceId: task.ServiceID,
		Position: position(task), QueuedAt: timestamppb.New(task.QueuedAt), // 0: no longer waiting (a redelivery after an offer)
		Priority: task.Priority, RequiredSkills: task.RequiredSkills,
	}
}

// queued publishes TaskQueued and dispatches. On a publish error the task
// stays queued and the error asks for a redelivery of the request, which
// comes back here.
func (e *Engine) queued(ctx context.Context, t *tenant, task *Task) error {
	if err := e.pub.Emit(ctx, subjects.TaskQueued(task.Tenant), queuedEvent(task), "queued:"+task.ID); err != nil {
		return err
	}
	task.queuedSent = true
	e.dispatch(ctx, task.Tenant)
	return nil
}

// SetPresence records an agent's presence (and what config says about
// them); available clears RONA and, coming from another presence, starts
// the agent's idle time. Available within a grace period (ConsoleClosed)
// resumes the agent as they were.
func (e *Engine) SetPresence(ctx context.Context, tenantID string, info AgentInfo, p distributionv1.Presence) (*distributionv1.AgentState, error) {
	return e.setPresence(ctx, tenantID, info, p, false, time.Time{})
}

// ConsoleClosed is the sessions gateway saying the agent's last console
// closed at closedAt: with a grace period the agent is offline pending (no
// offers, but their place kept) until it runs out; without one, offline at
// once. A close older than the agent's last presence change is ignored:
// the gateway's report of a dropped socket can arrive, retried, after the
// agent reconnected (to any replica) and set themselves available again.
// closedAt zero: applied whatever came since.
func (e *Engine) ConsoleClosed(ctx context.Context, tenantID string, info AgentInfo, closedAt time.Time) (*distributionv1.AgentState, error) {
	return e.setPresence(ctx, tenantID, info, distributionv1.Presence_PRESENCE_OFFLINE, true, closedAt)
}

// setPresence sets an agent's presence; closed: the gateway reporting
// their console closed at closedAt (zero: whenever).
func (e *Engine) setPresence(ctx context.Context, tenantID string, info AgentInfo, p distributionv1.Presence, closed bool, closedAt time.Time) (*distributionv1.AgentState, error) {
	if p == distributionv1.Presence_PRESENCE_AVAILABLE && !info.Eligible {
		return nil, ErrNotEligible
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.mine(tenantID); err != nil {
		return nil, err
	}
	t := e.tenant(tenantID)
	now := e.now()
	a := t.agentOrStub(info.ID, now)
	if closed && !closedAt.IsZero() && a.setAt.After(closedAt) {
		// Reported after the agent set their presence again: stale.
		return e.stateLocked(tenantID, t, a), nil
	}
	prev := *a
	info.Skills = normSkills(info.Skills)
	a.info = info
	a.setAt = now
	graced := false
	switch {
	case closed && e.presence.Grace > 0 && a.presence != distributionv1.Presence_PRESENCE_OFFLINE:
		a.graceUntil, a.gracePresence = now.Add(e.presence.Grace), a.presence
		graced = true
	case closed && !a.graceUntil.IsZero():
		graced = true // a repeat: the grace keeps running
	default:
		// Back within the grace as they were: their idle time goes on.
		if !a.graceUntil.IsZero() && now.Before(a.graceUntil) && a.gracePresence == p {
			a.presence = p
		}
		a.graceUntil, a.gracePresence = time.Time{}, 0
	}
	if p == distributionv1.Presence_PRESENCE_AVAILABLE {
		a.rona = false
		if a.presence != p {
			a.since = now
		}
	}
	a.presence = p
	if err := e.persist(ctx, tenantID, a); err != nil {
		timer := a.graceTimer
		*a = prev
		a.graceTimer = timer
		return nil, err
	}
	if graced {
		if a.graceTimer == nil || !a.graceUntil.Equal(prev.graceUntil) {
			e.startGraceTimer(tenantID, a, a.graceUntil.Sub(now))
		}
	} else if a.graceTimer != nil {
		a.graceTimer.Stop()
		a.graceTimer = nil
	}
	e.refresh(t, a)
	e.dispatch(ctx, tenantID)
	e.signal()
	return e.stateLocked(tenantID, t, a), nil
}

// acceptedEvent is TaskAccepted for an accepted task (published under the
// id acceptedID).
func acceptedEvent(task *Task) *distributionv1.TaskAccepted {
	return &distributionv1.TaskAccepted{
		TenantId: task.Tenant, TaskId: task.ID, SessionId: task.SessionID, ServiceId: task.ServiceID,
		AgentId: task.AgentID, OfferId: task.AcceptedOffer, AcceptedAt: timestamppb.New(task.AcceptedAt),
	}
}

// acceptedID: <offer>:accepted, or <task>:accepted for a task an agent
// started (accepted through no offer).
func acceptedID(task *Task) string {
	if task.AcceptedOffer == "" {
		return task.ID + ":accepted"
	}
	return task.AcceptedOffer + ":accepted"
}

// Decline puts the task back in the queue, ahead of later arrivals.
func (e *Engine) Decline(ctx context.Context, tenantID, agentID, offerID string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.mine(tenantID); err != nil {
		return err
	}
	t := e.tenant(tenantID)
	o, ok := t.offers[offerID]
	if !ok || o.timedOut {
		return ErrOfferNotOpen
	}
	if o.agentID != agentID {
		return ErrNotYourOffer
	}
	task := o.task
	now := e.now()
	// The event first: refused, nothing changes and the agent declines
	// again; the task is never offered again before its decline is out.
	if err := e.pub.Emit(ctx, subjects.TaskDeclined(tenantID), &distributionv1.TaskDeclined{
		TenantId: tenantID, TaskId: task.ID, SessionId: task.SessionID, ServiceId: task.ServiceID,
		AgentId: agentID, OfferId: offerID, DeclinedAt: timestamppb.New(now),
	}, offerID+":declined"); err != nil {
		return err
	}
	task.declined[agentID] = now
	e.closeOffer(t, o, true)
	e.requeueStored(ctx, t, task)
	e.dispatch(ctx, tenantID)
	return nil
}

// timeout is the RONA timer firing.
func (e *Engine) timeout(tenantID, offerID string) {
	ctx := context.Background()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed || e.mine(tenantID) != nil {
		return
	}
	t := e.tenant(tenantID)
	o, ok := t.offers[offerID]
	if !ok {
		return // answered in the meantime
	}
	task := o.task
	now := e.now()
	o.timedOut = true
	// The event first: refused, the task stays with this offer (no longer
	// open to its agent) and the timer fires again shortly. Offered to the
	// next agent before its RONA is out, the two offers would look open at
	// once on the stream, and the first agent's console would keep the
	// card.
	if err := e.pub.Emit(ctx, subjects.TaskOfferTimedOut(tenantID), &distributionv1.TaskOfferTimedOut{
		TenantId: tenantID, TaskId: task.ID, SessionId: task.SessionID, ServiceId: task.ServiceID,
		AgentId: o.agentID, OfferId: offerID, TimedOutAt: timestamppb.New(now),
	}, offerID+":rona"); err != nil {
		e.log.Error("publish rona; retrying", "tenant", tenantID, "task", task.ID, "err", err)
		o.timer = e.afterFunc(ronaRetry, func() { e.timeout(tenantID, offerID) })
		return
	}
	if a := t.agents[o.agentID]; a != nil {
		a.rona = true
		if err := e.persist(ctx, tenantID, a); err != nil {
			// The flag holds in memory; a restart forgets it.
			e.log.Error("save rona flag", "tenant", tenantID, "agent", o.agentID, "err", err)
		}
	}
	e.closeOffer(t, o, true)
	e.requeueStored(ctx, t, task)
	if q := t.queues[task.ServiceID]; q != nil {
		q.ronas = append(trim(q.ronas, now), now)
	}
	e.dispatch(ctx, tenantID)
}

// ronaRetry is the wait before a RONA whose event was refused is tried
// again.
const ronaRetry = 500 * time.Millisecond

// EndSession releases whatever the session holds: a queued or offered task
// is canceled; an accepted one goes into after-call work when its service
// has any (its agent gets no offers meanwhile), else it is completed and
// frees its agent.
func (e *Engine) EndSession(ctx context.Context, tenantID, sessionID, reason string) (err error) {
	return e.EndSessions(ctx, []SessionEnd{{Tenant: tenantID, SessionID: sessionID, Reason: reason}})[0]
}

// SessionEnd is one session's end for EndSessions.
type SessionEnd struct{ Tenant, SessionID, Reason string }

// EndSessions is EndSession for several sessions at once, in their order;
// the error at i is ends[i]'s. The tasks that close (canceled, or
// completed without after-call work) are closed together: one round of
// writes for all of them, their events pipelined, one round of removals,
// then one dispatch; anything else is handled as EndSession does alone.
func (e *Engine) EndSessions(ctx context.Context, ends []SessionEnd) []error {
	errs := make([]error, len(ends))
	// The end is recorded while the task is ended, and waited for before
	// the lock is released: an Enqueue that takes the lock after this
	// sees the end, and one before it queued the task this finds.
	marks := make([]error, len(ends))
	var marking sync.WaitGroup
	for i, end := range ends {
		marking.Go(func() { marks[i] = e.store.MarkSessionEnded(ctx, end.Tenant, end.SessionID) })
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	defer func() {
		marking.Wait()
		for i, merr := range marks {
			if merr != nil && errs[i] == nil {
				errs[i] = fmt.Errorf("mark session %s ended: %w", ends[i].SessionID, merr)
			}
		}
	}()
	var closes []*closing
	first := map[string]int{} // tenant/session -> its first end in ends
	touched := map[string]bool{}
	var again []int // later copies of an end: the first's outcome
	for i, end := range ends {
		k := end.Tenant + "/" + end.SessionID
		if _, dup := first[k]; dup {
			again = append(again, i)
			continue
		}
		first[k] = i
		if err := e.mine(end.Tenant); err != nil {
			errs[i] = err
			continue
		}
		t := e.tenant(end.Tenant)
		task, ok := t.sessions[end.SessionID]
		switch {
		case ok && (task.State == TaskQueued || task.State == TaskOffered):
			closes = append(closes, e.prepareCancel(t, task, end.Reason, i))
		case ok && task.State.held() && task.Service.AfterCallWork <= 0:
			closes = append(closes, e.prepareComplete(t, task, nil, i))
		default:
			errs[i] = e.endSessionLocked(ctx, t, end.Tenant, end.SessionID)
		}
	}
	for i, err := range e.closeAll(ctx, closes) {
		errs[closes[i].ref] = err
		if err == nil {
			touched[closes[i].task.Tenant] = true
		}
	}
	for _, i := range again {
		errs[i] = errs[first[ends[i].Tenant+"/"+ends[i].SessionID]]
	}
	for tenantID := range touched {
		e.dispatch(ctx, tenantID)
	}
	return errs
}

// endSessionLocked is EndSession alone, for a session whose task does not
// simply close (none, closing, wrapping, or going into after-call work).
func (e *Engine) endSessionLocked(ctx context.Context, t *tenant, tenantID, sessionID string) error {
	task, ok := t.sessions[sessionID]
	if !ok {
		// Closed already, by an earlier delivery of this end (here, or on
		// the replica that held the tenant before) that may have failed
		// before its events were out: send them now.
		if c := t.closingOf(sessionID); c != nil {
			if err := e.finish(ctx, t, c); err != nil {
				return err
			}
			e.dispatch(ctx, tenantID) // what the failed delivery could not
		}
		return nil
	}
	switch task.State {
	case TaskAccepted, TaskParked:
		if err := e.startWrapUp(ctx, t, task); err != nil {
			return err
		}
	case TaskWrapping:
		// A redelivery: publish again what may not have gone out (the same
		// msg id, so JetStream drops a repeat).
		return e.emitWrapUpStarted(ctx, task)
	}
	e.dispatch(ctx, tenantID)
	return nil
}

// closing is a task on its way out: its last events decided and not yet
// stored. ref is the caller's index of it.
type closing struct {
	t    *tenant
	task *Task
	prev TaskState
	o    *offer // cancel: the open offer, if any
	done bool   // complete rather than cancel
	now  time.Time
	ref  int
	err  error // its store's or its events' failure
}

// prepareCancel decides a queued or offered task's cancel (in memory).
func (e *Engine) prepareCancel(t *tenant, task *Task, reason string, ref int) *closing {
	c := &closing{t: t, task: task, prev: task.State, now: e.now(), ref: ref}
	if task.OfferID != "" {
		c.o = t.offers[task.OfferID]
	}
	ev := &distributionv1.TaskCanceled{
		TenantId: task.Tenant, TaskId: task.ID, SessionId: task.SessionID, ServiceId: task.ServiceID,
		Reason: reason, CanceledAt: timestamppb.New(c.now),
	}
	if c.o != nil {
		ev.AgentId, ev.OfferId = c.o.agentID, c.o.id
	}
	task.State = TaskCanceled
	task.Outbox = []Event{{Subject: subjects.TaskCanceled(task.Tenant), Message: ev, MsgID: task.ID + ":canceled"}}
	return c
}

// prepareComplete decides an accepted or wrapping task's completion (in
// memory); wrapUp, when set, is published first.
func (e *Engine) prepareComplete(t *tenant, task *Task, wrapUp *distributionv1.TaskWrapUpEnded, ref int) *closing {
	c := &closing{t: t, task: task, prev: task.State, now: e.now(), done: true, ref: ref}
	var outbox []Event
	if wrapUp != nil {
		wrapUp.EndedAt = timestamppb.New(c.now)
		outbox = append(outbox, Event{Subject: subjects.TaskWrapUpEnded(task.Tenant), Message: wrapUp, MsgID: task.ID + ":wrapup_ended"})
	}
	ev := &distributionv1.TaskCompleted{
		TenantId: task.Tenant, TaskId: task.ID, SessionId: task.SessionID, ServiceId: task.ServiceID, AgentId: task.AgentID,
		CompletedAt: timestamppb.New(c.now),
	}
	if !task.AcceptedAt.IsZero() {
		ev.HandleTime = durationpb.New(c.now.Sub(task.AcceptedAt))
	}
	outbox = append(outbox, Event{Subject: subjects.TaskCompleted(task.Tenant), Message: ev, MsgID: task.ID + ":completed"})
	task.State, task.Outbox = TaskCompleted, outbox
	return c
}

// closeAll stores the closing tasks with their events (all at once), takes
// them out of distribution, and finishes them: their events published
// (pipelined, in order), then their removal from the open tasks (all at
// once). The error at i is closes[i]'s: a failed write undoes its close
// (the end is redelivered); a failure after it leaves the task closing,
// finished again by a redelivery or the next Tick.
func (e *Engine) closeAll(ctx context.Context, closes []*closing) []error {
	var wg sync.WaitGroup
	for _, c := range closes {
		wg.Go(func() { c.err = e.rawStore().Save(ctx, c.task) })
	}
	wg.Wait()
	var out []*closing
	for _, c := range closes {
		task, t := c.task, c.t
		if c.err != nil {
			if errors.Is(c.err, ErrConflict) {
				e.staleLocked(task.Tenant)
			}
			task.State, task.Outbox = c.prev, nil
			c.err = fmt.Errorf("save task %s: %w", task.ID, c.err)
			continue
		}
		if c.done {
			e.release(t, task, c.now)
		} else {
			if c.o != nil {
				e.closeOffer(t, c.o, false)
			}
			e.pull(task)
			e.forget(t, task)
		}
		t.closing[task.ID] = task
		out = append(out, c)
	}
	e.finishAll(ctx, out)
	errs := make([]error, len(closes))
	for i, c := range closes {
		errs[i] = c.err
	}
	return errs
}

// finishAll is finish for several closing tasks: every event of every
// task goes out pipelined, then the tasks whose events are all out leave
// the open tasks at once. A task whose events did not all go out keeps
// the error (and stays closing, to be sent again later).
func (e *Engine) finishAll(ctx context.Context, out []*closing) {
	waits := make([][]func(context.Context) error, len(out))
	for j, c := range out {
		for _, ev := range c.task.Outbox {
			waits[j] = append(waits[j], e.emitStart(ctx, ev.Subject, ev.Message, ev.MsgID))
		}
	}
	var sent []*closing
	for j, c := range out {
		for _, w := range waits[j] {
			if err := w(ctx); err != nil && c.err == nil {
				c.err = err
			}
		}
		if c.err == nil {
			sent = append(sent, c)
		}
	}
	if e.open == nil {
		for _, c := range sent {
			delete(c.t.closing, c.task.ID)
		}
		return
	}
	removed := make([]error, len(sent))
	var wg sync.WaitGroup
	for j, c := range sent {
		wg.Go(func() { removed[j] = e.open.RemoveOpen(ctx, c.task) })
	}
	wg.Wait()
	for j, c := range sent {
		switch err := removed[j]; {
		case errors.Is(err, ErrConflict):
			e.staleLocked(c.task.Tenant)
		case err != nil:
			// The events are out; the next Tick removes it (sending them
			// again under the same ids).
			e.log.WarnContext(ctx, "remove closed task from the open tasks; retrying", "tenant", c.task.Tenant, "task", c.task.ID, "err", err)
			continue
		}
		delete(c.t.closing, c.task.ID)
	}
}

// cancel takes a queued or offered task out of distribution.
func (e *Engine) cancel(ctx context.Context, t *tenant, task *Task, reason string) error {
	c := e.prepareCancel(t, task, reason, 0)
	return e.closeAll(ctx, []*closing{c})[0]
}

func (e *Engine) forget(t *tenant, task *Task) {
	stopWaitTimers(task)
	delete(t.tasks, task.ID)
	if t.sessions[task.SessionID] == task {
		delete(t.sessions, task.SessionID)
	}
	delete(t.accepted, task.AcceptedOffer)
}

// startWrapUp moves an accepted task into after-call work.
func (e *Engine) startWrapUp(ctx context.Context, t *tenant, task *Task) error {
	now := e.now()
	prev := task.State
	task.State, task.WrapUntil = TaskWrapping, now.Add(task.Service.AfterCallWork)
	if err := e.store.Save(ctx, task); err != nil {
		task.State, task.WrapUntil = prev, time.Time{}
		return fmt.Errorf("save task %s: %w", task.ID, err)
	}
	a := t.agentOrStub(task.AgentID, now)
	delete(a.active, task.ID)
	a.wrapping[task.ID] = task
	stopReplyTimer(task)
	e.touch(t, a, now)
	e.startWrapTimer(task, task.Service.AfterCallWork)
	return e.emitWrapUpStarted(ctx, task)
}

func (e *Engine) emitWrapUpStarted(ctx context.Context, task *Task) error {
	return e.pub.Emit(ctx, subjects.TaskWrapUpStarted(task.Tenant), &distributionv1.TaskWrapUpStarted{
		TenantId: task.Tenant, TaskId: task.ID, SessionId: task.SessionID, ServiceId: task.ServiceID, AgentId: task.AgentID,
		StartedAt: timestamppb.New(task.WrapUntil.Add(-task.Service.AfterCallWork)), EndsAt: timestamppb.New(task.WrapUntil),
	}, task.ID+":wrapup_started")
}

func (e *Engine) startWrapTimer(task *Task, d time.Duration) {
	tenantID, taskID, until := task.Tenant, task.ID, task.WrapUntil
	task.wrapTimer = e.afterFunc(max(d, 0), func() { e.wrapUpExpired(tenantID, taskID, until) })
}

// wrapUpExpired is the after-call work timer running out.
func (e *Engine) wrapUpExpired(tenantID, taskID string, until time.Time) {
	ctx := context.Background()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed || e.mine(tenantID) != nil {
		return
	}
	t := e.tenant(tenantID)
	task := t.tasks[taskID]
	if task == nil || task.State != TaskWrapping || !task.WrapUntil.Equal(until) {
		return // submitted in the meantime
	}
	if err := e.endWrapUp(ctx, t, task, false, nil, nil, nil); err != nil {
		// The store or the broker is down: try again shortly.
		e.log.Error("end after-call work; retrying", "tenant", tenantID, "task", taskID, "err", err)
		e.startWrapTimer(task, 5*time.Second)
		return
	}
	e.dispatch(ctx, tenantID)
}

// SubmitWrapUp ends a task's after-call work with codes and tags from its
// service's lists. The task is named by id or by session; agentID, when
// set, must be the agent wrapping it up.
func (e *Engine) SubmitWrapUp(ctx context.Context, tenantID, agentID, taskID, sessionID string, serviceCodes, salesCodes, tags []string) (*distributionv1.Task, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.mine(tenantID); err != nil {
		return nil, err
	}
	t := e.tenant(tenantID)
	task, err := e.openTask(ctx, t, tenantID, taskID, sessionID)
	if err != nil {
		return nil, err
	}
	if task.State != TaskWrapping {
		return nil, fmt.Errorf("%w: task %s is %s, not in after-call work", ErrTaskState, task.ID, task.State)
	}
	if agentID != "" && task.AgentID != agentID {
		return nil, ErrNotYourTask
	}
	svc := task.Service
	for _, c := range []struct {
		what       string
		got, valid []string
	}{{"service code", serviceCodes, svc.ServiceCodes}, {"sales code", salesCodes, svc.SalesCodes}, {"tag", tags, svc.Tags}} {
		for _, v := range c.got {
			if !slices.Contains(c.valid, v) {
				return nil, fmt.Errorf("%w: %s %q is not one of service %s's %q", ErrInvalid, c.what, v, svc.ID, c.valid)
			}
		}
	}
	if err := e.endWrapUp(ctx, t, task, true, serviceCodes, salesCodes, tags); err != nil {
		return nil, err
	}
	e.dispatch(ctx, tenantID)
	return e.view(task), nil
}

// endWrapUp completes a task in after-call work and frees its agent.
func (e *Engine) endWrapUp(ctx context.Context, t *tenant, task *Task, submitted bool, serviceCodes, salesCodes, tags []string) error {
	sorted := func(xs []string) []string { return slices.Compact(slices.Sorted(slices.Values(xs))) }
	return e.complete(ctx, t, task, &distributionv1.TaskWrapUpEnded{
		TenantId: task.Tenant, TaskId: task.ID, SessionId: task.SessionID, ServiceId: task.ServiceID, AgentId: task.AgentID,
		Submitted: submitted, ServiceCodes: sorted(serviceCodes), SalesCodes: sorted(salesCodes), Tags: sorted(tags),
	})
}

// complete closes an accepted or wrapping task and frees its agent;
// wrapUp, when set, is published first.
func (e *Engine) complete(ctx context.Context, t *tenant, task *Task, wrapUp *distributionv1.TaskWrapUpEnded) error {
	c := e.prepareComplete(t, task, wrapUp, 0)
	return e.closeAll(ctx, []*closing{c})[0]
}

// release frees a completed task's agent and takes the task out of
// distribution (in memory, once its close is stored).
func (e *Engine) release(t *tenant, task *Task, now time.Time) {
	if task.wrapTimer != nil {
		task.wrapTimer.Stop()
	}
	stopReplyTimer(task)
	if a := t.agents[task.AgentID]; a != nil {
		delete(a.active, task.ID)
		delete(a.wrapping, task.ID)
		e.touch(t, a, now)
	}
	e.forget(t, task)
	e.recordLastAgent(task, now)
	if q := t.queues[task.ServiceID]; q != nil && !task.AcceptedAt.IsZero() {
		q.recordHandle(now.Sub(task.AcceptedAt))
	}
}

// CancelTask takes a queued or offered task out of distribution.
func (e *Engine) CancelTask(ctx context.Context, tenantID, taskID, reason string) (*distributionv1.Task, error) {
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
	if task.State != TaskQueued && task.State != TaskOffered {
		return nil, fmt.Errorf("%w: task %s is %s; only a queued or offered task can be canceled (end the session instead)", ErrTaskState, task.ID, task.State)
	}
	if reason == "" {
		reason = "canceled"
	}
	if err := e.cancel(ctx, t, task, reason); err != nil {
		return nil, err
	}
	e.dispatch(ctx, tenantID)
	return e.view(task), nil
}

// Reprioritize changes the priority of a queued or offered task.
func (e *Engine) Reprioritize(ctx context.Context, tenantID, taskID string, priority int32) (*distributionv1.Task, error) {
	if priority < MinPriority || priority > MaxPriority {
		return nil, fmt.Errorf("%w: priority %d is outside %d..%d", ErrInvalid, priority, MinPriority, MaxPriority)
	}
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
	if task.State != TaskQueued && task.State != TaskOffered {
		return nil, fmt.Errorf("%w: task %s is %s; only a queued or offered task can be reprioritized", ErrTaskState, task.ID, task.State)
	}
	prev := task.Priority
	if prev == priority {
		return e.view(task), nil
	}
	queued := task.pool != nil
	e.pull(task)
	task.Priority = priority
	if err := e.store.Save(ctx, task); err != nil {
		task.Priority = prev
		if queued {
			e.push(t, task)
		}
		return nil, fmt.Errorf("save task %s: %w", task.ID, err)
	}
	if queued {
		e.push(t, task)
	}
	// A task may go back and forth between two priorities: the time tells
	// the changes apart.
	now := e.now()
	if err := e.pub.Emit(ctx, subjects.TaskReprioritized(tenantID), &distributionv1.TaskReprioritized{
		TenantId: tenantID, TaskId: task.ID, SessionId: task.SessionID, ServiceId: task.ServiceID,
		PreviousPriority: prev, Priority: priority, ReprioritizedAt: timestamppb.New(now),
	}, fmt.Sprintf("%s:reprioritized:%d", task.ID, now.UnixNano())); err != nil {
		return nil, err
	}
	e.dispatch(ctx, tenantID)
	return e.view(task), nil
}

// openTask finds an open task by id or session; a closed or unknown one is
// an error that says which.
func (e *Engine) openTask(ctx context.Context, t *tenant, tenantID, taskID, sessionID string) (*Task, error) {
	var task *Task
	switch {
	case taskID != "":
		task = t.tasks[taskID]
	case sessionID != "":
		task = t.sessions[sessionID]
		if task == nil {
			return nil, fmt.Errorf("%w: no open task of session %q", ErrUnknownTask, sessionID)
		}
	}
	if task != nil {
		return task, nil
	}
	saved, err := e.store.Get(ctx, tenantID, taskID)
	if err != nil {
		return nil, fmt.Errorf("get task %s: %w", taskID, err)
	}
	if saved == nil {
		return nil, fmt.Errorf("%w: task %q", ErrUnknownTask, taskID)
	}
	return nil, fmt.Errorf("%w: task %s is %s", ErrTaskState, taskID, saved.State)
}

// closeOffer withdraws an offer. changed: the agent's load went down (not
// so for an accept, which turns the offer into an active task).
func (e *Engine) closeOffer(t *tenant, o *offer, changed bool) {
	o.timer.Stop()
	delete(t.offers, o.id)
	o.task.OfferID = ""
	if a := t.agents[o.agentID]; a != nil {
		delete(a.offers, o.id)
		if changed {
			e.touch(t, a, e.now())
		} else {
			e.refresh(t, a)
		}
	}
}

// requeue puts a task back in its queue; it keeps its arrival time, so it
// goes back to its place.
func (e *Engine) requeue(t *tenant, task *Task) {
	task.State, task.AgentID, task.OfferExpires = TaskQueued, "", time.Time{}
	e.push(t, task)
}

// requeueStored is requeue with the task's store told (a failure leaves
// the stored offer to run out: a replica that loads it requeues it then).
func (e *Engine) requeueStored(ctx context.Context, t *tenant, task *Task) {
	e.requeue(t, task)
	if err := e.saveOpen(ctx, task); err != nil {
		e.log.ErrorContext(ctx, "store requeued task", "tenant", task.Tenant, "task", task.ID, "err", err)
	}
}

// withdraw takes back a stored offer nobody was told of.
func (e *Engine) withdraw(ctx context.Context, t *tenant, o *offer, task *Task) {
	e.closeOffer(t, o, true)
	e.requeueStored(ctx, t, task)
}

// dispatch offers queued tasks to eligible agents until no pair is left:
// every offer is decided first, then they are stored and published
// together (storeOffers).
func (e *Engine) dispatch(ctx context.Context, tenantID string) {
	t := e.tenant(tenantID)
	now := e.now()
	var made []*newOffer
	for {
		task, a := e.nextPair(t, now)
		if task == nil {
			break
		}
		made = append(made, e.decideOffer(t, task, a, now, ""))
	}
	e.storeOffers(ctx, t, made, now)
}

// offer offers a task (out of its queue's indexes) to an agent; on a
// store or publish error the offer is withdrawn, the task re-queued and
// false returned. transferredBy: the task was transferred to the agent by
// name.
func (e *Engine) offer(ctx context.Context, t *tenant, task *Task, a *agent, now time.Time, transferredBy string) bool {
	o := e.decideOffer(t, task, a, now, transferredBy)
	return e.storeOffers(ctx, t, []*newOffer{o}, now) == 1
}

// newOffer is an offer decided in memory and not yet stored or published.
type newOffer struct {
	o             *offer
	task          *Task
	agent         *agent
	transferredBy string
	failed        bool
}

// decideOffer makes the offer in memory: the task leaves its queue's
// indexes and counts against the agent from now on.
func (e *Engine) decideOffer(t *tenant, task *Task, a *agent, now time.Time, transferredBy string) *newOffer {
	tenantID := task.Tenant
	timeout := task.Service.RONATimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	o := &offer{id: ids.New("of_"), task: task, agentID: a.info.ID, expires: now.Add(timeout)}
	oid := o.id
	o.timer = e.afterFunc(timeout, func() { e.timeout(tenantID, oid) })
	e.pull(task)
	t.offers[o.id] = o
	a.offers[o.id] = o
	e.touch(t, a, now)
	task.State, task.OfferID, task.AgentID, task.OfferExpires = TaskOffered, o.id, a.info.ID, o.expires
	return &newOffer{o: o, task: task, agent: a, transferredBy: transferredBy}
}

// storeOffers stores the offers decided before anyone learns of them, and
// then publishes them; it returns how many went out. Each round is made
// for all the offers at once: the tasks first, then their agents (whose
// records a replica that takes the tenant over reads before the tasks),
// each at the revision this engine last saw, so a replica with an older
// view fails to offer either again; then the TaskOffered events, in the
// order decided. An offer whose write or publish fails is withdrawn and
// its task re-queued (tried again on the next change).
func (e *Engine) storeOffers(ctx context.Context, t *tenant, offers []*newOffer, now time.Time) int {
	if len(offers) == 0 {
		return 0
	}
	tenantID := offers[0].task.Tenant
	var wg sync.WaitGroup
	taskErrs := make([]error, len(offers))
	if e.open != nil {
		for i, n := range offers {
			wg.Go(func() { taskErrs[i] = e.open.SaveOpen(ctx, n.task) })
		}
		wg.Wait()
	}
	// Each agent once, with every offer it got in this round.
	var agents []*agent
	agentErr := map[*agent]error{}
	for i, n := range offers {
		if err := taskErrs[i]; err != nil {
			if errors.Is(err, ErrConflict) {
				e.staleLocked(tenantID)
			}
			n.failed = true
			e.closeOffer(t, n.o, true)
			e.requeue(t, n.task)
			e.log.ErrorContext(ctx, "store offer; task stays queued", "tenant", tenantID, "task", n.task.ID, "err", err)
			continue
		}
		if _, ok := agentErr[n.agent]; !ok {
			agentErr[n.agent] = nil
			agents = append(agents, n.agent)
		}
	}
	if st := e.presence.Store; st != nil && len(agents) > 0 {
		errs := make([]error, len(agents))
		for i, a := range agents {
			rec := a.record(tenantID)
			wg.Go(func() { errs[i] = st.SavePresence(ctx, rec) })
		}
		wg.Wait()
		for i, a := range agents {
			err := errs[i]
			if err == nil {
				continue
			}
			agentErr[a] = err
			if errors.Is(err, ErrConflict) {
				e.staleLocked(tenantID)
			}
			e.log.ErrorContext(ctx, "store offer's agent; tasks stay queued", "tenant", tenantID, "agent", a.info.ID, "err", err)
		}
	}
	waits := make([]func(context.Context) error, len(offers))
	for i, n := range offers {
		if n.failed {
			continue
		}
		if agentErr[n.agent] != nil {
			n.failed = true
			e.withdraw(ctx, t, n.o, n.task)
			continue
		}
		task, a, o := n.task, n.agent, n.o
		ectx := ctx
		if sc := telemetry.SpanContextOf(task.Trace); sc.IsValid() {
			ectx = trace.ContextWithRemoteSpanContext(ctx, sc)
		}
		waits[i] = e.emitStart(ectx, subjects.TaskOffered(tenantID), &distributionv1.TaskOffered{
			TenantId: tenantID, TaskId: task.ID, SessionId: task.SessionID, ServiceId: task.ServiceID,
			AgentId: a.info.ID, OfferId: o.id, ExpiresAt: timestamppb.New(o.expires),
			Conversation: task.Conversation, ServiceName: task.Service.Name, CustomerName: task.CustomerName,
			OfferedAt: timestamppb.New(now), Note: task.Note, TransferredBy: n.transferredBy,
			Preferred: task.PreferredAgent == a.info.ID && now.Before(task.PreferredUntil), Overflowed: task.Overflowed,
			Parameters: task.Parameters,
		}, o.id+":offered")
	}
	sent := 0
	for i, n := range offers {
		if waits[i] == nil {
			continue
		}
		if err := waits[i](ctx); err != nil {
			// The agent never learns of an offer that was not published:
			// withdraw it and try again on the next change.
			e.log.ErrorContext(ctx, "publish offer; task stays queued", "tenant", tenantID, "task", n.task.ID, "err", err)
			e.withdraw(ctx, t, n.o, n.task)
			continue
		}
		sent++
		if q := t.queues[n.task.ServiceID]; q != nil {
			q.offers = append(trim(q.offers, now), now)
		}
	}
	return sent
}

// nextPair is the best task any ready agent may take, with the agent to
// offer it to: the best candidate of each pool that has both waiting tasks
// and ready agents.
func (e *Engine) nextPair(t *tenant, now time.Time) (*Task, *agent) {
	var best *Task
	var who *agent
	for _, q := range t.queues {
		if q.waiting.Len() == 0 {
			continue
		}
		for _, p := range q.pools {
			if p.tasks.Len() == 0 || p.agents.Len() == 0 {
				continue
			}
			if task, a := e.candidate(t, p, now); task != nil && (best == nil || taskLess(task, best)) {
				best, who = task, a
			}
		}
	}
	return best, who
}

// Tick re-runs dispatch for every tenant: tasks declined by everyone become
// offerable again once the cooldown passes. It also sends the events of
// closed tasks that could not go out before.
func (e *Engine) Tick(ctx context.Context) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for id, t := range e.tenants {
		e.finishClosing(ctx, t)
		e.announceAccepted(ctx, t)
		e.dispatch(ctx, id)
	}
}

// Close stops all timers; offers in flight are re-queued and after-call
// work resumed by Restore on the next start.
func (e *Engine) Close() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.closed = true
	for _, t := range e.tenants {
		for _, o := range t.offers {
			o.timer.Stop()
		}
		for _, task := range t.tasks {
			if task.wrapTimer != nil {
				task.wrapTimer.Stop()
			}
			stopReplyTimer(task)
			stopWaitTimers(task)
		}
		for _, a := range t.agents {
			if a.graceTimer != nil {
				a.graceTimer.Stop()
			}
		}
	}
}

// sortedOffers lists an agent's open offers by id.
func sortedOffers(a *agent) []*distributionv1.Offer {
	var out []*distributionv1.Offer
	for _, o := range a.offers {
		out = append(out, offerProto(o))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].OfferId < out[j].OfferId })
	return out
}

func offerProto(o *offer) *distributionv1.Offer {
	return &distributionv1.Offer{
		OfferId: o.id, TaskId: o.task.ID, SessionId: o.task.SessionID, ServiceId: o.task.ServiceID,
		ServiceName: o.task.Service.Name, Conversation: o.task.Conversation, CustomerName: o.task.CustomerName,
		ExpiresAt: timestamppb.New(o.expires), Parameters: o.task.Parameters,
	}
}
