package analyzer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"imgpipe/pkg/failure"
	"imgpipe/pkg/objects"
	"imgpipe/pkg/s3event"
)

// The reads of the objects events are about (Deps.Objects, S3 as deployed), each bounded by
// Options.S3Timeout, and what /readyz knows of them.

// ReasonS3Stalled is the reason of an S3 read that made no progress for Options.S3Timeout.
const ReasonS3Stalled = "S3Stalled"

// headBytes is how much of an object is read to identify it before Vision is called: enough
// for the dimensions of every supported format and for EXIF in almost every JPEG.
const headBytes = 128 << 10

// errS3Stalled is the cause given to the context of an S3 read that made no progress in time.
var errS3Stalled = errors.New("no answer from S3 within the S3 timeout")

// errObjectGone says the object changed or disappeared between the head read and the rest.
var errObjectGone = errors.New("object changed or deleted since it was first read")

// The analyzer's dependencies, as they are named in dependency faults, logs and /readyz.
const (
	depS3     = "s3"
	depVision = "vision"
	depPubSub = "pubsub"
)

// dependencyFault marks a failure of one of the analyzer's dependencies (S3, Vision,
// Pub/Sub): unavailable, timed out, throttled beyond retries, or a setup fault. It is not the
// message's fault: a run of them opens the circuit, which stops intake.
type dependencyFault struct {
	dep string // depS3, depVision or depPubSub
	err error
}

func (e *dependencyFault) Error() string { return e.err.Error() }
func (e *dependencyFault) Unwrap() error { return e.err }

// s3Fault marks an object store's error as an S3 dependency fault unless it is the object's
// own (permanent) or a cancellation. The store classified it already.
func s3Fault(err error) error {
	if err == nil || failure.IsPermanent(err) || errors.Is(err, context.Canceled) {
		return err
	}
	return &dependencyFault{dep: depS3, err: err}
}

// stalled turns the error of a read whose context was cut by the S3 timeout into a transient
// S3Stalled dependency fault; other errors are returned as they are.
func stalled(ctx context.Context, timeout time.Duration, err error) error {
	if err == nil || !errors.Is(context.Cause(ctx), errS3Stalled) {
		return err
	}
	return &dependencyFault{dep: depS3, err: failure.New(failure.Transient, ReasonS3Stalled,
		fmt.Errorf("no byte from S3 for %s: %w", timeout, err))}
}

// ref names the exact object an event is about: its version when the bucket is versioned.
func ref(rec *s3event.Record) objects.Ref {
	return objects.Ref{Bucket: rec.Bucket, Key: rec.Key, Version: rec.VersionID}
}

// readHead reads the first headBytes of the object with one request, which also tells the
// object's size and ETag. The request and its body are bounded by S3Timeout. A missing or
// empty object is an answer (objects.ErrNotFound, objects.ErrEmpty), not a failure.
func (a *Analyzer) readHead(ctx context.Context, rec *s3event.Record) (*objects.Head, error) {
	ctx, cancel := context.WithTimeoutCause(ctx, a.opts.S3Timeout, errS3Stalled)
	defer cancel()
	h, err := a.deps.Objects.ReadHead(ctx, ref(rec), headBytes)
	if err != nil && !errors.Is(err, objects.ErrNotFound) && !errors.Is(err, objects.ErrEmpty) {
		err = stalled(ctx, a.opts.S3Timeout, s3Fault(err))
	}
	a.s3.note(err)
	return h, err
}

// open gives one Vision attempt the whole object: the bytes already read, then the rest
// streamed from the store pinned to the same content. The wait for the rest's headers and
// every read of its body are bounded by S3Timeout (watchdog, guardedBody); its first failure
// is kept in failed.
func (a *Analyzer) open(ctx context.Context, rec *s3event.Record, h *objects.Head, failed *atomic.Pointer[error]) (io.ReadCloser, int64, error) {
	if int64(len(h.Bytes)) >= h.Size {
		return io.NopCloser(bytes.NewReader(h.Bytes)), h.Size, nil
	}
	dog := newWatchdog(ctx, a.opts.S3Timeout)
	body, err := a.getPinned(dog.ctx, rec, h, int64(len(h.Bytes)), -1)
	dog.end()
	if err != nil {
		dog.stop()
		if !errors.Is(err, errObjectGone) {
			failed.CompareAndSwap(nil, &err)
		}
		return nil, 0, err
	}
	rest := &guardedBody{body: body, dog: dog, failed: failed, health: &a.s3}
	return struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(h.Bytes), rest), rest}, h.Size, nil
}

// verifyUnchanged checks, after Vision fetched a presigned URL of an unversioned object, that
// the object still has the content the event and the head read saw; errObjectGone when not.
func (a *Analyzer) verifyUnchanged(ctx context.Context, rec *s3event.Record, h *objects.Head) error {
	ctx, cancel := context.WithTimeoutCause(ctx, a.opts.S3Timeout, errS3Stalled)
	defer cancel()
	body, err := a.getPinned(ctx, rec, h, 0, 1)
	if err == nil {
		body.Close()
	}
	return err
}

// getPinned reads bytes of the object pinned to the content first read (its ETag). An object
// changed or deleted since is errObjectGone; other failures are S3 dependency faults.
func (a *Analyzer) getPinned(ctx context.Context, rec *s3event.Record, h *objects.Head, offset, length int64) (io.ReadCloser, error) {
	body, err := a.deps.Objects.Open(ctx, ref(rec), h.ETag, offset, length)
	switch {
	case errors.Is(err, objects.ErrNotFound), errors.Is(err, objects.ErrChanged):
		a.s3.note(nil)
		return nil, errObjectGone
	case err != nil:
		err = stalled(ctx, a.opts.S3Timeout, s3Fault(err))
		a.s3.note(err)
		return nil, err
	}
	a.s3.note(nil)
	return body, nil
}

// presign returns a presigned GET of the event's object (of its version, when the event
// names one). It cannot pin the content as the streamed reads do (see objects.Store); the
// analysis is checked with verifyUnchanged instead.
func (a *Analyzer) presign(ctx context.Context, rec *s3event.Record) (string, error) {
	url, err := a.deps.Objects.PresignGet(ctx, ref(rec), a.opts.PresignTTL)
	if err != nil {
		return "", s3Fault(err)
	}
	return url, nil
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
	failed := errors.As(err, &dep) && dep.dep == depS3
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

// watchdog bounds the waits of one streamed read: for its headers, then for each Read of its
// body. A wait marks its start and end with an atomic store, and a timer looks a few times per
// timeout: a wait that has lasted the timeout cancels the read's context with errS3Stalled,
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

// stop ends the watchdog and releases the read's context.
func (w *watchdog) stop() {
	w.stopped.Store(true)
	w.timer.Stop()
	w.cancel(nil)
}

// guardedBody is an object body whose reads are bounded by its watchdog. Its first failure is
// kept for the caller, since the Vision client, reading the body to send it, reports only
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
