// Package memqueue is an in-memory driver of pkg/queue, for fast tests of what is built on
// a queue. It behaves as SQS does where the pipeline relies on it: leases (visibility
// timeouts) that end on their own, receive counts, long polls that wait for messages, a
// receipt handle per receive, and a long poll whose caller hung up still taking the next
// message sent within its wait (which then stays leased to nobody until its hold ends).
// Failures are injected per call and per message (SetFault), including a receive whose
// answer is lost on the way (ErrLostAnswer).
package memqueue

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"imgpipe/pkg/failure"
	"imgpipe/pkg/queue"
)

// Op names a call, for faults and statistics.
type Op string

// The calls.
const (
	Receive Op = "Receive"
	Extend  Op = "Extend"
	Release Op = "Release"
	Delete  Op = "Delete"
	Send    Op = "Send"
	Depth   Op = "Depth"
)

// Fault decides the outcome of a call before the queue acts on it: for Receive and Depth once
// per call (m is nil), for the batch calls once per message. A non-nil error fails the call
// (or that message); ErrLostAnswer from Receive leases the messages and then fails, as a
// receive whose answer was lost on the way back. A fault may block, until ctx ends at most.
type Fault func(ctx context.Context, op Op, m *queue.Message) error

// ErrLostAnswer, returned by a Fault for Receive, makes the receive lease its messages and
// then fail: they stay invisible until their hold ends.
var ErrLostAnswer = failure.Transientf("ConnectionReset", "memqueue: receive answer lost")

// Options configures a Queue. A nil *Options means the defaults.
type Options struct {
	// Wait is how long a receive waits for messages; 0 means 100ms, negative none.
	Wait time.Duration
}

// Queue is an in-memory queue; a queue.Source and a queue.Sink. Safe for concurrent use.
type Queue struct {
	name string
	wait time.Duration

	mu      sync.Mutex
	seq     int
	msgs    []*entry
	deleted map[string]bool // receipt handles of deleted messages
	ghosts  []ghost
	changed chan struct{} // closed and replaced when a message may have become receivable
	fault   Fault
	calls   map[Op]int
}

type entry struct {
	msg       queue.Message // ID, Body, Attributes, SentAt, FirstReceivedAt, ReceiveCount
	handle    string        // of the last receive; "" when never received
	visibleAt time.Time     // zero or past: receivable
}

// ghost is a long poll whose caller hung up before its wait ended: it takes (and hides for
// hold) what arrives until until, as SQS's poll does.
type ghost struct {
	until time.Time
	hold  time.Duration
	max   int
}

// New returns an empty queue named name.
func New(name string, opts *Options) *Queue {
	w := 100 * time.Millisecond
	if opts != nil && opts.Wait != 0 {
		w = max(opts.Wait, 0)
	}
	return &Queue{name: name, wait: w, deleted: map[string]bool{}, changed: make(chan struct{}), calls: map[Op]int{}}
}

// Name implements queue.Source.
func (q *Queue) Name() string { return "mem://" + q.name }

// SetFault replaces the fault (nil: none).
func (q *Queue) SetFault(f Fault) {
	q.mu.Lock()
	q.fault = f
	q.mu.Unlock()
}

func (q *Queue) inject(ctx context.Context, op Op, m *queue.Message) error {
	q.mu.Lock()
	q.calls[op]++
	f := q.fault
	q.mu.Unlock()
	if f == nil {
		return nil
	}
	return f(ctx, op, m)
}

// signal wakes waiting receives; q.mu is held.
func (q *Queue) signal() {
	close(q.changed)
	q.changed = make(chan struct{})
}

// Send implements queue.Sink.
func (q *Queue) Send(ctx context.Context, msgs []*queue.Message) []error {
	res := make([]error, len(msgs))
	for i, m := range msgs {
		if err := q.inject(ctx, Send, m); err != nil {
			res[i] = err
			continue
		}
		q.mu.Lock()
		q.seq++
		e := &entry{msg: queue.Message{ID: "m" + strconv.Itoa(q.seq), Body: slices.Clone(m.Body), Attributes: maps.Clone(m.Attributes), SentAt: time.Now().UTC()}}
		q.msgs = append(q.msgs, e)
		q.feedGhosts(time.Now())
		q.signal()
		q.mu.Unlock()
	}
	return res
}

// feedGhosts lets the polls whose callers hung up take what is receivable; q.mu is held.
func (q *Queue) feedGhosts(now time.Time) {
	live := q.ghosts[:0]
	for _, g := range q.ghosts {
		if g.until.After(now) {
			if len(q.lease(now, g.max, g.hold)) == 0 {
				live = append(live, g)
			}
		}
	}
	q.ghosts = live
}

// lease leases up to n receivable messages for hold; q.mu is held.
func (q *Queue) lease(now time.Time, n int, hold time.Duration) []*queue.Message {
	var out []*queue.Message
	for _, e := range q.msgs {
		if len(out) == n {
			break
		}
		if e.visibleAt.After(now) {
			continue
		}
		q.seq++
		e.handle = e.msg.ID + "#" + strconv.Itoa(q.seq)
		e.visibleAt = now.Add(hold)
		e.msg.ReceiveCount++
		if e.msg.FirstReceivedAt.IsZero() {
			e.msg.FirstReceivedAt = now.UTC()
		}
		m := e.msg
		m.Body, m.Attributes, m.Handle = slices.Clone(e.msg.Body), maps.Clone(e.msg.Attributes), e.handle
		out = append(out, &m)
	}
	return out
}

// nextVisible is the earliest time a leased message becomes receivable after now; q.mu held.
func (q *Queue) nextVisible(now time.Time) (time.Time, bool) {
	var next time.Time
	for _, e := range q.msgs {
		if e.visibleAt.After(now) && (next.IsZero() || e.visibleAt.Before(next)) {
			next = e.visibleAt
		}
	}
	return next, !next.IsZero()
}

