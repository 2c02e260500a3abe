package scaleout_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"imgpipe/internal/proctest"
	"imgpipe/pkg/autoscale"
)

// TestControllerFollowsTheBacklog is KEDA and the HPA played by the test: every second it
// reads the queue's depth (visible + in flight, as KEDA's aws-sqs-queue scaler with
// scaleOnInFlight), asks autoscale.Replicas for the replica count (queueLength 100 per
// replica, activation 0, 0 to 4 replicas, cooldown 10 s, scale-down stabilisation window 5 s,
// tolerance 0.1) and starts analyzer processes or stops the newest with SIGTERM to match (a
// replica that was sent SIGTERM no longer counts, as a terminating pod does not). The backlog
// is 600 images; each replica has 4 workers and Vision answers after 500 ms (8 images/s
// per replica), so that the backlog takes long enough to drain for the count to follow it.
//
// It checks that the backlog drains with every image indexed exactly once; that the count
// reached the maximum, came back to zero and changed direction once (up, then down: no
// flapping); that it never went down below what the backlog needed at that moment
// (ceil(depth / 100)) nor up above it; and that every stopped replica exited 0 within its
// grace period.
func TestControllerFollowsTheBacklog(t *testing.T) {
	const n, drain = 600, 10 * time.Second
	opts := autoscale.ReplicaOptions{Target: 100, MaxReplicas: 4, Cooldown: 10 * time.Second, ScaleDownWindow: 5 * time.Second}
	scaler, err := autoscale.NewReplicas(&opts)
	if err != nil {
		t.Fatal(err)
	}
	st, ix, objs := stage(t, 500*time.Millisecond, 0, "controller", n, 50_000_000)

	var (
		series           []sample
		running, stopped []*proctest.Proc
		started          int
	)
	begin := time.Now()
	deadline := begin.Add(5 * time.Minute)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		<-tick.C
		for _, p := range running {
			if !p.Running() {
				t.Fatalf("%s exited on its own (code %d); log tail:\n%s", p.Name, p.ExitCode(), p.LogTail())
			}
		}
		v, f, err := st.QueueDepth(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		d := scaler.Decide(time.Now(), len(running), float64(v+f))
		for len(running) < d.Replicas {
			running = append(running, st.StartAnalyzer(t, fmt.Sprintf("analyzer-%d", started), analyzerFlags(4, 100000, drain)...))
			started++
		}
		for len(running) > d.Replicas {
			p := running[len(running)-1]
			p.Term()
			running, stopped = running[:len(running)-1], append(stopped, p)
		}
		series = append(series, sample{at: time.Since(begin).Round(100 * time.Millisecond), depth: v + f, replicas: len(running), recommended: d.Recommended, reason: d.Reason})
		if v+f == 0 && len(running) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 5m: depth %d, %d replicas; series:\n%s", v+f, len(running), formatSeries(series, true))
		}
	}
	t.Logf("%d replicas started; series (one line per change):\n%s", started, formatSeries(series, false))

	checkExactlyOnce(t, st, ix, objs)
	exitWithinGrace(t, analyzerShutdownBound(drain), stopped...)
	ix.stop(t)

	peak, reversals, dir := 0, 0, 0
	prev := 0
	for _, s := range series {
		peak = max(peak, s.replicas)
		need := autoscale.Needed(float64(s.depth), opts.Target)
		switch {
		case s.replicas > prev:
			if dir < 0 {
				reversals++
			}
			dir = 1
			if s.replicas > max(need, 1) {
				t.Errorf("at %v scaled up to %d replicas for a depth of %d, which needs %d", s.at, s.replicas, s.depth, need)
			}
		case s.replicas < prev:
			if dir > 0 {
				reversals++
			}
			dir = -1
			if s.replicas < min(need, opts.MaxReplicas) {
				t.Errorf("at %v scaled down to %d replicas while the depth %d needed %d", s.at, s.replicas, s.depth, need)
			}
		}
		prev = s.replicas
	}
	if peak != opts.MaxReplicas {
		t.Errorf("the replica count peaked at %d for a backlog of %d, want the maximum %d", peak, n, opts.MaxReplicas)
	}
	if reversals != 1 {
		t.Errorf("the replica count changed direction %d times, want once (up, then down)", reversals)
	}
	if prev != 0 {
		t.Errorf("the replica count ended at %d, want 0", prev)
	}
}

// sample is one poll of the controller: the queue's depth and the replica count it chose.
type sample struct {
	at              time.Duration
	depth, replicas int
	recommended     int // the HPA's recommendation before stabilisation
	reason          string
}

// formatSeries renders the samples at which the replica count changed, and the last one;
// with all, every sample and its reason.
func formatSeries(series []sample, all bool) string {
	var b strings.Builder
	for i, s := range series {
		if all || i == 0 || i == len(series)-1 || s.replicas != series[i-1].replicas {
			fmt.Fprintf(&b, "  %v depth %d -> %d replicas (recommended %d", s.at, s.depth, s.replicas, s.recommended)
			if all {
				b.WriteString(": " + s.reason)
			}
			b.WriteString(")\n")
		}
	}
	return b.String()
}
