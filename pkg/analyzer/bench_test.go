package analyzer

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"imgpipe/internal/devstack"
	"imgpipe/internal/stacktest"
	"imgpipe/internal/visionstandin"
	"imgpipe/pkg/publish"
	"imgpipe/pkg/ratelimit"
	"imgpipe/pkg/record"
	"imgpipe/pkg/samples"
	"imgpipe/pkg/vision"
)

// BenchmarkThroughput measures, in one run on the local stack, messages per second of:
//   - ReceiveDelete: a consumer that only receives and batch-deletes (the queue's ceiling);
//   - Analyzer/latency=0ms and latency=100ms: the analyzer with 64 workers against the Vision
//     stand-in (S3 head and reads, Vision, Pub/Sub publish, delete: the whole path).
//
// Each iteration is one message: run it with -benchtime=Nx. The queue is loaded through the
// S3 stand-in's notifications before the clock starts. Reported: msgs/s, SQS API calls per
// message, and for latency > 0 the bound 64 workers / latency.
//
//	go test ./pkg/analyzer -run '^$' -bench Throughput -benchtime 2000x
func BenchmarkThroughput(b *testing.B) {
	b.Run("ReceiveDelete", func(b *testing.B) {
		r := benchRig(b)
		r.load(b, b.N)
		b.ResetTimer()
		start := time.Now()
		_, calls, err := stacktest.ReceiveDelete(context.Background(), r.sqs, r.res.QueueURL, b.N, func(err error) { b.Logf("receive: %v", err) })
		if err != nil {
			b.Errorf("delete: %v", err)
		}
		b.StopTimer()
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
		b.ReportMetric(float64(calls)/float64(b.N), "sqs-calls/msg")
	})
	for _, tc := range []struct {
		latency time.Duration
		publish string // default (no ordering keys, as deployed), ordered (--ordering-keys), discard
		ahead   int    // Options.ReceiveAhead: 0 the default (10), -1 none
	}{
		{0, "default", 0}, {100 * time.Millisecond, "default", 0}, {100 * time.Millisecond, "default", -1},
		{0, "ordered", 0}, {100 * time.Millisecond, "ordered", 0},
		{0, "discard", 0}, {100 * time.Millisecond, "discard", 0},
	} {
		latency := tc.latency
		b.Run(fmt.Sprintf("Analyzer/latency=%v/publish=%s/ahead=%d", latency, tc.publish, tc.ahead), func(b *testing.B) {
			r := benchRig(b)
			switch tc.publish {
			case "ordered":
				p := publish.New(r.ps, r.res.TopicName, &publish.Options{OrderingKeys: true})
				b.Cleanup(p.Close)
				r.pub.next = p
			case "discard":
				r.pub.next = discard{}
			}
			if err := r.st.VisionServer.SetFaults(visionstandin.Faults{Latency: visionstandin.Latency{Fixed: visionstandin.Duration(latency)}}); err != nil {
				b.Fatal(err)
			}
			const workers = 64
			vc := r.visionClient(b, &vision.Options{
				RateLimit:   ratelimit.NewBucket(100_000, 1000, nil),
				Concurrency: ratelimit.NewAIMD(&ratelimit.AIMDOptions{Max: workers, Initial: workers}),
			})
			r.load(b, b.N)
			b.ResetTimer()
			calls0 := sum(byLabel(r.calls))
			cpu0 := cpuTime()
			start := time.Now()
			x := r.start(b, vc, Options{Workers: workers, VisibilityTimeout: 5 * time.Second, DepthInterval: 10 * time.Second, ReceiveAhead: tc.ahead}, nil)
			for len(r.pub.counts()) < b.N {
				time.Sleep(5 * time.Millisecond)
			}
			elapsed := time.Since(start)
			cpu := cpuTime() - cpu0
			b.StopTimer()
			x.stop()
			s := snap(x.a)
			calls := sum(byLabel(r.calls)) - calls0
			visionTime, visionCalls := histogram(x.a.metrics.visionCall)
			workerTime := x.a.metrics.handle.total
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
			b.ReportMetric(float64(calls)/float64(b.N), "sqs-calls/msg")
			b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N), "proc-cpu-ms/msg")
			if latency > 0 {
				b.ReportMetric(workers/latency.Seconds(), "bound-msgs/s")
			}
			b.Logf("N=%d elapsed=%v sqs calls=%d receive errors=%d; per message: worker %v, vision %v; worker utilisation %.0f%%",
				b.N, elapsed, calls, s.ReceiveErrors, workerTime/time.Duration(b.N), visionTime/time.Duration(max(visionCalls, 1)),
				100*workerTime.Seconds()/(workers*elapsed.Seconds()))
		})
	}
}

func benchRig(b *testing.B) *rig {
	b.Helper()
	return newRig(b, devstack.Resources{VisibilityTimeout: 30 * time.Second, MaxReceiveCount: 10})
}

