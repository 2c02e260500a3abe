// Package sqsdepth reads an SQS queue's approximate depth: the one GetQueueAttributes call the
// analyzer's autoscaler and metrics and the console's pipeline panel share.
//
// SQS tells the number of messages visible, in flight and delayed. It does not tell the age of
// the oldest message through its API (ApproximateAgeOfOldestMessage is a CloudWatch metric
// only), so Depth has no such field.
package sqsdepth

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"imgpipe/pkg/failure"
)

// Depth is a queue's approximate depth.
type Depth struct {
	Visible    int `json:"visible"`  // ApproximateNumberOfMessages: waiting to be received
	NotVisible int `json:"inFlight"` // ApproximateNumberOfMessagesNotVisible: received, not deleted
	Delayed    int `json:"delayed"`  // ApproximateNumberOfMessagesDelayed: not yet deliverable
}

// Read returns the approximate depth of the queue at url. A queue that does not exist is a
// permanent error (reason QueueDoesNotExist); other errors are left transient.
func Read(ctx context.Context, client *sqs.Client, url string) (Depth, error) {
	out, err := client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: &url,
		AttributeNames: []types.QueueAttributeName{
			types.QueueAttributeNameApproximateNumberOfMessages,
			types.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
			types.QueueAttributeNameApproximateNumberOfMessagesDelayed,
		},
	})
	if err != nil {
		var missing *types.QueueDoesNotExist
		if errors.As(err, &missing) {
			return Depth{}, failure.New(failure.Permanent, "QueueDoesNotExist", fmt.Errorf("queue depth of %s: %w", url, err))
		}
		return Depth{}, fmt.Errorf("queue depth of %s: %w", url, err)
	}
	num := func(n types.QueueAttributeName) int {
		v, _ := strconv.Atoi(out.Attributes[string(n)])
		return v
	}
	return Depth{
		Visible:    num(types.QueueAttributeNameApproximateNumberOfMessages),
		NotVisible: num(types.QueueAttributeNameApproximateNumberOfMessagesNotVisible),
		Delayed:    num(types.QueueAttributeNameApproximateNumberOfMessagesDelayed),
	}, nil
}
