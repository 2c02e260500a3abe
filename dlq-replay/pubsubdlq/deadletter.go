// Package pubsubdlq is dlq-replay's Pub/Sub edge: a dead-letter subscription as a
// replay.Source, the pipeline's Pub/Sub driver (pkg/queue/pubsubqueue) with two rules of
// dlq-replay's own: the subscription counts as empty only after EmptyPulls empty Pulls in a
// row, and the receive count of a dead letter is how often its source subscription delivered
// it. Topics are pubsubqueue.Topic as they are.
package pubsubdlq

import (
	"context"
	"strconv"
	"time"

	vkit "cloud.google.com/go/pubsub/v2/apiv1"

	"imgpipe/dlq-replay/replay"
	"imgpipe/pkg/queue/pubsubqueue"
)

// EmptyPulls is how many Pulls in a row must come back empty before Receive answers none, which
// ends a pass: Pub/Sub answers a Pull with no message when none could be returned before the
// request's deadline, whether or not there is a backlog, so one empty Pull proves nothing.
const EmptyPulls = 3

// Subscription is a dead-letter subscription as a replay.Source.
type Subscription struct {
	*pubsubqueue.Subscription
}

// NewSubscription returns the dead-letter subscription name (projects/P/subscriptions/S).
func NewSubscription(client *vkit.SubscriptionAdminClient, name string, opts *pubsubqueue.Options) *Subscription {
	return &Subscription{pubsubqueue.NewSubscription(client, name, opts)}
}

// Receive implements replay.Source: the driver's Receive (one Pull, bounded by the
// subscription's wait) until one brings messages, fails, or EmptyPulls in a row brought none
// (then none, and no error: the subscription counts as empty). A message without a delivery
// attempt (the dead-letter subscription usually has no dead-letter policy of its own) counts
// the deliveries Pub/Sub recorded on it when it dead-lettered it
// (pubsubqueue.AttrSourceDeliveryCount).
func (s *Subscription) Receive(ctx context.Context, n int, hold time.Duration) ([]*replay.Message, error) {
	var msgs []*replay.Message
	var err error
	for range EmptyPulls {
		if msgs, err = s.Subscription.Receive(ctx, n, hold); err != nil || len(msgs) > 0 {
			break
		}
	}
	for _, m := range msgs {
		if m.ReceiveCount == 0 {
			m.ReceiveCount, _ = strconv.Atoi(m.Attributes[pubsubqueue.AttrSourceDeliveryCount].String)
		}
	}
	return msgs, err
}
