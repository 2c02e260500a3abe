package analyzer

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"imgpipe/internal/devstack"
	"imgpipe/internal/stacktest"
	"imgpipe/internal/visionstandin"
	"imgpipe/pkg/autoscale"
	"imgpipe/pkg/awsclient"
	"imgpipe/pkg/breaker"
	"imgpipe/pkg/failure"
	"imgpipe/pkg/objects/s3objects"
	"imgpipe/pkg/obs"
	"imgpipe/pkg/publish"
	"imgpipe/pkg/queue"
	"imgpipe/pkg/queue/sqsqueue"
	"imgpipe/pkg/ratelimit"
	"imgpipe/pkg/record"
	"imgpipe/pkg/retry"
	"imgpipe/pkg/samples"
	"imgpipe/pkg/vision"
)

// The tests of this file share one Vision stand-in, whose faults and statistics are global:
// they must not run in parallel. Each uses its own images (distinct seeds), so per-image
// statistics are its own.
func TestMain(m *testing.M) {
	stacktest.Main(m, devstack.SQS|devstack.S3|devstack.PubSub|devstack.Vision)
}

// rig is a fresh set of resources on the shared stack, with the clients an analyzer needs
// and a publisher that records what it published.
type rig struct {
	st  *devstack.Stack
	res *devstack.Bootstrapped
	s3  *s3.Client
	sqs *sqs.Client
	// calls counts the SQS calls made through sqs, the analyzers' included.
	calls *prometheus.CounterVec
	ps    *pubsub.Client
	pub   *recorder
	log   *zap.Logger
	// stats0 is the stand-in's statistics when the rig was made: they are per process, and
	// a test run with -count=2 sees its images twice.
	stats0 visionstandin.Stats
}

func newRig(t testing.TB, res devstack.Resources) *rig {
	t.Helper()
	st := stacktest.Get(t)
	if err := st.VisionServer.SetFaults(visionstandin.Faults{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.VisionServer.SetFaults(visionstandin.Faults{}) })
	b := stacktest.Bootstrap(t, st, res)
	ps, err := pubsub.NewClient(context.Background(), st.ProjectID)
	if err != nil {
		t.Fatal(err)
	}
	p := publish.New(ps, b.TopicName, nil)
	t.Cleanup(func() {
		p.Close()
		ps.Close()
	})
	calls := NewSQSCalls()
	sqsClient := sqs.NewFromConfig(st.AWSConfig(), func(o *sqs.Options) {
		o.BaseEndpoint = aws.String(st.SQSEndpoint)
		o.APIOptions = append(o.APIOptions, awsclient.CountCalls(calls))
	})
	r := &rig{
		st: st, res: b, s3: st.NewS3Client(), sqs: sqsClient, calls: calls, ps: ps,
		pub:    &recorder{next: p, count: map[string]int{}, last: map[string]record.Analysis{}},
		log:    zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)),
		stats0: st.VisionServer.Stats(),
	}
	r.dropTestEvent(t)
	return r
}

// dropTestEvent removes the s3:TestEvent that configuring the bucket's notifications sent, so
// that the tests count only their own messages.
func (r *rig) dropTestEvent(t testing.TB) {
	t.Helper()
	for range 5 {
		resp, err := r.sqs.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{
			QueueUrl: aws.String(r.res.QueueURL), MaxNumberOfMessages: 10, WaitTimeSeconds: 1,
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range resp.Messages {
			if !strings.Contains(aws.ToString(m.Body), "s3:TestEvent") {
				t.Fatalf("unexpected message on a fresh queue: %.200s", aws.ToString(m.Body))
			}
			if _, err := r.sqs.DeleteMessage(context.Background(), &sqs.DeleteMessageInput{QueueUrl: aws.String(r.res.QueueURL), ReceiptHandle: m.ReceiptHandle}); err != nil {
				t.Fatal(err)
			}
			return
		}
	}
	t.Fatal("no s3:TestEvent on the fresh queue")
}

// recorder counts what the analyzers published, by object key, and keeps each key's last
// record.
type recorder struct {
	next  Publisher
	mu    sync.Mutex
	count map[string]int
	last  map[string]record.Analysis
}

func (r *recorder) Publish(ctx context.Context, rec *record.Analysis) (string, error) {
	id, err := r.next.Publish(ctx, rec)
	if err == nil {
		r.mu.Lock()
		r.count[rec.Key]++
		r.last[rec.Key] = *rec
		r.mu.Unlock()
	}
	return id, err
}

// lastRecord is the last record published for key.
func (r *recorder) lastRecord(key string) (record.Analysis, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rec, ok := r.last[key]
	return rec, ok
}

func (r *recorder) counts() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]int, len(r.count))
	for k, v := range r.count {
		out[k] = v
	}
	return out
}

