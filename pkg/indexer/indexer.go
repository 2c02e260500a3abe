// Package indexer pulls analysis records from a subscription and applies them to the index,
// acknowledging each message only after its write is committed. It is portable: it takes its
// subscription as a queue.Source (pubsubqueue's Subscription as deployed: unary Pull,
// ModifyAckDeadline, Acknowledge), its dead-letter topic as a queue.Sink and its index as a
// Store (indexstore.Store), and imports no cloud SDK itself.
//
// A few receivers (Options.Receivers) each lease a batch at a time, for Options.AckExtension,
// while fewer than Options.MaxOutstandingMessages (and Options.MaxOutstandingBytes) are held;
// the leases of held messages are extended by one queue.Keeper, and acknowledgements go out
// in batches through one queue.Deleter. A nack releases the message at once (Source.Release).
//
// Records are grouped into batched transactions (indexstore.Batcher) by default; each message is
// acknowledged once its own batch has committed, and a failed write nacks only its message.
//
// A message that can never be applied (undecodable, an unknown schema version, a record the
// index rejects for good) is copied to the dead-letter sink with the reason as attributes
// (failure.Details, attempts from the message's ReceiveCount) and acknowledged, so it does
// not burn delivery attempts. Without a sink, or if the copy cannot be sent, the message is
// nacked and the subscription's dead-letter policy is the backstop.
//
// A write that fails transiently (Firestore unavailable, a refused transaction) is retried
// with backoff while the message is held, its lease extended by the Keeper, for up to
// Options.RetryFor; only then is the message nacked, and the subscription's retry policy
// spaces the redeliveries. A record whose writes Firestore refused (indexstore.ReasonRejected) on
// every attempt of that window is dead-lettered: a refused transaction mends in a new one, a
// record Firestore can never store does not.
//
// A held message's lease is extended by Options.AckExtension at a time (10 s by default), a
// third of it before it ends, so the messages of an indexer that dies come back to the others
// within about that long.
package indexer

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"imgpipe/pkg/failure"
	"imgpipe/pkg/indexstore"
	"imgpipe/pkg/queue"
	"imgpipe/pkg/record"
	"imgpipe/pkg/retry"
	"imgpipe/pkg/tracing"
)

// Store is what the indexer needs of the index (indexstore.Store as deployed).
type Store interface {
	// Apply writes one record in a transaction of its own.
	Apply(ctx context.Context, rec *record.Analysis) (indexstore.Outcome, error)
	// Ping reads the index once; the indexer pings while writes fail, to retry them as soon
	// as it answers again.
	Ping(ctx context.Context) error
}

// Batching is implemented by a Store that groups concurrent writes into shared transactions
// (indexstore.Store). With a Store that lacks it, BatchSize is ignored: each record is
// applied alone.
type Batching interface {
	NewBatcher(opts *indexstore.BatchOptions) *indexstore.Batcher
}

// Options configures the indexer. A nil *Options means the defaults.
type Options struct {
	// MaxOutstandingMessages and MaxOutstandingBytes bound the messages held unacknowledged
	// (flow control); defaults 256 and 64 MiB. No receive starts while either is reached; the
	// bytes (bodies and attributes) are known only once received, so one batch may pass them.
	MaxOutstandingMessages int
	MaxOutstandingBytes    int
	// Receivers is the number of receive loops, each with one Receive at a time; default 2.
	Receivers int

	// BatchSize is the most records written in one transaction; default 100. 1 writes each
	// record in its own transaction.
	BatchSize int
	// BatchWait is how long a record waits for others to share its transaction; default 10ms.
	BatchWait time.Duration
	// WriteTimeout bounds one attempt at a record's write (its batch's, when batched); an
	// attempt that runs out is retried like any transient failure. Default 15s.
	WriteTimeout time.Duration
	// RetryFor is how long a message whose write failed transiently is held (its lease
	// extended) while the write is retried with backoff, before it is nacked. Default 90s;
	// negative: nack at the first failure. Holding instead of nacking resumes within seconds
	// when Firestore comes back, where a nacked message waits out the subscription's retry
	// backoff, and it spends no delivery attempt. The default outlasts the 60 s after which
	// Firestore releases the locks of a transaction its client abandoned (cut off mid-way):
	// until then, writes to the documents it read abort.
	RetryFor time.Duration
	// AckExtension is the lease a receive takes and each extension sets, which bounds how
	// long the messages of an indexer that died stay leased to it. Default 10s; the source
	// may bound it (Pub/Sub: whole seconds up to 600s).
	AckExtension time.Duration
	// SetupGiveUp is how long receives may go on failing with setup faults (a missing
	// subscription, a denied or unauthenticated identity: failure.IsSetup) before Run returns
	// the last of them, counted from the first since a receive last worked, and only once
	// there were at least 3. Default 60s: long enough that a permission or subscription still
	// being created with the deployment does not stop the indexer, short enough that a
	// deployment that can never receive crash-loops where people see it. Negative: never
	// give up (the indexer stays up, not ready, and retries).
	SetupGiveUp time.Duration

	// Registerer, when set, receives the indexer's Prometheus metrics.
	Registerer prometheus.Registerer
	Logger     *zap.Logger
}

