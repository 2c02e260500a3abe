package devstack_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"google.golang.org/protobuf/types/known/durationpb"

	"imgpipe/internal/devstack"
	"imgpipe/internal/stacktest"
)

// nackRun is one nack-then-ack scenario with a plain Pub/Sub client and no project code.
type nackRun struct {
	host        string        // the Pub/Sub endpoint: the emulator itself or its front
	n           int           // messages published
	nackFor     time.Duration // every delivery within this is nacked, later ones acked
	hold        time.Duration // how long a callback holds a message before it nacks it
	deadLetter  bool          // the subscription has a dead-letter policy
	retry       bool          // the subscription has a retry policy (devstack's backoff, 1-60 s)
	attempts    int           // its MaxDeliveryAttempts
	window      time.Duration // how long after the nacking ends to wait for the rest
	outstanding int           // ReceiveSettings.MaxOutstandingMessages (0: the client's default)
	streams     int           // ReceiveSettings.NumGoroutines (0: the client's default)
	trickle     time.Duration // if set, one more message is published this often while nacking
	times       int           // if set, each message's first times deliveries are nacked (not nackFor)
	// stopWhenSettled ends the run once every message was acked or dead-lettered (nackFor
	// then need not end first).
	stopWhenSettled bool
}

// nackResult is what a nackRun saw.
type nackResult struct {
	acked, deadLettered, neither int
	deliveries                   map[string]int // deliveries per message
	lastAck                      time.Duration  // after the nacking ended
	nacks                        int
}

