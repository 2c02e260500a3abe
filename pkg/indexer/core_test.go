package indexer_test

// The indexer's core on the in-memory drivers (memqueue for the subscription and the
// dead-letter topic, memStore below for the index): fast tests of what the stack tests check
// through the real clients. `go test -short -count=1 -run TestCore ./pkg/indexer` runs them
// alone, in seconds (-short keeps the emulators from starting).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"imgpipe/pkg/failure"
	"imgpipe/pkg/failure/grpcerr"
	"imgpipe/pkg/indexer"
	"imgpipe/pkg/indexstore"
	"imgpipe/pkg/queue"
	"imgpipe/pkg/queue/memqueue"
	"imgpipe/pkg/queue/pubsubqueue"
	"imgpipe/pkg/record"
)

// memStore is an index in memory: the newest sequencer per object, with injectable failures
// and a gate that holds writes.
type memStore struct {
	mu       sync.Mutex
	docs     map[string]string // bucket/key -> sequencer ("" after a removal)
	fault    func(rec *record.Analysis) error
	gate     chan struct{} // when set, each write waits for a value (or its ctx)
	writing  int           // writes under way
	maxWrite int           // most writes under way at once
	attempts map[string]int
}

func newMemStore() *memStore {
	return &memStore{docs: map[string]string{}, attempts: map[string]int{}}
}

func (s *memStore) setFault(f func(rec *record.Analysis) error) {
	s.mu.Lock()
	s.fault = f
	s.mu.Unlock()
}

func (s *memStore) Apply(ctx context.Context, rec *record.Analysis) (indexstore.Outcome, error) {
	id := rec.Bucket + "/" + rec.Key
	s.mu.Lock()
	s.writing++
	s.maxWrite = max(s.maxWrite, s.writing)
	s.attempts[id]++
	fault, gate := s.fault, s.gate
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.writing--
		s.mu.Unlock()
	}()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return 0, failure.New(failure.Transient, "Timeout", ctx.Err())
		}
	}
	if fault != nil {
		if err := fault(rec); err != nil {
			return 0, err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur, ok := s.docs[id]; ok && cur >= rec.Sequencer {
		return indexstore.Stale, nil
	}
	if rec.Event == record.Removed {
		s.docs[id] = ""
		return indexstore.Deleted, nil
	}
	s.docs[id] = rec.Sequencer
	return indexstore.Written, nil
}

func (s *memStore) Ping(context.Context) error { return nil }

func (s *memStore) sequencer(bucket, key string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	seq, ok := s.docs[bucket+"/"+key]
	return seq, ok
}

// memCore is one indexer on in-memory edges.
type memCore struct {
	t      *testing.T
	q, dlq *memqueue.Queue
	src    queue.Source // the indexer's subscription: q unless set
	store  *memStore
	ix     *indexer.Indexer
	err    error // Run's, once done is closed
	cancel context.CancelFunc
	done   chan struct{}
}

func newMemCore(t *testing.T) *memCore {
	return &memCore{
		t: t, q: memqueue.New("sub", &memqueue.Options{Wait: 20 * time.Millisecond}),
		dlq: memqueue.New("dead-letter", nil), store: newMemStore(),
	}
}

// lease is the core tests' AckExtension: short, yet long enough that a loaded 2-core machine
// does not starve the keeper past it (it extends every second, and tries a failed extension
// again within a quarter of that).
const lease = 3 * time.Second

// coreOptions are the options of the core tests: short leases; writes held by a test's gate
// outlast several leases without timing out.
func coreOptions() indexer.Options {
	return indexer.Options{AckExtension: lease, RetryFor: 20 * time.Second, WriteTimeout: 20 * time.Second}
}

// start runs an indexer on the core's queue and store, copying to sink (nil: none).
func (c *memCore) start(opts indexer.Options, sink queue.Sink) *memCore {
	c.t.Helper()
	opts.Logger = zaptest.NewLogger(c.t, zaptest.Level(zap.ErrorLevel+1))
	var src queue.Source = c.q
	if c.src != nil {
		src = c.src
	}
	ix, err := indexer.New(src, sink, c.store, &opts)
	if err != nil {
		c.t.Fatal(err)
	}
	c.ix = ix
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel, c.done = cancel, make(chan struct{})
	go func() {
		defer close(c.done)
		c.err = ix.Run(ctx)
	}()
	c.t.Cleanup(c.stop)
	return c
}

// stop cancels Run and waits for it to return.
func (c *memCore) stop() {
	c.cancel()
	select {
	case <-c.done:
	case <-time.After(time.Minute):
		c.t.Fatal("Run did not return within a minute of its cancellation")
	}
}

func (c *memCore) counts() indexer.Counts { return indexer.CountsOf(c.ix) }

// waitWriting waits until n writes are under way (held by the store's gate).
func (c *memCore) waitWriting(n int) {
	c.t.Helper()
	waitFor(c.t, fmt.Sprintf("%d writes under way", n), func() bool {
		c.store.mu.Lock()
		defer c.store.mu.Unlock()
		return c.store.writing == n
	})
}

// send publishes records, each as one message with the publisher's attributes.
func (c *memCore) send(recs ...*record.Analysis) {
	c.t.Helper()
	var msgs []*queue.Message
	for _, r := range recs {
		b, err := json.Marshal(r)
		if err != nil {
			c.t.Fatal(err)
		}
		msgs = append(msgs, &queue.Message{Body: b, Attributes: map[string]queue.Attr{
			record.AttrBucket: queue.StringAttr(r.Bucket), record.AttrKey: queue.StringAttr(r.Key),
		}})
	}
	if err := errors.Join(c.q.Send(context.Background(), msgs)...); err != nil {
		c.t.Fatal(err)
	}
}

// sendRaw publishes one message with the given body and attributes.
func (c *memCore) sendRaw(body string, attrs map[string]string) {
	c.t.Helper()
	m := &queue.Message{Body: []byte(body), Attributes: map[string]queue.Attr{}}
	for k, v := range attrs {
		m.Attributes[k] = queue.StringAttr(v)
	}
	if err := errors.Join(c.q.Send(context.Background(), []*queue.Message{m})...); err != nil {
		c.t.Fatal(err)
	}
}

// waitFor polls cond, failing after a generous bound (a net against hanging, not a speed
// assertion).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func memRecs(n int) []*record.Analysis {
	var out []*record.Analysis
	for i := range n {
		out = append(out, rec(record.Created, "images", fmt.Sprintf("upload/%02d.jpg", i), 1))
	}
	return out
}