// load puts n objects (one small PNG under n keys) and waits until the queue holds n
// messages.
func (r *rig) load(b *testing.B, n int) {
	b.Helper()
	body, err := samples.Image(1, 64, 64, "png")
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	keys := make(chan string)
	for range 16 {
		wg.Go(func() {
			for k := range keys {
				r.put(b, k, body)
			}
		})
	}
	for i := range n {
		keys <- fmt.Sprintf("%sbench/%06d.png", r.res.Prefix, i)
	}
	close(keys)
	wg.Wait()
	r.waitQueued(b, r.res.QueueURL, n)
}

// waitQueued waits until the queue at url holds n visible messages.
func (r *rig) waitQueued(t testing.TB, url string, n int) {
	t.Helper()
	stacktest.WaitFor(t, fmt.Sprintf("%d messages on the queue", n), time.Minute, func() (bool, string) {
		out, err := r.sqs.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{
			QueueUrl: aws.String(url), AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessages},
		})
		if err != nil {
			return false, err.Error()
		}
		v := out.Attributes[string(sqstypes.QueueAttributeNameApproximateNumberOfMessages)]
		return v == fmt.Sprint(n), v
	})
}

// discard is a publisher that publishes nothing, to measure the analyzer without Pub/Sub.
type discard struct{}

func (discard) Publish(context.Context, *record.Analysis) (string, error) { return "discarded", nil }

// cpuTime is the CPU time (user + system) this process has used: the analyzer and the
// in-process S3 and Vision stand-ins (SQS and Pub/Sub run in their own processes).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkQuota runs 64 workers against a Vision quota of 20 calls/s (the stand-in's rate
// limit) with the client's token bucket set to the same 20/s and the adaptive concurrency
// limiter on, and reports the analyses per second achieved and the share of calls answered
// 429. It processes min(b.N, 300) messages.
//
//	go test ./pkg/analyzer -run '^$' -bench Quota -benchtime 300x
func BenchmarkQuota(b *testing.B) {
	n := min(b.N, 300)
	r := benchRig(b)
	if err := r.st.VisionServer.SetFaults(visionstandin.Faults{
		RateLimit: visionstandin.RateLimit{PerSecond: 20, Burst: 20},
		Latency:   visionstandin.Latency{Fixed: visionstandin.Duration(50 * time.Millisecond)},
	}); err != nil {
		b.Fatal(err)
	}
	vobs := NewVisionObserver()
	vc := r.visionClient(b, &vision.Options{
		RateLimit:   ratelimit.NewBucket(20, 20, nil),
		Concurrency: ratelimit.NewAIMD(&ratelimit.AIMDOptions{Max: 64, Initial: 8}),
		Observer:    vobs,
	})
	r.load(b, n)
	s0 := r.st.VisionServer.Stats()
	b.ResetTimer()
	start := time.Now()
	x := r.start(b, vc, Options{Workers: 64, VisibilityTimeout: 30 * time.Second}, nil)
	for len(r.pub.counts()) < n {
		time.Sleep(5 * time.Millisecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	x.stop()
	s1 := r.st.VisionServer.Stats()
	calls, throttled := s1.Calls-s0.Calls, s1.Throttled-s0.Throttled
	b.ReportMetric(float64(n)/elapsed.Seconds(), "analyses/s")
	b.ReportMetric(float64(n)/elapsed.Seconds()/20*100, "%-of-quota")
	b.ReportMetric(float64(throttled)/float64(max(calls, 1))*100, "%-429")
	b.Logf("n=%d elapsed=%v calls=%d 429s=%d (observer saw %v)", n, elapsed, calls, throttled, testutil.ToFloat64(vobs.throttled))
}

// BenchmarkGuardedBody: what bounding every read of a streamed object costs (guardedBody: two
// atomic stores of the clock around each Read, a watchdog timer per GET), against the same
// reads unguarded, over an
// in-memory 15 MB body read 32 KiB at a time, the size net/http's transport reads a request
// body with. Memory copies are far faster than S3, so the ratio is the worst case; the
// ns-per-read difference is the cost.
func BenchmarkGuardedBody(b *testing.B) {
	data := make([]byte, 15<<20)
	const chunk = 32 << 10
	for _, guarded := range []bool{false, true} {
		b.Run(fmt.Sprintf("guarded=%v", guarded), func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			buf := make([]byte, chunk)
			reads := 0
			for b.Loop() {
				var r io.ReadCloser = io.NopCloser(bytes.NewReader(data))
				if guarded {
					r = &guardedBody{body: r, dog: newWatchdog(context.Background(), time.Minute), failed: new(atomic.Pointer[error]), health: &s3Health{}}
				}
				for {
					reads++
					if _, err := r.Read(buf); err != nil {
						break
					}
				}
				r.Close()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(reads), "ns/read")
		})
	}
}
