package pubsubdlq_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	vkit "cloud.google.com/go/pubsub/v2/apiv1"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"imgpipe/dlq-replay/pubsubdlq"
	"imgpipe/dlq-replay/replay"
	"imgpipe/dlq-replay/replaytest"
	"imgpipe/internal/devstack"
	"imgpipe/internal/stacktest"
	"imgpipe/pkg/failure"
)

func TestMain(m *testing.M) { stacktest.Main(m, devstack.PubSub) }

type harness struct{}

func (harness) NewEnv(t *testing.T) *replaytest.Env {
	st := stacktest.Get(t)
	b := stacktest.Bootstrap(t, st, devstack.Resources{})
	client, err := pubsub.NewClient(context.Background(), st.ProjectID)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	return &replaytest.Env{
		DLQ:     pubsubdlq.NewSubscription(client.SubscriptionAdminClient, b.DeadLetterSubscriptionName, nil),
		Seed:    pubsubdlq.NewTopic(client.TopicAdminClient, b.DeadLetterTopicName),
		Dest:    pubsubdlq.NewTopic(client.TopicAdminClient, b.TopicName),
		DestSrc: pubsubdlq.NewSubscription(client.SubscriptionAdminClient, b.SubscriptionName, nil),
		Hold:    2 * time.Second,
		MaxHold: pubsubdlq.MaxHold,
	}
}

func TestBehaviour(t *testing.T) { replaytest.Run(t, harness{}) }

func TestFullName(t *testing.T) {
	for _, c := range []struct{ kind, in, want string }{
		{"topics", "t", "projects/p/topics/t"},
		{"subscriptions", "projects/q/subscriptions/s", "projects/q/subscriptions/s"},
	} {
		if got := pubsubdlq.FullName("p", c.kind, c.in); got != c.want {
			t.Errorf("FullName(p, %s, %s) = %s, want %s", c.kind, c.in, got, c.want)
		}
	}
}