// Indexer applies a subscription's records to a store.
type Indexer struct {
	src        queue.Source
	deadLetter queue.Sink // nil: invalid messages are nacked
	store      Store
	opts       Options
	metrics    *metrics
	keeper     *queue.Keeper
	deleter    *queue.Deleter
	flow       *flow
	revival    *revival // set by Run
	health     receiveHealth
	ran        atomic.Bool
}

// New returns an indexer of src's records into store; deadLetter (nil: none) receives copies
// of the messages that can never be applied. It starts nothing until Run.
func New(src queue.Source, deadLetter queue.Sink, store Store, opts *Options) (*Indexer, error) {
	if src == nil || store == nil {
		return nil, errors.New("indexer: a source and a store are required")
	}
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.MaxOutstandingMessages <= 0 {
		o.MaxOutstandingMessages = 256
	}
	if o.MaxOutstandingBytes <= 0 {
		o.MaxOutstandingBytes = 64 << 20
	}
	if o.Receivers <= 0 {
		o.Receivers = 2
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 100
	}
	if o.BatchWait <= 0 {
		o.BatchWait = 10 * time.Millisecond
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 15 * time.Second
	}
	if o.RetryFor == 0 {
		o.RetryFor = 90 * time.Second
	}
	if o.AckExtension == 0 {
		o.AckExtension = 10 * time.Second
	}
	if o.SetupGiveUp == 0 {
		o.SetupGiveUp = 60 * time.Second
	}
	if err := queue.CheckHold(src, o.AckExtension); err != nil {
		return nil, fmt.Errorf("indexer: AckExtension %s: %w", o.AckExtension, err)
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	ix := &Indexer{
		src: src, deadLetter: deadLetter, store: store, opts: o,
		metrics: newMetrics(),
		flow:    newFlow(o.MaxOutstandingMessages, o.MaxOutstandingBytes),
	}
	ix.keeper = queue.NewKeeper(src, o.AckExtension, &queue.KeeperOptions{
		Extended: func(n int) { ix.metrics.extended.Add(float64(n)) },
		Failed:   func(*queue.Message, error) { ix.metrics.extendErrors.Inc() },
		Logger:   o.Logger,
	})
	ix.deleter = queue.NewDeleter(src, &queue.DeleterOptions{Logger: o.Logger})
	if o.Registerer != nil {
		if err := ix.metrics.register(o.Registerer); err != nil {
			return nil, fmt.Errorf("indexer metrics: %w", err)
		}
	}
	return ix, nil
}

// receiveBackoff spaces the receives after a failed one.
var receiveBackoff = retry.Policy{BaseDelay: 200 * time.Millisecond, MaxDelay: 20 * time.Second}

// idleBackoff spaces the receives after one that brought nothing: a source may answer at once
// when it has nothing (the Pub/Sub emulator's Pull does), and a loop that asks again at once
// would spin. It adds at most its MaxDelay to the first message after an idle spell.
var idleBackoff = retry.Policy{BaseDelay: 50 * time.Millisecond, MaxDelay: 500 * time.Millisecond}

// ackGrace is how long the acknowledgements still queued when Run stops may take to go out.
const ackGrace = 15 * time.Second

// settleTimeout bounds one release (nack) call.
const settleTimeout = 15 * time.Second

// Run receives until ctx is cancelled, then stops receiving (a receive in flight runs to its
// end and what it brings back is nacked), lets the writes in flight finish and ack or nack
// their messages, flushes the acknowledgements and returns. It returns an error, after the
// same drain, only for a receive that can never succeed: a permanent failure at once, setup
// faults once they have lasted Options.SetupGiveUp. It can be called once.
func (ix *Indexer) Run(ctx context.Context) error {
	if ix.ran.Swap(true) {
		return errors.New("indexer: Run called twice")
	}
	apply := ix.store.Apply
	var batcher *indexstore.Batcher
	if bs, ok := ix.store.(Batching); ok && ix.opts.BatchSize > 1 {
		batcher = bs.NewBatcher(&indexstore.BatchOptions{
			MaxRecords: ix.opts.BatchSize, MaxWait: ix.opts.BatchWait, Timeout: ix.opts.WriteTimeout,
			OnBatch: func(n int, took time.Duration) {
				ix.metrics.batchRecords.Observe(float64(n))
				ix.metrics.batchSeconds.Observe(took.Seconds())
			},
		})
		apply = batcher.Apply
	}
	stop, fail := context.WithCancelCause(ctx)
	defer fail(nil)
	ix.revival = newRevival(stop, ix.store.Ping, 500*time.Millisecond)
	// Receives in flight at the stop, releases and acknowledgements outlive ctx.
	work := context.WithoutCancel(ctx)
	keepCtx, stopKeeping := context.WithCancel(work)
	ackCtx, stopAcks := context.WithCancel(work)
	var bg sync.WaitGroup // the keeper and the deleter
	bg.Go(func() { ix.keeper.Run(keepCtx) })
	bg.Go(func() { ix.deleter.Run(ackCtx) })

	st := &runState{stop: stop, work: work, apply: apply}
	var receivers sync.WaitGroup
	for range ix.opts.Receivers {
		receivers.Go(func() {
			if err := ix.receive(st); err != nil {
				fail(err)
			}
		})
	}
	receivers.Wait()
	st.inflight.Wait()
	if batcher != nil {
		_ = batcher.Close() // nothing is left in it: every write returned
	}
	ix.revival.close()
	stopKeeping()
	ix.deleter.Close()
	cut := time.AfterFunc(ackGrace, stopAcks)
	bg.Wait()
	cut.Stop()
	stopAcks()
	if err := context.Cause(stop); ctx.Err() == nil && err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("receive %s: %w", ix.src.Name(), err)
	}
	return nil
}

