package analyzer

import (
	"context"
	"errors"
	"maps"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"imgpipe/pkg/breaker"
	"imgpipe/pkg/failure"
	"imgpipe/pkg/queue"
	"imgpipe/pkg/tracing"
	"imgpipe/pkg/vision"
)

// The settle stage: what becomes of a message once its work ended.

// action is what is done with a message once its work ended.
type action int

const (
	actDelete     action = iota // done: deleted (in a batch)
	actRelease                  // cut off by shutdown: given back at once
	actDeadLetter               // permanent: sent to the dead-letter queue, then deleted
	actDefer                    // a dependency is down: given back for after the circuit's cooldown
	actRetry                    // transient: given back after a backoff by receive count
)

func (x action) String() string {
	return [...]string{"delete", "release", "dead-letter", "defer", "retry"}[x]
}

// verdict decides what happens to a message from the outcome of its work: its error, whether
// the drain deadline cut the work off, and whether the circuit is closed now. The order of the
// cases is the order of the concerns (see process).
func verdict(err error, cut, circuitClosed bool) action {
	var dep *dependencyFault
	switch {
	case err == nil:
		return actDelete
	case cut:
		return actRelease
	case failure.IsPermanent(err):
		return actDeadLetter
	case errors.As(err, &dep) && !circuitClosed:
		return actDefer
	}
	return actRetry
}

// countForCircuit feeds the circuit breaker with the outcome of a message's work. A failure of
// a dependency counts against the circuit; everything the message needed answering (a
// published record, or Vision's verdict on a bad image) counts for it; work cut off by
// shutdown says nothing of the dependencies.
func (a *Analyzer) countForCircuit(err error, published, cut bool) {
	var dep *dependencyFault
	switch {
	case cut:
	case errors.As(err, &dep):
		a.lastFault.Store(dep)
		a.breaker.Failure()
	case err == nil && published, failure.IsPermanent(err) && visionAnswered(err):
		a.breaker.Success()
	}
}

// visionAnswered reports whether err carries an answer of the Vision service.
func visionAnswered(err error) bool {
	var api *vision.APIError
	return errors.As(err, &api)
}

// settle ends a message's life as its verdict says, and returns the verdict. published
// reports whether it had records published; cut whether the drain deadline cut its work off.
// ctx carries the message's span (its cancellation is not heeded: settling must finish).
func (a *Analyzer) settle(ctx context.Context, m *queue.Message, log *zap.Logger, err error, published, cut bool) action {
	a.keeper.Drop(m)
	a.countForCircuit(err, published, cut)
	act := verdict(err, cut, a.breaker.State() == breaker.Closed)
	if err != nil && act != actRelease {
		a.metrics.failure(err)
	}
	switch act {
	case actDelete:
		a.metrics.succeeded.Inc()
		a.deleter.Delete(m)
	case actRelease:
		a.metrics.released.Inc()
		a.setVisibility(log, m, 0)
		log.Info("released unfinished message", zap.Error(err))
	case actDeadLetter:
		a.deadLetter(ctx, log, m, err)
	case actDefer:
		var dep *dependencyFault
		errors.As(err, &dep)
		a.metrics.deferred.Inc()
		wait := deferral(a.breaker.Cooldown())
		log.Info("dependency unavailable; message deferred", zap.String("dependency", dep.dep), zap.Error(err), zap.Duration("retry_in", wait))
		a.setVisibility(log, m, wait)
	case actRetry:
		a.metrics.retried.Inc()
		wait := a.retryDelay(m.ReceiveCount, failure.RetryAfterOf(err))
		log.Warn("transient failure; message retried later", zap.Error(err),
			zap.String("class", failure.ClassOf(err).String()), zap.String("reason", failure.ReasonOf(err)),
			zap.Bool("setup", failure.IsSetup(err)), zap.Duration("retry_in", wait))
		a.setVisibility(log, m, wait)
		trace.SpanFromContext(ctx).AddEvent("retry", trace.WithAttributes(attribute.Int64("imgpipe.retry_in_ms", wait.Milliseconds())))
	}
	return act
}

// retryDelay is the visibility of a transiently failed message: the backoff by receive count
// (at least minRetryDelay, so a failing message cannot spin), or the server's wait if longer.
// The queue caps it at its longest lease.
func (a *Analyzer) retryDelay(receives int, serverWait time.Duration) time.Duration {
	return max(a.opts.Backoff.Delay(receives, 0, nil), serverWait, minRetryDelay)
}

