package analyzer

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"imgpipe/internal/devstack"
	"imgpipe/pkg/queue"
	"imgpipe/pkg/queue/sqsqueue"
)

// value reads a gauge or counter.
func value(t *testing.T, m prometheus.Metric) float64 {
	t.Helper()
	var out dto.Metric
	if err := m.Write(&out); err != nil {
		t.Fatal(err)
	}
	if out.Gauge != nil {
		return out.Gauge.GetValue()
	}
	return out.Counter.GetValue()
}

// count is the number of series c exports now.
func count(c prometheus.Collector) int {
	ch := make(chan prometheus.Metric, 100)
	c.Collect(ch)
	close(ch)
	return len(ch)
}

func sentAt(t time.Time) *queue.Message { return &queue.Message{SentAt: t} }

// TestReceiveAge: the gauge holds the age of the oldest message of the latest receive, from
// its sent time; messages without one (the SQS driver's for an unreadable SentTimestamp) are
// left out, an empty receive sets 0, and a time ahead of the analyzer's clock counts as 0,
// not as a negative age.
func TestReceiveAge(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	m := newMetrics()
	for _, tc := range []struct {
		name string
		msgs []*queue.Message
		want float64
	}{
		{"oldest of three", []*queue.Message{sentAt(now.Add(-90 * time.Second)), sentAt(now.Add(-5 * time.Second)), {}}, 90},
		{"unknown sent times left out", []*queue.Message{{}, sentAt(now.Add(-1500 * time.Millisecond))}, 1.5},
		{"empty receive", nil, 0},
		{"clock skew", []*queue.Message{sentAt(now.Add(3 * time.Second))}, 0},
	} {
		m.observeReceive(tc.msgs, now)
		if got := value(t, m.receiveAge); got != tc.want {
			t.Errorf("%s: receive age %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestFailureClassesStartAtZero: every failure class is exported before its first failure, so
// that increase() over the error counter sees the first one.
func TestFailureClassesStartAtZero(t *testing.T) {
	m := newMetrics()
	if n := count(m.failed); n != 3 {
		t.Fatalf("%d failure series before any failure, want 3 (transient, throttled, permanent)", n)
	}
	for _, c := range []string{"transient", "throttled", "permanent"} {
		if v := value(t, m.failed.WithLabelValues(c)); v != 0 {
			t.Errorf("class %s starts at %v, want 0", c, v)
		}
	}
}

// TestQueueDepthMetrics: the analyzer exports the source queue's and the dead-letter queue's
// depths (read from the SQS stand-in), and the age of what it receives. A dead-letter queue
// that cannot be read leaves its gauges unset and the analyzer ready.
func TestQueueDepthMetrics(t *testing.T) {
	r := newRig(t, devstack.Resources{})
	ctx := context.Background()
	send := func(url string, n int) {
		for i := range n {
			if _, err := r.sqs.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String("m" + strconv.Itoa(i))}); err != nil {
				t.Fatal(err)
			}
		}
	}
	send(r.res.QueueURL, 2)
	send(r.res.DLQURL, 3)
	sent := time.Now()
	reg := prometheus.NewRegistry()
	deps := r.deps(t, r.visionClient(t, nil), nil)
	a, err := New(deps, &Options{Registerer: reg, Logger: r.log})
	if err != nil {
		t.Fatal(err)
	}
	a.pollDepth(ctx)
	if failing := a.pollDLQDepth(ctx, false); failing {
		t.Fatal("reading the DLQ's depth failed")
	}
	for _, c := range []struct {
		g    *prometheus.GaugeVec
		name string
		want float64
	}{
		{a.metrics.queueDepth, "source visible", 2}, {a.metrics.dlqDepth, "DLQ visible", 3},
	} {
		if got := value(t, c.g.WithLabelValues("visible")); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
	if n := count(a.metrics.dlqDepth); n != 3 {
		t.Errorf("%d DLQ depth series, want 3 (visible, not_visible, delayed)", n)
	}

	// The messages wait at least a second and a half before they are received.
	time.Sleep(time.Until(sent.Add(1500 * time.Millisecond)))
	msgs, err := a.deps.Queue.Receive(ctx, 10, time.Minute)
	if err != nil || len(msgs) != 2 {
		t.Fatalf("receive: %d messages, %v; want 2", len(msgs), err)
	}
	a.metrics.observeReceive(msgs, a.now()) // as the receive loop does
	if age := value(t, a.metrics.receiveAge); age < 1.5 {
		t.Errorf("receive age %v s for messages sent at least 1.5 s before", age)
	}

	missing, err := sqsqueue.New(r.sqs, r.res.DLQURL+"-missing", nil)
	if err != nil {
		t.Fatal(err)
	}
	deps.DLQ = missing
	bad, err := New(deps, &Options{Registerer: prometheus.NewRegistry(), Logger: r.log})
	if err != nil {
		t.Fatal(err)
	}
	bad.pollDepth(ctx)
	if failing := bad.pollDLQDepth(ctx, false); !failing {
		t.Error("reading a missing DLQ's depth did not fail")
	}
	if n := count(bad.metrics.dlqDepth); n != 0 {
		t.Errorf("%d DLQ depth series after a failed read, want none", n)
	}
	if err := bad.Ready(ctx); err != nil {
		t.Errorf("an unreadable DLQ made the analyzer unready: %v", err)
	}
}

// BenchmarkObserveReceive: the cost the receive-age gauge adds to a full receive of 10
// messages.
//
//	go test ./pkg/analyzer -run '^$' -bench ObserveReceive -short
func BenchmarkObserveReceive(b *testing.B) {
	m := newMetrics()
	now := time.Now()
	msgs := make([]*queue.Message, 10)
	for i := range msgs {
		msgs[i] = sentAt(now.Add(-time.Duration(i) * time.Second))
	}
	b.ReportAllocs()
	for b.Loop() {
		m.observeReceive(msgs, now)
	}
}
