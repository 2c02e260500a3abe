// Package pubsubdlq is dlq-replay's Pub/Sub edge: a dead-letter subscription as a
// replay.Source, the pipeline's Pub/Sub driver (pkg/queue/pubsubqueue) with one rule of
// dlq-replay's own: the receive count of a dead letter is how often its source subscription
// delivered it. Topics are pubsubqueue.Topic as they are.
package pubsubdlq

import (
	"context"
	"strconv"
	"time"

	vkit "cloud.google.com/go/pubsub/v2/apiv1"

	"imgpipe/dlq-replay/replay"
	"imgpipe/pkg/queue/pubsubqueue"
)

// Subscription is a dead-letter subscription as a replay.Source.
type Subscription struct {
	*pubsubqueue.Subscription
}

// NewSubscription returns the dead-letter subscription name (projects/P/subscriptions/S).
func NewSubscription(client *vkit.SubscriptionAdminClient, name string, opts *pubsubqueue.Options) *Subscription {
	return &Subscription{pubsubqueue.NewSubscription(client, name, opts)}
}

// Receive implements replay.Source. A message without a delivery attempt (the dead-letter
// subscription usually has no dead-letter policy of its own) counts the deliveries Pub/Sub
// recorded on it when it dead-lettered it (pubsubqueue.AttrSourceDeliveryCount).
func (s *Subscription) Receive(ctx context.Context, n int, hold time.Duration) ([]*replay.Message, error) {
	msgs, err := s.Subscription.Receive(ctx, n, hold)
	for _, m := range msgs {
		if m.ReceiveCount == 0 {
			m.ReceiveCount, _ = strconv.Atoi(m.Attributes[pubsubqueue.AttrSourceDeliveryCount].String)
		}
	}
	return msgs, err
}
