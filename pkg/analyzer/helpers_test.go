package analyzer

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
)

// snapshot is the analyzer's counters at one moment, read from its Prometheus collectors.
type snapshot struct {
	Received, Succeeded, Skipped, Retried, DeadLettered, Released, Deferred, Panics int64
	ReceiveErrors, Heartbeats, HeartbeatErrors, InFlight                            int64
	Failed                                                                          map[string]int64
}

func snap(a *Analyzer) snapshot {
	m := a.metrics
	v := func(c prometheus.Collector) int64 { return int64(testutil.ToFloat64(c)) }
	return snapshot{
		Received: v(m.received), Succeeded: v(m.succeeded), Skipped: v(m.skipped), Retried: v(m.retried),
		DeadLettered: v(m.deadLettered), Released: v(m.released), Deferred: v(m.deferred), Panics: v(m.panics),
		ReceiveErrors: v(m.receiveErrors), Heartbeats: v(m.heartbeats), HeartbeatErrors: v(m.heartbeatErrors),
		InFlight: v(m.inFlight), Failed: byLabel(m.failed),
	}
}

// byLabel reads a counter vector with one label as label value -> count.
func byLabel(vec *prometheus.CounterVec) map[string]int64 {
	ch := make(chan prometheus.Metric, 64)
	vec.Collect(ch)
	close(ch)
	out := map[string]int64{}
	for m := range ch {
		var d dto.Metric
		if err := m.Write(&d); err == nil && len(d.Label) == 1 {
			out[d.Label[0].GetValue()] = int64(d.Counter.GetValue())
		}
	}
	return out
}

func sum(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

// histogram reads a histogram vector's observations summed over its labels: their total (in
// seconds, as time) and their count.
func histogram(vec *prometheus.HistogramVec) (time.Duration, int64) {
	ch := make(chan prometheus.Metric, 64)
	vec.Collect(ch)
	close(ch)
	var total float64
	var n uint64
	for m := range ch {
		var d dto.Metric
		if err := m.Write(&d); err == nil && d.Histogram != nil {
			total += d.Histogram.GetSampleSum()
			n += d.Histogram.GetSampleCount()
		}
	}
	return time.Duration(total * float64(time.Second)), int64(n)
}
