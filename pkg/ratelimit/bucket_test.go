package ratelimit

import (
	"context"
	"errors"
	"math"
	"sync"
	"testing"
	"time"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestBucketSequence(t *testing.T) {
	// Each step advances the clock, then reserves (or cancels the previous reservation).
	type step struct {
		advance time.Duration
		cancel  bool // cancel the previous reservation instead of reserving
		want    time.Duration
	}
	tests := []struct {
		name  string
		rate  float64
		burst int
		steps []step
	}{
		{"burst then wait", 10, 3, []step{
			{0, false, 0}, {0, false, 0}, {0, false, 0},
			{0, false, 100 * time.Millisecond},
			{0, false, 200 * time.Millisecond},
		}},
		{"refill over time", 2, 1, []step{
			{0, false, 0},
			{0, false, 500 * time.Millisecond},
			{500 * time.Millisecond, false, 500 * time.Millisecond},
			{time.Second, false, 0},
		}},
		{"refill never exceeds burst", 100, 2, []step{
			{time.Hour, false, 0}, {0, false, 0},
			{0, false, 10 * time.Millisecond},
		}},
		{"cancel gives the token back", 1, 1, []step{
			{0, false, 0},
			{0, false, time.Second},
			{0, true, 0},
			{0, false, time.Second},
		}},
		{"cancel is capped at burst", 1, 1, []step{
			{0, false, 0},
			{10 * time.Second, true, 0},
			{0, false, 0},
			{0, false, time.Second},
		}},
		{"clock stepping back earns nothing", 1, 1, []step{
			{0, false, 0},
			{-time.Hour, false, time.Second},
			{time.Hour, false, 2 * time.Second}, // back at the first instant: both still owed
		}},
		{"burst below one is one", 1, 0, []step{
			{0, false, 0},
			{0, false, time.Second},
		}},
		{"fractional rate rounds up", 3, 1, []step{
			{0, false, 0},
			{0, false, 333333334 * time.Nanosecond},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newFakeClock()
			b := NewBucket(tt.rate, tt.burst, &BucketOptions{Now: clk.Now})
			var prev Reservation
			for i, s := range tt.steps {
				clk.Advance(s.advance)
				if s.cancel {
					prev.Cancel()
					continue
				}
				prev = b.Reserve()
				if prev.Delay != s.want {
					t.Fatalf("step %d: Delay = %v, want %v", i, prev.Delay, s.want)
				}
			}
		})
	}
}

func TestBucketWaitIncludesDebt(t *testing.T) {
	// "refill over time" above, step 3: the debt from step 2 is still owed after 0.5 s.
	clk := newFakeClock()
	b := NewBucket(2, 1, &BucketOptions{Now: clk.Now})
	b.Reserve()
	b.Reserve()
	clk.Advance(500 * time.Millisecond)
	if d := b.Reserve().Delay; d != 500*time.Millisecond {
		t.Fatalf("Delay = %v, want 500ms", d)
	}
}

func TestBucketUnlimited(t *testing.T) {
	b := NewBucket(math.Inf(1), 1, nil)
	for range 1000 {
		if r := b.Reserve(); r.Delay != 0 {
			t.Fatalf("unlimited bucket asked to wait %v", r.Delay)
		}
	}
	b.Reserve().Cancel() // no-op, must not panic
}

func TestBucketPanicsOnBadRate(t *testing.T) {
	for _, r := range []float64{0, -1, math.NaN()} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("NewBucket(%v) did not panic", r)
				}
			}()
			NewBucket(r, 1, nil)
		}()
	}
}

func TestBucketWait(t *testing.T) {
	b := NewBucket(1000, 1, nil)
	ctx := context.Background()
	if err := b.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	// The next token is 1 ms away on the real clock.
	if err := b.Wait(ctx); err != nil {
		t.Fatal(err)
	}

	// A deadline shorter than the wait fails at once and returns the token.
	slow := NewBucket(0.001, 1, nil)
	slow.Reserve()
	dctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := slow.Wait(dctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait = %v, want DeadlineExceeded", err)
	}
	slow.mu.Lock()
	tokens := slow.tokens
	slow.mu.Unlock()
	if tokens < -0.0001 || tokens > 0.0001 {
		t.Fatalf("tokens after cancelled wait = %v, want about 0", tokens)
	}

	// Cancellation while waiting.
	cctx, cancel2 := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- slow.Wait(cctx) }()
	cancel2()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait = %v, want Canceled", err)
	}
	if err := slow.Wait(cctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait on done ctx = %v, want Canceled", err)
	}
}

func TestBucketConcurrentReservationsAreSpread(t *testing.T) {
	// 100 concurrent reservations at 10/s with burst 10 on a frozen clock must be handed
	// distinct slots: the delays are exactly 0 (x10), 100ms, 200ms, ... 9s.
	clk := newFakeClock()
	b := NewBucket(10, 10, &BucketOptions{Now: clk.Now})
	var (
		mu     sync.Mutex
		counts = map[time.Duration]int{}
		wg     sync.WaitGroup
	)
	for range 100 {
		wg.Go(func() {
			d := b.Reserve().Delay
			mu.Lock()
			counts[d]++
			mu.Unlock()
		})
	}
	wg.Wait()
	if counts[0] != 10 {
		t.Errorf("%d immediate tokens, want 10", counts[0])
	}
	for i := 1; i <= 90; i++ {
		d := time.Duration(i) * 100 * time.Millisecond
		if counts[d] != 1 {
			t.Errorf("delay %v handed out %d times, want once", d, counts[d])
		}
	}
}