// runState is what one Run shares with the messages it received.
type runState struct {
	stop     context.Context // Run's: ends at shutdown, when no new receive or write starts
	work     context.Context // never ends: what is under way at shutdown finishes
	apply    applyFunc
	inflight sync.WaitGroup // messages received and not yet settled
}

// receive is one receive loop: while the flow allows, it leases a batch and starts each
// message's handling, until st.stop ends. It returns a permanent receive failure.
func (ix *Indexer) receive(st *runState) error {
	failures, empty := 0, 0
	for st.stop.Err() == nil {
		n := ix.flow.acquire(st.stop, queue.BatchSize(ix.src))
		if n == 0 {
			continue // the loop ends
		}
		// A receive is not cancelled at shutdown (see queue.Source.Receive): what it brings
		// back after the stop is nacked at once.
		msgs, err := ix.src.Receive(st.work, n, ix.opts.AckExtension)
		ix.flow.received(n, msgs)
		if st.stop.Err() != nil {
			ix.metrics.received.Add(float64(len(msgs)))
			ix.metrics.nacked.Add(float64(len(msgs)))
			ix.releaseAll(msgs)
			for _, m := range msgs {
				ix.flow.done(m)
			}
			return nil
		}
		if err != nil {
			ix.metrics.receiveErrors.Inc()
			if failure.IsPermanent(err) {
				return err
			}
			if ix.health.failed(err, ix.opts.SetupGiveUp, time.Now()) {
				return fmt.Errorf("setup fault for over %s: %w", ix.opts.SetupGiveUp, err)
			}
			failures++
			wait := receiveBackoff.Backoff(failures, nil)
			ix.opts.Logger.Warn("receive failed", zap.Error(err), zap.Bool("setup", failure.IsSetup(err)), zap.Duration("retry_in", wait))
			_ = retry.Sleep(st.stop, wait) // the loop ends once stop has
			continue
		}
		failures = 0
		ix.health.worked()
		if len(msgs) == 0 {
			empty++
			_ = retry.Sleep(st.stop, idleBackoff.Backoff(empty, nil))
			continue
		}
		empty = 0
		ix.keeper.Keep(msgs...)
		st.inflight.Add(len(msgs))
		for _, m := range msgs {
			go func() {
				defer st.inflight.Done()
				ix.settle(m, ix.handle(st.stop, m, st.apply))
			}()
		}
	}
	return nil
}

