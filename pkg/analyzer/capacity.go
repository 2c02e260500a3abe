package analyzer

import (
	"context"
	"sync"
	"time"
)

// capacity is the analyzer's admission control, all of it in one place. A message is held
// from its receive until it leaves the worker stage (its Vision call done, or found to need
// none); a worker is taken only for the Vision call itself. With W workers and A messages of
// receive-ahead:
//
//   - the receive loop receives only while some worker is idle that no held message will take
//     (held < W), and then at most W+A-held messages: received messages wait, their leases
//     kept, for the next workers to free, and receiving pauses while every worker is busy or
//     has a message waiting for it;
//   - a held message takes a worker when one is free (busy < W);
//   - W changes when the autoscaler resizes the pool; a shrink interrupts no work, it only
//     hands out no worker until busy is below the new size.
//
// The finishing stage after it (publish, settle) is bounded on its own by finishing.
type capacity struct {
	ahead int

	mu      sync.Mutex
	workers int           // W
	held    int           // received, not yet out of the worker stage
	busy    int           // in their Vision call
	changed chan struct{} // closed and replaced whenever a number above changes
}

func newCapacity(workers, ahead int) *capacity {
	return &capacity{workers: workers, ahead: ahead, changed: make(chan struct{})}
}

// signal wakes the waiters; c.mu is held.
func (c *capacity) signal() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// wait waits until ok, called with c.mu held, returns true, or ctx ends.
func (c *capacity) wait(ctx context.Context, ok func() bool) bool {
	for {
		c.mu.Lock()
		if ok() {
			c.mu.Unlock()
			return true
		}
		ch := c.changed
		c.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return false
		}
	}
}

// admit waits until a worker is idle that no held message will take, then reserves room for
// up to max messages (within W+A), waiting up to linger for the room to grow to that many so
// that a receive is fuller. It returns how many it reserved; 0 when ctx ended.
func (c *capacity) admit(ctx context.Context, max int, linger time.Duration) int {
	if !c.wait(ctx, func() bool { return c.held < c.workers }) {
		return 0
	}
	if linger > 0 {
		lctx, cancel := context.WithTimeout(ctx, linger)
		c.wait(lctx, func() bool { return c.workers+c.ahead-c.held >= min(max, c.workers+c.ahead) })
		cancel()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	n := min(max, c.workers+c.ahead-c.held)
	if n <= 0 || ctx.Err() != nil {
		return 0
	}
	c.held += n
	return n
}

// unadmit gives back room reserved for n messages that were not received.
func (c *capacity) unadmit(n int) {
	if n <= 0 {
		return
	}
	c.mu.Lock()
	c.held -= n
	c.signal()
	c.mu.Unlock()
}

// work takes a worker for a held message, waiting until one is free; false when ctx ended
// first (the message has no worker and stays held).
func (c *capacity) work(ctx context.Context) bool {
	return c.wait(ctx, func() bool {
		if c.busy < c.workers {
			c.busy++
			return true
		}
		return false
	})
}

// leave says a held message left the worker stage; worked says whether it had a worker.
func (c *capacity) leave(worked bool) {
	c.mu.Lock()
	c.held--
	if worked {
		c.busy--
	}
	c.signal()
	c.mu.Unlock()
}

func (c *capacity) resize(workers int) {
	c.mu.Lock()
	c.workers = workers
	c.signal()
	c.mu.Unlock()
}

func (c *capacity) size() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.workers
}

// stage bounds how many messages are in a stage at once.
type stage chan struct{}

// enter takes a place, waiting until one is free; false when ctx ended first.
func (s stage) enter(ctx context.Context) bool {
	select {
	case s <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}

func (s stage) exit() { <-s }

// runner runs functions on goroutines that it keeps for the next ones: a message's whole
// life runs on one, and the goroutine (and the stack it grew through the SDKs' calls) serves
// the next message after. It starts a goroutine only when none is idle; capacity and the
// finishing stage bound how many are ever busy. Run owns it: close stops the goroutines
// once their work is done, and wait waits for them.
type runner struct {
	jobs chan func()
	wg   sync.WaitGroup
}

func newRunner() *runner { return &runner{jobs: make(chan func())} }

func (r *runner) run(f func()) {
	select {
	case r.jobs <- f: // an idle goroutine takes it
	default:
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			f()
			for f := range r.jobs {
				f()
			}
		}()
	}
}

// close lets the goroutines end once their work is done; wait waits for them.
func (r *runner) close() { close(r.jobs) }
func (r *runner) wait()  { r.wg.Wait() }
