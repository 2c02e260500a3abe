package analyzer

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"imgpipe/internal/devstack"
	"imgpipe/internal/s3standin"
	"imgpipe/internal/stacktest"
	"imgpipe/internal/visionstandin"
	"imgpipe/pkg/breaker"
	"imgpipe/pkg/objects/memobjects"
	"imgpipe/pkg/queue"
	"imgpipe/pkg/queue/sqsqueue"
	"imgpipe/pkg/record"
	"imgpipe/pkg/samples"
	"imgpipe/pkg/vision"
)

// s3Fault installs f on the stack's S3 stand-in until the test ends.
func (r *rig) s3Fault(t testing.TB, f s3standin.Fault) {
	t.Helper()
	r.st.S3Server.SetFault(f)
	t.Cleanup(func() { r.st.S3Server.SetFault(nil) })
}

// objectGet reports whether req reads an object of the rig's bucket.
func (r *rig) objectGet(req *http.Request) bool {
	return req.Method == http.MethodGet && strings.HasPrefix(req.URL.Path, "/"+r.res.Bucket+"/")
}

// presigned reports whether req came with a presigned URL (Vision fetching the image).
func presigned(req *http.Request) bool { return req.URL.Query().Has("X-Amz-Signature") }

// circuitBreaker is a breaker that opens fast and probes soon, for the setup-fault tests.
func circuitBreaker() *breaker.Options {
	return &breaker.Options{ConsecutiveFailures: 3, Cooldown: 2 * time.Second}
}

// waitOpen waits until the circuit is open and the analyzer says it is not ready.
func waitOpen(t *testing.T, x *running) {
	t.Helper()
	stacktest.WaitFor(t, "the circuit to open with the analyzer not ready", 45*time.Second, func() (bool, string) {
		err := x.a.Ready(context.Background())
		s := snap(x.a)
		return x.a.CircuitState() == breaker.Open && err != nil,
			fmt.Sprintf("circuit %s, ready error %v, dead-lettered %d, retried %d", x.a.CircuitState(), err, s.DeadLettered, s.Retried)
	})
}

// TestURLFetchRefusedOpensCircuit: in URL mode the bucket refuses Vision's presigned GETs
// (a bucket policy, a broken network path, a signature the clock skew voids). Every image
// then fails alike with 400 InvalidImageUrl: a setup fault, not a verdict on the images. The
// circuit opens, nothing is dead-lettered, and once the bucket lets Vision in again every
// image is analysed once.
func TestURLFetchRefusedOpensCircuit(t *testing.T) {
	r := newRig(t, devstack.Resources{VisibilityTimeout: 5 * time.Second, MaxReceiveCount: 6})
	var refusing atomic.Bool
	refusing.Store(true)
	var refused atomic.Int64
	r.s3Fault(t, func(w http.ResponseWriter, req *http.Request) (http.ResponseWriter, bool) {
		if refusing.Load() && r.objectGet(req) && presigned(req) {
			refused.Add(1)
			r.st.S3Server.Refuse(w, req, http.StatusForbidden, "AccessDenied", "Access Denied")
			return w, true
		}
		return w, false
	})
	images := r.putImages(t, 11000, 10)
	x := r.start(t, r.visionClient(t, nil), Options{Workers: 2, VisibilityTimeout: 5 * time.Second, Mode: ModeURL, Breaker: circuitBreaker()}, nil)
	waitOpen(t, x)
	if s := snap(x.a); s.DeadLettered != 0 {
		t.Fatalf("%d images dead-lettered for a refused URL", s.DeadLettered)
	}
	if refused.Load() == 0 {
		t.Fatal("no presigned GET was refused: the fault did not happen")
	}
	refusing.Store(false)
	r.waitPublished(t, images, 2*time.Minute)
	x.stop()
	r.checkOnce(t, images)
	r.checkDLQEmpty(t)
}

