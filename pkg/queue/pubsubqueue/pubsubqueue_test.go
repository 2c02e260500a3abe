package pubsubqueue_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"imgpipe/internal/devstack"
	"imgpipe/internal/stacktest"
	"imgpipe/pkg/failure"
	"imgpipe/pkg/queue"
	"imgpipe/pkg/queue/pubsubqueue"
	"imgpipe/pkg/queue/queuetest"
)

func TestMain(m *testing.M) { stacktest.Main(m, devstack.PubSub) }

func newClient(t *testing.T, st *devstack.Stack) *pubsub.Client {
	t.Helper()
	client, err := pubsub.NewClient(context.Background(), st.ProjectID)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	return client
}

// harness makes a fresh topic and subscription on the emulator for each case. The
// subscription has a dead-letter policy (of 100 attempts, never reached here), since Pub/Sub
// counts delivery attempts only on such a subscription.
type harness struct{}

func (harness) NewQueue(t *testing.T) (queue.Source, queue.Sink) {
	st := stacktest.Get(t)
	b := stacktest.Bootstrap(t, st, devstack.Resources{MaxDeliveryAttempts: 100})
	client := newClient(t, st)
	sub := pubsubqueue.NewSubscription(client.SubscriptionAdminClient, b.SubscriptionName, &pubsubqueue.Options{Wait: time.Second})
	return sub, pubsubqueue.NewTopic(client.TopicAdminClient, b.TopicName)
}

// Hold is two seconds: Pub/Sub leases whole seconds, and a receive that finds nothing makes
// one pull of up to a second, which must end before the shortest lease the suite watches
// (three Holds).
func (harness) Hold() time.Duration { return 2 * time.Second }

// Capabilities: attributes are text, a stale ack ID is accepted, there is no depth call.
func (harness) Capabilities() queuetest.Capabilities { return queuetest.Capabilities{} }

func TestConformance(t *testing.T) { queuetest.Run(t, harness{}) }

func TestFullName(t *testing.T) {
	for _, c := range []struct{ kind, in, want string }{
		{"topics", "t", "projects/p/topics/t"},
		{"subscriptions", "projects/q/subscriptions/s", "projects/q/subscriptions/s"},
	} {
		if got := pubsubqueue.FullName("p", c.kind, c.in); got != c.want {
			t.Errorf("FullName(p, %s, %s) = %s, want %s", c.kind, c.in, got, c.want)
		}
	}
}

// DeadLetterTopic reads the subscription's dead-letter policy: the topic it names, "" on a
// subscription without one, and a classified setup fault for a subscription that does not
// exist.
func TestDeadLetterTopic(t *testing.T) {
	st := stacktest.Get(t)
	b := stacktest.Bootstrap(t, st, devstack.Resources{})
	client := newClient(t, st)
	ctx := context.Background()
	for _, c := range []struct{ sub, want string }{
		{b.SubscriptionName, b.DeadLetterTopicName},
		{b.DeadLetterSubscriptionName, ""},
	} {
		got, err := pubsubqueue.NewSubscription(client.SubscriptionAdminClient, c.sub, nil).DeadLetterTopic(ctx)
		if err != nil || got != c.want {
			t.Errorf("dead-letter topic of %s: %q, %v; want %q", c.sub, got, err, c.want)
		}
	}
	missing := pubsubqueue.FullName(st.ProjectID, "subscriptions", stacktest.Unique("none"))
	_, err := pubsubqueue.NewSubscription(client.SubscriptionAdminClient, missing, nil).DeadLetterTopic(ctx)
	if !failure.IsSetup(err) || failure.ReasonOf(err) != "NotFound" {
		t.Errorf("missing subscription: %v (reason %q), want a setup fault NotFound", err, failure.ReasonOf(err))
	}
}

