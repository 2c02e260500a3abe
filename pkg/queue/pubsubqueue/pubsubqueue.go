// Package pubsubqueue is the Google Cloud Pub/Sub driver of pkg/queue: a subscription as a
// queue.Source (unary Pull, ModifyAckDeadline, Acknowledge over the SubscriptionAdminClient)
// and a topic as a queue.Sink (Publish over the TopicAdminClient). Errors are classified by
// the Google table (pkg/failure/grpcerr).
//
// What Pub/Sub is, and the driver does not hide: attributes are text only (every attribute
// comes back as queue.DataString; a Binary one is refused on Send); an ack ID from an earlier
// delivery is accepted without error by ModifyAckDeadline and Acknowledge (it changes
// nothing); there is no depth call (Depth answers queue.ErrNoDepth); and a Receive that
// answers none does not prove the subscription empty (see Receive).
package pubsubqueue

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	vkit "cloud.google.com/go/pubsub/v2/apiv1"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"imgpipe/pkg/config"
	"imgpipe/pkg/failure"
	"imgpipe/pkg/failure/grpcerr"
	"imgpipe/pkg/queue"
)

// AttrSourceDeliveryCount is the attribute Pub/Sub sets on a dead-lettered message: how many
// times its source subscription delivered it.
const AttrSourceDeliveryCount = "CloudPubSubDeadLetterSourceDeliveryCount"

// MaxHold is the longest lease Pub/Sub grants (ModifyAckDeadline's limit).
const MaxHold = 600 * time.Second

// BatchSize is the most messages a Subscription's calls take (queue.Batcher): a Pull asks
// for up to this many (Pub/Sub returns up to 1,000), an Acknowledge or ModifyAckDeadline
// carries this many ack IDs. Ten per Pull, as SQS takes, cost the indexer about a third of
// its throughput and twice its CPU per message (docs/indexer.md).
const BatchSize = 100

// Options configures a Subscription. A nil *Options means the defaults.
type Options struct {
	// Wait bounds one Pull (so one Receive). 0 means 2s.
	Wait time.Duration
}

// Subscription is a Pub/Sub subscription as a queue.Source.
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

// MaxAttributes is how many attributes Pub/Sub takes on one message.
const MaxAttributes = 100

// BatchSize implements queue.Batcher.
func (s *Subscription) BatchSize() int { return BatchSize }

// Name implements queue.Source: the subscription's full name.
func (s *Subscription) Name() string { return s.name }

// MaxAttributes returns how many attributes one message may carry (Pub/Sub's 100).
func (s *Subscription) MaxAttributes() int { return MaxAttributes }

// CheckHold implements queue.HoldChecker: Pub/Sub leases whole seconds from 1 s to MaxHold.
func (s *Subscription) CheckHold(hold time.Duration) error {
	_, err := leaseSeconds(hold)
	return err
}

// Depth implements queue.Source: Pub/Sub has no call that tells a subscription's backlog, so
// it answers queue.ErrNoDepth, classified permanent (the same call never succeeds).
func (s *Subscription) Depth(context.Context) (queue.Depth, error) {
	return queue.Depth{}, failure.New(failure.Permanent, "DepthUnsupported", fmt.Errorf("depth of %s: %w", s.name, queue.ErrNoDepth))
}

// DeadLetterTopic returns the topic the subscription's dead-letter policy forwards to (a full
// name), or "" when it has none.
func (s *Subscription) DeadLetterTopic(ctx context.Context) (string, error) {
	sub, err := s.client.GetSubscription(ctx, &pubsubpb.GetSubscriptionRequest{Subscription: s.name})
	if err != nil {
		return "", grpcerr.Classify(fmt.Errorf("get %s: %w", s.name, err))
	}
	return sub.GetDeadLetterPolicy().GetDeadLetterTopic(), nil
}

// leaseSeconds returns hold as the ack deadline Pub/Sub takes: whole seconds from 1 to 600.
// Anything else is refused, not rounded: a lease shorter than asked can run out under a batch.
func leaseSeconds(hold time.Duration) (int32, error) {
	if err := config.Seconds(hold, time.Second, MaxHold); err != nil {
		return 0, failure.New(failure.Permanent, "InvalidHold", fmt.Errorf("Pub/Sub lease: %w", err))
	}
	return int32(hold / time.Second), nil
}