// A message that Pub/Sub itself dead-letters (nacked MaxDeliveryAttempts times) is read from
// the dead-letter subscription and replayed to the topic like any other.
func TestRealDeadLetteringThenReplay(t *testing.T) {
	st := stacktest.Get(t)
	b := stacktest.Bootstrap(t, st, devstack.Resources{})
	ctx := context.Background()
	client, err := pubsub.NewClient(ctx, st.ProjectID)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	topic := pubsubdlq.NewTopic(client.TopicAdminClient, b.TopicName)
	sub := pubsubdlq.NewSubscription(client.SubscriptionAdminClient, b.SubscriptionName, nil)
	dl := pubsubdlq.NewSubscription(client.SubscriptionAdminClient, b.DeadLetterSubscriptionName, nil)
	m := replaytest.Msg(t, "upload/poison.jpg", "IndexUnavailable", failure.Transient, 0)
	if n, err := replay.Send(ctx, topic, []*replay.Message{m}, 10); n != 1 || err != nil {
		t.Fatalf("publish: %v", err)
	}
	var dead []*replay.Message
	deadline := time.Now().Add(60 * time.Second)
	for len(dead) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("Pub/Sub never dead-lettered the nacked message")
		}
		got, err := sub.Receive(ctx, 10, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if err := errors.Join(sub.Release(ctx, got)...); err != nil { // nack: one more failed delivery
			t.Fatal(err)
		}
		if _, err := replay.Scan(ctx, dl, nil, func(m *replay.Message) error { dead = append(dead, m); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	if replay.Key(dead[0]) != "upload/poison.jpg" || dead[0].Failure().Reason != "IndexUnavailable" {
		t.Fatalf("dead letter %+v", dead[0])
	}
	if dead[0].ReceiveCount != b.MaxDeliveryAttempts {
		t.Fatalf("receive count %d, want the %d deliveries Pub/Sub records (%s)", dead[0].ReceiveCount, b.MaxDeliveryAttempts, pubsubdlq.AttrSourceDeliveryCount)
	}
	sum, err := replay.Run(ctx, dl, topic, nil)
	if err != nil || sum.Moved != 1 {
		t.Fatalf("replay %+v: %v", sum, err)
	}
	var back []*replay.Message
	for deadline := time.Now().Add(30 * time.Second); len(back) == 0 && time.Now().Before(deadline); {
		if _, _, err := replay.Drain(ctx, sub, nil, false, func(ms []*replay.Message) error { back = append(back, ms...); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	if len(back) != 1 || back[0].Failure().ReplayCount != 1 {
		t.Fatalf("replayed to the topic: %v", back)
	}
}

// faultyClient returns a subscription admin client of the real SDK, connected to the emulator,
// whose calls pass through intercept before they go out (failure injection at the transport).
func faultyClient(t *testing.T, st *devstack.Stack, intercept grpc.UnaryClientInterceptor) *vkit.SubscriptionAdminClient {
	t.Helper()
	c, err := vkit.NewSubscriptionAdminClient(context.Background(),
		option.WithEndpoint(st.PubSubHost), option.WithoutAuthentication(),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())),
		option.WithGRPCDialOption(grpc.WithUnaryInterceptor(intercept)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func seedDeadLetters(t *testing.T, st *devstack.Stack, b *devstack.Bootstrapped, n int) {
	t.Helper()
	client, err := pubsub.NewClient(context.Background(), st.ProjectID)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	var msgs []*replay.Message
	for i := range n {
		msgs = append(msgs, replaytest.Msg(t, fmt.Sprintf("upload/dl/%d.jpg", i), "IndexUnavailable", failure.Transient, 0))
	}
	if sent, err := replay.Send(context.Background(), pubsubdlq.NewTopic(client.TopicAdminClient, b.DeadLetterTopicName), msgs, 10); err != nil || sent != n {
		t.Fatalf("seed: %d of %d: %v", sent, n, err)
	}
}

// A ModifyAckDeadline that fails after a Pull leaves the messages leased only for the
// subscription's ack deadline: Receive must say so, not hand out messages on a lease shorter
// than asked, and must give them back.
func TestReceiveReportsAFailedLeaseExtension(t *testing.T) {
	st := stacktest.Get(t)
	b := stacktest.Bootstrap(t, st, devstack.Resources{})
	seedDeadLetters(t, st, b, 3)
	refuse := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if r, ok := req.(*pubsubpb.ModifyAckDeadlineRequest); ok && r.AckDeadlineSeconds > 0 {
			return status.Error(codes.PermissionDenied, "injected: modifyAckDeadline refused")
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	sub := pubsubdlq.NewSubscription(faultyClient(t, st, refuse), b.DeadLetterSubscriptionName, nil)
	msgs, err := sub.Receive(context.Background(), 10, time.Minute)
	if err == nil {
		t.Fatalf("Receive handed out %d messages on a lease it could not set, and no error", len(msgs))
	}
	if !failure.IsSetup(err) || failure.ReasonOf(err) != "PermissionDenied" {
		t.Errorf("error %v: want it classified a setup fault (PermissionDenied), which ends a pass at once", err)
	}
	// Nothing lost: the messages are receivable again at once (nacked), not after the
	// subscription's ack deadline.
	client, err := pubsub.NewClient(context.Background(), st.ProjectID)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	n := 0
	if _, err := replay.Scan(context.Background(), pubsubdlq.NewSubscription(client.SubscriptionAdminClient, b.DeadLetterSubscriptionName, nil), nil, func(*replay.Message) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Fatalf("after the failed receive a scan sees %d of 3", n)
	}
}

// Pub/Sub documents that a Pull may come back empty when no message could be returned before
// the request's deadline, backlog or not: one empty Pull does not prove the subscription empty.
// The first Pull here runs out of time on the client (a real DeadlineExceeded from gRPC).
func TestOneEmptyPullIsNotTheEnd(t *testing.T) {
	st := stacktest.Get(t)
	b := stacktest.Bootstrap(t, st, devstack.Resources{})
	seedDeadLetters(t, st, b, 5)
	var pulls atomic.Int32
	late := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if _, ok := req.(*pubsubpb.PullRequest); ok && pulls.Add(1) == 1 {
			expired, cancel := context.WithTimeout(ctx, time.Nanosecond)
			defer cancel()
			<-expired.Done()
			return invoker(expired, method, req, reply, cc, opts...)
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	sub := pubsubdlq.NewSubscription(faultyClient(t, st, late), b.DeadLetterSubscriptionName, nil)
	n := 0
	if _, err := replay.Scan(context.Background(), sub, nil, func(*replay.Message) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if n != 5 {
		t.Fatalf("scan saw %d of 5 after one timed-out Pull (%d pulls)", n, pulls.Load())
	}
}