// The delivery attempt, message ID, publish time and ordering key of a delivery reach
// queue.Message; on a subscription without a dead-letter policy the attempt is unknown (0).
func TestDeliveryFields(t *testing.T) {
	st := stacktest.Get(t)
	b := stacktest.Bootstrap(t, st, devstack.Resources{})
	client := newClient(t, st)
	ctx := context.Background()
	before := time.Now().Add(-time.Minute)
	out, err := client.TopicAdminClient.Publish(ctx, &pubsubpb.PublishRequest{Topic: b.TopicName,
		Messages: []*pubsubpb.PubsubMessage{{Data: []byte("fields"), OrderingKey: "upload/a.jpg"}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		sub     string
		attempt int
	}{{b.SubscriptionName, 1}, {b.DeadLetterSubscriptionName, 0}} {
		if c.attempt == 0 { // the dead-letter subscription: seed it directly
			if errs := pubsubqueue.NewTopic(client.TopicAdminClient, b.DeadLetterTopicName).Send(ctx, []*queue.Message{{Body: []byte("fields"), OrderingKey: "upload/a.jpg"}}); errs[0] != nil {
				t.Fatal(errs[0])
			}
		}
		got := drain(t, pubsubqueue.NewSubscription(client.SubscriptionAdminClient, c.sub, nil))
		if len(got) != 1 {
			t.Fatalf("%s: %d messages, want 1", c.sub, len(got))
		}
		m := got[0]
		if m.ReceiveCount != c.attempt || m.ID == "" || m.Handle == "" || m.OrderingKey != "upload/a.jpg" || m.SentAt.Before(before) || m.SentAt.After(time.Now().Add(time.Minute)) {
			t.Errorf("%s: %+v; want receive count %d, an ID, an ack ID, ordering key upload/a.jpg, a publish time", c.sub, m, c.attempt)
		}
		if c.attempt == 1 && m.ID != out.GetMessageIds()[0] {
			t.Errorf("ID %q, want the published message ID %q", m.ID, out.GetMessageIds()[0])
		}
	}
}

// A lease Pub/Sub cannot grant as asked is refused, not rounded, by CheckHold and by Receive.
func TestHoldChecked(t *testing.T) {
	st := stacktest.Get(t)
	b := stacktest.Bootstrap(t, st, devstack.Resources{})
	sub := pubsubqueue.NewSubscription(newClient(t, st).SubscriptionAdminClient, b.SubscriptionName, nil)
	for _, h := range []time.Duration{0, 1500 * time.Millisecond, pubsubqueue.MaxHold + time.Second} {
		if err := queue.CheckHold(sub, h); err == nil {
			t.Errorf("CheckHold(%v): no error", h)
		}
		if _, err := sub.Receive(context.Background(), 1, h); h > 0 && !failure.IsPermanent(err) {
			t.Errorf("Receive with hold %v: %v, want a permanent error", h, err)
		}
	}
	if err := queue.CheckHold(sub, pubsubqueue.MaxHold); err != nil {
		t.Errorf("CheckHold(MaxHold): %v", err)
	}
}

func seedDeadLetters(t *testing.T, st *devstack.Stack, b *devstack.Bootstrapped, n int) {
	t.Helper()
	client, err := pubsub.NewClient(context.Background(), st.ProjectID)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	var msgs []*queue.Message
	for i := range n {
		msgs = append(msgs, &queue.Message{Body: []byte(fmt.Sprintf("upload/dl/%d.jpg", i))})
	}
	if err := errors.Join(queue.Batches(msgs, func(batch []*queue.Message) []error {
		return pubsubqueue.NewTopic(client.TopicAdminClient, b.DeadLetterTopicName).Send(context.Background(), batch)
	})...); err != nil {
		t.Fatalf("seed: %v", err)
	}
}

// A ModifyAckDeadline that fails after a Pull leaves the messages leased only for the
// subscription's ack deadline: Receive must say so, not hand out messages on a lease shorter
// than asked, and must give them back.
func TestReceiveReportsAFailedLeaseExtension(t *testing.T) {
	st := stacktest.Get(t)
	b := stacktest.Bootstrap(t, st, devstack.Resources{})
	seedDeadLetters(t, st, b, 3)
	var mu sync.Mutex
	var bounds []time.Duration // how long each ModifyAckDeadline was given (-1: no deadline)
	refuse := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if r, ok := req.(*pubsubpb.ModifyAckDeadlineRequest); ok {
			bound := time.Duration(-1)
			if d, ok := ctx.Deadline(); ok {
				bound = time.Until(d)
			}
			mu.Lock()
			bounds = append(bounds, bound)
			mu.Unlock()
			if r.AckDeadlineSeconds > 0 {
				return status.Error(codes.PermissionDenied, "injected: modifyAckDeadline refused")
			}
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	sub := pubsubqueue.NewSubscription(stacktest.InterceptedSubscriptions(t, st, refuse), b.DeadLetterSubscriptionName, nil)
	msgs, err := sub.Receive(context.Background(), 10, time.Minute)
	if err == nil {
		t.Fatalf("Receive handed out %d messages on a lease it could not set, and no error", len(msgs))
	}
	if !failure.IsSetup(err) || failure.ReasonOf(err) != "PermissionDenied" {
		t.Errorf("error %v: want it classified a setup fault (PermissionDenied), which ends a pass at once", err)
	}
	// The lease and the nack each have Receive's own bound, not the client's 60 s: a stop
	// that lets a receive run to its end waits at most that long for them.
	mu.Lock()
	if len(bounds) != 2 {
		t.Errorf("%d ModifyAckDeadline calls, want the lease and the nack", len(bounds))
	}
	for i, b := range bounds {
		if b <= 0 || b > pubsubqueue.LeaseCallTimeout {
			t.Errorf("ModifyAckDeadline %d was given %s; want at most %s", i+1, b, pubsubqueue.LeaseCallTimeout)
		}
	}
	mu.Unlock()
	// Nothing lost: the messages are receivable again at once (nacked), not after the
	// subscription's ack deadline.
	client, err := pubsub.NewClient(context.Background(), st.ProjectID)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if n := len(drain(t, pubsubqueue.NewSubscription(client.SubscriptionAdminClient, b.DeadLetterSubscriptionName, nil))); n != 3 {
		t.Fatalf("after the failed receive a scan sees %d of 3", n)
	}
}

// drain receives (and leases for a minute) until a Receive comes back empty, and returns what
// came.
func drain(t *testing.T, sub *pubsubqueue.Subscription) []*queue.Message {
	t.Helper()
	var all []*queue.Message
	for {
		msgs, err := sub.Receive(context.Background(), queue.MaxBatch, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) == 0 {
			return all
		}
		all = append(all, msgs...)
	}
}

// Receive is one Pull and answers what it returned: a Pull that runs out of time (a real
// DeadlineExceeded from gRPC, on the client) is answered as none, and no error, although the
// subscription holds messages; the next Receive brings them. The rule that one empty Pull
// does not end a pass is dlq-replay's (pubsubdlq.EmptyPulls), not the driver's.
func TestReceiveIsOnePull(t *testing.T) {
	st := stacktest.Get(t)
	b := stacktest.Bootstrap(t, st, devstack.Resources{})
	seedDeadLetters(t, st, b, 5)
	var pulls atomic.Int32
	sub := pubsubqueue.NewSubscription(stacktest.InterceptedSubscriptions(t, st, stacktest.ExpireFirstPull(&pulls)), b.DeadLetterSubscriptionName, nil)
	msgs, err := sub.Receive(context.Background(), queue.MaxBatch, time.Minute)
	if err != nil || len(msgs) != 0 || pulls.Load() != 1 {
		t.Fatalf("Receive after a timed-out Pull: %d messages, %v, %d pulls; want none, no error, one Pull", len(msgs), err, pulls.Load())
	}
	if n := len(drain(t, sub)); n != 5 {
		t.Fatalf("later receives saw %d of 5", n)
	}
}
