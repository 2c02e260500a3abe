package analyzer

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/prometheus/client_golang/prometheus"

	"imgpipe/pkg/failure"
)

type atomicCounter struct{ v atomic.Int64 }

func (c *atomicCounter) add(n int64) { c.v.Add(n) }

// Metrics are the analyzer's counters, read by tests through Snapshot and exported to
// Prometheus when Options.Registerer is set.
type Metrics struct {
	received, succeeded, skipped, retried, deadLettered, released, panics atomic.Int64
	receiveErrors, heartbeats, heartbeatErrors, inflight, deferred        atomic.Int64

	mu            sync.Mutex
	failedByClass map[failure.Class]int64
	visionCalls   int64
	visionTime    time.Duration
	workerTime    time.Duration
	sqsCalls      map[string]int64
	handleEWMA    time.Duration // recent mean time per message, for the autoscaler

	failedVec   *prometheus.CounterVec
	sqsVec      *prometheus.CounterVec
	visionCall  *prometheus.HistogramVec
	queueDepth  *prometheus.GaugeVec
	dlqDepth    *prometheus.GaugeVec
	receiveAge  prometheus.Gauge
	wantedGauge prometheus.Gauge
	decisions   *prometheus.CounterVec
}

func newMetrics() *Metrics {
	m := &Metrics{
		failedByClass: map[failure.Class]int64{},
		sqsCalls:      map[string]int64{},
		failedVec: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "imgpipe_analyzer_messages_failed_total", Help: "Messages whose processing failed, by failure class.",
		}, []string{"class"}),
		sqsVec: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "imgpipe_analyzer_sqs_calls_total", Help: "SQS API calls made, by operation.",
		}, []string{"op"}),
		visionCall: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "imgpipe_analyzer_vision_call_seconds", Help: "Time of one Vision analysis, retries and waits included, by outcome class.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 14),
		}, []string{"outcome"}),
		queueDepth: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "imgpipe_analyzer_queue_messages", Help: "Approximate number of messages on the source queue, by state (visible, not_visible, delayed).",
		}, []string{"state"}),
		dlqDepth: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "imgpipe_analyzer_dlq_messages", Help: "Approximate number of messages on the dead-letter queue, by state (visible, not_visible, delayed), read with the source queue's depth.",
		}, []string{"state"}),
		receiveAge: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "imgpipe_analyzer_receive_oldest_age_seconds", Help: "Age (from its SentTimestamp) of the oldest message in the latest receive; 0 after a receive that brought none.",
		}),
		wantedGauge: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "imgpipe_analyzer_autoscale_wanted_workers", Help: "Worker count the autoscaler last asked for, before hysteresis and cooldown.",
		}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "imgpipe_analyzer_autoscale_changes_total", Help: "Worker pool resizes made by the autoscaler, by direction.",
		}, []string{"direction"}),
	}
	// Every class is exported from the start, at 0: a series born at its first failure would
	// hide that failure from increase() and rate(), and so from the error-rate alert.
	for _, c := range []failure.Class{failure.Transient, failure.Throttled, failure.Permanent} {
		m.failedVec.WithLabelValues(c.String())
	}
	return m
}

func (m *Metrics) failed(c failure.Class) {
	m.mu.Lock()
	m.failedByClass[c]++
	m.mu.Unlock()
	m.failedVec.WithLabelValues(c.String()).Inc()
}

func (m *Metrics) sqsCall(op string) {
	m.mu.Lock()
	m.sqsCalls[op]++
	m.mu.Unlock()
	m.sqsVec.WithLabelValues(op).Inc()
}

func (m *Metrics) observeVision(d time.Duration, err error) {
	m.mu.Lock()
	m.visionCalls++
	m.visionTime += d
	m.mu.Unlock()
	outcome := "ok"
	if err != nil {
		outcome = failure.ClassOf(err).String()
	}
	m.visionCall.WithLabelValues(outcome).Observe(d.Seconds())
}

// observeReceive sets the age of the oldest message of a receive, from each message's
// SentTimestamp (epoch milliseconds); messages without one are left out.
func (m *Metrics) observeReceive(msgs []sqstypes.Message, now time.Time) {
	oldest := time.Duration(0)
	for _, msg := range msgs {
		ms, err := strconv.ParseInt(msg.Attributes[string(sqstypes.MessageSystemAttributeNameSentTimestamp)], 10, 64)
		if err != nil {
			continue
		}
		oldest = max(oldest, now.Sub(time.UnixMilli(ms)))
	}
	m.receiveAge.Set(oldest.Seconds())
}

// setDepth exports a queue's depth on g.
func setDepth(g *prometheus.GaugeVec, d Depth) {
	g.WithLabelValues("visible").Set(float64(d.Visible))
	g.WithLabelValues("not_visible").Set(float64(d.NotVisible))
	g.WithLabelValues("delayed").Set(float64(d.Delayed))
}

// observeHandle feeds the moving average of the time per message.
func (m *Metrics) observeHandle(d time.Duration) {
	m.mu.Lock()
	m.workerTime += d
	if m.handleEWMA == 0 {
		m.handleEWMA = d
	} else {
		m.handleEWMA += (d - m.handleEWMA) / 10
	}
	m.mu.Unlock()
}

func (m *Metrics) meanHandle() time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.handleEWMA
}

