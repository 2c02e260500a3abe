package ratelimit

import (
	"container/list"
	"context"
	"math"
	"sync"
)

// Outcome is what became of a call made under an AIMD limit.
type Outcome int

const (
	// Succeeded calls grow the limit additively.
	Succeeded Outcome = iota
	// Throttled calls (the far side said "too many requests") shrink it multiplicatively.
	Throttled
	// Failed calls (any other error) leave it unchanged.
	Failed
)

// String returns the outcome's name for logs and metrics.
func (o Outcome) String() string {
	switch o {
	case Succeeded:
		return "succeeded"
	case Throttled:
		return "throttled"
	case Failed:
		return "failed"
	}
	return "outcome(?)"
}

// AIMDOptions tunes an AIMD limiter. Nil means defaults; zero fields take their default.
type AIMDOptions struct {
	// Initial is the starting limit; default 8, clamped to [Min, Max].
	Initial int
	// Min is the floor the limit never drops below; default 1.
	Min int
	// Max is the ceiling the limit never grows above; default 64.
	Max int
	// Backoff is the factor the limit is multiplied by on a throttled call, in (0, 1);
	// default 0.5.
	Backoff float64
	// SlowStart makes the limit grow by one per success (doubling with each window of
	// calls) until the first throttled call, as TCP's slow start does; from then on it grows
	// additively. Without it, climbing from 8 to 64 takes about 2,000 successful calls.
	SlowStart bool
	// Rate, when set, is given every outcome released (Bucket.Adapt): an adaptive bucket
	// then adapts its calls per second to the same throttling as this limit adapts its
	// calls in flight.
	Rate *Bucket
}

// AIMD bounds the number of calls in flight with a limit that adapts: additive increase
// (+1 after as many successes as the current limit, up to Max; +1 per success during an
// optional slow start that ends at the first throttled call), multiplicative decrease
// (×Backoff on a throttled call, not below Min).
//
// Like TCP, it decreases at most once per window: throttled outcomes from calls that were
// already in flight when the limit last dropped were sent at the old rate and do not drop it
// again. The window is counted in releases (the number of calls in flight at the decrease),
// since Release does not say which Acquire it ends.
//
// When the limit drops below the calls in flight, no call is interrupted; new calls wait
// until enough have finished. Waiters are served in order. An AIMD is safe for concurrent use.
type AIMD struct {
	min, max int
	backoff  float64
	rate     *Bucket

	mu        sync.Mutex
	limit     int
	inFlight  int
	successes int  // since the limit last changed
	slowStart bool // no call has been throttled yet and slow start was asked for
	window    int  // releases left during which a throttle does not decrease again
	waiters   list.List
}

// NewAIMD returns an AIMD limiter.
func NewAIMD(opts *AIMDOptions) *AIMD {
	var o AIMDOptions
	if opts != nil {
		o = *opts
	}
	if o.Min < 1 {
		o.Min = 1
	}
	if o.Max <= 0 {
		o.Max = 64
	}
	o.Max = max(o.Max, o.Min)
	if o.Initial <= 0 {
		o.Initial = 8
	}
	if !(o.Backoff > 0 && o.Backoff < 1) {
		o.Backoff = 0.5
	}
	return &AIMD{
		min:       o.Min,
		max:       o.Max,
		backoff:   o.Backoff,
		limit:     min(max(o.Initial, o.Min), o.Max),
		slowStart: o.SlowStart,
		rate:      o.Rate,
	}
}

// Limit returns the current limit on calls in flight.
func (l *AIMD) Limit() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.limit
}

// InFlight returns the number of calls acquired and not yet released.
func (l *AIMD) InFlight() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.inFlight
}

// Acquire blocks until a call may start or ctx ends. Every successful Acquire must be
// followed by exactly one Release.
func (l *AIMD) Acquire(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	l.mu.Lock()
	if l.waiters.Len() == 0 && l.inFlight < l.limit {
		l.inFlight++
		l.mu.Unlock()
		return nil
	}
	ready := make(chan struct{})
	elem := l.waiters.PushBack(ready)
	l.mu.Unlock()

	select {
	case <-ready:
		return nil
	case <-ctx.Done():
		l.mu.Lock()
		defer l.mu.Unlock()
		select {
		case <-ready:
			// Granted while we gave up: hand the slot on.
			l.inFlight--
		default:
			l.waiters.Remove(elem)
		}
		l.grant()
		return ctx.Err()
	}
}

// Release ends a call started by Acquire and adapts the limit (and the Rate bucket, if any) to
// its outcome. It panics when nothing is in flight.
func (l *AIMD) Release(o Outcome) {
	if l.rate != nil {
		defer l.rate.Adapt(o)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.inFlight == 0 {
		panic("ratelimit: AIMD.Release without Acquire")
	}
	l.inFlight--
	inWindow := l.window > 0
	if inWindow {
		l.window--
	}
	switch o {
	case Succeeded:
		l.successes++
		if l.slowStart || l.successes >= l.limit {
			l.successes = 0
			if l.limit < l.max {
				l.limit++
			}
		}
	case Throttled:
		l.slowStart = false
		if inWindow {
			break
		}
		l.successes = 0
		if next := max(l.min, int(math.Floor(float64(l.limit)*l.backoff))); next < l.limit {
			l.limit = next
		}
		l.window = l.inFlight
	}
	l.grant()
}

// grant wakes waiters, oldest first, while there is room. l.mu must be held.
func (l *AIMD) grant() {
	for l.inFlight < l.limit {
		front := l.waiters.Front()
		if front == nil {
			return
		}
		l.waiters.Remove(front)
		l.inFlight++
		close(front.Value.(chan struct{}))
	}
}
