// Package scaleout_test runs several analyzer and indexer processes (the binaries built from
// ./cmd, as Kubernetes would run replicas) on one local stack and checks what the pipeline
// promises of replicas: they share the queue and one Vision quota without talking to each
// other, every image ends indexed exactly once, replicas stopped with SIGTERM while a backlog
// remains lose nothing and exit within their grace period, and a controller applying KEDA's
// formula to the queue depth sizes them without flapping.
package scaleout_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"imgpipe/internal/proctest"
	"imgpipe/pkg/analyzer"
	"imgpipe/pkg/samples"
)

func TestMain(m *testing.M) { proctest.Main(m, "all") }

// pngs returns a body maker for Seed: distinct 64x64 PNGs.
func pngs(base int64) func(i int) ([]byte, error) {
	return func(i int) ([]byte, error) { return samples.Image(base+int64(i), 64, 64, "png") }
}

// stage prepares a scenario: Vision answering after latency, under a quota of calls/s (burst:
// one second of it; 0: none) until the test ends; 2 indexers on a new subscription and
// collection; the queue loaded with n distinct PNGs under folder (seeds from seed).
func stage(tb testing.TB, latency time.Duration, quota float64, folder string, n int, seed int64) (*proctest.Stack, *indexers, []proctest.Object) {
	tb.Helper()
	st := proctest.Get(tb)
	if err := st.SetVisionFaults(proctest.LatencyQuota(latency, quota, int(quota))); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = st.SetVisionFaults(proctest.LatencyQuota(0, 0, 0)) })
	ix := startIndexers(tb, st, 2)
	return st, ix, st.Seed(tb, folder, n, "png", pngs(seed))
}

// indexers are the scenario's indexer processes on their own subscription and collection.
type indexers struct {
	collection string
	procs      []*proctest.Proc
}

// startIndexers starts n indexer processes sharing a new subscription on the pipeline's
// topic and writing into a new collection.
func startIndexers(tb testing.TB, st *proctest.Stack, n int) *indexers {
	tb.Helper()
	id := proctest.UniqueID("scaleout")
	sub := st.NewSubscription(tb, id)
	ix := &indexers{collection: id}
	for i := range n {
		ix.procs = append(ix.procs, st.StartIndexer(tb, fmt.Sprintf("indexer-%d", i), "--subscription", sub, "--collection", id))
	}
	return ix
}

// written sums the indexers' documents_written_total.
func (ix *indexers) written(tb testing.TB) float64 {
	tb.Helper()
	total := 0.0
	for _, p := range ix.procs {
		m, err := p.Metrics()
		if err != nil {
			tb.Fatalf("%s /metrics: %v; log tail:\n%s", p.Name, err, p.LogTail())
		}
		total += m["imgpipe_indexer_documents_written_total"]
	}
	return total
}

// stop stops every indexer with SIGTERM; each must exit 0 within a minute.
func (ix *indexers) stop(tb testing.TB) {
	tb.Helper()
	for _, p := range ix.procs {
		p.Term()
	}
	for _, p := range ix.procs {
		p.Stop(tb, time.Minute)
	}
}

// checkExactlyOnce waits until the collection holds a document for every object (or fails
// after 2 minutes), then checks that each object has exactly one correct document and
// nothing else is there, that the indexers wrote each document once (no second write of a
// key), and that the queue and the DLQ are empty.
func checkExactlyOnce(tb testing.TB, st *proctest.Stack, ix *indexers, objs []proctest.Object) {
	tb.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		missing, unexpected, wrong, err := st.Indexed(ctx, ix.collection, objs)
		if err != nil {
			tb.Fatalf("read the index: %v", err)
		}
		if len(unexpected) > 0 || len(wrong) > 0 {
			tb.Fatalf("index holds %d unexpected documents %s and %d wrong ones %s", len(unexpected), first(unexpected), len(wrong), first(wrong))
		}
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%d of %d objects have no document after 2m, e.g. %s", len(missing), len(objs), first(missing))
		}
		time.Sleep(500 * time.Millisecond)
	}
	// The indexers' counters: a key written twice (a redelivered or duplicated record that
	// was not recognised as stale) would count twice.
	if w := ix.written(tb); w != float64(len(objs)) {
		tb.Errorf("indexers wrote %v documents for %d objects", w, len(objs))
	}
	if v, f, err := st.QueueDepth(ctx); err != nil || v+f != 0 {
		tb.Errorf("queue after the run: visible=%d in flight=%d err=%v, want empty", v, f, err)
	}
	if v, f, err := st.DLQDepth(ctx); err != nil || v+f != 0 {
		tb.Errorf("DLQ after the run: visible=%d in flight=%d err=%v, want empty (every image was good)", v, f, err)
	}
}

func first(s []string) string {
	if len(s) > 5 {
		return strings.Join(s[:5], ", ") + ", ..."
	}
	return strings.Join(s, ", ")
}

// analyzerFlags are the flags of every analyzer replica of a scenario: workers per replica,
// the client-side Vision limit (each replica is configured as if it were alone: the whole
// quota), the drain timeout, and a short long poll so that an idle replica stops quickly.
func analyzerFlags(workers int, visionRate float64, drain time.Duration, more ...string) []string {
	return append([]string{
		"--workers", strconv.Itoa(workers),
		"--vision-rate", strconv.FormatFloat(visionRate, 'f', -1, 64),
		"--vision-burst", strconv.Itoa(max(1, int(visionRate))),
		"--visibility-timeout", "30s",
		"--drain-timeout", drain.String(),
		"--wait-time", replicaWait.String(),
	}, more...)
}

// replicaWait is every replica's long poll: short, so that an idle replica stops quickly.
const replicaWait = 2 * time.Second

// analyzerShutdownBound is the longest an analyzer started by analyzerFlags with
// --drain-timeout drain may take to exit after SIGTERM: analyzer.ShutdownBound, the bound the
// Kubernetes manifests are checked against, of its settings (its long poll included).
func analyzerShutdownBound(drain time.Duration) time.Duration {
	return analyzer.ShutdownBound(&analyzer.Options{DrainTimeout: drain}, replicaWait)
}

// exitWithinGrace waits for replicas that were sent SIGTERM, and fails tb unless each exits 0
// within bound of its signal (one still running then is killed).
func exitWithinGrace(tb testing.TB, bound time.Duration, stopped ...*proctest.Proc) {
	tb.Helper()
	for _, p := range stopped {
		if !p.WaitExit(bound) {
			p.Kill()
			tb.Fatalf("%s still running %v after SIGTERM (its grace period); killed; log tail:\n%s", p.Name, bound, p.LogTail())
		}
		if code := p.ExitCode(); code != 0 {
			tb.Fatalf("%s exited with code %d after SIGTERM; log tail:\n%s", p.Name, code, p.LogTail())
		}
		if took := p.ExitAfterTerm(); took > bound {
			tb.Fatalf("%s took %v to exit after SIGTERM, over its grace period %v", p.Name, took, bound)
		}
		tb.Logf("%s exited %v after SIGTERM (grace period %v)", p.Name, p.ExitAfterTerm().Round(time.Millisecond), bound)
	}
}
