package replay

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"imgpipe/pkg/failure"
	"imgpipe/pkg/queue"
)

// memQueue is an in-memory Source and Sink for the engine's logic; the real edges run the
// shared suite (replaytest) against the stand-ins. Like both stand-ins, it hands a released
// message out again after the others (headFirst: before them); Send stamps SentAt.
type memQueue struct {
	mu        sync.Mutex
	msgs      []*Message // in order
	leased    map[string]bool
	until     map[string]time.Time // with realLeases: when each lease runs out
	handles   map[string]string    // message ID -> its current lease's handle
	gen       int
	expireAt  int                   // when > 0: the receive with this number first lets every lease run out
	sendFail  func(m *Message) bool // fail these sends
	delFail   func(m *Message) bool // fail these deletes
	onSend    func()
	sends     int // Send calls
	extends   int // Extend calls
	headFirst bool
	extendErr error // fail every Extend with this
	recvErr   error // fail the next recvFails receives with this
	recvFails int
	// loseNext makes the next receives lease a batch and then fail with recvErr, as a
	// receive whose answer was lost on the way after the service handed it out.
	loseNext int
	// realLeases makes leases run out on the real clock after their hold; lapsed counts
	// deletes made with a lease that had run out.
	realLeases bool
	lapsed     int
	maxLeased  int
	releases   int // Release calls
	released   int // messages they released
}

func (q *memQueue) MaxAttributes() int { return 10 }

func (q *memQueue) ApproximateSize(context.Context) (int, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.msgs) - len(q.leased), nil
}

func (q *memQueue) lapsedLease(id string) bool {
	return q.realLeases && q.leased[id] && time.Now().After(q.until[id])
}

func (q *memQueue) Receive(_ context.Context, n int, hold time.Duration) ([]*Message, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.leased == nil {
		q.leased, q.handles, q.until = map[string]bool{}, map[string]string{}, map[string]time.Time{}
	}
	if q.recvFails > 0 {
		q.recvFails--
		return nil, q.recvErr
	}
	q.gen++
	if q.gen == q.expireAt {
		clear(q.leased)
	}
	var out []*Message
	for _, m := range q.msgs {
		if len(out) == n {
			break
		}
		if !q.leased[m.ID] || q.lapsedLease(m.ID) {
			q.leased[m.ID] = true
			q.until[m.ID] = time.Now().Add(hold)
			c := *m
			c.Handle = m.ID + "#" + strconv.Itoa(q.gen)
			q.handles[m.ID] = c.Handle
			out = append(out, &c)
		}
	}
	q.maxLeased = max(q.maxLeased, len(q.leased))
	if q.loseNext > 0 {
		q.loseNext--
		return nil, q.recvErr
	}
	return out, nil
}

func (q *memQueue) Extend(_ context.Context, msgs []*Message, hold time.Duration) []error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.extends++
	if q.extendErr != nil {
		return queue.Each(len(msgs), q.extendErr)
	}
	res := make([]error, len(msgs))
	for i, m := range msgs {
		if q.handles[m.ID] != m.Handle || q.lapsedLease(m.ID) {
			res[i] = errors.New("extend: lease already ran out: " + m.Handle)
			continue
		}
		q.until[m.ID] = time.Now().Add(hold)
	}
	return res
}

func (q *memQueue) Release(_ context.Context, msgs []*Message) []error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.releases++
	q.released += len(msgs)
	res := make([]error, len(msgs))
	for i, m := range msgs {
		if q.handles[m.ID] != m.Handle {
			res[i] = errors.New("release: stale receipt handle " + m.Handle)
			continue
		}
		delete(q.leased, m.ID)
		i := slices.IndexFunc(q.msgs, func(x *Message) bool { return x.ID == m.ID })
		if i < 0 {
			continue
		}
		x := q.msgs[i]
		q.msgs = slices.Delete(q.msgs, i, i+1)
		if q.headFirst {
			q.msgs = slices.Insert(q.msgs, 0, x)
		} else {
			q.msgs = append(q.msgs, x)
		}
	}
	return res
}

