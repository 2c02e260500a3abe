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
	// Throughput is messages/s from the first poll with at least 5% of N done to the poll
	// that saw the target reached; start-up and the first messages are thus left out.
	Throughput float64
	Window     time.Duration // that interval
	FromStart  time.Duration // start to the poll that saw the target reached
	// MachineBusy is the share of the machine's CPU time (all cores, every process) that
	// was not idle during the window: near 1 means the run was CPU-bound.
	MachineBusy float64
}

// WaitDone polls the queue's depth every 20 ms until at least want of the n messages the
// queue was loaded with are done (n - visible - in flight), counting from start. It fails tb
// when one of procs exits meanwhile, or when nothing moves for 90 s. Progress is read from
// the queue, not from the processes' /metrics: scraping them every 20 ms would add their own
// CPU to the figures.
func (st *Stack) WaitDone(tb testing.TB, n, want int, start time.Time, procs ...*Proc) Progress {
	tb.Helper()
	var r Progress
	threshold := float64(n) * 0.05
	var t0 time.Time
	var n0 float64
	var cpu0 cpuStat
	lastProgress, lastDone := time.Now(), -1.0
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		<-tick.C
		for _, p := range procs {
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
		done := float64(n - visible - inFlight)
		if done != lastDone {
			lastDone, lastProgress = done, now
		} else if now.Sub(lastProgress) > 90*time.Second {
			tail := ""
			for _, p := range procs {
				m, _ := p.Metrics()
				tail += "\n" + p.Name + ": metrics " + formatMetrics(m) + "\n" + p.LogTail()
			}
			tb.Fatalf("no progress for 90s at %v of %d done (visible %d, in flight %d):%s", done, n, visible, inFlight, tail)
		}
		if t0.IsZero() && done >= threshold {
			t0, n0 = now, done
			cpu0 = readCPUStat()
		}
		if done >= float64(want) {
			if cpu0.total > 0 {
				cpu1 := readCPUStat()
				if d := cpu1.total - cpu0.total; d > 0 {
					r.MachineBusy = 1 - float64(cpu1.idle-cpu0.idle)/float64(d)
				}
			}
			r.FromStart = now.Sub(start)
			r.Window = now.Sub(t0)
			if r.Window > 0 {
				r.Throughput = (done - n0) / r.Window.Seconds()
			} else {
				// Everything finished between two polls (tiny n): fall back to the whole run.
				r.Throughput = done / r.FromStart.Seconds()
			}
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
