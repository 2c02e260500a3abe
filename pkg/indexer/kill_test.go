package indexer_test

import (
	"context"
	"fmt"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"cloud.google.com/go/firestore"
	"cloud.google.com/go/pubsub/v2"

	"imgpipe/internal/stacktest"
	"imgpipe/pkg/failure"
	"imgpipe/pkg/gcpclient"
	"imgpipe/pkg/indexer"
	"imgpipe/pkg/indexstore"
	"imgpipe/pkg/publish"
	"imgpipe/pkg/queue/pubsubqueue"
	"imgpipe/pkg/record"
)

// indexerChild runs an indexer with its defaults in a process of its own (args: project,
// subscription, collection) until it is signalled: SIGTERM stops it gracefully, SIGKILL is a
// crash.
var indexerChild = stacktest.Child{Name: "indexer", Run: func(args []string) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	ps, err := pubsub.NewClient(ctx, args[0], gcpclient.Options()...)
	if err != nil {
		return err
	}
	defer ps.Close()
	fs, err := firestore.NewClient(ctx, args[0], gcpclient.Options()...)
	if err != nil {
		return err
	}
	defer fs.Close()
	src := pubsubqueue.NewSubscription(ps.SubscriptionAdminClient, args[1], nil)
	topic, err := src.DeadLetterTopic(ctx)
	if err != nil {
		return err
	}
	ix, err := indexer.New(src, pubsubqueue.NewTopic(ps.TopicAdminClient, topic), indexstore.New(fs, args[2], nil), nil)
	if err != nil {
		return err
	}
	fmt.Println("ready")
	return ix.Run(ctx)
}}

// TestKilledIndexersLoseNothing runs indexers as processes of their own on one subscription
// and SIGKILLs them, three times, while records flow: every record ends indexed (each key is
// written once, so a record lost is a document missing), and nothing is dead-lettered.
func TestKilledIndexersLoseNothing(t *testing.T) {
	st, b := bootstrap(t, 5)
	args := []string{st.ProjectID, b.SubscriptionName, b.Collection}
	start := func() *stacktest.ChildProcess {
		c := stacktest.StartChild(t, "indexer", nil, args...)
		c.WaitLine(t, "ready", time.Minute)
		return c
	}
	a, c := start(), start()
	pub := publish.New(pubsubClient(t, st.ProjectID), b.TopicName, nil)
	defer pub.Close()
	s := startStream(t, pub, b.Bucket, "kill", 25*time.Millisecond)
	reader := indexstore.New(firestoreClient(t, st.ProjectID), b.Collection, nil)
	indexed := func() int {
		docs, err := reader.List(context.Background(), b.Bucket, 100000)
		if err != nil {
			return 0
		}
		return len(docs)
	}
	// Kill one indexer whenever the index has grown by another 100 documents, and start a
	// new one in its place.
	for i := range 3 {
		want := 100 * (i + 1)
		stacktest.WaitFor(t, fmt.Sprintf("%d documents", want), 2*time.Minute, func() (bool, string) {
			n := indexed()
			return n >= want, fmt.Sprint(n)
		})
		if i%2 == 0 {
			a.Kill()
			a = start()
		} else {
			c.Kill()
			c = start()
		}
	}
	eventually(t, "more records after the last kill", func() bool { return indexed() >= 400 })
	keys := s.end()
	r := &running{store: reader}
	stacktest.WaitFor(t, fmt.Sprintf("every one of %d records indexed", len(keys)), 3*time.Minute, func() (bool, string) {
		n := missing(t, r, b.Bucket, keys)
		return n == 0, fmt.Sprintf("%d missing", n)
	})
	a.Stop(30 * time.Second)
	c.Stop(30 * time.Second)
	if got := pullAll(t, st.ProjectID, b.DeadLetterSubscriptionName, 5*time.Second); len(got) != 0 {
		t.Errorf("%d records dead-lettered", len(got))
	}
	t.Logf("%d records, all indexed across 3 SIGKILLs", len(keys))
}

// pullAll receives (and acks) what a subscription delivers within wait.
func pullAll(t testing.TB, project, sub string, wait time.Duration) []*pubsub.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	var got []*pubsub.Message
	ch := make(chan *pubsub.Message, 1000)
	if err := pubsubClient(t, project).Subscriber(sub).Receive(ctx, func(_ context.Context, m *pubsub.Message) {
		m.Ack()
		ch <- m
	}); err != nil {
		t.Fatal(err)
	}
	close(ch)
	for m := range ch {
		got = append(got, m)
	}
	return got
}

// TestRefusedRecordDeadLettered: a record Firestore refuses in every transaction (a caption
// over its 1 MiB value limit) is held and retried for RetryFor, then copied to the dead-letter
// topic with the reason, once; the records around it are indexed.
func TestRefusedRecordDeadLettered(t *testing.T) {
	st, b := bootstrap(t, 5)
	r := startIndexer(t, st.ProjectID, b, &indexer.Options{RetryFor: 3 * time.Second})
	pub := publish.New(pubsubClient(t, st.ProjectID), b.TopicName, nil)
	defer pub.Close()
	huge := rec(record.Created, b.Bucket, "upload/huge.jpg", 1)
	huge.Caption = strings.Repeat("x", 1100000)
	good := []*record.Analysis{rec(record.Created, b.Bucket, "upload/a.jpg", 1), rec(record.Created, b.Bucket, "upload/b.jpg", 1)}
	publishAll(t, pub, append([]*record.Analysis{huge}, good...))

	got := receiveAll(t, pubsubClient(t, st.ProjectID), b.DeadLetterSubscriptionName, 1, 90*time.Second)
	if len(got) != 1 {
		t.Fatalf("%d dead letters, want 1", len(got))
	}
	f := failure.ParseDetails(got[0].Attributes)
	if f.Reason != indexstore.ReasonRejected || f.Class.String() != "permanent" || got[0].Attributes["CloudPubSubDeadLetterSourceSubscription"] != "" {
		t.Errorf("dead letter: reason %q class %s attributes %v; want the indexer's copy with %s", f.Reason, f.Class, got[0].Attributes, indexstore.ReasonRejected)
	}
	eventually(t, "the other records indexed", func() bool { return settled(r) >= 2 })
	m := indexer.CountsOf(r.ix)
	if m.Nacked != 0 || m.DeadLettered != 1 || m.Retried == 0 {
		t.Errorf("nacked %d, dead-lettered %d, retried %d; want 0, 1, some", m.Nacked, m.DeadLettered, m.Retried)
	}
}
