package stacktest

import (
	"context"
	"fmt"
	"strconv"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// ReceiveDelete consumes n messages from queueURL the cheapest way, the queue's ceiling in
// the benchmarks: one loop of 10-message long polls, each batch deleted with one
// DeleteMessageBatch in the background. A failed receive is passed to onReceiveErr and the
// loop goes on (onReceiveErr may stop the test). It returns the messages received, the SQS
// calls made and the first failed delete (a failed call or failed entries).
func ReceiveDelete(ctx context.Context, client *sqs.Client, queueURL string, n int, onReceiveErr func(error)) (got int, calls int64, delErr error) {
	url := aws.String(queueURL)
	var wg sync.WaitGroup
	var mu sync.Mutex
	for got < n {
		out, err := client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl: url, MaxNumberOfMessages: 10, WaitTimeSeconds: 1, VisibilityTimeout: 30,
		})
		mu.Lock()
		calls++
		mu.Unlock()
		if err != nil {
			onReceiveErr(err)
			continue
		}
		got += len(out.Messages)
		if len(out.Messages) == 0 {
			continue
		}
		entries := make([]sqstypes.DeleteMessageBatchRequestEntry, len(out.Messages))
		for i, m := range out.Messages {
			entries[i] = sqstypes.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: m.ReceiptHandle}
		}
		wg.Go(func() {
			out, err := client.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: url, Entries: entries})
			mu.Lock()
			defer mu.Unlock()
			calls++
			if err == nil && len(out.Failed) > 0 {
				err = fmt.Errorf("%d entries failed, first %s", len(out.Failed), aws.ToString(out.Failed[0].Message))
			}
			if err != nil && delErr == nil {
				delErr = err
			}
		})
	}
	wg.Wait()
	return got, calls, delErr
}
