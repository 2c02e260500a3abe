package pubsubdlq_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"

	"imgpipe/dlq-replay/pubsubdlq"
	"imgpipe/dlq-replay/replay"
	"imgpipe/dlq-replay/replaytest"
	"imgpipe/internal/devstack"
	"imgpipe/internal/stacktest"
	"imgpipe/pkg/failure"
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
