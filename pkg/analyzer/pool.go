package analyzer

import (
	"context"
	"sync"
)

// pool is a semaphore whose size can change while it is in use: the worker slots. Shrinking
// never interrupts work; slots in use above the new size are simply not handed out again.
type pool struct {
	mu      sync.Mutex
	limit   int
	used    int
	waiting int           // messages expected to ask for a slot (see expect, done)
	changed chan struct{} // closed and replaced whenever a slot frees, the size or waiting changes
}

func newPool(n int) *pool { return &pool{limit: n, changed: make(chan struct{})} }

// acquire takes a slot, waiting until one is free or ctx ends.
func (p *pool) acquire(ctx context.Context) bool {
	return p.waitFor(ctx, func() bool {
		if p.used < p.limit {
			p.used++
			return true
		}
		return false
	})
}

// waitIdle waits until a slot is free that no expected message will take, or ctx ends.
func (p *pool) waitIdle(ctx context.Context) bool {
	return p.waitFor(ctx, func() bool { return p.limit-p.used > p.waiting })
}

// waitFor waits until ok, called with p.mu held, returns true, or ctx ends. ok is checked
// again whenever the pool signals a change.
func (p *pool) waitFor(ctx context.Context, ok func() bool) bool {
	for {
		p.mu.Lock()
		if ok() {
			p.mu.Unlock()
			return true
		}
		ch := p.changed
		p.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return false
		}
	}
}

// expect counts n messages that will ask for a slot; each calls done once it has one, or
// will not ask after all.
func (p *pool) expect(n int) {
	p.mu.Lock()
	p.waiting += n
	p.mu.Unlock()
}

// done ends one expect.
func (p *pool) done() {
	p.mu.Lock()
	p.waiting--
	p.signal()
	p.mu.Unlock()
}

// tryAcquire takes a slot if one is free now.
func (p *pool) tryAcquire() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.used < p.limit {
		p.used++
		return true
	}
	return false
}

func (p *pool) release() {
	p.mu.Lock()
	p.used--
	p.signal()
	p.mu.Unlock()
}

func (p *pool) resize(n int) {
	p.mu.Lock()
	p.limit = n
	p.signal()
	p.mu.Unlock()
}

func (p *pool) size() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.limit
}

func (p *pool) signal() {
	close(p.changed)
	p.changed = make(chan struct{})
}