// byKey fails the records whose key is in keys with err.
func byKey(err error, keys ...string) func(*record.Analysis) error {
	set := map[string]bool{}
	for _, k := range keys {
		set[k] = true
	}
	return func(r *record.Analysis) error {
		if set[r.Key] {
			return err
		}
		return nil
	}
}

var errDown = failure.Transientf("Unavailable", "the index is down")

// TestCoreAckAfterCommit: while a record's write has not returned, its message is neither
// acknowledged nor given up (it stays leased); once the write commits it is deleted.
func TestCoreAckAfterCommit(t *testing.T) {
	t.Parallel()
	c := newMemCore(t)
	c.store.gate = make(chan struct{})
	c.start(coreOptions(), c.dlq)
	c.send(memRecs(1)...)
	c.waitWriting(1)
	time.Sleep(5 * lease / 2) // more than two leases: the keeper must renew it
	if n := c.q.Calls(memqueue.Delete); n != 0 {
		t.Fatalf("%d deletes before the write committed", n)
	}
	if ms := c.q.Messages(); len(ms) != 1 || !ms[0].Leased || ms[0].ReceiveCount != 1 {
		t.Fatalf("while written, the message is %+v; want one, leased, received once", ms)
	}
	c.store.gate <- struct{}{}
	waitFor(t, "the message acknowledged", func() bool { return len(c.q.Messages()) == 0 })
	if m := c.counts(); m.Written != 1 || m.Nacked != 0 || m.Extended == 0 {
		t.Fatalf("counts %+v; want 1 written, none nacked, leases extended", m)
	}
}

