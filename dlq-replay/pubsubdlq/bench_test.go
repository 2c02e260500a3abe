package pubsubdlq_test

import (
	"context"
	"testing"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"

	"imgpipe/dlq-replay/pubsubdlq"
	"imgpipe/dlq-replay/replaytest"
	"imgpipe/internal/devstack"
	"imgpipe/internal/stacktest"
	"imgpipe/pkg/queue/pubsubqueue"
)

// BenchmarkReplay moves messages from the dead-letter subscription to a topic on the Pub/Sub
// emulator batched (Pull/Publish/Acknowledge of 10) and one at a time, and reports messages
// per second. The destination topic has no subscription, so nothing needs draining.
func BenchmarkReplay(b *testing.B) {
	const perOp = 100
	st := stacktest.Get(b)
	res := stacktest.Bootstrap(b, st, devstack.Resources{})
	ctx := context.Background()
	client, err := pubsub.NewClient(ctx, st.ProjectID)
	if err != nil {
		b.Fatal(err)
	}
	defer client.Close()
	sink := pubsubqueue.FullName(st.ProjectID, "topics", stacktest.Unique("bench-sink"))
	if _, err := client.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: sink}); err != nil {
		b.Fatal(err)
	}
	seed := pubsubqueue.NewTopic(client.TopicAdminClient, res.DeadLetterTopicName)
	src := pubsubdlq.NewSubscription(client.SubscriptionAdminClient, res.DeadLetterSubscriptionName, nil)
	dst := pubsubqueue.NewTopic(client.TopicAdminClient, sink)
	replaytest.Bench(b, perOp, seed, src, dst, nil)
}
