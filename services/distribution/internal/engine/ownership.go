package engine

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"time"
)

// Ownership: with several replicas each engine holds the tenants of the
// partitions it owns (SetPartitions, Acquire, Release). A tenant's
// partition is PartitionOf(tenant, n), the hash NATS's subject transform
// {{Partition(n,…)}} computes, so the partitions the consumer group
// delivers and the tenants an engine holds are the same.

var (
	// ErrNotOwner: the tenant's partition is held by another replica (or
	// by none, during a hand-over).
	ErrNotOwner = errors.New("tenant is held by another distribution replica")
	// ErrConflict: a stored task or agent changed since this engine read
	// or wrote it (another replica wrote it during a hand-over). The
	// engine reloads the tenant from the stores.
	ErrConflict = errors.New("stored record changed concurrently")
)

// PartitionOf is the tenant's partition among n: FNV-1a (32 bits) of the
// tenant id modulo n, as nats-server's {{Partition(n,i)}} transform.
func PartitionOf(tenant string, n int) int {
	if n <= 0 {
		return 0
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(tenant))
	return int(h.Sum32() % uint32(n))
}

// OpenTaskStore is a TaskStore that also keeps every open task's offer
// (a JetStream KV bucket in production, written with revision checks) and
// loads the open tasks of some tenants only.
type OpenTaskStore interface {
	// SaveOpen writes an open task's state (its offer included) where a
	// taking-over replica reads it, without the full record. A closed
	// task is written too, with its Outbox, until RemoveOpen.
	SaveOpen(ctx context.Context, t *Task) error
	// RemoveOpen removes a closed task whose events are out.
	RemoveOpen(ctx context.Context, t *Task) error
	// LoadOpenOf returns the open tasks of the tenants match accepts, and
	// the closed ones not yet removed.
	LoadOpenOf(ctx context.Context, match func(tenant string) bool) ([]*Task, error)
}

// PresenceLoader is a PresenceStore that loads some tenants' agents only.
type PresenceLoader interface {
	LoadPresenceOf(ctx context.Context, match func(tenant string) bool) ([]PresenceRecord, error)
}

// SetPartitions turns ownership on: the engine then holds only the
// tenants of the partitions it acquired, of n. Call it before anything
// else.
func (e *Engine) SetPartitions(n int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.partitions = n
	e.owned = map[int]bool{}
	e.reloading = map[string]bool{}
}

// Owns reports whether the engine holds the tenant.
func (e *Engine) Owns(tenant string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.mine(tenant) == nil
}

// mine is Owns under e.mu.
func (e *Engine) mine(tenant string) error {
	if e.partitions == 0 || e.owned[PartitionOf(tenant, e.partitions)] {
		return nil
	}
	return fmt.Errorf("%w: %q", ErrNotOwner, tenant)
}

func (e *Engine) inParts(parts []int) func(string) bool {
	set := map[int]bool{}
	for _, p := range parts {
		set[p] = true
	}
	n := e.partitions
	return func(tenant string) bool { return set[PartitionOf(tenant, n)] }
}

