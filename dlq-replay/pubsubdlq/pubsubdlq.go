// Package pubsubdlq is dlq-replay's Pub/Sub edge: a dead-letter subscription as a
// replay.Source (unary Pull, ModifyAckDeadline, Acknowledge) and a topic as a replay.Sink
// (Publish).
package pubsubdlq

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	vkit "cloud.google.com/go/pubsub/v2/apiv1"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"imgpipe/dlq-replay/replay"
	"imgpipe/pkg/failure"
)

// AttrSourceDeliveryCount is the attribute Pub/Sub sets on a dead-lettered message: how many
// times its source subscription delivered it.
const AttrSourceDeliveryCount = "CloudPubSubDeadLetterSourceDeliveryCount"

// MaxHold is the longest lease Pub/Sub grants (ModifyAckDeadline's limit).
const MaxHold = 600 * time.Second

// Options configures a Subscription. A nil *Options means the defaults.
type Options struct {
	// Wait bounds one Pull; the subscription counts as empty after one empty pull. 0 means 2s.
	Wait time.Duration
}

// Subscription is a dead-letter subscription used as a replay.Source.
type Subscription struct {
	client *vkit.SubscriptionAdminClient
	name   string
	wait   time.Duration
}

// FullName returns projects/PROJECT/KIND/ID for an ID, or name unchanged when it is already
// a full name.
func FullName(project, kind, name string) string {
	if strings.HasPrefix(name, "projects/") {
		return name
	}
	return "projects/" + project + "/" + kind + "/" + name
}

// NewSubscription returns the subscription name (projects/P/subscriptions/S).
func NewSubscription(client *vkit.SubscriptionAdminClient, name string, opts *Options) *Subscription {
	w := 2 * time.Second
	if opts != nil && opts.Wait > 0 {
		w = opts.Wait
	}
	return &Subscription{client: client, name: name, wait: w}
}

// MaxAttributes implements replay.Source: Pub/Sub's 100 attributes never bind here.
func (s *Subscription) MaxAttributes() int { return 100 }

// Receive implements replay.Source.
func (s *Subscription) Receive(ctx context.Context, n int, hold time.Duration) ([]*replay.Message, error) {
	pctx, cancel := context.WithTimeout(ctx, s.wait)
	defer cancel()
	out, err := s.client.Pull(pctx, &pubsubpb.PullRequest{Subscription: s.name, MaxMessages: int32(min(max(n, 1), 10))})
	if err != nil {
		if ctx.Err() == nil && (errors.Is(err, context.DeadlineExceeded) || status.Code(err) == codes.DeadlineExceeded) {
			return nil, nil // nothing arrived within the wait: empty
		}
		return nil, classify(fmt.Errorf("pull %s: %w", s.name, err))
	}
	if len(out.ReceivedMessages) == 0 {
		return nil, nil
	}
	msgs := make([]*replay.Message, 0, len(out.ReceivedMessages))
	ids := make([]string, 0, len(out.ReceivedMessages))
	for _, rm := range out.ReceivedMessages {
		pm := rm.GetMessage()
		m := &replay.Message{
			ID: pm.GetMessageId(), Body: pm.GetData(), Handle: rm.GetAckId(),
			ReceiveCount: int(rm.GetDeliveryAttempt()), OrderingKey: pm.GetOrderingKey(),
		}
		if pm.GetPublishTime() != nil {
			m.SentAt = pm.GetPublishTime().AsTime().UTC()
		}
		if len(pm.GetAttributes()) > 0 {
			m.Attributes = make(map[string]replay.Attr, len(pm.GetAttributes()))
			for k, v := range pm.GetAttributes() {
				m.Attributes[k] = replay.Attr{DataType: replay.DataString, String: v}
			}
		}
		if m.ReceiveCount == 0 {
			// Pub/Sub records on a dead-lettered message how often its source subscription
			// delivered it; the dead-letter subscription itself has no delivery count.
			m.ReceiveCount, _ = strconv.Atoi(pm.GetAttributes()[AttrSourceDeliveryCount])
		}
		msgs = append(msgs, m)
		ids = append(ids, rm.GetAckId())
	}
	secs := int32(min(max(hold, time.Second), MaxHold) / time.Second)
	if err := s.client.ModifyAckDeadline(ctx, &pubsubpb.ModifyAckDeadlineRequest{Subscription: s.name, AckIds: ids, AckDeadlineSeconds: secs}); err != nil {
		// Still leased for the subscription's ack deadline; a short lease is no loss.
		return msgs, nil
	}
	return msgs, nil
}