// TestCorePartialFailure: among records written together, a failed write nacks only its own
// message; the others are acknowledged.
func TestCorePartialFailure(t *testing.T) {
	t.Parallel()
	c := newMemCore(t)
	recs := memRecs(10)
	bad := []string{recs[2].Key, recs[5].Key, recs[7].Key}
	c.store.setFault(byKey(errDown, bad...))
	o := coreOptions()
	o.RetryFor = -1 // nack at the first failure
	c.start(o, c.dlq)
	c.send(recs...)
	waitFor(t, "the good records written and the bad ones nacked", func() bool {
		m := c.counts()
		return m.Written == 7 && m.Nacked >= 3
	})
	c.stop()
	left := map[string]bool{}
	for _, m := range c.q.Messages() {
		left[string(m.Body)] = true
		if m.ReceiveCount < 1 {
			t.Errorf("message %s left unreceived", m.ID)
		}
	}
	if len(left) != 3 {
		t.Fatalf("%d messages left on the subscription, want the 3 that failed", len(left))
	}
	for _, r := range recs {
		_, written := c.store.sequencer(r.Bucket, r.Key)
		b, _ := json.Marshal(r)
		if written == left[string(b)] {
			t.Errorf("%s: written %v, left on the subscription %v", r.Key, written, left[string(b)])
		}
	}
	if m := c.counts(); m.DeadLettered != 0 || m.Invalid != 0 {
		t.Errorf("counts %+v: a transient failure was taken for an invalid message", m)
	}
}

// TestCoreHeldUntilSuccess: a write that fails transiently is retried while its message is
// held, its lease extended past several AckExtensions, until it succeeds: the message is
// received once, acknowledged, never nacked.
func TestCoreHeldUntilSuccess(t *testing.T) {
	t.Parallel()
	c := newMemCore(t)
	until := time.Now().Add(2 * lease)
	c.store.setFault(func(*record.Analysis) error {
		if time.Now().Before(until) {
			return errDown
		}
		return nil
	})
	c.start(coreOptions(), c.dlq)
	c.send(memRecs(1)...)
	waitFor(t, "the record written", func() bool { return c.counts().Written == 1 })
	waitFor(t, "the message acknowledged", func() bool { return len(c.q.Messages()) == 0 })
	m := c.counts()
	if m.Received != 1 || m.Nacked != 0 || m.Retried == 0 || m.Extended < 2 {
		t.Fatalf("counts %+v; want received once, no nack, retries, leases extended", m)
	}
}

// TestCoreRetryForExhausted: a write that keeps failing transiently is held for RetryFor,
// then its message is nacked (released for redelivery), not dead-lettered.
func TestCoreRetryForExhausted(t *testing.T) {
	t.Parallel()
	c := newMemCore(t)
	c.store.setFault(func(*record.Analysis) error { return errDown })
	o := coreOptions()
	o.RetryFor = 400 * time.Millisecond
	c.start(o, c.dlq)
	c.send(memRecs(1)...)
	waitFor(t, "the message nacked and received again", func() bool { return c.counts().Nacked >= 1 && c.counts().Received >= 2 })
	c.stop()
	if ms := c.q.Messages(); len(ms) != 1 || ms[0].Leased {
		t.Fatalf("after the stop the subscription holds %+v; want the message, released", ms)
	}
	if m := c.counts(); m.DeadLettered != 0 || len(c.dlq.Messages()) != 0 || m.Retried == 0 {
		t.Fatalf("counts %+v, %d dead letters; want retries, no dead letter", m, len(c.dlq.Messages()))
	}
}

// TestCoreRefusedDeadLettered: a record the index refuses in every attempt over RetryFor is
// copied to the dead-letter sink with the reason and acknowledged.
func TestCoreRefusedDeadLettered(t *testing.T) {
	t.Parallel()
	c := newMemCore(t)
	recs := memRecs(3)
	c.store.setFault(byKey(failure.Transientf(indexstore.ReasonRejected, "too large"), recs[1].Key))
	o := coreOptions()
	o.RetryFor = time.Second
	c.start(o, c.dlq)
	c.send(recs...)
	waitFor(t, "the refused record dead-lettered", func() bool { return c.counts().DeadLettered == 1 })
	waitFor(t, "every message acknowledged", func() bool { return len(c.q.Messages()) == 0 })
	dead := c.dlq.Messages()
	if len(dead) != 1 {
		t.Fatalf("%d dead letters, want 1", len(dead))
	}
	f := dead[0].Failure()
	if f.Reason != indexstore.ReasonRejected || f.Class != failure.Permanent || dead[0].StringAttributes()[record.AttrKey] != recs[1].Key {
		t.Fatalf("dead letter %+v, attributes %v", f, dead[0].StringAttributes())
	}
	if m := c.counts(); m.Written != 2 || m.Nacked != 0 {
		t.Fatalf("counts %+v; want the other 2 written, none nacked", m)
	}
}

