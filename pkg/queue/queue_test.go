package queue_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"imgpipe/pkg/failure"
	"imgpipe/pkg/queue"
	"imgpipe/pkg/queue/memqueue"
	"imgpipe/pkg/retry"
)

// counting is a source that records the size of every Delete and Extend call.
type counting struct {
	queue.Source
	mu      sync.Mutex
	deletes []int
	extends []int
}

func (c *counting) Delete(ctx context.Context, msgs []*queue.Message) []error {
	c.mu.Lock()
	c.deletes = append(c.deletes, len(msgs))
	c.mu.Unlock()
	return c.Source.Delete(ctx, msgs)
}

func (c *counting) Extend(ctx context.Context, msgs []*queue.Message, hold time.Duration) []error {
	c.mu.Lock()
	c.extends = append(c.extends, len(msgs))
	c.mu.Unlock()
	return c.Source.Extend(ctx, msgs, hold)
}

func fill(t *testing.T, q *memqueue.Queue, n int, hold time.Duration) []*queue.Message {
	t.Helper()
	for i := range n {
		if err := q.SendBodies(fmt.Sprintf("m%02d", i)); err != nil {
			t.Fatal(err)
		}
	}
	var got []*queue.Message
	for len(got) < n {
		msgs, err := q.Receive(context.Background(), queue.MaxBatch, hold)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, msgs...)
	}
	return got
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !ok(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// TestDeleterBatches: 25 deletes go out in full batches of 10 and a last one flushed by
// Close; transient failures are tried again, permanent ones given up at once.
func TestDeleterBatches(t *testing.T) {
	q := memqueue.New("deleter", nil)
	msgs := fill(t, q, 25, time.Minute)
	src := &counting{Source: q}
	var tries sync.Map // message ID -> attempts
	q.SetFault(func(_ context.Context, op memqueue.Op, m *queue.Message) error {
		if op != memqueue.Delete {
			return nil
		}
		n, _ := tries.LoadOrStore(m.ID, new(atomic.Int32))
		k := n.(*atomic.Int32).Add(1)
		switch {
		case string(m.Body) == "m03" && k <= 2:
			return failure.Transientf("InternalFailure", "try again")
		case string(m.Body) == "m07":
			return failure.Permanentf("ReceiptHandleIsInvalid", "never")
		}
		return nil
	})
	d := queue.NewDeleter(src, &queue.DeleterOptions{FlushInterval: time.Hour, Backoff: queueBackoff})
	done := deleteAll(d, msgs)
	d.Close()
	d.Close()
	<-done
	left := q.Messages()
	if len(left) != 1 || string(left[0].Body) != "m07" {
		t.Fatalf("left on the queue: %+v, want only m07 (its delete failed for good)", left)
	}
	if n, _ := tries.Load(left[0].ID); n.(*atomic.Int32).Load() != 1 {
		t.Errorf("a permanent failure was tried %d times", n.(*atomic.Int32).Load())
	}
	src.mu.Lock()
	defer src.mu.Unlock()
	for i, n := range src.deletes {
		if n > queue.MaxBatch {
			t.Errorf("delete call %d took %d messages", i, n)
		}
	}
	if len(src.deletes) < 3 || src.deletes[0] != queue.MaxBatch || src.deletes[1] != queue.MaxBatch {
		t.Errorf("delete calls of %v messages: want full batches first", src.deletes)
	}
}

var queueBackoff = retryPolicy()

// deleteAll runs d and queues msgs for deletion; the channel is closed when Run returns.
func deleteAll(d *queue.Deleter, msgs []*queue.Message) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.Run(context.Background())
	}()
	for _, m := range msgs {
		d.Delete(m)
	}
	return done
}