// setVisibility gives m back to the queue after d (0: at once). A failure is logged: the
// message comes back when its lease ends anyway.
func (a *Analyzer) setVisibility(log *zap.Logger, m *queue.Message, d time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), releaseCallTimeout)
	defer cancel()
	msgs := []*queue.Message{m}
	var errs []error
	if d <= 0 {
		errs = a.deps.Queue.Release(ctx, msgs)
	} else {
		errs = a.deps.Queue.Extend(ctx, msgs, d)
	}
	if errs[0] != nil {
		log.Warn("change visibility failed", zap.Error(errs[0]))
	}
}

// releaseUnstarted gives messages received after shutdown began straight back to the queue.
func (a *Analyzer) releaseUnstarted(msgs []*queue.Message) {
	if len(msgs) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), releaseCallTimeout)
	defer cancel()
	failed := 0
	var last error
	for _, err := range a.deps.Queue.Release(ctx, msgs) {
		if err != nil {
			failed++
			last = err
		}
	}
	a.metrics.released.Add(float64(len(msgs) - failed))
	if failed > 0 {
		// Those come back when their leases end anyway.
		a.log.Warn("release of messages received during shutdown failed", zap.Error(last), zap.Int("failed", failed))
		return
	}
	a.log.Info("released messages received during shutdown", zap.Int("count", len(msgs)))
}

// deadLetter sends the message to the DLQ with its failure and, once that is confirmed,
// deletes it from the source. If the send fails the message stays on the source queue and is
// retried like a transient failure.
//
// The delete is its own call, not one of the deleter's batches: those are cut off deleteGrace
// after the drain deadline, and a send begun just before the deadline may be answered only
// after that (deadLetterSendTimeout), which would leave the message on the source to be
// dead-lettered a second time. Dead letters are rare; the call costs one request each.
func (a *Analyzer) deadLetter(ctx context.Context, log *zap.Logger, m *queue.Message, cause error) {
	first := m.FirstReceivedAt
	if prev := failure.ParseDetails(m.StringAttributes()); !prev.FirstFailure.IsZero() {
		first = prev.FirstFailure
	}
	d := failure.DetailsOf(cause, m.ReceiveCount, a.deps.Queue.Name(), first, a.now())
	attrs := maps.Clone(m.Attributes)
	if attrs == nil {
		attrs = map[string]queue.Attr{}
	}
	for k, v := range d.Attributes() {
		attrs[k] = queue.StringAttr(v)
	}
	// The send is the span sqs.dead_letter; its context goes with the message, so that a
	// replay continues the image's trace.
	ctx, span := tracing.Tracer(tracerName).Start(context.WithoutCancel(ctx), "sqs.dead_letter", trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(attribute.String("imgpipe.reason", d.Reason)))
	if tracing.Enabled() {
		carrier := map[string]string{}
		tracing.Inject(ctx, carrier)
		for k, v := range carrier {
			attrs[k] = queue.StringAttr(v)
		}
	}
	if dropped := queue.Trim(attrs, queue.MaxAttributes); len(dropped) > 0 {
		log.Info("attributes left out of the dead letter to fit the queue's limit", zap.Strings("attributes", dropped))
	}
	ctx, cancel := context.WithTimeout(ctx, deadLetterSendTimeout)
	defer cancel()
	err := a.deps.DLQ.Send(ctx, []*queue.Message{{ID: m.ID, Body: m.Body, Attributes: attrs}})[0]
	tracing.End(span, err)
	if err != nil {
		log.Error("dead-letter send failed; message stays on the queue", zap.Error(err), zap.NamedError("cause", cause))
		a.setVisibility(log, m, a.retryDelay(m.ReceiveCount, 0))
		return
	}
	a.metrics.deadLettered.Inc()
	log.Warn("permanent failure; sent to the dead-letter queue", zap.Error(cause),
		zap.String("reason", d.Reason), zap.String("class", d.Class.String()))
	dctx, dcancel := context.WithTimeout(context.Background(), releaseCallTimeout)
	defer dcancel()
	if err := a.deps.Queue.Delete(dctx, []*queue.Message{m})[0]; err != nil {
		log.Error("delete of a dead-lettered message failed; it will be dead-lettered again", zap.Error(err))
	}
}
