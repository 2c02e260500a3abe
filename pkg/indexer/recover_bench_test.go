package indexer_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/firestore"
	"cloud.google.com/go/pubsub/v2"

	"imgpipe/internal/devstack"
	"imgpipe/internal/stacktest"
	"imgpipe/pkg/indexer"
	"imgpipe/pkg/indexstore"
	"imgpipe/pkg/publish"
	"imgpipe/pkg/record"
)

// BenchmarkRecovery measures the time to recover from a Firestore outage: an indexer takes a
// stream of 200 records (one every 20 ms); 1 s in, Firestore goes away, and the figure is the
// time from its return to the last record indexed.
//
// outage=cut-4s and cut-30s: Firestore's clients are cut off and refused for that long
// (devstack Outage; the emulator keeps running, and keeps the locks of transactions whose
// clients were cut off until it expires them); outage=restart-4s: the emulator is restarted
// with its data, 4 s down (RestartFirestore; transactions open across it are refused after).
// mode=nack nacks a message at its first failed write (RetryFor < 0, the behaviour before
// holding); mode=hold holds it and retries (the default). reconnect=grpc-default gives the
// indexer's Firestore client gRPC's own reconnect backoff (up to 120 s) instead of
// gcpclient's (up to 2 s). The subscription is the local stack's: 5 delivery attempts and no
// retry policy (the emulator loses messages in that path), so a nacked message comes back at
// once. Besides recover-s each case reports the messages nacked, the
// records dead-lettered, the records still missing after recoverWait and, of those, how many a
// plain subscriber still got from the subscription once the indexer stopped (back-after-stop;
// the DIAG lines log the counters and the missing keys).
//
//	go test -run '^$' -bench Recovery -benchtime 1x -count 2 -timeout 60m ./pkg/indexer/
func BenchmarkRecovery(b *testing.B) {
	type outage struct {
		name    string
		restart bool
		down    time.Duration
	}
	for _, c := range []struct {
		outage   outage
		mode     string
		retryFor time.Duration
		defaults bool // gRPC's default reconnect backoff
	}{
		{outage{"cut-4s", false, 4 * time.Second}, "nack", -1, false},
		{outage{"cut-4s", false, 4 * time.Second}, "hold", 0, false},
		{outage{"restart-4s", true, 4 * time.Second}, "nack", -1, false},
		{outage{"restart-4s", true, 4 * time.Second}, "hold", 0, false},
		{outage{"cut-30s", false, 30 * time.Second}, "nack", -1, false},
		{outage{"cut-30s", false, 30 * time.Second}, "hold", 0, false},
		{outage{"cut-30s", false, 30 * time.Second}, "hold", 0, true},
	} {
		name := "outage=" + c.outage.name + "/mode=" + c.mode
		if c.defaults {
			name += "/reconnect=grpc-default"
		}
		b.Run(name, func(b *testing.B) {
			var recover time.Duration
			var nacked, dead, stranded, cameBack int64
			for range b.N {
				r, n, d, m, cb := recoverOnce(b, c.outage.restart, c.outage.down, c.retryFor, c.defaults)
				cameBack += cb
				recover += r
				nacked += n
				dead += d
				stranded += m
			}
			b.ReportMetric(recover.Seconds()/float64(b.N), "recover-s")
			b.ReportMetric(float64(nacked)/float64(b.N), "nacks")
			b.ReportMetric(float64(dead)/float64(b.N), "dead-lettered")
			b.ReportMetric(float64(stranded)/float64(b.N), "missing")
			// Of the missing records, those a plain subscriber got from the subscription after
			// the indexer stopped: the rest were no longer deliverable.
			b.ReportMetric(float64(cameBack)/float64(b.N), "back-after-stop")
		})
	}
}

// recoverWait bounds the wait for the last record. A run that ends with records neither
// indexed nor dead-lettered reports them as missing, and recover-s is then this bound (a
// lower bound of the real time), not a failure: the benchmark measures, the tests assert.
const recoverWait = 4 * time.Minute

