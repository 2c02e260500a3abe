package scaleout_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"imgpipe/internal/proctest"
)

// TestScaleInUnderLoad stops replicas the way a Deployment scale-down does, while a backlog
// remains: 3 analyzer replicas (8 workers each, Vision answering after 500 ms, so that calls
// are under way at the signal) and 2 indexers work on 480 images; once a third is done, two
// replicas get SIGTERM. Each must exit 0 within its grace period (analyzerShutdownBound of
// its 10 s drain timeout), with the backlog still there when they are gone; the last replica
// finishes it, and every image ends indexed exactly once with nothing dead-lettered.
func TestScaleInUnderLoad(t *testing.T) {
	const n, drain = 480, 10 * time.Second
	st := proctest.Get(t)
	if err := st.SetVisionFaults(proctest.LatencyQuota(500*time.Millisecond, 0, 0)); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = st.SetVisionFaults(proctest.LatencyQuota(0, 0, 0)) }()
	ix := startIndexers(t, st, 2)
	objs := st.Seed(t, "scalein", n, "png", pngs(40_000_000))
	start := time.Now()
	var an []*proctest.Proc
	for i := range 3 {
		an = append(an, st.StartAnalyzer(t, fmt.Sprintf("analyzer-%d", i), analyzerFlags(8, 100000, drain)...))
	}
	st.WaitDone(t, proctest.Wait{N: n, Want: n / 3, Start: start, Procs: an})
	v, f, err := st.QueueDepth(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("SIGTERM to 2 of 3 replicas with %d messages waiting and %d in flight", v, f)
	stopped, kept := an[:2], an[2]
	for _, p := range stopped {
		p.Term()
	}
	bound := analyzerShutdownBound(drain)
	for _, p := range stopped {
		if !p.WaitExit(bound) {
			p.Kill()
			t.Fatalf("%s still running %v after SIGTERM (its grace period); killed; log tail:\n%s", p.Name, bound, p.LogTail())
		}
		if code := p.ExitCode(); code != 0 {
			t.Fatalf("%s exited with code %d after SIGTERM; log tail:\n%s", p.Name, code, p.LogTail())
		}
		t.Logf("%s exited %v after SIGTERM (grace period %v)", p.Name, p.ExitAfterTerm().Round(time.Millisecond), bound)
	}
	v, f, err = st.QueueDepth(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if v == 0 {
		t.Fatalf("the backlog was gone (visible 0, in flight %d) by the time the stopped replicas exited: the scale-in was not under load", f)
	}
	t.Logf("stopped replicas gone with %d messages waiting and %d in flight", v, f)
	st.WaitDone(t, proctest.Wait{N: n, Start: start, Procs: []*proctest.Proc{kept}})
	checkExactlyOnce(t, st, ix, objs)
	kept.Stop(t, bound)
	ix.stop(t)
}