// Ready reports whether the indexer can receive: the last receive error while two or more
// receives in a row failed, nil once one works again. With the index's Ping it is the
// /readyz check.
func (ix *Indexer) Ready(context.Context) error {
	if err := ix.health.err(); err != nil {
		return fmt.Errorf("receive %s: %w", ix.src.Name(), err)
	}
	return nil
}

// receiveHealth is what the receive loops know of their receives together: how many failed
// in a row, the last error, and since when setup faults have been met.
type receiveHealth struct {
	mu         sync.Mutex
	failures   int   // receives failed in a row, across the loops
	last       error // the last receive's error, while they fail
	setup      int   // setup faults among them
	setupSince time.Time
}

// setupFailures is the fewest setup faults in a row after which Run may give up.
const setupFailures = 3

// failed records a failed receive and says whether Run is to give up: err is a setup fault,
// at least setupFailures of them were met, the first giveUp or more before now.
func (h *receiveHealth) failed(err error, giveUp time.Duration, now time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.failures++
	h.last = err
	if !failure.IsSetup(err) {
		return false
	}
	if h.setup == 0 {
		h.setupSince = now
	}
	h.setup++
	return giveUp >= 0 && h.setup >= setupFailures && now.Sub(h.setupSince) >= giveUp
}

// worked records a receive that worked.
func (h *receiveHealth) worked() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.failures, h.last, h.setup = 0, nil, 0
}

// err is the last receive error while two or more receives in a row failed (one alone is a
// blip the next one mends).
func (h *receiveHealth) err() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.failures < 2 {
		return nil
	}
	return h.last
}

// settle acknowledges m (batched) or nacks it, once its lease is no longer kept.
func (ix *Indexer) settle(m *queue.Message, ack bool) {
	ix.keeper.Drop(m)
	if ack {
		ix.deleter.Delete(m)
	} else {
		ix.releaseAll([]*queue.Message{m})
	}
	ix.flow.done(m)
}

// releaseAll nacks msgs. A failed release is logged: the message comes back when its lease
// ends.
func (ix *Indexer) releaseAll(msgs []*queue.Message) {
	if len(msgs) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), settleTimeout)
	defer cancel()
	res := queue.BatchesOf(queue.BatchSize(ix.src), msgs, func(b []*queue.Message) []error { return ix.src.Release(ctx, b) })
	for i, err := range res {
		if err != nil {
			ix.opts.Logger.Warn("nack failed; the message comes back when its lease ends",
				zap.String("message_id", msgs[i].ID), zap.Error(err))
		}
	}
}

type applyFunc func(context.Context, *record.Analysis) (indexstore.Outcome, error)

