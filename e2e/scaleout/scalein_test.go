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
	st, ix, objs := stage(t, 500*time.Millisecond, 0, "scalein", n, 40_000_000)
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
	exitWithinGrace(t, bound, stopped...)
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
