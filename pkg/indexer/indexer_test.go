package indexer_test

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/firestore"
	"cloud.google.com/go/pubsub/v2"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"

	"imgpipe/internal/devstack"
	"imgpipe/internal/stacktest"
	"imgpipe/pkg/failure"
	"imgpipe/pkg/gcpclient"
	"imgpipe/pkg/indexer"
	"imgpipe/pkg/indexstore"
	"imgpipe/pkg/obs"
	"imgpipe/pkg/publish"
	"imgpipe/pkg/queue"
	"imgpipe/pkg/queue/pubsubqueue"
	"imgpipe/pkg/record"
	"imgpipe/pkg/s3event"
)

func TestMain(m *testing.M) {
	stacktest.Main(m, devstack.PubSub|devstack.Firestore, indexerChild)
}

func bootstrap(t testing.TB, attempts int) (*devstack.Stack, *devstack.Bootstrapped) {
	t.Helper()
	st := stacktest.Get(t)
	b := stacktest.Bootstrap(t, st, devstack.Resources{MaxDeliveryAttempts: attempts})
	return st, b
}

func pubsubClient(t testing.TB, project string) *pubsub.Client {
	t.Helper()
	c, err := pubsub.NewClient(context.Background(), project, gcpclient.Options()...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func firestoreClient(t testing.TB, project string) *firestore.Client {
	t.Helper()
	c, err := firestore.NewClient(context.Background(), project, gcpclient.Options()...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// running is one indexer on its own Pub/Sub and Firestore clients.
type running struct {
	ix    *indexer.Indexer
	store *indexstore.Store
	stop  func() // cancels Run and waits for it to return; safe to call twice
}

func startIndexer(t testing.TB, project string, b *devstack.Bootstrapped, opts *indexer.Options) *running {
	t.Helper()
	return startIndexerOn(t, pubsubClient(t, project), indexstore.New(firestoreClient(t, project), b.Collection, nil), b, opts)
}

// startIndexerOn runs an indexer on the given clients, its dead-letter sink the topic the
// subscription's dead-letter policy names.
func startIndexerOn(t testing.TB, ps *pubsub.Client, store *indexstore.Store, b *devstack.Bootstrapped, opts *indexer.Options) *running {
	t.Helper()
	return startIndexerCopying(t, ps, store, b, opts, true)
}

// startIndexerCopying runs an indexer on the given clients; without copy it has no
// dead-letter sink (invalid messages are nacked).
func startIndexerCopying(t testing.TB, ps *pubsub.Client, store *indexstore.Store, b *devstack.Bootstrapped, opts *indexer.Options, copy bool) *running {
	t.Helper()
	o := indexer.Options{}
	if opts != nil {
		o = *opts
	}
	if o.Logger == nil {
		o.Logger = zaptest.NewLogger(t, zaptest.Level(zapcore.WarnLevel)).Named("indexer")
	}
	ctx, cancel := context.WithCancel(context.Background())
	src := pubsubqueue.NewSubscription(ps.SubscriptionAdminClient, b.SubscriptionName, nil)
	var sink queue.Sink
	if copy {
		topic, err := src.DeadLetterTopic(ctx)
		if err != nil || topic == "" {
			t.Fatalf("dead-letter topic %q: %v", topic, err)
		}
		sink = pubsubqueue.NewTopic(ps.TopicAdminClient, topic)
	}
	ix, err := indexer.New(src, sink, store, &o)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := ix.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	var once sync.Once
	r := &running{ix: ix, store: store, stop: func() { once.Do(func() { cancel(); <-done }) }}
	t.Cleanup(r.stop)
	return r
}

func rec(event record.Event, bucket, key string, seq uint64) *record.Analysis {
	r := &record.Analysis{
		SchemaVersion: record.SchemaVersion, Event: event, Bucket: bucket, Key: key,
		Sequencer: s3event.FormatSequencer(seq),
		EventTime: time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC).Add(time.Duration(seq) * time.Millisecond),
	}
	if event == record.Created {
		r.Caption = fmt.Sprintf("version %d", seq)
		r.Tags = []record.Tag{{Name: "thing", Confidence: 0.5}}
		r.AnalyzedAt = r.EventTime
	}
	return r
}

func publishAll(t testing.TB, p *publish.Publisher, recs []*record.Analysis) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, len(recs))
	sem := make(chan struct{}, 32)
	for _, r := range recs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if _, err := p.Publish(context.Background(), r); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("publish: %v", err)
	}
}