// TestSetupFaultsOpenCircuit: a run of errors that say the deployment is wrong (S3 denies
// the analyzer's reads, Vision refuses the key, Vision's quota is spent) opens the circuit
// instead of sending the stream to the DLQ; once the fault is mended every image is analysed
// once and nothing was dead-lettered, though the queue's redrive policy gives up after six
// receives.
func TestSetupFaultsOpenCircuit(t *testing.T) {
	for i, tc := range []struct {
		name string
		set  func(r *rig, on bool) error
	}{
		{"s3 access denied", nil},
		{"vision key refused", func(r *rig, on bool) error { return r.st.VisionServer.SetFaults(visionstandin.Faults{BadKey: on}) }},
		{"vision quota spent", func(r *rig, on bool) error {
			return r.st.VisionServer.SetFaults(visionstandin.Faults{QuotaExceeded: on})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, devstack.Resources{VisibilityTimeout: 5 * time.Second, MaxReceiveCount: 6})
			set := tc.set
			if set == nil {
				var denying atomic.Bool
				r.s3Fault(t, func(w http.ResponseWriter, req *http.Request) (http.ResponseWriter, bool) {
					if denying.Load() && r.objectGet(req) {
						r.st.S3Server.Refuse(w, req, http.StatusForbidden, "AccessDenied", "Access Denied")
						return w, true
					}
					return w, false
				})
				set = func(_ *rig, on bool) error { denying.Store(on); return nil }
			}
			if err := set(r, true); err != nil {
				t.Fatal(err)
			}
			images := r.putImages(t, int64(12000+100*i), 8)
			x := r.start(t, r.visionClient(t, nil), Options{Workers: 2, VisibilityTimeout: 5 * time.Second, Breaker: circuitBreaker()}, nil)
			waitOpen(t, x)
			if s := snap(x.a); s.DeadLettered != 0 {
				t.Fatalf("%d images dead-lettered for a setup fault", s.DeadLettered)
			}
			if err := set(r, false); err != nil {
				t.Fatal(err)
			}
			r.waitPublished(t, images, 2*time.Minute)
			x.stop()
			r.checkOnce(t, images)
			r.checkDLQEmpty(t)
		})
	}
}

// TestURLModePinnedToETag: in URL mode the object is overwritten after the analyzer read its
// head and before Vision fetched it, so Vision analyses the newer content. That analysis must
// not be published under the older event (its ETag, its sequencer): the older event is
// skipped and the newer one, analysed on its own, is the key's only record.
func TestURLModePinnedToETag(t *testing.T) {
	r := newRig(t, devstack.Resources{VisibilityTimeout: 10 * time.Second})
	key := r.res.Prefix + "overwritten.png"
	first, err := samples.Image(13000, 120, 90, "png")
	if err != nil {
		t.Fatal(err)
	}
	second, err := samples.Image(13001, 160, 100, "png")
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	var secondETag atomic.Value
	putErr := make(chan error, 1)
	r.s3Fault(t, func(w http.ResponseWriter, req *http.Request) (http.ResponseWriter, bool) {
		if r.objectGet(req) && presigned(req) && strings.HasSuffix(req.URL.Path, "/overwritten.png") {
			once.Do(func() {
				out, err := r.s3.PutObject(req.Context(), &s3.PutObjectInput{Bucket: aws.String(r.res.Bucket), Key: aws.String(key), Body: bytes.NewReader(second)})
				if err == nil {
					secondETag.Store(strings.Trim(aws.ToString(out.ETag), `"`))
				}
				putErr <- err
			})
		}
		return w, false
	})
	r.put(t, key, first)
	x := r.start(t, r.visionClient(t, nil), Options{Workers: 2, VisibilityTimeout: 10 * time.Second, Mode: ModeURL}, nil)
	stacktest.WaitFor(t, "both events settled", time.Minute, func() (bool, string) {
		s := snap(x.a)
		return s.Succeeded == 2, fmt.Sprintf("received %d, succeeded %d, retried %d, dead-lettered %d", s.Received, s.Succeeded, s.Retried, s.DeadLettered)
	})
	x.stop()
	if err := <-putErr; err != nil {
		t.Fatalf("overwrite during Vision's fetch: %v", err)
	}
	if n := r.pub.counts()[key]; n != 1 {
		t.Errorf("%s published %d times, want once (for the newer content)", key, n)
	}
	rec, _ := r.pub.lastRecord(key)
	if want, _ := secondETag.Load().(string); rec.ETag != want || rec.Width != 160 || rec.Height != 100 {
		t.Errorf("published record: ETag %q %dx%d, want the newer content's ETag %q, 160x100", rec.ETag, rec.Width, rec.Height, want)
	}
	r.checkDLQEmpty(t)
}

// signed matches what must never leave the analyzer: the signing parameters of a presigned
// URL.
var signed = regexp.MustCompile(`(?i)x-amz-(signature|credential|security-token)`)

