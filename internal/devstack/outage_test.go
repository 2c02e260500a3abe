package devstack_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"

	"imgpipe/internal/devstack"
	"imgpipe/internal/stacktest"
)

// TestPubSubOutageLosesNoLeasedMessage cuts the Pub/Sub emulator's clients off for 5 s (the
// chaos suite's Pub/Sub fault) while a plain subscriber with the indexer's receive settings
// (2 streams, 10 s lease extension) holds messages leased, acks cut short among them, and a
// publisher keeps publishing: every message published must be acked afterwards, within the
// lease plus the retry backoff plus a margin. It is what shows that the front ends the
// emulator's calls at an outage in a way the emulator handles (a half-close, never a cancel),
// so the emulator's defect with cancelled streams cannot strand what it had leased.
func TestPubSubOutageLosesNoLeasedMessage(t *testing.T) {
	st := stacktest.Require(t, devstack.PubSub)
	requireFronts(t, st)
	b := stacktest.Bootstrap(t, st, devstack.Resources{MaxDeliveryAttempts: 100})
	t.Setenv("PUBSUB_EMULATOR_HOST", st.PubSubHost)
	ctx := context.Background()
	c, err := pubsub.NewClient(ctx, st.ProjectID)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pub := c.Publisher(b.TopicName)
	defer pub.Stop()

	var mu sync.Mutex
	acked := map[string]bool{}
	deliveries := map[string]int{}
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	s := c.Subscriber(b.SubscriptionName)
	s.ReceiveSettings.NumGoroutines = 2
	s.ReceiveSettings.MaxDurationPerAckExtension = 10 * time.Second
	received := make(chan struct{})
	go func() {
		defer close(received)
		_ = s.Receive(rctx, func(_ context.Context, m *pubsub.Message) {
			mu.Lock()
			deliveries[string(m.Data)]++
			mu.Unlock()
			time.Sleep(2 * time.Second) // held, as a write takes its time
			m.Ack()
			mu.Lock()
			acked[string(m.Data)] = true
			mu.Unlock()
		})
	}()

	// Messages before, during and after the outage; the outage starts once the first ones are
	// leased to the subscriber.
	published := 0
	send := func(n int) {
		for range n {
			pctx, cancel := context.WithTimeout(ctx, time.Minute)
			_, err := pub.Publish(pctx, &pubsub.Message{Data: []byte(fmt.Sprintf("m%04d", published))}).Get(pctx)
			cancel()
			if err != nil {
				t.Fatalf("publish m%04d: %v", published, err)
			}
			published++
			time.Sleep(20 * time.Millisecond)
		}
	}
	send(50)
	stacktest.WaitFor(t, "messages leased to the subscriber", 30*time.Second, func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		return len(deliveries) >= 20, fmt.Sprint(len(deliveries), " delivered")
	})
	before := st.PubSubFront.Stats()
	outage := make(chan error, 1)
	go func() { outage <- st.Outage(ctx, devstack.PubSub, 5*time.Second) }()
	send(100)
	if err := <-outage; err != nil {
		t.Fatal(err)
	}
	send(50)

	// Each message is back within its last lease (10 s), the retry backoff and a margin for a
	// loaded machine.
	stacktest.WaitFor(t, "every message acked", 90*time.Second, func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) == published, fmt.Sprintf("%d of %d acked", len(acked), published)
	})
	stop()
	<-received
	after := st.PubSubFront.Stats()
	t.Logf("%d messages acked, front %+v then %+v", published, before, after)
	if after.Cut == before.Cut {
		t.Error("the outage cut no client connection")
	}
	if after.Cancelled != before.Cancelled {
		t.Errorf("the front cancelled %d calls towards the emulator", after.Cancelled-before.Cancelled)
	}
}