// visionClient returns a client of the stand-in; fast retries unless opts say otherwise.
func (r *rig) visionClient(t testing.TB, opts *vision.Options) *vision.Client {
	t.Helper()
	key, err := vision.NewKeyCredential(r.st.VisionKey)
	if err != nil {
		t.Fatal(err)
	}
	o := vision.Options{}
	if opts != nil {
		o = *opts
	}
	if o.RateLimit == nil {
		o.RateLimit = ratelimit.NewBucket(200, 50, nil)
	}
	if o.Retry == (retry.Policy{}) {
		o.Retry = retry.Policy{MaxRetries: 3, BaseDelay: 100 * time.Millisecond, MaxDelay: time.Second}
	}
	vc, err := vision.New(r.st.VisionEndpoint, key, &o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { vc.Close() })
	return vc
}

// running is one analyzer running in the background.
type running struct {
	a      *Analyzer
	cancel context.CancelFunc
	done   chan struct{}
}

// stop cancels the analyzer's context (SIGTERM) and waits for Run to return.
func (x *running) stop() {
	x.cancel()
	<-x.done
}

// startWith varies how an analyzer of the rig reaches its queue.
type startWith struct {
	wait time.Duration                   // the long-poll wait; default 1s
	wrap func(queue.Source) queue.Source // wraps the event queue (failure injection)
}

