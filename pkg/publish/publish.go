// Package publish sends analysis records to a Google Cloud Pub/Sub topic, with attributes and,
// when asked, one ordering key per object.
package publish

import (
	"context"
	"errors"
	"fmt"

	"cloud.google.com/go/pubsub/v2"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"imgpipe/pkg/failure"
	"imgpipe/pkg/failure/grpcerr"
	"imgpipe/pkg/record"
	"imgpipe/pkg/tracing"
)

// Publisher publishes records to one topic. It is safe for concurrent use.
type Publisher struct {
	p *pubsub.Publisher
}

// Options tunes the publisher. A nil *Options keeps the client's defaults.
type Options struct {
	// OrderingKeys publishes each record with its object's ordering key
	// (record.Analysis.OrderingKey), so that a subscription with message ordering enabled
	// receives the events of one object in order. It only matters to such subscriptions, and
	// it costs throughput: messages with different keys are never batched together, so with
	// one key per object every record is its own publish request.
	OrderingKeys bool
}

// New returns a publisher for topic (an ID or a full projects/P/topics/T name) on client.
func New(client *pubsub.Client, topic string, opts *Options) *Publisher {
	p := client.Publisher(topic)
	p.EnableMessageOrdering = opts != nil && opts.OrderingKeys
	return &Publisher{p: p}
}

// Publish sends rec and waits until the server has stored it, returning its message ID. The
// publish is the span pubsub.publish, whose W3C trace context goes in the message's attributes
// (traceparent, tracestate) for the subscriber to continue.
func (p *Publisher) Publish(ctx context.Context, rec *record.Analysis) (id string, err error) {
	ctx, span := tracing.Tracer("imgpipe/pkg/publish").Start(ctx, "pubsub.publish", trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(attribute.String("messaging.system", "gcp_pubsub"), attribute.String("messaging.destination.name", p.p.ID())))
	defer func() {
		if span.IsRecording() {
			span.SetAttributes(attribute.String("messaging.message.id", id))
		}
		tracing.End(span, err)
	}()
	body, err := record.Marshal(rec)
	if err != nil {
		return "", err
	}
	msg := &pubsub.Message{Data: body, Attributes: rec.Attributes()}
	tracing.Inject(ctx, msg.Attributes)
	if p.p.EnableMessageOrdering {
		msg.OrderingKey = rec.OrderingKey()
	}
	id, err = p.p.Publish(ctx, msg).Get(ctx)
	if err != nil {
		if msg.OrderingKey != "" {
			// A failed publish pauses its ordering key; the caller will retry the whole
			// message, so let the key publish again.
			p.p.ResumePublish(msg.OrderingKey)
		}
		return "", classify(fmt.Errorf("publish %s/%s: %w", rec.Bucket, rec.Key, err))
	}
	return id, nil
}

// Reasons of the Pub/Sub client's own errors (the service's gRPC codes are grpcerr's).
const (
	// ReasonRecordTooLarge: the record is larger than a Pub/Sub message may be.
	ReasonRecordTooLarge = "RecordTooLarge"
	// ReasonFlowControl: the client's flow control refused the message.
	ReasonFlowControl = "FlowControl"
)

// classify sorts the Pub/Sub client's own errors, then the service's gRPC codes through the
// Google table (grpcerr): a missing topic or a denied identity is a setup fault, a refused
// record permanent.
func classify(err error) error {
	switch {
	case errors.Is(err, pubsub.ErrOversizedMessage):
		return failure.New(failure.Permanent, ReasonRecordTooLarge, err)
	case errors.Is(err, pubsub.ErrFlowControllerMaxOutstandingMessages), errors.Is(err, pubsub.ErrFlowControllerMaxOutstandingBytes):
		return failure.New(failure.Throttled, ReasonFlowControl, err)
	}
	return grpcerr.Classify(err)
}

// Close flushes pending publishes and stops the publisher's goroutines.
func (p *Publisher) Close() {
	p.p.Stop()
}
