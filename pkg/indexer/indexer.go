// Package indexer pulls analysis records from a Pub/Sub subscription and applies them to the
// Firestore index, acknowledging each message only after its write is committed.
//
// Records are grouped into batched transactions (indexstore.Batcher) by default; each message is
// acknowledged once its own batch has committed, and a failed write nacks only its message.
//
// A message that can never be applied (undecodable, an unknown schema version, a record the
// index rejects for good) is copied to the dead-letter topic with the reason as attributes
// (failure.Details) and acknowledged, so it does not burn delivery attempts. The dead-letter topic is
// read from the subscription's dead-letter policy at start unless Options names it. If the
// copy cannot be published, the message is nacked and the subscription's dead-letter policy
// is the backstop.
//
// A write that fails transiently (Firestore unavailable, a refused transaction) is retried
// with backoff while the message is held, its lease extended by the client, for up to
// Options.RetryFor; only then is the message nacked, and the subscription's retry policy
// spaces the redeliveries. A record whose writes Firestore refused (indexstore.ReasonRejected) on
// every attempt of that window is dead-lettered: a refused transaction mends in a new one, a
// record Firestore can never store does not.
//
// The client extends a message's lease by Options.AckExtension at a time (10 s by default),
// so the messages of an indexer that dies come back to the others within about that long.
package indexer

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"imgpipe/pkg/failure"
	"imgpipe/pkg/indexstore"
	"imgpipe/pkg/record"
	"imgpipe/pkg/retry"
	"imgpipe/pkg/tracing"
)

// Options configures the indexer. Subscription is required.
type Options struct {
	Subscription string // ID or projects/P/subscriptions/S

	// MaxOutstandingMessages and MaxOutstandingBytes bound the messages held unacknowledged
	// (flow control); defaults 256 and 64 MiB.
	MaxOutstandingMessages int
	MaxOutstandingBytes    int
	// Streams is the number of StreamingPull streams; default 2.
	Streams int

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
	// AckExtension is how much the client extends a held message's lease at a time
	// (ReceiveSettings.MaxDurationPerAckExtension, also the stream's ack deadline), which bounds
	// how long the messages of an indexer that died stay leased to it. Default 10s, the least
	// Pub/Sub allows; at most 600s.
	AckExtension time.Duration

	// DeadLetterTopic (ID or projects/P/topics/T) receives copies of messages that can never
	// be applied. Empty: the subscription's dead-letter policy names it, read at start.
	DeadLetterTopic string
	// NoDeadLetterCopy nacks messages that can never be applied instead of copying them,
	// leaving them to the subscription's dead-letter policy after its delivery attempts.
	NoDeadLetterCopy bool

	// Registerer, when set, receives the indexer's Prometheus metrics.
	Registerer prometheus.Registerer
	Logger     *zap.Logger
}

// Indexer applies a subscription's records to a store.
type Indexer struct {
	client  *pubsub.Client
	store   *indexstore.Store
	opts    Options
	metrics *metrics
	revival *revival // set by Run
}

