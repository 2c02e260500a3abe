package analyzer

import (
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"imgpipe/pkg/failure"
	"imgpipe/pkg/queue"
)

// metrics are the analyzer's counters, kept once: as Prometheus collectors, which tests read
// with prometheus/testutil. The gauges that read the live analyzer are made in collectors.
type metrics struct {
	received, succeeded, skipped, retried, deadLettered, released, deferred prometheus.Counter
	panics, receiveErrors, heartbeats, heartbeatErrors                      prometheus.Counter
	inFlight                                                                prometheus.Gauge
	failed                                                                  *prometheus.CounterVec
	visionCall                                                              *prometheus.HistogramVec
	queueDepth, dlqDepth                                                    *prometheus.GaugeVec
	receiveAge                                                              prometheus.Gauge
	wanted                                                                  prometheus.Gauge
	decisions                                                               *prometheus.CounterVec
	thumbnails                                                              *prometheus.CounterVec

	// handle is the time messages spend in a worker: its moving mean feeds the autoscaler.
	handle handleTime
}

func newMetrics() *metrics {
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: "imgpipe_analyzer_" + name, Help: help})
	}
	m := &metrics{
		received:        counter("messages_received_total", "Messages received from the source queue."),
		succeeded:       counter("messages_succeeded_total", "Messages fully processed and deleted."),
		retried:         counter("messages_retried_total", "Messages left on the queue with a backoff after a transient failure."),
		deadLettered:    counter("messages_dead_lettered_total", "Messages sent to the dead-letter queue by the analyzer."),
		released:        counter("messages_released_total", "Messages given back unfinished at shutdown."),
		deferred:        counter("messages_deferred_total", "Messages given back because a dependency failed or the setup is broken (circuit open), without backoff."),
		skipped:         counter("records_skipped_total", "Event records with nothing to do (stale, test events)."),
		panics:          counter("panics_total", "Worker panics recovered."),
		receiveErrors:   counter("receive_errors_total", "Failed SQS receives."),
		heartbeats:      counter("heartbeats_total", "Visibility extensions of messages in work."),
		heartbeatErrors: counter("heartbeat_errors_total", "Visibility extensions of messages in work that failed."),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "imgpipe_analyzer_in_flight", Help: "Messages in work.",
		}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "imgpipe_analyzer_messages_failed_total", Help: "Messages whose processing failed, by failure class.",
		}, []string{"class"}),
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
		wanted: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "imgpipe_analyzer_autoscale_wanted_workers", Help: "Worker count the autoscaler last asked for, before hysteresis and cooldown.",
		}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "imgpipe_analyzer_autoscale_changes_total", Help: "Worker pool resizes made by the autoscaler, by direction.",
		}, []string{"direction"}),
		thumbnails: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "imgpipe_analyzer_thumbnails_total", Help: "Thumbnail steps, by outcome: written, removed (with their object, or replaced by a newer version's), superseded (a newer version's was there: the stale record goes without), failed (a transient S3 failure: the record goes without), too_large, undecodable, gone (the object changed since Vision read it), refused (a permanent error of the store: the record goes without).",
		}, []string{"outcome"}),
	}
	// Every class is exported from the start, at 0: a series born at its first failure would
	// hide that failure from increase() and rate(), and so from the error-rate alert.
	for _, c := range []failure.Class{failure.Transient, failure.Throttled, failure.Permanent} {
		m.failed.WithLabelValues(c.String())
	}
	return m
}

// observeReceive sets the age of the oldest message of a receive, from each message's sent
// time; messages without one are left out, and a time ahead of now counts as 0.
func (m *metrics) observeReceive(msgs []*queue.Message, now time.Time) {
	oldest := time.Duration(0)
	for _, msg := range msgs {
		if !msg.SentAt.IsZero() {
			oldest = max(oldest, now.Sub(msg.SentAt))
		}
	}
	m.receiveAge.Set(oldest.Seconds())
}

// setDepth exports a queue's depth on g.
func setDepth(g *prometheus.GaugeVec, d queue.Depth) {
	g.WithLabelValues("visible").Set(float64(d.Visible))
	g.WithLabelValues("not_visible").Set(float64(d.NotVisible))
	g.WithLabelValues("delayed").Set(float64(d.Delayed))
}

func (m *metrics) failure(err error) { m.failed.WithLabelValues(failure.ClassOf(err).String()).Inc() }

func (m *metrics) observeVision(d time.Duration, err error) {
	outcome := "ok"
	if err != nil {
		outcome = failure.ClassOf(err).String()
	}
	m.visionCall.WithLabelValues(outcome).Observe(d.Seconds())
}

// handleTime is the time messages held a worker: the sum, and a moving mean of recent ones.
type handleTime struct {
	mu    sync.Mutex
	total time.Duration
	ewma  time.Duration
}

func (h *handleTime) observe(d time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.total += d
	if h.ewma == 0 {
		h.ewma = d
	} else {
		h.ewma += (d - h.ewma) / 10
	}
}

func (h *handleTime) mean() time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.ewma
}

// collectors are the Prometheus view of the analyzer; the gauges read the live analyzer.
func (a *Analyzer) collectors() []prometheus.Collector {
	m := a.metrics
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "imgpipe_analyzer_" + name, Help: help}, f)
	}
	return []prometheus.Collector{
		m.received, m.succeeded, m.retried, m.deadLettered, m.released, m.deferred, m.skipped,
		m.panics, m.receiveErrors, m.heartbeats, m.heartbeatErrors, m.inFlight,
		gauge("workers", "Size of the worker pool.", func() float64 { return float64(a.capacity.size()) }),
		gauge("circuit_state", "Circuit breaker on the analyzer's dependencies (S3 reads, Vision, Pub/Sub, setup faults): 0 closed, 1 open, 2 half-open.", func() float64 { return float64(a.breaker.State()) }),
		m.failed, m.visionCall, m.queueDepth, m.dlqDepth, m.receiveAge, m.wanted, m.decisions, m.thumbnails,
	}
}

// NewSQSCalls returns the counter of SQS API calls by operation,
// imgpipe_analyzer_sqs_calls_total{op}, for awsclient.CountCalls on the analyzer's SQS client
// (the SDK counts its own calls, whoever makes them).
func NewSQSCalls() *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "imgpipe_analyzer_sqs_calls_total", Help: "SQS API calls made, by operation.",
	}, []string{"op"})
}

// VisionObserver exports the Vision client's per-attempt events to Prometheus: attempt
// latency by status, 429s and retries. Give it to vision.Options.Observer and to
// Options.VisionObserver (which registers it with the analyzer's metrics).
type VisionObserver struct {
	attempts  *prometheus.HistogramVec
	throttled prometheus.Counter
	retries   prometheus.Counter
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
	}
}

// OnThrottle implements vision.Observer (429s are counted in OnAttempt).
func (o *VisionObserver) OnThrottle(time.Duration) {}

// OnRetry implements vision.Observer.
func (o *VisionObserver) OnRetry(int, error) { o.retries.Inc() }

func (o *VisionObserver) collectors() []prometheus.Collector {
	return []prometheus.Collector{o.attempts, o.throttled, o.retries}
}