// TestPresignedURLRedacted: Vision quotes the presigned URL in its error messages. Neither the
// DLQ's imgpipe.error attribute, nor any log line, nor any metric label shows its signature
// or credential, for a permanent failure (dead-lettered) and a setup fault (retried).
func TestPresignedURLRedacted(t *testing.T) {
	r := newRig(t, devstack.Resources{VisibilityTimeout: 5 * time.Second, MaxReceiveCount: 5})
	core, logs := observer.New(zap.DebugLevel)
	r.log = zap.New(core)
	if err := r.st.VisionServer.SetFaults(visionstandin.Faults{EchoURL: true}); err != nil {
		t.Fatal(err)
	}
	r.s3Fault(t, func(w http.ResponseWriter, req *http.Request) (http.ResponseWriter, bool) {
		if r.objectGet(req) && presigned(req) && strings.HasSuffix(req.URL.Path, "/refused.png") {
			r.st.S3Server.Refuse(w, req, http.StatusForbidden, "AccessDenied", "Access Denied")
			return w, true
		}
		return w, false
	})
	small, err := samples.Image(14000, 40, 40, "png")
	if err != nil {
		t.Fatal(err)
	}
	r.put(t, r.res.Prefix+"small.png", small)
	refused, err := samples.Image(14001, 120, 90, "png")
	if err != nil {
		t.Fatal(err)
	}
	r.put(t, r.res.Prefix+"refused.png", refused)
	reg := prometheus.NewRegistry()
	vobs := NewVisionObserver()
	x := r.start(t, r.visionClient(t, &vision.Options{Observer: vobs}), Options{
		Workers: 2, VisibilityTimeout: 5 * time.Second, Mode: ModeURL, Registerer: reg, VisionObserver: vobs,
		// A breaker that stays closed: this test is about what the errors say.
		Breaker: &breaker.Options{ConsecutiveFailures: 1 << 30, FailureRatio: -1},
	}, nil)
	stacktest.WaitFor(t, "the small image dead-lettered and the refused one retried", time.Minute, func() (bool, string) {
		s := snap(x.a)
		return s.DeadLettered == 1 && s.Retried >= 1, fmt.Sprintf("dead-lettered %d, retried %d", s.DeadLettered, s.Retried)
	})
	x.stop()

	dead := r.dlqContents(t)
	if len(dead) != 1 {
		t.Fatalf("DLQ holds %d messages, want the small image", len(dead))
	}
	if e := dead[0].failure.Error; signed.MatchString(e) || !strings.Contains(e, "Image URL:") || !strings.Contains(e, "small.png") {
		t.Errorf("imgpipe.error %q: want Vision's echo of the URL (path kept) without its signing parameters", e)
	}
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	echoed := 0
	for _, e := range logs.All() {
		buf, err := enc.EncodeEntry(e.Entry, e.Context)
		if err != nil {
			t.Fatal(err)
		}
		line := buf.String()
		buf.Free()
		if signed.MatchString(line) {
			t.Errorf("log line shows a presigned URL's signing parameters: %s", line)
		}
		if strings.Contains(line, "Image URL:") {
			echoed++
		}
	}
	if echoed == 0 {
		t.Error("no log line quotes Vision's echo: the test saw nothing to redact")
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if signed.MatchString(l.GetValue()) || strings.Contains(l.GetValue(), "http") {
					t.Errorf("metric %s label %s=%q", f.GetName(), l.GetName(), l.GetValue())
				}
			}
		}
	}
}

// blackHole accepts connections and reads them, never answering: a peer that stalls.
type blackHole struct {
	ln       net.Listener
	requests atomic.Int64
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    []net.Conn
}

