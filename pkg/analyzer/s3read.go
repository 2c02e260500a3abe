package analyzer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"imgpipe/pkg/failure"
	"imgpipe/pkg/failure/awserr"
)

// ReasonS3Stalled is the reason of an S3 read that made no progress for Options.S3Timeout.
const ReasonS3Stalled = "S3Stalled"

// errS3Stalled is the cause given to the context of an S3 read that made no progress in time.
var errS3Stalled = errors.New("no answer from S3 within the S3 timeout")

// dependencyFault marks a failure of one of the analyzer's dependencies (S3, Vision,
// Pub/Sub): unavailable, timed out, throttled beyond retries, or a setup fault. It is not the
// message's fault: a run of them opens the circuit, which stops intake.
type dependencyFault struct {
	dep string // "s3", "vision" or "pubsub"
	err error
}

func (e *dependencyFault) Error() string { return e.err.Error() }
func (e *dependencyFault) Unwrap() error { return e.err }

// s3Fault classifies an S3 error with the AWS table and marks it as a dependency fault unless
// it is the object's own (permanent).
func s3Fault(err error) error {
	err = awserr.Classify(err)
	if err == nil || failure.IsPermanent(err) || errors.Is(err, context.Canceled) {
		return err
	}
	return &dependencyFault{dep: "s3", err: err}
}

// stalled turns the error of a read whose context was cut by the S3 timeout into a transient
// S3Stalled dependency fault; other errors are returned as they are.
func stalled(ctx context.Context, timeout time.Duration, err error) error {
	if err == nil || !errors.Is(context.Cause(ctx), errS3Stalled) {
		return err
	}
	return &dependencyFault{dep: "s3", err: failure.New(failure.Transient, ReasonS3Stalled,
		fmt.Errorf("no byte from S3 for %s: %w", timeout, err))}
}

// s3Health is what /readyz knows of S3: the failures of the last reads in a row.
type s3Health struct {
	mu    sync.Mutex
	fails int
	last  error
}

// note records the outcome of one S3 read. Only dependency faults count as failures: any
// other outcome (a missing or changed object included) is an answer from S3.
func (h *s3Health) note(err error) {
	var dep *dependencyFault
	failed := errors.As(err, &dep) && dep.dep == "s3"
	h.mu.Lock()
	defer h.mu.Unlock()
	if failed {
		h.fails++
		h.last = err
		return
	}
	h.fails, h.last = 0, nil
}

// err is the last failure when at least two reads in a row failed, else nil.
func (h *s3Health) err() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.fails < 2 {
		return nil
	}
	return fmt.Errorf("%d S3 reads in a row failed, the last: %w", h.fails, h.last)
}

// watchdog bounds the waits of one streamed GET: for its headers, then for each Read of its
// body. A wait marks its start and end with an atomic store, and a timer looks a few times per
// timeout: a wait that has lasted the timeout cancels the GET's context with errS3Stalled,
// which ends it, within a quarter of the timeout more. A Read costs no timer operation.
type watchdog struct {
	ctx     context.Context
	cancel  context.CancelCauseFunc
	timeout time.Duration
	since   atomic.Int64 // when the wait under way began (UnixNano); 0 when none is
	timer   *time.Timer
	stopped atomic.Bool
}

// newWatchdog starts a watchdog whose first wait (for the headers) begins now.
func newWatchdog(ctx context.Context, timeout time.Duration) *watchdog {
	w := &watchdog{timeout: timeout}
	w.ctx, w.cancel = context.WithCancelCause(ctx)
	w.begin()
	w.timer = time.AfterFunc(w.period(), w.check)
	return w
}

func (w *watchdog) period() time.Duration { return max(w.timeout/4, time.Millisecond) }

func (w *watchdog) check() {
	if w.stopped.Load() {
		return
	}
	if s := w.since.Load(); s != 0 && time.Since(time.Unix(0, s)) >= w.timeout {
		w.cancel(errS3Stalled)
		return
	}
	w.timer.Reset(w.period())
}

func (w *watchdog) begin() { w.since.Store(time.Now().UnixNano()) }
func (w *watchdog) end()   { w.since.Store(0) }

// stop ends the watchdog and releases the GET's context.
func (w *watchdog) stop() {
	w.stopped.Store(true)
	w.timer.Stop()
	w.cancel(nil)
}

// guardedBody is an S3 object body whose reads are bounded by its watchdog. Its first failure
// is kept for the caller, since the Vision client, reading the body to send it, reports only
// that its request failed.
type guardedBody struct {
	body   io.ReadCloser
	dog    *watchdog
	failed *atomic.Pointer[error] // shared by every attempt of one Vision call
	health *s3Health
	closed atomic.Bool
}

func (g *guardedBody) Read(p []byte) (int, error) {
	g.dog.begin()
	n, err := g.body.Read(p)
	g.dog.end()
	if err != nil && err != io.EOF && !g.closed.Load() {
		err = stalled(g.dog.ctx, g.dog.timeout, s3Fault(fmt.Errorf("read object: %w", err)))
		g.failed.CompareAndSwap(nil, &err)
		g.health.note(err)
	}
	return n, err
}

func (g *guardedBody) Close() error {
	g.closed.Store(true)
	err := g.body.Close()
	g.dog.stop()
	return err
}
