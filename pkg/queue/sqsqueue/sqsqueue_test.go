package sqsqueue_test

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"imgpipe/internal/devstack"
	"imgpipe/internal/stacktest"
	"imgpipe/pkg/queue"
	"imgpipe/pkg/queue/queuetest"
	"imgpipe/pkg/queue/sqsqueue"
)

func TestMain(m *testing.M) { stacktest.Main(m, devstack.SQS) }

// harness makes a fresh queue on the stack's SQS stand-in for each test.
type harness struct{}

func (harness) NewQueue(t *testing.T) (queue.Source, queue.Sink) {
	st := stacktest.Get(t)
	client := st.NewSQSClient()
	out, err := client.CreateQueue(context.Background(), &sqs.CreateQueueInput{QueueName: aws.String(stacktest.Unique("queuetest"))})
	if err != nil {
		t.Fatal(err)
	}
	q, err := sqsqueue.New(client, aws.ToString(out.QueueUrl), &sqsqueue.Options{Wait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return q, q
}
func (harness) Hold() time.Duration { return time.Second }
func (harness) Typed() bool         { return true }

func TestConformance(t *testing.T) { queuetest.Run(t, harness{}) }