// New returns an indexer. It starts nothing until Run.
func New(client *pubsub.Client, store *indexstore.Store, opts *Options) (*Indexer, error) {
	if opts == nil || opts.Subscription == "" {
		return nil, errors.New("indexer: Subscription is required")
	}
	o := *opts
	if o.MaxOutstandingMessages <= 0 {
		o.MaxOutstandingMessages = 256
	}
	if o.MaxOutstandingBytes <= 0 {
		o.MaxOutstandingBytes = 64 << 20
	}
	if o.Streams <= 0 {
		o.Streams = 2
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
	if o.AckExtension < 10*time.Second || o.AckExtension > 600*time.Second {
		return nil, fmt.Errorf("indexer: AckExtension %s is outside Pub/Sub's 10s-600s", o.AckExtension)
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if !strings.Contains(o.Subscription, "/") {
		o.Subscription = "projects/" + client.Project() + "/subscriptions/" + o.Subscription
	}
	if o.DeadLetterTopic != "" && !strings.Contains(o.DeadLetterTopic, "/") {
		o.DeadLetterTopic = "projects/" + client.Project() + "/topics/" + o.DeadLetterTopic
	}
	ix := &Indexer{
		client: client, store: store, opts: o,
		metrics: newMetrics(),
	}
	if o.Registerer != nil {
		if err := ix.metrics.register(o.Registerer); err != nil {
			return nil, fmt.Errorf("indexer metrics: %w", err)
		}
	}
	return ix, nil
}

// Run pulls until ctx is cancelled. On cancellation the client stops pulling and waits for
// the callbacks in flight to finish their writes and acks before Run returns.
func (ix *Indexer) Run(ctx context.Context) error {
	var deadLetter *pubsub.Publisher
	if !ix.opts.NoDeadLetterCopy {
		// Without the topic (no policy, or no permission to read it) invalid messages are nacked
		// and the subscription's dead-letter policy takes them after its delivery attempts.
		topic, err := ix.deadLetterTopic(ctx)
		if err != nil {
			ix.opts.Logger.Warn("invalid messages will be nacked, not copied to a dead-letter topic", zap.Error(err))
		}
		if topic != "" {
			deadLetter = ix.client.Publisher(topic)
			defer deadLetter.Stop()
			ix.opts.Logger.Info("invalid messages are copied to the dead-letter topic", zap.String("topic", topic))
		}
	}
	apply := ix.store.Apply
	if ix.opts.BatchSize > 1 {
		b := ix.store.NewBatcher(&indexstore.BatchOptions{
			MaxRecords: ix.opts.BatchSize, MaxWait: ix.opts.BatchWait, Timeout: ix.opts.WriteTimeout,
			OnBatch: func(n int, took time.Duration) {
				ix.metrics.batchRecords.Observe(float64(n))
				ix.metrics.batchSeconds.Observe(took.Seconds())
			},
		})
		defer b.Close()
		apply = b.Apply
	}
	ix.revival = newRevival(ctx, ix.store.Ping, 500*time.Millisecond)
	defer ix.revival.close()
	sub := ix.client.Subscriber(ix.opts.Subscription)
	sub.ReceiveSettings = ix.ReceiveSettings()
	// Receive returns after its callbacks end; the wait group makes Run's promise hold
	// whatever the client's shutdown settings.
	var inflight sync.WaitGroup
	defer inflight.Wait()
	err := sub.Receive(ctx, func(_ context.Context, m *pubsub.Message) {
		inflight.Add(1)
		defer inflight.Done()
		if ctx.Err() != nil {
			// Shutting down: start no new write.
			ix.metrics.received.Inc()
			ix.metrics.nacked.Inc()
			m.Nack()
			return
		}
		ix.handle(ctx, m, apply, deadLetter)
	})
	inflight.Wait()
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("receive %s: %w", ix.opts.Subscription, err)
	}
	return nil
}

// ReceiveSettings are the Pub/Sub client's settings Run uses.
func (ix *Indexer) ReceiveSettings() pubsub.ReceiveSettings {
	rs := pubsub.DefaultReceiveSettings
	rs.MaxOutstandingMessages = ix.opts.MaxOutstandingMessages
	rs.MaxOutstandingBytes = ix.opts.MaxOutstandingBytes
	rs.NumGoroutines = ix.opts.Streams
	// Each extension leases a message for this long, and it is the stream's ack deadline: a
	// dead indexer's messages are leased for at most this long after its last extension.
	rs.MaxDurationPerAckExtension = ix.opts.AckExtension
	return rs
}

// deadLetterTopic returns the topic that receives copies of invalid messages: the option, or
// the subscription's dead-letter policy ("" when it has none).
func (ix *Indexer) deadLetterTopic(ctx context.Context) (string, error) {
	if ix.opts.DeadLetterTopic != "" {
		return ix.opts.DeadLetterTopic, nil
	}
	sub, err := ix.client.SubscriptionAdminClient.GetSubscription(ctx, &pubsubpb.GetSubscriptionRequest{Subscription: ix.opts.Subscription})
	if err != nil {
		return "", fmt.Errorf("read dead-letter policy of %s (or set the dead-letter topic): %w", ix.opts.Subscription, err)
	}
	return sub.GetDeadLetterPolicy().GetDeadLetterTopic(), nil
}

type applyFunc func(context.Context, *record.Analysis) (indexstore.Outcome, error)

// handle applies one message's record and acks, nacks or dead-letters the message. stop is
// Run's context: when it ends, no new attempt starts, but the attempt in flight finishes so
// that the message's fate follows its outcome. It is the span indexer.message, continuing
// the trace whose context the publisher put in the attributes; the write is its child
// indexer.write (the Firestore transaction's spans under it, or under the batch's span,
// retries as its events), and the ack or nack an event of it.
func (ix *Indexer) handle(stop context.Context, m *pubsub.Message, apply applyFunc, deadLetter *pubsub.Publisher) {
	ctx := context.WithoutCancel(stop)
	ix.metrics.received.Inc()
	ctx, _ = tracing.Extract(ctx, m.Attributes)
	ctx, span := tracing.Tracer(tracerName).Start(ctx, "indexer.message", trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(attribute.String("messaging.system", "gcp_pubsub"), attribute.String("messaging.message.id", m.ID)))
	defer span.End()
	log := tracing.Logger(ctx, ix.opts.Logger).With(zap.String("pubsub_message_id", m.ID),
		zap.String("bucket", m.Attributes[record.AttrBucket]), zap.String("key", m.Attributes[record.AttrKey]))
	if m.DeliveryAttempt != nil {
		log = log.With(zap.Int("delivery_attempt", *m.DeliveryAttempt))
	}
	rec, err := record.Unmarshal(m.Data)
	if err != nil {
		ix.reject(ctx, log, m, err, deadLetter)
		return
	}
	start := time.Now()
	wctx, wspan := tracing.Tracer(tracerName).Start(ctx, "indexer.write")
	outcome, err := ix.write(wctx, stop, log, rec, apply)
	tracing.End(wspan, err)
	if err != nil {
		if failure.IsPermanent(err) {
			ix.reject(ctx, log, m, err, deadLetter)
			return
		}
		ix.metrics.nacked.Inc()
		log.Warn("index write failed; nacked for redelivery", zap.Error(err),
			zap.String("class", failure.ClassOf(err).String()), zap.String("reason", failure.ReasonOf(err)))
		tracing.Fail(span, err)
		span.AddEvent("nack")
		m.Nack()
		return
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
	m.Ack()
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

// reject handles a message that can never be applied: copied to the dead-letter topic with
// its reason and acknowledged, or nacked when there is no topic or the copy fails.
func (ix *Indexer) reject(ctx context.Context, log *zap.Logger, m *pubsub.Message, cause error, deadLetter *pubsub.Publisher) {
	ix.metrics.invalid.Inc()
	span := trace.SpanFromContext(ctx)
	tracing.Fail(span, cause)
	log = log.With(zap.Error(cause), zap.String("reason", failure.ReasonOf(cause)))
	if deadLetter == nil {
		ix.metrics.nacked.Inc()
		log.Error("invalid message; left to the dead-letter policy")
		span.AddEvent("nack")
		m.Nack()
		return
	}
	attempts := 1
	if m.DeliveryAttempt != nil {
		attempts = *m.DeliveryAttempt
	}
	attrs := maps.Clone(m.Attributes)
	if attrs == nil {
		attrs = map[string]string{}
	}
	maps.Copy(attrs, failure.DetailsOf(cause, attempts, ix.opts.Subscription, time.Time{}, time.Now()).Attributes())
	tracing.Inject(ctx, attrs) // a replay continues this message's trace
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	id, err := deadLetter.Publish(pctx, &pubsub.Message{Data: m.Data, Attributes: attrs}).Get(pctx)
	if err != nil {
		ix.metrics.nacked.Inc()
		log.Error("invalid message; dead-letter copy failed, nacked", zap.NamedError("publish_error", err))
		span.AddEvent("nack")
		m.Nack()
		return
	}
	ix.metrics.deadLettered.Inc()
	log.Error("invalid message; copied to the dead-letter topic and acknowledged", zap.String("dead_letter_message_id", id))
	span.AddEvent("ack")
	m.Ack()
}
