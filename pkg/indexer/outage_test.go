package indexer_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"imgpipe/internal/devstack"
	"imgpipe/internal/stacktest"
	"imgpipe/pkg/indexer"
	"imgpipe/pkg/publish"
	"imgpipe/pkg/record"
)

// stream publishes a record for a new key every interval until stopped, and remembers the
// keys it published.
type stream struct {
	mu        sync.Mutex
	published []string
	stop      chan struct{}
	done      chan struct{}
}

func startStream(t testing.TB, pub *publish.Publisher, bucket, prefix string, interval time.Duration) *stream {
	s := &stream{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for i := 0; ; i++ {
			select {
			case <-s.stop:
				return
			case <-time.After(interval):
			}
			key := fmt.Sprintf("%s/%05d.jpg", prefix, i)
			if _, err := pub.Publish(context.Background(), rec(record.Created, bucket, key, 1)); err != nil {
				t.Errorf("publish: %v", err)
				return
			}
			s.mu.Lock()
			s.published = append(s.published, key)
			s.mu.Unlock()
		}
	}()
	t.Cleanup(func() { s.end() })
	return s
}

func (s *stream) count() int { s.mu.Lock(); defer s.mu.Unlock(); return len(s.published) }

// end stops the stream and returns every key it published. Safe to call twice.
func (s *stream) end() []string {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.published...)
}

// missing returns how many of keys have no document.
func missing(t testing.TB, r *running, bucket string, keys []string) int {
	docs, err := r.store.List(context.Background(), bucket, 100000)
	if err != nil {
		return len(keys)
	}
	got := map[string]bool{}
	for _, d := range docs {
		got[d.Key] = true
	}
	n := 0
	for _, k := range keys {
		if !got[k] {
			n++
		}
	}
	return n
}

// TestFirestoreRestart restarts the Firestore emulator (with its data) while a stream of
// records flows: the writes that fail meanwhile (a 2 s WriteTimeout makes every attempt
// during the restart fail) are held and retried, not nacked; nothing is dead-lettered; and
// every record ends indexed.
func TestFirestoreRestart(t *testing.T) {
	st, b := bootstrap(t, 5)
	r := startIndexer(t, st.ProjectID, b, &indexer.Options{RetryFor: 3 * time.Minute, WriteTimeout: 2 * time.Second})
	pub := publish.New(pubsubClient(t, st.ProjectID), b.TopicName, nil)
	defer pub.Close()
	s := startStream(t, pub, b.Bucket, "stream", 20*time.Millisecond)

	eventually(t, "records flowing", func() bool { return settled(r) >= 20 })
	if err := st.RestartFirestore(context.Background(), &devstack.RestartOptions{Down: 4 * time.Second}); err != nil {
		t.Fatal(err)
	}
	restarted := s.count()
	eventually(t, "records flowing after the restart", func() bool { return s.count() >= restarted+50 })
	keys := s.end()
	eventuallyWithin(t, 3*time.Minute, "every record indexed", func() bool { return missing(t, r, b.Bucket, keys) == 0 })

	m := indexer.CountsOf(r.ix)
	if m.DeadLettered != 0 || m.Invalid != 0 {
		t.Errorf("%d dead-lettered, %d invalid across a restart", m.DeadLettered, m.Invalid)
	}
	if m.Nacked != 0 {
		t.Errorf("%d messages nacked: a write that failed during the restart was not held", m.Nacked)
	}
	if m.Retried == 0 {
		t.Error("no write was retried: the restart broke nothing, the test proved nothing")
	}
	t.Logf("%d records, all indexed; %d writes retried while their messages were held", len(keys), m.Retried)
}

