package ratelimit

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestNewAIMDDefaults(t *testing.T) {
	tests := []struct {
		name string
		opts *AIMDOptions
		want int
	}{
		{"nil", nil, 8},
		{"initial clamped to max", &AIMDOptions{Initial: 100, Max: 10}, 10},
		{"initial clamped to min", &AIMDOptions{Initial: 2, Min: 4}, 4},
		{"max below min raised", &AIMDOptions{Initial: 1, Min: 5, Max: 2}, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := NewAIMD(tt.opts).Limit(); got != tt.want {
				t.Errorf("Limit() = %d, want %d", got, tt.want)
			}
		})
	}
}

// TestAIMDAdapts drives the limiter one call at a time (acquire, release) so that the
// once-per-window rule never applies, and checks the limit after each outcome.
func TestAIMDAdapts(t *testing.T) {
	S, T, F := Succeeded, Throttled, Failed
	tests := []struct {
		name     string
		opts     AIMDOptions
		outcomes []Outcome
		want     []int // limit after each outcome
	}{
		{"additive increase after limit successes", AIMDOptions{Initial: 2, Max: 10},
			[]Outcome{S, S, S, S, S, S}, []int{2, 3, 3, 3, 4, 4}},
		{"increase stops at max", AIMDOptions{Initial: 2, Max: 3},
			[]Outcome{S, S, S, S, S, S}, []int{2, 3, 3, 3, 3, 3}},
		{"halve on throttle", AIMDOptions{Initial: 16},
			[]Outcome{T, T, T}, []int{8, 4, 2}},
		{"not below min", AIMDOptions{Initial: 5, Min: 3},
			[]Outcome{T, T}, []int{3, 3}},
		{"floor of min one", AIMDOptions{Initial: 1},
			[]Outcome{T}, []int{1}},
		{"failures change nothing", AIMDOptions{Initial: 4},
			[]Outcome{F, F, F, F, F}, []int{4, 4, 4, 4, 4}},
		{"throttle resets the success count", AIMDOptions{Initial: 4},
			[]Outcome{S, S, S, T, S, S, S}, []int{4, 4, 4, 2, 2, 3, 3}},
		{"custom backoff factor", AIMDOptions{Initial: 10, Backoff: 0.75},
			[]Outcome{T, T, T}, []int{7, 5, 3}},
		{"invalid backoff means half", AIMDOptions{Initial: 10, Backoff: 1.5},
			[]Outcome{T}, []int{5}},
		{"slow start grows per success until the first throttle, then additively", AIMDOptions{Initial: 2, Max: 10, SlowStart: true},
			[]Outcome{S, S, S, S, T, S, S, S, S}, []int{3, 4, 5, 6, 3, 3, 3, 4, 4}},
		{"slow start stops at max", AIMDOptions{Initial: 2, Max: 3, SlowStart: true},
			[]Outcome{S, S, S}, []int{3, 3, 3}},
		{"failures do not end slow start", AIMDOptions{Initial: 2, Max: 10, SlowStart: true},
			[]Outcome{S, F, S}, []int{3, 3, 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := NewAIMD(&tt.opts)
			for i, o := range tt.outcomes {
				if err := l.Acquire(context.Background()); err != nil {
					t.Fatal(err)
				}
				l.Release(o)
				if got := l.Limit(); got != tt.want[i] {
					t.Fatalf("after outcome %d (%v): Limit() = %d, want %d", i, o, got, tt.want[i])
				}
			}
			if l.InFlight() != 0 {
				t.Fatalf("InFlight() = %d, want 0", l.InFlight())
			}
		})
	}
}

