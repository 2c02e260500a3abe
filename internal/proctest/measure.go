package proctest

import (
	"context"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Progress is how processes worked through a queue loaded with N messages, read from the
// queue's depth (a message is done once deleted).
type Progress struct {
	// Throughput is messages/s over the measured window: from its start (Wait.WindowFrom,
	// by default the first poll with at least 5% of N done) to its end (Wait.WindowTo done,
	// by default the target); start-up and the first messages are thus left out.
	Throughput float64
	Window     time.Duration // that interval
	FromStart  time.Duration // start to the poll that saw the target reached
	// MachineBusy is the share of the machine's CPU time (all cores, every process) that
	// was not idle during the window: near 1 means the run was CPU-bound.
	MachineBusy float64
}

// Wait says what WaitDone waits for.
type Wait struct {
	N     int       // messages the queue was loaded with
	Want  int       // wait until this many are done (0: N)
	Start time.Time // when the processes were started
	// Procs must keep running meanwhile: WaitDone fails when one exits.
	Procs []*Proc
	// WindowFrom starts the measured window this long after Start instead of at 5% done.
	WindowFrom time.Duration
	// WindowTo ends the measured window at this many done instead of at Want (the last
	// messages of a backlog are too few to keep every worker busy).
	WindowTo int
	// OnWindow and OnWindowEnd, if set, are called once when the measured window starts
	// and when it ends.
	OnWindow, OnWindowEnd func()
}

// WaitDone polls the queue's depth every 20 ms until w.Want of the w.N messages the queue was
// loaded with are done (N - visible - in flight). It fails tb when one of w.Procs exits
// meanwhile, or when nothing moves for 90 s. Progress is read from the queue, not from the
// processes' /metrics: scraping them every 20 ms would add their own CPU to the figures.
func (st *Stack) WaitDone(tb testing.TB, w Wait) Progress {
	tb.Helper()
	if w.Want == 0 {
		w.Want = w.N
	}
	if w.WindowTo == 0 || w.WindowTo > w.Want {
		w.WindowTo = w.Want
	}
	var r Progress
	threshold := float64(w.N) * 0.05
	var t0 time.Time
	var n0 float64
	var cpu0 cpuStat
	closed := false // the measured window has ended
	lastProgress, lastDone := time.Now(), -1.0
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		<-tick.C
		for _, p := range w.Procs {
			if !p.Running() {
				tb.Fatalf("%s exited early (code %d); log tail:\n%s", p.Name, p.ExitCode(), p.LogTail())
			}
			p.SamplePeak()
		}
		visible, inFlight, err := st.QueueDepth(context.Background())
		now := time.Now()
		if err != nil {
			tb.Fatalf("queue depth: %v", err)
		}
		done := float64(w.N - visible - inFlight)
		if done != lastDone {
			lastDone, lastProgress = done, now
		} else if now.Sub(lastProgress) > 90*time.Second {
			tail := ""
			for _, p := range w.Procs {
				m, _ := p.Metrics()
				tail += "\n" + p.Name + ": metrics " + formatMetrics(m) + "\n" + p.LogTail()
			}
			tb.Fatalf("no progress for 90s at %v of %d done (visible %d, in flight %d):%s", done, w.N, visible, inFlight, tail)
		}
		inWindow := done >= threshold
		if w.WindowFrom > 0 {
			inWindow = now.Sub(w.Start) >= w.WindowFrom
		}
		if t0.IsZero() && inWindow {
			t0, n0 = now, done
			cpu0 = readCPUStat()
			if w.OnWindow != nil {
				w.OnWindow()
			}
		}
		if !closed && done >= float64(w.WindowTo) {
			closed = true
			if cpu0.total > 0 {
				cpu1 := readCPUStat()
				if d := cpu1.total - cpu0.total; d > 0 {
					r.MachineBusy = 1 - float64(cpu1.idle-cpu0.idle)/float64(d)
				}
			}
			if !t0.IsZero() {
				r.Window = now.Sub(t0)
			}
			if r.Window > 0 {
				r.Throughput = (done - n0) / r.Window.Seconds()
			} else {
				// Everything finished between two polls (tiny n) or before the window:
				// fall back to the whole run.
				r.Throughput = done / now.Sub(w.Start).Seconds()
			}
			if w.OnWindowEnd != nil {
				w.OnWindowEnd()
			}
		}
		if done >= float64(w.Want) {
			r.FromStart = now.Sub(w.Start)
			return r
		}
	}
}

// formatMetrics lists the imgpipe_ metrics of a scrape, for failure messages.
func formatMetrics(m map[string]float64) string {
	var parts []string
	for k, v := range m {
		if strings.HasPrefix(k, "imgpipe_") && !strings.HasSuffix(k, "_bucket") {
			parts = append(parts, k+"="+strconv.FormatFloat(v, 'g', -1, 64))
		}
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
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
