// Package bench measures dlq-replay on large DLQs: the binary runs as a process of its own
// against the SQS stand-in, so that its peak memory is its own, while the benchmark polls the
// queue's own count of messages in flight (the lease window as SQS sees it).
//
// Each size seeds a DLQ with N messages (one in ten with the reason VisionUnavailable) and
// runs, one after another:
//
//	stats --json                                 every message looked at, nothing consumed
//	replay --reason VisionUnavailable --json     a filtered replay: N/10 moved, the rest skipped
//	export FILE --json                           the N*9/10 left written to a file, DLQ kept
//	import FILE --to QUEUE --json                that file sent to another queue
//
// and reports, per command: messages per second (messages looked at, written or sent over the
// process's wall time, start-up included), peak RSS (VmHWM), the Go heap's peak (the largest
// heap at the start of a GC, from the runtime's own GODEBUG=gctrace=1 lines), the most
// messages the command held leased by its own count and by SQS's count, and the receives
// that failed and were retried. Every command runs with --hold 1m (see runScenario).
//
//	DLQ_BENCH_SIZES=10000,100000 DLQ_BENCH_OUT=bench-dlq.md \
//	  go test ./dlq-replay/bench -run '^$' -bench LargeDLQ -benchtime 1x -timeout 60m
//
// DLQ_BENCH_SIZES defaults to 2000,10000; DLQ_BENCH_WINDOW sets --window (default: the
// command's default); DLQ_BENCH_OUT (relative to the module root) gets one markdown table row
// per command and size; DLQ_BENCH_BIN runs another build of dlq-replay (an earlier version,
// for a comparison) instead of building ./dlq-replay.
package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"imgpipe/dlq-replay/replay"
	"imgpipe/dlq-replay/replaytest"
	"imgpipe/dlq-replay/sqsdlq"
	"imgpipe/internal/devstack"
	"imgpipe/internal/stacktest"
	"imgpipe/pkg/failure"
)

