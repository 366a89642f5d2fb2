package engine

import "time"

// QueueSample is one queue's depth for metrics.
type QueueSample struct {
	Tenant, Service string
	Waiting         int
	LongestWait     time.Duration
}

// QueueSamples are the depth and longest wait of every queue of the
// tenants this replica holds.
func (e *Engine) QueueSamples() []QueueSample {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.now()
	var out []QueueSample
	for id, t := range e.tenants {
		if e.mine(id) != nil {
			continue
		}
		for sid, q := range t.queues {
			s := QueueSample{Tenant: id, Service: sid, Waiting: q.waiting.Len()}
			if oldest, ok := q.byAge.Min(); ok {
				s.LongestWait = max(now.Sub(oldest.QueuedAt), 0)
			}
			out = append(out, s)
		}
	}
	return out
}
