package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	distributionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/distribution/v1"

	"github.com/switchboard-cc/switchboard/pkg/subjects"
	"github.com/switchboard-cc/switchboard/pkg/telemetry"
)

// A session an agent starts (a business-initiated conversation) gets its
// task from StartAgentTask, already accepted by that agent: it is never
// queued for anyone (it enters no queue's indexes and is never offered),
// and from then on it is an accepted task like any other (park, transfer,
// the session's end, after-call work, its agent's capacity).

// StartedTaskID is the id of the task an agent starts for a session: one
// per session, so a retry whose first write landed unseen finds it (the
// write of a second one fails on the revision and the tenant is reloaded).
func StartedTaskID(sessionID string) string {
	return "ta_" + strings.TrimPrefix(sessionID, "ss_")
}

// refusal is an error of a kind (errors.Is) whose message says only what
// was wrong.
type refusal struct {
	kind error
	msg  string
}

func (r refusal) Error() string { return r.msg }
func (r refusal) Unwrap() error { return r.kind }

func refuse(kind error, format string, args ...any) error {
	return refusal{kind: kind, msg: fmt.Sprintf(format, args...)}
}

// StartAgentTask creates the task of a session the agent started, in svc,
// accepted by them at once. The agent must be able to take a task of svc
// as for an offer, except that "away" is enough (they start the
// conversation themselves; only offline refuses): a member of svc
// (ErrNotMember) with the agent role and an IM license (ErrNotEligible),
// not offline, RONA-flagged or in after-call work (ErrAgentBusy), and
// under capacity, their own else svc's max_parallel_tasks else 1, parked
// tasks counting as the service says (ErrAtCapacity). The agent's record,
// then the task (accepted, at arrival now with the normal priority) are
// stored before TaskQueued and TaskAccepted (offer_id empty) go out.
//
// Idempotent per session: a session whose open task is this agent's
// answers that task (its events published again only if they may not
// have gone out); one whose task waits for an agent, is another agent's
// or has closed, or a session that ended, is ErrTaskState. info is what
// config says about the agent now (it replaces what the engine had).
func (e *Engine) StartAgentTask(ctx context.Context, tenantID string, svc ServiceInfo, info AgentInfo, sessionID string) (*Task, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.mine(tenantID); err != nil {
		return nil, err
	}
	t := e.tenant(tenantID)
	id := StartedTaskID(sessionID)
	task := t.sessions[sessionID]
	if task == nil {
		task = t.tasks[id]
	}
	if task != nil {
		return e.startedAgain(ctx, task, info.ID)
	}
	if c := t.closing[id]; c != nil || t.closingOf(sessionID) != nil {
		return nil, refuse(ErrTaskState, "session %s has ended (its task is closing)", sessionID)
	}
	var ended, known bool
	var endErr, knownErr error
	var wg sync.WaitGroup
	wg.Go(func() { ended, endErr = e.store.SessionEnded(ctx, tenantID, sessionID) })
	wg.Go(func() { known, knownErr = e.store.Known(ctx, tenantID, id) })
	wg.Wait()
	switch {
	case endErr != nil:
		return nil, fmt.Errorf("look up session %s: %w", sessionID, endErr)
	case knownErr != nil:
		return nil, fmt.Errorf("look up task %s: %w", id, knownErr)
	case ended:
		return nil, refuse(ErrTaskState, "session %s has ended", sessionID)
	case known:
		return nil, refuse(ErrTaskState, "session %s already had task %s, which is closed", sessionID, id)
	}
	a, err := startable(t, svc, info)
	if err != nil {
		return nil, err
	}
	now := e.now()

	// The agent first, at the revision this engine last saw: a replica
	// whose view is stale fails here (as for an offer) before it stores a
	// task that may put the agent above capacity.
	prev := *a
	info.Skills = normSkills(info.Skills)
	a.info, a.since = info, now
	if err := e.persist(ctx, tenantID, a); err != nil {
		*a = prev
		return nil, err
	}
	task = &Task{
		ID: id, Tenant: tenantID, SessionID: sessionID, ServiceID: svc.ID, Service: svc,
		Priority: MinPriority, QueuedAt: now, State: TaskAccepted, AgentID: info.ID, AcceptedAt: now,
		Trace: telemetry.TraceParent(ctx), declined: map[string]time.Time{},
	}
	if err := e.store.Save(ctx, task); err != nil {
		e.refresh(t, a) // its record stands (new info, since)
		return nil, fmt.Errorf("save task %s: %w", id, err)
	}
	t.tasks[id] = task
	t.sessions[sessionID] = task
	e.queue(t, svc) // the newest settings of the service (statistics)
	a.active[id] = task
	e.touch(t, a, now)
	e.recordLastAgent(task, now)
	e.signal()
	if err := e.announceTask(ctx, task); err != nil {
		// Saved accepted: Tick sends the events until they go out, and a
		// retry answers this task.
		task.announce = true
		return nil, err
	}
	return task, nil
}

