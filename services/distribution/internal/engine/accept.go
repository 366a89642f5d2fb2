package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/switchboard-cc/switchboard/pkg/subjects"
)

// Accepts are committed in groups. Each accept writes its task and
// publishes TaskAccepted, and the engine's lock must be held from the
// offer's check to the write (the offer must not time out, be withdrawn
// or be accepted twice in between). One at a time, the lock was held
// for both round trips per accept: with fifty agents accepting, the
// accepts alone held it for most of each second, and the task requests
// and session ends of the tenant's lane waited behind them for seconds.
// Accepts that arrive while a group is being committed form the next
// group: one round of writes and one of publishes for all of them.

// acceptReq is one agent's accept waiting for its group.
type acceptReq struct {
	ctx                      context.Context
	tenant, agentID, offerID string
	done                     chan acceptResult
}

type acceptResult struct {
	task *Task
	err  error
}

// maxAcceptGroup bounds the accepts committed together.
const maxAcceptGroup = 128

// Accept turns an open offer into an accepted task. Accept is idempotent:
// the same agent accepting the same offer again (a retry after an error or
// a lost answer) gets the task again and TaskAccepted is published again
// under the same id, so an event that failed to go out the first time is
// not lost.
func (e *Engine) Accept(ctx context.Context, tenantID, agentID, offerID string) (*Task, error) {
	r := &acceptReq{ctx: ctx, tenant: tenantID, agentID: agentID, offerID: offerID, done: make(chan acceptResult, 1)}
	e.acceptMu.Lock()
	e.acceptQ = append(e.acceptQ, r)
	lead := !e.accepting
	e.accepting = true
	e.acceptMu.Unlock()
	if lead {
		// This caller commits the group its accept is in; accepts queued
		// meanwhile are committed by another goroutine, so no caller waits
		// for more than its own group.
		if e.commitAccepts() {
			go func() {
				for e.commitAccepts() {
				}
			}()
		}
	}
	res := <-r.done
	return res.task, res.err
}

// commitAccepts commits the accepts waiting now, and reports whether more
// came meanwhile (the caller then commits them too); false: none wait and
// the next accept leads.
func (e *Engine) commitAccepts() bool {
	e.acceptMu.Lock()
	n := min(len(e.acceptQ), maxAcceptGroup)
	group := e.acceptQ[:n:n]
	e.acceptQ = e.acceptQ[n:]
	e.acceptMu.Unlock()
	later := e.acceptGroup(group)
	e.acceptMu.Lock()
	defer e.acceptMu.Unlock()
	e.acceptQ = append(later, e.acceptQ...)
	if len(e.acceptQ) == 0 {
		e.accepting = false
		return false
	}
	return true
}

// acceptGroup commits a group of accepts under the lock: every check
// first, then every task's write at once, then every event at once. A
// second accept of an offer in the group is returned, for the next group
// (it then finds the offer accepted, or not).
func (e *Engine) acceptGroup(group []*acceptReq) (later []*acceptReq) {
	e.mu.Lock()
	defer e.mu.Unlock()
	type change struct {
		r    *acceptReq
		t    *tenant
		o    *offer // nil: accepted before, TaskAccepted is published again
		task *Task
		prev Task
		err  error
		wait func(context.Context) error
	}
	var changes []*change
	inGroup := map[string]bool{}
	now := e.now()
	for _, r := range group {
		k := r.tenant + "/" + r.offerID
		if inGroup[k] {
			later = append(later, r)
			continue
		}
		inGroup[k] = true
		if err := r.ctx.Err(); err != nil {
			r.done <- acceptResult{err: err}
			continue
		}
		if err := e.mine(r.tenant); err != nil {
			r.done <- acceptResult{err: err}
			continue
		}
		t := e.tenant(r.tenant)
		o, ok := t.offers[r.offerID]
		switch {
		case ok && o.timedOut:
			r.done <- acceptResult{err: ErrOfferNotOpen}
		case !ok:
			task := t.accepted[r.offerID]
			switch {
			case task == nil:
				r.done <- acceptResult{err: ErrOfferNotOpen}
			case task.AgentID != r.agentID:
				r.done <- acceptResult{err: ErrNotYourOffer}
			default:
				changes = append(changes, &change{r: r, t: t, task: task})
			}
		case o.agentID != r.agentID:
			r.done <- acceptResult{err: ErrNotYourOffer}
		default:
			task := o.task
			c := &change{r: r, t: t, o: o, task: task, prev: *task}
			task.State, task.AgentID, task.OfferID, task.AcceptedOffer, task.AcceptedAt = TaskAccepted, r.agentID, "", r.offerID, now
			task.ReplyDue, task.Replied, task.Overdue = time.Time{}, false, false
			if d := task.Service.FirstReplyTimeout; d > 0 {
				task.ReplyDue = now.Add(d)
			}
			changes = append(changes, c)
		}
	}
	var wg sync.WaitGroup
	for _, c := range changes {
		if c.o != nil {
			wg.Go(func() { c.err = e.rawStore().Save(c.r.ctx, c.task) })
		}
	}
	wg.Wait()
	for _, c := range changes {
		if c.o != nil {
			if c.err != nil {
				if errors.Is(c.err, ErrConflict) {
					e.staleLocked(c.task.Tenant)
				}
				*c.task = c.prev
				c.err = fmt.Errorf("save task %s: %w", c.task.ID, c.err)
				continue
			}
			a := c.t.agentOrStub(c.r.agentID, now)
			a.active[c.task.ID] = c.task // before closeOffer re-indexes the agent: the load stays
			e.closeOffer(c.t, c.o, false)
			c.t.accepted[c.r.offerID] = c.task
			e.startReplyTimer(c.task, c.task.ReplyDue.Sub(now))
			stopWaitTimers(c.task)
			e.recordLastAgent(c.task, now)
		}
		c.wait = e.emitStart(c.r.ctx, subjects.TaskAccepted(c.task.Tenant), acceptedEvent(c.task), acceptedID(c.task))
	}
	for _, c := range changes {
		if c.err == nil {
			c.err = c.wait(c.r.ctx)
			// Saved accepted, its event not confirmed: Tick sends it
			// again, whether or not the agent asks again.
			c.task.announce = c.err != nil
		}
		if c.err != nil {
			c.r.done <- acceptResult{err: c.err}
			continue
		}
		c.r.done <- acceptResult{task: c.task}
	}
	return later
}
