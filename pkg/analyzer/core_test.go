package analyzer

// The analyzer's core on the in-memory drivers (memqueue, memobjects) with a Vision and a
// publisher of the test's own: fast tests of what the stack tests check through the real
// clients. `go test -short -run TestCore ./pkg/analyzer` runs them alone, in seconds.

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"imgpipe/pkg/breaker"
	"imgpipe/pkg/failure"
	"imgpipe/pkg/objects/memobjects"
	"imgpipe/pkg/queue"
	"imgpipe/pkg/queue/memqueue"
	"imgpipe/pkg/record"
	"imgpipe/pkg/retry"
	"imgpipe/pkg/s3event"
	"imgpipe/pkg/samples"
	"imgpipe/pkg/vision"
)

const bucket = "images"

// core is one analyzer on in-memory edges.
type core struct {
	t      *testing.T
	q, dlq *memqueue.Queue
	store  *memobjects.Store
	vision *fakeVision
	pub    *memPublisher
	a      *Analyzer
	cancel context.CancelFunc
	done   chan struct{}
}

// coreOptions are the options of the core tests: short leases and backoffs.
func coreOptions() Options {
	return Options{
		Workers: 4, VisibilityTimeout: 600 * time.Millisecond, DrainTimeout: 5 * time.Second,
		Backoff:       retry.Policy{BaseDelay: time.Second, MaxDelay: time.Second},
		DepthInterval: 50 * time.Millisecond, ReceiveLinger: time.Millisecond,
	}
}

// newCore makes the edges; start runs the analyzer on them.
func newCore(t *testing.T) *core {
	store := memobjects.New()
	c := &core{
		t: t, q: memqueue.New("events", &memqueue.Options{Wait: 50 * time.Millisecond}), dlq: memqueue.New("dlq", nil),
		store: store, vision: &fakeVision{store: store, calls: map[[32]byte]int{}}, pub: &memPublisher{},
	}
	return c
}

func (c *core) start(opts Options, src queue.Source) *core {
	c.t.Helper()
	if src == nil {
		src = c.q
	}
	opts.Logger = zaptest.NewLogger(c.t, zaptest.Level(zap.WarnLevel))
	a, err := New(Deps{Queue: src, DLQ: c.dlq, Objects: c.store, Vision: c.vision, Publisher: c.pub, Thumbnails: c.store}, &opts)
	if err != nil {
		c.t.Fatal(err)
	}
	c.a = a
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel, c.done = cancel, make(chan struct{})
	go func() {
		defer close(c.done)
		if err := a.Run(ctx); err != nil {
			c.t.Errorf("Run: %v", err)
		}
	}()
	c.t.Cleanup(c.stop)
	return c
}

// stop cancels Run's context (SIGTERM) and waits for it to return.
func (c *core) stop() {
	c.cancel()
	<-c.done
}

// image stores a distinct PNG under key and sends its creation event; it returns the bytes.
func (c *core) image(key string, seed int64) []byte {
	c.t.Helper()
	body, err := samples.Image(seed, 80, 60, "png")
	if err != nil {
		c.t.Fatal(err)
	}
	c.object(key, body)
	return body
}

// object stores body under key and sends its creation event.
func (c *core) object(key string, body []byte) {
	c.t.Helper()
	_, etag := c.store.Put(bucket, key, body)
	rec := s3event.NewRecord("ObjectCreated:Put", bucket, key, time.Now())
	rec.ETag, rec.Size = etag, int64(len(body))
	c.event(rec)
}

func (c *core) event(recs ...s3event.Record) {
	c.t.Helper()
	body, err := s3event.MarshalEvent(recs)
	if err != nil {
		c.t.Fatal(err)
	}
	c.send(string(body))
}

func (c *core) send(bodies ...string) {
	c.t.Helper()
	if err := c.q.SendBodies(bodies...); err != nil {
		c.t.Fatal(err)
	}
}

