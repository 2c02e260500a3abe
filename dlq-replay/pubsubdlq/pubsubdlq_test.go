package pubsubdlq_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"

	"imgpipe/dlq-replay/pubsubdlq"
	"imgpipe/dlq-replay/replay"
	"imgpipe/dlq-replay/replaytest"
	"imgpipe/internal/devstack"
	"imgpipe/internal/stacktest"
	"imgpipe/pkg/failure"
	"imgpipe/pkg/queue"
	"imgpipe/pkg/queue/pubsubqueue"
)

func TestMain(m *testing.M) { stacktest.Main(m, devstack.PubSub) }

type harness struct{}

func (harness) NewEnv(t *testing.T) *replaytest.Env {
	st := stacktest.Get(t)
	b := stacktest.Bootstrap(t, st, devstack.Resources{})
	client, err := pubsub.NewClient(context.Background(), st.ProjectID)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	return &replaytest.Env{
		DLQ:     pubsubdlq.NewSubscription(client.SubscriptionAdminClient, b.DeadLetterSubscriptionName, nil),
		Seed:    pubsubqueue.NewTopic(client.TopicAdminClient, b.DeadLetterTopicName),
		Dest:    pubsubqueue.NewTopic(client.TopicAdminClient, b.TopicName),
		DestSrc: pubsubdlq.NewSubscription(client.SubscriptionAdminClient, b.SubscriptionName, nil),
		Hold:    2 * time.Second,
		MaxHold: pubsubqueue.MaxHold,
	}
}

func TestBehaviour(t *testing.T) { replaytest.Run(t, harness{}) }

// A message that Pub/Sub itself dead-letters (nacked MaxDeliveryAttempts times) is read from
// the dead-letter subscription and replayed to the topic like any other.
func TestRealDeadLetteringThenReplay(t *testing.T) {
	st := stacktest.Get(t)
	b := stacktest.Bootstrap(t, st, devstack.Resources{})
	ctx := context.Background()
	client, err := pubsub.NewClient(ctx, st.ProjectID)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	topic := pubsubqueue.NewTopic(client.TopicAdminClient, b.TopicName)
	sub := pubsubqueue.NewSubscription(client.SubscriptionAdminClient, b.SubscriptionName, nil)
	dl := pubsubdlq.NewSubscription(client.SubscriptionAdminClient, b.DeadLetterSubscriptionName, nil)
	m := replaytest.Msg(t, "upload/poison.jpg", "IndexUnavailable", failure.Transient, 0)
	if n, err := replay.Send(ctx, topic, []*replay.Message{m}, 10); n != 1 || err != nil {
		t.Fatalf("publish: %v", err)
	}
	var dead []*replay.Message
	deadline := time.Now().Add(60 * time.Second)
	for len(dead) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("Pub/Sub never dead-lettered the nacked message")
		}
		got, err := sub.Receive(ctx, 10, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if err := errors.Join(sub.Release(ctx, got)...); err != nil { // nack: one more failed delivery
			t.Fatal(err)
		}
		if _, err := replay.Scan(ctx, dl, nil, func(m *replay.Message) error { dead = append(dead, m); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	if replay.Key(dead[0]) != "upload/poison.jpg" || dead[0].Failure().Reason != "IndexUnavailable" {
		t.Fatalf("dead letter %+v", dead[0])
	}
	if dead[0].ReceiveCount != b.MaxDeliveryAttempts {
		t.Fatalf("receive count %d, want the %d deliveries Pub/Sub records (%s)", dead[0].ReceiveCount, b.MaxDeliveryAttempts, pubsubqueue.AttrSourceDeliveryCount)
	}
	sum, err := replay.Run(ctx, dl, topic, nil)
	if err != nil || sum.Moved != 1 {
		t.Fatalf("replay %+v: %v", sum, err)
	}
	var back []*replay.Message
	for deadline := time.Now().Add(30 * time.Second); len(back) == 0 && time.Now().Before(deadline); {
		if _, _, err := replay.Drain(ctx, sub, nil, false, func(ms []*replay.Message) error { back = append(back, ms...); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	if len(back) != 1 || back[0].Failure().ReplayCount != 1 {
		t.Fatalf("replayed to the topic: %v", back)
	}
}

// Pub/Sub documents that a Pull may come back empty when no message could be returned before
// the request's deadline, backlog or not: one empty Pull does not prove the subscription empty,
// so it must not end a pass. The first Pull here runs out of time on the client (a real
// DeadlineExceeded from gRPC); the scan must still see every message.
func TestOneEmptyPullIsNotTheEnd(t *testing.T) {
	st := stacktest.Get(t)
	b := stacktest.Bootstrap(t, st, devstack.Resources{})
	client, err := pubsub.NewClient(context.Background(), st.ProjectID)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	var seed []*queue.Message
	for i := range 5 {
		seed = append(seed, replaytest.Msg(t, fmt.Sprintf("upload/dl/%d.jpg", i), "IndexUnavailable", failure.Transient, 0))
	}
	if err := errors.Join(pubsubqueue.NewTopic(client.TopicAdminClient, b.DeadLetterTopicName).Send(context.Background(), seed)...); err != nil {
		t.Fatalf("seed: %v", err)
	}
	var pulls atomic.Int32
	dl := pubsubdlq.NewSubscription(stacktest.InterceptedSubscriptions(t, st, stacktest.ExpireFirstPull(&pulls)), b.DeadLetterSubscriptionName, nil)
	seen := 0
	if _, err := replay.Scan(context.Background(), dl, nil, func(*replay.Message) error { seen++; return nil }); err != nil {
		t.Fatal(err)
	}
	if seen != 5 {
		t.Fatalf("scan saw %d of 5 after one timed-out Pull (%d pulls)", seen, pulls.Load())
	}
}
