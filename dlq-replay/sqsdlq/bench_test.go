package sqsdlq_test

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"imgpipe/dlq-replay/replaytest"
	"imgpipe/dlq-replay/sqsdlq"
	"imgpipe/internal/devstack"
	"imgpipe/internal/stacktest"
)

// BenchmarkReplay moves the same number of messages from a DLQ to its queue on the SQS
// stand-in batched (ReceiveMessage/SendMessageBatch/DeleteMessageBatch of 10) and one at a
// time, in one run, and reports messages per second.
//
//	go test -run '^$' -bench Replay -benchtime 3x ./dlq-replay/sqsdlq/
func BenchmarkReplay(b *testing.B) {
	const perOp = 200
	st := stacktest.Get(b)
	res := stacktest.Bootstrap(b, st, devstack.Resources{})
	c := st.NewSQSClient()
	ctx := context.Background()
	src := sqsdlq.New(c, res.DLQURL, nil)
	dst := sqsdlq.NewRouter(c, res.QueueURL, nil)
	replaytest.Bench(b, perOp, src, src, dst, func() {
		if _, err := c.PurgeQueue(ctx, &sqs.PurgeQueueInput{QueueUrl: &res.QueueURL}); err != nil {
			b.Fatal(err)
		}
	})
}
