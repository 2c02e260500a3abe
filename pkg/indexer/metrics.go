package indexer

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"imgpipe/pkg/indexstore"
)

// metrics are the indexer's counters and histograms, kept once: as Prometheus collectors,
// which tests read with prometheus/testutil.
type metrics struct {
	// received counts messages; written, deleted and stale count applied records by outcome;
	// nacked counts messages nacked for redelivery; invalid counts messages that can never be
	// applied, and deadLettered those of them copied to the dead-letter topic; retried counts
	// writes tried again while their message was held; revived counts the held writes whose
	// attempt or wait was cut short because Firestore answered again; receiveErrors counts
	// failed receives; extended counts lease extensions of held messages, and extendErrors
	// those that failed.
	received, written, deleted, stale, nacked, invalid, deadLettered, retried, revived prometheus.Counter
	receiveErrors, extended, extendErrors                                              prometheus.Counter

	writeSeconds, batchRecords, batchSeconds prometheus.Histogram
	endToEnd                                 *prometheus.HistogramVec
}

func newMetrics() *metrics {
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: "imgpipe_indexer_" + name, Help: help})
	}
	return &metrics{
		received:      counter("messages_received_total", "Messages received from the subscription."),
		written:       counter("documents_written_total", "Created records written to the index."),
		deleted:       counter("documents_deleted_total", "Removed records applied (document deleted, tombstone left)."),
		stale:         counter("records_stale_total", "Records not newer than the index: acknowledged, nothing changed."),
		nacked:        counter("messages_nacked_total", "Messages nacked for redelivery."),
		invalid:       counter("messages_invalid_total", "Messages that can never be applied."),
		deadLettered:  counter("messages_dead_lettered_total", "Invalid messages copied to the dead-letter topic and acknowledged."),
		retried:       counter("write_retries_total", "Writes tried again after a transient failure, their message held."),
		revived:       counter("write_revivals_total", "Held writes whose attempt or wait was cut short because Firestore answered again."),
		receiveErrors: counter("receive_errors_total", "Receives from the subscription that failed."),
		extended:      counter("lease_extensions_total", "Leases of held messages extended."),
		extendErrors:  counter("lease_extension_errors_total", "Lease extensions of held messages that failed."),
		writeSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "imgpipe_indexer_write_seconds", Help: "Time from a record's decoding to its committed write (batch wait included).",
			Buckets: prometheus.ExponentialBuckets(0.002, 2, 14),
		}),
		batchRecords: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "imgpipe_indexer_batch_records", Help: "Records per batched Firestore transaction.",
			Buckets: []float64{1, 2, 5, 10, 20, 50, 100, 200},
		}),
		batchSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "imgpipe_indexer_batch_seconds", Help: "Time of one batched Firestore transaction, fallbacks included.",
			Buckets: prometheus.ExponentialBuckets(0.002, 2, 14),
		}),
		endToEnd: newEndToEnd(),
	}
}

func (m *metrics) register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{
		m.received, m.written, m.deleted, m.stale, m.nacked, m.invalid, m.deadLettered, m.retried, m.revived,
		m.receiveErrors, m.extended, m.extendErrors, m.writeSeconds, m.batchRecords, m.batchSeconds, m.endToEnd,
	} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

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