// TestCoreMalformed: messages that can never be applied are copied to the dead-letter sink
// with their body, their own attributes and the failure details (attempts: the message's
// receive count), and acknowledged; valid messages around them are indexed.
func TestCoreMalformed(t *testing.T) {
	t.Parallel()
	c := newMemCore(t)
	bad := []struct{ body, reason string }{
		{`{"schemaVersion":`, record.ReasonMalformedRecord},
		{`{"schemaVersion":99,"event":"created","bucket":"b","key":"k"}`, record.ReasonUnsupportedVersion},
	}
	for i, b := range bad {
		c.sendRaw(b.body, map[string]string{"case": fmt.Sprint(i)})
	}
	// The first bad message was delivered once before (and nacked): its attempts are 2.
	got, err := c.q.Receive(context.Background(), 1, time.Minute)
	if err != nil || len(got) != 1 {
		t.Fatalf("receive: %v %v", got, err)
	}
	if err := errors.Join(c.q.Release(context.Background(), got)...); err != nil {
		t.Fatal(err)
	}
	good := memRecs(4)
	c.send(good...)
	c.start(coreOptions(), c.dlq)
	waitFor(t, "every message acknowledged", func() bool { return len(c.q.Messages()) == 0 })
	dead := c.dlq.Messages()
	if len(dead) != len(bad) {
		t.Fatalf("%d dead letters, want %d", len(dead), len(bad))
	}
	for _, d := range dead {
		attrs := d.StringAttributes()
		var i int
		fmt.Sscan(attrs["case"], &i)
		f := d.Failure()
		wantAttempts := 1
		if i == 0 {
			wantAttempts = 2
		}
		if string(d.Body) != bad[i].body || f.Reason != bad[i].reason || f.Class != failure.Permanent || f.Error == "" ||
			f.Attempts != wantAttempts || f.SourceQueue != c.q.Name() || f.LastFailure.IsZero() {
			t.Errorf("dead letter %d: body %q details %+v; want reason %s, %d attempts, source %s", i, d.Body, f, bad[i].reason, wantAttempts, c.q.Name())
		}
	}
	m := c.counts()
	if m.Written != 4 || m.Invalid != 2 || m.DeadLettered != 2 || m.Nacked != 0 {
		t.Fatalf("counts %+v", m)
	}
}

// TestCoreCopyFailure: when the dead-letter copy cannot be sent, the message is nacked, not
// acknowledged: the subscription's dead-letter policy is the backstop.
func TestCoreCopyFailure(t *testing.T) {
	t.Parallel()
	c := newMemCore(t)
	c.dlq.SetFault(func(_ context.Context, op memqueue.Op, _ *queue.Message) error {
		if op == memqueue.Send {
			return failure.Transientf("Unavailable", "topic down")
		}
		return nil
	})
	c.sendRaw("garbage", nil)
	c.start(coreOptions(), c.dlq)
	waitFor(t, "the message nacked and received again", func() bool { return c.counts().Nacked >= 1 && c.counts().Received >= 2 })
	c.stop()
	if ms := c.q.Messages(); len(ms) != 1 || ms[0].Leased {
		t.Fatalf("the subscription holds %+v; want the message, released", ms)
	}
	if m := c.counts(); m.DeadLettered != 0 || m.Invalid < 1 || c.dlq.Calls(memqueue.Send) < 1 {
		t.Fatalf("counts %+v, %d sends; want the copy tried and nothing counted dead-lettered", m, c.dlq.Calls(memqueue.Send))
	}
}