// collectors are the Prometheus view of the analyzer; the gauges read the live analyzer.
func (a *Analyzer) collectors() []prometheus.Collector {
	m := a.metrics
	counter := func(name, help string, v *atomic.Int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "imgpipe_analyzer_" + name, Help: help},
			func() float64 { return float64(v.Load()) })
	}
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "imgpipe_analyzer_" + name, Help: help}, f)
	}
	return []prometheus.Collector{
		counter("messages_received_total", "Messages received from the source queue.", &m.received),
		counter("messages_succeeded_total", "Messages fully processed and deleted.", &m.succeeded),
		counter("messages_retried_total", "Messages left on the queue with a backoff after a transient failure.", &m.retried),
		counter("messages_dead_lettered_total", "Messages sent to the dead-letter queue by the analyzer.", &m.deadLettered),
		counter("messages_released_total", "Messages given back unfinished at shutdown.", &m.released),
		counter("messages_deferred_total", "Messages given back because a dependency failed or the setup is broken (circuit open), without backoff.", &m.deferred),
		counter("records_skipped_total", "Event records with nothing to do (stale, test events).", &m.skipped),
		counter("panics_total", "Worker panics recovered.", &m.panics),
		counter("receive_errors_total", "Failed SQS receives.", &m.receiveErrors),
		counter("heartbeats_total", "Visibility extensions of messages in work.", &m.heartbeats),
		counter("heartbeat_errors_total", "Visibility extensions of messages in work that failed.", &m.heartbeatErrors),
		gauge("in_flight", "Messages in work.", func() float64 { return float64(m.inflight.Load()) }),
		gauge("workers", "Size of the worker pool.", func() float64 { return float64(a.pool.size()) }),
		gauge("circuit_state", "Circuit breaker on the analyzer's dependencies (S3 reads, Vision, Pub/Sub, setup faults): 0 closed, 1 open, 2 half-open.", func() float64 { return float64(a.breaker.State()) }),
		m.failedVec, m.sqsVec, m.visionCall, m.queueDepth, m.dlqDepth, m.receiveAge, m.wantedGauge, m.decisions,
	}
}

// Snapshot is a copy of the counters at one moment.
type Snapshot struct {
	Received, Succeeded, Skipped, Retried, DeadLettered, Released, Panics int64
	ReceiveErrors, Heartbeats, HeartbeatErrors, InFlight, Deferred        int64
	Failed                                                                map[string]int64
	VisionCalls                                                           int64
	// VisionTime is the time spent in Vision calls (retries included), WorkerTime the time
	// messages held a worker (S3 reads and Vision): both summed over messages.
	VisionTime, WorkerTime time.Duration
	// SQSCalls counts SQS API calls by operation (ReceiveMessage, DeleteMessageBatch...).
	SQSCalls map[string]int64
}

// Snapshot returns the counters now.
func (m *Metrics) Snapshot() Snapshot {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := Snapshot{
		Received: m.received.Load(), Succeeded: m.succeeded.Load(), Skipped: m.skipped.Load(),
		Retried: m.retried.Load(), DeadLettered: m.deadLettered.Load(), Released: m.released.Load(),
		Panics: m.panics.Load(), ReceiveErrors: m.receiveErrors.Load(), Heartbeats: m.heartbeats.Load(), HeartbeatErrors: m.heartbeatErrors.Load(),
		InFlight: m.inflight.Load(), Deferred: m.deferred.Load(), Failed: map[string]int64{},
		VisionCalls: m.visionCalls, VisionTime: m.visionTime, WorkerTime: m.workerTime, SQSCalls: map[string]int64{},
	}
	for c, n := range m.failedByClass {
		s.Failed[c.String()] = n
	}
	for op, n := range m.sqsCalls {
		s.SQSCalls[op] = n
	}
	return s
}

// VisionObserver exports the Vision client's per-attempt events to Prometheus: attempt
// latency by status, 429s and retries. Give it to vision.Options.Observer and to
// Options.VisionObserver (which registers it with the analyzer's metrics).
type VisionObserver struct {
	attempts  *prometheus.HistogramVec
	throttled prometheus.Counter
	retries   prometheus.Counter
	n429      atomic.Int64
}

// NewVisionObserver returns an observer with its own collectors.
func NewVisionObserver() *VisionObserver {
	return &VisionObserver{
		attempts: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "imgpipe_analyzer_vision_attempt_seconds", Help: "Latency of one Vision HTTP attempt, by status (0: no response).",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
		}, []string{"status"}),
		throttled: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "imgpipe_analyzer_vision_throttled_total", Help: "Vision answers 429 Too Many Requests.",
		}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "imgpipe_analyzer_vision_retries_total", Help: "Vision attempts retried by the client.",
		}),
	}
}

// OnAttempt implements vision.Observer.
func (o *VisionObserver) OnAttempt(status int, latency time.Duration) {
	o.attempts.WithLabelValues(strconv.Itoa(status)).Observe(latency.Seconds())
	if status == 429 {
		o.throttled.Inc()
		o.n429.Add(1)
	}
}

// OnThrottle implements vision.Observer (429s are counted in OnAttempt).
func (o *VisionObserver) OnThrottle(time.Duration) {}

// OnRetry implements vision.Observer.
func (o *VisionObserver) OnRetry(int, error) { o.retries.Inc() }

// Throttled is the number of 429 answers seen.
func (o *VisionObserver) Throttled() int64 { return o.n429.Load() }

func (o *VisionObserver) collectors() []prometheus.Collector {
	return []prometheus.Collector{o.attempts, o.throttled, o.retries}
}
