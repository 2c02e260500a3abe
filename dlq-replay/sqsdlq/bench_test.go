package sqsdlq_test

import (
	"context"
	"strconv"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"imgpipe/dlq-replay/replay"
	"imgpipe/dlq-replay/replaytest"
	"imgpipe/dlq-replay/sqsdlq"
	"imgpipe/internal/localstack"
	"imgpipe/internal/stacktest"
	"imgpipe/pkg/failure"
)

// BenchmarkReplay moves the same number of messages from a DLQ to its queue on the SQS
// stand-in batched (ReceiveMessage/SendMessageBatch/DeleteMessageBatch of 10) and one at a
// time, in one run, and reports messages per second.
//
//	go test -run '^$' -bench Replay -benchtime 3x ./dlq-replay/sqsdlq/
func BenchmarkReplay(b *testing.B) {
	const perOp = 200
	st := stacktest.Get(b)
	res := stacktest.Bootstrap(b, st, localstack.Resources{})
	c := st.NewSQSClient()
	ctx := context.Background()
	src := sqsdlq.New(c, res.DLQURL, nil)
	dst := sqsdlq.NewRouter(c, res.QueueURL, nil)
	msgs := make([]*replay.Message, perOp)
	for i := range msgs {
		msgs[i] = replaytest.Msg(b, "upload/bench/"+strconv.Itoa(i)+".jpg", "VisionUnavailable", failure.Transient, 0)
	}
	for _, mode := range []struct {
		name  string
		batch int
	}{{"batched", 10}, {"one-at-a-time", 1}} {
		b.Run(mode.name, func(b *testing.B) {
			moved := 0
			for b.Loop() {
				b.StopTimer()
				if n, err := replay.Send(ctx, src, msgs, 10); err != nil || n != perOp {
					b.Fatalf("seed: %d %v", n, err)
				}
				b.StartTimer()
				sum, err := replay.Run(ctx, src, dst, &replay.Options{Batch: mode.batch, Max: perOp})
				if err != nil || sum.Moved != perOp {
					b.Fatalf("replay %+v: %v", sum, err)
				}
				moved += sum.Moved
				b.StopTimer()
				if _, err := c.PurgeQueue(ctx, purge(res.QueueURL)); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(moved)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

func purge(url string) *sqs.PurgeQueueInput { return &sqs.PurgeQueueInput{QueueUrl: &url} }