func (q *memQueue) Delete(_ context.Context, msgs []*Message) []error {
	q.mu.Lock()
	defer q.mu.Unlock()
	res := make([]error, len(msgs))
	for i, m := range msgs {
		if q.delFail != nil && q.delFail(m) {
			res[i] = errors.New("delete refused")
			continue
		}
		if q.handles[m.ID] != m.Handle {
			res[i] = errors.New("delete: stale receipt handle")
			continue
		}
		if q.lapsedLease(m.ID) {
			q.lapsed++
		}
		q.msgs = slices.DeleteFunc(q.msgs, func(x *Message) bool { return x.ID == m.ID })
		delete(q.leased, m.ID)
	}
	return res
}

func (q *memQueue) Send(_ context.Context, msgs []*Message) []error {
	q.mu.Lock()
	q.sends++
	res := make([]error, len(msgs))
	for i, m := range msgs {
		if q.sendFail != nil && q.sendFail(m) {
			res[i] = errors.New("send refused")
			continue
		}
		c := *m
		c.SentAt = time.Now()
		q.msgs = append(q.msgs, &c)
	}
	onSend := q.onSend
	q.mu.Unlock()
	if onSend != nil {
		onSend()
	}
	return res
}

func (q *memQueue) ids() []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []string
	for _, m := range q.msgs {
		out = append(out, m.ID)
	}
	slices.Sort(out)
	return out
}

func (q *memQueue) unleased() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.msgs) - len(q.leased)
}

func fill(t *testing.T, n int) *memQueue {
	q := &memQueue{}
	for i := range n {
		m := msg(t, "upload/"+strconv.Itoa(100+i)+".jpg", "VisionUnavailable", failure.Transient, 0, time.Minute)
		m.SentAt = now.Add(-time.Hour) // before any run's start, on the fixed clock or the real one
		q.msgs = append(q.msgs, m)
	}
	return q
}

func TestRunDeletesOnlyConfirmedSends(t *testing.T) {
	src, dst := fill(t, 6), &memQueue{}
	dst.sendFail = func(m *Message) bool { return m.ID == "upload/101.jpg" || m.ID == "upload/104.jpg" }
	var reported []string
	sum, err := Run(context.Background(), src, dst, &Options{Batch: 4, Now: func() time.Time { return now },
		OnFailure: func(m *Message, err error) { reported = append(reported, m.ID+": "+err.Error()) }})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Moved != 4 || sum.Failed != 2 || !sum.Partial() {
		t.Fatalf("summary %+v", sum)
	}
	if !slices.Equal(reported, []string{"upload/101.jpg: send refused", "upload/104.jpg: send refused"}) {
		t.Fatalf("failures reported: %q", reported)
	}
	if got := src.ids(); !slices.Equal(got, []string{"upload/101.jpg", "upload/104.jpg"}) {
		t.Fatalf("DLQ keeps %v, want the two failed sends", got)
	}
	if src.unleased() != 2 {
		t.Fatal("failed messages were not released")
	}
	if len(dst.ids()) != 4 {
		t.Fatalf("destination %v", dst.ids())
	}
}

func TestRunDeleteFailureIsADuplicateNotALoss(t *testing.T) {
	src, dst := fill(t, 3), &memQueue{}
	src.delFail = func(m *Message) bool { return m.ID == "upload/100.jpg" }
	sum, err := Run(context.Background(), src, dst, nil)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Moved != 2 || sum.DeleteFailed != 1 || !sum.Partial() {
		t.Fatalf("summary %+v", sum)
	}
	if !slices.Contains(src.ids(), "upload/100.jpg") || !slices.Contains(dst.ids(), "upload/100.jpg") {
		t.Fatal("an undeleted message must be both in the DLQ and at the destination")
	}
}