// eventually polls cond until it holds, failing the test after a generous bound (a safety net
// against hanging, not a speed assertion).
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	eventuallyWithin(t, 90*time.Second, what, cond)
}

func eventuallyWithin(t testing.TB, bound time.Duration, what string, cond func() bool) {
	t.Helper()
	start := time.Now()
	deadline := start.Add(bound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// settled counts the messages the indexers acknowledged after applying them.
func settled(rs ...*running) int64 {
	var n int64
	for _, r := range rs {
		m := indexer.CountsOf(r.ix)
		n += m.Written + m.Deleted + m.Stale
	}
	return n
}

// plan is a set of records with duplicates and shuffled versions, and the expected final
// version of each key (0: no document).
type plan struct {
	recs []*record.Analysis
	want map[string]uint64
}

func makePlan(bucket string, keys, versions int, seed uint64) plan {
	p := plan{want: map[string]uint64{}}
	for k := range keys {
		key := fmt.Sprintf("upload/%d/ünï %d.jpg", k, k)
		last := record.Created
		for v := 1; v <= versions; v++ {
			ev := record.Created
			if (v+k)%5 == 0 {
				ev = record.Removed
			}
			last = ev
			r := rec(ev, bucket, key, uint64(v))
			p.recs = append(p.recs, r)
			if v%3 == 0 {
				p.recs = append(p.recs, r) // a duplicate delivery of the same event
			}
		}
		p.want[key] = uint64(versions)
		if last == record.Removed {
			p.want[key] = 0
		}
	}
	rnd := rand.New(rand.NewPCG(seed, 1))
	rnd.Shuffle(len(p.recs), func(i, j int) { p.recs[i], p.recs[j] = p.recs[j], p.recs[i] })
	return p
}

func checkPlan(t *testing.T, s *indexstore.Store, bucket string, p plan) {
	t.Helper()
	docs, err := s.List(context.Background(), bucket, 100000)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, d := range docs {
		got[d.Key] = d.Sequencer
	}
	live := 0
	for key, v := range p.want {
		if v == 0 {
			if seq, ok := got[key]; ok {
				t.Errorf("%q: removed last, but holds version %s", key, seq)
			}
			continue
		}
		live++
		if got[key] != s3event.FormatSequencer(v) {
			t.Errorf("%q: holds %q, want version %d", key, got[key], v)
		}
	}
	if len(docs) != live {
		t.Errorf("%d documents, want %d", len(docs), live)
	}
}

// TestDuplicatesAndReordering publishes many versions of a few keys, with duplicates, in
// shuffled order: each key ends as one document in its newest state, or none if removed last.
func TestDuplicatesAndReordering(t *testing.T) {
	for _, batch := range []int{1, 100} {
		t.Run(fmt.Sprintf("batch=%d", batch), func(t *testing.T) {
			st, b := bootstrap(t, 5)
			p := makePlan(b.Bucket, 6, 12, uint64(batch))
			r := startIndexer(t, st.ProjectID, b, &indexer.Options{BatchSize: batch})
			pub := publish.New(pubsubClient(t, st.ProjectID), b.TopicName, nil)
			defer pub.Close()
			publishAll(t, pub, p.recs)
			eventually(t, "every message applied", func() bool { return settled(r) >= int64(len(p.recs)) })
			checkPlan(t, r.store, b.Bucket, p)
			m := indexer.CountsOf(r.ix)
			if m.Stale == 0 {
				t.Error("no record counted stale, though duplicates were published")
			}
			if m.Invalid != 0 {
				t.Errorf("%d invalid", m.Invalid)
			}
		})
	}
}

// TestTwoIndexersRace runs two indexers, each with its own clients, on one subscription and
// on a second subscription of the same topic (so both see every record and race on every
// key): every key ends in its newest state.
func TestTwoIndexersRace(t *testing.T) {
	st, b := bootstrap(t, 5)
	b2 := stacktest.Bootstrap(t, st, devstack.Resources{Topic: b.Topic, Collection: b.Collection, MaxDeliveryAttempts: 5})
	p := makePlan(b.Bucket, 4, 30, 7)
	r1 := startIndexer(t, st.ProjectID, b, &indexer.Options{BatchSize: 1})
	r2 := startIndexer(t, st.ProjectID, b2, &indexer.Options{BatchSize: 20})
	r3 := startIndexer(t, st.ProjectID, b2, nil)
	pub := publish.New(pubsubClient(t, st.ProjectID), b.TopicName, nil)
	defer pub.Close()
	publishAll(t, pub, p.recs)
	eventually(t, "every message applied twice", func() bool { return settled(r1, r2, r3) >= 2*int64(len(p.recs)) })
	checkPlan(t, r1.store, b.Bucket, p)
}

// receiveAll collects the messages of a subscription until want arrived or ctx ends.
func receiveAll(t *testing.T, c *pubsub.Client, sub string, want int, within time.Duration) []*pubsub.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	var mu sync.Mutex
	var got []*pubsub.Message
	err := c.Subscriber(sub).Receive(ctx, func(_ context.Context, m *pubsub.Message) {
		m.Ack()
		mu.Lock()
		defer mu.Unlock()
		got = append(got, m)
		if len(got) >= want {
			cancel()
		}
	})
	if err != nil {
		t.Fatalf("receive %s: %v", sub, err)
	}
	return got
}

// TestMalformedDeadLettered sends undecodable and invalid messages among valid ones: each bad
// one is copied to the dead-letter topic at its first delivery, with its reason, and every
// valid one is indexed, none of them nacked.
func TestMalformedDeadLettered(t *testing.T) {
	st, b := bootstrap(t, 5)
	ps := pubsubClient(t, st.ProjectID)
	r := startIndexer(t, st.ProjectID, b, nil)
	pub := publish.New(ps, b.TopicName, nil)
	defer pub.Close()
	raw := ps.Publisher(b.TopicName)
	defer raw.Stop()

	var good []*record.Analysis
	for i := range 20 {
		good = append(good, rec(record.Created, b.Bucket, fmt.Sprintf("k%d", i), 1))
	}
	publishAll(t, pub, good[:10])
	bad := []struct {
		body, reason string
	}{
		{`{"schemaVersion":`, record.ReasonMalformedRecord},
		{`{"schemaVersion":99,"event":"created","bucket":"b","key":"k"}`, record.ReasonUnsupportedVersion},
		{`{"schemaVersion":1,"event":"created","bucket":"b","key":"k","sequencer":"not hex"}`, s3event.ReasonBadSequencer},
	}
	for i, m := range bad {
		if _, err := raw.Publish(context.Background(), &pubsub.Message{Data: []byte(m.body), Attributes: map[string]string{"case": fmt.Sprint(i)}}).Get(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	publishAll(t, pub, good[10:])

	got := receiveAll(t, ps, b.DeadLetterSubscriptionName, len(bad), 60*time.Second)
	if len(got) != len(bad) {
		t.Fatalf("%d dead letters, want %d", len(got), len(bad))
	}
	for _, m := range got {
		var i int
		fmt.Sscan(m.Attributes["case"], &i)
		f := failure.ParseDetails(m.Attributes)
		if f.Reason != bad[i].reason || f.Class.String() != "permanent" || f.Error == "" || string(m.Data) != bad[i].body {
			t.Errorf("dead letter %d: reason %q class %s error %q body %q; want reason %q", i, f.Reason, f.Class, f.Error, m.Data, bad[i].reason)
		}
		if f.Attempts != 1 || f.SourceQueue != b.SubscriptionName {
			t.Errorf("dead letter %d: attempts %d source %q; want 1 and %s", i, f.Attempts, f.SourceQueue, b.SubscriptionName)
		}
	}
	eventually(t, "valid records indexed", func() bool { return settled(r) >= int64(len(good)) })
	for _, g := range good {
		if _, err := r.store.Get(context.Background(), g.Bucket, g.Key); err != nil {
			t.Errorf("%s: %v", g.Key, err)
		}
	}
	m := indexer.CountsOf(r.ix)
	if m.Nacked != 0 || m.DeadLettered != int64(len(bad)) || m.Invalid != int64(len(bad)) {
		t.Errorf("nacked %d, dead-lettered %d, invalid %d; want 0, %d, %d", m.Nacked, m.DeadLettered, m.Invalid, len(bad), len(bad))
	}
}

// TestMalformedLeftToPolicy turns the copy off: the subscription's dead-letter policy moves
// the bad message after its configured delivery attempts, and valid messages still flow.
func TestMalformedLeftToPolicy(t *testing.T) {
	st, b := bootstrap(t, 5)
	ps := pubsubClient(t, st.ProjectID)
	r := startIndexerCopying(t, ps, indexstore.New(firestoreClient(t, st.ProjectID), b.Collection, nil), b, nil, false)
	pub := publish.New(ps, b.TopicName, nil)
	defer pub.Close()
	raw := ps.Publisher(b.TopicName)
	defer raw.Stop()
	if _, err := raw.Publish(context.Background(), &pubsub.Message{Data: []byte("garbage")}).Get(context.Background()); err != nil {
		t.Fatal(err)
	}
	good := []*record.Analysis{rec(record.Created, b.Bucket, "a", 1), rec(record.Created, b.Bucket, "b", 1)}
	publishAll(t, pub, good)
	got := receiveAll(t, ps, b.DeadLetterSubscriptionName, 1, 90*time.Second)
	if len(got) != 1 || string(got[0].Data) != "garbage" {
		t.Fatalf("dead letters: %d", len(got))
	}
	if got[0].Attributes["CloudPubSubDeadLetterSourceSubscription"] == "" {
		t.Errorf("dead letter without the policy's attributes: %v", got[0].Attributes)
	}
	if n := indexer.CountsOf(r.ix).Invalid; n < int64(b.MaxDeliveryAttempts) {
		t.Errorf("dead-lettered after %d deliveries, before the %d configured delivery attempts", n, b.MaxDeliveryAttempts)
	}
	eventually(t, "valid records indexed", func() bool { return settled(r) >= int64(len(good)) })
}

// TestGracefulShutdown stops an indexer while messages flow: when Run returns, every message
// it received has been decided (acked after its write, or nacked), none is left half done,
// and every acknowledged write is in the index.
func TestGracefulShutdown(t *testing.T) {
	st, b := bootstrap(t, 5)
	var recs []*record.Analysis
	for i := range 1000 {
		recs = append(recs, rec(record.Created, b.Bucket, fmt.Sprintf("k%04d", i), 1))
	}
	pub := publish.New(pubsubClient(t, st.ProjectID), b.TopicName, nil)
	defer pub.Close()
	publishAll(t, pub, recs)
	r := startIndexer(t, st.ProjectID, b, &indexer.Options{BatchWait: 50 * time.Millisecond})
	eventually(t, "first writes", func() bool { return settled(r) > 0 })
	r.stop()
	m := indexer.CountsOf(r.ix)
	if got, decided := m.Received, settled(r)+m.Nacked; got != decided {
		t.Fatalf("Run returned with %d received but %d decided", got, decided)
	}
	docs, err := r.store.List(context.Background(), b.Bucket, 100000)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(docs)) < m.Written {
		t.Fatalf("%d writes acknowledged, %d documents in the index", m.Written, len(docs))
	}
	if m.Written == int64(len(recs)) {
		t.Log("the indexer finished every record before it was stopped: the test proved little")
	}
}

// TestMetricsEndpoint scrapes the indexer's metrics through obs.Serve.
func TestMetricsEndpoint(t *testing.T) {
	st, b := bootstrap(t, 5)
	reg := obs.NewRegistry()
	r := startIndexer(t, st.ProjectID, b, &indexer.Options{Registerer: reg})
	srv, err := obs.Serve("127.0.0.1:0", reg, r.store.Ping)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	pub := publish.New(pubsubClient(t, st.ProjectID), b.TopicName, nil)
	defer pub.Close()
	publishAll(t, pub, []*record.Analysis{rec(record.Created, b.Bucket, "a", 2)})
	eventually(t, "first applied", func() bool { return settled(r) >= 1 })
	publishAll(t, pub, []*record.Analysis{rec(record.Created, b.Bucket, "a", 1), rec(record.Removed, b.Bucket, "b", 1)})
	eventually(t, "applied", func() bool { return settled(r) >= 3 })
	resp, err := http.Get("http://" + srv.Addr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		"imgpipe_indexer_messages_received_total 3", "imgpipe_indexer_documents_written_total 1",
		"imgpipe_indexer_documents_deleted_total 1", "imgpipe_indexer_records_stale_total 1",
		"imgpipe_indexer_messages_nacked_total 0", "imgpipe_indexer_messages_dead_lettered_total 0",
		"imgpipe_indexer_write_seconds_count 3", "imgpipe_indexer_batch_records_count",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	resp, err = http.Get("http://" + srv.Addr() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("/readyz %d", resp.StatusCode)
	}
}
