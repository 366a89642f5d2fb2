package app

import "sync"

// keyedMutex serializes read-modify-write cycles per record within the
// process. On MongoDB the conditional replace by version is atomic on its
// own; FerretDB (dev and tests) evaluates the filter and writes in separate
// steps, so two concurrent replaces at the same version could both succeed
// there. Holding this lock around every update makes "exactly one of
// several concurrent updates at one version wins" true on both engines for
// one config replica; several replicas need MongoDB.
type keyedMutex struct {
	mu    sync.Mutex
	locks map[string]*keyedLock
}

type keyedLock struct {
	sync.Mutex
	refs int
}

// lock locks key and returns its unlock.
func (k *keyedMutex) lock(key string) (unlock func()) {
	k.mu.Lock()
	if k.locks == nil {
		k.locks = map[string]*keyedLock{}
	}
	l := k.locks[key]
	if l == nil {
		l = &keyedLock{}
		k.locks[key] = l
	}
	l.refs++
	k.mu.Unlock()
	l.Lock()
	return func() {
		l.Unlock()
		k.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(k.locks, key)
		}
		k.mu.Unlock()
	}
}