func TestRunInterruptStopsAfterCurrentBatch(t *testing.T) {
	src, dst := fill(t, 25), &memQueue{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dst.onSend = cancel // Ctrl-C arrives while the first batch is being sent
	sum, err := Run(ctx, src, dst, &Options{Batch: 10})
	if err != nil {
		t.Fatal(err)
	}
	if !sum.Interrupted || sum.Moved != 10 || dst.sends != 1 {
		t.Fatalf("summary %+v after %d sends; want the first batch moved, then a stop", sum, dst.sends)
	}
	if len(src.ids()) != 15 || src.unleased() != 15 {
		t.Fatalf("DLQ keeps %d (%d released), want 15 released", len(src.ids()), src.unleased())
	}
}

func TestRunDryRunAndMax(t *testing.T) {
	src, dst := fill(t, 7), &memQueue{}
	var moved []string
	sum, err := Run(context.Background(), src, dst, &Options{DryRun: true, Max: 5, Batch: 3,
		OnDecision: func(m *Message, d Decision) {
			if d == Move {
				moved = append(moved, m.ID)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Moved != 5 || len(moved) != 5 || sum.SkippedFilter != 1 || dst.sends != 0 || len(src.ids()) != 7 || src.unleased() != 7 {
		t.Fatalf("dry run %+v, moved %v, %d sends, DLQ %d (%d unleased)", sum, moved, dst.sends, len(src.ids()), src.unleased())
	}
}

func TestRunRateInterruptedWhileWaiting(t *testing.T) {
	src, dst := fill(t, 5), &memQueue{}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // already interrupted: nothing may be sent
	sum, err := Run(ctx, src, dst, &Options{Rate: 1})
	if err != nil || !sum.Interrupted || dst.sends != 0 {
		t.Fatalf("summary %+v, %d sends, err %v", sum, dst.sends, err)
	}
}

func TestRunLeaseRunsOutMidRun(t *testing.T) {
	src, dst := fill(t, 25), &memQueue{}
	src.expireAt = 3 // the third receive finds the first two batches' leases expired
	sum, err := Run(context.Background(), src, dst, &Options{Filter: Filter{Reasons: []string{"other"}}})
	if err != nil {
		t.Fatalf("run: %v (a stale lease must not be released)", err)
	}
	if sum.Seen != 25 || sum.SkippedFilter != 25 || src.unleased() != 25 {
		t.Fatalf("summary %+v, %d unleased; want each message seen once and all released", sum, src.unleased())
	}
}

func TestDrainKeepAndScan(t *testing.T) {
	src := fill(t, 12)
	seen := 0
	if _, err := Scan(context.Background(), src, &ScanOptions{Max: 11}, func(*Message) error { seen++; return nil }); err != nil || seen != 11 {
		t.Fatalf("scan saw %d: %v", seen, err)
	}
	if src.unleased() != 12 {
		t.Fatal("scan left messages leased")
	}
	n, _, err := Drain(context.Background(), src, nil, true, func([]*Message) error { return nil })
	if err != nil || n != 0 || len(src.ids()) != 12 || src.unleased() != 12 {
		t.Fatalf("drain keep: deleted %d, %v", n, err)
	}
	stop := errors.New("disk full")
	n, _, err = Drain(context.Background(), src, nil, false, func([]*Message) error { return stop })
	if !errors.Is(err, stop) || n != 0 || len(src.ids()) != 12 {
		t.Fatalf("a failed write must delete nothing: deleted %d, %v", n, err)
	}
	n, _, err = Drain(context.Background(), src, nil, false, func([]*Message) error { return nil })
	if err != nil || n != 12 || len(src.ids()) != 0 {
		t.Fatalf("drain: deleted %d, %v", n, err)
	}
}

// A pass over more messages than its window holds sees each once, holds at most the window
// plus one batch at a time, releases everything, and ends once it went round.
func TestPassWindowBoundsLeases(t *testing.T) {
	src := fill(t, 95)
	got := map[string]int{}
	p, err := Scan(context.Background(), src, &ScanOptions{Window: 20}, func(m *Message) error { got[m.ID]++; return nil })
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 95 || p.Seen != 95 {
		t.Fatalf("saw %d distinct (pass %+v), want 95", len(got), p)
	}
	for id, n := range got {
		if n != 1 {
			t.Fatalf("%s handed out %d times", id, n)
		}
	}
	if src.maxLeased > 30 || p.MaxLeased > 30 {
		t.Fatalf("%d leased at once on the queue, %d by the pass's count; want at most the window 20 + a batch of 10", src.maxLeased, p.MaxLeased)
	}
	if p.Ended != EndRound || p.AtStart != 95 || src.unleased() != 95 {
		t.Fatalf("pass %+v, %d unleased; want it ended by going round, every message released", p, src.unleased())
	}
	// Released in batches, not one call a message: the window's overflow goes back 10 at a time.
	if src.released < 95 || src.released < 8*src.releases {
		t.Fatalf("%d messages released in %d calls; want batches of about 10", src.released, src.releases)
	}
	// A filtered replay over the same queue: the same bound, each selected message moved once.
	dst := &memQueue{}
	sum, err := Run(context.Background(), src, dst, &Options{Window: 20, Filter: Filter{Glob: "upload/1[0-4]?.jpg"}})
	if err != nil || sum.Moved != 50 || sum.SkippedFilter != 45 || sum.Seen != 95 || src.maxLeased > 30 {
		t.Fatalf("summary %+v, %d leased at most: %v", sum, src.maxLeased, err)
	}
}

// The documented trade-off: on a queue that hands released messages straight back, a pass
// sees about its window and then ends as having gone round. It must end, and say so.
func TestPassOnAHeadFirstQueueEndsAndSaysSo(t *testing.T) {
	src := fill(t, 100)
	src.headFirst = true
	p, err := Scan(context.Background(), src, &ScanOptions{Window: 20}, func(*Message) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	if p.Ended != EndRound || p.Seen >= 100 || p.Seen < 20 || p.AtStart != 100 || src.unleased() != 100 {
		t.Fatalf("pass %+v: want it ended going round after about the window, every message released", p)
	}
}

func TestEntered(t *testing.T) {
	start := now
	stamp := func(at time.Time) map[string]Attr {
		return map[string]Attr{AttrReplayedAt: {DataType: DataString, String: at.Format(time.RFC3339Nano)}}
	}
	for _, c := range []struct {
		name string
		m    *Message
		want Decision
	}{
		{"sent before", &Message{SentAt: start.Add(-time.Second)}, Move},
		{"sent at the start", &Message{SentAt: start}, Move},
		{"unknown send time", &Message{}, Move},
		{"sent after", &Message{SentAt: start.Add(time.Millisecond)}, SkipArrived},
		{"replayed before, sent before", &Message{SentAt: start.Add(-time.Minute), Attributes: stamp(start.Add(-time.Hour))}, Move},
		{"replayed by this run", &Message{SentAt: start.Add(time.Second), Attributes: stamp(start.Add(time.Millisecond))}, SkipCameBack},
		{"replayed at the start", &Message{Attributes: stamp(start)}, SkipCameBack},
		{"unreadable stamp, sent after", &Message{SentAt: start.Add(time.Second), Attributes: map[string]Attr{AttrReplayedAt: {DataType: DataString, String: "soon"}}}, SkipArrived},
	} {
		if got := Entered(c.m, start); got != c.want {
			t.Errorf("%s: Entered = %s, want %s", c.name, got, c.want)
		}
	}
}

// What a run moves and the pipeline sends straight back is not moved again by the same run:
// recognised by this run's stamp, or (the stamp trimmed away at the attribute limit) by its
// send time. A message that arrives from elsewhere during the run is left too.
func TestRunLeavesWhatCameBackOrArrived(t *testing.T) {
	src := fill(t, 3)
	full := src.msgs[2]
	for i := 0; len(full.Attributes) < 10; i++ { // no room for imgpipe.replayed-at
		full.Attributes["custom."+strconv.Itoa(i)] = Attr{DataType: DataString, String: "v"}
	}
	newcomer := msg(t, "upload/new.jpg", "VisionUnavailable", failure.Transient, 0, 0)
	sent := 0
	back := &memQueue{}
	back.onSend = func() {
		back.mu.Lock()
		var ms []*Message
		for _, m := range back.msgs { // the analyzer: straight back to the DLQ, as a new message
			c := *m
			c.ID = "back:" + m.ID
			ms = append(ms, &c)
		}
		back.msgs = nil
		back.mu.Unlock()
		src.Send(context.Background(), ms)
		if sent++; sent == 1 {
			src.Send(context.Background(), []*Message{newcomer})
		}
	}
	var decisions []string
	sum, err := Run(context.Background(), src, back, &Options{Batch: 1,
		OnDecision: func(m *Message, d Decision) { decisions = append(decisions, m.ID+"="+d.String()) }})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Moved != 3 || sum.CameBack != 2 || sum.Arrived != 2 || sum.Seen != 7 || sum.Trimmed != 1 {
		t.Fatalf("summary %+v, decisions %v; want 3 moved, 2 came back by stamp, 2 arrived (the trimmed one and the newcomer)", sum, decisions)
	}
	if len(src.ids()) != 4 || src.unleased() != 4 {
		t.Fatalf("DLQ holds %v (%d released), want the 3 that came back and the newcomer", src.ids(), src.unleased())
	}
}

// A batch waiting on the rate limit longer than its lease has the lease renewed, so that its
// delete never uses a lease that ran out.
func TestRunRenewsLeasesWhileRateWaits(t *testing.T) {
	src, dst := fill(t, 20), &memQueue{}
	src.realLeases = true
	sum, err := Run(context.Background(), src, dst, &Options{Rate: 20, Batch: 10, Hold: 200 * time.Millisecond})
	if err != nil || sum.Moved != 20 {
		t.Fatalf("summary %+v: %v", sum, err)
	}
	if src.extends == 0 || src.lapsed != 0 {
		t.Fatalf("%d renewals, %d deletes with a lapsed lease; want renewals and none lapsed", src.extends, src.lapsed)
	}
}

// A renewal that fails stops the run before the batch whose leases are in doubt is sent: that
// batch stays in the DLQ, released, and the error is returned.
func TestRunStopsWhenARenewalFails(t *testing.T) {
	src, dst := fill(t, 20), &memQueue{}
	src.realLeases = true
	src.extendErr = errors.New("extend refused")
	sum, err := Run(context.Background(), src, dst, &Options{Rate: 20, Batch: 10, Hold: 200 * time.Millisecond})
	if !errors.Is(err, src.extendErr) || sum.Moved != 10 || sum.Ended != EndError {
		t.Fatalf("summary %+v, err %v; want the first batch moved, then the renewal's error", sum, err)
	}
	if len(dst.ids()) != 10 || len(src.ids()) != 10 || src.unleased() != 10 {
		t.Fatalf("destination %d, DLQ %d (%d released); want 10, 10 and 10", len(dst.ids()), len(src.ids()), src.unleased())
	}
}

// A receive that fails for a reason a retry can fix is retried and counted (its answer may have
// been lost, hiding a batch); a permanent failure or a setup fault ends the pass at once.
func TestPassRetriesAFailedReceive(t *testing.T) {
	src := fill(t, 25)
	src.recvErr, src.recvFails = errors.New("use of closed network connection"), 2
	n := 0
	p, err := Scan(context.Background(), src, nil, func(*Message) error { n++; return nil })
	if err != nil || n != 25 || p.FailedReceives != 2 {
		t.Fatalf("scan saw %d, pass %+v, err %v; want 25 seen and 2 failed receives", n, p, err)
	}
	src.recvErr, src.recvFails = failure.Permanentf("QueueDoesNotExist", "gone"), 1
	p, err = Scan(context.Background(), src, nil, func(*Message) error { return nil })
	if !failure.IsPermanent(err) || p.FailedReceives != 0 || p.Ended != EndError {
		t.Fatalf("pass %+v, err %v; want the permanent error at once", p, err)
	}
	// A setup fault (the AWS and Google tables' verdict on a queue or subscription that does
	// not exist) cannot be waited out by a pass either.
	src.recvErr, src.recvFails = failure.SetupFault(failure.Transient, "QueueDoesNotExist", errors.New("gone")), 1
	p, err = Scan(context.Background(), src, nil, func(*Message) error { return nil })
	if !failure.IsSetup(err) || p.FailedReceives != 0 || p.Ended != EndError {
		t.Fatalf("pass %+v, err %v; want the setup fault at once", p, err)
	}
	src.recvErr, src.recvFails = errors.New("unavailable"), 100
	if _, err = Scan(context.Background(), src, nil, func(*Message) error { return nil }); err == nil || !strings.Contains(err.Error(), "receive failed 5 times") {
		t.Fatalf("err %v; want the receive given up after 5 attempts", err)
	}
}

// A receive whose answer was lost after the queue leased its batch hides those messages
// until their hold ends: the pass waits for them instead of ending on the empty receive that
// follows, and says so.
func TestPassWaitsForWhatAFailedReceiveHid(t *testing.T) {
	src := fill(t, 4)
	src.realLeases, src.recvErr, src.loseNext = true, errors.New("use of closed network connection"), 1
	n := 0
	p, err := Scan(context.Background(), src, &ScanOptions{Hold: time.Second}, func(*Message) error { n++; return nil })
	if err != nil || n != 4 || p.FailedReceives != 1 || p.HiddenWaits != 1 || p.Ended != EndEmpty {
		t.Fatalf("scan saw %d, pass %+v, err %v; want all 4 after one wait", n, p, err)
	}
	// Interrupted while it waits: the pass ends at once and says so.
	src = fill(t, 4)
	src.realLeases, src.recvErr, src.loseNext = true, errors.New("use of closed network connection"), 1
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(500*time.Millisecond, cancel)
	p, _ = Scan(ctx, src, &ScanOptions{Hold: time.Hour}, func(*Message) error { return nil })
	if p.Seen != 0 || p.HiddenWaits != 0 || p.Ended != EndInterrupted {
		t.Fatalf("pass %+v; want it interrupted in its wait", p)
	}
}

// countingSink checks, at each send, how far the source it is fed from has been read ahead.
type countingSink struct {
	read, sent *int
	most       int
}

func (s *countingSink) Send(_ context.Context, msgs []*Message) []error {
	s.most = max(s.most, *s.read-*s.sent)
	*s.sent += len(msgs)
	return make([]error, len(msgs))
}

func TestSendAllHoldsOneBatch(t *testing.T) {
	read, sent := 0, 0
	seq := func(yield func(*Message, error) bool) {
		for i := range 95 {
			read++
			if !yield(&Message{ID: strconv.Itoa(i)}, nil) {
				return
			}
		}
		yield(nil, errors.New("line 96: broken"))
	}
	sink := &countingSink{read: &read, sent: &sent}
	n, err := SendAll(context.Background(), sink, seq, 10)
	if n != 95 || err == nil || !strings.Contains(err.Error(), "line 96") {
		t.Fatalf("sent %d, err %v; want 95 and the read error", n, err)
	}
	if sink.most > 10 {
		t.Fatalf("%d messages read ahead of the sends, want at most one batch of 10", sink.most)
	}
}
