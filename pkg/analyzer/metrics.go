package analyzer

import (
	"sync"
	"sync/atomic"
	"time"

	"imgpipe/pkg/failure"
)

type atomicCounter struct{ v atomic.Int64 }

func (c *atomicCounter) add(n int64) { c.v.Add(n) }

// Metrics are the analyzer's counters, read by tests and exported by the binary.
type Metrics struct {
	received, succeeded, skipped, retried, deadLettered, released, panics atomic.Int64
	receiveErrors, heartbeats, inflight                                   atomic.Int64

	mu            sync.Mutex
	failedByClass map[failure.Class]int64
	visionCalls   int64
	visionTime    time.Duration
}

func newMetrics() *Metrics { return &Metrics{failedByClass: map[failure.Class]int64{}} }

func (m *Metrics) failed(c failure.Class) {
	m.mu.Lock()
	m.failedByClass[c]++
	m.mu.Unlock()
}

func (m *Metrics) observeVision(d time.Duration, _ error) {
	m.mu.Lock()
	m.visionCalls++
	m.visionTime += d
	m.mu.Unlock()
}

// Snapshot is a copy of the counters at one moment.
type Snapshot struct {
	Received, Succeeded, Skipped, Retried, DeadLettered, Released, Panics int64
	ReceiveErrors, Heartbeats, InFlight                                   int64
	Failed                                                                map[string]int64
	VisionCalls                                                           int64
}

// Snapshot returns the counters now.
func (m *Metrics) Snapshot() Snapshot {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := Snapshot{
		Received: m.received.Load(), Succeeded: m.succeeded.Load(), Skipped: m.skipped.Load(),
		Retried: m.retried.Load(), DeadLettered: m.deadLettered.Load(), Released: m.released.Load(),
		Panics: m.panics.Load(), ReceiveErrors: m.receiveErrors.Load(), Heartbeats: m.heartbeats.Load(),
		InFlight: m.inflight.Load(), Failed: map[string]int64{}, VisionCalls: m.visionCalls,
	}
	for c, n := range m.failedByClass {
		s.Failed[c.String()] = n
	}
	return s
}
