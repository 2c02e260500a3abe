// Package queuetest is the conformance suite every pkg/queue driver runs (as go-cloud's
// drivertest is for its drivers): the same sends, receives, leases, extensions, releases,
// deletes and depths against SQS (on the local stand-in), Pub/Sub (on Google's emulator) and
// the in-memory queue, so the stages built on a queue.Source and tested on memqueue behave
// the same on the clouds.
//
// Where a service does something differently by design (Pub/Sub's text-only attributes,
// accepted stale ack IDs, no depth call) the driver says so in its Capabilities: the cases
// that need the capability are not registered for it, and a case asserting what the service
// does instead runs in their place.
package queuetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"imgpipe/pkg/failure"
	"imgpipe/pkg/queue"
	"imgpipe/pkg/retry"
)

// Harness makes fresh queues for the suite.
type Harness interface {
	// NewQueue returns a new, empty queue as the source under test and a sink that sends
	// into it.
	NewQueue(t *testing.T) (queue.Source, queue.Sink)
	// Hold is the shortest lease the suite takes (SQS: one second); leases of a few Holds
	// must end on their own.
	Hold() time.Duration
	// Capabilities says what the driver's service can do.
	Capabilities() Capabilities
}

// Capabilities are what some services do and others, by design, do not. A case that needs a
// capability the driver lacks is not registered for it (it cannot pass, and it is not a
// defect); where the service's own behaviour can be asserted instead, that case runs.
type Capabilities struct {
	// TypedAttributes: attributes keep their data types, Binary ones included (SQS). Without
	// it (Pub/Sub: text only) every attribute comes back as DataString with its text, and a
	// Binary attribute is refused on send with a permanent error for that message alone
	// (case BinaryAttributeRefused).
	TypedAttributes bool
	// StaleHandleRefused: extending a lease with the handle of an earlier receive fails
	// (SQS). Without it (Pub/Sub accepts an old ack ID without error) the case
	// StaleHandleHarmless checks that a release or an extension with such a handle takes
	// nothing from the current holder.
	StaleHandleRefused bool
	// Depth: Depth reports the source's depth (SQS). Without it (Pub/Sub has no such call)
	// the case DepthUnsupported checks Depth answers queue.ErrNoDepth, classified permanent.
	Depth bool
}

