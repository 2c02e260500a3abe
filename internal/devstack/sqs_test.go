package devstack_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"imgpipe/internal/devstack"
	"imgpipe/internal/stacktest"
)

// A message whose visibility timeout ended counts as visible again in the queue's depth even
// when nobody receives: the depth is what the autoscalers, KEDA and the tests read. fauxqs
// alone moves such messages back only while a receive waits; the stack's wrapper runs its
// timers on their own.
func TestExpiredVisibilityShowsInDepthWithoutReceive(t *testing.T) {
	st := stacktest.Require(t, devstack.SQS)
	c := st.NewSQSClient()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	q, err := c.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(stacktest.Unique("expiry"))})
	if err != nil {
		t.Fatal(err)
	}
	url := aws.ToString(q.QueueUrl)
	if _, err := c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String("m")}); err != nil {
		t.Fatal(err)
	}
	out, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), VisibilityTimeout: 10, WaitTimeSeconds: 1}) // long enough that the depth below is read before it ends, under load
	if err != nil || len(out.Messages) != 1 {
		t.Fatalf("receive: %v, %d messages", err, len(out.Messages))
	}
	depth := func() (visible, inFlight string) {
		a, err := c.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(url),
			AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessages, sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible}})
		if err != nil {
			t.Fatal(err)
		}
		return a.Attributes[string(sqstypes.QueueAttributeNameApproximateNumberOfMessages)], a.Attributes[string(sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible)]
	}
	if v, f := depth(); v != "0" || f != "1" {
		t.Fatalf("right after the receive: %s visible, %s in flight; want 0 and 1", v, f)
	}
	stacktest.WaitFor(t, "the message visible again without a receive", 45*time.Second, func() (bool, string) {
		v, f := depth()
		return v == "1" && f == "0", fmt.Sprintf("%s visible, %s in flight", v, f)
	})
}