// startable checks the agent may start a task of svc now and returns
// their engine record.
func startable(t *tenant, svc ServiceInfo, info AgentInfo) (*agent, error) {
	if !slices.Contains(info.Services, svc.ID) {
		return nil, refuse(ErrNotMember, "agent %s is not a member of service %s", info.ID, svc.ID)
	}
	if !info.Eligible {
		return nil, refuse(ErrNotEligible, "user %s may not take IM tasks (needs role agent and an IM license)", info.ID)
	}
	a := t.agents[info.ID]
	switch {
	case a == nil || (a.presence != distributionv1.Presence_PRESENCE_AVAILABLE && a.presence != distributionv1.Presence_PRESENCE_AWAY):
		return nil, refuse(ErrAgentBusy, "agent %s is offline", info.ID)
	case a.rona:
		return nil, refuse(ErrAgentBusy, "agent %s is RONA-flagged (reset it or set them available)", info.ID)
	case len(a.wrapping) > 0:
		return nil, refuse(ErrAgentBusy, "agent %s is in after-call work", info.ID)
	}
	// The limit as for an offer, with config's capacity of now.
	probe := *a
	probe.info = info
	if load, lim := a.load(), limit(&probe, svc); load >= lim {
		return nil, refuse(ErrAtCapacity, "agent %s is at capacity (%d of %d tasks)", info.ID, load, lim)
	}
	return a, nil
}

// startedAgain answers StartAgentTask for a session that has an open task.
func (e *Engine) startedAgain(ctx context.Context, task *Task, agentID string) (*Task, error) {
	switch {
	case task.State == TaskQueued || task.State == TaskOffered:
		return nil, refuse(ErrTaskState, "session %s already has task %s, %s for an agent", task.SessionID, task.ID, task.State)
	case task.AgentID != agentID:
		return nil, refuse(ErrTaskState, "session %s already has task %s of agent %s", task.SessionID, task.ID, task.AgentID)
	}
	if task.announce && task.State.held() {
		if err := e.announceTask(ctx, task); err != nil {
			return nil, err
		}
		task.announce = false
	}
	return task, nil
}

// announceTask publishes an accepted task's TaskAccepted, preceded by its
// TaskQueued when an agent started it (accepted through no offer),
// pipelined, under their message ids (JetStream drops a repeat within its
// duplicate window).
func (e *Engine) announceTask(ctx context.Context, task *Task) error {
	var waits []func(context.Context) error
	if task.AcceptedOffer == "" {
		waits = append(waits, e.emitStart(ctx, subjects.TaskQueued(task.Tenant), queuedEvent(task), "queued:"+task.ID))
	}
	waits = append(waits, e.emitStart(ctx, subjects.TaskAccepted(task.Tenant), acceptedEvent(task), acceptedID(task)))
	var errs []error
	for _, w := range waits {
		errs = append(errs, w(ctx))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	task.queuedSent = true
	return nil
}
