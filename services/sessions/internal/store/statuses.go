package store

import "sync"

// statusRanks remembers the delivery status of the outbound messages this
// replica appended or moved last (message key → rank), so a status update
// needs no read to tell whether it moves the status forward. A message it
// does not remember (another replica's, or before a restart) gets the
// status appended without a read (UpdateStatus). Bounded: when full, it
// starts over.
type statusRanks struct {
	mu    sync.Mutex
	ranks map[string]int
	max   int
}

func newStatusRanks(max int) *statusRanks {
	return &statusRanks{ranks: make(map[string]int), max: max}
}

func (r *statusRanks) get(key string) (int, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	v, ok := r.ranks[key]
	return v, ok
}

func (r *statusRanks) put(key string, rank int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.ranks[key]; !ok && len(r.ranks) >= r.max {
		clear(r.ranks)
	}
	if rank > r.ranks[key] {
		r.ranks[key] = rank
	}
}