// TestDeleterFlushesAfterInterval: a lone delete goes out after the flush interval, not only
// at Close.
func TestDeleterFlushesAfterInterval(t *testing.T) {
	q := memqueue.New("deleter-interval", nil)
	msgs := fill(t, q, 1, time.Minute)
	d := queue.NewDeleter(q, &queue.DeleterOptions{FlushInterval: 20 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.Run(ctx)
	}()
	d.Delete(msgs[0])
	waitFor(t, "the delete", func() bool { return len(q.Messages()) == 0 })
	cancel()
	<-done
}

// TestKeeperExtends: a message kept stays leased long past its hold; once dropped, its lease
// ends after one more hold and it is receivable again.
func TestKeeperExtends(t *testing.T) {
	const hold = 150 * time.Millisecond
	q := memqueue.New("keeper", nil)
	msgs := fill(t, q, 12, hold)
	src := &counting{Source: q}
	var extended atomic.Int64
	k := queue.NewKeeper(src, hold, &queue.KeeperOptions{Extended: func(n int) { extended.Add(int64(n)) }})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go k.Run(ctx)
	k.Keep(msgs...)
	waitFor(t, "three rounds of extensions", func() bool { return extended.Load() >= 3*12 })
	for _, s := range q.Messages() {
		if !s.Leased || s.ReceiveCount != 1 {
			t.Fatalf("kept message %s: leased %v, received %d times", s.Body, s.Leased, s.ReceiveCount)
		}
	}
	for _, m := range msgs {
		k.Drop(m)
	}
	waitFor(t, "the dropped leases to end", func() bool {
		d, _ := q.Depth(context.Background())
		return d.Visible == 12
	})
	src.mu.Lock()
	defer src.mu.Unlock()
	for i, n := range src.extends {
		if n > queue.MaxBatch {
			t.Errorf("extend call %d took %d messages", i, n)
		}
	}
}

// TestKeeperFailuresAndCancellation: a failed extension is reported; one cut off because the
// keeper stops is neither an extension nor a failure; Drop waits for an extension under way.
func TestKeeperFailuresAndCancellation(t *testing.T) {
	const hold = 150 * time.Millisecond
	q := memqueue.New("keeper-faults", nil)
	msgs := fill(t, q, 2, hold)
	entered := make(chan struct{}, 10)
	var block atomic.Bool
	q.SetFault(func(ctx context.Context, op memqueue.Op, m *queue.Message) error {
		if op != memqueue.Extend {
			return nil
		}
		if string(m.Body) == "m00" {
			return failure.Transientf("InternalFailure", "extension refused")
		}
		if block.Load() {
			entered <- struct{}{}
			<-ctx.Done()
			return ctx.Err()
		}
		return nil
	})
	var failed, extended atomic.Int64
	k := queue.NewKeeper(q, hold, &queue.KeeperOptions{
		Extended: func(n int) { extended.Add(int64(n)) },
		Failed:   func(*queue.Message, error) { failed.Add(1) },
		// Calls that hang are cut off by the keeper's end, not by their own timeout.
		CallTimeout: time.Hour,
	})
	stop := runKeeper(k)
	k.Keep(msgs...)
	waitFor(t, "a failed and a done extension", func() bool { return failed.Load() >= 1 && extended.Load() >= 1 })
	k.Drop(msgs[0])
	block.Store(true)
	<-entered // m01's extension hangs
	dropped := make(chan struct{})
	go func() {
		k.Drop(msgs[1])
		close(dropped)
	}()
	select {
	case <-dropped:
		t.Fatal("Drop returned while an extension of the message was under way")
	case <-time.After(50 * time.Millisecond):
	}
	f0, e0 := failed.Load(), extended.Load()
	stop()
	<-dropped
	if f, e := failed.Load(), extended.Load(); f != f0 || e != e0 {
		t.Errorf("the extension cut off by the keeper's end counted: failed %d -> %d, extended %d -> %d", f0, f, e0, e)
	}
}

// TestKeeperLostLease: a lease whose extension failed permanently (the lease is lost) is no
// longer extended; one that failed transiently is tried again.
func TestKeeperLostLease(t *testing.T) {
	const hold = 600 * time.Millisecond
	q := memqueue.New("keeper-lost", nil)
	msgs := fill(t, q, 2, hold)
	var calls sync.Map // body -> *atomic.Int64
	q.SetFault(func(_ context.Context, op memqueue.Op, m *queue.Message) error {
		if op != memqueue.Extend {
			return nil
		}
		n, _ := calls.LoadOrStore(string(m.Body), new(atomic.Int64))
		n.(*atomic.Int64).Add(1)
		if string(m.Body) == "m00" {
			return failure.Permanentf("MessageNotInflight", "lease lost")
		}
		return failure.Transientf("InternalFailure", "extension refused")
	})
	k := queue.NewKeeper(q, hold, nil)
	stop := runKeeper(k)
	k.Keep(msgs...)
	time.Sleep(2 * hold) // Every is 200 ms: 6 turns
	stop()
	count := func(body string) int64 {
		n, ok := calls.Load(body)
		if !ok {
			return 0
		}
		return n.(*atomic.Int64).Load()
	}
	if n := count("m00"); n != 1 {
		t.Errorf("the lost lease was extended %d times, want once", n)
	}
	if n := count("m01"); n < 2 {
		t.Errorf("the lease that failed transiently was tried %d times, want it tried again", n)
	}
}

// runKeeper runs k until the returned stop is called, which waits for Run to return.
func runKeeper(k *queue.Keeper) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		k.Run(ctx)
	}()
	return func() {
		cancel()
		<-done
	}
}

