// Package e2e_test replays the analyzer's DLQ after a Vision outage, through the whole
// pipeline on the local stack, and checks that every image ends indexed exactly once.
package e2e_test

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/firestore"
	"cloud.google.com/go/pubsub/v2"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"imgpipe/dlq-replay/replay"
	"imgpipe/dlq-replay/sqsdlq"
	"imgpipe/internal/devstack"
	"imgpipe/internal/stacktest"
	"imgpipe/internal/visionstandin"
	"imgpipe/pkg/analyzer"
	"imgpipe/pkg/breaker"
	"imgpipe/pkg/indexer"
	"imgpipe/pkg/indexstore"
	"imgpipe/pkg/objects/s3objects"
	"imgpipe/pkg/publish"
	"imgpipe/pkg/queue/pubsubqueue"
	"imgpipe/pkg/queue/sqsqueue"
	"imgpipe/pkg/retry"
	"imgpipe/pkg/samples"
	"imgpipe/pkg/vision"
)

func TestMain(m *testing.M) { stacktest.Main(m, devstack.All) }

// TestReplayAfterVisionOutage breaks Vision, lets uploads reach the DLQ through the queue's
// redrive policy, fixes Vision, replays the DLQ and checks Firestore.
func TestReplayAfterVisionOutage(t *testing.T) {
	st := stacktest.Get(t)
	if st.VisionServer == nil {
		t.Fatal("the stack runs no in-process Vision stand-in")
	}
	res := stacktest.Bootstrap(t, st, devstack.Resources{MaxReceiveCount: 2, VisibilityTimeout: 5 * time.Second})
	log := zaptest.NewLogger(t, zaptest.Level(zap.ErrorLevel))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s3c, sqsc := st.NewS3Client(), st.NewSQSClient()

	// Vision is down: every call fails with 503 until the faults are cleared.
	if err := st.VisionServer.SetFaults(visionstandin.Faults{Transient: visionstandin.Transient{Rate: 1}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.VisionServer.SetFaults(visionstandin.Faults{}) })

	key, err := vision.NewKeyCredential(st.VisionKey)
	if err != nil {
		t.Fatal(err)
	}
	vc, err := vision.New(st.VisionEndpoint, key, &vision.Options{Retry: retry.Policy{MaxRetries: -1}})
	if err != nil {
		t.Fatal(err)
	}
	defer vc.Close()
	ps, err := pubsub.NewClient(ctx, st.ProjectID)
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Close()
	fs, err := firestore.NewClient(ctx, st.ProjectID)
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	pub := publish.New(ps, res.TopicName, nil)
	defer pub.Close()
	events, err := sqsqueue.New(sqsc, res.QueueURL, &sqsqueue.Options{Wait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	dlq, err := sqsqueue.New(sqsc, res.DLQURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	a, err := analyzer.New(analyzer.Deps{Queue: events, DLQ: dlq, Objects: s3objects.New(s3c), Vision: vc, Publisher: pub}, &analyzer.Options{
		Workers:           4,
		VisibilityTimeout: 5 * time.Second, DrainTimeout: 5 * time.Second, Logger: log.Named("analyzer"),
		Backoff: retry.Policy{BaseDelay: 200 * time.Millisecond, MaxDelay: time.Second},
		// Keep the breaker shut so that every receive reaches Vision and counts toward the
		// redrive policy quickly.
		Breaker: &breaker.Options{ConsecutiveFailures: 1 << 20, FailureRatio: -1},
	})
	if err != nil {
		t.Fatal(err)
	}
	store := indexstore.New(fs, res.Collection, nil)
	src := pubsubqueue.NewSubscription(ps.SubscriptionAdminClient, res.SubscriptionName, nil)
	ix, err := indexer.New(src, pubsubqueue.NewTopic(ps.TopicAdminClient, res.DeadLetterTopicName), store, &indexer.Options{Logger: log.Named("indexer")})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() {
		if err := a.Run(ctx); err != nil {
			t.Errorf("analyzer: %v", err)
		}
	})
	wg.Go(func() {
		if err := ix.Run(ctx); err != nil {
			t.Errorf("indexer: %v", err)
		}
	})

	const n = 4
	keys := map[string]bool{}
	for i := range n {
		body, err := samples.Image(int64(i+40), 160+i*8, 120+i*4, "png")
		if err != nil {
			t.Fatal(err)
		}
		k := fmt.Sprintf("%sreplay/img-%d.png", res.Prefix, i)
		if _, err := s3c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(res.Bucket), Key: aws.String(k), Body: bytes.NewReader(body)}); err != nil {
			t.Fatal(err)
		}
		keys[k] = true
	}
	docs := func() map[string]indexstore.Document {
		list, err := store.List(ctx, res.Bucket, 100)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]indexstore.Document{}
		for _, d := range list {
			out[d.Key] = d
		}
		return out
	}
	stacktest.WaitFor(t, "every upload dead-lettered", 2*time.Minute, func() (bool, string) {
		d, err := sqsdlq.New(sqsc, res.DLQURL, nil).Depth(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return d.Visible+d.NotVisible == n, fmt.Sprintf("DLQ depth %d+%d", d.Visible, d.NotVisible)
	})
	if d := docs(); len(d) != 0 {
		t.Fatalf("documents indexed while Vision was down: %v", d)
	}

	// Fix Vision, then replay: the source queue comes from the DLQ's redrive configuration.
	if err := st.VisionServer.SetFaults(visionstandin.Faults{}); err != nil {
		t.Fatal(err)
	}
	analysesBefore := st.VisionServer.Stats().Analyses
	srcs, err := sqsdlq.SourceQueues(ctx, sqsc, res.DLQURL)
	if err != nil || len(srcs) != 1 || srcs[0] != res.QueueURL {
		t.Fatalf("source queues %v: %v", srcs, err)
	}
	// A short hold: a receive whose answer is lost (fauxqs closes connections the SDK may
	// reuse) hides its batch until the hold ends, and the pass waits for it.
	sum, err := replay.Run(ctx, sqsdlq.New(sqsc, res.DLQURL, nil), sqsdlq.NewRouter(sqsc, srcs[0], nil), &replay.Options{Hold: 15 * time.Second})
	if err != nil || sum.Moved != n || sum.Partial() {
		t.Fatalf("replay %+v: %v", sum, err)
	}
	stacktest.WaitFor(t, "every replayed image indexed", 2*time.Minute, func() (bool, string) {
		d := docs()
		return len(d) >= n, fmt.Sprintf("%d documents", len(d))
	})
	// Let any duplicate delivery land before counting.
	stacktest.WaitFor(t, "the queue drained", time.Minute, func() (bool, string) {
		d, err := sqsdlq.New(sqsc, res.QueueURL, nil).Depth(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return d.Visible+d.NotVisible == 0, fmt.Sprintf("queue depth %d+%d", d.Visible, d.NotVisible)
	})
	got := docs()
	if len(got) != n {
		t.Fatalf("want exactly %d documents, got %d", n, len(got))
	}
	for k := range keys {
		if d, ok := got[k]; !ok || d.Caption == "" {
			t.Errorf("document for %s: %+v (present %v)", k, d, ok)
		}
	}
	// Exactly once: each replayed image was analysed once (no replay loop, no duplicate).
	if got := st.VisionServer.Stats().Analyses - analysesBefore; got != n {
		t.Errorf("%d successful Vision analyses after the fix, want %d", got, n)
	}
	if d, _ := sqsdlq.New(sqsc, res.DLQURL, nil).Depth(ctx); d.Visible+d.NotVisible != 0 {
		t.Fatalf("DLQ depth %d+%d after the replay", d.Visible, d.NotVisible)
	}
}