// handle applies one message's record and says whether the message is to be acknowledged
// (applied, or dead-lettered) or nacked. stop is Run's context: when it ends, no new attempt
// starts, but the attempt in flight finishes so that the message's fate follows its outcome.
// It is the span indexer.message, continuing the trace whose context the publisher put in
// the attributes; the write is its child indexer.write (the Firestore transaction's spans
// under it, or under the batch's span, retries as its events), and the ack or nack an event
// of it.
func (ix *Indexer) handle(stop context.Context, m *queue.Message, apply applyFunc) (ack bool) {
	ix.metrics.received.Inc()
	if stop.Err() != nil {
		// Shutting down: start no new write.
		ix.metrics.nacked.Inc()
		return false
	}
	ctx := context.WithoutCancel(stop)
	attrs := m.StringAttributes()
	ctx, _ = tracing.Extract(ctx, attrs)
	ctx, span := tracing.Tracer(tracerName).Start(ctx, "indexer.message", trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(attribute.String("messaging.system", "gcp_pubsub"), attribute.String("messaging.message.id", m.ID)))
	defer span.End()
	log := tracing.Logger(ctx, ix.opts.Logger).With(zap.String("pubsub_message_id", m.ID),
		zap.String("bucket", attrs[record.AttrBucket]), zap.String("key", attrs[record.AttrKey]))
	if m.ReceiveCount > 0 {
		log = log.With(zap.Int("delivery_attempt", m.ReceiveCount))
	}
	rec, err := record.Unmarshal(m.Body)
	if err != nil {
		return ix.reject(ctx, log, m, err)
	}
	start := time.Now()
	wctx, wspan := tracing.Tracer(tracerName).Start(ctx, "indexer.write")
	outcome, err := ix.write(wctx, stop, log, rec, apply)
	tracing.End(wspan, err)
	if err != nil {
		if failure.IsPermanent(err) {
			return ix.reject(ctx, log, m, err)
		}
		ix.metrics.nacked.Inc()
		log.Warn("index write failed; nacked for redelivery", zap.Error(err),
			zap.String("class", failure.ClassOf(err).String()), zap.String("reason", failure.ReasonOf(err)))
		tracing.Fail(span, err)
		span.AddEvent("nack")
		return false
	}
	ix.metrics.writeSeconds.Observe(time.Since(start).Seconds())
	if s, ok := endToEndSeconds(outcome, rec.EventTime, time.Now()); ok {
		ix.metrics.endToEnd.WithLabelValues(outcome.String()).Observe(s)
	}
	switch outcome {
	case indexstore.Written:
		ix.metrics.written.Inc()
	case indexstore.Deleted:
		ix.metrics.deleted.Inc()
	case indexstore.Stale:
		ix.metrics.stale.Inc()
	}
	log.Info("indexed", zap.String("outcome", outcome.String()), zap.String("sequencer", rec.Sequencer))
	span.SetAttributes(attribute.String("imgpipe.outcome", outcome.String()))
	span.AddEvent("ack")
	return true
}

// retryPolicy spaces the attempts at a held message's write: full jitter, from 250 ms up to
// 2 s.
var retryPolicy = retry.Policy{BaseDelay: 250 * time.Millisecond, MaxDelay: 2 * time.Second}

