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
}

// Bucket is a token bucket: it holds at most burst tokens and refills at a steady rate.
// Each call takes one token; when none is left the caller waits for the next one.
// A Bucket is safe for concurrent use.
type Bucket struct {
	rate  float64 // tokens per second; +Inf means unlimited
	burst float64
	now   func() time.Time

	mu     sync.Mutex
	tokens float64 // may go negative: tokens promised to callers that are waiting
	last   time.Time
}

// NewBucket returns a bucket that allows perSecond calls per second on average and burst
// calls at once, starting full. perSecond = math.Inf(1) means unlimited. burst below 1 is
// treated as 1. It panics if perSecond is not positive, as that is a configuration bug the
// caller validates.
func NewBucket(perSecond float64, burst int, opts *BucketOptions) *Bucket {
	if !(perSecond > 0) {
		panic(fmt.Sprintf("ratelimit: rate %v is not positive", perSecond))
	}
	b := &Bucket{rate: perSecond, burst: float64(max(burst, 1)), now: time.Now}
	if opts != nil && opts.Now != nil {
		b.now = opts.Now
	}
	b.tokens = b.burst
	b.last = b.now()
	return b
}

// Rate returns the refill rate in calls per second.
func (b *Bucket) Rate() float64 { return b.rate }

// Burst returns the bucket's capacity.
func (b *Bucket) Burst() int { return int(b.burst) }

// Reservation is one token taken from a Bucket.
type Reservation struct {
	// Delay is how long the caller must wait before using the token.
	Delay time.Duration
	b     *Bucket
}

// Reserve takes a token now and reports how long to wait before using it. It never blocks.
// A caller that decides not to wait must Cancel the reservation.
func (b *Bucket) Reserve() Reservation {
	if math.IsInf(b.rate, 1) {
		return Reservation{}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refill()
	b.tokens--
	if b.tokens >= 0 {
		return Reservation{b: b}
	}
	wait := time.Duration(math.Ceil(-b.tokens * float64(time.Second) / b.rate))
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
	r.b.tokens = min(r.b.tokens+1, r.b.burst)
}

// refill adds the tokens earned since the last call. b.mu must be held.
func (b *Bucket) refill() {
	now := b.now()
	if elapsed := now.Sub(b.last); elapsed > 0 {
		b.tokens = min(b.burst, b.tokens+elapsed.Seconds()*b.rate)
	}
	// A clock that steps backwards earns nothing and does not move last back.
	if now.After(b.last) {
		b.last = now
	}
}

// Wait blocks until a token is available or ctx ends. It fails at once, without waiting,
// when ctx's deadline comes before the token would. Wait sleeps on the real clock; a caller
// with its own clock uses Reserve and sleeps itself.
func (b *Bucket) Wait(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r := b.Reserve()
	if r.Delay <= 0 {
		return nil
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < r.Delay {
		r.Cancel()
		return fmt.Errorf("rate limit wait %v exceeds deadline: %w", r.Delay, context.DeadlineExceeded)
	}
	t := time.NewTimer(r.Delay)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		r.Cancel()
		return ctx.Err()
	}
}
