package indexer

import (
	"context"
	"sync"
	"time"
)

// revival watches Firestore while writes fail or are slow, and tells them when it answers
// again after failing. An attempt may be stuck in the Firestore client's own retry backoff,
// which grows to tens of seconds in a long outage (1.3 times per retry, up to 60 s), long
// after Firestore is back; told, the write cuts the attempt short and tries again at once.
type revival struct {
	ping     func(context.Context) error
	interval time.Duration
	stop     context.Context // Run's: the watch ends with it

	mu      sync.Mutex
	holders int
	back    context.Context // ends when Firestore answered again after failing
	fire    context.CancelFunc
	running bool
	wg      sync.WaitGroup
}

func newRevival(stop context.Context, ping func(context.Context) error, interval time.Duration) *revival {
	r := &revival{ping: ping, interval: interval, stop: stop}
	r.back, r.fire = context.WithCancel(context.Background())
	return r
}

// hold registers a write that failed or is slow and returns release, which the write calls
// once it is done. The watch runs while any write is registered.
func (r *revival) hold() (release func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.holders++
	if !r.running {
		r.running = true
		r.wg.Add(1)
		go r.watch()
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			r.mu.Lock()
			r.holders--
			r.mu.Unlock()
		})
	}
}

// pingTimeout bounds one ping: a Firestore that does not answer a one-document read within
// it counts as gone.
const pingTimeout = 5 * time.Second

// current returns the context that ends at Firestore's next return.
func (r *revival) current() context.Context {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.back
}

// watch pings Firestore every interval while writes are held; when a ping succeeds after one
// failed, it ends the current context (telling the held writes) and starts a new one.
func (r *revival) watch() {
	defer r.wg.Done()
	failed := false
	t := time.NewTicker(r.interval)
	defer t.Stop()
	for {
		select {
		case <-r.stop.Done():
			r.mu.Lock()
			r.running = false
			r.mu.Unlock()
			return
		case <-t.C:
		}
		r.mu.Lock()
		if r.holders == 0 {
			r.running = false
			r.mu.Unlock()
			return
		}
		r.mu.Unlock()
		pctx, cancel := context.WithTimeout(r.stop, pingTimeout)
		err := r.ping(pctx)
		cancel()
		switch {
		case err != nil:
			failed = true
		case failed:
			failed = false
			r.mu.Lock()
			r.fire()
			r.back, r.fire = context.WithCancel(context.Background())
			r.mu.Unlock()
		}
	}
}

// close waits for the watch to end (after stop, or once no write is held) and releases the
// current context.
func (r *revival) close() {
	r.wg.Wait()
	r.mu.Lock()
	r.fire()
	r.mu.Unlock()
}
