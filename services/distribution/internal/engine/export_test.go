package engine

import "time"

// SetClock replaces the engine's clock, so tests control arrival order,
// "waited longest" and the decline cooldown without sleeping. RONA and
// after-call work timers still run on real time; FireRONA and
// ExpireWrapUp run them at once.
func SetClock(e *Engine, now func() time.Time) { e.now = now }

// FireRONA runs the RONA timer of an offer now.
func FireRONA(e *Engine, tenant, offerID string) { e.timeout(tenant, offerID) }

// ExpireWrapUp runs the after-call work timer of a task now.
func ExpireWrapUp(e *Engine, tenant, taskID string) {
	e.mu.Lock()
	var until time.Time
	if task := e.tenant(tenant).tasks[taskID]; task != nil {
		until = task.WrapUntil
	}
	e.mu.Unlock()
	e.wrapUpExpired(tenant, taskID, until)
}

// EndGrace runs the grace timer of an agent now.
func EndGrace(e *Engine, tenant, agentID string) {
	e.mu.Lock()
	var until time.Time
	if a := e.tenant(tenant).agents[agentID]; a != nil {
		until = a.graceUntil
	}
	e.mu.Unlock()
	e.graceExpired(tenant, agentID, until)
}

// FireReplyTimer runs the first-reply timer of a task now.
func FireReplyTimer(e *Engine, tenant, taskID string) {
	e.mu.Lock()
	var due time.Time
	if task := e.tenant(tenant).tasks[taskID]; task != nil {
		due = task.ReplyDue
	}
	e.mu.Unlock()
	e.replyOverdue(tenant, taskID, due)
}

// FireOverflow runs the overflow timer of a task now.
func FireOverflow(e *Engine, tenant, taskID string) { e.overflow(tenant, taskID) }

// Redispatch runs what the end of a preferred agent's wait runs.
func Redispatch(e *Engine, tenant string) { e.redispatch(tenant) }

// SetAfterFunc replaces how the engine starts its timers (time.AfterFunc),
// so a test decides when they run (see timers in fakes_test.go).
func SetAfterFunc(e *Engine, f func(time.Duration, func()) *time.Timer) { e.afterFunc = f }
