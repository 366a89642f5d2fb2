package chaos

import (
	"context"
	"sync"
	"time"
)

// supervisor starts again every process that is not running, as
// Kubernetes restarts a pod's container, unless the harness holds it down
// for a while (a fault).
type supervisor struct {
	st   *stack
	mu   sync.Mutex
	held map[*proc]time.Time
}

func newSupervisor(st *stack) *supervisor { return &supervisor{st: st, held: map[*proc]time.Time{}} }

// hold keeps p down until the time given.
func (s *supervisor) hold(p *proc, until time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.held[p] = until
}

func (s *supervisor) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.held)
}

func (s *supervisor) run(ctx context.Context) {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		for _, p := range s.st.all() {
			s.mu.Lock()
			until := s.held[p]
			s.mu.Unlock()
			if now.Before(until) || p.running() {
				continue
			}
			_ = p.start()
		}
	}
}

// settle restarts every process now and waits until they all run.
func (s *supervisor) settle(ctx context.Context) {
	s.release()
	for _, p := range s.st.all() {
		p.resume()
	}
	for ctx.Err() == nil {
		up := true
		for _, p := range s.st.all() {
			up = up && p.running()
		}
		if up {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}