// deps are the edges of an analyzer on the rig's resources: the SQS and S3 drivers over the
// stand-ins, vc and the recording publisher.
func (r *rig) deps(t testing.TB, vc Vision, with *startWith) Deps {
	t.Helper()
	w := startWith{wait: time.Second}
	if with != nil && with.wait != 0 {
		w.wait = with.wait
	}
	events, err := sqsqueue.New(r.sqs, r.res.QueueURL, &sqsqueue.Options{Wait: w.wait})
	if err != nil {
		t.Fatal(err)
	}
	dlq, err := sqsqueue.New(r.sqs, r.res.DLQURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	var src queue.Source = events
	if with != nil && with.wrap != nil {
		src = with.wrap(events)
	}
	return Deps{Queue: src, DLQ: dlq, Objects: s3objects.New(r.s3), Vision: vc, Publisher: r.pub}
}

// start runs an analyzer. It is stopped at the end of the test.
func (r *rig) start(t testing.TB, vc Vision, opts Options, with *startWith) *running {
	t.Helper()
	if opts.Backoff == (retry.Policy{}) {
		opts.Backoff = retry.Policy{BaseDelay: time.Second, MaxDelay: 2 * time.Second}
	}
	if opts.DepthInterval == 0 {
		opts.DepthInterval = time.Second
	}
	opts.Logger = r.log
	a, err := New(r.deps(t, vc, with), &opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	x := &running{a: a, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(x.done)
		if err := a.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	t.Cleanup(x.stop)
	return x
}

// putImages uploads n distinct generated images and returns key -> bytes.
func (r *rig) putImages(t testing.TB, seed int64, n int) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for i := range n {
		body, err := samples.Image(seed+int64(i), 120+i, 90+i, "png")
		if err != nil {
			t.Fatal(err)
		}
		key := fmt.Sprintf("%simg-%d-%02d.png", r.res.Prefix, seed, i)
		r.put(t, key, body)
		out[key] = body
	}
	return out
}

func (r *rig) put(t testing.TB, key string, body []byte) {
	t.Helper()
	_, err := r.s3.PutObject(context.Background(), &s3.PutObjectInput{
		Bucket: aws.String(r.res.Bucket), Key: aws.String(key), Body: bytes.NewReader(body),
	})
	if err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}

// waitPublished waits until every key was published at least once.
func (r *rig) waitPublished(t *testing.T, images map[string][]byte, timeout time.Duration) {
	t.Helper()
	stacktest.WaitFor(t, fmt.Sprintf("%d images published", len(images)), timeout, func() (bool, string) {
		c := r.pub.counts()
		missing := 0
		for k := range images {
			if c[k] == 0 {
				missing++
			}
		}
		return missing == 0, fmt.Sprintf("%d of %d missing", missing, len(images))
	})
}

// checkOnce asserts that every image was published once by the analyzers, analysed once by
// Vision, and landed on the subscription as one Pub/Sub message.
func (r *rig) checkOnce(t *testing.T, images map[string][]byte) {
	t.Helper()
	c := r.pub.counts()
	stats := r.st.VisionServer.Stats()
	for k, body := range images {
		if c[k] != 1 {
			t.Errorf("%s published %d times, want 1", k, c[k])
		}
		if n := stats.AnalysedCount(body) - r.stats0.AnalysedCount(body); n != 1 {
			t.Errorf("%s analysed %d times by Vision, want 1", k, n)
		}
	}
	landed := r.landed(t, len(images))
	for k := range images {
		if n := len(landed[k]); n != 1 {
			t.Errorf("%s landed on the subscription as %d distinct messages, want 1", k, n)
		}
	}
}

// landed receives from the bootstrapped subscription until want keys were seen (or a
// deadline), then a little longer to catch duplicates; it returns key -> distinct message IDs.
func (r *rig) landed(t *testing.T, want int) map[string]map[string]bool {
	t.Helper()
	var mu sync.Mutex
	out := map[string]map[string]bool{}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var quiet *time.Timer
	err := r.ps.Subscriber(r.res.SubscriptionName).Receive(ctx, func(_ context.Context, m *pubsub.Message) {
		m.Ack()
		rec, err := record.Unmarshal(m.Data)
		if err != nil {
			t.Errorf("published record does not parse: %v", err)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if out[rec.Key] == nil {
			out[rec.Key] = map[string]bool{}
		}
		out[rec.Key][m.ID] = true
		if len(out) >= want && quiet == nil {
			quiet = time.AfterFunc(time.Second, cancel)
		}
	})
	if err != nil {
		t.Fatalf("receive from the subscription: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if quiet != nil {
		quiet.Stop()
	}
	return out
}

type dead struct {
	body    string
	failure failure.Details
}

// dlqContents receives everything on the DLQ (deleting it).
func (r *rig) dlqContents(t *testing.T) []dead {
	t.Helper()
	var out []dead
	for _, d := range stacktest.DrainDLQ(t, r.sqs, r.res.DLQURL) {
		out = append(out, dead{body: d.Body, failure: d.Failure})
	}
	return out
}

func (r *rig) checkDLQEmpty(t *testing.T) {
	t.Helper()
	if d := r.dlqContents(t); len(d) > 0 {
		for _, m := range d {
			t.Errorf("unexpected DLQ message (%s %s): %.200s", m.failure.Reason, m.failure.Class, m.body)
		}
	}
}

// TestThrottleStorm: the stand-in allows 4 calls/s and the client asks for far more; the
// client backs off on 429s and every image is still analysed once, none dead-lettered.
func TestThrottleStorm(t *testing.T) {
	r := newRig(t, devstack.Resources{VisibilityTimeout: 5 * time.Second, MaxReceiveCount: 10})
	if err := r.st.VisionServer.SetFaults(visionstandin.Faults{RateLimit: visionstandin.RateLimit{PerSecond: 4, Burst: 2}}); err != nil {
		t.Fatal(err)
	}
	before := r.st.VisionServer.Stats().Throttled
	obs := NewVisionObserver()
	vc := r.visionClient(t, &vision.Options{
		Observer:    obs,
		Concurrency: ratelimit.NewAIMD(&ratelimit.AIMDOptions{Max: 8, Initial: 8}),
		Retry:       retry.Policy{MaxRetries: 6, BaseDelay: 200 * time.Millisecond, MaxDelay: 2 * time.Second},
	})
	images := r.putImages(t, 1000, 16)
	x := r.start(t, vc, Options{Workers: 8, VisibilityTimeout: 5 * time.Second}, nil)
	r.waitPublished(t, images, 2*time.Minute)
	x.stop()
	if got := r.st.VisionServer.Stats().Throttled - before; got == 0 {
		t.Errorf("the stand-in answered no 429: the storm did not happen")
	}
	if testutil.ToFloat64(obs.throttled) == 0 {
		t.Errorf("the observer saw no 429")
	}
	r.checkOnce(t, images)
	r.checkDLQEmpty(t)
	if s := snap(x.a); s.DeadLettered != 0 {
		t.Errorf("dead-lettered %d", s.DeadLettered)
	}
}

// TestTransientErrors: a third of Vision calls fail with 500 or 503; they are retried and
// every image is analysed once.
func TestTransientErrors(t *testing.T) {
	r := newRig(t, devstack.Resources{VisibilityTimeout: 5 * time.Second, MaxReceiveCount: 10})
	if err := r.st.VisionServer.SetFaults(visionstandin.Faults{Seed: 7, Transient: visionstandin.Transient{Rate: 0.35}}); err != nil {
		t.Fatal(err)
	}
	before := r.st.VisionServer.Stats().Transient
	vc := r.visionClient(t, nil)
	images := r.putImages(t, 2000, 16)
	// A breaker that never opens on this error rate: this test is about retries.
	x := r.start(t, vc, Options{Workers: 8, VisibilityTimeout: 5 * time.Second, Breaker: &breaker.Options{ConsecutiveFailures: 1 << 30, FailureRatio: -1}}, nil)
	r.waitPublished(t, images, 2*time.Minute)
	x.stop()
	if got := r.st.VisionServer.Stats().Transient - before; got == 0 {
		t.Errorf("no transient error was injected")
	}
	r.checkOnce(t, images)
	r.checkDLQEmpty(t)
}

// TestOutage: Vision answers 503 for 6 seconds. The circuit opens, receiving stops (the
// analyzer is not ready), nothing reaches the DLQ though the queue dead-letters after 6
// receives, and every image is analysed once after the outage.
func TestOutage(t *testing.T) {
	r := newRig(t, devstack.Resources{VisibilityTimeout: 5 * time.Second, MaxReceiveCount: 6})
	vc := r.visionClient(t, &vision.Options{Retry: retry.Policy{MaxRetries: 1, BaseDelay: 100 * time.Millisecond, MaxDelay: 200 * time.Millisecond}})
	var mu sync.Mutex
	var transitions []string
	bo := breaker.Options{ConsecutiveFailures: 3, Cooldown: 2 * time.Second}
	bo.OnStateChange = func(_, to breaker.State) {
		mu.Lock()
		transitions = append(transitions, to.String())
		mu.Unlock()
	}
	if err := r.st.VisionServer.SetFaults(visionstandin.Faults{Outages: []visionstandin.Outage{{Until: visionstandin.Duration(6 * time.Second)}}}); err != nil {
		t.Fatal(err)
	}
	images := r.putImages(t, 3000, 12)
	// One worker and 10 received ahead: when the circuit opens, messages are still waiting.
	x := r.start(t, vc, Options{Workers: 1, VisibilityTimeout: 5 * time.Second, Breaker: &bo}, nil)
	sawNotReady := false
	stacktest.WaitFor(t, "the circuit to open with the analyzer not ready", 30*time.Second, func() (bool, string) {
		if x.a.CircuitState() == breaker.Open && x.a.Ready(context.Background()) != nil {
			sawNotReady = true
		}
		return sawNotReady, x.a.CircuitState().String()
	})
	// While the circuit is open nothing calls Vision, not even messages received ahead
	// before it opened (they are deferred unstarted). Calls already under way when it opened
	// get 0.5 s to end.
	time.Sleep(500 * time.Millisecond)
	calls0 := r.st.VisionServer.Stats().Calls
	time.Sleep(time.Second)
	if st := x.a.CircuitState(); st != breaker.Open {
		t.Fatalf("circuit %s 1.5 s after opening; the test expects its 2 s cooldown", st)
	}
	if n := r.st.VisionServer.Stats().Calls - calls0; n != 0 {
		t.Errorf("%d Vision calls while the circuit was open", n)
	}
	r.waitPublished(t, images, 2*time.Minute)
	x.stop()
	mu.Lock()
	got := strings.Join(transitions, ",")
	mu.Unlock()
	if !strings.HasPrefix(got, "open,half-open") || !strings.HasSuffix(got, "closed") {
		t.Errorf("circuit transitions %q: want open, half-open ... closed", got)
	}
	if s := snap(x.a); s.Deferred == 0 || s.DeadLettered != 0 {
		t.Errorf("deferred %d, dead-lettered %d: want some deferred, none dead-lettered", s.Deferred, s.DeadLettered)
	}
	r.checkOnce(t, images)
	r.checkDLQEmpty(t)
}

// TestPoison: malformed bodies and bad images go straight to the DLQ with their failure
// attributes, after one receive; the good images are not delayed (no retry at all).
func TestPoison(t *testing.T) {
	r := newRig(t, devstack.Resources{VisibilityTimeout: 5 * time.Second, MaxReceiveCount: 5})
	vc := r.visionClient(t, nil)
	garbage := []string{"not json at all", `{"Records":[{"eventSource":"aws:s3"}]}`, `{"Records":"x"}`, "{\"Records\": [{\"s3\": {\"object\": {\"key\": \"%zz\"}}}]}"}
	for _, body := range garbage {
		if _, err := r.sqs.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: aws.String(r.res.QueueURL), MessageBody: aws.String(body)}); err != nil {
			t.Fatalf("send %q: %v", body, err)
		}
	}
	dir := t.TempDir()
	all, err := samples.Generate(dir)
	if err != nil {
		t.Fatal(err)
	}
	badReasons := map[string]string{}
	for _, s := range all {
		if s.Good {
			continue
		}
		body, err := os.ReadFile(s.Path(dir))
		if err != nil {
			t.Fatal(err)
		}
		key := r.res.Prefix + "bad/" + filepath.ToSlash(s.Name)
		r.put(t, key, body)
		badReasons[key] = s.WantReason
	}
	images := r.putImages(t, 4000, 8)
	x := r.start(t, vc, Options{Workers: 8, VisibilityTimeout: 5 * time.Second}, nil)
	r.waitPublished(t, images, time.Minute)
	want := len(garbage) + len(badReasons)
	stacktest.WaitFor(t, "poison dead-lettered", time.Minute, func() (bool, string) {
		n := snap(x.a).DeadLettered
		return n >= int64(want), fmt.Sprintf("%d of %d", n, want)
	})
	x.stop()
	s := snap(x.a)
	// Every message was received once and settled at once.
	if s.Retried != 0 || s.Received != int64(want+len(images)) || s.Received != s.Succeeded+s.DeadLettered {
		t.Errorf("received %d, succeeded %d, dead-lettered %d, retried %d: want one receive per message, no retry", s.Received, s.Succeeded, s.DeadLettered, s.Retried)
	}
	r.checkOnce(t, images)
	got := r.dlqContents(t)
	if len(got) != want {
		t.Errorf("DLQ holds %d messages, want %d", len(got), want)
	}
	seenGarbage := 0
	for _, d := range got {
		f := d.failure
		if f.Class.String() != "permanent" || f.Attempts != 1 || f.SourceQueue != r.res.QueueURL || f.Reason == "" || f.Error == "" || f.FirstFailure.IsZero() || f.LastFailure.IsZero() {
			t.Errorf("DLQ message %.80q: attributes %+v", d.body, f)
		}
		for _, g := range garbage {
			if d.body == g {
				seenGarbage++
			}
		}
		for key, reason := range badReasons {
			if strings.Contains(d.body, strings.ReplaceAll(key, " ", "+")) && f.Reason != reason {
				t.Errorf("%s dead-lettered with reason %s, want %s", key, f.Reason, reason)
			}
		}
	}
	if seenGarbage != len(garbage) {
		t.Errorf("%d of %d garbage bodies in the DLQ unchanged", seenGarbage, len(garbage))
	}
}

// TestSlowVision: each Vision call takes 7 s, more than twice the 3 s visibility timeout;
// the heartbeat keeps every message invisible and each is received and analysed once.
func TestSlowVision(t *testing.T) {
	r := newRig(t, devstack.Resources{VisibilityTimeout: 3 * time.Second, MaxReceiveCount: 5})
	if err := r.st.VisionServer.SetFaults(visionstandin.Faults{Latency: visionstandin.Latency{Fixed: visionstandin.Duration(7 * time.Second)}}); err != nil {
		t.Fatal(err)
	}
	vc := r.visionClient(t, nil)
	images := r.putImages(t, 5000, 3)
	x := r.start(t, vc, Options{Workers: 4, VisibilityTimeout: 3 * time.Second}, nil)
	r.waitPublished(t, images, time.Minute)
	x.stop()
	s := snap(x.a)
	if s.Received != int64(len(images)) {
		t.Errorf("received %d messages for %d images: a message came back while in work", s.Received, len(images))
	}
	if s.Heartbeats == 0 {
		t.Errorf("no heartbeat")
	}
	r.checkOnce(t, images)
	r.checkDLQEmpty(t)
}

// TestDrain: SIGTERM while messages are in work. Work in flight finishes (or, past the drain
// deadline, is released at once); messages received ahead and not started are released at
// once; a second analyzer processes the rest; every image is published and analysed exactly
// once.
func TestDrain(t *testing.T) {
	for _, tc := range []struct {
		name     string
		drain    time.Duration
		ahead    int
		released bool
		seed     int64
	}{
		{"finish in-flight work", 20 * time.Second, 0, false, 6000},
		{"release past the deadline", 300 * time.Millisecond, 0, true, 6500},
		{"release what was received ahead", 20 * time.Second, 4, false, 6800},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A long queue visibility: a message only comes back early if it was released.
			r := newRig(t, devstack.Resources{VisibilityTimeout: 30 * time.Second, MaxReceiveCount: 5})
			if err := r.st.VisionServer.SetFaults(visionstandin.Faults{Latency: visionstandin.Latency{Fixed: visionstandin.Duration(1500 * time.Millisecond)}}); err != nil {
				t.Fatal(err)
			}
			vc := r.visionClient(t, nil)
			images := r.putImages(t, tc.seed, 12)
			// One receive fills the 4 workers and the tc.ahead places behind them.
			ahead := tc.ahead
			if ahead == 0 {
				ahead = -1
			}
			opts := Options{Workers: 4, VisibilityTimeout: 30 * time.Second, DrainTimeout: tc.drain, MaxMessages: 4 + tc.ahead, ReceiveAhead: ahead}
			first := r.start(t, vc, opts, nil)
			stacktest.WaitFor(t, "4 messages in work", 30*time.Second, func() (bool, string) {
				s := snap(first.a)
				return s.InFlight == 4 && s.Received == int64(4+tc.ahead), fmt.Sprintf("%d in flight, %d received", s.InFlight, s.Received)
			})
			first.stop()
			s1 := snap(first.a)
			switch {
			case tc.released && s1.Released == 0:
				t.Errorf("nothing released past the drain deadline")
			case !tc.released && s1.Succeeded < 4:
				t.Errorf("succeeded %d: in-flight work should have finished", s1.Succeeded)
			case !tc.released && s1.Released != s1.Received-s1.Succeeded:
				t.Errorf("received %d, succeeded %d, released %d: what was not started must be released", s1.Received, s1.Succeeded, s1.Released)
			case tc.ahead > 0 && s1.Released == 0:
				t.Errorf("nothing received ahead was released")
			}
			if err := r.st.VisionServer.SetFaults(visionstandin.Faults{}); err != nil {
				t.Fatal(err)
			}
			second := r.start(t, vc, opts, nil)
			// Under the 30 s visibility: released, not expired. A receive answer lost on the
			// way (the closed-connection pitfall, counted in ReceiveErrors) hides its batch
			// for the visibility timeout: only then is the wait extended past it.
			start := time.Now()
			stacktest.WaitFor(t, "every image published", 60*time.Second, func() (bool, string) {
				c := r.pub.counts()
				missing := 0
				for k := range images {
					if c[k] == 0 {
						missing++
					}
				}
				lost := snap(first.a).ReceiveErrors + snap(second.a).ReceiveErrors
				if missing > 0 && time.Since(start) > 25*time.Second && lost == 0 {
					t.Fatalf("%d of %d images not published 25 s after the second analyzer started, with no receive lost: the first did not release them", missing, len(images))
				}
				return missing == 0, fmt.Sprintf("%d of %d missing, %d receive answers lost", missing, len(images), lost)
			})
			second.stop()
			r.checkOnce(t, images)
			r.checkDLQEmpty(t)
		})
	}
}

