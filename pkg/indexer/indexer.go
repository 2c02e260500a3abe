// Package indexer pulls analysis records from a Pub/Sub subscription and applies them to the
// Firestore index, acknowledging each message only after its write is committed.
//
// A message that can never be applied (undecodable, an unknown schema version) is not
// acknowledged: it is nacked, and the subscription's dead-letter policy moves it to the
// dead-letter topic after the configured number of delivery attempts. A transient Firestore
// error nacks the message; the subscription's retry policy spaces the redeliveries.
package indexer

import (
	"context"
	"errors"
	"sync/atomic"

	"cloud.google.com/go/pubsub/v2"
	"go.uber.org/zap"

	"imgpipe/pkg/analysis"
	"imgpipe/pkg/failure"
	"imgpipe/pkg/index"
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

	Logger *zap.Logger
}

// Metrics counts what the indexer did.
type Metrics struct {
	Received, Written, Deleted, Stale, Nacked, Invalid atomic.Int64
}

// Indexer applies a subscription's records to a store.
type Indexer struct {
	client  *pubsub.Client
	store   *index.Store
	opts    Options
	metrics Metrics
}

// New returns an indexer. It starts nothing until Run.
func New(client *pubsub.Client, store *index.Store, opts *Options) (*Indexer, error) {
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
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	return &Indexer{client: client, store: store, opts: o}, nil
}

// Metrics returns the indexer's counters.
func (ix *Indexer) Metrics() *Metrics { return &ix.metrics }

// Run pulls until ctx is cancelled. On cancellation the client stops pulling and waits for
// the callbacks in flight to finish their writes and acks before Run returns.
func (ix *Indexer) Run(ctx context.Context) error {
	sub := ix.client.Subscriber(ix.opts.Subscription)
	sub.ReceiveSettings.MaxOutstandingMessages = ix.opts.MaxOutstandingMessages
	sub.ReceiveSettings.MaxOutstandingBytes = ix.opts.MaxOutstandingBytes
	sub.ReceiveSettings.NumGoroutines = ix.opts.Streams
	err := sub.Receive(ctx, func(_ context.Context, m *pubsub.Message) {
		// The callback's context ends when Receive is asked to stop; the write in flight must
		// still finish so that its ack (or nack) is decided by its outcome.
		ix.handle(context.WithoutCancel(ctx), m)
	})
	if err != nil && ctx.Err() == nil {
		return err
	}
	return nil
}

func (ix *Indexer) handle(ctx context.Context, m *pubsub.Message) {
	ix.metrics.Received.Add(1)
	log := ix.opts.Logger.With(zap.String("pubsub_message_id", m.ID),
		zap.String("bucket", m.Attributes[analysis.AttrBucket]), zap.String("key", m.Attributes[analysis.AttrKey]))
	if m.DeliveryAttempt != nil {
		log = log.With(zap.Int("delivery_attempt", *m.DeliveryAttempt))
	}
	rec, err := analysis.Unmarshal(m.Data)
	if err != nil {
		ix.metrics.Invalid.Add(1)
		ix.metrics.Nacked.Add(1)
		log.Error("invalid message; left to the dead-letter policy", zap.Error(err), zap.String("reason", failure.ReasonOf(err)))
		m.Nack()
		return
	}
	outcome, err := ix.store.Apply(ctx, rec)
	if err != nil {
		ix.metrics.Nacked.Add(1)
		log.Warn("index write failed; nacked for redelivery", zap.Error(err),
			zap.String("class", failure.ClassOf(err).String()), zap.String("reason", failure.ReasonOf(err)))
		m.Nack()
		return
	}
	switch outcome {
	case index.Written:
		ix.metrics.Written.Add(1)
	case index.Deleted:
		ix.metrics.Deleted.Add(1)
	case index.Stale:
		ix.metrics.Stale.Add(1)
	}
	log.Info("indexed", zap.String("outcome", outcome.String()), zap.String("sequencer", rec.Sequencer))
	m.Ack()
}
