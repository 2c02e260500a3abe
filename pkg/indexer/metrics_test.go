package indexer

import (
	"testing"
	"time"

	"imgpipe/pkg/indexstore"
)

// TestEndToEndSeconds: the latency observed for an applied record, and the records that
// give none.
func TestEndToEndSeconds(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name    string
		outcome indexstore.Outcome
		event   time.Time
		want    float64
		observe bool
	}{
		{"written", indexstore.Written, now.Add(-2500 * time.Millisecond), 2.5, true},
		{"deleted", indexstore.Deleted, now.Add(-time.Minute), 60, true},
		{"stale: nothing written", indexstore.Stale, now.Add(-time.Second), 0, false},
		{"no event time", indexstore.Written, time.Time{}, 0, false},
		{"event ahead of this clock", indexstore.Written, now.Add(time.Second), 0, true},
	} {
		got, ok := endToEndSeconds(tc.outcome, tc.event, now)
		if got != tc.want || ok != tc.observe {
			t.Errorf("%s: (%v, %v), want (%v, %v)", tc.name, got, ok, tc.want, tc.observe)
		}
	}
}
