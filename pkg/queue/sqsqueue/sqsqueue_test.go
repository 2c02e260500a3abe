package sqsqueue_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"imgpipe/internal/devstack"
	"imgpipe/internal/stacktest"
	"imgpipe/pkg/awsclient"
	"imgpipe/pkg/failure"
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
func (harness) Capabilities() queuetest.Capabilities {
	return queuetest.Capabilities{TypedAttributes: true, StaleHandleRefused: true, Depth: true}
}

func TestConformance(t *testing.T) { queuetest.Run(t, harness{}) }

// A batch SQS refuses as a whole (BatchRequestTooLong: ten messages that fit one by one but
// not together) is sent again one message at a time, and every message arrives.
func TestSendRefusedBatchOneByOne(t *testing.T) {
	st := stacktest.Get(t)
	calls := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "calls_total"}, []string{"op"})
	client := st.NewSQSClient(func(o *sqs.Options) { o.APIOptions = append(o.APIOptions, awsclient.CountCalls(calls)) })
	ctx := context.Background()
	out, err := client.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(stacktest.Unique("toolong"))})
	if err != nil {
		t.Fatal(err)
	}
	q, err := sqsqueue.New(client, aws.ToString(out.QueueUrl), &sqsqueue.Options{Wait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(strings.Repeat("x", 200<<10)) // 200 KiB: one fits, ten are over any batch limit
	msgs := make([]*queue.Message, queue.MaxBatch)
	for i := range msgs {
		msgs[i] = &queue.Message{ID: strconv.Itoa(i), Body: body}
	}
	if err := errors.Join(q.Send(ctx, msgs)...); err != nil {
		t.Fatalf("send: %v", err)
	}
	if n := testutil.ToFloat64(calls.WithLabelValues("SendMessageBatch")); n != 1 {
		t.Errorf("SendMessageBatch called %v times, want 1 (refused as a whole)", n)
	}
	if n := testutil.ToFloat64(calls.WithLabelValues("SendMessage")); n != queue.MaxBatch {
		t.Errorf("SendMessage called %v times, want %d (one per message after the refusal)", n, queue.MaxBatch)
	}
	if d, err := q.Depth(ctx); err != nil || d.Visible != queue.MaxBatch {
		t.Fatalf("depth %+v, %v; want %d visible", d, err, queue.MaxBatch)
	}
}

// Each of the three counts is read from the attribute that carries it: four messages, one of
// them then received (in flight), and two sent with a delay; the three counts differ.
func TestDepthCountsEachState(t *testing.T) {
	st := stacktest.Get(t)
	client := st.NewSQSClient()
	ctx := context.Background()
	out, err := client.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(stacktest.Unique("depth"))})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		in := &sqs.SendMessageInput{QueueUrl: out.QueueUrl, MessageBody: aws.String("m")}
		if i >= 4 {
			in.DelaySeconds = 900
		}
		if _, err := client.SendMessage(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	got, err := client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: out.QueueUrl, MaxNumberOfMessages: 1, VisibilityTimeout: 300})
	if err != nil || len(got.Messages) != 1 {
		t.Fatalf("receive: %v, %d messages", err, len(got.Messages))
	}
	q, err := sqsqueue.New(client, aws.ToString(out.QueueUrl), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := queue.Depth{Visible: 3, NotVisible: 1, Delayed: 2}
	stacktest.WaitFor(t, "the depth to settle", 20*time.Second, func() (bool, string) {
		d, err := q.Depth(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return d == want, fmt.Sprintf("%+v, want %+v", d, want)
	})
}

// The depth of a queue that does not exist is a setup fault (the AWS table's verdict: the
// queue URL is wrong), with the service's code as its reason.
func TestDepthOfMissingQueueIsSetupFault(t *testing.T) {
	st := stacktest.Get(t)
	q, err := sqsqueue.New(st.NewSQSClient(), st.SQSEndpoint+"/"+devstack.AccountID+"/"+stacktest.Unique("none"), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = q.Depth(context.Background())
	if !failure.IsSetup(err) || !strings.HasSuffix(failure.ReasonOf(err), "NonExistentQueue") && failure.ReasonOf(err) != "QueueDoesNotExist" {
		t.Fatalf("missing queue: %v (class %v, reason %q), want a setup fault QueueDoesNotExist", err, failure.ClassOf(err), failure.ReasonOf(err))
	}
}
