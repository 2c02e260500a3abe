package indexer

import (
	"testing"
	"time"

	"imgpipe/pkg/index"
)

// TestEndToEndSeconds: the latency observed for an applied record, and the records that
// give none.
func TestEndToEndSeconds(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name    string
		outcome index.Outcome
		event   time.Time
		want    float64
		observe bool
	}{
		{"written", index.Written, now.Add(-2500 * time.Millisecond), 2.5, true},
		{"deleted", index.Deleted, now.Add(-time.Minute), 60, true},
		{"stale: nothing written", index.Stale, now.Add(-time.Second), 0, false},
		{"no event time", index.Written, time.Time{}, 0, false},
		{"event ahead of this clock", index.Written, now.Add(time.Second), 0, true},
	} {
		got, ok := endToEndSeconds(tc.outcome, tc.event, now)
		if got != tc.want || ok != tc.observe {
			t.Errorf("%s: (%v, %v), want (%v, %v)", tc.name, got, ok, tc.want, tc.observe)
		}
	}
}