// TestCoreNoSink: without a dead-letter sink an invalid message is nacked (left to the
// subscription's dead-letter policy), and valid ones still flow.
func TestCoreNoSink(t *testing.T) {
	t.Parallel()
	c := newMemCore(t)
	c.sendRaw("garbage", nil)
	c.send(memRecs(2)...)
	c.start(coreOptions(), nil)
	waitFor(t, "the valid records written and the invalid one nacked twice", func() bool {
		m := c.counts()
		return m.Written == 2 && m.Nacked >= 2
	})
	c.stop()
	ms := c.q.Messages()
	if len(ms) != 1 || string(ms[0].Body) != "garbage" || ms[0].Leased || ms[0].ReceiveCount < 2 {
		t.Fatalf("the subscription holds %+v; want the invalid message, released, received again", ms)
	}
	if m := c.counts(); m.DeadLettered != 0 || m.Invalid < 2 {
		t.Fatalf("counts %+v", m)
	}
}

// TestCoreGracefulStop stops an indexer while writes are under way: the writes in flight
// finish and their messages are acknowledged, nothing new starts, and when Run returns every
// message received is decided and none is left leased.
func TestCoreGracefulStop(t *testing.T) {
	t.Parallel()
	c := newMemCore(t)
	c.store.gate = make(chan struct{})
	o := coreOptions()
	o.MaxOutstandingMessages = 8
	c.start(o, c.dlq)
	c.send(memRecs(40)...)
	waitFor(t, "8 writes under way", func() bool {
		c.store.mu.Lock()
		defer c.store.mu.Unlock()
		return c.store.writing == 8
	})
	c.cancel()
	go func() { // let the writes in flight finish, one by one, slowly (well after the receives end)
		for {
			select {
			case c.store.gate <- struct{}{}:
			case <-c.done:
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	c.stop()
	if c.err != nil {
		t.Fatalf("Run: %v", c.err)
	}
	m := c.counts()
	if m.Written < 8 {
		t.Fatalf("%d written; want at least the 8 writes in flight at the stop to finish", m.Written)
	}
	if m.Received != m.Written+m.Nacked {
		t.Fatalf("Run returned with %d received but %d written and %d nacked", m.Received, m.Written, m.Nacked)
	}
	ms := c.q.Messages()
	for _, s := range ms {
		if s.Leased {
			t.Errorf("message %s left leased after Run returned", s.ID)
		}
	}
	if int64(len(ms)) != 40-m.Written {
		t.Fatalf("%d messages left, want the %d not written (each write acknowledged before Run returned)", len(ms), 40-m.Written)
	}
}

// TestCoreLeaseKept: the lease of a message whose write outlasts several AckExtensions is
// extended, so a second indexer on the same subscription never receives it meanwhile.
func TestCoreLeaseKept(t *testing.T) {
	t.Parallel()
	c := newMemCore(t)
	c.store.gate = make(chan struct{})
	c.start(coreOptions(), c.dlq)
	other := &memCore{t: t, q: c.q, dlq: c.dlq, store: c.store}
	other.start(coreOptions(), c.dlq)
	c.send(memRecs(1)...)
	c.waitWriting(1)
	time.Sleep(5 * lease / 2) // more than two leases
	c.store.gate <- struct{}{}
	waitFor(t, "the message acknowledged", func() bool { return len(c.q.Messages()) == 0 })
	a, b := c.counts(), other.counts()
	if a.Received+b.Received != 1 {
		t.Fatalf("received %d and %d times: a lease ran out while the write was held", a.Received, b.Received)
	}
	if a.Extended+b.Extended < 2 || c.q.Calls(memqueue.Extend) < 2 {
		t.Fatalf("%d+%d extensions, %d Extend calls; want the lease renewed through the write", a.Extended, b.Extended, c.q.Calls(memqueue.Extend))
	}
}

// TestCoreExtensionHangs: the first two lease extensions of a held message hang until their
// calls time out; the keeper's calls time out early enough and it tries again soon enough
// that the lease never lapses: the message is received once while its write is held, and
// the failed extensions are counted.
func TestCoreExtensionHangs(t *testing.T) {
	t.Parallel()
	c := newMemCore(t)
	c.store.gate = make(chan struct{})
	var hung atomic.Int32
	c.q.SetFault(func(ctx context.Context, op memqueue.Op, _ *queue.Message) error {
		if op == memqueue.Extend && hung.Add(1) <= 2 {
			<-ctx.Done()
			return failure.New(failure.Transient, "DeadlineExceeded", ctx.Err())
		}
		return nil
	})
	o := coreOptions()
	// 6 s: the two hung calls (cut at 1 s each, retried 0.5 s later) still leave the third
	// 1 s before the lease ends, slack for a loaded machine.
	o.AckExtension = 6 * time.Second
	o.WriteTimeout, o.RetryFor = time.Minute, time.Minute // the write is held by the gate alone
	c.start(o, c.dlq)
	c.send(memRecs(1)...)
	c.waitWriting(1)
	waitFor(t, "the hung extensions", func() bool { return c.counts().ExtendErrors >= 2 })
	time.Sleep(o.AckExtension + time.Second) // past the lease the hung call would have lost
	if ms := c.q.Messages(); len(ms) != 1 || !ms[0].Leased || ms[0].ReceiveCount != 1 {
		t.Fatalf("while written, the message is %+v; want one, leased, received once", ms)
	}
	c.store.gate <- struct{}{}
	waitFor(t, "the message acknowledged", func() bool { return len(c.q.Messages()) == 0 })
	if m := c.counts(); m.Received != 1 || m.ExtendErrors != 2 || m.Extended < 1 {
		t.Fatalf("counts %+v; want received once, the two hung extensions failed, leases extended", m)
	}
}

// TestCoreFlowBound: no more than MaxOutstandingMessages messages are held at once.
func TestCoreFlowBound(t *testing.T) {
	t.Parallel()
	c := newMemCore(t)
	c.store.gate = make(chan struct{})
	o := coreOptions()
	o.MaxOutstandingMessages = 3
	o.Receivers = 4
	c.start(o, c.dlq)
	c.send(memRecs(20)...)
	writing := func() int {
		c.store.mu.Lock()
		defer c.store.mu.Unlock()
		return c.store.writing
	}
	waitFor(t, "3 writes under way", func() bool { return writing() == 3 })
	time.Sleep(300 * time.Millisecond) // room for the receivers to take more, were they let
	for range 20 {
		c.store.gate <- struct{}{}
	}
	waitFor(t, "every record written", func() bool { return c.counts().Written == 20 })
	c.store.mu.Lock()
	defer c.store.mu.Unlock()
	if c.store.maxWrite != 3 {
		t.Fatalf("at most %d writes at once, want 3 (MaxOutstandingMessages)", c.store.maxWrite)
	}
}

// TestCoreNackFreesFlow: a nacked message frees its room in the flow bound: with a bound of
// 2 and more messages than that nacked, the indexer keeps receiving, and every record is
// written once the index is back.
func TestCoreNackFreesFlow(t *testing.T) {
	t.Parallel()
	c := newMemCore(t)
	c.store.setFault(func(*record.Analysis) error { return errDown })
	o := coreOptions()
	o.MaxOutstandingMessages = 2
	o.RetryFor = -1 // nack at the first failure
	c.start(o, c.dlq)
	recs := memRecs(5)
	c.send(recs...)
	waitFor(t, "more messages nacked than the bound", func() bool { return c.counts().Nacked >= 6 })
	c.store.setFault(nil)
	waitFor(t, "every record written", func() bool { return c.counts().Written == int64(len(recs)) })
	waitFor(t, "every message acknowledged", func() bool { return len(c.q.Messages()) == 0 })
}

// stalledReceive holds each Receive until released, then receives: a receive under way when
// the indexer is stopped.
type stalledReceive struct {
	*memqueue.Queue
	entered chan struct{}
	release chan struct{}
}

func (s *stalledReceive) Receive(ctx context.Context, n int, hold time.Duration) ([]*queue.Message, error) {
	s.entered <- struct{}{}
	<-s.release
	return s.Queue.Receive(ctx, n, hold)
}

// TestCoreReceiveAtStop: what a receive under way at the stop brings back is nacked without
// a write: when Run returns, none of it is left leased.
func TestCoreReceiveAtStop(t *testing.T) {
	t.Parallel()
	c := newMemCore(t)
	st := &stalledReceive{Queue: c.q, entered: make(chan struct{}, 8), release: make(chan struct{})}
	c.src = st
	c.send(memRecs(6)...)
	o := coreOptions()
	o.AckExtension = time.Minute // a message left leased stays so past the checks below
	c.start(o, c.dlq)
	<-st.entered // a receive is under way
	c.cancel()
	close(st.release)
	c.stop()
	if c.err != nil {
		t.Fatalf("Run: %v", c.err)
	}
	m := c.counts()
	if m.Received == 0 || m.Written != 0 || m.Nacked != m.Received {
		t.Fatalf("counts %+v; want the receive under way at the stop to bring messages, all nacked, none written", m)
	}
	ms := c.q.Messages()
	if len(ms) != 6 {
		t.Fatalf("%d messages left, want all 6", len(ms))
	}
	// Both receivers may be under way at the stop, and the second may receive again what the
	// first nacked: every delivery counts, on the subscription as in the metrics.
	received := 0
	for _, s := range ms {
		if s.Leased {
			t.Errorf("message %s left leased after Run returned", s.ID)
		}
		received += s.ReceiveCount
	}
	if int64(received) != m.Received {
		t.Errorf("%d deliveries on the subscription, %d counted", received, m.Received)
	}
}

// TestCoreReceiveFailures: failed receives are retried with backoff and counted, and the
// indexer reports not ready while they fail, ready again once one works; receives that keep
// failing with a setup fault (the driver's classification of NotFound: transient, setup)
// stop Run with it, but only once SetupGiveUp has passed since the first.
func TestCoreReceiveFailures(t *testing.T) {
	t.Parallel()
	c := newMemCore(t)
	var down atomic.Bool
	down.Store(true)
	c.q.SetFault(func(_ context.Context, op memqueue.Op, _ *queue.Message) error {
		if op == memqueue.Receive && down.Load() {
			return failure.Transientf("Unavailable", "subscription unreachable")
		}
		return nil
	})
	c.send(memRecs(2)...)
	c.start(coreOptions(), c.dlq)
	waitFor(t, "not ready while receives fail", func() bool { return c.ix.Ready(context.Background()) != nil })
	if err := c.ix.Ready(context.Background()); failure.ReasonOf(err) != "Unavailable" {
		t.Errorf("Ready: %v, want the receive error", err)
	}
	down.Store(false)
	waitFor(t, "the records written", func() bool { return c.counts().Written == 2 })
	if err := c.ix.Ready(context.Background()); err != nil {
		t.Errorf("Ready after a receive worked: %v", err)
	}
	if m := c.counts(); m.ReceiveErrors < 2 {
		t.Fatalf("%d receive errors counted, want at least 2", m.ReceiveErrors)
	}

	d := newMemCore(t)
	d.q.SetFault(func(_ context.Context, op memqueue.Op, _ *queue.Message) error {
		if op == memqueue.Receive {
			return grpcerr.Classify(status.Error(codes.NotFound, "Resource not found (resource=sub)."))
		}
		return nil
	})
	const giveUp = 2 * time.Second
	o := coreOptions()
	o.SetupGiveUp = giveUp
	began := time.Now()
	d.start(o, d.dlq)
	select {
	case <-d.done:
	case <-time.After(time.Minute):
		t.Fatal("Run went on after setup faults lasting a minute")
	}
	if took := time.Since(began); took < giveUp {
		t.Errorf("Run returned %s after the first setup fault, before SetupGiveUp (%s)", took, giveUp)
	}
	if d.err == nil || failure.ReasonOf(d.err) != "NotFound" || !failure.IsSetup(d.err) {
		t.Fatalf("Run: %v, want the setup fault NotFound", d.err)
	}
	if m := d.counts(); m.ReceiveErrors < 3 {
		t.Errorf("%d receive errors counted, want at least 3", m.ReceiveErrors)
	}

	e := newMemCore(t)
	e.q.SetFault(func(_ context.Context, op memqueue.Op, _ *queue.Message) error {
		if op == memqueue.Receive {
			return failure.Permanentf("InvalidArgument", "bad request")
		}
		return nil
	})
	e.start(coreOptions(), e.dlq)
	select {
	case <-e.done:
	case <-time.After(30 * time.Second):
		t.Fatal("Run went on after a permanent receive failure")
	}
	if e.err == nil || failure.ReasonOf(e.err) != "InvalidArgument" {
		t.Fatalf("Run: %v, want the permanent receive failure", e.err)
	}
}

// TestCoreMetrics: what the indexer did is counted in the Prometheus collectors it registers.
func TestCoreMetrics(t *testing.T) {
	t.Parallel()
	c := newMemCore(t)
	reg := prometheus.NewPedanticRegistry()
	o := coreOptions()
	o.Registerer = reg
	c.sendRaw("garbage", nil)
	c.send(rec(record.Created, "images", "a", 2))
	c.start(o, c.dlq)
	waitFor(t, "the first two settled", func() bool { return len(c.q.Messages()) == 0 })
	c.send(rec(record.Created, "images", "a", 1), rec(record.Removed, "images", "b", 1))
	waitFor(t, "all settled", func() bool { return len(c.q.Messages()) == 0 })
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			switch {
			case m.GetCounter() != nil:
				got[f.GetName()] += m.GetCounter().GetValue()
			case m.GetHistogram() != nil:
				got[f.GetName()+"_count"] += float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	for name, want := range map[string]float64{
		"imgpipe_indexer_messages_received_total": 4, "imgpipe_indexer_documents_written_total": 1,
		"imgpipe_indexer_documents_deleted_total": 1, "imgpipe_indexer_records_stale_total": 1,
		"imgpipe_indexer_messages_invalid_total": 1, "imgpipe_indexer_messages_dead_lettered_total": 1,
		"imgpipe_indexer_messages_nacked_total": 0, "imgpipe_indexer_write_seconds_count": 3,
		"imgpipe_indexer_end_to_end_seconds_count": 2,
	} {
		if v, ok := got[name]; !ok || v != want {
			t.Errorf("%s = %v (exported: %v), want %v", name, v, ok, want)
		}
	}
}

// TestAckExtensionChecked: the lease is 10 s unless set, and one the source cannot grant
// (Pub/Sub: whole seconds up to 600 s) is refused at New.
func TestAckExtensionChecked(t *testing.T) {
	t.Parallel()
	src := pubsubqueue.NewSubscription(nil, "projects/p/subscriptions/s", nil) // no call is made
	for _, ok := range []time.Duration{0, time.Second, 45 * time.Second, 600 * time.Second} {
		if _, err := indexer.New(src, nil, newMemStore(), &indexer.Options{AckExtension: ok}); err != nil {
			t.Errorf("AckExtension %s: %v", ok, err)
		}
	}
	for _, bad := range []time.Duration{-time.Second, 1500 * time.Millisecond, 11 * time.Minute} {
		if _, err := indexer.New(src, nil, newMemStore(), &indexer.Options{AckExtension: bad}); err == nil {
			t.Errorf("AckExtension %s accepted", bad)
		}
	}
	if _, err := indexer.New(nil, nil, newMemStore(), nil); err == nil {
		t.Error("New without a source accepted")
	}

	c := newMemCore(t)
	rec := &holdRecorder{Queue: c.q}
	c.src = rec
	c.send(memRecs(1)...)
	c.start(indexer.Options{}, c.dlq)
	waitFor(t, "the record written", func() bool { return c.counts().Written == 1 })
	if h := rec.first(); h != 10*time.Second {
		t.Errorf("the default lease is %s, want 10s", h)
	}
}

// holdRecorder notes the lease of the first Receive.
type holdRecorder struct {
	*memqueue.Queue
	mu   sync.Mutex
	hold time.Duration
}

func (r *holdRecorder) Receive(ctx context.Context, n int, hold time.Duration) ([]*queue.Message, error) {
	r.mu.Lock()
	if r.hold == 0 {
		r.hold = hold
	}
	r.mu.Unlock()
	return r.Queue.Receive(ctx, n, hold)
}

func (r *holdRecorder) first() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.hold
}

// TestCoreIdlePacing: on a source that answers at once when it has nothing (the Pub/Sub
// emulator's Pull does), the receive loops pace themselves instead of spinning, and a message
// sent after the idle spell is still indexed.
func TestCoreIdlePacing(t *testing.T) {
	t.Parallel()
	c := newMemCore(t)
	c.q = memqueue.New("answers-at-once", &memqueue.Options{Wait: -1})
	c.start(coreOptions(), c.dlq)
	time.Sleep(time.Second)
	if n := c.q.Calls(memqueue.Receive); n > 100 {
		t.Fatalf("%d receives in an idle second by 2 receivers: the loop spins", n)
	}
	c.send(memRecs(1)...)
	waitFor(t, "the record written", func() bool { return c.counts().Written == 1 })
}