// short answers an Extend with fewer results than messages.
type short struct{ queue.Source }

func (s short) Extend(ctx context.Context, msgs []*queue.Message, hold time.Duration) []error {
	return s.Source.Extend(ctx, msgs, hold)[:len(msgs)-1]
}

// TestKeeperShortAnswer: a source that answers an extension of two messages with one result
// does not crash the keeper; the message without an answer is reported failed (NoAnswer),
// the other extended.
func TestKeeperShortAnswer(t *testing.T) {
	const hold = 150 * time.Millisecond
	q := memqueue.New("keeper-short", nil)
	msgs := fill(t, q, 2, hold)
	var mu sync.Mutex
	failed := map[string]int{}
	var extended atomic.Int64
	k := queue.NewKeeper(short{q}, hold, &queue.KeeperOptions{
		Extended: func(n int) { extended.Add(int64(n)) },
		Failed: func(m *queue.Message, err error) {
			mu.Lock()
			defer mu.Unlock()
			if failure.ClassOf(err) == failure.Transient {
				failed[failure.ReasonOf(err)]++
			}
		},
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		k.Run(ctx)
	}()
	k.Keep(msgs...)
	waitFor(t, "an extension answered short", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return failed["NoAnswer"] >= 1 && extended.Load() >= 1
	})
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	if len(failed) != 1 {
		t.Errorf("failures by reason %v, want NoAnswer only", failed)
	}
}

func retryPolicy() retry.Policy {
	return retry.Policy{BaseDelay: time.Millisecond, MaxDelay: time.Millisecond}
}

// TestTrim: over the limit, the expendable attributes go in their order until the message
// fits, and no other; under it, or with no limit, nothing goes.
func TestTrim(t *testing.T) {
	attrs := func(names ...string) map[string]queue.Attr {
		m := map[string]queue.Attr{}
		for _, n := range names {
			m[n] = queue.StringAttr("v")
		}
		return m
	}
	base := []string{failure.AttrReason, failure.AttrClass, failure.AttrAttempts, failure.AttrLastFailure, failure.AttrSourceQueue, failure.AttrReplayCount, "traceparent"}
	all := append(slices.Clone(base), "baggage", "tracestate", failure.AttrReplayedAt, failure.AttrError, failure.AttrFirstFailure)
	for _, c := range []struct {
		names []string
		limit int
		want  []string
	}{
		{all, 10, []string{"baggage", "tracestate"}},
		{all, 8, []string{"baggage", "tracestate", failure.AttrReplayedAt, failure.AttrError}},
		{all, 5, []string{"baggage", "tracestate", failure.AttrReplayedAt, failure.AttrError, failure.AttrFirstFailure}},
		{all, 0, nil},
		{all, 12, nil},
		{append(slices.Clone(base), "custom.1", "custom.2", failure.AttrError, "tracestate"), 10, []string{"tracestate"}},
	} {
		m := attrs(c.names...)
		got := queue.Trim(m, c.limit)
		if !slices.Equal(got, c.want) {
			t.Errorf("Trim(%d of them, %d) removed %v, want %v", len(c.names), c.limit, got, c.want)
		}
		if len(m) != len(c.names)-len(got) {
			t.Errorf("Trim(%d, %d) left %d", len(c.names), c.limit, len(m))
		}
	}
}

// wide is a counting source that declares a batch size of its own (queue.Batcher).
type wide struct {
	*counting
	size int
}

func (w *wide) BatchSize() int { return w.size }