func newBlackHole(t *testing.T) *blackHole {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &blackHole{ln: ln}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b.mu.Lock()
			b.conns = append(b.conns, c)
			b.mu.Unlock()
			b.wg.Add(1)
			go func() {
				defer b.wg.Done()
				buf := make([]byte, 4096)
				if n, _ := c.Read(buf); n > 0 {
					b.requests.Add(1)
				}
				for {
					if _, err := c.Read(buf); err != nil {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		b.mu.Lock()
		for _, c := range b.conns {
			c.Close()
		}
		b.mu.Unlock()
		b.wg.Wait()
	})
	return b
}

func (b *blackHole) url() string { return "http://" + b.ln.Addr().String() }

// TestHeartbeatCutByCancellationNotCounted: a visibility extension that is under way when
// the analyzer stops keeping leases (the SQS call hangs, then its context is cancelled)
// failed: it is counted neither as a heartbeat nor as a heartbeat error.
func TestHeartbeatCutByCancellationNotCounted(t *testing.T) {
	st := stacktest.Get(t)
	hole := newBlackHole(t)
	client := sqs.NewFromConfig(st.AWSConfig(), func(o *sqs.Options) { o.BaseEndpoint = aws.String(hole.url()) })
	q, err := sqsqueue.New(client, hole.url()+"/000000000000/q", nil)
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(Deps{Queue: q, DLQ: q, Objects: memobjects.New(), Vision: unusedVision{}, Publisher: unusedPublisher{}},
		&Options{VisibilityTimeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.keeper.Run(ctx)
	}()
	a.keeper.Keep(&queue.Message{ID: "m", Handle: "handle"})
	// The first extension goes out after a third of the timeout and never gets an answer.
	stacktest.WaitFor(t, "the heartbeat's call to reach SQS", 30*time.Second, func() (bool, string) {
		n := hole.requests.Load()
		return n > 0, fmt.Sprintf("%d requests", n)
	})
	cancel()
	<-done
	if s := snap(a); s.Heartbeats != 0 || s.HeartbeatErrors != 0 {
		t.Errorf("%d heartbeats and %d heartbeat errors counted; the only one was cut off by the cancellation", s.Heartbeats, s.HeartbeatErrors)
	}
}

// unusedVision and unusedPublisher complete Deps for tests that never reach them.
type unusedVision struct{}

func (unusedVision) AnalyzeStream(context.Context, func() (io.ReadCloser, int64, error)) (*vision.Result, error) {
	panic("unused")
}
func (unusedVision) AnalyzeURL(context.Context, string) (*vision.Result, error) { panic("unused") }

type unusedPublisher struct{}

func (unusedPublisher) Publish(context.Context, *record.Analysis) (string, error) { panic("unused") }

// stall holds answers back while it is on: a request it catches waits until the stall is
// lifted or the caller hangs up.
type stall struct {
	mu     sync.Mutex
	lifted chan struct{}
	caught atomic.Int64
}

func newStall() *stall { return &stall{lifted: make(chan struct{})} }

func (s *stall) lift() {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.lifted:
	default:
		close(s.lifted)
	}
}

// hold blocks until the stall is lifted (true) or the request ends (false).
func (s *stall) hold(req *http.Request) bool {
	s.caught.Add(1)
	select {
	case <-s.lifted:
		return true
	case <-req.Context().Done():
		return false
	}
}

func (s *stall) on() bool {
	select {
	case <-s.lifted:
		return false
	default:
		return true
	}
}

// stalledBody writes the first n bytes of an answer, then holds the rest back.
type stalledBody struct {
	http.ResponseWriter
	s       *stall
	req     *http.Request
	n       int
	written int
}

func (w *stalledBody) Write(p []byte) (int, error) {
	if w.written+len(p) <= w.n {
		w.written += len(p)
		return w.ResponseWriter.Write(p)
	}
	k := max(w.n-w.written, 0)
	if k > 0 {
		if _, err := w.ResponseWriter.Write(p[:k]); err != nil {
			return 0, err
		}
		w.written += k
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
	if !w.s.hold(w.req) {
		return k, context.Canceled
	}
	n, err := w.ResponseWriter.Write(p[k:])
	w.written += n
	return k + n, err
}

func (w *stalledBody) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// TestS3StalledRead: S3 stops answering in the middle of a read, before the headers of the
// first ranged GET or after part of the body of the second (a large image streamed to
// Vision). The read fails within the analyzer's S3 timeout with a transient, classified error
// (not a Vision failure), the message is retried rather than held invisible by its heartbeat,
// /readyz says S3 reads fail while they do, and once S3 answers again the image is analysed
// once.
func TestS3StalledRead(t *testing.T) {
	for i, tc := range []struct {
		name  string
		large bool
	}{{"headers of the first read", false}, {"body of the rest", true}} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, devstack.Resources{VisibilityTimeout: 10 * time.Second, MaxReceiveCount: 20})
			s := newStall()
			defer s.lift()
			r.s3Fault(t, func(w http.ResponseWriter, req *http.Request) (http.ResponseWriter, bool) {
				if !s.on() || !r.objectGet(req) {
					return w, false
				}
				rest := !strings.HasPrefix(req.Header.Get("Range"), "bytes=0-")
				switch {
				case !tc.large:
					if !s.hold(req) {
						return w, true
					}
				case rest:
					return &stalledBody{ResponseWriter: w, s: s, req: req, n: 16 << 10}, false
				}
				return w, false
			})
			images := map[string][]byte{}
			body, err := samples.Image(int64(15000+i), 120, 90, "png")
			if tc.large {
				body, err = samples.Image(int64(15000+i), 400, 300, "bmp")
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.large != (len(body) > headBytes) {
				t.Fatalf("image of %d bytes for the case %q", len(body), tc.name)
			}
			key := r.res.Prefix + "stalled-" + fmt.Sprint(i)
			r.put(t, key, body)
			images[key] = body
			x := r.start(t, r.visionClient(t, nil), Options{Workers: 2, VisibilityTimeout: 10 * time.Second, S3Timeout: 2 * time.Second}, nil)
			stacktest.WaitFor(t, "the stalled read to fail and its message to be retried, with the analyzer not ready", time.Minute, func() (bool, string) {
				snap := snap(x.a)
				err := x.a.Ready(context.Background())
				return snap.Retried+snap.Deferred >= 2 && err != nil && strings.Contains(err.Error(), ReasonS3Stalled),
					fmt.Sprintf("caught %d, retried %d, failed %v, ready error %v", s.caught.Load(), snap.Retried, snap.Failed, err)
			})
			s.lift()
			r.waitPublished(t, images, time.Minute)
			stacktest.WaitFor(t, "the analyzer ready again", 30*time.Second, func() (bool, string) {
				err := x.a.Ready(context.Background())
				return err == nil, fmt.Sprint(err)
			})
			x.stop()
			r.checkOnce(t, images)
			r.checkDLQEmpty(t)
		})
	}
}