func TestMain(m *testing.M) { stacktest.Main(m, devstack.SQS) }

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// binary returns the dlq-replay binary under test: DLQ_BENCH_BIN, or ./dlq-replay built once.
func binary(tb testing.TB) string {
	tb.Helper()
	if p := os.Getenv("DLQ_BENCH_BIN"); p != "" {
		return p
	}
	buildOnce.Do(func() {
		root, err := devstack.RepoRoot()
		if err != nil {
			buildErr = err
			return
		}
		dir, err := os.MkdirTemp("", "dlq-bench-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "dlq-replay")
		cmd := exec.Command("go", "build", "-o", binPath, "./dlq-replay")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("build dlq-replay: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		tb.Fatal(buildErr)
	}
	return binPath
}

// dlqStack is one freshly bootstrapped queue pair and the settings the binary reads.
type dlqStack struct {
	st   *devstack.Stack
	res  *devstack.Bootstrapped
	c    *sqs.Client
	vars []string
}

func newDLQStack(tb testing.TB) *dlqStack {
	st := stacktest.Get(tb)
	res := stacktest.Bootstrap(tb, st, devstack.Resources{})
	d := &dlqStack{st: st, res: res, c: st.NewSQSClient()}
	for _, e := range st.Env(res) {
		d.vars = append(d.vars, e.Name+"="+e.Value)
	}
	d.vars = append(d.vars, "AWS_EC2_METADATA_DISABLED=true")
	return d
}

// seed sends n dead-lettered messages to the DLQ, one in ten with the reason
// VisionUnavailable, from four senders at once.
func (d *dlqStack) seed(tb testing.TB, n int) {
	tb.Helper()
	q := sqsdlq.New(d.c, d.res.DLQURL, nil)
	const senders = 4
	var wg sync.WaitGroup
	errs := make(chan error, senders)
	for s := range senders {
		wg.Go(func() {
			var msgs []*replay.Message
			for i := s; i < n; i += senders {
				reason := "InvalidImageFormat"
				if i%10 == 0 {
					reason = "VisionUnavailable"
				}
				msgs = append(msgs, replaytest.Msg(tb, fmt.Sprintf("upload/bench/%06d.jpg", i), reason, failure.Permanent, 0))
				if len(msgs) == 500 || i+senders >= n {
					if sent, err := replay.Send(context.Background(), q, msgs, 10); err != nil || sent != len(msgs) {
						errs <- fmt.Errorf("seed: %d of %d: %v", sent, len(msgs), err)
						return
					}
					msgs = msgs[:0]
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		tb.Fatal(err)
	}
	if v, f := d.depth(tb, d.res.DLQURL); v+f != n {
		tb.Fatalf("seeded DLQ holds %d+%d, want %d", v, f, n)
	}
}

func (d *dlqStack) depth(tb testing.TB, url string) (visible, inFlight int) {
	tb.Helper()
	dp, err := sqsdlq.New(d.c, url, nil).Depth(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	return dp.Visible, dp.NotVisible
}

// result is one command's run.
type result struct {
	out          map[string]any // its --json document
	wall         time.Duration
	hwmKiB       int64 // VmHWM
	heapPeakMB   int   // largest heap at a GC's start (gctrace)
	maxInFlight  int   // the DLQ's ApproximateNumberOfMessagesNotVisible, polled
	stderrSample string
}

// num reads a number from the command's JSON output (path: "scan.max_leased").
func (r *result) num(path string) int {
	var v any = r.out
	for _, k := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return -1
		}
		v = m[k]
	}
	f, ok := v.(float64)
	if !ok {
		return -1
	}
	return int(f)
}

var gcLine = regexp.MustCompile(`^gc \d+ @[0-9.]+s [0-9]+%: .* (\d+)->(\d+)->(\d+) MB`)

// run runs the binary with args and the stack's settings, polling its VmHWM and the DLQ's
// in-flight count until it exits.
func (d *dlqStack) run(tb testing.TB, args ...string) *result {
	tb.Helper()
	cmd := exec.Command(binary(tb), args...)
	cmd.Env = append(append(os.Environ(), d.vars...), "GODEBUG=gctrace=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	r := &result{}
	poll := time.NewTicker(20 * time.Millisecond)
	defer poll.Stop()
	var waitErr error
	for polls := 0; ; polls++ {
		select {
		case waitErr = <-done:
		case <-poll.C:
			r.hwmKiB = max(r.hwmKiB, vmHWM(cmd.Process.Pid))
			if polls%10 == 0 { // SQS's own count, every 200 ms
				_, f := d.depth(tb, d.res.DLQURL)
				r.maxInFlight = max(r.maxInFlight, f)
			}
			continue
		}
		break
	}
	r.wall = time.Since(start)
	sc := bufio.NewScanner(bytes.NewReader(stderr.Bytes()))
	var other []string
	for sc.Scan() {
		if m := gcLine.FindStringSubmatch(sc.Text()); m != nil {
			n, _ := strconv.Atoi(m[1])
			r.heapPeakMB = max(r.heapPeakMB, n)
		} else if len(other) < 5 {
			other = append(other, sc.Text())
		}
	}
	r.stderrSample = strings.Join(other, "\n")
	if waitErr != nil {
		tb.Fatalf("dlq-replay %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), waitErr, stdout.String(), r.stderrSample)
	}
	if err := json.Unmarshal(stdout.Bytes(), &r.out); err != nil {
		tb.Fatalf("dlq-replay %s: output is not JSON: %v\n%s", strings.Join(args, " "), err, stdout.String())
	}
	return r
}

// vmHWM returns the process's peak resident set in KiB (0 when it is gone).
func vmHWM(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kib, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kib
		}
	}
	return 0
}

// scenario is the four commands over one DLQ of n messages, with the checks that make the
// figures honest: every message looked at once, the right ones moved, written and sent, the
// DLQ left as it should be. A receive whose answer was lost on the way (the SDK's
// closed-connection pitfall on loopback) hides its batch until --hold ends; the command counts
// such receives (failed_receives), the checks allow that many batches short and no more, and
// the scenario waits for the hidden messages to come back before the next command.
type scenario struct {
	n    int
	runs []namedResult
}

type namedResult struct {
	name   string
	count  int // messages looked at, written or sent
	leased int // the command's own count of the most held at once (-1: not reported)
	failed int // receives that failed and were retried
	*result
}

// scenarioHold is the lease every command of the scenario takes: long enough for any window
// entry (a pass keeps one for a few seconds), short enough to wait out a lost receive.
const scenarioHold = time.Minute

func runScenario(tb testing.TB, n, window int) *scenario {
	d := newDLQStack(tb)
	d.seed(tb, n)
	sc := &scenario{n: n}
	common := []string{"--json", "--hold", scenarioHold.String()}
	if window > 0 {
		common = append(common, "--window", strconv.Itoa(window))
	}
	// add records a run; got must be want, or short by at most one batch per failed receive.
	add := func(name string, got, want, leased, failed int, r *result) {
		tb.Helper()
		failed = max(failed, 0) // an earlier build does not report it
		if got > want || got < want-10*failed {
			tb.Fatalf("%s: %d of %d (%d failed receives)", name, got, want, failed)
		}
		sc.runs = append(sc.runs, namedResult{name, got, leased, failed, r})
		if failed > 0 {
			tb.Logf("%s: %d receives failed; waiting for what they hid to come back", name, failed)
			stacktest.WaitFor(tb, "no message in flight", scenarioHold+time.Minute, func() (bool, string) {
				_, f := d.depth(tb, d.res.DLQURL)
				return f == 0, fmt.Sprintf("%d in flight", f)
			})
		}
	}

	r := d.run(tb, append([]string{"stats"}, common...)...)
	add("stats", r.num("messages"), n, r.num("scan.max_leased"), r.num("scan.failed_receives"), r)

	r = d.run(tb, append([]string{"replay", "--reason", "VisionUnavailable"}, common...)...)
	moved := r.num("moved")
	add("replay --reason (1 in 10 moved)", r.num("seen"), n, r.num("max_leased"), r.num("failed_receives"), r)
	if moved > n/10 || moved < n/10-10*max(r.num("failed_receives"), 0) {
		tb.Fatalf("replay moved %d, want %d", moved, n/10)
	}
	if v, f := d.depth(tb, d.res.DLQURL); v+f != n-moved {
		tb.Fatalf("DLQ holds %d+%d after the replay, want %d", v, f, n-moved)
	}

	file := filepath.Join(tb.TempDir(), "dlq.jsonl")
	r = d.run(tb, append([]string{"export", file}, common...)...)
	written := r.num("written")
	add("export (DLQ kept)", written, n-moved, r.num("scan.max_leased"), r.num("scan.failed_receives"), r)

	r = d.run(tb, append([]string{"import", file, "--to", d.res.QueueURL}, common...)...)
	add("import", r.num("sent"), written, -1, 0, r)
	if v, f := d.depth(tb, d.res.QueueURL); v+f != moved+written {
		tb.Fatalf("queue holds %d+%d after replay and import, want %d", v, f, moved+written)
	}
	return sc
}

// TestLargeDLQSmall is the benchmark's scenario at a size make test affords, with a small lease
// window so that the window, not the DLQ, bounds what is in flight: each command must see each
// message once and never hold more than the window and one batch. SQS may count one batch more
// per failed receive: a receive whose answer was lost leased its batch without the command
// knowing (the command counts those receives).
func TestLargeDLQSmall(t *testing.T) {
	const n, window = 1500, 100
	sc := runScenario(t, n, window)
	for _, r := range sc.runs {
		if r.leased > window+10 {
			t.Errorf("%s: the command held %d at once; want at most %d", r.name, r.leased, window+10)
		}
		if lost := 10 * max(r.failed, 0); r.maxInFlight > window+10+lost {
			t.Errorf("%s: SQS counted %d in flight (%d failed receives); want at most %d", r.name, r.maxInFlight, r.failed, window+10+lost)
		}
	}
}

// BenchmarkLargeDLQ runs the scenario at each of DLQ_BENCH_SIZES, with DLQ_BENCH_WINDOW.
func BenchmarkLargeDLQ(b *testing.B) {
	sizes := os.Getenv("DLQ_BENCH_SIZES")
	if sizes == "" {
		sizes = "2000,10000"
	}
	window := 0
	if w := os.Getenv("DLQ_BENCH_WINDOW"); w != "" {
		var err error
		if window, err = strconv.Atoi(w); err != nil || window < 0 {
			b.Fatalf("DLQ_BENCH_WINDOW: %q is not a window size", w)
		}
	}
	var rows []string
	for _, f := range strings.Split(sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 10 {
			b.Fatalf("DLQ_BENCH_SIZES: %q is not a size", f)
		}
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			var sc *scenario
			for range b.N {
				sc = runScenario(b, n, window)
			}
			for _, r := range sc.runs {
				rate := float64(r.count) / r.wall.Seconds()
				name := strings.Fields(r.name)[0]
				b.ReportMetric(rate, name+"-msgs/s")
				b.ReportMetric(float64(r.hwmKiB)/1024, name+"-VmHWM-MiB")
				b.ReportMetric(float64(r.heapPeakMB), name+"-heap-MB")
				b.ReportMetric(float64(r.maxInFlight), name+"-inflight")
				leased := "-"
				if r.leased >= 0 {
					leased = strconv.Itoa(r.leased)
				}
				win := "default"
				if window > 0 {
					win = strconv.Itoa(window)
				}
				rows = append(rows, fmt.Sprintf("| %d | %s | %s | %.0f | %.1f | %d | %s | %d | %d |", n, win, r.name, rate, float64(r.hwmKiB)/1024, r.heapPeakMB, leased, r.maxInFlight, r.failed))
			}
		})
	}
	if out := os.Getenv("DLQ_BENCH_OUT"); out != "" && len(rows) > 0 {
		root, err := devstack.RepoRoot()
		if err != nil {
			b.Fatal(err)
		}
		if !filepath.IsAbs(out) {
			out = filepath.Join(root, out)
		}
		head := "| DLQ size | --window | command | msgs/s | VmHWM MiB | peak heap MB | most leased (own count) | most in flight (SQS's count) | failed receives |\n|---|---|---|---|---|---|---|---|---|\n"
		if _, err := os.Stat(out); err == nil {
			head = ""
		}
		f, err := os.OpenFile(out, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteString(head + strings.Join(rows, "\n") + "\n"); err != nil {
			b.Fatal(err)
		}
	}
}