// Receive implements queue.Source: one Pull of up to n messages, bounded by the wait, and what
// it returned; when it returned messages, a ModifyAckDeadline that sets their lease to hold.
// If that fails the messages would stay leased only for the subscription's ack deadline: they
// are nacked (best effort) and the failure returned.
//
// None, and no error, means that Pull brought nothing. On Pub/Sub that does not prove the
// subscription empty: a Pull comes back empty when no message could be returned before the
// request's deadline, whether or not there is a backlog. A caller for whom "none" ends
// something (dlq-replay's pass: dlq-replay/pubsubdlq) asks again before it believes it; a
// loop that receives until stopped (the indexer) just receives again, and its stop waits for
// at most one Pull.
//
// Each message's ID is Pub/Sub's message ID, Handle its ack ID, SentAt its publish time,
// OrderingKey its ordering key, and ReceiveCount Pub/Sub's delivery attempt (counted only on
// a subscription with a dead-letter policy; 0 otherwise). FirstReceivedAt stays zero.
func (s *Subscription) Receive(ctx context.Context, n int, hold time.Duration) ([]*queue.Message, error) {
	secs, err := leaseSeconds(hold)
	if err != nil {
		return nil, err
	}
	out, err := s.pull(ctx, n)
	if err != nil {
		return nil, err
	}
	if len(out.GetReceivedMessages()) == 0 {
		return nil, nil
	}
	msgs := make([]*queue.Message, 0, len(out.ReceivedMessages))
	for _, rm := range out.ReceivedMessages {
		pm := rm.GetMessage()
		m := &queue.Message{
			ID: pm.GetMessageId(), Body: pm.GetData(), Handle: rm.GetAckId(),
			ReceiveCount: int(rm.GetDeliveryAttempt()), OrderingKey: pm.GetOrderingKey(),
		}
		if pm.GetPublishTime() != nil {
			m.SentAt = pm.GetPublishTime().AsTime().UTC()
		}
		if len(pm.GetAttributes()) > 0 {
			m.Attributes = make(map[string]queue.Attr, len(pm.GetAttributes()))
			for k, v := range pm.GetAttributes() {
				m.Attributes[k] = queue.Attr{DataType: queue.DataString, String: v}
			}
		}
		msgs = append(msgs, m)
	}
	// The lease (and the nack if it fails) each have their own bound: a caller that lets a
	// receive run to its end at a stop (queue.Source) does not wait out the client's 60 s.
	lctx, cancel := context.WithTimeout(ctx, LeaseCallTimeout)
	defer cancel()
	if err := s.modify(lctx, msgs, secs, "lease"); err != nil {
		nctx, ncancel := context.WithTimeout(ctx, LeaseCallTimeout)
		defer ncancel()
		if nerr := s.modify(nctx, msgs, 0, "nack"); nerr != nil {
			err = errors.Join(err, nerr)
		}
		return nil, err
	}
	return msgs, nil
}

// LeaseCallTimeout bounds each ModifyAckDeadline that Receive makes after its Pull: the lease
// asked for, and the nack when that fails.
const LeaseCallTimeout = 15 * time.Second

// pull makes one Pull of up to n messages, bounded by the wait; one that runs out of time
// comes back empty.
func (s *Subscription) pull(ctx context.Context, n int) (*pubsubpb.PullResponse, error) {
	pctx, cancel := context.WithTimeout(ctx, s.wait)
	defer cancel()
	out, err := s.client.Pull(pctx, &pubsubpb.PullRequest{Subscription: s.name, MaxMessages: int32(min(max(n, 1), BatchSize))})
	if err != nil {
		if ctx.Err() == nil && (errors.Is(err, context.DeadlineExceeded) || status.Code(err) == codes.DeadlineExceeded) {
			return &pubsubpb.PullResponse{}, nil // nothing came within the wait
		}
		return nil, grpcerr.Classify(fmt.Errorf("pull %s: %w", s.name, err))
	}
	return out, nil
}

// Extend implements queue.Source: the ack deadline set to hold from now, in one call whose
// outcome every message shares.
func (s *Subscription) Extend(ctx context.Context, msgs []*queue.Message, hold time.Duration) []error {
	secs, err := leaseSeconds(hold)
	if err == nil {
		err = s.modify(ctx, msgs, secs, "extend")
	}
	return queue.Each(len(msgs), err)
}

func (s *Subscription) modify(ctx context.Context, msgs []*queue.Message, secs int32, what string) error {
	if len(msgs) == 0 {
		return nil
	}
	err := s.client.ModifyAckDeadline(ctx, &pubsubpb.ModifyAckDeadlineRequest{Subscription: s.name, AckIds: ackIDs(msgs), AckDeadlineSeconds: secs})
	if err != nil {
		return grpcerr.Classify(fmt.Errorf("%s on %s: %w", what, s.name, err))
	}
	return nil
}

func ackIDs(msgs []*queue.Message) []string {
	ids := make([]string, len(msgs))
	for i, m := range msgs {
		ids[i] = m.Handle
	}
	return ids
}

// Release implements queue.Source: a nack (ack deadline 0), in one call whose outcome every
// message shares.
func (s *Subscription) Release(ctx context.Context, msgs []*queue.Message) []error {
	return queue.Each(len(msgs), s.modify(ctx, msgs, 0, "nack"))
}

// Delete implements queue.Source: an acknowledgement of every message in one call, so all
// entries share its outcome.
func (s *Subscription) Delete(ctx context.Context, msgs []*queue.Message) []error {
	if len(msgs) == 0 {
		return nil
	}
	err := s.client.Acknowledge(ctx, &pubsubpb.AcknowledgeRequest{Subscription: s.name, AckIds: ackIDs(msgs)})
	if err != nil {
		err = grpcerr.Classify(fmt.Errorf("ack on %s: %w", s.name, err))
	}
	return queue.Each(len(msgs), err)
}

// Topic is a Pub/Sub topic as a queue.Sink.
type Topic struct {
	client *vkit.TopicAdminClient
	name   string
}

// NewTopic returns the topic name (projects/P/topics/T).
func NewTopic(client *vkit.TopicAdminClient, name string) *Topic {
	return &Topic{client: client, name: name}
}

// Send implements queue.Sink: one Publish call, whose outcome every entry shares. Binary
// attributes (from an SQS export) are refused: Pub/Sub attributes are text.
func (t *Topic) Send(ctx context.Context, msgs []*queue.Message) []error {
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
		err = grpcerr.Classify(fmt.Errorf("publish to %s: %w", t.name, err))
		for _, i := range idx {
			res[i] = err
		}
	}
	return res
}
