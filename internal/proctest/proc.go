package proctest

import (
	"bufio"
	"fmt"
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

	"imgpipe/internal/devstack"
)

// Proc is one of the pipeline's binaries running as a child process, in its own process
// group, its output in a log file. It is killed when the test that started it ends, if it is
// still running then.
type Proc struct {
	Name       string
	MetricsURL string // its /metrics
	LogPath    string

	cmd     *exec.Cmd
	started time.Time
	http    *http.Client
	exited  chan struct{} // closed once the process has exited
	waitErr error         // valid once exited is closed
	endedAt time.Time     // valid once exited is closed

	mu      sync.Mutex
	termAt  time.Time // when Term sent SIGTERM
	peakKiB int64     // VmHWM
}

// StartAnalyzer starts the analyzer binary with --metrics-addr on a free loopback port,
// --log-level warn, then flags (a later flag overrides an earlier one).
func (st *Stack) StartAnalyzer(tb testing.TB, name string, flags ...string) *Proc {
	tb.Helper()
	return st.startBinary(tb, name, "analyzer", nil, nil, flags)
}

// StartAnalyzerBuild is StartAnalyzer with the analyzer build named build (see Builds; ""
// is the default build) and more environment variables (NAME=value), such as the OTEL_*
// ones that turn tracing on.
func (st *Stack) StartAnalyzerBuild(tb testing.TB, build, name string, env []string, flags ...string) *Proc {
	tb.Helper()
	return st.startBinary(tb, name, analyzerBinary(build), nil, env, flags)
}

// StartIndexer starts `indexer run` with --metrics-addr on a free loopback port,
// --log-level warn, then flags.
func (st *Stack) StartIndexer(tb testing.TB, name string, flags ...string) *Proc {
	tb.Helper()
	return st.startBinary(tb, name, "indexer", []string{"run"}, nil, flags)
}

