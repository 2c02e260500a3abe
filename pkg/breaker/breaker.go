// Package breaker is a circuit breaker for calls to a service that can be down: it opens
// after a run of consecutive failures or when the failure ratio over a sliding window passes
// a threshold, lets one probe through after a cooldown (half-open), and closes again on the
// probe's success. It is pure logic on an injectable clock and starts no goroutines.
package breaker

import (
	"sync"
	"time"
)

// State is the breaker's state.
type State int

const (
	// Closed lets every call through.
	Closed State = iota
	// Open refuses calls until the cooldown has passed.
	Open
	// HalfOpen lets one probe through; its outcome closes or re-opens the breaker.
	HalfOpen
)

// String returns the lower-case name used in logs and metrics.
func (s State) String() string {
	switch s {
	case Closed:
		return "closed"
	case Open:
		return "open"
	case HalfOpen:
		return "half-open"
	}
	return "unknown"
}

// Options configure a Breaker. A nil *Options, and every zero field, means the default.
type Options struct {
	// ConsecutiveFailures opens the breaker after this many failures in a row; default 5.
	ConsecutiveFailures int
	// FailureRatio opens the breaker when failures/calls over Window reach it, once at least
	// MinCalls were recorded in the window; default 0.5. Negative disables the ratio rule.
	FailureRatio float64
	// Window is the sliding window of the ratio rule; default 30s.
	Window time.Duration
	// MinCalls is how many calls the window must hold before the ratio rule applies; default 20.
	MinCalls int
	// Cooldown is how long the breaker stays open before it lets a probe through, and how
	// long a probe may stay unanswered before another is allowed; default 10s.
	Cooldown time.Duration
	// OnStateChange is called (under the breaker's lock: quick, and must not call back into
	// the breaker) on every transition.
	OnStateChange func(from, to State)
	// Now is the clock; default time.Now.
	Now func() time.Time
}

const buckets = 10

type bucket struct {
	start         time.Time
	calls, failed int
}

// Breaker is a circuit breaker. It is safe for concurrent use.
type Breaker struct {
	opts Options

	mu          sync.Mutex
	state       State
	consecutive int
	openedAt    time.Time
	probeAt     time.Time // when the outstanding probe was handed out; zero: none
	window      [buckets]bucket
}

// New returns a closed breaker.
func New(opts *Options) *Breaker {
	o := Options{}
	if opts != nil {
		o = *opts
	}
	if o.ConsecutiveFailures <= 0 {
		o.ConsecutiveFailures = 5
	}
	if o.FailureRatio == 0 {
		o.FailureRatio = 0.5
	}
	if o.Window <= 0 {
		o.Window = 30 * time.Second
	}
	if o.MinCalls <= 0 {
		o.MinCalls = 20
	}
	if o.Cooldown <= 0 {
		o.Cooldown = 10 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Breaker{opts: o}
}

// State returns the state now; an open breaker whose cooldown has passed is half-open.
func (b *Breaker) State() State {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.advance(b.opts.Now())
	return b.state
}

// Cooldown is the configured cooldown.
func (b *Breaker) Cooldown() time.Duration { return b.opts.Cooldown }

// Remaining is how long an open breaker stays open; zero when it is not open.
func (b *Breaker) Remaining() time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.opts.Now()
	b.advance(now)
	if b.state != Open {
		return 0
	}
	return b.openedAt.Add(b.opts.Cooldown).Sub(now)
}

// Allow reports whether a call may be made now. When closed it always may. When half-open
// exactly one caller gets true (the probe) until the probe's outcome is recorded or it has
// been out for a cooldown; when open, no one does.
func (b *Breaker) Allow() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.opts.Now()
	b.advance(now)
	switch b.state {
	case Closed:
		return true
	case HalfOpen:
		if b.probeAt.IsZero() || now.Sub(b.probeAt) >= b.opts.Cooldown {
			b.probeAt = now
			return true
		}
	}
	return false
}

// Success records a call that the service answered properly.
func (b *Breaker) Success() {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.opts.Now()
	b.advance(now)
	b.consecutive = 0
	b.count(now, false)
	if b.state != Closed {
		b.transition(Closed, now)
	}
}

// Failure records a call that failed because of the service (unavailable, timed out,
// throttled beyond retries).
func (b *Breaker) Failure() {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.opts.Now()
	b.advance(now)
	b.consecutive++
	b.count(now, true)
	switch b.state {
	case HalfOpen:
		b.transition(Open, now) // the probe failed: another cooldown
	case Closed:
		if b.consecutive >= b.opts.ConsecutiveFailures || b.ratioTripped(now) {
			b.transition(Open, now)
		}
	}
}

// advance moves an open breaker whose cooldown has passed to half-open.
func (b *Breaker) advance(now time.Time) {
	if b.state == Open && now.Sub(b.openedAt) >= b.opts.Cooldown {
		b.transition(HalfOpen, now)
	}
}

func (b *Breaker) transition(to State, now time.Time) {
	from := b.state
	b.state = to
	b.probeAt = time.Time{}
	switch to {
	case Open:
		b.openedAt = now
	case Closed:
		b.consecutive = 0
		b.window = [buckets]bucket{}
	}
	if b.opts.OnStateChange != nil && from != to {
		b.opts.OnStateChange(from, to)
	}
}

func (b *Breaker) span() time.Duration { return max(b.opts.Window/buckets, time.Nanosecond) }

// count adds one outcome to the bucket of now, reusing buckets that fell out of the window.
func (b *Breaker) count(now time.Time, failed bool) {
	span := b.span()
	start := now.Truncate(span)
	i := int((start.UnixNano() / int64(span)) % buckets)
	if !b.window[i].start.Equal(start) {
		b.window[i] = bucket{start: start}
	}
	b.window[i].calls++
	if failed {
		b.window[i].failed++
	}
}

func (b *Breaker) ratioTripped(now time.Time) bool {
	if b.opts.FailureRatio < 0 {
		return false
	}
	calls, failed := 0, 0
	for _, w := range b.window {
		if !w.start.IsZero() && now.Sub(w.start) < b.opts.Window {
			calls += w.calls
			failed += w.failed
		}
	}
	return calls >= b.opts.MinCalls && float64(failed) >= b.opts.FailureRatio*float64(calls)
}
