package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"imgpipe/internal/devstack"
)

// stack is the local stack running as a child process (`devstack up`) and the binaries
// built for the run. Every stand-in lives outside the test process.
type stack struct {
	root    string // module root
	tmp     string // temp dir: binaries, state dir, logs
	bin     string // folder with the analyzer and devstack binaries
	cmd     *exec.Cmd
	exited  chan struct{} // closed when the devstack process has exited
	waitErr error         // its exit status, valid once exited is closed
	stderr  *lineLog

	env map[string]string // from the stack's env file

	s3   *s3.Client
	sqs  *sqs.Client
	http *http.Client

	mu  sync.Mutex
	seq int // distinguishes the object keys of successive seedings
}

// missingError is `devstack up` failing on a missing prerequisite (node, Java, an emulator).
type missingError struct{ line string }

func (e *missingError) Error() string { return e.line }

// shared is the one stack of the test binary, started on first use and stopped by TestMain.
var shared struct {
	once sync.Once
	st   *stack
	err  error
}

// getStack returns the shared stack, starting it on first use. A missing prerequisite skips
// the caller outside CI and fails it in CI (CI=true).
func getStack(tb testing.TB) *stack {
	tb.Helper()
	shared.once.Do(func() { shared.st, shared.err = startStack() })
	if err := shared.err; err != nil {
		var me *missingError
		if errors.As(err, &me) && os.Getenv("CI") != "true" {
			tb.Skipf("local stack unavailable (set CI=true to make this a failure): %v", err)
		}
		tb.Fatalf("start the local stack: %v", err)
	}
	return shared.st
}

// stopShared stops the shared stack if one was started; TestMain calls it after the run.
func stopShared() {
	if shared.st != nil {
		if err := shared.st.stop(); err != nil {
			fmt.Fprintf(os.Stderr, "bench: stop the local stack: %v\n", err)
		}
		_ = os.RemoveAll(shared.st.tmp)
	}
}

func startStack() (*stack, error) {
	root, err := devstack.RepoRoot()
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "imgpipe-bench-")
	if err != nil {
		return nil, err
	}
	st := &stack{root: root, tmp: tmp, bin: filepath.Join(tmp, "bin"), stderr: &lineLog{}}
	if err := st.build(); err != nil {
		_ = os.RemoveAll(tmp)
		return nil, err
	}
	if err := st.up(); err != nil {
		_ = os.RemoveAll(tmp)
		return nil, err
	}
	return st, nil
}

// build compiles the analyzer and devstack commands into st.bin. With BENCH_ANALYZER set, the
// analyzer binary it names is run instead of one built from this tree (to compare two builds
// in one session, alternately).
func (st *stack) build() error {
	goTool, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("the go command is needed to build the binaries: %w", err)
	}
	if err := os.MkdirAll(st.bin, 0o755); err != nil {
		return err
	}
	pkgs := []string{"./cmd/analyzer", "./cmd/devstack"}
	given := os.Getenv("BENCH_ANALYZER")
	if given != "" {
		pkgs = pkgs[1:]
	}
	cmd := exec.Command(goTool, append([]string{"build", "-o", st.bin + string(filepath.Separator)}, pkgs...)...)
	cmd.Dir = st.root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go build: %w\n%s", err, out)
	}
	if given != "" {
		abs, err := filepath.Abs(given)
		if err != nil {
			return err
		}
		if err := os.Symlink(abs, filepath.Join(st.bin, "analyzer")); err != nil {
			return fmt.Errorf("BENCH_ANALYZER: %w", err)
		}
	}
	return nil
}

// lineLog keeps a child's stderr lines and signals when a line containing want appears.
type lineLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *lineLog) add(s string) {
	l.mu.Lock()
	l.lines = append(l.lines, s)
	l.mu.Unlock()
}