// TestStopDuringOutage stops an indexer whose messages are held while Firestore is
// unreachable: Run returns without waiting out RetryFor, and every message it received has
// been decided.
func TestStopDuringOutage(t *testing.T) {
	st, b := bootstrap(t, 100)
	r := startIndexer(t, st.ProjectID, b, &indexer.Options{RetryFor: 10 * time.Minute, WriteTimeout: 2 * time.Second})
	pub := publish.New(pubsubClient(t, st.ProjectID), b.TopicName, nil)
	defer pub.Close()
	publishAll(t, pub, []*record.Analysis{rec(record.Created, b.Bucket, "first", 1)})
	eventually(t, "first record indexed", func() bool { return settled(r) >= 1 })

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	outage := make(chan error, 1)
	go func() { outage <- st.Outage(ctx, devstack.Firestore, 5*time.Minute) }()
	stacktest.WaitFor(t, "Firestore cut off", 30*time.Second, func() (bool, string) {
		return st.FirestoreFront.Stats().Cut > 0, fmt.Sprintf("%+v", st.FirestoreFront.Stats())
	})
	var recs []*record.Analysis
	for i := range 20 {
		recs = append(recs, rec(record.Created, b.Bucket, fmt.Sprintf("held/%d", i), 1))
	}
	publishAll(t, pub, recs)
	eventually(t, "writes held and retried", func() bool { return indexer.CountsOf(r.ix).Retried >= 5 })

	stopped := make(chan struct{})
	go func() { r.stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(2 * time.Minute):
		t.Fatal("Run did not return while its messages were held")
	}
	m := indexer.CountsOf(r.ix)
	if got, decided := m.Received, settled(r)+m.Nacked+m.DeadLettered; got != decided {
		t.Fatalf("Run returned with %d received but %d decided", got, decided)
	}
	if m.Nacked == 0 {
		t.Error("no held message was nacked at the stop")
	}
	cancel()
	<-outage
}

// TestHeldWritesResumeWhenFirestoreReturns cuts Firestore off for 10 s while records wait to
// be written, with attempts that never time out by themselves: the Firestore client retries
// inside them with a backoff that has grown to seconds by the outage's end. Once Firestore
// answers again, the held writes are told, cut their attempt or wait short (Revived) and
// write.
func TestHeldWritesResumeWhenFirestoreReturns(t *testing.T) {
	m := outageWhileWriting(t, &indexer.Options{RetryFor: 10 * time.Minute, WriteTimeout: 10 * time.Minute})
	if m.Revived == 0 {
		t.Error("no held write was cut short when Firestore came back")
	}
	if m.Nacked != 0 || m.DeadLettered != 0 {
		t.Errorf("%d nacked, %d dead-lettered", m.Nacked, m.DeadLettered)
	}
}

// TestNotHoldingLeavesAttemptsWhole: with RetryFor negative (--retry-for 0) nothing is held,
// so Firestore's return must not cut an attempt short either: the attempts ride out the same
// outage inside the Firestore client's retries, and none is turned into a nack.
func TestNotHoldingLeavesAttemptsWhole(t *testing.T) {
	m := outageWhileWriting(t, &indexer.Options{RetryFor: -1, WriteTimeout: 10 * time.Minute})
	if m.Nacked != 0 || m.Revived != 0 || m.Retried != 0 {
		t.Errorf("%d nacked, %d revived, %d retried; want none", m.Nacked, m.Revived, m.Retried)
	}
}

// outageWhileWriting runs an indexer with opts, cuts Firestore off for 10 s, publishes 50
// records during the outage and waits until every one is indexed.
func outageWhileWriting(t *testing.T, opts *indexer.Options) indexer.Counts {
	t.Helper()
	st, b := bootstrap(t, 100)
	r := startIndexer(t, st.ProjectID, b, opts)
	pub := publish.New(pubsubClient(t, st.ProjectID), b.TopicName, nil)
	defer pub.Close()
	publishAll(t, pub, []*record.Analysis{rec(record.Created, b.Bucket, "first", 1)})
	eventually(t, "first record indexed", func() bool { return settled(r) >= 1 })

	outage := make(chan error, 1)
	go func() { outage <- st.Outage(context.Background(), devstack.Firestore, 10*time.Second) }()
	stacktest.WaitFor(t, "Firestore cut off", 30*time.Second, func() (bool, string) {
		return st.FirestoreFront.Stats().Cut > 0, fmt.Sprintf("%+v", st.FirestoreFront.Stats())
	})
	var keys []string
	var recs []*record.Analysis
	for i := range 50 {
		keys = append(keys, fmt.Sprintf("held/%02d", i))
		recs = append(recs, rec(record.Created, b.Bucket, keys[i], 1))
	}
	publishAll(t, pub, recs)
	if err := <-outage; err != nil {
		t.Fatal(err)
	}
	eventuallyWithin(t, 5*time.Minute, "every record indexed", func() bool { return missing(t, r, b.Bucket, keys) == 0 })
	return indexer.CountsOf(r.ix)
}
