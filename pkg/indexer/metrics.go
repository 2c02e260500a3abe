package indexer

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"imgpipe/pkg/indexstore"
)

// newEndToEnd is the histogram of the pipeline's main service-level indicator: the time from
// an object's S3 event to its committed index write, by outcome (written, deleted). The
// buckets bound the latency SLO's threshold (60 s; see docs/observability.md).
func newEndToEnd() *prometheus.HistogramVec {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "imgpipe_indexer_end_to_end_seconds",
		Help:    "Time from a record's S3 event to its committed index write, by outcome (written, deleted).",
		Buckets: []float64{0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 900, 3600},
	}, []string{"outcome"})
	// Both outcomes exist from the start, so that rates over them are defined before the first.
	for _, o := range []indexstore.Outcome{indexstore.Written, indexstore.Deleted} {
		h.WithLabelValues(o.String())
	}
	return h
}

// endToEndSeconds is the time from an applied record's event to now: false for a stale
// record (nothing was written) or one without an event time; a clock behind the event's
// counts as 0.
func endToEndSeconds(outcome indexstore.Outcome, eventTime, now time.Time) (float64, bool) {
	if outcome == indexstore.Stale || eventTime.IsZero() {
		return 0, false
	}
	return max(now.Sub(eventTime), 0).Seconds(), true
}
