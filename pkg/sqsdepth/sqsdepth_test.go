package sqsdepth_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"imgpipe/internal/devstack"
	"imgpipe/internal/stacktest"
	"imgpipe/pkg/failure"
	"imgpipe/pkg/sqsdepth"
)

func TestMain(m *testing.M) { stacktest.Main(m, devstack.SQS) }

// Each of the three counts is read from the attribute that carries it: four messages, one of
// them then received (in flight), and two sent with a delay; the three counts differ.
func TestReadCountsEachState(t *testing.T) {
	st := stacktest.Get(t)
	client := st.NewSQSClient()
	ctx := context.Background()
	q, err := client.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(stacktest.Unique("depth"))})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		in := &sqs.SendMessageInput{QueueUrl: q.QueueUrl, MessageBody: aws.String("m")}
		if i >= 4 {
			in.DelaySeconds = 900
		}
		if _, err := client.SendMessage(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	got, err := client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: q.QueueUrl, MaxNumberOfMessages: 1, VisibilityTimeout: 300})
	if err != nil || len(got.Messages) != 1 {
		t.Fatalf("receive: %v, %d messages", err, len(got.Messages))
	}
	want := sqsdepth.Depth{Visible: 3, NotVisible: 1, Delayed: 2}
	stacktest.WaitFor(t, "the depth to settle", 20*time.Second, func() (bool, string) {
		d, err := sqsdepth.Read(ctx, client, aws.ToString(q.QueueUrl))
		if err != nil {
			t.Fatal(err)
		}
		return d == want, fmt.Sprintf("%+v, want %+v", d, want)
	})
}

func TestReadMissingQueueIsPermanent(t *testing.T) {
	st := stacktest.Get(t)
	client := st.NewSQSClient()
	url := st.SQSEndpoint + "/" + devstack.AccountID + "/" + stacktest.Unique("none")
	_, err := sqsdepth.Read(context.Background(), client, url)
	if !failure.IsPermanent(err) || failure.ReasonOf(err) != "QueueDoesNotExist" {
		t.Fatalf("missing queue: %v (class %v, reason %q), want permanent QueueDoesNotExist", err, failure.ClassOf(err), failure.ReasonOf(err))
	}
}
