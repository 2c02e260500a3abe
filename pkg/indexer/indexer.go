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
// is the backstop. A transient Firestore error nacks the message; the subscription's retry
// policy spaces the redeliveries.
package indexer

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"imgpipe/pkg/failure"
	"imgpipe/pkg/indexstore"
	"imgpipe/pkg/record"
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
	// WriteTimeout bounds one record's write (its batch's, when batched); on expiry the
	// message is nacked. Default 15s: during a Firestore outage messages go back to Pub/Sub,
	// whose retry policy spaces the redeliveries, instead of being held.
	WriteTimeout time.Duration

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

// Metrics counts what the indexer did.
type Metrics struct {
	// Received counts messages; Written, Deleted and Stale count applied records by outcome;
	// Nacked counts messages nacked for redelivery; Invalid counts messages that can never be
	// applied, and DeadLettered those of them copied to the dead-letter topic.
	Received, Written, Deleted, Stale, Nacked, Invalid, DeadLettered atomic.Int64
}

// Indexer applies a subscription's records to a store.
type Indexer struct {
	client  *pubsub.Client
	store   *indexstore.Store
	opts    Options
	metrics Metrics

	writeSeconds prometheus.Histogram
	batchRecords prometheus.Histogram
	batchSeconds prometheus.Histogram
	endToEnd     *prometheus.HistogramVec
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
		writeSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "imgpipe_indexer_write_seconds", Help: "Time from a record's decoding to its committed write (batch wait included).",
			Buckets: prometheus.ExponentialBuckets(0.002, 2, 14),
		}),
		batchRecords: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "imgpipe_indexer_batch_records", Help: "Records per batched Firestore transaction.",
			Buckets: []float64{1, 2, 5, 10, 20, 50, 100, 200},
		}),
		batchSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "imgpipe_indexer_batch_seconds", Help: "Time of one batched Firestore transaction, fallbacks included.",
			Buckets: prometheus.ExponentialBuckets(0.002, 2, 14),
		}),
		endToEnd: newEndToEnd(),
	}
	if o.Registerer != nil {
		if err := ix.register(o.Registerer); err != nil {
			return nil, fmt.Errorf("indexer metrics: %w", err)
		}
	}
	return ix, nil
}

func (ix *Indexer) register(reg prometheus.Registerer) error {
	counter := func(name, help string, v *atomic.Int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "imgpipe_indexer_" + name, Help: help},
			func() float64 { return float64(v.Load()) })
	}
	m := &ix.metrics
	for _, c := range []prometheus.Collector{
		counter("messages_received_total", "Messages received from the subscription.", &m.Received),
		counter("documents_written_total", "Created records written to the index.", &m.Written),
		counter("documents_deleted_total", "Removed records applied (document deleted, tombstone left).", &m.Deleted),
		counter("records_stale_total", "Records not newer than the index: acknowledged, nothing changed.", &m.Stale),
		counter("messages_nacked_total", "Messages nacked for redelivery.", &m.Nacked),
		counter("messages_invalid_total", "Messages that can never be applied.", &m.Invalid),
		counter("messages_dead_lettered_total", "Invalid messages copied to the dead-letter topic and acknowledged.", &m.DeadLettered),
		ix.writeSeconds, ix.batchRecords, ix.batchSeconds, ix.endToEnd,
	} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// Metrics returns the indexer's counters.
func (ix *Indexer) Metrics() *Metrics { return &ix.metrics }

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
				ix.batchRecords.Observe(float64(n))
				ix.batchSeconds.Observe(took.Seconds())
			},
		})
		defer b.Close()
		apply = b.Apply
	}
	sub := ix.client.Subscriber(ix.opts.Subscription)
	sub.ReceiveSettings.MaxOutstandingMessages = ix.opts.MaxOutstandingMessages
	sub.ReceiveSettings.MaxOutstandingBytes = ix.opts.MaxOutstandingBytes
	sub.ReceiveSettings.NumGoroutines = ix.opts.Streams
	// Receive returns after its callbacks end; the wait group makes Run's promise hold
	// whatever the client's shutdown settings.
	var inflight sync.WaitGroup
	defer inflight.Wait()
	err := sub.Receive(ctx, func(_ context.Context, m *pubsub.Message) {
		inflight.Add(1)
		defer inflight.Done()
		if ctx.Err() != nil {
			// Shutting down: start no new write.
			ix.metrics.Received.Add(1)
			ix.metrics.Nacked.Add(1)
			m.Nack()
			return
		}
		// The callback's context ends when Receive is asked to stop; the write in flight must
		// still finish so that its ack (or nack) is decided by its outcome.
		ix.handle(context.WithoutCancel(ctx), m, apply, deadLetter)
	})
	inflight.Wait()
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("receive %s: %w", ix.opts.Subscription, err)
	}
	return nil
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

func (ix *Indexer) handle(ctx context.Context, m *pubsub.Message, apply applyFunc, deadLetter *pubsub.Publisher) {
	ix.metrics.Received.Add(1)
	log := ix.opts.Logger.With(zap.String("pubsub_message_id", m.ID),
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
	wctx, cancel := context.WithTimeout(ctx, ix.opts.WriteTimeout)
	outcome, err := apply(wctx, rec)
	cancel()
	if err != nil {
		if failure.IsPermanent(err) {
			ix.reject(ctx, log, m, err, deadLetter)
			return
		}
		ix.metrics.Nacked.Add(1)
		log.Warn("index write failed; nacked for redelivery", zap.Error(err),
			zap.String("class", failure.ClassOf(err).String()), zap.String("reason", failure.ReasonOf(err)))
		m.Nack()
		return
	}
	ix.writeSeconds.Observe(time.Since(start).Seconds())
	if s, ok := endToEndSeconds(outcome, rec.EventTime, time.Now()); ok {
		ix.endToEnd.WithLabelValues(outcome.String()).Observe(s)
	}
	switch outcome {
	case indexstore.Written:
		ix.metrics.Written.Add(1)
	case indexstore.Deleted:
		ix.metrics.Deleted.Add(1)
	case indexstore.Stale:
		ix.metrics.Stale.Add(1)
	}
	log.Info("indexed", zap.String("outcome", outcome.String()), zap.String("sequencer", rec.Sequencer))
	m.Ack()
}

// reject handles a message that can never be applied: copied to the dead-letter topic with
// its reason and acknowledged, or nacked when there is no topic or the copy fails.
func (ix *Indexer) reject(ctx context.Context, log *zap.Logger, m *pubsub.Message, cause error, deadLetter *pubsub.Publisher) {
	ix.metrics.Invalid.Add(1)
	log = log.With(zap.Error(cause), zap.String("reason", failure.ReasonOf(cause)))
	if deadLetter == nil {
		ix.metrics.Nacked.Add(1)
		log.Error("invalid message; left to the dead-letter policy")
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
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	id, err := deadLetter.Publish(pctx, &pubsub.Message{Data: m.Data, Attributes: attrs}).Get(pctx)
	if err != nil {
		ix.metrics.Nacked.Add(1)
		log.Error("invalid message; dead-letter copy failed, nacked", zap.NamedError("publish_error", err))
		m.Nack()
		return
	}
	ix.metrics.DeadLettered.Add(1)
	log.Error("invalid message; copied to the dead-letter topic and acknowledged", zap.String("dead_letter_message_id", id))
	m.Ack()
}