func (st *Stack) startBinary(tb testing.TB, name, binary string, command, env, flags []string) *Proc {
	tb.Helper()
	port, err := devstack.FreePort()
	if err != nil {
		tb.Fatal(err)
	}
	args := append(append(command, "--metrics-addr", fmt.Sprintf("127.0.0.1:%d", port), "--log-level", "warn"), flags...)
	if dir := os.Getenv("BENCH_PROFILE_DIR"); dir != "" && strings.HasPrefix(binary, "analyzer") {
		// One folder per run: CPU and allocation profiles of the whole process (obs.StartProfiles).
		if abs, err := filepath.Abs(dir); err == nil {
			dir = abs // the binary runs in st.Tmp
		}
		run := strings.NewReplacer("/", "_", "=", "-", " ", "_").Replace(tb.Name() + "-" + binary + "-" + name)
		args = append(args, "--profile-dir", filepath.Join(dir, fmt.Sprintf("%s-%d", run, time.Now().UnixNano())))
	}
	p, err := Start(Command{
		Name:       name,
		Path:       filepath.Join(st.Bin, binary),
		Args:       args,
		Env:        append(st.childEnv(), env...),
		Dir:        st.Tmp,
		LogPath:    filepath.Join(st.Tmp, fmt.Sprintf("%s-%s-%d.log", binary, name, time.Now().UnixNano())),
		MetricsURL: fmt.Sprintf("http://127.0.0.1:%d/metrics", port),
		HTTP:       st.HTTP,
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(p.Kill)
	return p
}

// Command is a program Start runs as a child process.
type Command struct {
	Name       string   // for messages
	Path       string   // the executable
	Args, Env  []string // Env nil: this process's environment
	Dir        string   // working directory
	LogPath    string   // stdout and stderr go to this new file
	MetricsURL string   // its /metrics, if it serves one
	HTTP       *http.Client
}

// Start runs c in its own process group, with SIGKILL as its parent-death signal (it dies
// with this process). Stop it with Kill, Term or Stop.
func Start(c Command) (*Proc, error) {
	p := &Proc{Name: c.Name, MetricsURL: c.MetricsURL, LogPath: c.LogPath, http: c.HTTP, exited: make(chan struct{})}
	if p.http == nil {
		p.http = &http.Client{Timeout: 10 * time.Second}
	}
	logFile, err := os.Create(c.LogPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child holds its own copy
	p.cmd = exec.Command(c.Path, c.Args...)
	p.cmd.Env = c.Env
	p.cmd.Dir = c.Dir
	p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
	// Own process group; Pdeathsig: the child dies with the test binary if that crashes.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", c.Name, err)
	}
	p.started = time.Now()
	go func() {
		err := p.cmd.Wait()
		p.waitErr, p.endedAt = err, time.Now()
		close(p.exited)
	}()
	return p, nil
}

// Started is when the process was started.
func (p *Proc) Started() time.Time { return p.started }

// Exited is closed once the process has exited.
func (p *Proc) Exited() <-chan struct{} { return p.exited }

// Running reports whether the process has not exited yet.
func (p *Proc) Running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// Term sends SIGTERM once (as Kubernetes does to a pod it stops: a second signal would
// kill a program that restored the default action after the first) and notes when.
func (p *Proc) Term() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.termAt.IsZero() {
		return
	}
	p.termAt = time.Now()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
}

// WaitExit waits up to timeout for the process to exit, sampling its peak memory every
// 10 ms, and reports whether it did. It does not kill it.
func (p *Proc) WaitExit(timeout time.Duration) bool {
	deadline := time.After(timeout)
	for {
		p.SamplePeak()
		select {
		case <-p.exited:
			return true
		case <-deadline:
			return false
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// ExitAfterTerm is how long the process took to exit after Term; zero while it runs or if
// Term was never called.
func (p *Proc) ExitAfterTerm() time.Duration {
	if p.Running() {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.termAt.IsZero() {
		return 0
	}
	return p.endedAt.Sub(p.termAt)
}

// Stop sends SIGTERM (unless Term did already) and waits up to timeout for a clean exit
// (code 0); otherwise it kills the process group and fails tb with the log's tail.
func (p *Proc) Stop(tb testing.TB, timeout time.Duration) {
	tb.Helper()
	p.Term()
	if !p.WaitExit(timeout) {
		p.Kill()
		tb.Fatalf("%s still running %v after SIGTERM; killed; log tail:\n%s", p.Name, timeout, p.LogTail())
	}
	if code := p.ExitCode(); code != 0 {
		tb.Fatalf("%s exit code %d (%v); log tail:\n%s", p.Name, code, p.waitErr, p.LogTail())
	}
}

// Kill sends SIGKILL to the process group if the process still runs, and waits for it.
// Safe to call more than once.
func (p *Proc) Kill() {
	if !p.Running() {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.exited
}

// ExitCode is the exit status once the process has exited (-1 while it runs or when killed
// by a signal).
func (p *Proc) ExitCode() int {
	if p.Running() {
		return -1
	}
	return p.cmd.ProcessState.ExitCode()
}

// CPU is the user + system CPU time of the exited process, from its rusage; zero while it
// runs.
func (p *Proc) CPU() time.Duration {
	if p.Running() {
		return 0
	}
	if ru, ok := p.cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	return 0
}

// SamplePeak records the process's peak resident set so far (VmHWM in /proc/PID/status,
// which only grows); a process that is gone leaves the last value in place.
//
// Not rusage's Maxrss: Go starts children with vfork, and the kernel carries the parent's
// peak RSS at exec into the child's Maxrss, so a benchmark process holding 2 GB of images
// reported a 750 MB analyzer whose VmHWM was 62 MB.
func (p *Proc) SamplePeak() {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kib, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			p.mu.Lock()
			if err == nil && kib > p.peakKiB {
				p.peakKiB = kib
			}
			p.mu.Unlock()
		}
	}
}

// PeakKiB is the largest VmHWM SamplePeak saw.
func (p *Proc) PeakKiB() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.peakKiB
}

// Metrics scrapes the process's /metrics and sums every sample by metric name (over labels).
func (p *Proc) Metrics() (map[string]float64, error) { return scrape(p.http, p.MetricsURL) }

// LogTail is the last 4,000 bytes of the process's log.
func (p *Proc) LogTail() string {
	b, _ := os.ReadFile(p.LogPath)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
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