func ackIDs(msgs []*replay.Message) []string {
	ids := make([]string, len(msgs))
	for i, m := range msgs {
		ids[i] = m.Handle
	}
	return ids
}

// Release implements replay.Source: a nack (ack deadline 0).
func (s *Subscription) Release(ctx context.Context, msgs []*replay.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	err := s.client.ModifyAckDeadline(ctx, &pubsubpb.ModifyAckDeadlineRequest{Subscription: s.name, AckIds: ackIDs(msgs), AckDeadlineSeconds: 0})
	if err != nil {
		return classify(fmt.Errorf("nack on %s: %w", s.name, err))
	}
	return nil
}

// Delete implements replay.Source: an acknowledgement of every message in one call, so all
// entries share its outcome.
func (s *Subscription) Delete(ctx context.Context, msgs []*replay.Message) []error {
	res := make([]error, len(msgs))
	if len(msgs) == 0 {
		return res
	}
	if err := s.client.Acknowledge(ctx, &pubsubpb.AcknowledgeRequest{Subscription: s.name, AckIds: ackIDs(msgs)}); err != nil {
		err = classify(fmt.Errorf("ack on %s: %w", s.name, err))
		for i := range res {
			res[i] = err
		}
	}
	return res
}

// Topic is a Pub/Sub topic used as a replay.Sink.
type Topic struct {
	client *vkit.TopicAdminClient
	name   string
}

// NewTopic returns the topic name (projects/P/topics/T).
func NewTopic(client *vkit.TopicAdminClient, name string) *Topic {
	return &Topic{client: client, name: name}
}

// Send implements replay.Sink: one Publish call, whose outcome every entry shares. Binary
// attributes (from an SQS export) are refused: Pub/Sub attributes are text.
func (t *Topic) Send(ctx context.Context, msgs []*replay.Message) []error {
	res := make([]error, len(msgs))
	var pms []*pubsubpb.PubsubMessage
	var idx []int
	for i, m := range msgs {
		pm := &pubsubpb.PubsubMessage{Data: m.Body, OrderingKey: m.OrderingKey}
		for k, a := range m.Attributes {
			if a.Binary != nil {
				res[i] = failure.Permanentf("BinaryAttribute", "message %s: binary attribute %q cannot go to Pub/Sub", m.ID, k)
				break
			}
			if pm.Attributes == nil {
				pm.Attributes = map[string]string{}
			}
			pm.Attributes[k] = a.String
		}
		if res[i] == nil {
			pms = append(pms, pm)
			idx = append(idx, i)
		}
	}
	if len(pms) == 0 {
		return res
	}
	out, err := t.client.Publish(ctx, &pubsubpb.PublishRequest{Topic: t.name, Messages: pms})
	if err == nil && len(out.GetMessageIds()) != len(pms) {
		err = fmt.Errorf("publish returned %d ids for %d messages", len(out.GetMessageIds()), len(pms))
	}
	if err != nil {
		err = classify(fmt.Errorf("publish to %s: %w", t.name, err))
		for _, i := range idx {
			res[i] = err
		}
	}
	return res
}

func classify(err error) error {
	switch status.Code(err) {
	case codes.NotFound:
		return failure.New(failure.Permanent, "NotFound", err)
	case codes.PermissionDenied, codes.Unauthenticated:
		return failure.New(failure.Permanent, "PermissionDenied", err)
	case codes.InvalidArgument:
		return failure.New(failure.Permanent, "InvalidArgument", err)
	case codes.ResourceExhausted:
		return failure.New(failure.Throttled, "ResourceExhausted", err)
	}
	return err
}
