package bench

import (
	"strconv"
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
	env         []string // more environment variables (NAME=value)
	// windowFrom starts the measured window this long after the process starts (0: at 5%
	// of the messages done); windowTo ends it at this share done (0: all of them).
	windowFrom time.Duration
	windowTo   float64
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
	p := st.StartAnalyzerEnv(tb, "analyzer", c.env, c.args()...)
	r := &analyzerRun{n: n}
	r.Progress = st.WaitDone(tb, proctest.Wait{N: n, Start: p.Started(), Procs: []*proctest.Proc{p},
		WindowFrom: c.windowFrom, WindowTo: int(c.windowTo * float64(n))})
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
