package ratelimit

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"
)

// BucketOptions tunes a Bucket. Nil means defaults.
type BucketOptions struct {
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Adaptive makes the rate adapt to the outcomes given to Adapt, below the rate given to
	// NewBucket (see Adaptive); nil keeps the rate fixed.
	Adaptive *Adaptive
}

// Bucket is a token bucket: it holds at most burst tokens and refills at a steady rate.
// Each call takes one token; when none is left the caller waits for the next one.
// A Bucket is safe for concurrent use.
type Bucket struct {
	ceiling float64 // the rate given to NewBucket; +Inf means unlimited
	burst   float64 // the burst given to NewBucket
	now     func() time.Time

	mu     sync.Mutex
	rate   float64 // tokens per second now: the ceiling, or below it when adaptive
	tokens float64 // may go negative: tokens promised to callers that are waiting
	last   time.Time
	adapt  *adaptState // nil: the rate is fixed
}

// NewBucket returns a bucket that allows perSecond calls per second on average and burst
// calls at once, starting full. perSecond = math.Inf(1) means unlimited. burst below 1 is
// treated as 1. It panics if perSecond is not positive, as that is a configuration bug the
// caller validates.
func NewBucket(perSecond float64, burst int, opts *BucketOptions) *Bucket {
	if !(perSecond > 0) {
		panic(fmt.Sprintf("ratelimit: rate %v is not positive", perSecond))
	}
	b := &Bucket{ceiling: perSecond, rate: perSecond, burst: float64(max(burst, 1)), now: time.Now}
	if opts != nil && opts.Now != nil {
		b.now = opts.Now
	}
	b.last = b.now()
	if opts != nil && opts.Adaptive != nil && !math.IsInf(perSecond, 1) {
		b.adapt = newAdaptState(*opts.Adaptive, perSecond, b.last)
		b.rate = b.adapt.initial
	}
	b.tokens = b.capacity()
	return b
}

// Rate returns the refill rate in calls per second: for an adaptive bucket, the rate it has
// adapted to now.
func (b *Bucket) Rate() float64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.rate
}

// Burst returns the bucket's capacity: for an adaptive bucket, the burst given to NewBucket
// scaled by how far the rate is below its ceiling (at least 1).
func (b *Bucket) Burst() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return int(b.capacity())
}

// capacity is the most tokens the bucket holds. b.mu must be held (or b not yet shared).
func (b *Bucket) capacity() float64 {
	if b.adapt == nil {
		return b.burst
	}
	return max(1, b.burst*b.rate/b.ceiling)
}

// Reservation is one token taken from a Bucket, or (Again) a place in line to come back for.
type Reservation struct {
	// Delay is how long the caller must wait before using the token.
	Delay time.Duration
	// Again is set by an adaptive bucket when the token would have been further ahead than
	// it schedules: no token was taken, and after Delay the caller reserves again. (A token
	// promised far ahead keeps the rate of the moment it was given: with many callers
	// waiting, a rate cut would reach the far side only seconds later, and a rate rise would
	// leave them waiting too long.)
	Again bool
	b     *Bucket
}

// Reserve takes a token now and reports how long to wait before using it. It never blocks.
// A caller that decides not to wait must Cancel the reservation. A caller of an adaptive
// bucket must reserve again after the Delay of a reservation marked Again.
func (b *Bucket) Reserve() Reservation {
	if math.IsInf(b.ceiling, 1) {
		return Reservation{}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.refill()
	b.tokens--
	if b.tokens >= 0 {
		if b.adapt != nil {
			b.adapt.outstanding++
		}
		return Reservation{b: b}
	}
	wait := time.Duration(math.Ceil(-b.tokens * float64(time.Second) / b.rate))
	if b.adapt != nil {
		b.adapt.limitedAt = now
		if h := b.adapt.horizon(b.rate); wait > h {
			b.tokens++ // not taken
			return Reservation{Delay: min(max(wait-h, minAgain), h), Again: true}
		}
		b.adapt.outstanding++
	}
	return Reservation{Delay: wait, b: b}
}

// Cancel returns an unused token to the bucket. It is a no-op on the zero Reservation;
// calling it twice returns two tokens, so call it once.
func (r Reservation) Cancel() {
	if r.b == nil {
		return
	}
	r.b.mu.Lock()
	defer r.b.mu.Unlock()
	r.b.refill()
	r.b.tokens = min(r.b.tokens+1, r.b.capacity())
	if a := r.b.adapt; a != nil && a.outstanding > 0 {
		a.outstanding--
	}
}

// refill adds the tokens earned since the last call and returns the time. b.mu must be held.
func (b *Bucket) refill() time.Time {
	now := b.now()
	if elapsed := now.Sub(b.last); elapsed > 0 {
		b.tokens = min(b.capacity(), b.tokens+elapsed.Seconds()*b.rate)
	}
	// A clock that steps backwards earns nothing and does not move last back.
	if now.After(b.last) {
		b.last = now
	}
	return now
}

// Wait blocks until a token is available or ctx ends. It fails at once, without waiting,
// when ctx's deadline comes before the token would. Wait sleeps on the real clock; a caller
// with its own clock uses Reserve and sleeps itself.
func (b *Bucket) Wait(ctx context.Context) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		r := b.Reserve()
		if r.Delay <= 0 && !r.Again {
			return nil
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < r.Delay {
			r.Cancel()
			return fmt.Errorf("rate limit wait %v exceeds deadline: %w", r.Delay, context.DeadlineExceeded)
		}
		t := time.NewTimer(r.Delay)
		select {
		case <-t.C:
			if !r.Again {
				return nil
			}
			// An adaptive bucket's place in line: reserve again.
		case <-ctx.Done():
			t.Stop()
			r.Cancel()
			return ctx.Err()
		}
	}
}
