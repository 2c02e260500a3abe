package analyzer

import (
	"errors"
	"time"

	"go.uber.org/zap"

	"imgpipe/pkg/breaker"
	"imgpipe/pkg/failure"
	"imgpipe/pkg/queue"
	"imgpipe/pkg/tracing"
)

// process is one message's whole life after its receive, on one goroutine. Its stages, in
// order:
//
//	prepare  parse the event, read each new object's first bytes, identify it (prepare.go);
//	         no worker is held, so a message waiting for one is ready when it gets it, and a
//	         message with nothing for Vision (a removal, a non-image, a stale event) never
//	         takes one
//	analyze  the Vision call, holding a worker (analyze.go)
//	publish  the records, in the finishing stage: the worker is free as soon as Vision has
//	         answered, and the stage is bounded so nothing piles up behind a stuck publish
//	settle   one verdict on the outcome: delete, dead-letter, retry later, defer, release
//	         (settle.go)
//
// The concerns around the stages, outermost first. This is the only place they are ordered:
//
//  1. lease     the message's lease is kept from its receive until it is settled (a.keeper)
//  2. shutdown  a message still without a worker when Run's context ends is released
//     unstarted; work the drain deadline cuts off is released (verdict)
//  3. circuit   a message that needs Vision passes the circuit breaker once it has a worker:
//     while the circuit is not closed (and it is not the half-open circuit's probe) it is
//     deferred unstarted, without calling Vision
//  4. recover   each stage runs under recovered: a panic fails this message only, transiently
//  5. timeout   each stage runs under the work context, which ends at the drain deadline; every
//     S3 read and every Vision call carries its own bound besides
//  6. verdict   the outcome counts for the circuit first, then decides, in this order: done,
//     cut off by shutdown, permanent (poison: dead-letter), a dependency's failure while the
//     circuit is not closed (defer), anything else (retry with a backoff)
//
// Tests on the in-memory drivers: TestVerdict (the verdict's order), TestCoreHeartbeat (lease),
// TestCoreDrain and TestCoreShutdownDuringLongPoll (shutdown), TestCoreBreaker (circuit),
// TestCorePanicRecovered (recover), TestCorePoison, TestCoreBackoff and
// TestCorePartialBatchFailure (verdict).
func (a *Analyzer) process(st *runState, m *queue.Message, probe bool) {
	log := a.log.WithLazy(zap.String("sqs_message_id", m.ID), zap.Int("receive_count", m.ReceiveCount))
	work := st.work
	tr := newMsgTrace(work, m)

	items, err := recovered(a, func() ([]item, error) { return a.prepare(work, tr, log, m.Body) })
	// The work context from here on carries the message's span (trace.go); it ends as work does.
	ctx := tr.begin(nil)
	log = tracing.Logger(ctx, log)
	var out []outgoing
	worked := false
	if err == nil && needsVision(items) {
		got := a.capacity.work(st.intake)
		if !got || st.intake.Err() != nil {
			// Shutdown began while the message waited for a worker (or as one freed).
			a.capacity.leave(got)
			a.unstarted(m, log, false)
			tr.end(nil, actRelease)
			return
		}
		worked = true
		if s := a.breaker.State(); s == breaker.Open || (s == breaker.HalfOpen && !probe) {
			// Received before the circuit opened (or not as its probe): a dependency is known
			// to be failing, so give the message back for after the cooldown.
			a.capacity.leave(true)
			a.unstarted(m, log, true)
			tr.end(nil, actDefer)
			return
		}
		a.metrics.inFlight.Inc()
		defer a.metrics.inFlight.Dec()
		start := time.Now()
		out, err = recovered(a, func() ([]outgoing, error) { return a.analyze(ctx, items) })
		a.metrics.handle.observe(time.Since(start))
	} else if err == nil {
		// Nothing for Vision (removals at most), under recovered all the same.
		out, err = recovered(a, func() ([]outgoing, error) { return a.analyze(ctx, items) })
	}
	// The key holds content that can never be indexed (a non-image overwrote an image): the
	// key's document and thumbnail go first, at the event's sequencer, so that the index shows
	// what the bucket holds; the message is dead-lettered once the removal is published.
	var unfit *unindexable
	var cause error
	if errors.As(err, &unfit) {
		cause = err
		out, err = []outgoing{{rec: removalOf(unfit.rec), log: log, ev: unfit.rec, unfit: unfit.etag}}, nil
	}
	finishing := false
	if err == nil && len(out) > 0 {
		// While the finishing stage is full this waits, holding the worker (if any), which
		// holds back receiving.
		if finishing = a.finishing.enter(work); !finishing {
			err = work.Err()
		}
	}
	a.capacity.leave(worked)
	if finishing {
		defer a.finishing.exit()
		_, err = recovered(a, func() (struct{}, error) { return struct{}{}, a.publish(ctx, out) })
	}
	if err == nil && cause != nil {
		err = cause
	}
	tr.end(err, a.settle(ctx, m, log, err, len(out) > 0, work.Err() != nil))
}

// recovered runs a stage, turning a panic into a transient failure of this message only.
func recovered[T any](a *Analyzer, f func() (T, error)) (v T, err error) {
	defer func() {
		if r := recover(); r != nil {
			a.metrics.panics.Inc()
			err = failure.Transientf("Panic", "panic while processing: %v", r)
		}
	}()
	return f()
}

// unstarted settles a message that never reached its Vision call: released at shutdown, or
// deferred for the circuit's cooldown.
func (a *Analyzer) unstarted(m *queue.Message, log *zap.Logger, deferred bool) {
	a.keeper.Drop(m)
	if deferred {
		a.metrics.deferred.Inc()
		wait := deferral(a.breaker.Cooldown())
		log.Info("circuit not closed; message deferred unstarted", zap.Duration("retry_in", wait))
		a.setVisibility(log, m, wait)
		return
	}
	a.metrics.released.Inc()
	a.setVisibility(log, m, 0)
	log.Info("released message not started before shutdown")
}
