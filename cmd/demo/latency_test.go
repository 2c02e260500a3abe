package main

import (
	"math"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"imgpipe/internal/otlprecv"
)

func TestHistogramQuantile(t *testing.T) {
	inf := math.Inf(1)
	for _, tc := range []struct {
		name string
		q    float64
		cum  map[float64]float64
		want float64
	}{
		// 10 observations: 4 up to 1 s, 4 more up to 2 s, 2 more up to 4 s.
		{"p50 inside the second bucket", 0.5, map[float64]float64{1: 4, 2: 8, 4: 10, inf: 10}, 1.25},
		{"p95 inside the third bucket", 0.95, map[float64]float64{1: 4, 2: 8, 4: 10, inf: 10}, 3.5},
		{"first bucket from 0", 0.2, map[float64]float64{1: 4, 2: 8, inf: 8}, 0.4},
		{"rank in +Inf: the highest finite bound", 0.95, map[float64]float64{1: 4, 2: 8, inf: 10}, 2},
		{"empty", 0.5, map[float64]float64{1: 0, inf: 0}, math.NaN()},
		{"no buckets", 0.5, map[float64]float64{}, math.NaN()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := histogramQuantile(tc.q, tc.cum)
			if !(got == tc.want || math.IsNaN(got) && math.IsNaN(tc.want)) {
				t.Fatalf("histogramQuantile(%v) = %v, want %v", tc.q, got, tc.want)
			}
		})
	}
}

// The stages of one image's trace, with a retried first delivery whose spans must not count.
func TestStages(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	span := func(name, service, id, parent string, from, to int, attrs map[string]string) otlprecv.Span {
		return otlprecv.Span{Name: name, Service: service, SpanID: id, Parent: parent, Start: at(from), End: at(to), Attrs: attrs}
	}
	a := "imgpipe-analyzer"
	tr := newImageTrace([]otlprecv.Span{
		span("uploader.upload", "imgpipe-uploader", "u", "", 0, 30, nil),
		span("analyzer.message", a, "m2", "u", 1040, 1100, map[string]string{"imgpipe.verdict": "delete", "imgpipe.sqs.sent_at": at(35).Format(time.RFC3339Nano)}),
		span("s3.read_head", a, "r2", "m2", 1041, 1043, map[string]string{"imgpipe.s3.event_time": at(29).Format(time.RFC3339Nano)}),
		span("vision.analyze", a, "v2", "m2", 1044, 1070, nil),
		span("pubsub.publish", a, "p2", "m2", 1071, 1075, nil),
		span("indexer.message", "imgpipe-indexer", "i", "p2", 1080, 1100, nil),
		span("indexer.write", "imgpipe-indexer", "w", "i", 1081, 1095, nil),
		// The first delivery, received after the others in this list.
		span("analyzer.message", a, "m1", "u", 40, 60, map[string]string{"imgpipe.verdict": "retry", "imgpipe.sqs.sent_at": at(35).Format(time.RFC3339Nano)}),
		span("vision.analyze", a, "v1", "m1", 45, 59, nil),
	})
	want := []time.Duration{30, 6, 1005, 2, 26, 4, 5, 14, 1066}
	if len(want) != len(stages) {
		t.Fatalf("%d stages, want %d", len(stages), len(want))
	}
	for i, st := range stages {
		d, ok := st.of(tr)
		if !ok || d != want[i]*time.Millisecond {
			t.Errorf("%s: %v %v, want %v", st.name, d, ok, want[i]*time.Millisecond)
		}
	}
	if _, ok := stages[4].of(newImageTrace(nil)); ok {
		t.Error("a stage measured on an empty trace")
	}
}

// endToEnd reads the histogram as the indexer exports it (both outcomes, text format with its
// +Inf bucket).
func TestEndToEndFromMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: endToEndMetric, Help: "test",
		Buckets: []float64{0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 900, 3600}}, []string{"outcome"})
	reg.MustRegister(h)
	for _, v := range []float64{6, 6, 7, 7, 8, 8, 9, 9} { // 8 written in (5, 10]
		h.WithLabelValues("written").Observe(v)
	}
	h.WithLabelValues("deleted").Observe(15) // 2 deleted in (10, 20]
	h.WithLabelValues("deleted").Observe(15)
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	p50, p95, n, err := endToEnd(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	// rank 5 of 10 in (5, 10] holding 8: 5 + 5*5/8; rank 9.5 in (10, 20] holding 2 from 8: 10 + 10*1.5/2.
	if n != 10 || math.Abs(p50-8.125) > 1e-9 || math.Abs(p95-17.5) > 1e-9 {
		t.Fatalf("endToEnd: p50 %v p95 %v n %d; want 8.125, 17.5, 10", p50, p95, n)
	}
}