func recoverOnce(b *testing.B, restart bool, down, retryFor time.Duration, grpcDefaults bool) (recover time.Duration, nacked, deadLettered, stranded, cameBack int64) {
	st := stacktest.Get(b)
	res := stacktest.Bootstrap(b, st, devstack.Resources{})
	fs := firestoreClient(b, st.ProjectID)
	if grpcDefaults {
		c, err := firestore.NewClient(context.Background(), st.ProjectID)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		fs = c
	}
	r := startIndexerOn(b, pubsubClient(b, st.ProjectID), indexstore.New(fs, res.Collection, nil), res, &indexer.Options{RetryFor: retryFor})
	defer r.stop()
	pub := publish.New(pubsubClient(b, st.ProjectID), res.TopicName, nil)
	defer pub.Close()
	// Records the subscription's dead-letter policy moves, counted as they arrive.
	var dead atomic.Int64
	dctx, stopDead := context.WithCancel(context.Background())
	deadDone := make(chan struct{})
	go func() {
		defer close(deadDone)
		_ = pubsubClient(b, st.ProjectID).Subscriber(res.DeadLetterSubscriptionName).Receive(dctx, func(_ context.Context, m *pubsub.Message) {
			m.Ack()
			dead.Add(1)
		})
	}()
	defer func() { stopDead(); <-deadDone }()
	s := startStream(b, pub, res.Bucket, "recover", 20*time.Millisecond)
	time.Sleep(time.Second)
	var err error
	if restart {
		err = st.RestartFirestore(context.Background(), &devstack.RestartOptions{Down: down})
	} else {
		err = st.Outage(context.Background(), devstack.Firestore, down)
	}
	if err != nil {
		b.Fatal(err)
	}
	back := time.Now()
	stacktest.WaitFor(b, "200 records published", time.Minute, func() (bool, string) { return s.count() >= 200, fmt.Sprint(s.count()) })
	keys := s.end()[:200]
	for {
		m := indexer.CountsOf(r.ix)
		left := int64(missing(b, r, res.Bucket, keys)) - m.DeadLettered - dead.Load()
		took := time.Since(back)
		if left <= 0 || took >= recoverWait {
			if left > 0 {
				b.Logf("%d records neither indexed nor dead-lettered %s after the outage", left, took.Round(time.Second))
				cameBack = diagnose(b, st, r, res, keys, len(s.end()))
			}
			return took, m.Nacked, m.DeadLettered + dead.Load(), max(left, 0), cameBack
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// diagnose explains missing records: it logs the indexer's counters and the missing keys,
// stops the indexer and receives from the subscription with a plain client for 90 s. It
// returns how many missing records came back that way (still in the subscription); the
// others were neither indexed, dead-lettered nor deliverable any more.
func diagnose(b *testing.B, st *devstack.Stack, r *running, res *devstack.Bootstrapped, keys []string, published int) int64 {
	m := indexer.CountsOf(r.ix)
	b.Logf("DIAG published %d; received %d written %d stale %d nacked %d invalid %d deadlettered %d retried %d",
		published, m.Received, m.Written, m.Stale, m.Nacked, m.Invalid, m.DeadLettered, m.Retried)
	docs, _ := r.store.List(context.Background(), res.Bucket, 100000)
	have := map[string]bool{}
	for _, d := range docs {
		have[d.Key] = true
	}
	miss := map[string]bool{}
	for _, k := range keys {
		if !have[k] {
			miss[k] = true
		}
	}
	b.Logf("DIAG %d docs in index; missing of first 200: %v", len(docs), miss)
	t0 := time.Now()
	r.stop()
	b.Logf("DIAG indexer stopped in %s", time.Since(t0).Round(time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var mu sync.Mutex
	got := map[string]int{}
	any := 0
	err := pubsubClient(b, st.ProjectID).Subscriber(res.SubscriptionName).Receive(ctx, func(_ context.Context, msg *pubsub.Message) {
		msg.Ack()
		var a record.Analysis
		_ = json.Unmarshal(msg.Data, &a)
		mu.Lock()
		defer mu.Unlock()
		any++
		if miss[a.Key] {
			da := -1
			if msg.DeliveryAttempt != nil {
				da = *msg.DeliveryAttempt
			}
			got[a.Key] = da
			b.Logf("DIAG missing %s arrived %s after stop, attempt %d", a.Key, time.Since(t0).Round(100*time.Millisecond), da)
		}
	})
	if err != nil {
		b.Logf("DIAG receive after stop: %v", err)
	}
	b.Logf("DIAG after stop: %d messages arrived, %d of %d missing ones", any, len(got), len(miss))
	return int64(len(got))
}
