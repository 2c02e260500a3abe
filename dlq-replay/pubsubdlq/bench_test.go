package pubsubdlq_test

import (
	"context"
	"strconv"
	"testing"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"

	"imgpipe/dlq-replay/pubsubdlq"
	"imgpipe/dlq-replay/replay"
	"imgpipe/dlq-replay/replaytest"
	"imgpipe/internal/localstack"
	"imgpipe/internal/stacktest"
	"imgpipe/pkg/failure"
)

// BenchmarkReplay moves messages from the dead-letter subscription to a topic on the Pub/Sub
// emulator batched (Pull/Publish/Acknowledge of 10) and one at a time, and reports messages
// per second. The destination topic has no subscription, so nothing needs draining.
func BenchmarkReplay(b *testing.B) {
	const perOp = 100
	st := stacktest.Get(b)
	res := stacktest.Bootstrap(b, st, localstack.Resources{})
	ctx := context.Background()
	client, err := pubsub.NewClient(ctx, st.ProjectID)
	if err != nil {
		b.Fatal(err)
	}
	defer client.Close()
	sink := pubsubdlq.FullName(st.ProjectID, "topics", stacktest.Unique("bench-sink"))
	if _, err := client.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: sink}); err != nil {
		b.Fatal(err)
	}
	seed := pubsubdlq.NewTopic(client.TopicAdminClient, res.DeadLetterTopicName)
	src := pubsubdlq.NewSubscription(client.SubscriptionAdminClient, res.DeadLetterSubscriptionName, nil)
	dst := pubsubdlq.NewTopic(client.TopicAdminClient, sink)
	msgs := make([]*replay.Message, perOp)
	for i := range msgs {
		msgs[i] = replaytest.Msg(b, "upload/bench/"+strconv.Itoa(i)+".jpg", "IndexUnavailable", failure.Transient, 0)
	}
	for _, mode := range []struct {
		name  string
		batch int
	}{{"batched", 10}, {"one-at-a-time", 1}} {
		b.Run(mode.name, func(b *testing.B) {
			moved := 0
			for b.Loop() {
				b.StopTimer()
				if n, err := replay.Send(ctx, seed, msgs, 10); err != nil || n != perOp {
					b.Fatalf("seed: %d %v", n, err)
				}
				b.StartTimer()
				sum, err := replay.Run(ctx, src, dst, &replay.Options{Batch: mode.batch, Max: perOp})
				if err != nil || sum.Moved != perOp {
					b.Fatalf("replay %+v: %v", sum, err)
				}
				moved += sum.Moved
			}
			b.ReportMetric(float64(moved)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}