// waitFor waits for cond, failing the test after a generous timeout.
func (c *core) waitFor(what string, cond func() (bool, string)) {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("timed out waiting for %s; last state: %s", what, state)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitEmpty waits until the event queue holds nothing.
func (c *core) waitEmpty() {
	c.t.Helper()
	c.waitFor("the queue to empty", func() (bool, string) {
		m := c.q.Messages()
		return len(m) == 0, fmt.Sprintf("%d messages left", len(m))
	})
}

// published waits until n records were published and returns them by key.
func (c *core) published(n int) map[string][]record.Analysis {
	c.t.Helper()
	c.waitFor(fmt.Sprintf("%d records published", n), func() (bool, string) {
		got := c.pub.count()
		return got >= n, fmt.Sprintf("%d published, %+v", got, snap(c.a))
	})
	return c.pub.byKey()
}

// fakeVision analyses what it is sent: it reads the whole body (or fetches the URL) and, unless
// fail says otherwise, answers with tags. It counts its calls per content.
type fakeVision struct {
	store *memobjects.Store
	mu    sync.Mutex
	calls map[[32]byte]int
	total int
	times []time.Time // when each call began
	// fail, when set, decides each call's outcome first (it may block, until ctx ends).
	fail func(ctx context.Context, body []byte) error
	// result, when set, is the answer instead of the default tags.
	result *vision.Result
}

func (v *fakeVision) AnalyzeStream(ctx context.Context, open func() (io.ReadCloser, int64, error)) (*vision.Result, error) {
	rc, n, err := open()
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		return nil, failure.Transientf("Transport", "send image: %v", err)
	}
	if int64(len(b)) != n {
		return nil, fmt.Errorf("body of %d bytes, announced %d", len(b), n)
	}
	return v.answer(ctx, b)
}

func (v *fakeVision) AnalyzeURL(ctx context.Context, url string) (*vision.Result, error) {
	b, err := v.store.Fetch(url)
	if err != nil {
		return nil, failure.SetupFault(failure.Transient, "InvalidImageUrl", &vision.APIError{StatusCode: 400, InnerCode: "InvalidImageUrl"})
	}
	return v.answer(ctx, b)
}

func (v *fakeVision) answer(ctx context.Context, b []byte) (*vision.Result, error) {
	v.mu.Lock()
	v.calls[sha256.Sum256(b)]++
	v.total++
	v.times = append(v.times, time.Now())
	fail, result := v.fail, v.result
	v.mu.Unlock()
	if fail != nil {
		if err := fail(ctx, b); err != nil {
			return nil, err
		}
	}
	if result != nil {
		r := *result
		return &r, nil
	}
	return &vision.Result{Caption: "an image", Tags: []vision.Tag{{Name: "square", Confidence: 0.9}}, APIVersion: vision.V40}, nil
}

func (v *fakeVision) setFail(f func(ctx context.Context, body []byte) error) {
	v.mu.Lock()
	v.fail = f
	v.mu.Unlock()
}

// analysed is how many times Vision analysed body.
func (v *fakeVision) analysed(body []byte) int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.calls[sha256.Sum256(body)]
}

func (v *fakeVision) started() []time.Time {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]time.Time(nil), v.times...)
}

func (v *fakeVision) count() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.total
}

// memPublisher keeps what is published; fail, when set, decides each publish first.
type memPublisher struct {
	mu   sync.Mutex
	recs []record.Analysis
	fail func(ctx context.Context, rec *record.Analysis) error
}

func (p *memPublisher) Publish(ctx context.Context, rec *record.Analysis) (string, error) {
	p.mu.Lock()
	fail := p.fail
	p.mu.Unlock()
	if fail != nil {
		if err := fail(ctx, rec); err != nil {
			return "", err
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.recs = append(p.recs, *rec)
	return fmt.Sprint(len(p.recs)), nil
}

func (p *memPublisher) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.recs)
}

func (p *memPublisher) byKey() map[string][]record.Analysis {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string][]record.Analysis{}
	for _, r := range p.recs {
		out[r.Key] = append(out[r.Key], r)
	}
	return out
}

// dead returns the dead-lettered messages' bodies with their failure details.
func (c *core) dead() map[string]failure.Details {
	out := map[string]failure.Details{}
	for _, m := range c.dlq.Messages() {
		out[string(m.Body)] = failure.ParseDetails(m.StringAttributes())
	}
	return out
}

