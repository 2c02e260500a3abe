package indexstore

import (
	"slices"
	"sync"
)

// keyLocks serialises this process's transactions on one document: concurrent transactions
// on one document only abort each other (Firestore locks the documents a transaction read),
// so within a process they queue instead, and contention is left to separate processes.
type keyLocks struct {
	mu    sync.Mutex
	locks map[string]*keyLock
}

type keyLock struct {
	mu   sync.Mutex
	refs int
}

// lock locks every id (in sorted order, so two callers never wait on each other in a cycle)
// and returns the function that unlocks them.
func (k *keyLocks) lock(ids ...string) (unlock func()) {
	ids = slices.Clone(ids)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	held := make([]*keyLock, len(ids))
	k.mu.Lock()
	if k.locks == nil {
		k.locks = map[string]*keyLock{}
	}
	for i, id := range ids {
		l := k.locks[id]
		if l == nil {
			l = &keyLock{}
			k.locks[id] = l
		}
		l.refs++
		held[i] = l
	}
	k.mu.Unlock()
	for _, l := range held {
		l.mu.Lock()
	}
	return func() {
		for _, l := range held {
			l.mu.Unlock()
		}
		k.mu.Lock()
		for i, id := range ids {
			if held[i].refs--; held[i].refs == 0 {
				delete(k.locks, id)
			}
		}
		k.mu.Unlock()
	}
}