// Run runs every case that applies to the driver's capabilities.
func Run(t *testing.T, h Harness) {
	c := h.Capabilities()
	t.Run("SendReceiveDelete", func(t *testing.T) { testRoundTrip(t, h) })
	t.Run("EmptyReceive", func(t *testing.T) { testEmpty(t, h) })
	t.Run("LeaseHidesUntilItEnds", func(t *testing.T) { testLease(t, h) })
	t.Run("ReleaseAtOnce", func(t *testing.T) { testRelease(t, h) })
	t.Run("ExtendKeepsAndDefers", func(t *testing.T) { testExtend(t, h) })
	if c.StaleHandleRefused {
		t.Run("StaleHandleRefused", func(t *testing.T) { testStale(t, h) })
	} else {
		t.Run("StaleHandleHarmless", func(t *testing.T) { testStaleHarmless(t, h) })
	}
	t.Run("Batches", func(t *testing.T) { testBatches(t, h) })
	if c.Depth {
		t.Run("Depth", func(t *testing.T) { testDepth(t, h) })
	} else {
		t.Run("DepthUnsupported", func(t *testing.T) { testNoDepth(t, h) })
	}
	if !c.TypedAttributes {
		t.Run("BinaryAttributeRefused", func(t *testing.T) { testBinaryRefused(t, h) })
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

func send(t *testing.T, dst queue.Sink, msgs ...*queue.Message) {
	t.Helper()
	for i, err := range dst.Send(ctx(t), msgs) {
		if err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
}

func bodies(n int, prefix string) []*queue.Message {
	out := make([]*queue.Message, n)
	for i := range out {
		out[i] = &queue.Message{Body: []byte(fmt.Sprintf("%s-%02d", prefix, i))}
	}
	return out
}

// receiveN receives until n messages came back, each receive asking for at most max; it
// fails when they have not come back within 30 s.
func receiveN(t *testing.T, src queue.Source, n, max int, hold time.Duration) []*queue.Message {
	t.Helper()
	return receiveWithin(t, src, n, max, hold, 30*time.Second)
}

// receiveWithin is receiveN failing after within.
func receiveWithin(t *testing.T, src queue.Source, n, max int, hold, within time.Duration) []*queue.Message {
	t.Helper()
	var got []*queue.Message
	deadline := time.Now().Add(within)
	for len(got) < n && time.Now().Before(deadline) {
		msgs, err := src.Receive(ctx(t), max, hold)
		if err != nil {
			t.Fatalf("receive: %v", err)
		}
		if len(msgs) > max {
			t.Fatalf("receive of at most %d returned %d", max, len(msgs))
		}
		got = append(got, msgs...)
	}
	if len(got) != n {
		t.Fatalf("received %d messages within %s, want %d", len(got), within, n)
	}
	return got
}

// receiveNone checks that receives for a while bring nothing.
func receiveNone(t *testing.T, src queue.Source, hold time.Duration, why string) {
	t.Helper()
	msgs, err := src.Receive(ctx(t), queue.MaxBatch, hold)
	if err != nil {
		t.Fatalf("receive: %v", err)
	}
	if len(msgs) > 0 {
		t.Fatalf("%s, yet a receive got %q (receive count %d)", why, msgs[0].Body, msgs[0].ReceiveCount)
	}
}

func noErrors(t *testing.T, what string, errs []error) {
	t.Helper()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("%s %d: %v", what, i, err)
		}
	}
}

func testRoundTrip(t *testing.T, h Harness) {
	src, dst := h.NewQueue(t)
	before := time.Now().Add(-time.Minute)
	want := bodies(3, "round")
	want[0].Attributes = map[string]queue.Attr{
		"text":   queue.StringAttr("a value"),
		"number": {DataType: queue.DataNumber, String: "42"},
	}
	typed := h.Capabilities().TypedAttributes
	if typed {
		want[0].Attributes["bytes"] = queue.Attr{DataType: queue.DataBinary, Binary: []byte{0, 1, 2}}
	}
	send(t, dst, want...)
	got := receiveN(t, src, 3, queue.MaxBatch, 30*h.Hold())
	slices.SortFunc(got, func(a, b *queue.Message) int { return strings.Compare(string(a.Body), string(b.Body)) })
	ids := map[string]bool{}
	for i, m := range got {
		if string(m.Body) != string(want[i].Body) {
			t.Errorf("message %d: body %q, want %q", i, m.Body, want[i].Body)
		}
		if m.ID == "" || ids[m.ID] || m.Handle == "" {
			t.Errorf("message %d: ID %q (seen before: %v), handle %q", i, m.ID, ids[m.ID], m.Handle)
		}
		ids[m.ID] = true
		if m.ReceiveCount != 1 {
			t.Errorf("message %d: receive count %d, want 1", i, m.ReceiveCount)
		}
		if m.SentAt.Before(before) || m.SentAt.After(time.Now().Add(time.Minute)) {
			t.Errorf("message %d: sent at %v", i, m.SentAt)
		}
		if !m.FirstReceivedAt.IsZero() && m.FirstReceivedAt.Before(m.SentAt.Add(-time.Second)) {
			t.Errorf("message %d: first received at %v, before it was sent at %v", i, m.FirstReceivedAt, m.SentAt)
		}
	}
	a := got[0].Attributes
	numberType := queue.DataNumber
	if !typed {
		numberType = queue.DataString // text only: the number comes back as its text
	}
	if a["text"].String != "a value" || a["text"].DataType != queue.DataString || a["number"].String != "42" || a["number"].DataType != numberType {
		t.Errorf("attributes: %+v", a)
	}
	if typed && (a["bytes"].DataType != queue.DataBinary || string(a["bytes"].Binary) != "\x00\x01\x02") {
		t.Errorf("binary attribute: %+v", a["bytes"])
	}
	if got := got[0].StringAttributes(); got["text"] != "a value" || got["number"] != "42" || len(got) != 2 {
		t.Errorf("string attributes: %v", got)
	}
	noErrors(t, "delete", src.Delete(ctx(t), got))
	noErrors(t, "delete again", src.Delete(ctx(t), got[:1]))
	gone(t, h, src, got)
}

// gone checks that deleted, the messages are gone: by the source's depth where it has one,
// else by releasing them (a delete that did not happen would make them receivable at once;
// the release's own answers do not matter here) and receiving nothing over three Holds.
func gone(t *testing.T, h Harness, src queue.Source, deleted []*queue.Message) {
	t.Helper()
	if h.Capabilities().Depth {
		waitDepth(t, src, queue.Depth{})
		return
	}
	queue.Batches(deleted, func(batch []*queue.Message) []error { return src.Release(ctx(t), batch) })
	receiveNoneOver(t, h, src, 3, "every message was deleted")
}

// receiveNoneOver checks that receives spaced one Hold apart bring nothing over holds Holds:
// a fixed number of receives (holds+1), since a service may answer an empty receive at once
// and back-to-back receives would only load it.
func receiveNoneOver(t *testing.T, h Harness, src queue.Source, holds int, why string) {
	t.Helper()
	for i := 0; i <= holds; i++ {
		if i > 0 {
			if err := retry.Sleep(ctx(t), h.Hold()); err != nil {
				t.Fatalf("wait between receives: %v", err)
			}
		}
		receiveNone(t, src, h.Hold(), why)
	}
}

func testEmpty(t *testing.T, h Harness) {
	src, _ := h.NewQueue(t)
	receiveNone(t, src, h.Hold(), "the queue is empty")
}

func testLease(t *testing.T, h Harness) {
	src, dst := h.NewQueue(t)
	send(t, dst, bodies(1, "lease")...)
	first := receiveN(t, src, 1, 1, 3*h.Hold())[0]
	receiveNone(t, src, 3*h.Hold(), "the only message is leased")
	again := receiveN(t, src, 1, 1, 30*h.Hold())[0]
	if again.ID != first.ID || again.ReceiveCount != 2 || again.Handle == first.Handle {
		t.Fatalf("after the lease ended: ID %s (want %s), receive count %d (want 2), handle changed %v",
			again.ID, first.ID, again.ReceiveCount, again.Handle != first.Handle)
	}
}

func testRelease(t *testing.T, h Harness) {
	src, dst := h.NewQueue(t)
	send(t, dst, bodies(2, "release")...)
	got := receiveN(t, src, 2, queue.MaxBatch, 60*h.Hold())
	noErrors(t, "release", src.Release(ctx(t), got))
	// At once: long before the leases of 60 Holds would have ended.
	again := receiveWithin(t, src, 2, queue.MaxBatch, 60*h.Hold(), 10*h.Hold())
	for _, m := range again {
		if m.ReceiveCount != 2 {
			t.Errorf("%s released and received again: receive count %d, want 2", m.Body, m.ReceiveCount)
		}
	}
	// A release after the lease ended is no error: the message is receivable, as asked.
	noErrors(t, "release", src.Release(ctx(t), again))
	short := receiveN(t, src, 1, 1, h.Hold())[0]
	time.Sleep(2 * h.Hold())
	if err := src.Release(ctx(t), []*queue.Message{short})[0]; err != nil {
		t.Errorf("release of a lease that already ended: %v", err)
	}
}

func testExtend(t *testing.T, h Harness) {
	src, dst := h.NewQueue(t)
	send(t, dst, bodies(2, "extend")...)
	got := receiveN(t, src, 2, queue.MaxBatch, 2*h.Hold())
	slices.SortFunc(got, func(a, b *queue.Message) int { return strings.Compare(string(a.Body), string(b.Body)) })
	kept, deferred := got[0], got[1]
	// Kept: extended well past its first lease. Deferred: given back after one Hold.
	noErrors(t, "extend", src.Extend(ctx(t), []*queue.Message{kept}, 60*h.Hold()))
	noErrors(t, "extend", src.Extend(ctx(t), []*queue.Message{deferred}, h.Hold()))
	back := receiveWithin(t, src, 1, queue.MaxBatch, 60*h.Hold(), 10*h.Hold())[0]
	if back.ID != deferred.ID {
		t.Fatalf("the message that came back is %q, want the deferred one %q", back.Body, deferred.Body)
	}
	receiveNone(t, src, h.Hold(), "the kept message's lease was extended")
	noErrors(t, "delete", src.Delete(ctx(t), []*queue.Message{kept, back}))
}

// receivedTwice returns a source whose one message was received for one Hold, then, once
// that lease ended, again for 60 Holds: the first receive's handle is stale.
func receivedTwice(t *testing.T, h Harness) (src queue.Source, first, second *queue.Message) {
	t.Helper()
	src, dst := h.NewQueue(t)
	send(t, dst, bodies(1, "stale")...)
	first = receiveN(t, src, 1, 1, h.Hold())[0]
	second = receiveN(t, src, 1, 1, 60*h.Hold())[0]
	if second.Handle == first.Handle {
		t.Fatal("a second receive kept the first receive's handle")
	}
	return src, first, second
}

func testStale(t *testing.T, h Harness) {
	src, first, second := receivedTwice(t, h)
	if err := src.Extend(ctx(t), []*queue.Message{first}, 60*h.Hold())[0]; err == nil {
		t.Error("extending the lease of an earlier receive worked: it could hide a message another receiver holds")
	}
	noErrors(t, "delete", src.Delete(ctx(t), []*queue.Message{second}))
}

// testStaleHarmless: calls with the handle of an earlier receive are accepted (the service's
// answer) but take nothing from the current holder: neither a stale release nor a stale
// extension by one Hold ends the current lease of 60 Holds, so nothing comes back over three
// Holds; released with the current handle, the message is receivable at once.
func testStaleHarmless(t *testing.T, h Harness) {
	src, first, second := receivedTwice(t, h)
	noErrors(t, "release with the stale handle (accepted by this service)", src.Release(ctx(t), []*queue.Message{first}))
	noErrors(t, "extend with the stale handle (accepted by this service)", src.Extend(ctx(t), []*queue.Message{first}, h.Hold()))
	receiveNoneOver(t, h, src, 3, "the current holder's lease of 60 Holds still runs")
	noErrors(t, "release", src.Release(ctx(t), []*queue.Message{second}))
	third := receiveWithin(t, src, 1, 1, 60*h.Hold(), 10*h.Hold())[0]
	if third.ID != first.ID {
		t.Fatalf("received %q, want the released message %q", third.Body, first.Body)
	}
	noErrors(t, "delete", src.Delete(ctx(t), []*queue.Message{third}))
}

// testNoDepth: a source without a depth call says so, classified permanent.
func testNoDepth(t *testing.T, h Harness) {
	src, _ := h.NewQueue(t)
	_, err := src.Depth(ctx(t))
	if !errors.Is(err, queue.ErrNoDepth) || !failure.IsPermanent(err) {
		t.Fatalf("depth: %v (class %v); want queue.ErrNoDepth, permanent", err, failure.ClassOf(err))
	}
}

// testBinaryRefused: a text-only service refuses a Binary attribute with a permanent error
// for that message alone; the others in the batch arrive.
func testBinaryRefused(t *testing.T, h Harness) {
	src, dst := h.NewQueue(t)
	msgs := bodies(3, "binary")
	msgs[1].Attributes = map[string]queue.Attr{"bytes": {DataType: queue.DataBinary, Binary: []byte{0, 1}}}
	res := dst.Send(ctx(t), msgs)
	if len(res) != 3 || res[0] != nil || res[2] != nil || !failure.IsPermanent(res[1]) {
		t.Fatalf("send of a batch with one binary attribute: %v; want only the second refused, permanent", res)
	}
	got := receiveN(t, src, 2, queue.MaxBatch, 30*h.Hold())
	for _, m := range got {
		if string(m.Body) == "binary-01" {
			t.Errorf("the refused message arrived: %+v", m)
		}
	}
	noErrors(t, "delete", src.Delete(ctx(t), got))
	gone(t, h, src, got)
}

func testBatches(t *testing.T, h Harness) {
	src, dst := h.NewQueue(t)
	msgs := bodies(25, "batch")
	send(t, dst, msgs...)
	got := receiveN(t, src, 25, queue.MaxBatch, 60*h.Hold())
	seen := map[string]bool{}
	for _, m := range got {
		if seen[string(m.Body)] {
			t.Fatalf("%s received twice while leased", m.Body)
		}
		seen[string(m.Body)] = true
	}
	res := src.Delete(ctx(t), got)
	if len(res) != len(got) {
		t.Fatalf("delete of %d messages answered %d results", len(got), len(res))
	}
	noErrors(t, "delete", res)
	gone(t, h, src, got)
}

func testDepth(t *testing.T, h Harness) {
	src, dst := h.NewQueue(t)
	send(t, dst, bodies(3, "depth")...)
	waitDepth(t, src, queue.Depth{Visible: 3})
	got := receiveN(t, src, 1, 1, 60*h.Hold())
	waitDepth(t, src, queue.Depth{Visible: 2, NotVisible: 1})
	noErrors(t, "delete", src.Delete(ctx(t), got))
	waitDepth(t, src, queue.Depth{Visible: 2})
}

// waitDepth waits until the source reports want (depths are approximate: they may lag).
func waitDepth(t *testing.T, src queue.Source, want queue.Depth) {
	t.Helper()
	var last queue.Depth
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		d, err := src.Depth(ctx(t))
		if err != nil {
			t.Fatalf("depth: %v", err)
		}
		if d == want {
			return
		}
		last = d
	}
	t.Fatalf("depth %+v, want %+v", last, want)
}
