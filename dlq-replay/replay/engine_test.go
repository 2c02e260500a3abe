package replay

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"imgpipe/pkg/failure"
)

// memQueue is an in-memory Source and Sink for the engine's logic; the real edges run the
// shared suite (replaytest) against the stand-ins.
type memQueue struct {
	mu       sync.Mutex
	msgs     []*Message // in order
	leased   map[string]bool
	handles  map[string]string // message ID -> its current lease's handle
	gen      int
	expireAt int                   // when > 0: the receive with this number first lets every lease run out
	sendFail func(m *Message) bool // fail these sends
	delFail  func(m *Message) bool // fail these deletes
	onSend   func()
	sends    int // Send calls
}

func (q *memQueue) MaxAttributes() int { return 10 }

func (q *memQueue) Receive(_ context.Context, n int, _ time.Duration) ([]*Message, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.leased == nil {
		q.leased, q.handles = map[string]bool{}, map[string]string{}
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
		if !q.leased[m.ID] {
			q.leased[m.ID] = true
			c := *m
			c.Handle = m.ID + "#" + strconv.Itoa(q.gen)
			q.handles[m.ID] = c.Handle
			out = append(out, &c)
		}
	}
	return out, nil
}

func (q *memQueue) Release(_ context.Context, msgs []*Message) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, m := range msgs {
		if q.handles[m.ID] != m.Handle {
			return errors.New("release: stale receipt handle " + m.Handle)
		}
		delete(q.leased, m.ID)
	}
	return nil
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
		q.msgs = append(q.msgs, msg(t, "upload/"+strconv.Itoa(100+i)+".jpg", "VisionUnavailable", failure.Transient, 0, time.Minute))
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

func TestRunCrashHookLeavesEverything(t *testing.T) {
	src, dst := fill(t, 3), &memQueue{}
	boom := errors.New("boom")
	_, err := Run(context.Background(), src, dst, &Options{AfterSend: func([]*Message) error { return boom }})
	if !errors.Is(err, boom) {
		t.Fatalf("err %v", err)
	}
	if len(src.ids()) != 3 || len(dst.ids()) != 3 || src.unleased() != 0 {
		t.Fatalf("after a crash: DLQ %v (unleased %d), destination %v", src.ids(), src.unleased(), dst.ids())
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
	if err := Scan(context.Background(), src, &ScanOptions{Max: 11}, func(*Message) error { seen++; return nil }); err != nil || seen != 11 {
		t.Fatalf("scan saw %d: %v", seen, err)
	}
	if src.unleased() != 12 {
		t.Fatal("scan left messages leased")
	}
	n, err := Drain(context.Background(), src, true, func([]*Message) error { return nil })
	if err != nil || n != 0 || len(src.ids()) != 12 || src.unleased() != 12 {
		t.Fatalf("drain keep: deleted %d, %v", n, err)
	}
	stop := errors.New("disk full")
	n, err = Drain(context.Background(), src, false, func([]*Message) error { return stop })
	if !errors.Is(err, stop) || n != 0 || len(src.ids()) != 12 {
		t.Fatalf("a failed write must delete nothing: deleted %d, %v", n, err)
	}
	n, err = Drain(context.Background(), src, false, func([]*Message) error { return nil })
	if err != nil || n != 12 || len(src.ids()) != 0 {
		t.Fatalf("drain: deleted %d, %v", n, err)
	}
}