// killable is a queue whose analyzer can be killed: from kill on, nothing it asks of the
// queue reaches SQS (no delete, release or visibility change), as from a process that died.
type killable struct {
	queue.Source
	dead atomic.Bool
}

func (k *killable) kill() { k.dead.Store(true) }

func (k *killable) Extend(ctx context.Context, msgs []*queue.Message, hold time.Duration) []error {
	if k.dead.Load() {
		return queue.Each(len(msgs), nil)
	}
	return k.Source.Extend(ctx, msgs, hold)
}

func (k *killable) Release(ctx context.Context, msgs []*queue.Message) []error {
	if k.dead.Load() {
		return queue.Each(len(msgs), nil)
	}
	return k.Source.Release(ctx, msgs)
}

func (k *killable) Delete(ctx context.Context, msgs []*queue.Message) []error {
	if k.dead.Load() {
		return queue.Each(len(msgs), nil)
	}
	return k.Source.Delete(ctx, msgs)
}

// TestKilled: an analyzer dies with messages in work (nothing it does after reaches SQS).
// They come back after the 3 s visibility timeout and a second analyzer processes them once
// each.
func TestKilled(t *testing.T) {
	r := newRig(t, devstack.Resources{VisibilityTimeout: 3 * time.Second, MaxReceiveCount: 5})
	if err := r.st.VisionServer.SetFaults(visionstandin.Faults{Latency: visionstandin.Latency{Fixed: visionstandin.Duration(5 * time.Second)}}); err != nil {
		t.Fatal(err)
	}
	vc := r.visionClient(t, nil)
	images := r.putImages(t, 7000, 4)
	opts := Options{Workers: 4, VisibilityTimeout: 3 * time.Second, DrainTimeout: time.Nanosecond}
	var victim *killable
	first := r.start(t, vc, opts, &startWith{wrap: func(q queue.Source) queue.Source {
		victim = &killable{Source: q}
		return victim
	}})
	stacktest.WaitFor(t, "4 messages in work", 30*time.Second, func() (bool, string) {
		n := snap(first.a).InFlight
		return n == 4, fmt.Sprintf("%d in flight", n)
	})
	victim.kill()
	first.stop()
	if n := len(r.pub.counts()); n != 0 {
		t.Fatalf("the killed analyzer published %d records", n)
	}
	if d, err := r.deps(t, vc, nil).Queue.Depth(context.Background()); err != nil || d.Visible+d.NotVisible != len(images) {
		t.Fatalf("queue after the kill: %+v, %v; want all %d messages still there", d, err, len(images))
	}
	if err := r.st.VisionServer.SetFaults(visionstandin.Faults{}); err != nil {
		t.Fatal(err)
	}
	second := r.start(t, vc, opts, nil)
	r.waitPublished(t, images, time.Minute)
	second.stop()
	if s2 := snap(second.a); s2.Received != int64(len(images)) {
		t.Errorf("second analyzer received %d, want %d", s2.Received, len(images))
	}
	r.checkOnce(t, images)
	r.checkDLQEmpty(t)
}