// TestCoreProcessesEachOnce: images and a removal, some in one message: every record is
// published once, every image analysed once, every message deleted.
func TestCoreProcessesEachOnce(t *testing.T) {
	c := newCore(t)
	images := map[string][]byte{}
	for i := range 12 {
		key := fmt.Sprintf("upload/img-%02d.png", i)
		images[key] = c.image(key, int64(100+i))
	}
	removal := s3event.NewRecord("ObjectRemoved:Delete", bucket, "upload/gone.png", time.Now())
	body, err := samples.Image(200, 64, 64, "png")
	if err != nil {
		t.Fatal(err)
	}
	_, etag := c.store.Put(bucket, "upload/both.png", body)
	both := s3event.NewRecord("ObjectCreated:Put", bucket, "upload/both.png", time.Now())
	both.ETag = etag
	c.event(removal, both)
	images["upload/both.png"] = body
	c.start(coreOptions(), nil)
	got := c.published(len(images) + 1)
	c.waitEmpty()
	for key, b := range images {
		if n := len(got[key]); n != 1 || got[key][0].Event != record.Created {
			t.Errorf("%s: %d records (%+v), want one creation", key, n, got[key])
		}
		if n := c.vision.analysed(b); n != 1 {
			t.Errorf("%s analysed %d times, want 1", key, n)
		}
	}
	if r := got["upload/gone.png"]; len(r) != 1 || r[0].Event != record.Removed {
		t.Errorf("removal: %+v, want one removal record", r)
	}
	if s := snap(c.a); s.Succeeded != 13 || s.Received != 13 || s.Retried != 0 || s.DeadLettered != 0 {
		t.Errorf("counters %+v", s)
	}
}

// TestCorePoison: malformed bodies, a non-image and an empty object go to the dead-letter
// queue at once, with their failure; no retry; the good image is not held up.
func TestCorePoison(t *testing.T) {
	c := newCore(t)
	garbage := []string{"not json at all", `{"Records":[{"eventSource":"aws:s3"}]}`, `{"Records":"x"}`}
	c.send(garbage...)
	c.object("upload/text.jpg", []byte("plain text, not a JPEG"))
	c.object("upload/empty.png", nil)
	good := c.image("upload/good.png", 300)
	c.start(coreOptions(), nil)
	c.published(1)
	c.waitEmpty()
	dead := c.dead()
	if len(dead) != len(garbage)+2 {
		t.Fatalf("dead-lettered %d messages, want %d: %v", len(dead), len(garbage)+2, dead)
	}
	for body, d := range dead {
		if d.Class != failure.Permanent || d.Attempts != 1 || d.SourceQueue != c.q.Name() || d.Reason == "" || d.Error == "" ||
			d.FirstFailure.IsZero() || d.LastFailure.IsZero() {
			t.Errorf("dead letter %.60q: %+v", body, d)
		}
	}
	for _, g := range garbage {
		if _, ok := dead[g]; !ok {
			t.Errorf("garbage %q not dead-lettered as it came", g)
		}
	}
	if s := snap(c.a); s.Retried != 0 || s.Received != int64(len(garbage)+3) {
		t.Errorf("counters %+v: want one receive per message, no retry", s)
	}
	if n := c.vision.analysed(good); n != 1 || c.vision.count() != 1 {
		t.Errorf("Vision called %d times (the good image %d): the bad ones must cost no call", c.vision.count(), n)
	}
}

// TestCorePartialBatchFailure: of one receive's messages, some fail transiently in Vision: the
// others are published and deleted; the failed ones go back with a backoff and succeed on a
// later receive. A delete that fails transiently is tried again.
func TestCorePartialBatchFailure(t *testing.T) {
	c := newCore(t)
	failing := map[[32]byte]bool{}
	for i := range 10 {
		b := c.image(fmt.Sprintf("upload/p-%02d.png", i), int64(400+i))
		if i%3 == 0 {
			failing[sha256.Sum256(b)] = true
		}
	}
	var mu sync.Mutex
	tries := map[[32]byte]int{}
	c.vision.setFail(func(_ context.Context, b []byte) error {
		mu.Lock()
		defer mu.Unlock()
		k := sha256.Sum256(b)
		tries[k]++
		if failing[k] && tries[k] == 1 {
			return failure.Transientf("InternalServerError", "vision 500")
		}
		return nil
	})
	deleteFailed := false
	c.q.SetFault(func(_ context.Context, op memqueue.Op, m *queue.Message) error {
		mu.Lock()
		defer mu.Unlock()
		if op == memqueue.Delete && !deleteFailed {
			deleteFailed = true
			return failure.Transientf("InternalFailure", "delete refused once")
		}
		return nil
	})
	opts := coreOptions()
	opts.Workers = 10
	opts.Breaker = &breaker.Options{ConsecutiveFailures: 100, FailureRatio: -1}
	c.start(opts, nil)
	got := c.published(10)
	c.waitEmpty()
	for k, recs := range got {
		if len(recs) != 1 {
			t.Errorf("%s published %d times", k, len(recs))
		}
	}
	if s := snap(c.a); s.Retried != 4 || s.Succeeded != 10 || s.Received != 14 || s.Failed["transient"] != 4 {
		t.Errorf("counters %+v: want 4 retried, 10 succeeded, 14 received", s)
	}
}