// TestOptionsRefuseWhatSQSCannotTake: an analyzer on SQS refuses the durations SQS cannot
// take as they are (a sub-second or fractional visibility timeout would be cut, and a
// heartbeat of visibility 0 releases the message), and so does the SQS driver for its
// long-poll wait.
func TestOptionsRefuseWhatSQSCannotTake(t *testing.T) {
	client := sqs.New(sqs.Options{Region: "us-east-1"})
	q, err := sqsqueue.New(client, "http://127.0.0.1:1/000000000000/q", nil)
	if err != nil {
		t.Fatal(err)
	}
	deps := Deps{Queue: q, DLQ: q, Objects: memobjects.New(), Vision: unusedVision{}, Publisher: unusedPublisher{}}
	for _, tc := range []struct {
		name string
		o    Options
		ok   bool
	}{
		{"default visibility", Options{}, true},
		{"1 s visibility", Options{VisibilityTimeout: time.Second}, true},
		{"12 h visibility", Options{VisibilityTimeout: 12 * time.Hour}, true},
		{"sub-second visibility", Options{VisibilityTimeout: 500 * time.Millisecond}, false},
		{"fractional visibility", Options{VisibilityTimeout: 1500 * time.Millisecond}, false},
		{"negative visibility", Options{VisibilityTimeout: -time.Second}, false},
		{"visibility past 12 h", Options{VisibilityTimeout: 12*time.Hour + time.Second}, false},
		{"cooldown past 12 h", Options{Breaker: &breaker.Options{Cooldown: 13 * time.Hour}}, false},
	} {
		if _, err := New(deps, &tc.o); (err == nil) != tc.ok {
			t.Errorf("%s: New error %v, want ok %v", tc.name, err, tc.ok)
		}
	}
	for _, tc := range []struct {
		name string
		wait time.Duration
		ok   bool
	}{
		{"default wait", 0, true},
		{"short polling", -1, true},
		{"20 s", 20 * time.Second, true},
		{"wait past 20 s", 21 * time.Second, false},
		{"fractional wait", 1500 * time.Millisecond, false},
	} {
		if _, err := sqsqueue.New(client, "http://127.0.0.1:1/000000000000/q", &sqsqueue.Options{Wait: tc.wait}); (err == nil) != tc.ok {
			t.Errorf("%s: sqsqueue.New error %v, want ok %v", tc.name, err, tc.ok)
		}
	}
}
