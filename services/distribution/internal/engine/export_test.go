package engine

import "time"

// SetClock replaces the engine's clock, so tests control arrival order,
// "waited longest" and the decline cooldown without sleeping. RONA timers
// still run on real time.
func SetClock(e *Engine, now func() time.Time) { e.now = now }