// spy records the leases a source is asked to set.
type spy struct {
	queue.Source
	mu     sync.Mutex
	extend []time.Duration
}

func (s *spy) Extend(ctx context.Context, msgs []*queue.Message, hold time.Duration) []error {
	s.mu.Lock()
	for range msgs {
		s.extend = append(s.extend, hold)
	}
	s.mu.Unlock()
	return s.Source.Extend(ctx, msgs, hold)
}

func (s *spy) holds() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.extend...)
}

// TestCoreBackoff: a transient failure gives the message back for the backoff, at least a
// second, or the server's retry-after when that is longer; the message then comes back and
// succeeds.
func TestCoreBackoff(t *testing.T) {
	c := newCore(t)
	body := c.image("upload/slow-down.png", 500)
	calls := 0
	c.vision.setFail(func(context.Context, []byte) error {
		calls++
		if calls == 1 {
			return failure.ThrottledAfter("TooManyRequests", 1500*time.Millisecond, errors.New("vision 429"))
		}
		return nil
	})
	s := &spy{Source: c.q}
	opts := coreOptions()
	opts.VisibilityTimeout = 30 * time.Second // no heartbeat in this test's time
	c.start(opts, s)
	c.published(1)
	c.waitEmpty()
	holds := s.holds()
	if len(holds) != 1 || holds[0] < 1500*time.Millisecond {
		t.Fatalf("leases set: %v; want one retry after the server's 1.5 s", holds)
	}
	if n := c.vision.analysed(body); n != 2 {
		t.Errorf("analysed %d times, want 2 (a retry)", n)
	}
}

func TestRetryDelay(t *testing.T) {
	a := &Analyzer{opts: Options{Backoff: retry.Policy{BaseDelay: 5 * time.Second, MaxDelay: 15 * time.Minute}}}
	tests := []struct {
		receives   int
		serverWait time.Duration
		lo, hi     time.Duration
	}{
		{1, 0, time.Second, 5 * time.Second},
		{3, 0, time.Second, 20 * time.Second},
		{30, 0, time.Second, 15 * time.Minute},
		{1, time.Minute, time.Minute, time.Minute},
	}
	for _, tc := range tests {
		for range 50 {
			if d := a.retryDelay(tc.receives, tc.serverWait); d < tc.lo || d > tc.hi {
				t.Fatalf("retryDelay(%d, %v) = %v, want within [%v, %v]", tc.receives, tc.serverWait, d, tc.lo, tc.hi)
			}
		}
	}
}

// TestCoreHeartbeat: Vision takes three visibility timeouts; the leases are kept and every
// message is received once.
func TestCoreHeartbeat(t *testing.T) {
	c := newCore(t)
	for i := range 3 {
		c.image(fmt.Sprintf("upload/hb-%d.png", i), int64(600+i))
	}
	c.vision.setFail(func(ctx context.Context, _ []byte) error {
		select {
		case <-time.After(1800 * time.Millisecond):
		case <-ctx.Done():
		}
		return nil
	})
	c.start(coreOptions(), nil)
	c.published(3)
	c.waitEmpty()
	if s := snap(c.a); s.Received != 3 || s.Heartbeats == 0 {
		t.Errorf("received %d (want 3: no message came back while in work), heartbeats %d", s.Received, s.Heartbeats)
	}
}