// write applies rec under ctx (never cancelled; it carries the trace), retrying transient
// failures while the message is held, for up to RetryFor or until stop ends. A record every attempt of which Firestore refused over the
// whole window is returned as a permanent failure. An attempt that failed or takes longer
// than slowAttempt has Firestore watched (revival); if Firestore answers again after failing,
// the attempt is cut short and tried again at once. With RetryFor negative nothing is held:
// one attempt, never cut short (cutting it would turn a write the client may still finish
// into a nack).
func (ix *Indexer) write(ctx, stop context.Context, log *zap.Logger, rec *record.Analysis, apply applyFunc) (indexstore.Outcome, error) {
	if ix.opts.RetryFor < 0 {
		actx, cancel := context.WithTimeout(ctx, ix.opts.WriteTimeout)
		defer cancel()
		return apply(actx, rec)
	}
	deadline := time.Now().Add(ix.opts.RetryFor)
	refused := true // every attempt so far was refused by Firestore
	var mu sync.Mutex
	var release func()
	// done is set when write returns: a slow-attempt timer that fired between the attempt's
	// return and its Stop then holds nothing (a holder nobody releases would keep Firestore
	// pinged until Run ends).
	done := false
	watch := func() {
		mu.Lock()
		defer mu.Unlock()
		if release == nil && !done {
			release = ix.revival.hold()
		}
	}
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		done = true
		if release != nil {
			release()
		}
	}()
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, ix.opts.WriteTimeout)
		back := ix.revival.current()
		uncut := context.AfterFunc(back, cancel)
		slow := time.AfterFunc(slowAttempt, watch)
		outcome, err := apply(actx, rec)
		slow.Stop()
		uncut()
		cancel()
		if err == nil || failure.IsPermanent(err) {
			return outcome, err
		}
		refused = refused && failure.ReasonOf(err) == indexstore.ReasonRejected
		if !time.Now().Before(deadline) || stop.Err() != nil {
			if refused && attempt > 1 && stop.Err() == nil {
				return 0, failure.New(failure.Permanent, indexstore.ReasonRejected,
					fmt.Errorf("refused in each of %d transactions over %s: %w", attempt, ix.opts.RetryFor, err))
			}
			return 0, err
		}
		watch()
		trace.SpanFromContext(ctx).AddEvent("write.retry", trace.WithAttributes(attribute.Int("attempt", attempt),
			attribute.String("reason", failure.ReasonOf(err))))
		if attempt == 1 {
			log.Warn("index write failed; message held, write retried", zap.Error(err),
				zap.String("class", failure.ClassOf(err).String()), zap.String("reason", failure.ReasonOf(err)))
		}
		revived := back.Err() != nil // Firestore came back during the attempt: again at once
		if !revived {
			wait := retryPolicy.Delay(attempt, failure.RetryAfterOf(err), nil)
			t := time.NewTimer(min(wait, time.Until(deadline)))
			select {
			case <-t.C:
			case <-back.Done():
				t.Stop()
				revived = true
			case <-stop.Done():
				t.Stop()
				return 0, err
			}
		}
		if revived {
			ix.metrics.revived.Inc()
		}
		ix.metrics.retried.Inc()
	}
}

// slowAttempt is how long a write attempt runs before Firestore is watched for its return.
const slowAttempt = time.Second

const tracerName = "imgpipe/pkg/indexer"

// deadLetterTimeout bounds the copy of an invalid message to the dead-letter sink.
const deadLetterTimeout = 30 * time.Second

// reject handles a message that can never be applied: copied to the dead-letter sink with
// its reason and acknowledged, or nacked when there is no sink or the copy fails.
func (ix *Indexer) reject(ctx context.Context, log *zap.Logger, m *queue.Message, cause error) (ack bool) {
	ix.metrics.invalid.Inc()
	span := trace.SpanFromContext(ctx)
	tracing.Fail(span, cause)
	log = log.With(zap.Error(cause), zap.String("reason", failure.ReasonOf(cause)))
	if ix.deadLetter == nil {
		ix.metrics.nacked.Inc()
		log.Error("invalid message; left to the dead-letter policy")
		span.AddEvent("nack")
		return false
	}
	details := failure.DetailsOf(cause, max(m.ReceiveCount, 1), ix.src.Name(), time.Time{}, time.Now()).Attributes()
	tracing.Inject(ctx, details) // a replay continues this message's trace
	attrs := maps.Clone(m.Attributes)
	if attrs == nil {
		attrs = map[string]queue.Attr{}
	}
	for k, v := range details {
		attrs[k] = queue.StringAttr(v)
	}
	sctx, cancel := context.WithTimeout(ctx, deadLetterTimeout)
	defer cancel()
	err := failure.Transientf("NoAnswer", "dead-letter copy of %s: no answer", m.ID)
	if res := ix.deadLetter.Send(sctx, []*queue.Message{{Body: m.Body, Attributes: attrs}}); len(res) == 1 {
		err = res[0]
	}
	if err != nil {
		ix.metrics.nacked.Inc()
		log.Error("invalid message; dead-letter copy failed, nacked", zap.NamedError("send_error", err))
		span.AddEvent("nack")
		return false
	}
	ix.metrics.deadLettered.Inc()
	log.Error("invalid message; copied to the dead-letter topic and acknowledged")
	span.AddEvent("ack")
	return true
}
