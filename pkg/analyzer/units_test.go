package analyzer

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"imgpipe/pkg/failure"
	"imgpipe/pkg/vision"
)

// TestVerdict: what becomes of a message after its work, in the order of the concerns: done
// beats everything; then shutdown (cut off: released); then poison (permanent: dead-letter);
// then the circuit (a dependency's failure while it is not closed: deferred); then retry.
func TestVerdict(t *testing.T) {
	transient := failure.Transientf("InternalServerError", "vision 500")
	permanent := failure.Permanentf("InvalidImageFormat", "not an image")
	dep := &dependencyFault{dep: depVision, err: transient}
	permanentVerdict := failure.New(failure.Permanent, "InvalidImageFormat", &vision.APIError{StatusCode: 400})
	wrapped := fmt.Errorf("ObjectCreated:Put b/k: %w", dep)
	for _, tc := range []struct {
		name        string
		err         error
		cut, closed bool
		want        action
	}{
		{"done", nil, false, true, actDelete},
		{"done just as the deadline passed", nil, true, false, actDelete},
		{"cut off", transient, true, true, actRelease},
		{"cut off with a permanent error", permanent, true, true, actRelease},
		{"permanent", permanent, false, true, actDeadLetter},
		{"permanent while the circuit is open", permanentVerdict, false, false, actDeadLetter},
		{"a dependency's permanent answer, circuit open", &dependencyFault{dep: depS3, err: permanent}, false, false, actDeadLetter},
		{"dependency, circuit open", wrapped, false, false, actDefer},
		{"dependency, circuit closed", wrapped, false, true, actRetry},
		{"transient, circuit open", transient, false, false, actRetry},
		{"transient", transient, false, true, actRetry},
		{"unclassified", errors.New("boom"), false, true, actRetry},
	} {
		if got := verdict(tc.err, tc.cut, tc.closed); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}

// TestCapacity: receive only while a worker is idle that no held message will take, and at
// most W+A-held; a worker per Vision call; resizing changes what is handed out, not what is
// under way.
func TestCapacity(t *testing.T) {
	ctx := context.Background()
	c := newCapacity(2, 1)
	if n := c.admit(ctx, 10, 0); n != 3 {
		t.Fatalf("admit on an idle pool of 2 with 1 ahead: %d, want 3", n)
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	if n := c.admit(short, 10, 0); n != 0 {
		t.Fatalf("admit with 3 held for 2 workers: %d, want to wait", n)
	}
	cancel()
	if !c.work(ctx) || !c.work(ctx) {
		t.Fatal("2 held messages could not take the 2 workers")
	}
	short, cancel = context.WithTimeout(ctx, 20*time.Millisecond)
	if c.work(short) {
		t.Fatal("a third worker was handed out")
	}
	cancel()
	c.leave(true) // one done with Vision: 2 held, 1 busy, no idle worker free of a waiter
	short, cancel = context.WithTimeout(ctx, 20*time.Millisecond)
	if n := c.admit(short, 10, 0); n != 0 {
		t.Fatalf("admit while the idle worker is promised to the held message: %d, want to wait", n)
	}
	cancel()
	c.leave(false) // the waiting message needed no worker after all: 1 held
	if n := c.admit(ctx, 10, 0); n != 2 {
		t.Fatalf("admit with 1 held: %d, want 2 (W+A-held)", n)
	}
	c.unadmit(2)
	// Growing hands out more; lingering waits for a fuller batch.
	c.resize(4)
	if n := c.admit(ctx, 10, 0); n != 4 {
		t.Fatalf("admit after growing to 4: %d, want 4", n)
	}
	done := make(chan int)
	go func() { done <- c.admit(ctx, 10, time.Minute) }()
	time.Sleep(20 * time.Millisecond)
	for range 5 { // 5 held for 4 workers, then fewer: the lingering admit waits for room 5 = W+A
		c.leave(false)
	}
	if n := <-done; n != 5 {
		t.Fatalf("lingering admit got %d, want 5", n)
	}
	// Shrinking interrupts nothing, and hands out no worker until the busy ones are below the
	// new size.
	c = newCapacity(3, 1)
	if n := c.admit(ctx, 10, 0); n != 4 {
		t.Fatalf("admit on a pool of 3 with 1 ahead: %d", n)
	}
	for range 3 {
		c.work(ctx)
	}
	c.resize(2)
	c.leave(true) // 2 busy of 2, and the 4th message waits for a worker
	short, cancel = context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if c.work(short) {
		t.Fatal("a worker was handed out with 2 busy for a pool shrunk to 2")
	}
	c.leave(true)
	if !c.work(ctx) || c.size() != 2 {
		t.Fatalf("no worker once one of the 2 freed (size %d)", c.size())
	}
}