func (l *lineLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// up starts `devstack up` in its own process group and waits until it reports readiness:
// `up` writes the env file, then the pid file, then prints "devstack: up" on stderr. The
// env file is read only after that line, so it is never read half-written.
func (st *stack) up() error {
	stateDir := filepath.Join(st.tmp, "state")
	cmd := exec.Command(filepath.Join(st.bin, "devstack"), "up",
		"--parts", "sqs,s3,pubsub,vision", "--state-dir", stateDir)
	cmd.Dir = st.root
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := os.Create(filepath.Join(st.tmp, "devstack.stdout"))
	if err != nil {
		return err
	}
	defer stdout.Close() // the child holds its own copy
	cmd.Stdout = stdout
	pr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start devstack: %w", err)
	}
	st.cmd = cmd
	st.exited = make(chan struct{})
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		signalled := false
		for sc.Scan() {
			line := sc.Text()
			st.stderr.add(line)
			if !signalled && strings.HasPrefix(line, "devstack: up") {
				signalled = true
				close(ready)
			}
		}
		_, _ = io.Copy(io.Discard, pr)
		st.waitErr = cmd.Wait()
		close(st.exited)
	}()

	select {
	case <-ready:
	case <-st.exited:
		out := st.stderr.String()
		for _, line := range strings.Split(out, "\n") {
			if strings.Contains(line, "missing prerequisite:") {
				return &missingError{line: line}
			}
		}
		return fmt.Errorf("devstack up exited (%v) before it was ready:\n%s", st.waitErr, out)
	case <-time.After(3 * time.Minute):
		_ = st.stop()
		return fmt.Errorf("devstack up not ready after 3m:\n%s", st.stderr.String())
	}
	raw, err := os.ReadFile(filepath.Join(stateDir, "env"))
	if err != nil {
		_ = st.stop()
		return fmt.Errorf("read the stack's env file: %w", err)
	}
	st.env, err = devstack.ParseEnv(raw)
	if err != nil {
		_ = st.stop()
		return err
	}
	for _, name := range []string{"AWS_REGION", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_SQS", "AZURE_VISION_ENDPOINT",
		"IMGPIPE_BUCKET", "IMGPIPE_PREFIX", "IMGPIPE_QUEUE_URL", "IMGPIPE_TOPIC"} {
		if st.env[name] == "" {
			_ = st.stop()
			return fmt.Errorf("the stack's env file has no %s", name)
		}
	}
	creds := credentials.NewStaticCredentialsProvider(st.env["AWS_ACCESS_KEY_ID"], st.env["AWS_SECRET_ACCESS_KEY"], "")
	cfg := aws.Config{Region: st.env["AWS_REGION"], Credentials: creds}
	st.s3 = s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.BaseEndpoint = aws.String(st.env["AWS_ENDPOINT_URL_S3"])
		o.UsePathStyle = true
	})
	st.sqs = sqs.NewFromConfig(cfg, func(o *sqs.Options) { o.BaseEndpoint = aws.String(st.env["AWS_ENDPOINT_URL_SQS"]) })
	st.http = &http.Client{Timeout: 10 * time.Second}
	// The bucket's notification configuration was validated with an s3:TestEvent sent to
	// the queue: remove it so that every scenario starts from an empty queue.
	if _, err := st.drain(context.Background(), 3*time.Second); err != nil {
		_ = st.stop()
		return fmt.Errorf("drain the queue: %w", err)
	}
	return nil
}

// stop sends SIGTERM to the stack's process group, and SIGKILL after 10 s.
func (st *stack) stop() error {
	if st.cmd == nil || st.cmd.Process == nil {
		return nil
	}
	pgid := st.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-st.exited:
		return nil
	case <-time.After(10 * time.Second):
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	<-st.exited
	return fmt.Errorf("devstack did not stop within 10s of SIGTERM; killed:\n%s", st.stderr.String())
}

// childEnv is this process's environment without any setting the analyzer reads from the
// environment, plus the stack's env file.
func (st *stack) childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		skip := false
		for _, p := range []string{"IMGPIPE_", "AWS_", "AZURE_", "GOOGLE_", "PUBSUB_", "FIRESTORE_"} {
			if strings.HasPrefix(name, p) {
				skip = true
			}
		}
		if !skip {
			env = append(env, kv)
		}
	}
	for k, v := range st.env {
		env = append(env, k+"="+v)
	}
	return env
}

// queueDepth returns the visible and in-flight message counts of the queue.
func (st *stack) queueDepth(ctx context.Context) (visible, inFlight int, err error) {
	out, err := st.sqs.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(st.env["IMGPIPE_QUEUE_URL"]),
		AttributeNames: []sqstypes.QueueAttributeName{
			sqstypes.QueueAttributeNameApproximateNumberOfMessages,
			sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
		},
	})
	if err != nil {
		return 0, 0, err
	}
	visible, _ = strconv.Atoi(out.Attributes[string(sqstypes.QueueAttributeNameApproximateNumberOfMessages)])
	inFlight, _ = strconv.Atoi(out.Attributes[string(sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible)])
	return visible, inFlight, nil
}

