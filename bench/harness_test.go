package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"imgpipe/internal/proctest"
)

// analyzerConfig is what varies between the analyzer runs.
type analyzerConfig struct {
	workers     int
	visionRate  float64
	visionBurst int
	flags       []string // more analyzer flags
}

// args are the analyzer's flags for c.
func (c analyzerConfig) args() []string {
	return append([]string{
		"--workers", strconv.Itoa(c.workers),
		"--vision-rate", strconv.FormatFloat(c.visionRate, 'f', -1, 64),
		"--vision-burst", strconv.Itoa(c.visionBurst),
		"--visibility-timeout", "30s",
	}, c.flags...)
}

// analyzerRun is what one run of the analyzer binary measured.
type analyzerRun struct {
	proctest.Progress
	n         int           // messages expected
	cpu       time.Duration // user + system CPU of the analyzer process
	maxRSSKiB int64         // peak resident set, VmHWM (KiB)
	exitCode  int
	metrics   map[string]float64 // last scrape before SIGTERM, summed over labels
}

func (r *analyzerRun) metric(name string) float64 { return r.metrics["imgpipe_analyzer_"+name] }

// runAnalyzer starts the analyzer binary on the stack's queue, waits until it has finished
// the n messages (the queue's depth polled every 20 ms), stops it with SIGTERM and returns
// what the kernel and its metrics say.
func runAnalyzer(tb testing.TB, st *proctest.Stack, n int, c analyzerConfig) *analyzerRun {
	tb.Helper()
	p := st.StartAnalyzer(tb, "analyzer", c.args()...)
	r := &analyzerRun{n: n}
	r.Progress = st.WaitDone(tb, n, n, p.Started(), p)
	m, err := p.Metrics()
	if err != nil {
		tb.Fatalf("analyzer /metrics after the run: %v; log tail:\n%s", err, p.LogTail())
	}
	r.metrics = m
	// The analyzer finishes its last long poll before it exits (up to --wait-time on the
	// empty queue), so no poll of a gone caller is left to take the next scenario's messages.
	// The drain timeout is 25s.
	p.Stop(tb, 40*time.Second)
	r.exitCode, r.cpu, r.maxRSSKiB = p.ExitCode(), p.CPU(), p.PeakKiB()
	return r
}

// writeResult appends one markdown table row per scenario to the file named by BENCH_OUT (a
// relative path is taken from the module root, so BENCH_OUT=docs/x.md means <root>/docs/x.md).
func writeResult(tb testing.TB, root, scenario string, n int, figures []figure, note string) {
	tb.Helper()
	path := os.Getenv("BENCH_OUT")
	if path == "" {
		return
	}
	if !filepath.IsAbs(path) {
		path = filepath.Join(root, path)
	}
	fi, statErr := os.Stat(path)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		tb.Errorf("BENCH_OUT: %v", err)
		return
	}
	defer f.Close()
	var b strings.Builder
	if statErr != nil || fi.Size() == 0 {
		b.WriteString("| when (UTC) | scenario | N | figures | notes |\n|---|---|---|---|---|\n")
	}
	parts := make([]string, len(figures))
	for i, fg := range figures {
		num := fmt.Sprintf("%.4g", fg.v)
		if fg.v >= 10000 {
			num = fmt.Sprintf("%.0f", fg.v)
		}
		parts[i] = num + " " + fg.unit
	}
	fmt.Fprintf(&b, "| %s | %s | %d | %s | %s |\n", time.Now().UTC().Format("2006-01-02 15:04"), scenario, n,
		strings.Join(parts, ", "), strings.ReplaceAll(note, "|", "/"))
	if _, err := f.WriteString(b.String()); err != nil {
		tb.Errorf("BENCH_OUT: %v", err)
	}
}

// figure is one reported number.
type figure struct {
	v    float64
	unit string
}

// report gives each figure to b.ReportMetric and appends the row to BENCH_OUT.
func report(b *testing.B, root, scenario string, n int, figures []figure, note string) {
	for _, f := range figures {
		b.ReportMetric(f.v, f.unit)
	}
	writeResult(b, root, scenario, n, figures, note)
}