// Acquire loads the tenants of parts (their agents first, then their open
// tasks: an offer written by a replica that still held them a moment ago
// is either seen here or makes a later write of this engine fail) and
// holds them from then on. It returns how many tasks and agents it loaded.
func (e *Engine) Acquire(ctx context.Context, parts []int) (tasks, agents int, err error) {
	e.mu.Lock()
	match := e.inParts(parts)
	e.mu.Unlock()
	recs, open, err := e.load(ctx, match)
	if err != nil {
		return 0, 0, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.owned == nil {
		return 0, 0, errors.New("acquire before SetPartitions")
	}
	e.dropLocked(match)
	for _, p := range parts {
		e.owned[p] = true
	}
	e.installLocked(ctx, open, recs)
	return len(open), len(recs), nil
}

func (e *Engine) load(ctx context.Context, match func(string) bool) ([]PresenceRecord, []*Task, error) {
	var recs []PresenceRecord
	if pl, ok := e.presence.Store.(PresenceLoader); ok {
		var err error
		if recs, err = pl.LoadPresenceOf(ctx, match); err != nil {
			return nil, nil, fmt.Errorf("load presence: %w", err)
		}
	}
	ts := e.open
	if ts == nil {
		return nil, nil, errors.New("the task store cannot load some tenants' open tasks")
	}
	open, err := ts.LoadOpenOf(ctx, match)
	if err != nil {
		return nil, nil, fmt.Errorf("load open tasks: %w", err)
	}
	return recs, open, nil
}

// installLocked puts loaded tasks and agents in place and dispatches.
func (e *Engine) installLocked(ctx context.Context, open []*Task, recs []PresenceRecord) {
	now := e.now()
	e.installTasks(open, now)
	tenants := map[string]bool{}
	for _, task := range open {
		tenants[task.Tenant] = true
	}
	for _, r := range recs {
		e.installAgent(r, now)
		tenants[r.Tenant] = true
	}
	for id := range tenants {
		e.finishClosing(ctx, e.tenant(id))
		e.announceAccepted(ctx, e.tenant(id))
		e.dispatch(ctx, id)
	}
	e.signal()
}

// Release stops holding the tenants of parts: their timers stop and their
// state is dropped (it is in the stores; the next owner loads it).
func (e *Engine) Release(parts []int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, p := range parts {
		delete(e.owned, p)
	}
	e.dropLocked(e.inParts(parts))
	e.signal()
}

// dropLocked forgets the tenants match accepts, stopping their timers.
func (e *Engine) dropLocked(match func(string) bool) {
	for id, t := range e.tenants {
		if !match(id) {
			continue
		}
		stopTimers(t)
		delete(e.tenants, id)
	}
}

func stopTimers(t *tenant) {
	for _, o := range t.offers {
		o.timer.Stop()
	}
	for _, task := range t.tasks {
		if task.wrapTimer != nil {
			task.wrapTimer.Stop()
		}
		stopReplyTimer(task)
	}
	for _, a := range t.agents {
		if a.graceTimer != nil {
			a.graceTimer.Stop()
		}
	}
}

// staleLocked is told of a write that found a newer record: the engine's
// view of the tenant is out of date, so it is reloaded from the stores
// (once at a time).
func (e *Engine) staleLocked(tenant string) {
	if e.partitions == 0 || e.reloading[tenant] {
		return
	}
	e.reloading[tenant] = true
	e.log.Warn("a stored record of the tenant changed under this replica; reloading the tenant", "tenant", tenant)
	go e.reload(tenant)
}

func (e *Engine) reload(tenant string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	match := func(id string) bool { return id == tenant }
	// Loaded under the lock: nothing this engine does to the tenant
	// meanwhile may be overwritten by what was read before it.
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.reloading, tenant)
	if e.closed || e.mine(tenant) != nil {
		return
	}
	recs, open, err := e.load(ctx, match)
	if err != nil {
		e.log.Error("reload tenant; dropping it until the next change", "tenant", tenant, "err", err)
		e.dropLocked(match)
		return
	}
	e.dropLocked(match)
	e.installLocked(ctx, open, recs)
}

// conflictWatch tells the engine of conflicts its stores report.
type conflictWatch struct {
	TaskStore
	e *Engine
}

func (c conflictWatch) Save(ctx context.Context, t *Task) error {
	err := c.TaskStore.Save(ctx, t)
	if errors.Is(err, ErrConflict) {
		c.e.staleLocked(t.Tenant)
	}
	return err
}

// saveOpen writes an open task's offer state where the store keeps it (a
// no-op for stores that do not).
func (e *Engine) saveOpen(ctx context.Context, t *Task) error {
	if e.open == nil {
		return nil
	}
	err := e.open.SaveOpen(ctx, t)
	if errors.Is(err, ErrConflict) {
		e.staleLocked(t.Tenant)
	}
	if err != nil {
		return fmt.Errorf("save task %s: %w", t.ID, err)
	}
	return nil
}