// TestMetricsAndAutoscale: with a backlog of slow images the autoscaler grows the pool from
// its minimum, and /metrics, /healthz and /readyz serve the analyzer's figures.
func TestMetricsAndAutoscale(t *testing.T) {
	r := newRig(t, devstack.Resources{VisibilityTimeout: 10 * time.Second, MaxReceiveCount: 5})
	if err := r.st.VisionServer.SetFaults(visionstandin.Faults{Latency: visionstandin.Latency{Fixed: visionstandin.Duration(400 * time.Millisecond)}}); err != nil {
		t.Fatal(err)
	}
	vobs := NewVisionObserver()
	vc := r.visionClient(t, &vision.Options{Observer: vobs, Concurrency: ratelimit.NewAIMD(&ratelimit.AIMDOptions{Max: 16, Initial: 16})})
	images := r.putImages(t, 8000, 40)
	reg := obs.NewRegistry()
	reg.MustRegister(r.calls) // as cmd/analyzer registers its SQS client's counter
	x := r.start(t, vc, Options{
		Workers: 1, VisibilityTimeout: 10 * time.Second, DepthInterval: 200 * time.Millisecond,
		Autoscale:  &autoscale.Options{Min: 1, Max: 8, TargetPerWorker: 4, Cooldown: 300 * time.Millisecond},
		Registerer: reg, VisionObserver: vobs,
	}, nil)
	srv, err := obs.Serve("127.0.0.1:0", reg, x.a.Ready)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	maxWorkers := 0
	stacktest.WaitFor(t, "every image published", time.Minute, func() (bool, string) {
		maxWorkers = max(maxWorkers, x.a.Workers())
		c := r.pub.counts()
		return len(c) == len(images), fmt.Sprintf("%d published, %d workers", len(c), x.a.Workers())
	})
	if maxWorkers < 4 {
		t.Errorf("the pool grew to %d workers at most for a backlog of %d at 4 per worker", maxWorkers, len(images))
	}
	body := httpGet(t, "http://"+srv.Addr()+"/metrics", 200)
	for _, want := range []string{
		"imgpipe_analyzer_messages_received_total 40",
		"imgpipe_analyzer_messages_succeeded_total 40",
		`imgpipe_analyzer_queue_messages{state="visible"}`,
		`imgpipe_analyzer_queue_messages{state="not_visible"}`,
		`imgpipe_analyzer_queue_messages{state="delayed"}`,
		`imgpipe_analyzer_vision_attempt_seconds_count{status="200"} 40`,
		`imgpipe_analyzer_vision_call_seconds_count{outcome="ok"} 40`,
		"imgpipe_analyzer_circuit_state 0",
		"imgpipe_analyzer_workers ",
		"imgpipe_analyzer_in_flight ",
		`imgpipe_analyzer_autoscale_changes_total{direction="up"}`,
		`imgpipe_analyzer_sqs_calls_total{op="ReceiveMessage"}`,
		"imgpipe_analyzer_vision_throttled_total 0",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	httpGet(t, "http://"+srv.Addr()+"/readyz", 200)
	httpGet(t, "http://"+srv.Addr()+"/healthz", 200)
	x.stop()
	r.checkOnce(t, images)
}

func httpGet(t *testing.T, url string, want int) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != want {
		t.Fatalf("GET %s: %d, want %d: %s", url, resp.StatusCode, want, b)
	}
	return string(b)
}