// drain receives and deletes messages until a receive of quiet finds none; it returns how
// many it removed.
func (st *stack) drain(ctx context.Context, quiet time.Duration) (int, error) {
	n := 0
	url := aws.String(st.env["IMGPIPE_QUEUE_URL"])
	for {
		out, err := st.sqs.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl: url, MaxNumberOfMessages: 10, WaitTimeSeconds: int32(quiet / time.Second), VisibilityTimeout: 30,
		})
		if err != nil {
			return n, err
		}
		if len(out.Messages) == 0 {
			return n, nil
		}
		entries := make([]sqstypes.DeleteMessageBatchRequestEntry, len(out.Messages))
		for i, m := range out.Messages {
			entries[i] = sqstypes.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: m.ReceiptHandle}
		}
		if _, err := st.sqs.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: url, Entries: entries}); err != nil {
			return n, err
		}
		n += len(out.Messages)
	}
}

// seed puts n objects made by body(i) under distinct keys with 16 concurrent puts, then
// waits until the queue holds exactly n messages. The queue must be empty before.
func (st *stack) seed(tb testing.TB, n int, ext string, body func(i int) ([]byte, error)) {
	tb.Helper()
	ctx := context.Background()
	if v, f, err := st.queueDepth(ctx); err != nil || v+f != 0 {
		tb.Fatalf("queue not empty before seeding: visible=%d in flight=%d err=%v", v, f, err)
	}
	st.mu.Lock()
	st.seq++
	run := st.seq
	st.mu.Unlock()
	var wg sync.WaitGroup
	var errMu sync.Mutex
	var firstErr error
	idx := make(chan int)
	for range 16 {
		wg.Go(func() {
			for i := range idx {
				b, err := body(i)
				if err == nil {
					_, err = st.s3.PutObject(ctx, &s3.PutObjectInput{
						Bucket: aws.String(st.env["IMGPIPE_BUCKET"]),
						Key:    aws.String(fmt.Sprintf("%sbench/run%03d/%06d.%s", st.env["IMGPIPE_PREFIX"], run, i, ext)),
						Body:   bytes.NewReader(b),
					})
				}
				if err != nil {
					errMu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("put object %d: %w", i, err)
					}
					errMu.Unlock()
				}
			}
		})
	}
	for i := range n {
		idx <- i
	}
	close(idx)
	wg.Wait()
	if firstErr != nil {
		tb.Fatal(firstErr)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		v, f, err := st.queueDepth(ctx)
		if err == nil && v == n && f == 0 {
			return
		}
		if err == nil && v+f > n {
			tb.Fatalf("queue holds %d visible + %d in flight, more than the %d objects put", v, f, n)
		}
		if time.Now().After(deadline) {
			tb.Fatalf("queue holds %d visible + %d in flight after 2m, want %d (err %v)", v, f, n, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// visionFaults is the JSON document of the Vision stand-in's /admin/faults (a subset of
// visionstandin.Faults: a PUT replaces every fault, so the omitted ones are turned off).
type visionFaults struct {
	Latency struct {
		Fixed string `json:"fixed,omitempty"`
	} `json:"latency"`
	RateLimit struct {
		PerSecond float64 `json:"perSecond,omitempty"`
		Burst     int     `json:"burst,omitempty"`
	} `json:"rateLimit"`
}

// visionStats is the part of the stand-in's /admin/stats the benchmarks read.
type visionStats struct {
	Calls     int64            `json:"calls"`
	Analyses  int64            `json:"analyses"`
	Throttled int64            `json:"throttled"`
	ByStatus  map[string]int64 `json:"byStatus"`
}

func (st *stack) visionAdmin(path string) string {
	return strings.TrimRight(st.env["AZURE_VISION_ENDPOINT"], "/") + path
}

// setVisionFaults replaces the stand-in's faults: fixed latency, and a rate limit when
// perSecond > 0.
func (st *stack) setVisionFaults(latency time.Duration, perSecond float64, burst int) error {
	var f visionFaults
	if latency > 0 {
		f.Latency.Fixed = latency.String()
	}
	f.RateLimit.PerSecond, f.RateLimit.Burst = perSecond, burst
	body, err := json.Marshal(f)
	if err != nil {
		return err
	}
	req, err := http.NewRequest(http.MethodPut, st.visionAdmin("/admin/faults"), bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := st.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("PUT /admin/faults %s: %s: %s", body, resp.Status, got)
	}
	return nil
}

func (st *stack) visionStats() (visionStats, error) {
	var s visionStats
	resp, err := st.http.Get(st.visionAdmin("/admin/stats"))
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return s, fmt.Errorf("GET /admin/stats: %s", resp.Status)
	}
	return s, json.NewDecoder(resp.Body).Decode(&s)
}

// freePort returns a loopback port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// analyzerConfig is what varies between the analyzer runs.
type analyzerConfig struct {
	workers     int
	visionRate  float64
	visionBurst int
	flags       []string // more analyzer flags
}

// analyzerRun is what one run of the analyzer binary measured.
type analyzerRun struct {
	n          int           // messages expected
	throughput float64       // msgs/s between the first poll with >= 5% done and the poll with all done
	window     time.Duration // that interval
	fromStart  time.Duration // process start to the poll that saw all done
	cpu        time.Duration // user + system CPU of the analyzer process
	maxRSSKiB  int64         // peak resident set, VmHWM (KiB)
	exitCode   int
	metrics    map[string]float64 // last scrape before SIGTERM, summed over labels
	// machineBusy is the share of the machine's CPU time (all cores, every process) that
	// was not idle during the window: near 1 means the run was CPU-bound.
	machineBusy float64
}

func (r *analyzerRun) metric(name string) float64 { return r.metrics["imgpipe_analyzer_"+name] }

// runAnalyzer starts the analyzer binary on the stack's queue, waits until it has succeeded
// on n messages (the queue's depth polled every 20 ms), stops it with SIGTERM and returns what the
// kernel and its metrics say.
func (st *stack) runAnalyzer(tb testing.TB, n int, c analyzerConfig) *analyzerRun {
	tb.Helper()
	port, err := freePort()
	if err != nil {
		tb.Fatal(err)
	}
	metricsURL := fmt.Sprintf("http://127.0.0.1:%d/metrics", port)
	logPath := filepath.Join(st.tmp, fmt.Sprintf("analyzer-%d.log", time.Now().UnixNano()))
	logFile, err := os.Create(logPath)
	if err != nil {
		tb.Fatal(err)
	}
	defer logFile.Close()
	args := []string{
		"--workers", strconv.Itoa(c.workers),
		"--vision-rate", strconv.FormatFloat(c.visionRate, 'f', -1, 64),
		"--vision-burst", strconv.Itoa(c.visionBurst),
		"--visibility-timeout", "30s",
		"--metrics-addr", fmt.Sprintf("127.0.0.1:%d", port),
		"--log-level", "warn",
	}
	if dir := os.Getenv("BENCH_PROFILE_DIR"); dir != "" {
		// One folder per run: CPU and allocation profiles of the whole process (obs.StartProfiles).
		if abs, err := filepath.Abs(dir); err == nil {
			dir = abs // the analyzer runs in st.tmp
		}
		name := strings.NewReplacer("/", "_", "=", "-", " ", "_").Replace(tb.Name())
		args = append(args, "--profile-dir", filepath.Join(dir, fmt.Sprintf("%s-%d", name, time.Now().Unix())))
	}
	cmd := exec.Command(filepath.Join(st.bin, "analyzer"), append(args, c.flags...)...)
	cmd.Env = st.childEnv()
	cmd.Dir = st.tmp
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	exited := make(chan struct{})
	var waitErr error
	logTail := func() string {
		b, _ := os.ReadFile(logPath)
		if len(b) > 4000 {
			b = b[len(b)-4000:]
		}
		return string(b)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start analyzer: %v", err)
	}
	started := time.Now()
	go func() { waitErr = cmd.Wait(); close(exited) }()
	killed := false
	defer func() {
		select {
		case <-exited:
		default:
			killed = true
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	}()

	r := &analyzerRun{n: n}
	threshold := float64(n) * 0.05
	var t0 time.Time
	var n0 float64
	var cpu0 cpuStat
	lastProgress, lastDone := time.Now(), -1.0
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-exited:
			tb.Fatalf("analyzer exited early (%v); log tail:\n%s", waitErr, logTail())
		case <-tick.C:
		}
		r.notePeak(cmd.Process.Pid)
		// Progress is read from the queue, not from the analyzer's /metrics: scraping the
		// analyzer every 20 ms would add its own CPU to the figures. A message is done
		// once it is deleted.
		visible, inFlight, err := st.queueDepth(context.Background())
		now := time.Now()
		if err != nil {
			tb.Fatalf("queue depth: %v", err)
		}
		done := float64(n - visible - inFlight)
		if done != lastDone {
			lastDone, lastProgress = done, now
		} else if now.Sub(lastProgress) > 90*time.Second {
			m, _ := scrape(st.http, metricsURL)
			tb.Fatalf("no progress for 90s at %v of %d done; metrics %v; log tail:\n%s", done, n, m, logTail())
		}
		if t0.IsZero() && done >= threshold {
			t0, n0 = now, done
			cpu0 = readCPUStat()
		}
		if done >= float64(n) {
			if cpu0.total > 0 {
				cpu1 := readCPUStat()
				if d := cpu1.total - cpu0.total; d > 0 {
					r.machineBusy = 1 - float64(cpu1.idle-cpu0.idle)/float64(d)
				}
			}
			r.fromStart = now.Sub(started)
			r.window = now.Sub(t0)
			if r.window > 0 {
				r.throughput = (float64(n) - n0) / r.window.Seconds()
			} else {
				// Everything finished between two polls (tiny n): fall back to the whole run.
				r.throughput = float64(n) / r.fromStart.Seconds()
			}
			break
		}
	}
	m, err := scrape(st.http, metricsURL)
	if err != nil {
		tb.Fatalf("analyzer /metrics after the run: %v; log tail:\n%s", err, logTail())
	}
	r.metrics = m

	// The analyzer finishes its last long poll before it exits (up to --wait-time on the
	// empty queue), so no poll of a gone caller is left to take the next scenario's messages.
	_ = cmd.Process.Signal(syscall.SIGTERM)
	deadline := time.After(40 * time.Second) // the drain timeout is 25s
drain:
	for {
		r.notePeak(cmd.Process.Pid) // the drain counts too, until the process is gone
		select {
		case <-exited:
			break drain
		case <-deadline:
			tb.Errorf("analyzer still running 40s after SIGTERM; killing it")
			break drain
		case <-time.After(10 * time.Millisecond):
		}
	}
	select {
	case <-exited:
	default:
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
		killed = true
	}
	if killed {
		tb.Fatalf("analyzer was killed; log tail:\n%s", logTail())
	}
	ps := cmd.ProcessState
	r.exitCode = ps.ExitCode()
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
		// CPU time is the process's own. Its Maxrss is not used: Go starts children with
		// vfork, and the kernel carries the parent's peak RSS at exec into the child's
		// Maxrss, so a benchmark process holding 2 GB of images reported a 750 MB analyzer
		// whose VmHWM was 62 MB. The peak comes from VmHWM, polled until exit.
		r.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	if r.exitCode != 0 {
		tb.Fatalf("analyzer exit code %d (%v); log tail:\n%s", r.exitCode, waitErr, logTail())
	}
	return r
}

// cpuStat is the machine's CPU time from /proc/stat, in clock ticks.
type cpuStat struct{ total, idle uint64 }

// readCPUStat reads the "cpu" line of /proc/stat; idle counts idle and iowait. A zero value
// means it could not be read.
func readCPUStat() cpuStat {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuStat{}
	}
	line, _, _ := strings.Cut(string(b), "\n")
	fields := strings.Fields(line)
	if len(fields) < 6 || fields[0] != "cpu" {
		return cpuStat{}
	}
	var c cpuStat
	for i, f := range fields[1:] {
		v, err := strconv.ParseUint(f, 10, 64)
		if err != nil {
			return cpuStat{}
		}
		c.total += v
		if i == 3 || i == 4 { // idle, iowait
			c.idle += v
		}
	}
	return c
}

// notePeak records the process's peak resident set so far (VmHWM in /proc/PID/status, which
// only grows); a process that is gone leaves the last value in place.
func (r *analyzerRun) notePeak(pid int) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kib, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err == nil && kib > r.maxRSSKiB {
				r.maxRSSKiB = kib
			}
		}
	}
}

// scrape reads a Prometheus text exposition and sums every sample by metric name (over
// labels). Histogram series keep their _bucket/_sum/_count names.
func scrape(c *http.Client, url string) (map[string]float64, error) {
	resp, err := c.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	m := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		var name, rest string
		if i := strings.IndexByte(line, '{'); i >= 0 {
			j := strings.LastIndexByte(line, '}')
			if j < i {
				continue
			}
			name, rest = line[:i], line[j+1:]
		} else {
			name, rest, _ = strings.Cut(line, " ")
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			continue
		}
		m[name] += v
	}
	return m, sc.Err()
}

// results appends one markdown table row per scenario to the file named by BENCH_OUT (a
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