// TestCoreBreaker: Vision is down. The circuit opens after three failed messages; while open
// no Vision call is made (messages received ahead are deferred unstarted) and nothing is
// dead-lettered; after the cooldown a probe closes it and every image is published once.
func TestCoreBreaker(t *testing.T) {
	c := newCore(t)
	images := map[string][]byte{}
	for i := range 12 {
		key := fmt.Sprintf("upload/out-%02d.png", i)
		images[key] = c.image(key, int64(700+i))
	}
	var mu sync.Mutex
	down := true
	c.vision.setFail(func(context.Context, []byte) error {
		mu.Lock()
		isDown := down
		mu.Unlock()
		if isDown {
			time.Sleep(30 * time.Millisecond) // an outage answers slowly
			return failure.Transientf("ServiceUnavailable", "vision 503")
		}
		return nil
	})
	type transition struct {
		to string
		at time.Time
	}
	var transitions []transition
	opts := coreOptions()
	opts.Workers = 1
	opts.Breaker = &breaker.Options{ConsecutiveFailures: 3, Cooldown: time.Second, OnStateChange: func(_, to breaker.State) {
		mu.Lock()
		transitions = append(transitions, transition{to.String(), time.Now()})
		mu.Unlock()
	}}
	c.start(opts, nil)
	c.waitFor("the circuit to open", func() (bool, string) {
		return c.a.CircuitState() == breaker.Open && c.a.Ready(context.Background()) != nil, c.a.CircuitState().String()
	})
	// Let it open, half-open on a probe that fails, and open again.
	c.waitFor("a failed probe", func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		return len(transitions) >= 3, fmt.Sprint(transitions)
	})
	mu.Lock()
	down = false
	mu.Unlock()
	got := c.published(len(images))
	c.waitEmpty()
	for key := range images {
		if len(got[key]) != 1 {
			t.Errorf("%s published %d times", key, len(got[key]))
		}
	}
	if len(c.dlq.Messages()) != 0 {
		t.Errorf("dead-lettered %d messages during an outage", len(c.dlq.Messages()))
	}
	s := snap(c.a)
	if s.Deferred == 0 {
		t.Errorf("nothing deferred: %+v", s)
	}
	mu.Lock()
	defer mu.Unlock()
	var names []string
	for _, tr := range transitions {
		names = append(names, tr.to)
	}
	if len(names) < 3 || names[0] != "open" || names[1] != "half-open" || names[len(names)-1] != "closed" {
		t.Errorf("circuit transitions %v: want open, half-open ... closed", names)
	}
	// No call began while the circuit was open, past a moment for calls whose check came
	// just before it opened.
	for i, tr := range transitions {
		if tr.to != "open" || i+1 == len(transitions) {
			continue
		}
		for _, at := range c.vision.started() {
			if at.After(tr.at.Add(100*time.Millisecond)) && at.Before(transitions[i+1].at) {
				t.Errorf("a Vision call began %v after the circuit opened, %v before it %s", at.Sub(tr.at), transitions[i+1].at.Sub(at), transitions[i+1].to)
			}
		}
	}
}

// block makes Vision wait until release (or the call's context ends).
type block struct {
	mu      sync.Mutex
	release chan struct{}
	entered chan struct{}
}

func newBlock() *block {
	return &block{release: make(chan struct{}), entered: make(chan struct{}, 100)}
}