func runNack(t *testing.T, st *devstack.Stack, r nackRun) nackResult {
	t.Helper()
	b := stacktest.Bootstrap(t, st, devstack.Resources{MaxDeliveryAttempts: r.attempts, RetryPolicy: r.retry})
	t.Setenv("PUBSUB_EMULATOR_HOST", r.host)
	ctx := context.Background()
	c, err := pubsub.NewClient(ctx, st.ProjectID)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sub := b.SubscriptionName
	if !r.deadLetter {
		sub = "projects/" + st.ProjectID + "/subscriptions/" + stacktest.Unique("nodlp")
		ps := &pubsubpb.Subscription{Name: sub, Topic: b.TopicName, AckDeadlineSeconds: int32(b.AckDeadline / time.Second)}
		if r.retry {
			ps.RetryPolicy = &pubsubpb.RetryPolicy{MinimumBackoff: durationpb.New(b.MinBackoff), MaximumBackoff: durationpb.New(b.MaxBackoff)}
		}
		if _, err := c.SubscriptionAdminClient.CreateSubscription(ctx, ps); err != nil {
			t.Fatal(err)
		}
	}
	pub := c.Publisher(b.TopicName)
	for i := range r.n {
		pub.Publish(ctx, &pubsub.Message{Data: []byte(fmt.Sprintf("m%04d", i))})
	}
	if _, err := pub.Publish(ctx, &pubsub.Message{Data: []byte("last")}).Get(ctx); err != nil {
		t.Fatal(err)
	}
	total := r.n + 1
	trickled := make(chan int, 1)
	if r.trickle > 0 {
		go func() {
			n := 0
			for end := time.Now().Add(r.nackFor); time.Now().Before(end); n++ {
				time.Sleep(r.trickle)
				pub.Publish(ctx, &pubsub.Message{Data: []byte(fmt.Sprintf("t%05d", n))})
			}
			trickled <- n
		}()
	} else {
		trickled <- 0
	}
	defer pub.Stop()

	var mu sync.Mutex
	res := nackResult{deliveries: map[string]int{}}
	acked, dead := map[string]bool{}, map[string]bool{}
	settled := func() int { return len(acked) + len(dead) }
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()
	nackUntil := start.Add(r.nackFor)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = c.Subscriber(b.DeadLetterSubscriptionName).Receive(rctx, func(_ context.Context, m *pubsub.Message) {
			m.Ack()
			mu.Lock()
			defer mu.Unlock()
			dead[string(m.Data)] = true
		})
	}()
	s := c.Subscriber(sub)
	s.ReceiveSettings.MaxDurationPerAckExtension = 10 * time.Second
	if r.outstanding > 0 {
		s.ReceiveSettings.MaxOutstandingMessages = r.outstanding
	}
	if r.streams > 0 {
		s.ReceiveSettings.NumGoroutines = r.streams
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = s.Receive(rctx, func(_ context.Context, m *pubsub.Message) {
			mu.Lock()
			res.deliveries[string(m.Data)]++
			d := res.deliveries[string(m.Data)]
			mu.Unlock()
			if (r.times == 0 && time.Now().Before(nackUntil)) || d <= r.times {
				time.Sleep(r.hold)
				m.Nack()
				mu.Lock()
				res.nacks++
				mu.Unlock()
				return
			}
			m.Ack()
			mu.Lock()
			defer mu.Unlock()
			if !acked[string(m.Data)] {
				acked[string(m.Data)] = true
				res.lastAck = time.Since(nackUntil)
			}
		})
	}()
	deadline := nackUntil.Add(r.window)
	if r.stopWhenSettled {
		deadline = start.Add(r.window)
	}
	total += <-trickled
	for time.Now().Before(deadline) {
		mu.Lock()
		done := settled() >= total
		mu.Unlock()
		if done {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	res.acked, res.deadLettered = len(acked), len(dead)
	res.neither = total - settled()
	hist := map[int]int{}
	for _, d := range res.deliveries {
		hist[d]++
	}
	t.Logf("%+v: %d messages: acked %d, dead-lettered %d, neither %d (last ack %s after the nacking ended); %d nacks; deliveries per message %v; %d never delivered",
		r, total, res.acked, res.deadLettered, res.neither, res.lastAck.Round(100*time.Millisecond), res.nacks, hist, total-len(res.deliveries))
	return res
}

// TestNackedMessagesComeBack checks the Pub/Sub emulator's redelivery after nacks with a plain
// client and the subscription devstack bootstraps (dead-letter policy, no retry policy),
// directly and through the front: messages nacked twice after being held (as an indexer whose
// writes time out does) come back and are acked; messages nacked at every delivery reach the
// dead-letter topic after MaxDeliveryAttempts, each delivered exactly that often. Nothing is
// stranded in either case.
func TestNackedMessagesComeBack(t *testing.T) {
	st := stacktest.Require(t, devstack.PubSub)
	hosts := map[string]string{"emulator": st.PubSubEmulatorHost}
	if st.PubSubFront != nil {
		hosts["front"] = st.PubSubHost
	} else if stacktest.InCI() {
		t.Fatal("the stack has no Pub/Sub front")
	}
	for name, host := range hosts {
		t.Run(name+"/held-nacked-twice", func(t *testing.T) {
			res := runNack(t, st, nackRun{host: host, n: 40, times: 2, hold: 3 * time.Second, deadLetter: true, attempts: 5, streams: 2, window: 90 * time.Second})
			if res.neither != 0 || res.deadLettered != 0 {
				t.Fatalf("%d messages neither acked nor dead-lettered, %d dead-lettered: want every one acked", res.neither, res.deadLettered)
			}
			for m, d := range res.deliveries {
				if d < 3 {
					t.Errorf("%s delivered %d times, want at least 3", m, d)
				}
			}
		})
		t.Run(name+"/always-nacked", func(t *testing.T) {
			res := runNack(t, st, nackRun{host: host, n: 40, nackFor: time.Hour, deadLetter: true, attempts: 5, window: 90 * time.Second, stopWhenSettled: true})
			if res.neither != 0 || res.acked != 0 {
				t.Fatalf("%d messages neither acked nor dead-lettered, %d acked: want every one dead-lettered", res.neither, res.acked)
			}
			for m, d := range res.deliveries {
				if d != 5 {
					t.Errorf("%s delivered %d times, want MaxDeliveryAttempts (5)", m, d)
				}
			}
		})
	}
}

// TestNackedTwiceWhileManyHeldLosesNothingByDefault is the same run as
// TestNackedTwiceWhileManyHeldStrandsOnTheEmulator on the subscription devstack bootstraps by
// default (no retry policy): every message is acked, none stranded nor dead-lettered. It is
// why the local subscription has no retry policy.
func TestNackedTwiceWhileManyHeldLosesNothingByDefault(t *testing.T) {
	st := stacktest.Require(t, devstack.PubSub)
	res := runNack(t, st, nackRun{host: st.PubSubEmulatorHost, n: 400, times: 2, hold: 15 * time.Second,
		deadLetter: true, attempts: 5, streams: 2, outstanding: 256, window: 70 * time.Second, stopWhenSettled: true})
	if res.neither != 0 || res.deadLettered != 0 {
		t.Fatalf("%d messages neither acked nor dead-lettered, %d dead-lettered: want every one of %d acked", res.neither, res.deadLettered, len(res.deliveries))
	}
}