// Receive implements queue.Source.
func (q *Queue) Receive(ctx context.Context, n int, hold time.Duration) ([]*queue.Message, error) {
	n = min(max(n, 1), queue.MaxBatch)
	if hold <= 0 {
		return nil, failure.Permanentf("InvalidHold", "memqueue: hold %s", hold)
	}
	err := q.inject(ctx, Receive, nil)
	if err != nil && !errors.Is(err, ErrLostAnswer) {
		return nil, err
	}
	deadline := time.Now().Add(q.wait)
	for {
		now := time.Now()
		q.mu.Lock()
		got := q.lease(now, n, hold)
		ch := q.changed
		next, ok := q.nextVisible(now)
		if len(got) == 0 && ctx.Err() != nil && deadline.After(now) {
			q.ghosts = append(q.ghosts, ghost{until: deadline, hold: hold, max: n})
		}
		q.mu.Unlock()
		switch {
		case err != nil:
			return nil, err // ErrLostAnswer: got stay leased to nobody
		case len(got) > 0:
			return got, nil
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case !now.Before(deadline):
			return nil, nil
		}
		wake := deadline
		if ok && next.Before(wake) {
			wake = next
		}
		t := time.NewTimer(time.Until(wake))
		select {
		case <-ch:
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
	}
}

// find returns the entry m was received as, or an error saying why there is none; q.mu held.
func (q *Queue) find(m *queue.Message) (*entry, error) {
	for _, e := range q.msgs {
		if e.msg.ID == m.ID {
			if e.handle != m.Handle {
				return nil, failure.Permanentf("ReceiptHandleIsInvalid", "memqueue: %s: handle %q is not the last receive's", m.ID, m.Handle)
			}
			return e, nil
		}
	}
	return nil, failure.Permanentf("ReceiptHandleIsInvalid", "memqueue: %s: no such message", m.ID)
}

// Extend implements queue.Source. A lease that already ended cannot be extended
// (MessageNotInflight).
func (q *Queue) Extend(ctx context.Context, msgs []*queue.Message, hold time.Duration) []error {
	return q.each(ctx, Extend, msgs, func(now time.Time, e *entry) error {
		if !e.visibleAt.After(now) {
			return failure.Permanentf("MessageNotInflight", "memqueue: %s is not leased", e.msg.ID)
		}
		e.visibleAt = now.Add(max(hold, 0))
		if hold <= 0 {
			q.feedGhosts(now)
			q.signal()
		}
		return nil
	})
}

// Release implements queue.Source.
func (q *Queue) Release(ctx context.Context, msgs []*queue.Message) []error {
	return q.each(ctx, Release, msgs, func(now time.Time, e *entry) error {
		e.visibleAt = time.Time{}
		q.feedGhosts(now)
		q.signal()
		return nil
	})
}

// Delete implements queue.Source. Deleting a message twice with its handle succeeds, as SQS
// does.
func (q *Queue) Delete(ctx context.Context, msgs []*queue.Message) []error {
	res := make([]error, len(msgs))
	for i, m := range msgs {
		if err := q.inject(ctx, Delete, m); err != nil {
			res[i] = err
			continue
		}
		q.mu.Lock()
		if !q.deleted[m.Handle] {
			var e *entry
			if e, res[i] = q.find(m); e != nil {
				q.msgs = slices.DeleteFunc(q.msgs, func(x *entry) bool { return x == e })
				q.deleted[m.Handle] = true
			}
		}
		q.mu.Unlock()
	}
	return res
}

func (q *Queue) each(ctx context.Context, op Op, msgs []*queue.Message, f func(now time.Time, e *entry) error) []error {
	res := make([]error, len(msgs))
	for i, m := range msgs {
		if err := q.inject(ctx, op, m); err != nil {
			res[i] = err
			continue
		}
		q.mu.Lock()
		e, err := q.find(m)
		if err == nil {
			err = f(time.Now(), e)
		}
		q.mu.Unlock()
		res[i] = err
	}
	return res
}

// Depth implements queue.Source.
func (q *Queue) Depth(ctx context.Context) (queue.Depth, error) {
	if err := q.inject(ctx, Depth, nil); err != nil {
		return queue.Depth{}, err
	}
	now := time.Now()
	q.mu.Lock()
	defer q.mu.Unlock()
	var d queue.Depth
	for _, e := range q.msgs {
		if e.visibleAt.After(now) {
			d.NotVisible++
		} else {
			d.Visible++
		}
	}
	return d, nil
}

// State is one message as the queue holds it now.
type State struct {
	queue.Message
	Leased bool // received and not yet receivable again
}

// Messages returns every message the queue holds, in the order they were sent.
func (q *Queue) Messages() []State {
	now := time.Now()
	q.mu.Lock()
	defer q.mu.Unlock()
	out := make([]State, len(q.msgs))
	for i, e := range q.msgs {
		out[i] = State{Message: e.msg, Leased: e.visibleAt.After(now)}
	}
	return out
}

// Calls returns how many calls of op were made (per message for the batch calls).
func (q *Queue) Calls(op Op) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.calls[op]
}

// SendBodies sends one message per body; a helper for tests.
func (q *Queue) SendBodies(bodies ...string) error {
	msgs := make([]*queue.Message, len(bodies))
	for i, b := range bodies {
		msgs[i] = &queue.Message{Body: []byte(b)}
	}
	return errors.Join(q.Send(context.Background(), msgs)...)
}

// String names the queue.
func (q *Queue) String() string { return fmt.Sprintf("memqueue %s", q.name) }
