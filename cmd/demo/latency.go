package main

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"imgpipe/internal/otlprecv"
)

// The run's latency: the p50 and p95 of the indexer's imgpipe_indexer_end_to_end_seconds (S3
// event to committed index write) read from its /metrics, and the time of each stage of every
// indexed image, from the traces the binaries sent to the demo's OTLP receiver.

const endToEndMetric = "imgpipe_indexer_end_to_end_seconds"

// endToEnd reads the indexer's end-to-end histogram (all outcomes) and returns its p50, p95
// and count.
func endToEnd(metricsURL string) (p50, p95 float64, n uint64, err error) {
	resp, err := http.Get(metricsURL)
	if err != nil {
		return 0, 0, 0, err
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("parse %s: %w", metricsURL, err)
	}
	mf, ok := families[endToEndMetric]
	if !ok || mf.GetType() != dto.MetricType_HISTOGRAM {
		return 0, 0, 0, fmt.Errorf("%s exports no histogram %s", metricsURL, endToEndMetric)
	}
	cum := map[float64]float64{} // upper bound -> cumulative count, summed over the outcomes
	for _, m := range mf.GetMetric() {
		h := m.GetHistogram()
		n += h.GetSampleCount()
		inf := false
		for _, b := range h.GetBucket() {
			cum[b.GetUpperBound()] += float64(b.GetCumulativeCount())
			inf = inf || math.IsInf(b.GetUpperBound(), 1)
		}
		if !inf { // the text format lists the +Inf bucket; the protobuf one may not
			cum[math.Inf(1)] += float64(h.GetSampleCount())
		}
	}
	return histogramQuantile(0.5, cum), histogramQuantile(0.95, cum), n, nil
}

// histogramQuantile estimates the q-quantile of a classic histogram's cumulative bucket counts
// as Prometheus's histogram_quantile does: linearly within the bucket the rank falls in (from 0
// for the first bucket); in the +Inf bucket, the highest finite bound. NaN when it is empty.
func histogramQuantile(q float64, cum map[float64]float64) float64 {
	bounds := make([]float64, 0, len(cum))
	for b := range cum {
		bounds = append(bounds, b)
	}
	slices.Sort(bounds)
	if len(bounds) == 0 || cum[bounds[len(bounds)-1]] == 0 {
		return math.NaN()
	}
	rank := q * cum[bounds[len(bounds)-1]]
	lower, below := 0.0, 0.0
	for i, b := range bounds {
		if c := cum[b]; c >= rank {
			if math.IsInf(b, 1) {
				if i == 0 {
					return math.NaN()
				}
				return bounds[i-1]
			}
			if c == below {
				return b
			}
			return lower + (b-lower)*(rank-below)/(c-below)
		}
		lower, below = b, cum[b]
	}
	return bounds[len(bounds)-1]
}

// stages are the parts of an indexed image's way, measured on its trace. Each returns false
// when the trace lacks what it needs.
var stages = []struct {
	name string
	of   func(t *imageTrace) (time.Duration, bool)
}{
	{"upload (uploader.upload)", func(t *imageTrace) (time.Duration, bool) { return t.span("uploader.upload") }},
	{"S3 event -> SQS (event time to SentTimestamp)", func(t *imageTrace) (time.Duration, bool) {
		return between(t.attrTime("s3.read_head", "imgpipe.s3.event_time"), t.attrTime("analyzer.message", "imgpipe.sqs.sent_at"))
	}},
	{"queue wait (SentTimestamp to the analyzer)", func(t *imageTrace) (time.Duration, bool) {
		return between(t.attrTime("analyzer.message", "imgpipe.sqs.sent_at"), t.start("analyzer.message"))
	}},
	{"S3 read (first ranged GET)", func(t *imageTrace) (time.Duration, bool) { return t.span("s3.read_head") }},
	{"Vision (the call: client rate-limit wait, attempts, retries)", func(t *imageTrace) (time.Duration, bool) { return t.span("vision.analyze") }},
	{"publish (Pub/Sub)", func(t *imageTrace) (time.Duration, bool) { return t.span("pubsub.publish") }},
	{"Pub/Sub -> indexer", func(t *imageTrace) (time.Duration, bool) {
		return between(t.end("pubsub.publish"), t.start("indexer.message"))
	}},
	{"Firestore (write, batch wait included)", func(t *imageTrace) (time.Duration, bool) { return t.span("indexer.write") }},
	{"S3 event -> indexed", func(t *imageTrace) (time.Duration, bool) {
		return between(t.attrTime("s3.read_head", "imgpipe.s3.event_time"), t.end("indexer.write"))
	}},
}

