// Package replaytest is the behaviour suite every dlq-replay source runs (as go-cloud's
// drivertest is for its drivers): the same replays, dry runs, exports, imports, crashes and
// purges against the SQS DLQ and the Pub/Sub dead-letter subscription.
package replaytest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"imgpipe/dlq-replay/replay"
	"imgpipe/pkg/failure"
	"imgpipe/pkg/s3event"
)

// Env is one fresh set of resources for one test.
type Env struct {
	DLQ     replay.Source // the dead-letter queue or subscription under test
	Seed    replay.Sink   // sends into DLQ (the DLQ itself, or the dead-letter topic)
	Dest    replay.Sink   // where replays go: the pipeline's queue or topic
	DestSrc replay.Source // reads what arrived at Dest
	// Depth, when set, reports the DLQ's and the destination's message counts from the
	// service's own attributes (visible plus in flight), independently of Receive.
	Depth func(t *testing.T) (dlq, dest int)
	// InFlight, when set, reports how many of the DLQ's messages the service counts as in
	// flight (leased).
	InFlight func(t *testing.T) int
	// Typed reports whether attributes keep their data types, Binary ones included (SQS
	// does; Pub/Sub attributes are all text).
	Typed bool
	// Hold is the shortest lease the suite uses to simulate a crash; its expiry must make
	// messages receivable again.
	Hold time.Duration
	// MaxHold is the longest lease the service grants (SQS 12 h, Pub/Sub 600 s).
	MaxHold time.Duration
}

// Harness makes an Env per test.
type Harness interface {
	NewEnv(t *testing.T) *Env
}

// Run runs the suite.
func Run(t *testing.T, h Harness) {
	t.Run("FilteredReplayLeavesTheRest", func(t *testing.T) { testFiltered(t, h.NewEnv(t)) })
	t.Run("DryRunChangesNothing", func(t *testing.T) { testDryRun(t, h.NewEnv(t)) })
	t.Run("ExportImportRoundTrip", func(t *testing.T) { testRoundTrip(t, h.NewEnv(t)) })
	t.Run("CrashBetweenSendAndDeleteLosesNothing", func(t *testing.T) { testCrash(t, h.NewEnv(t)) })
	t.Run("TooManyReplaysStays", func(t *testing.T) { testMaxReplays(t, h.NewEnv(t)) })
	t.Run("MaxCount", func(t *testing.T) { testMax(t, h.NewEnv(t)) })
	t.Run("Purge", func(t *testing.T) { testPurge(t, h.NewEnv(t)) })
	t.Run("WhatComesBackIsNotMovedAgain", func(t *testing.T) { testCameBack(t, h.NewEnv(t)) })
	t.Run("SlowRateKeepsLeasesAlive", func(t *testing.T) { testSlowRate(t, h.NewEnv(t)) })
	t.Run("HoldOutOfRangeRefused", func(t *testing.T) { testHoldRange(t, h.NewEnv(t)) })
	t.Run("LeaseWindowStaysBounded", func(t *testing.T) { testWindow(t, h.NewEnv(t)) })
}

// Msg builds a dead-lettered S3 event message for key, failed for reason.
func Msg(t testing.TB, key, reason string, class failure.Class, replays int) *replay.Message {
	t.Helper()
	body, err := s3event.MarshalEvent([]s3event.Record{s3event.NewRecord("ObjectCreated:Put", "images", key, time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC))})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	f := failure.Details{Reason: reason, Class: class, Error: "analyze " + key + ": " + reason, Attempts: 3,
		FirstFailure: now.Add(-time.Hour), LastFailure: now.Add(-time.Minute), ReplayCount: replays}
	m := &replay.Message{ID: key, Body: body, Attributes: map[string]replay.Attr{}}
	for k, v := range f.Attributes() {
		m.Attributes[k] = replay.Attr{DataType: replay.DataString, String: v}
	}
	return m
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