func (b *block) fail(ctx context.Context, _ []byte) error {
	b.entered <- struct{}{}
	select {
	case <-b.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (b *block) open() {
	b.mu.Lock()
	defer b.mu.Unlock()
	select {
	case <-b.release:
	default:
		close(b.release)
	}
}

// TestCoreDrain: SIGTERM with every worker in its Vision call and messages received ahead.
// In-flight work finishes within the drain deadline and is deleted; what waited for a worker
// is released at once; past the deadline, unfinished work is released.
func TestCoreDrain(t *testing.T) {
	for _, tc := range []struct {
		name  string
		drain time.Duration
		cut   bool
	}{{"finish in-flight work", 5 * time.Second, false}, {"release at the deadline", 200 * time.Millisecond, true}} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCore(t)
			for i := range 8 {
				c.image(fmt.Sprintf("upload/d-%d.png", i), int64(800+i))
			}
			b := newBlock()
			c.vision.setFail(b.fail)
			opts := coreOptions()
			opts.Workers, opts.ReceiveAhead, opts.DrainTimeout = 2, 3, tc.drain
			opts.VisibilityTimeout = 30 * time.Second // only a release brings a message back soon
			c.start(opts, nil)
			c.waitFor("2 in work and 3 waiting", func() (bool, string) {
				s := snap(c.a)
				return s.InFlight == 2 && s.Received == 5, fmt.Sprintf("%+v", s)
			})
			c.cancel() // SIGTERM
			if !tc.cut {
				time.Sleep(100 * time.Millisecond)
				b.open()
			}
			<-c.done
			s := snap(c.a)
			left := c.q.Messages()
			leased := 0
			for _, m := range left {
				if m.Leased {
					leased++
				}
			}
			switch {
			case leased != 0:
				t.Errorf("%d messages still leased after Run returned: not released", leased)
			case !tc.cut && (s.Succeeded != 2 || s.Released != 3 || len(left) != 6):
				t.Errorf("%+v, %d left: want the 2 in work finished, the 3 waiting released", s, len(left))
			case tc.cut && (s.Succeeded != 0 || s.Released != 5 || len(left) != 8):
				t.Errorf("%+v, %d left: want all 5 released", s, len(left))
			}
		})
	}
}

// TestCoreShutdownDuringLongPoll: a message that arrives while the analyzer, already told to
// stop, still waits in a long poll is released at once. Cancelling the poll would leave the
// message to a poll whose caller hung up, leased to nobody for its whole lease.
func TestCoreShutdownDuringLongPoll(t *testing.T) {
	c := newCore(t)
	c.q = memqueue.New("events", &memqueue.Options{Wait: 2 * time.Second})
	opts := coreOptions()
	opts.VisibilityTimeout = 30 * time.Second
	c.start(opts, nil)
	c.waitFor("the first long poll", func() (bool, string) { return c.q.Calls(memqueue.Receive) > 0, "" })
	time.Sleep(50 * time.Millisecond)
	c.cancel()
	time.Sleep(50 * time.Millisecond)
	c.image("upload/late.png", 900)
	<-c.done
	m := c.q.Messages()
	if len(m) != 1 || m[0].Leased {
		t.Fatalf("after the analyzer stopped: %+v; want the message receivable at once", m)
	}
	if s := snap(c.a); s.Released != 1 || s.Succeeded != 0 {
		t.Fatalf("released %d, succeeded %d; want the one message released unstarted", s.Released, s.Succeeded)
	}
}

// TestCoreLostReceive: a receive whose answer is lost (its messages leased to nobody) is
// counted, retried, and costs a delay, never a message.
func TestCoreLostReceive(t *testing.T) {
	c := newCore(t)
	for i := range 3 {
		c.image(fmt.Sprintf("upload/lost-%d.png", i), int64(1000+i))
	}
	lost := false
	var mu sync.Mutex
	c.q.SetFault(func(_ context.Context, op memqueue.Op, _ *queue.Message) error {
		mu.Lock()
		defer mu.Unlock()
		if op == memqueue.Receive && !lost {
			lost = true
			return memqueue.ErrLostAnswer
		}
		return nil
	})
	c.start(coreOptions(), nil)
	c.published(3)
	c.waitEmpty()
	if s := snap(c.a); s.ReceiveErrors != 1 || s.Received != 3 {
		t.Errorf("%+v: want 1 receive error, 3 received", s)
	}
}

// TestCoreReceivesForIdleWorkers: with one worker busy, the analyzer receives nothing more,
// even when the messages received with it (two removals, which need no worker) are done and
// room for more has freed: a worker covers only the Vision call, messages with nothing for
// Vision never wait for one, and receiving waits for an idle worker.
func TestCoreReceivesForIdleWorkers(t *testing.T) {
	c := newCore(t)
	c.image("upload/idle-0.png", 1100)
	c.event(s3event.NewRecord("ObjectRemoved:Delete", bucket, "upload/removed-1.png", time.Now()))
	c.event(s3event.NewRecord("ObjectRemoved:Delete", bucket, "upload/removed-2.png", time.Now()))
	b := newBlock()
	c.vision.setFail(b.fail)
	opts := coreOptions()
	opts.Workers, opts.ReceiveAhead, opts.VisibilityTimeout = 1, 2, 30*time.Second
	c.start(opts, nil)
	<-b.entered
	c.published(2) // the removals, past the worker busy on the image
	for i := range 3 {
		c.image(fmt.Sprintf("upload/idle-%d.png", i+1), int64(1101+i))
	}
	time.Sleep(300 * time.Millisecond)
	if s := snap(c.a); s.Received != 3 {
		t.Fatalf("received %d messages while the only worker was busy: want the first 3 only", s.Received)
	}
	b.open()
	c.published(6)
	c.waitEmpty()
}

