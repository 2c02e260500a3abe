package analyzer

import (
	"context"
	"testing"
	"time"
)

func TestPool(t *testing.T) {
	p := newPool(2)
	if !p.tryAcquire() || !p.tryAcquire() || p.tryAcquire() {
		t.Fatal("a pool of 2 must hand out exactly 2 slots")
	}
	p.resize(3)
	if !p.tryAcquire() || p.tryAcquire() {
		t.Fatal("growing to 3 must free exactly one slot")
	}
	p.resize(1) // 3 in use: none handed out until two are back
	p.release()
	p.release()
	if p.tryAcquire() {
		t.Fatal("shrunk to 1 with 1 in use: no slot")
	}
	p.release()
	if !p.tryAcquire() {
		t.Fatal("shrunk to 1 with none in use: one slot")
	}

	// acquire waits for a release or a resize, and gives up when ctx ends.
	got := make(chan bool)
	go func() { got <- p.acquire(context.Background()) }()
	p.resize(2)
	if !<-got {
		t.Fatal("acquire did not return after a resize freed a slot")
	}
	go func() { got <- p.acquire(context.Background()) }()
	p.release()
	if !<-got {
		t.Fatal("acquire did not return after a release")
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { got <- p.acquire(ctx) }()
	cancel()
	if <-got {
		t.Fatal("acquire took a slot from a full pool")
	}
	if p.size() != 2 {
		t.Fatalf("size %d", p.size())
	}
}

func TestRetryDelay(t *testing.T) {
	a := &Analyzer{opts: Options{}}
	a.opts.Backoff.BaseDelay, a.opts.Backoff.MaxDelay = 5*time.Second, 15*time.Minute
	tests := []struct {
		receives   int
		serverWait time.Duration
		lo, hi     time.Duration
	}{
		{1, 0, 2500 * time.Millisecond, 5 * time.Second},
		{3, 0, 10 * time.Second, 20 * time.Second},
		{30, 0, 450 * time.Second, 15 * time.Minute},
		{1, time.Minute, time.Minute, time.Minute},
	}
	for _, tc := range tests {
		for range 20 {
			if d := a.retryDelay(tc.receives, tc.serverWait); d < tc.lo || d > tc.hi {
				t.Fatalf("retryDelay(%d, %v) = %v, want within [%v, %v]", tc.receives, tc.serverWait, d, tc.lo, tc.hi)
			}
		}
	}
}
