// Package publish sends analysis records to a Google Cloud Pub/Sub topic, with attributes and,
// when asked, one ordering key per object.
package publish

import (
	"context"
	"fmt"

	"cloud.google.com/go/pubsub/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"imgpipe/pkg/analysis"
	"imgpipe/pkg/failure"
)

// Publisher publishes records to one topic. It is safe for concurrent use.
type Publisher struct {
	p *pubsub.Publisher
}

// Options tunes the publisher. A nil *Options keeps the client's defaults.
type Options struct {
	// OrderingKeys publishes each record with its object's ordering key
	// (analysis.Record.OrderingKey), so that a subscription with message ordering enabled
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

// Publish sends rec and waits until the server has stored it, returning its message ID.
func (p *Publisher) Publish(ctx context.Context, rec *analysis.Record) (string, error) {
	body, err := analysis.Marshal(rec)
	if err != nil {
		return "", err
	}
	msg := &pubsub.Message{Data: body, Attributes: rec.Attributes()}
	if p.p.EnableMessageOrdering {
		msg.OrderingKey = rec.OrderingKey()
	}
	id, err := p.p.Publish(ctx, msg).Get(ctx)
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

// classify marks errors that retrying cannot fix as permanent; everything else is transient.
func classify(err error) error {
	switch status.Code(err) {
	case codes.InvalidArgument:
		return failure.New(failure.Permanent, "PublishRejected", err)
	case codes.NotFound, codes.PermissionDenied, codes.Unauthenticated:
		// The topic or the identity is misconfigured: not the message's fault, so retry (the
		// queue's redrive policy bounds it) and let the operator fix the configuration.
		return failure.New(failure.Transient, "PublishConfig", err)
	case codes.ResourceExhausted:
		return failure.New(failure.Throttled, "PublishThrottled", err)
	}
	return failure.New(failure.Transient, "PublishFailed", err)
}

// Close flushes pending publishes and stops the publisher's goroutines.
func (p *Publisher) Close() {
	p.p.Stop()
}