// TestCorePanicRecovered: a panic in Vision fails that message only, transiently; it is
// retried and succeeds.
func TestCorePanicRecovered(t *testing.T) {
	c := newCore(t)
	c.image("upload/panic.png", 1200)
	c.image("upload/calm.png", 1201)
	var once sync.Once
	c.vision.setFail(func(_ context.Context, b []byte) error {
		once.Do(func() { panic("boom") })
		return nil
	})
	opts := coreOptions()
	opts.Workers = 1
	c.start(opts, nil)
	c.published(2)
	c.waitEmpty()
	if s := snap(c.a); s.Panics != 1 || s.Retried != 1 || s.Succeeded != 2 {
		t.Errorf("%+v: want 1 panic, 1 retry, 2 succeeded", s)
	}
}

// TestCoreDeadLetterAnsweredAfterDeleteGrace: a dead-letter send begun before the drain
// deadline and answered only after the batched deletes were cut off (deleteGrace after the
// deadline) still deletes its message from the source, which would otherwise come back and be
// dead-lettered a second time.
func TestCoreDeadLetterAnsweredAfterDeleteGrace(t *testing.T) {
	c := newCore(t)
	sending := make(chan struct{})
	var once sync.Once
	const drain = 200 * time.Millisecond
	c.dlq.SetFault(func(ctx context.Context, op memqueue.Op, _ *queue.Message) error {
		if op != memqueue.Send {
			return nil
		}
		once.Do(func() { close(sending) })
		// Answered well after the deadline and the delete grace, within the send's own bound.
		select {
		case <-time.After(drain + 800*time.Millisecond):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	c.object("upload/text.jpg", []byte("plain text, not a JPEG"))
	opts := coreOptions()
	opts.DrainTimeout, opts.deleteGrace = drain, time.Millisecond
	opts.VisibilityTimeout = 30 * time.Second // only a delete or a release ends the lease soon
	c.start(opts, nil)
	<-sending
	c.cancel() // SIGTERM while the send is under way
	<-c.done
	if n := len(c.dlq.Messages()); n != 1 {
		t.Fatalf("%d dead letters, want 1", n)
	}
	if left := c.q.Messages(); len(left) != 0 {
		t.Errorf("the dead-lettered message is still on the source queue (%+v): it would be dead-lettered again", left)
	}
}

// TestCoreReadyWhileReceivesFail: with receives denied (a policy without sqs:ReceiveMessage)
// and the depth calls working, /readyz keeps failing on the receive, through many depth polls;
// once receives work again it passes.
func TestCoreReadyWhileReceivesFail(t *testing.T) {
	c := newCore(t)
	var denied atomic.Bool
	denied.Store(true)
	c.q.SetFault(func(ctx context.Context, op memqueue.Op, m *queue.Message) error {
		if op == memqueue.Receive && denied.Load() {
			return failure.SetupFault(failure.Transient, "AccessDenied", errors.New("not authorized to perform sqs:ReceiveMessage"))
		}
		return nil
	})
	c.start(coreOptions(), nil)
	c.waitFor("receive failures", func() (bool, string) {
		return snap(c.a).ReceiveErrors >= 3, fmt.Sprintf("%+v", snap(c.a))
	})
	// Depth polls run every 50 ms meanwhile; each must leave the receive's error standing.
	for deadline := time.Now().Add(500 * time.Millisecond); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if err := c.a.Ready(context.Background()); err == nil || !strings.Contains(err.Error(), "receive") {
			t.Fatalf("Ready = %v while receives fail, want the receive's error", err)
		}
	}
	denied.Store(false)
	c.waitFor("ready once receives work", func() (bool, string) {
		err := c.a.Ready(context.Background())
		return err == nil, fmt.Sprint(err)
	})
}
