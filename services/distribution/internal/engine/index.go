package engine

import (
	"slices"
	"strings"
	"time"

	distributionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/distribution/v1"
)

// The indexes that make one offer decision cost O(P·log n) instead of
// O(tasks × agents): per service a queue, and per service and set of
// required skills a pool holding its waiting tasks in offer order and the
// agents who could take one right now in selection order. P is the number
// of pools of the tenant that have both (services × distinct skill sets).

// taskLess is the offer order: higher priority first, then longest waiting.
func taskLess(a, b *Task) bool {
	if a.Priority != b.Priority {
		return a.Priority > b.Priority
	}
	if !a.QueuedAt.Equal(b.QueuedAt) {
		return a.QueuedAt.Before(b.QueuedAt)
	}
	return a.ID < b.ID
}

// ageLess orders tasks by arrival only (longest wait).
func ageLess(a, b *Task) bool {
	if !a.QueuedAt.Equal(b.QueuedAt) {
		return a.QueuedAt.Before(b.QueuedAt)
	}
	return a.ID < b.ID
}

// agentLess is the selection order: an agent holding nothing is idle, and
// the longest idle goes first; an agent holding tasks or offers is not idle,
// so among those fewer tasks go first, then the one whose load changed
// least recently. That is "longest idle first, ties by fewer active tasks".
func agentLess(a, b *agent) bool {
	if a.kLoad != b.kLoad {
		return a.kLoad < b.kLoad
	}
	if !a.kSince.Equal(b.kSince) {
		return a.kSince.Before(b.kSince)
	}
	return a.info.ID < b.info.ID
}

type queue struct {
	svc ServiceInfo
	// Every waiting task of the service, in offer order (positions) and by
	// age (longest wait).
	waiting *ordset[*Task]
	byAge   *ordset[*Task]
	pools   map[string]*pool // skills key -> pool
	// Offers and RONAs of the last hour, oldest first.
	offers, ronas []time.Time
	// Handle times of the last completed tasks (a ring).
	handled []time.Duration
	next    int
}

const handleSamples = 50

type pool struct {
	q      *queue
	skills []string
	tasks  *ordset[*Task]
	// Agents who could be offered a task of this pool now: members of the
	// service, licensed, available, not flagged, not wrapping up, under
	// capacity and with the pool's skills.
	agents *ordset[*agent]
}

func skillsKey(skills []string) string { return strings.Join(skills, "\x00") }