// imageTrace is one image's spans; for the analyzer, those of its last delivery (the one that
// published).
type imageTrace struct{ byName map[string]otlprecv.Span }

func newImageTrace(spans []otlprecv.Span) *imageTrace {
	t := &imageTrace{byName: map[string]otlprecv.Span{}}
	last := ""
	for _, s := range otlprecv.Named(spans, "analyzer.message") {
		if s.Attrs["imgpipe.verdict"] == "delete" {
			last = s.SpanID
			t.byName[s.Name] = s
		}
	}
	for _, s := range spans {
		switch {
		case s.Name == "analyzer.message":
		case s.Service == "imgpipe-analyzer" && s.Parent != last:
		default:
			t.byName[s.Name] = s
		}
	}
	return t
}

func (t *imageTrace) span(name string) (time.Duration, bool) {
	s, ok := t.byName[name]
	return s.End.Sub(s.Start), ok
}

// start, end and attrTime are a span's times (zero when the trace has no such span).
func (t *imageTrace) start(name string) time.Time { return t.byName[name].Start }
func (t *imageTrace) end(name string) time.Time   { return t.byName[name].End }

func (t *imageTrace) attrTime(name, attr string) time.Time {
	v, _ := time.Parse(time.RFC3339Nano, t.byName[name].Attrs[attr])
	return v
}

// between is the time from from to to, when both are known.
func between(from, to time.Time) (time.Duration, bool) {
	return to.Sub(from), !from.IsZero() && !to.IsZero()
}

// traceOf returns the spans of the trace the uploader started for key, once its indexer.write
// has arrived.
func traceOf(recv *otlprecv.Receiver, key string) ([]otlprecv.Span, bool) {
	up := recv.Where(func(s otlprecv.Span) bool { return s.Name == "uploader.upload" && s.Attrs["imgpipe.key"] == key })
	if len(up) != 1 {
		return nil, false
	}
	spans := recv.Trace(up[0].TraceID)
	return spans, len(otlprecv.Named(spans, "indexer.write")) > 0
}

// printLatency prints the end-to-end p50/p95 and the per-stage p50/p95 of the indexed keys,
// waiting up to wait for their last spans.
func printLatency(w io.Writer, metricsURL string, recv *otlprecv.Receiver, keys []string, wait time.Duration) {
	p50, p95, n, err := endToEnd(metricsURL)
	if err != nil {
		fmt.Fprintf(w, "end-to-end latency: %v\n", err)
	} else {
		fmt.Fprintf(w, "End to end, S3 event to indexed (%s, %d records): p50 %s, p95 %s\n",
			endToEndMetric, n, seconds(p50), seconds(p95))
	}
	deadline := time.Now().Add(wait)
	var traces []*imageTrace
	for {
		traces = traces[:0]
		for _, k := range keys {
			if spans, ok := traceOf(recv, k); ok {
				traces = append(traces, newImageTrace(spans))
			}
		}
		if len(traces) == len(keys) || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	fmt.Fprintf(w, "Per stage, from the traces of %d of the %d indexed images (p50, p95):\n", len(traces), len(keys))
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	for _, st := range stages {
		var ds []time.Duration
		for _, t := range traces {
			if d, ok := st.of(t); ok {
				ds = append(ds, d)
			}
		}
		if len(ds) == 0 {
			fmt.Fprintf(tw, "  %s\t-\t-\n", st.name)
			continue
		}
		slices.Sort(ds)
		pct := func(p float64) time.Duration { return ds[min(len(ds)-1, int(p*float64(len(ds))))] }
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", st.name, pct(0.5).Round(100*time.Microsecond), pct(0.95).Round(100*time.Microsecond))
	}
	tw.Flush()
}

func seconds(s float64) string {
	if math.IsNaN(s) {
		return "-"
	}
	return strings.TrimSuffix(strconv.FormatFloat(s, 'f', 3, 64), "0") + " s"
}
