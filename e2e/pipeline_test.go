// Package e2e_test runs the whole pipeline on the local stack: uploads into the S3 stand-in,
// notifications through SQS, the analyzer calling the Vision stand-in and publishing to the
// Pub/Sub emulator, the indexer writing to the Firestore emulator.
package e2e_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/firestore"
	"cloud.google.com/go/pubsub/v2"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"imgpipe/internal/devstack"
	"imgpipe/internal/stacktest"
	"imgpipe/pkg/analyzer"
	"imgpipe/pkg/failure"
	"imgpipe/pkg/indexer"
	"imgpipe/pkg/indexstore"
	"imgpipe/pkg/objects/s3objects"
	"imgpipe/pkg/publish"
	"imgpipe/pkg/queue/pubsubqueue"
	"imgpipe/pkg/queue/sqsqueue"
	"imgpipe/pkg/record"
	"imgpipe/pkg/s3event"
	"imgpipe/pkg/samples"
	"imgpipe/pkg/uploader"
	"imgpipe/pkg/vision"
)

func TestMain(m *testing.M) { stacktest.Main(m, devstack.All) }

// pipeline is one analyzer and one indexer running in this process against a fresh set of
// resources on the shared stack.
type pipeline struct {
	st    *devstack.Stack
	res   *devstack.Bootstrapped
	s3    *s3.Client
	sqs   *sqs.Client
	store *indexstore.Store
	stop  func()
}