// normSkills sorts skills and drops blanks and repeats.
func normSkills(skills []string) []string {
	var out []string
	for _, s := range skills {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// queue returns the service's queue, made or brought up to date with svc.
func (e *Engine) queue(t *tenant, svc ServiceInfo) *queue {
	q := t.queues[svc.ID]
	if q == nil {
		q = &queue{svc: svc, waiting: newOrdset(taskLess), byAge: newOrdset(ageLess), pools: map[string]*pool{}}
		t.queues[svc.ID] = q
		return q
	}
	limitChanged := q.svc.MaxParallelTasks != svc.MaxParallelTasks
	q.svc = svc
	if limitChanged {
		for _, a := range t.agents {
			if slices.Contains(a.info.Services, svc.ID) {
				e.refresh(t, a)
			}
		}
	}
	return q
}

// pool returns the queue's pool for a skill set, filling a new one with the
// agents who qualify (once per skill set: O(agents)).
func (e *Engine) pool(t *tenant, q *queue, skills []string) *pool {
	k := skillsKey(skills)
	p := q.pools[k]
	if p != nil {
		return p
	}
	p = &pool{q: q, skills: skills, tasks: newOrdset(taskLess), agents: newOrdset(agentLess)}
	q.pools[k] = p
	for _, a := range t.agents {
		if e.readyFor(a, q) && a.hasSkills(skills) {
			p.agents.Insert(a)
			a.pools[p] = struct{}{}
		}
	}
	return p
}

// push puts a queued task into its indexes. The queue keeps the service
// settings it has: a requeued task's snapshot may be older.
func (e *Engine) push(t *tenant, task *Task) {
	q := t.queues[task.ServiceID]
	if q == nil {
		q = e.queue(t, task.Service)
	}
	p := e.pool(t, q, task.RequiredSkills)
	p.tasks.Insert(task)
	q.waiting.Insert(task)
	q.byAge.Insert(task)
	task.pool = p
}

// pull takes a task out of the indexes (it is no longer waiting).
func (e *Engine) pull(task *Task) {
	p := task.pool
	if p == nil {
		return
	}
	p.tasks.Delete(task)
	p.q.waiting.Delete(task)
	p.q.byAge.Delete(task)
	task.pool = nil
}

// position is the 1-based place of a waiting task in its service, else 0.
func position(task *Task) int32 {
	if task.pool == nil {
		return 0
	}
	return int32(task.pool.q.waiting.Rank(task) + 1)
}

func limit(a *agent, svc ServiceInfo) int {
	switch {
	case a.info.Capacity > 0:
		return a.info.Capacity
	case svc.MaxParallelTasks > 0:
		return svc.MaxParallelTasks
	}
	return 1
}

func (a *agent) hasSkills(skills []string) bool {
	for _, s := range skills {
		if !slices.Contains(a.info.Skills, s) {
			return false
		}
	}
	return true
}

// available: the agent chose to take tasks and may.
func (a *agent) available() bool {
	return a.presence == distributionv1.Presence_PRESENCE_AVAILABLE && a.info.Eligible
}

// readyFor: the agent could be offered a task of q now (skills aside).
func (e *Engine) readyFor(a *agent, q *queue) bool {
	return a.available() && !a.rona && len(a.wrapping) == 0 &&
		slices.Contains(a.info.Services, q.svc.ID) && a.load() < limit(a, q.svc)
}

// refresh puts the agent where it belongs in every pool after anything
// about it changed (presence, flags, load, services, skills): O(S·K·log n)
// for S services of K skill sets each.
func (e *Engine) refresh(t *tenant, a *agent) {
	for p := range a.pools {
		p.agents.Delete(a)
	}
	clear(a.pools)
	a.kLoad, a.kSince = a.load(), a.since
	for _, sid := range a.info.Services {
		q := t.queues[sid]
		if q == nil || !e.readyFor(a, q) {
			continue
		}
		for _, p := range q.pools {
			if _, in := a.pools[p]; in || !a.hasSkills(p.skills) {
				continue
			}
			p.agents.Insert(a)
			a.pools[p] = struct{}{}
		}
	}
}

// touch records a change of the agent's load now and re-indexes it.
func (e *Engine) touch(t *tenant, a *agent, now time.Time) {
	a.since = now
	e.refresh(t, a)
}

// candidate is the pool's best task that one of its ready agents may take,
// with that agent. Only tasks that every ready agent declined within the
// cooldown are skipped, and for each only the agents that declined it.
func (e *Engine) candidate(t *tenant, p *pool, now time.Time) (*Task, *agent) {
	var task *Task
	var who *agent
	p.tasks.Ascend(func(tk *Task) bool {
		if tk.PreferredAgent != "" {
			a, wait := e.preferred(t, p, tk, now)
			if a != nil {
				task, who = tk, a
				return false
			}
			if wait {
				return true // reserved for an agent who will be back shortly
			}
		}
		p.agents.Ascend(func(a *agent) bool {
			if at, ok := tk.declined[a.info.ID]; ok && now.Sub(at) < e.DeclineCooldown {
				return true
			}
			who = a
			return false
		})
		if who != nil {
			task = tk
			return false
		}
		return true
	})
	return task, who
}

// preferred is the task's preferred agent when they may be offered it
// now from this pool; wait: the task stays reserved for them (they are in
// after-call work). Otherwise the preference falls through for good: its
// time passed, or the agent cannot take the task (not available, flagged,
// at capacity, declined it, not in the pool).
func (e *Engine) preferred(t *tenant, p *pool, tk *Task, now time.Time) (*agent, bool) {
	a := t.agents[tk.PreferredAgent]
	if !now.Before(tk.PreferredUntil) || a == nil || !a.available() || a.rona || a.load() >= limit(a, p.q.svc) ||
		!slices.Contains(a.info.Services, p.q.svc.ID) || !a.hasSkills(p.skills) {
		tk.PreferredAgent = ""
		return nil, false
	}
	if at, ok := tk.declined[a.info.ID]; ok && now.Sub(at) < e.DeclineCooldown {
		tk.PreferredAgent = ""
		return nil, false
	}
	if len(a.wrapping) > 0 {
		return nil, true
	}
	if _, in := a.pools[p]; in {
		return a, false
	}
	tk.PreferredAgent = ""
	return nil, false
}

// trim drops times older than an hour.
func trim(ts []time.Time, now time.Time) []time.Time {
	i := 0
	for i < len(ts) && now.Sub(ts[i]) > time.Hour {
		i++
	}
	return ts[i:]
}

func (q *queue) recordHandle(d time.Duration) {
	if len(q.handled) < handleSamples {
		q.handled = append(q.handled, d)
		return
	}
	q.handled[q.next] = d
	q.next = (q.next + 1) % handleSamples
}

// averageHandle is the mean of the recorded handle times (0: none yet).
func (q *queue) averageHandle() time.Duration {
	if len(q.handled) == 0 {
		return 0
	}
	var sum time.Duration
	for _, d := range q.handled {
		sum += d
	}
	return sum / time.Duration(len(q.handled))
}
