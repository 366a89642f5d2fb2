package core

import "sync"

// convCache remembers the active session of the conversations this replica
// has seen (tenant/conversation key → session id), which spares each
// customer message the read of the conversation's active pointer. It is
// only a hint: the session is read by _id for every message anyway, and an
// entry whose session has ended (here or on another replica) is dropped
// and the pointer read again. Bounded: when full, an arbitrary entry goes.
type convCache struct {
	mu  sync.Mutex
	ids map[string]string
	max int
}

func newConvCache(max int) *convCache {
	return &convCache{ids: make(map[string]string), max: max}
}

func (c *convCache) get(tenant, key string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ids[tenant+"/"+key]
}

func (c *convCache) put(tenant, key, sessionID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := tenant + "/" + key
	if _, ok := c.ids[k]; !ok && len(c.ids) >= c.max {
		for old := range c.ids {
			delete(c.ids, old)
			break
		}
	}
	c.ids[k] = sessionID
}

// drop forgets the conversation's entry if it still names sessionID.
func (c *convCache) drop(tenant, key, sessionID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if k := tenant + "/" + key; c.ids[k] == sessionID {
		delete(c.ids, k)
	}
}
