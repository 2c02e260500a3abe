package indexer

import (
	"context"
	"testing"
	"time"

	"imgpipe/pkg/queue"
)

// blocked reports whether f.acquire(want) still waits after a moment (a bound against
// hanging, not a speed assertion).
func blocked(f *flow, want int) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	return f.acquire(ctx, want) == 0
}

func bodies(n, size int) []*queue.Message {
	out := make([]*queue.Message, n)
	for i := range out {
		out[i] = &queue.Message{Body: make([]byte, size)}
	}
	return out
}

// TestFlow: a receive reserves no more than the bound, gives back what it did not get, waits
// until a quarter of the bound is free (or want, if less), and waits while the bytes held
// reach their bound.
func TestFlow(t *testing.T) {
	bg := context.Background()
	f := newFlow(8, 1000)
	if n := f.acquire(bg, 10); n != 8 {
		t.Fatalf("acquired %d of a bound of 8", n)
	}
	msgs := bodies(7, 10)
	f.received(8, msgs) // 7 of 8 came: 1 free
	if !blocked(f, 10) {
		t.Fatal("a receive was let through with 1 of 8 free")
	}
	if n := f.acquire(bg, 1); n != 1 {
		t.Fatalf("acquired %d for 1 with 1 free", n)
	}
	f.received(1, nil) // 1 free again
	f.done(msgs[0])    // 2 free: a quarter
	if n := f.acquire(bg, 10); n != 2 {
		t.Fatalf("acquired %d with 2 free", n)
	}

	b := newFlow(8, 100)
	if n := b.acquire(bg, 1); n != 1 {
		t.Fatal(n)
	}
	big := bodies(1, 100)
	b.received(1, big)
	if !blocked(b, 1) {
		t.Fatal("a receive was let through with the bytes bound reached")
	}
	b.done(big[0])
	if n := b.acquire(bg, 1); n != 1 {
		t.Fatalf("acquired %d once the bytes were freed", n)
	}
}
