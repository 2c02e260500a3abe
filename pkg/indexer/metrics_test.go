package indexer

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

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

// TestMetricsReadByDeploy: every indexer metric the Prometheus rules and the Grafana
// dashboard read (deploy/*/metrics.txt) is exported by the indexer's collectors, in an
// exposition a pedantic registry accepts.
func TestMetricsReadByDeploy(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	if err := newMetrics().register(reg); err != nil {
		t.Fatal(err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	exported := map[string]bool{}
	for _, f := range families {
		exported[f.GetName()] = true
		if f.GetType() == dto.MetricType_HISTOGRAM {
			for _, s := range []string{"_bucket", "_count", "_sum"} {
				exported[f.GetName()+s] = true
			}
		}
	}
	read := 0
	for _, list := range []string{"../../deploy/prometheus/metrics.txt", "../../deploy/grafana/metrics.txt"} {
		b, err := os.ReadFile(list)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			name, _, _ := strings.Cut(line, "#")
			if name = strings.TrimSpace(name); !strings.HasPrefix(name, "imgpipe_indexer_") {
				continue
			}
			read++
			if !exported[name] {
				t.Errorf("%s reads %s, which the indexer does not export", list, name)
			}
		}
	}
	if read == 0 {
		t.Error("the deploy lists name no indexer metric")
	}
}