// seed sends msgs into the DLQ and waits until a scan sees them all.
func seed(t *testing.T, e *Env, msgs ...*replay.Message) {
	t.Helper()
	if n, err := replay.Send(ctx(t), e.Seed, msgs, 10); err != nil || n != len(msgs) {
		t.Fatalf("seed: sent %d of %d: %v", n, len(msgs), err)
	}
	waitFor(t, "seeded messages", func() bool { return len(contents(t, e.DLQ)) >= len(msgs) })
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(45 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if ok() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// contents lists the keys of what src holds, releasing everything.
func contents(t *testing.T, src replay.Source) []string {
	t.Helper()
	var keys []string
	if _, err := replay.Scan(ctx(t), src, &replay.ScanOptions{Hold: 30 * time.Second}, func(m *replay.Message) error {
		keys = append(keys, replay.Key(m))
		return nil
	}); err != nil {
		t.Fatalf("scan: %v", err)
	}
	slices.Sort(keys)
	return keys
}

// take removes and returns everything at the destination, keyed by object key.
func take(t *testing.T, src replay.Source) map[string]*replay.Message {
	t.Helper()
	out := map[string]*replay.Message{}
	if _, _, err := replay.Drain(ctx(t), src, nil, false, func(ms []*replay.Message) error {
		for _, m := range ms {
			out[replay.Key(m)] = m
		}
		return nil
	}); err != nil {
		t.Fatalf("drain destination: %v", err)
	}
	return out
}

// tally removes everything at the destination and counts it by object key: duplicates show.
func tally(t *testing.T, src replay.Source) map[string]int {
	t.Helper()
	n := map[string]int{}
	if _, _, err := replay.Drain(ctx(t), src, nil, false, func(ms []*replay.Message) error {
		for _, m := range ms {
			n[replay.Key(m)]++
		}
		return nil
	}); err != nil {
		t.Fatalf("drain destination: %v", err)
	}
	return n
}

func keysOf(m map[string]*replay.Message) []string { return slices.Sorted(maps.Keys(m)) }

func testFiltered(t *testing.T, e *Env) {
	seed(t, e,
		Msg(t, "upload/cats/1.jpg", "VisionUnavailable", failure.Transient, 0),
		Msg(t, "upload/cats/2.jpg", "VisionUnavailable", failure.Transient, 0),
		Msg(t, "upload/dogs/3.jpg", "VisionUnavailable", failure.Transient, 0),
		Msg(t, "upload/cats/4.jpg", "InvalidImageFormat", failure.Permanent, 0),
		Msg(t, "upload/dogs/5.jpg", "InvalidImageFormat", failure.Permanent, 0),
	)
	var decided []string
	sum, err := replay.Run(ctx(t), e.DLQ, e.Dest, &replay.Options{
		Filter:     replay.Filter{Classes: []string{"transient"}, Prefix: "upload/cats/"},
		OnDecision: func(m *replay.Message, d replay.Decision) { decided = append(decided, replay.Key(m)+"="+d.String()) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Moved != 2 || sum.SkippedFilter != 3 || sum.Failed != 0 || sum.Seen != 5 {
		t.Fatalf("summary %+v (decisions %v)", sum, decided)
	}
	got := take(t, e.DestSrc)
	if want := []string{"upload/cats/1.jpg", "upload/cats/2.jpg"}; !slices.Equal(keysOf(got), want) {
		t.Fatalf("destination has %v, want %v", keysOf(got), want)
	}
	for k, m := range got {
		a := m.StringAttributes()
		if a[failure.AttrReplayCount] != "1" || a[replay.AttrReplayedAt] == "" || a[failure.AttrReason] != "VisionUnavailable" || a[failure.AttrAttempts] != "3" {
			t.Fatalf("%s arrived with attributes %v", k, a)
		}
	}
	if got, want := contents(t, e.DLQ), []string{"upload/cats/4.jpg", "upload/dogs/3.jpg", "upload/dogs/5.jpg"}; !slices.Equal(got, want) {
		t.Fatalf("DLQ holds %v, want %v", got, want)
	}
}

func testDryRun(t *testing.T, e *Env) {
	seed(t, e,
		Msg(t, "upload/a.jpg", "VisionUnavailable", failure.Transient, 0),
		Msg(t, "upload/b.jpg", "VisionUnavailable", failure.Transient, 0),
		Msg(t, "upload/c.jpg", "InvalidImageFormat", failure.Permanent, 0),
	)
	var would []string
	sum, err := replay.Run(ctx(t), e.DLQ, e.Dest, &replay.Options{
		DryRun: true, Filter: replay.Filter{Reasons: []string{"VisionUnavailable"}},
		OnDecision: func(m *replay.Message, d replay.Decision) {
			if d == replay.Move {
				would = append(would, replay.Key(m))
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(would)
	if !sum.DryRun || sum.Moved != 2 || sum.SkippedFilter != 1 || !slices.Equal(would, []string{"upload/a.jpg", "upload/b.jpg"}) {
		t.Fatalf("dry run summary %+v, would move %v", sum, would)
	}
	if e.Depth != nil {
		if d, dest := e.Depth(t); d != 3 || dest != 0 {
			t.Fatalf("after dry run: DLQ depth %d (want 3), destination depth %d (want 0)", d, dest)
		}
	}
	if got := contents(t, e.DLQ); len(got) != 3 {
		t.Fatalf("DLQ holds %v after a dry run", got)
	}
	if got := take(t, e.DestSrc); len(got) != 0 {
		t.Fatalf("dry run sent %v", keysOf(got))
	}
}

func testRoundTrip(t *testing.T, e *Env) {
	a := Msg(t, "upload/x y+z/ü.jpg", "InvalidImageFormat", failure.Permanent, 2)
	a.Attributes["custom.text"] = replay.Attr{DataType: replay.DataString, String: "  spaces, ünïcode, \"quotes\"\n"}
	if e.Typed {
		a.Attributes["custom.number"] = replay.Attr{DataType: replay.DataNumber, String: "42.5"}
		a.Attributes["custom.typed"] = replay.Attr{DataType: "String.json", String: `{"a":1}`}
		a.Attributes["custom.bin"] = replay.Attr{DataType: replay.DataBinary, Binary: []byte{0, 1, 2, 255}}
	}
	b := &replay.Message{ID: "plain", Body: []byte(`{"key":"upload/plain.jpg","note":"no attributes"}`)}
	seed(t, e, a, b)
	var file bytes.Buffer
	n, _, err := replay.Drain(ctx(t), e.DLQ, nil, false, func(ms []*replay.Message) error {
		for _, m := range ms {
			if err := replay.WriteLine(&file, m); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil || n != 2 {
		t.Fatalf("export removed %d: %v", n, err)
	}
	if got := contents(t, e.DLQ); len(got) != 0 {
		t.Fatalf("DLQ holds %v after export --delete", got)
	}
	var back []*replay.Message
	if err := replay.ReadLines(&file, func(m *replay.Message) error { back = append(back, m); return nil }); err != nil {
		t.Fatal(err)
	}
	if sent, err := replay.Send(ctx(t), e.Dest, back, 10); err != nil || sent != 2 {
		t.Fatalf("import sent %d: %v", sent, err)
	}
	got := take(t, e.DestSrc)
	for _, want := range []*replay.Message{a, b} {
		m := got[replay.Key(want)]
		if m == nil {
			t.Fatalf("%s missing after import; have %v", replay.Key(want), keysOf(got))
		}
		if !bytes.Equal(m.Body, want.Body) {
			t.Errorf("%s body changed:\n got %q\nwant %q", replay.Key(want), m.Body, want.Body)
		}
		if !attrsEqual(m.Attributes, want.Attributes) {
			t.Errorf("%s attributes changed:\n got %v\nwant %v", replay.Key(want), m.Attributes, want.Attributes)
		}
	}
}

func attrsEqual(a, b map[string]replay.Attr) bool {
	if len(a) != len(b) {
		return false
	}
	for k, x := range a {
		y, ok := b[k]
		if !ok || x.DataType != y.DataType || x.String != y.String || !bytes.Equal(x.Binary, y.Binary) {
			return false
		}
	}
	return true
}

func testCrash(t *testing.T, e *Env) {
	var msgs []*replay.Message
	for i := range 4 {
		msgs = append(msgs, Msg(t, "upload/crash/"+strconv.Itoa(i)+".jpg", "VisionUnavailable", failure.Transient, 0))
	}
	seed(t, e, msgs...)
	crash := NewCrash(e.DLQ, e.Dest, nil)
	sum, err := replay.Run(ctx(t), crash.Source(), crash.Sink(), &replay.Options{Batch: 10, Hold: e.Hold})
	if !errors.Is(err, ErrCrash) {
		t.Fatalf("run error %v, want the injected crash", err)
	}
	sent := crash.Sent()
	if sent == 0 || sum.Moved != 0 {
		t.Fatalf("%d sent before the crash, %d counted moved; want some sent, none moved", sent, sum.Moved)
	}
	// Nothing was deleted: once the crashed run's leases lapse, every message is back in the
	// DLQ, and the sent ones are also at the destination (duplicates, which the pipeline
	// tolerates).
	want := make([]string, len(msgs))
	for i, m := range msgs {
		want[i] = replay.Key(m)
	}
	slices.Sort(want)
	waitFor(t, "the crashed run's messages back in the DLQ", func() bool { return slices.Equal(contents(t, e.DLQ), want) })
	if got := take(t, e.DestSrc); len(got) != sent {
		t.Fatalf("destination has %v, want the %d sent before the crash", keysOf(got), sent)
	}
	// A second run completes the move.
	sum, err = replay.Run(ctx(t), e.DLQ, e.Dest, nil)
	if err != nil || sum.Moved != len(msgs) {
		t.Fatalf("second run %+v: %v", sum, err)
	}
	if got := contents(t, e.DLQ); len(got) != 0 {
		t.Fatalf("DLQ holds %v after the second run", got)
	}
}

func testMaxReplays(t *testing.T, e *Env) {
	seed(t, e,
		Msg(t, "upload/loop.jpg", "VisionUnavailable", failure.Transient, replay.DefaultMaxReplays),
		Msg(t, "upload/fresh.jpg", "VisionUnavailable", failure.Transient, replay.DefaultMaxReplays-1),
	)
	sum, err := replay.Run(ctx(t), e.DLQ, e.Dest, nil)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Moved != 1 || sum.TooManyReplays != 1 {
		t.Fatalf("summary %+v", sum)
	}
	got := take(t, e.DestSrc)
	if m := got["upload/fresh.jpg"]; m == nil || m.StringAttributes()[failure.AttrReplayCount] != fmt.Sprint(replay.DefaultMaxReplays) {
		t.Fatalf("destination %v", keysOf(got))
	}
	if got := contents(t, e.DLQ); !slices.Equal(got, []string{"upload/loop.jpg"}) {
		t.Fatalf("DLQ holds %v, want the over-replayed message", got)
	}
}

func testMax(t *testing.T, e *Env) {
	var msgs []*replay.Message
	for i := range 5 {
		msgs = append(msgs, Msg(t, "upload/max/"+strconv.Itoa(i)+".jpg", "VisionUnavailable", failure.Transient, 0))
	}
	seed(t, e, msgs...)
	sum, err := replay.Run(ctx(t), e.DLQ, e.Dest, &replay.Options{Max: 2, Batch: 3})
	if err != nil || sum.Moved != 2 {
		t.Fatalf("summary %+v: %v", sum, err)
	}
	if got := take(t, e.DestSrc); len(got) != 2 {
		t.Fatalf("destination has %v", keysOf(got))
	}
	if got := contents(t, e.DLQ); len(got) != 3 {
		t.Fatalf("DLQ holds %v", got)
	}
}

func testPurge(t *testing.T, e *Env) {
	seed(t, e, Msg(t, "upload/p1.jpg", "InvalidImageFormat", failure.Permanent, 0), Msg(t, "upload/p2.jpg", "InvalidImageFormat", failure.Permanent, 0))
	n, _, err := replay.Drain(ctx(t), e.DLQ, nil, false, func([]*replay.Message) error { return nil })
	if err != nil || n != 2 {
		t.Fatalf("purge removed %d: %v", n, err)
	}
	if got := contents(t, e.DLQ); len(got) != 0 {
		t.Fatalf("DLQ holds %v after purge", got)
	}
}

// Bench measures replay throughput, batched (10) against one message at a time, for one
// source: each round seeds n messages into the DLQ through seed, replays them from src to dst
// and then calls reset (outside the timer) to empty the destination. It reports msgs/s.
func Bench(b *testing.B, n int, seed replay.Sink, src replay.Source, dst replay.Sink, reset func()) {
	ctx := context.Background()
	msgs := make([]*replay.Message, n)
	for i := range msgs {
		msgs[i] = Msg(b, "upload/bench/"+strconv.Itoa(i)+".jpg", "VisionUnavailable", failure.Transient, 0)
	}
	for _, mode := range []struct {
		name  string
		batch int
	}{{"batched", 10}, {"one-at-a-time", 1}} {
		b.Run(mode.name, func(b *testing.B) {
			moved := 0
			for b.Loop() {
				b.StopTimer()
				if sent, err := replay.Send(ctx, seed, msgs, 10); err != nil || sent != n {
					b.Fatalf("seed: %d %v", sent, err)
				}
				b.StartTimer()
				sum, err := replay.Run(ctx, src, dst, &replay.Options{Batch: mode.batch, Max: n})
				if err != nil || sum.Moved != n {
					b.Fatalf("replay %+v: %v", sum, err)
				}
				moved += sum.Moved
				b.StopTimer()
				if reset != nil {
					reset()
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(moved)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// bounce is a destination that fails every message at once and sends it back to the DLQ with
// the attributes it arrived with, as the analyzer does with a permanently bad image.
type bounce struct {
	dst, back replay.Sink
	t         *testing.T
}

func (b bounce) Send(ctx context.Context, msgs []*replay.Message) []error {
	res := b.dst.Send(ctx, msgs)
	var ok []*replay.Message
	for i, e := range res {
		if e == nil {
			ok = append(ok, msgs[i])
		}
	}
	if n, err := replay.Send(ctx, b.back, ok, 10); err != nil || n != len(ok) {
		b.t.Errorf("send back to the DLQ: %d of %d: %v", n, len(ok), err)
	}
	return res
}

// testCameBack: a run works on the DLQ as it was when it started. Messages it moved that the
// pipeline sends straight back are not moved again by the same run.
func testCameBack(t *testing.T, e *Env) {
	var msgs []*replay.Message
	for i := range 4 {
		msgs = append(msgs, Msg(t, "upload/back/"+strconv.Itoa(i)+".jpg", "InvalidImageFormat", failure.Permanent, 0))
	}
	seed(t, e, msgs...)
	sum, err := replay.Run(ctx(t), e.DLQ, bounce{e.Dest, e.Seed, t}, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := tally(t, e.DestSrc)
	for _, m := range msgs {
		if got[replay.Key(m)] != 1 {
			t.Errorf("%s reached the destination %d times in one run, want 1 (summary %+v)", replay.Key(m), got[replay.Key(m)], sum)
		}
	}
	if sum.Moved != len(msgs) || sum.CameBack != len(msgs) || sum.TooManyReplays != 0 || sum.Seen != 2*len(msgs) {
		t.Errorf("summary %+v: want %d moved, the same number came back, none too many replays", sum, len(msgs))
	}
	// What came back stays in the DLQ, replayed once, for the operator to look at.
	back := 0
	if _, err := replay.Scan(ctx(t), e.DLQ, nil, func(m *replay.Message) error {
		if m.Failure().ReplayCount != 1 {
			t.Errorf("%s in the DLQ with replay count %d, want 1", replay.Key(m), m.Failure().ReplayCount)
		}
		back++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if back != len(msgs) {
		t.Errorf("DLQ holds %d after the run, want the %d that came back", back, len(msgs))
	}
}

// testSlowRate: a rate limit that makes a batch wait longer than its lease must not let the
// leases lapse before the delete. Meanwhile another reader peeks at the DLQ (as `uploader
// status` does): a lapsed message goes to it, and a delete with the lapsed lease then leaves
// the message in the DLQ although it was sent, so a later run would replay it twice.
func testSlowRate(t *testing.T, e *Env) {
	var msgs []*replay.Message
	for i := range 14 {
		msgs = append(msgs, Msg(t, "upload/slow/"+strconv.Itoa(i)+".jpg", "VisionUnavailable", failure.Transient, 0))
	}
	seed(t, e, msgs...)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			case <-time.After(100 * time.Millisecond):
			}
			if _, err := replay.Scan(ctx(t), e.DLQ, &replay.ScanOptions{Max: 2, Hold: time.Second}, func(*replay.Message) error { return nil }); err != nil {
				t.Errorf("peek: %v", err)
				return
			}
		}
	})
	// Burst 4 then 2 a second: each later batch of 4 waits about 2 s on a 1 s lease.
	sum, err := replay.Run(ctx(t), e.DLQ, e.Dest, &replay.Options{Batch: 4, Rate: 2, Hold: time.Second})
	close(done)
	wg.Wait()
	if err != nil || sum.Moved == 0 {
		t.Fatalf("summary %+v: %v", sum, err)
	}
	sent := tally(t, e.DestSrc)
	left := map[string]bool{}
	for _, k := range contents(t, e.DLQ) {
		left[k] = true
	}
	for _, m := range msgs {
		k := replay.Key(m)
		switch {
		case sent[k] > 1:
			t.Errorf("%s sent %d times", k, sent[k])
		case sent[k] == 1 && left[k]:
			t.Errorf("%s was sent and is still in the DLQ: its delete used a lapsed lease (summary %+v)", k, sum)
		case sent[k] == 0 && !left[k]:
			t.Errorf("%s lost: neither sent nor in the DLQ", k)
		}
	}
}

// testHoldRange: a lease the service would not grant as asked (under a second, a fraction of a
// second, over the service's maximum) is refused with a permanent error before anything is
// received, rather than rounded to another lease behind the caller's back.
func testHoldRange(t *testing.T, e *Env) {
	seed(t, e, Msg(t, "upload/hold.jpg", "VisionUnavailable", failure.Transient, 0))
	for _, hold := range []time.Duration{0, 500 * time.Millisecond, 1500 * time.Millisecond, e.MaxHold + time.Second} {
		msgs, err := e.DLQ.Receive(ctx(t), 1, hold)
		if err == nil || !failure.IsPermanent(err) {
			t.Errorf("Receive with hold %v: %d messages, error %v; want a permanent error", hold, len(msgs), err)
		}
		if len(msgs) > 0 {
			_ = e.DLQ.Release(ctx(t), msgs)
		}
	}
	if got := contents(t, e.DLQ); len(got) != 1 {
		t.Fatalf("DLQ holds %v", got)
	}
}

// testWindow: a scan and a filtered replay over more messages than their lease window look at
// each message once while holding at most the window plus one batch leased, by their own
// count and, where the service counts, by the service's (messages not visible).
func testWindow(t *testing.T, e *Env) {
	const n, window = 75, 20
	var msgs []*replay.Message
	for i := range n {
		reason := "InvalidImageFormat"
		if i%5 == 0 {
			reason = "VisionUnavailable"
		}
		msgs = append(msgs, Msg(t, fmt.Sprintf("upload/win/%02d.jpg", i), reason, failure.Permanent, 0))
	}
	seed(t, e, msgs...)
	inFlight := 0 // the most the service counted in flight, sampled as the scan goes
	got := map[string]int{}
	p, err := replay.Scan(ctx(t), e.DLQ, &replay.ScanOptions{Window: window, Hold: 30 * time.Second}, func(m *replay.Message) error {
		if got[replay.Key(m)]++; len(got)%10 == 0 && e.InFlight != nil {
			inFlight = max(inFlight, e.InFlight(t))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != n || p.Seen != n {
		t.Fatalf("scan saw %d distinct of %d (pass %+v)", len(got), n, p)
	}
	for k, c := range got {
		if c != 1 {
			t.Errorf("%s handed out %d times", k, c)
		}
	}
	if p.MaxLeased > window+10 || inFlight > window+10 {
		t.Errorf("held %d leased at once by the scan's count, %d by the service's; want at most %d", p.MaxLeased, inFlight, window+10)
	}
	// Export without --delete: each batch handed out once, then kept in the window.
	exported := map[string]int{}
	if _, p, err := replay.Drain(ctx(t), e.DLQ, &replay.ScanOptions{Window: window, Hold: 30 * time.Second}, true, func(ms []*replay.Message) error {
		for _, m := range ms {
			exported[replay.Key(m)]++
		}
		if e.InFlight != nil {
			inFlight = max(inFlight, e.InFlight(t))
		}
		return nil
	}); err != nil || len(exported) != n || p.Seen != n || p.MaxLeased > window+10 || inFlight > window+10 {
		t.Fatalf("export saw %d distinct of %d, pass %+v, service counted %d in flight at most: %v", len(exported), n, p, inFlight, err)
	}
	sum, err := replay.Run(ctx(t), e.DLQ, e.Dest, &replay.Options{Window: window, Hold: 30 * time.Second,
		Filter: replay.Filter{Reasons: []string{"VisionUnavailable"}},
		OnProgress: func(replay.Summary) {
			if e.InFlight != nil {
				inFlight = max(inFlight, e.InFlight(t))
			}
		}})
	if err != nil || sum.Moved != n/5 || sum.SkippedFilter != n-n/5 || sum.MaxLeased > window+10 || inFlight > window+10 {
		t.Fatalf("replay %+v (service counted %d in flight at most): %v", sum, inFlight, err)
	}
	if got := take(t, e.DestSrc); len(got) != n/5 {
		t.Fatalf("destination has %d, want %d", len(got), n/5)
	}
	if e.InFlight != nil {
		if f := e.InFlight(t); f != 0 {
			t.Fatalf("%d still in flight after the run: not released", f)
		}
	}
}
