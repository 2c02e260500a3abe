package indexer

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// Counts is an indexer's counters at one moment, read from its Prometheus collectors.
type Counts struct {
	Received, Written, Deleted, Stale, Nacked, Invalid, DeadLettered, Retried, Revived int64
	ReceiveErrors, Extended, ExtendErrors                                              int64
}

// CountsOf reads ix's counters.
func CountsOf(ix *Indexer) Counts {
	m := ix.metrics
	v := func(c prometheus.Counter) int64 { return int64(testutil.ToFloat64(c)) }
	return Counts{
		Received: v(m.received), Written: v(m.written), Deleted: v(m.deleted), Stale: v(m.stale),
		Nacked: v(m.nacked), Invalid: v(m.invalid), DeadLettered: v(m.deadLettered),
		Retried: v(m.retried), Revived: v(m.revived),
		ReceiveErrors: v(m.receiveErrors), Extended: v(m.extended), ExtendErrors: v(m.extendErrors),
	}
}
