package sqsqueue_test

import (
	"context"
	"errors"
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

// A batch SQS refuses as a whole (BatchRequestTooLong: ten messages that fit one by one but
// not together) is sent again one message at a time, and every message arrives.
func TestSendRefusedBatchOneByOne(t *testing.T) {
	st := stacktest.Get(t)
	calls := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "calls_total"}, []string{"op"})
	client := sqs.NewFromConfig(st.AWSConfig(), func(o *sqs.Options) {
		o.BaseEndpoint = aws.String(st.SQSEndpoint)
		o.APIOptions = append(o.APIOptions, awsclient.CountCalls(calls))
	})
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