// TestDeclaredBatchSize: a source that declares a larger batch gets deletes and extensions
// in batches that large; one that declares less than MaxBatch, or nothing, gets MaxBatch.
func TestDeclaredBatchSize(t *testing.T) {
	q := memqueue.New("wide", nil)
	for _, tc := range []struct {
		src  queue.Source
		want int
	}{{q, queue.MaxBatch}, {&wide{&counting{Source: q}, 3}, queue.MaxBatch}, {&wide{&counting{Source: q}, 25}, 25}} {
		if got := queue.BatchSize(tc.src); got != tc.want {
			t.Errorf("BatchSize(%T) = %d, want %d", tc.src, got, tc.want)
		}
	}

	const hold = 150 * time.Millisecond
	msgs := fill(t, q, 25, hold)
	src := &wide{&counting{Source: q}, 25}
	var extended atomic.Int64
	k := queue.NewKeeper(src, hold, &queue.KeeperOptions{Extended: func(n int) { extended.Add(int64(n)) }})
	ctx, cancel := context.WithCancel(context.Background())
	go k.Run(ctx)
	k.Keep(msgs...)
	waitFor(t, "two rounds of extensions", func() bool { return extended.Load() >= 2*25 })
	cancel()
	for _, m := range msgs {
		k.Drop(m)
	}
	d := queue.NewDeleter(src, &queue.DeleterOptions{FlushInterval: time.Hour})
	done := deleteAll(d, msgs)
	waitFor(t, "the full batch deleted before Close", func() bool { return len(q.Messages()) == 0 })
	d.Close()
	<-done
	src.mu.Lock()
	defer src.mu.Unlock()
	if !slices.Equal(src.deletes, []int{25}) {
		t.Errorf("delete calls of %v messages, want one of 25", src.deletes)
	}
	if len(src.extends) < 2 || src.extends[0] != 25 {
		t.Errorf("extend calls of %v messages, want 25 at a time", src.extends)
	}
}

// TestBatchesOf: messages are cut into calls of at most the size given (MaxBatch for
// Batches), and each message gets its own call's result, nil where a call answered short.
func TestBatchesOf(t *testing.T) {
	msgs := make([]*queue.Message, 25)
	for i := range msgs {
		msgs[i] = &queue.Message{ID: fmt.Sprint(i)}
	}
	refused := errors.New("refused")
	for _, tc := range []struct {
		size  int
		calls []int
	}{{10, []int{10, 10, 5}}, {25, []int{25}}, {100, []int{25}}, {0, slices.Repeat([]int{1}, 25)}} {
		var calls []int
		res := queue.BatchesOf(tc.size, msgs, func(b []*queue.Message) []error {
			calls = append(calls, len(b))
			out := queue.Each(len(b), refused)
			return out[:len(b)-1] // the last of each call unanswered
		})
		if !slices.Equal(calls, tc.calls) {
			t.Errorf("size %d: calls of %v, want %v", tc.size, calls, tc.calls)
		}
		ends := map[int]bool{}
		n := 0
		for _, c := range tc.calls {
			n += c
			ends[n-1] = true
		}
		for i, err := range res {
			if want := !ends[i]; (err != nil) != want || len(res) != len(msgs) {
				t.Fatalf("size %d: result %d is %v (of %d results)", tc.size, i, err, len(res))
			}
		}
	}
	var calls []int
	queue.Batches(msgs, func(b []*queue.Message) []error { calls = append(calls, len(b)); return nil })
	if !slices.Equal(calls, []int{10, 10, 5}) {
		t.Errorf("Batches: calls of %v, want MaxBatch at a time", calls)
	}
}

// TestKeeperManyBatchesHangOnce: when the first extension of each of 50 leases (5 batches
// due together) hangs until its call is cut, every lease is still extended before it ends:
// a pass is bounded by one CallTimeout however many batches it has, so the quick retry comes
// in time. Called one after another, each batch waiting out its own timeout, the fourth and
// fifth batches' retries came too late and all 50 leases were lost.
func TestKeeperManyBatchesHangOnce(t *testing.T) {
	const hold, n = 3 * time.Second, 50
	q := memqueue.New("hangs", nil)
	msgs := fill(t, q, n, hold)
	var seen sync.Map
	q.SetFault(func(ctx context.Context, op memqueue.Op, m *queue.Message) error {
		if op != memqueue.Extend {
			return nil
		}
		if _, again := seen.LoadOrStore(m.ID, true); !again {
			<-ctx.Done()
			return failure.New(failure.Transient, "DeadlineExceeded", ctx.Err())
		}
		return nil
	})
	var failed, lost atomic.Int32
	k := queue.NewKeeper(q, hold, &queue.KeeperOptions{Failed: func(_ *queue.Message, err error) {
		failed.Add(1)
		if failure.IsPermanent(err) {
			lost.Add(1)
		}
	}})
	stop := runKeeper(k)
	defer stop()
	k.Keep(msgs...)
	time.Sleep(2 * hold)
	if got, err := q.Receive(context.Background(), queue.MaxBatch, hold); err != nil || len(got) != 0 {
		t.Fatalf("received %d messages (err %v) while their leases were kept; want none", len(got), err)
	}
	if f, l := failed.Load(), lost.Load(); f != n || l != 0 {
		t.Fatalf("%d failed extensions, %d leases lost; want %d (each first call cut) and none lost", f, l, n)
	}
}