func startPipeline(t *testing.T, log *zap.Logger) *pipeline {
	t.Helper()
	st := stacktest.Get(t)
	res := stacktest.Bootstrap(t, st, devstack.Resources{VisibilityTimeout: 10 * time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	p := &pipeline{st: st, res: res, s3: st.NewS3Client(), sqs: st.NewSQSClient()}

	key, err := vision.NewKeyCredential(st.VisionKey)
	if err != nil {
		t.Fatal(err)
	}
	vc, err := vision.New(st.VisionEndpoint, key, nil)
	if err != nil {
		t.Fatal(err)
	}
	ps, err := pubsub.NewClient(ctx, st.ProjectID)
	if err != nil {
		t.Fatal(err)
	}
	fs, err := firestore.NewClient(ctx, st.ProjectID)
	if err != nil {
		t.Fatal(err)
	}
	pub := publish.New(ps, res.TopicName, nil)
	events, err := sqsqueue.New(p.sqs, res.QueueURL, &sqsqueue.Options{Wait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	dlq, err := sqsqueue.New(p.sqs, res.DLQURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	store := s3objects.New(p.s3)
	a, err := analyzer.New(analyzer.Deps{Queue: events, DLQ: dlq, Objects: store, Vision: vc, Publisher: pub, Thumbnails: store}, &analyzer.Options{
		Workers: 8, ThumbnailPrefix: "thumbnail/",
		VisibilityTimeout: 10 * time.Second, DrainTimeout: 10 * time.Second, Logger: log.Named("analyzer"),
	})
	if err != nil {
		t.Fatal(err)
	}
	p.store = indexstore.New(fs, res.Collection, nil)
	src := pubsubqueue.NewSubscription(ps.SubscriptionAdminClient, res.SubscriptionName, nil)
	ix, err := indexer.New(src, pubsubqueue.NewTopic(ps.TopicAdminClient, res.DeadLetterTopicName), p.store, &indexer.Options{Logger: log.Named("indexer")})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
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
	var once sync.Once
	p.stop = func() {
		once.Do(func() {
			cancel()
			wg.Wait()
			pub.Close()
			ps.Close()
			fs.Close()
			vc.Close()
		})
	}
	t.Cleanup(p.stop)
	return p
}

func writeFile(t *testing.T, path string, body []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, body, 0o644); err != nil {
		t.Fatal(err)
	}
}

func (p *pipeline) put(t *testing.T, key string, body []byte) {
	t.Helper()
	_, err := p.s3.PutObject(context.Background(), &s3.PutObjectInput{
		Bucket: aws.String(p.res.Bucket), Key: aws.String(key), Body: bytes.NewReader(body),
	})
	if err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}

// drainDLQ receives every message from the DLQ and returns key -> failure.
func (p *pipeline) drainDLQ(t *testing.T) map[string]failure.Details {
	t.Helper()
	out := map[string]failure.Details{}
	for _, d := range stacktest.DrainDLQ(t, p.sqs, p.res.DLQURL) {
		msg, err := s3event.Parse([]byte(d.Body))
		if err != nil {
			t.Fatalf("DLQ body does not parse: %v", err)
		}
		for _, r := range msg.Records {
			out[r.Key] = d.Failure
		}
	}
	return out
}

func (p *pipeline) docs(t *testing.T) map[string]indexstore.Document {
	t.Helper()
	docs, err := p.store.List(context.Background(), p.res.Bucket, 1000)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]indexstore.Document{}
	for _, d := range docs {
		out[d.Key] = d
	}
	return out
}

// TestEndToEnd uploads generated images and the bad samples and checks that every good image
// ends as exactly one correct document, the bad ones in the DLQ with their reasons and no
// document, and a deleted object's document disappears.
func TestEndToEnd(t *testing.T) {
	p := startPipeline(t, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)))
	const n = 12
	// Generated images and the bad samples go into one folder and through the uploader's
	// code path, as a user's drop would.
	dir := t.TempDir()
	type want struct {
		w, h   int
		reason string // empty for a good image
	}
	byRel := map[string]want{}
	formats := []string{"jpeg", "png", "gif"}
	for i := range n {
		w, h := 200+i*10, 150+i*7
		format := formats[i%len(formats)]
		body, err := samples.Image(int64(i), w, h, format)
		if err != nil {
			t.Fatal(err)
		}
		rel := fmt.Sprintf("batch/img %02d+été.%s", i, format)
		writeFile(t, filepath.Join(dir, rel), body)
		byRel[rel] = want{w: w, h: h}
	}
	sampleDir := t.TempDir()
	all, err := samples.Generate(sampleDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range all {
		if s.Good {
			continue
		}
		body, err := os.ReadFile(s.Path(sampleDir))
		if err != nil {
			t.Fatal(err)
		}
		rel := "bad/" + filepath.ToSlash(s.Name)
		writeFile(t, filepath.Join(dir, filepath.FromSlash(rel)), body)
		byRel[rel] = want{reason: s.WantReason}
	}
	up, err := uploader.New(p.s3, p.res.Bucket, p.res.Prefix, &uploader.Options{IncludeNonImages: true})
	if err != nil {
		t.Fatal(err)
	}
	sum, err := up.Put(context.Background(), []string{dir})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Uploaded != len(byRel) || sum.Failed != 0 {
		t.Fatalf("uploader: %d uploaded, %d failed, want %d uploaded", sum.Uploaded, sum.Failed, len(byRel))
	}
	wants := map[string]size{}
	badReasons := map[string]string{}
	for _, f := range sum.Files {
		rel, err := filepath.Rel(dir, f.Path)
		if err != nil {
			t.Fatal(err)
		}
		w, ok := byRel[filepath.ToSlash(rel)]
		if !ok {
			t.Fatalf("uploader reported a file it was not given: %s", f.Path)
		}
		if w.reason != "" {
			badReasons[f.Key] = w.reason
		} else {
			wants[f.Key] = size{w.w, w.h}
		}
	}
	// An object outside the prefix raises no notification and is never indexed.
	body, _ := samples.Image(99, 100, 100, "png")
	p.put(t, "elsewhere/not-watched.png", body)

	stacktest.WaitFor(t, fmt.Sprintf("%d documents", n), 3*time.Minute, func() (bool, string) {
		d := p.docs(t)
		return len(d) >= n, fmt.Sprintf("%d documents", len(d))
	})
	failed := map[string]failure.Details{}
	stacktest.WaitFor(t, "every bad file in the DLQ", 2*time.Minute, func() (bool, string) {
		for k, f := range p.drainDLQ(t) {
			failed[k] = f
		}
		return len(failed) >= len(badReasons), fmt.Sprintf("%d of %d dead-lettered: %v", len(failed), len(badReasons), keys(failed))
	})

	docs := p.docs(t)
	if len(docs) != n {
		t.Errorf("want exactly %d documents, got %d: %v", n, len(docs), keysDocs(docs))
	}
	for key, w := range wants {
		d, ok := docs[key]
		if !ok {
			t.Errorf("no document for %q", key)
			continue
		}
		if d.Width != w.w || d.Height != w.h || d.Bucket != p.res.Bucket || d.SchemaVersion != record.SchemaVersion ||
			d.Event != record.Created || d.Sequencer == "" || d.Caption == "" || len(d.Tags) == 0 || d.ModelVersion == "" ||
			d.ContentType == "" || d.Size == 0 || d.AnalyzedAt.IsZero() || d.ETag == "" {
			t.Errorf("document for %q is incomplete: %+v", key, d)
		}
		got, err := p.store.Get(context.Background(), p.res.Bucket, key)
		if err != nil || got.Key != key {
			t.Errorf("lookup by key %q: %v", key, err)
		}
		// Its thumbnail: in the key's folder, named by the event's sequencer, in the bucket.
		if dir := analyzer.ThumbnailDir("thumbnail/", p.res.Bucket, key); !strings.HasPrefix(d.ThumbnailKey, dir+d.Sequencer+"-") {
			t.Errorf("document for %q has thumbnail key %q, want one under %q at its sequencer", key, d.ThumbnailKey, dir)
		} else if th, err := p.s3.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(p.res.Bucket), Key: aws.String(d.ThumbnailKey)}); err != nil ||
			aws.ToString(th.ContentType) != "image/jpeg" || aws.ToInt64(th.ContentLength) == 0 {
			t.Errorf("thumbnail %q of %q: %v", d.ThumbnailKey, key, err)
		}
	}
	for key, reason := range badReasons {
		f, ok := failed[key]
		switch {
		case !ok:
			t.Errorf("bad file %q not in the DLQ", key)
		case f.Reason != reason || f.Class.String() != "permanent" || f.SourceQueue != p.res.QueueURL || f.Attempts != 1:
			t.Errorf("bad file %q dead-lettered as %+v, want permanent %q on first attempt", key, f, reason)
		}
		if _, isDoc := docs[key]; isDoc {
			t.Errorf("bad file %q has a document", key)
		}
	}

	// Delete one object: its document and its thumbnail disappear; the others stay.
	var victim string
	for k := range wants {
		victim = k
		break
	}
	thumbGone := func(key string) (bool, string) {
		ks, err := s3objects.New(p.s3).List(context.Background(), p.res.Bucket, analyzer.ThumbnailDir("thumbnail/", p.res.Bucket, key))
		return err == nil && len(ks) == 0, fmt.Sprintf("thumbnails %q, %v", ks, err)
	}
	if _, err := p.s3.DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: aws.String(p.res.Bucket), Key: aws.String(victim)}); err != nil {
		t.Fatal(err)
	}
	stacktest.WaitFor(t, "the deleted object's document to go", time.Minute, func() (bool, string) {
		_, ok := p.docs(t)[victim]
		return !ok, "still there"
	})
	if got := len(p.docs(t)); got != n-1 {
		t.Errorf("after one delete: %d documents, want %d", got, n-1)
	}
	stacktest.WaitFor(t, "the deleted object's thumbnail to go", time.Minute, func() (bool, string) { return thumbGone(victim) })
	if gone, why := thumbGone(victimOther(wants, victim)); gone {
		t.Errorf("another image's thumbnail went with the deleted one: %s", why)
	}
	// Search by tag finds documents (newest first) once the composite index exists; the
	// emulator needs none.
	some := docs[victimOther(wants, victim)]
	hits, err := p.store.SearchTag(context.Background(), some.Tags[0].Name, 50)
	if err != nil || len(hits) == 0 {
		t.Errorf("search by tag %q: %d hits, %v", some.Tags[0].Name, len(hits), err)
	}
	for i := 1; i < len(hits); i++ {
		if hits[i].AnalyzedAt.After(hits[i-1].AnalyzedAt) {
			t.Errorf("search results not newest first")
		}
	}
}

type size struct{ w, h int }

func victimOther(wants map[string]size, victim string) string {
	for k := range wants {
		if k != victim {
			return k
		}
	}
	return ""
}

func keys(m map[string]failure.Details) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func keysDocs(m map[string]indexstore.Document) string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}
