package indexer_test

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"imgpipe/pkg/indexer"
	"imgpipe/pkg/publish"
	"imgpipe/pkg/record"
)

// TestEndToEndHistogram: the indexer observes, once per committed write, the time since the
// record's S3 event, by outcome; a stale record (nothing written) is not observed.
func TestEndToEndHistogram(t *testing.T) {
	st, b := bootstrap(t, 5)
	reg := prometheus.NewRegistry()
	r := startIndexer(t, st.ProjectID, b, &indexer.Options{Registerer: reg})
	pub := publish.New(pubsubClient(t, st.ProjectID), b.TopicName, nil)
	defer pub.Close()
	created := rec(record.Created, b.Bucket, "late.png", 2)
	created.EventTime = time.Now().Add(-90 * time.Second)
	removed := rec(record.Removed, b.Bucket, "gone.png", 1)
	removed.EventTime = time.Now().Add(-10 * time.Second)
	publishAll(t, pub, []*record.Analysis{created, removed})
	eventually(t, "both applied", func() bool { return settled(r) >= 2 })
	stale := rec(record.Created, b.Bucket, "late.png", 1)
	publishAll(t, pub, []*record.Analysis{stale})
	eventually(t, "stale record applied", func() bool { return settled(r) >= 3 })

	got := map[string]*dto.Histogram{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "imgpipe_indexer_end_to_end_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "outcome" {
					got[l.GetValue()] = m.GetHistogram()
				}
			}
		}
	}
	for outcome, low := range map[string]float64{"written": 90, "deleted": 10} {
		h := got[outcome]
		if h == nil {
			t.Errorf("no end-to-end series for outcome %s (have %v)", outcome, got)
			continue
		}
		// The events are at least this old when written; the upper bound only guards against
		// a wrong clock (the stale record's event is in 2026-11), it asserts no speed.
		if h.GetSampleCount() != 1 || h.GetSampleSum() < low || h.GetSampleSum() > low+600 {
			t.Errorf("%s: %d observations summing to %v s, want 1 of at least %v s", outcome, h.GetSampleCount(), h.GetSampleSum(), low)
		}
	}
}