func TestAIMDDecreasesOncePerWindow(t *testing.T) {
	l := NewAIMD(&AIMDOptions{Initial: 8})
	ctx := context.Background()
	for range 8 {
		if err := l.Acquire(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// All eight calls were sent at limit 8 and all come back throttled: one decrease.
	l.Release(Throttled)
	if got := l.Limit(); got != 4 {
		t.Fatalf("after first throttle Limit() = %d, want 4", got)
	}
	for range 7 {
		l.Release(Throttled)
	}
	if got := l.Limit(); got != 4 {
		t.Fatalf("throttles from the same window dropped the limit to %d, want 4", got)
	}
	// A call sent after the window is over counts again.
	if err := l.Acquire(ctx); err != nil {
		t.Fatal(err)
	}
	l.Release(Throttled)
	if got := l.Limit(); got != 2 {
		t.Fatalf("throttle after the window: Limit() = %d, want 2", got)
	}
}

func TestAIMDBlocksAtLimitAndServesInOrder(t *testing.T) {
	l := NewAIMD(&AIMDOptions{Initial: 1, Max: 1})
	ctx := context.Background()
	if err := l.Acquire(ctx); err != nil {
		t.Fatal(err)
	}
	order := make(chan int, 3)
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Go(func() {
			if err := l.Acquire(ctx); err != nil {
				t.Error(err)
				return
			}
			order <- i
		})
		// Queue the waiters in a known order.
		waitFor(t, func() bool {
			l.mu.Lock()
			defer l.mu.Unlock()
			return l.waiters.Len() == i+1
		})
	}
	select {
	case i := <-order:
		t.Fatalf("waiter %d ran while the limit was full", i)
	default:
	}
	for want := range 3 {
		l.Release(Failed)
		if got := <-order; got != want {
			t.Fatalf("waiter %d ran, want %d", got, want)
		}
	}
	wg.Wait()
	l.Release(Failed)
	if l.InFlight() != 0 {
		t.Fatalf("InFlight() = %d, want 0", l.InFlight())
	}
}

func TestAIMDAcquireCancelled(t *testing.T) {
	l := NewAIMD(&AIMDOptions{Initial: 1, Max: 1})
	if err := l.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Acquire(ctx) }()
	waitFor(t, func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.waiters.Len() == 1
	})
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Acquire = %v, want Canceled", err)
	}
	l.Release(Succeeded)
	if l.InFlight() != 0 {
		t.Fatalf("cancelled waiter kept a slot: InFlight() = %d", l.InFlight())
	}
	if err := l.Acquire(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Acquire on a done context = %v, want Canceled", err)
	}
}

func TestAIMDShrinkBelowInFlightBlocksNewCalls(t *testing.T) {
	l := NewAIMD(&AIMDOptions{Initial: 4})
	ctx := context.Background()
	for range 4 {
		if err := l.Acquire(ctx); err != nil {
			t.Fatal(err)
		}
	}
	l.Release(Throttled) // limit 2, 3 in flight
	short, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	if err := l.Acquire(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Acquire over the shrunken limit = %v, want DeadlineExceeded", err)
	}
	l.Release(Failed)
	l.Release(Failed) // 1 in flight, limit 2
	if err := l.Acquire(ctx); err != nil {
		t.Fatal(err)
	}
	if got := l.InFlight(); got != 2 {
		t.Fatalf("InFlight() = %d, want 2", got)
	}
}

func TestAIMDReleaseWithoutAcquirePanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("no panic")
		}
	}()
	NewAIMD(nil).Release(Succeeded)
}

// TestAIMDConcurrent hammers the limiter from many goroutines and checks that the number of
// calls in flight never exceeds the limit in force when each call started, nor Max.
func TestAIMDConcurrent(t *testing.T) {
	const maxLimit = 6
	l := NewAIMD(&AIMDOptions{Initial: 3, Max: maxLimit})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var (
		inFlight atomic.Int64
		wg       sync.WaitGroup
	)
	for g := range 16 {
		wg.Go(func() {
			for i := range 300 {
				// Give up on a few acquisitions to exercise the cancellation path.
				actx := ctx
				if (g+i)%17 == 0 {
					c, stop := context.WithCancel(ctx)
					stop()
					actx = c
				}
				if err := l.Acquire(actx); err != nil {
					continue
				}
				if n := inFlight.Add(1); n > maxLimit {
					t.Errorf("%d calls in flight, max %d", n, maxLimit)
				}
				inFlight.Add(-1)
				o := Succeeded
				switch (g*31 + i) % 10 {
				case 0:
					o = Throttled
				case 1:
					o = Failed
				}
				l.Release(o)
			}
		})
	}
	wg.Wait()
	if got := l.InFlight(); got != 0 {
		t.Fatalf("InFlight() = %d after all released", got)
	}
	if lim := l.Limit(); lim < 1 || lim > maxLimit {
		t.Fatalf("Limit() = %d outside [1, %d]", lim, maxLimit)
	}
	l.mu.Lock()
	waiting := l.waiters.Len()
	l.mu.Unlock()
	if waiting != 0 {
		t.Fatalf("%d waiters left behind", waiting)
	}
}

// waitFor polls cond; the condition is about goroutine scheduling, never about elapsed time.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for range 10000 {
		if cond() {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatal("condition never became true")
}
