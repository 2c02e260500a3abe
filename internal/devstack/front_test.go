package devstack_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/firestore"
	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"imgpipe/internal/devstack"
	"imgpipe/internal/grpcfront"
	"imgpipe/internal/stacktest"
)

// subscriberChild receives from a subscription (args: project, subscription) with two
// streams and the indexer's 10 s lease extension, never acks, and prints "got DATA" for each
// message: a plain Pub/Sub client and no project code.
var subscriberChild = stacktest.Child{Name: "subscriber", Run: func(args []string) error {
	ctx := context.Background()
	c, err := pubsub.NewClient(ctx, args[0])
	if err != nil {
		return err
	}
	sub := c.Subscriber(args[1])
	sub.ReceiveSettings.NumGoroutines = 2
	sub.ReceiveSettings.MaxDurationPerAckExtension = 10 * time.Second
	var mu sync.Mutex
	return sub.Receive(ctx, func(_ context.Context, m *pubsub.Message) {
		mu.Lock()
		fmt.Printf("got %s\n", m.Data)
		mu.Unlock()
		select {} // never acked: the message stays leased to this process until it dies
	})
}}

// strandAfterKill runs the scenario of a subscriber process that dies by SIGKILL with
// messages leased to it, against the Pub/Sub endpoint host (the emulator itself, or a front):
// 20 messages are leased to the child, it is killed, 100 more are published, and a second
// subscriber acks what it gets within window. It returns the messages the second one got.
func strandAfterKill(t *testing.T, st *devstack.Stack, host string, window time.Duration) map[string]bool {
	t.Helper()
	b := stacktest.Bootstrap(t, st, devstack.Resources{MaxDeliveryAttempts: 100})
	t.Setenv("PUBSUB_EMULATOR_HOST", host)
	c, err := pubsub.NewClient(context.Background(), st.ProjectID)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pub := c.Publisher(b.TopicName)
	defer pub.Stop()
	publish := func(prefix string, n int) {
		for i := range n {
			if _, err := pub.Publish(context.Background(), &pubsub.Message{Data: []byte(fmt.Sprintf("%s%03d", prefix, i))}).Get(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
	}
	child := stacktest.StartChild(t, "subscriber", []string{"PUBSUB_EMULATOR_HOST=" + host}, st.ProjectID, b.SubscriptionName)
	publish("leased", 20)
	for i := range 20 {
		child.WaitLine(t, fmt.Sprintf("got leased%03d", i), 60*time.Second)
	}
	child.Kill()
	killed := time.Now()
	publish("later", 100)

	ctx, cancel := context.WithTimeout(context.Background(), window)
	defer cancel()
	var mu sync.Mutex
	got := map[string]bool{}
	var lastLeased time.Duration
	err = c.Subscriber(b.SubscriptionName).Receive(ctx, func(_ context.Context, m *pubsub.Message) {
		m.Ack()
		mu.Lock()
		defer mu.Unlock()
		got[string(m.Data)] = true
		if strings.HasPrefix(string(m.Data), "leased") {
			lastLeased = time.Since(killed)
		}
		if len(got) == 120 {
			cancel()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	t.Logf("the last of the messages leased to the killed subscriber came back %s after the kill", lastLeased.Round(100*time.Millisecond))
	return got
}

// requireFronts skips a test that needs the emulators' gRPC fronts when the stack runs
// without them (DEVSTACK_NO_FRONTS=1).
func requireFronts(t *testing.T, st *devstack.Stack) {
	t.Helper()
	if st.PubSubFront == nil || st.FirestoreFront == nil {
		const why = "the stack runs without the emulators' gRPC fronts (DEVSTACK_NO_FRONTS=1): this test needs them"
		if stacktest.InCI() {
			t.Fatal(why)
		}
		t.Skip(why)
	}
}

// TestKilledSubscriberLosesNothingThroughTheFront runs the same scenario through the stack's
// front: every message comes back, the 20 leased to the dead process once their lease ends.
func TestKilledSubscriberLosesNothingThroughTheFront(t *testing.T) {
	st := stacktest.Require(t, devstack.PubSub)
	requireFronts(t, st)
	before := st.PubSubFront.Stats()
	got := strandAfterKill(t, st, st.PubSubHost, 2*time.Minute)
	if len(got) != 120 {
		t.Fatalf("%d of 120 messages came back through the front", len(got))
	}
	after := st.PubSubFront.Stats()
	if after.Abandoned <= before.Abandoned || after.Drained <= before.Drained || after.Cancelled != before.Cancelled {
		t.Errorf("front stats %+v then %+v: want the dead client's calls drained, none cancelled", before, after)
	}
}

// TestFrontForwardsCallsAndStatus: messages, attributes and errors keep their gRPC code through the front, and a
// front that is closed refuses calls.
func TestFrontForwardsCallsAndStatus(t *testing.T) {
	st := stacktest.Require(t, devstack.PubSub)
	f, err := grpcfront.Start("127.0.0.1:0", st.PubSubEmulatorHost, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("PUBSUB_EMULATOR_HOST", f.Addr())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pubsub.NewClient(ctx, st.ProjectID)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b := stacktest.Bootstrap(t, st, devstack.Resources{})
	pub := c.Publisher(b.TopicName)
	id, err := pub.Publish(ctx, &pubsub.Message{Data: []byte("through the front"), Attributes: map[string]string{"a": "ü b"}}).Get(ctx)
	pub.Stop()
	if err != nil || id == "" {
		t.Fatalf("publish through the front: %q, %v", id, err)
	}
	missing := c.Publisher("projects/" + st.ProjectID + "/topics/" + stacktest.Unique("missing"))
	_, err = missing.Publish(ctx, &pubsub.Message{Data: []byte("x")}).Get(ctx)
	missing.Stop()
	if status.Code(err) != codes.NotFound {
		t.Fatalf("publish to a missing topic through the front: %v, want NotFound", err)
	}
	rctx, rcancel := context.WithTimeout(ctx, 20*time.Second)
	var got *pubsub.Message
	err = c.Subscriber(b.SubscriptionName).Receive(rctx, func(_ context.Context, m *pubsub.Message) {
		m.Ack()
		got = m
		rcancel()
	})
	rcancel()
	if err != nil || got == nil || string(got.Data) != "through the front" || got.Attributes["a"] != "ü b" {
		t.Fatalf("received %+v, %v", got, err)
	}
	if s := f.Stats(); s.Calls == 0 || s.Cancelled != 0 {
		t.Errorf("front stats %+v", s)
	}
	f.Close()
	f.Close()
	cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
	defer ccancel()
	if _, err := c.TopicAdminClient.GetTopic(cctx, &pubsubpb.GetTopicRequest{Topic: b.TopicName}); err == nil {
		t.Fatal("a call through a closed front succeeded")
	}
}

// TestPubSubOutage cuts the Pub/Sub clients off for a while: calls fail meanwhile, and
// afterwards every message published before the outage is still there.
func TestPubSubOutage(t *testing.T) {
	st := stacktest.Require(t, devstack.PubSub)
	requireFronts(t, st)
	b := stacktest.Bootstrap(t, st, devstack.Resources{})
	ctx := context.Background()
	c, err := pubsub.NewClient(ctx, st.ProjectID)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pub := c.Publisher(b.TopicName)
	defer pub.Stop()
	for i := range 10 {
		if _, err := pub.Publish(ctx, &pubsub.Message{Data: []byte(fmt.Sprint(i))}).Get(ctx); err != nil {
			t.Fatal(err)
		}
	}
	outage := make(chan error, 1)
	// Long enough that the call below lands inside it on a loaded machine.
	go func() { outage <- st.Outage(ctx, devstack.PubSub, 10*time.Second) }()
	stacktest.WaitFor(t, "the front cut its clients", 10*time.Second, func() (bool, string) {
		s := st.PubSubFront.Stats()
		return s.Cut > 0, fmt.Sprintf("%+v", s)
	})
	dctx, dcancel := context.WithTimeout(ctx, time.Second)
	_, err = c.SubscriptionAdminClient.GetSubscription(dctx, &pubsubpb.GetSubscriptionRequest{Subscription: b.SubscriptionName})
	dcancel()
	if err == nil {
		t.Error("a call during the outage succeeded")
	}
	if err := <-outage; err != nil {
		t.Fatal(err)
	}
	rctx, rcancel := context.WithTimeout(ctx, 60*time.Second)
	defer rcancel()
	var mu sync.Mutex
	got := map[string]bool{}
	if err := c.Subscriber(b.SubscriptionName).Receive(rctx, func(_ context.Context, m *pubsub.Message) {
		m.Ack()
		mu.Lock()
		defer mu.Unlock()
		got[string(m.Data)] = true
		if len(got) == 10 {
			rcancel()
		}
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != 10 {
		t.Fatalf("%d of 10 messages after the outage", len(got))
	}
}

// TestRestartFirestoreKeepsData restarts the Firestore emulator while a writer keeps writing:
// every write that succeeded is there afterwards, the clients' address is unchanged, and the
// writer was cut off while the emulator was down. Each write has a deadline of one second,
// shorter than the time the emulator is down (two seconds plus its export, stop and start), so
// the client's own retries cannot carry a write across the restart and some write must fail.
func TestRestartFirestoreKeepsData(t *testing.T) {
	st := stacktest.Require(t, devstack.Firestore)
	requireFronts(t, st)
	ctx := context.Background()
	client, err := firestore.NewClient(ctx, st.ProjectID)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	coll := client.Collection(stacktest.Unique("restart"))
	host, emulator, pids := st.FirestoreHost, st.FirestoreEmulatorHost, st.PIDs()

	var mu sync.Mutex
	var written []string
	failed := 0
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			id := fmt.Sprintf("d%05d", i)
			wctx, cancel := context.WithTimeout(ctx, time.Second)
			_, err := coll.Doc(id).Set(wctx, map[string]any{"n": i})
			cancel()
			mu.Lock()
			if err == nil {
				written = append(written, id)
			} else {
				failed++
				time.Sleep(50 * time.Millisecond)
			}
			mu.Unlock()
		}
	}()
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(written) }
	stacktest.WaitFor(t, "writes before the restart", time.Minute, func() (bool, string) { return count() >= 20, fmt.Sprint(count()) })
	if err := st.RestartFirestore(ctx, &devstack.RestartOptions{Down: 2 * time.Second}); err != nil {
		t.Fatal(err)
	}
	after := count()
	stacktest.WaitFor(t, "writes after the restart", 2*time.Minute, func() (bool, string) { return count() >= after+20, fmt.Sprint(count()) })
	close(stop)
	<-done

	if st.FirestoreHost != host || st.FirestoreEmulatorHost != emulator {
		t.Errorf("addresses changed: %s %s, were %s %s", st.FirestoreHost, st.FirestoreEmulatorHost, host, emulator)
	}
	if fmt.Sprint(st.PIDs()) == fmt.Sprint(pids) {
		t.Error("the emulator process was not replaced")
	}
	for _, id := range written {
		snap, err := coll.Doc(id).Get(ctx)
		if err != nil || !snap.Exists() {
			t.Fatalf("%s was written (of %d) but is gone after the restart: %v", id, len(written), err)
		}
	}
	t.Logf("%d writes kept across the restart, %d failed while it was down", len(written), failed)
	if failed == 0 {
		t.Error("no write failed: the restart cut no client off")
	}
}
