package chaos

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"imgpipe/internal/stacktest"
)

// testWriter sends the run's progress lines to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// TestChaos is the make test version of the suite: 500 files, the fault timing scaled to the
// run's length (every analyzer and indexer killed, a Vision outage, Firestore restarted, Pub/Sub cut off),
// and the same checks as make chaos. CHAOS_SEED repeats a run; CHAOS_N changes its size.
func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("the chaos suite takes minutes: not in -short mode")
	}
	seed := time.Now().UnixNano() % 1_000_000_000
	if v := os.Getenv("CHAOS_SEED"); v != "" {
		var err error
		if seed, err = strconv.ParseInt(v, 10, 64); err != nil {
			t.Fatalf("CHAOS_SEED: %v", err)
		}
	}
	n := 500
	if v := os.Getenv("CHAOS_N"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n <= 0 {
			t.Fatalf("CHAOS_N %q: want a positive number", v)
		}
	}
	t.Logf("seed %d (repeat with CHAOS_SEED=%d)", seed, seed)
	cfg := Small(n, seed)
	cfg.Out = testWriter{t}
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	rep, err := Run(ctx, cfg)
	if errors.Is(err, ErrMissing) && !stacktest.InCI() {
		t.Skipf("local stack unavailable (set CI=true to make this a failure): %v", err)
	}
	if err != nil {
		t.Fatalf("seed %d: %v", seed, err)
	}
	rep.Print(testWriter{t})
	if rep.Failed() {
		t.Fatalf("seed %d: the chaos run found losses, duplicates or wrong results (report above)", seed)
	}
	// The faults must have happened and hit traffic, or the run proves nothing.
	done := map[string]int{}
	for _, f := range rep.Faults {
		if f.Err != "" {
			t.Errorf("fault not injected: %s %s at %v: %s", f.Kind, f.Target, f.At, f.Err)
			continue
		}
		done[f.Kind+" "+f.Target]++
	}
	for _, want := range []string{"kill-analyzer analyzer-1", "kill-analyzer analyzer-2", "kill-indexer indexer-1",
		"kill-indexer indexer-2", "vision-outage ", "firestore-restart ", "pubsub-restart "} {
		if done[want] == 0 {
			t.Errorf("no %s in the run", strings.TrimSpace(want))
		}
	}
	if rep.Vision.Throttled == 0 || rep.Vision.Transient == 0 || rep.OutageAnswers() == 0 {
		t.Errorf("Vision's faults did not hit the traffic: %+v", rep.Vision)
	}
	f := rep.Final()
	if f.Indexed != rep.SentGood || f.BadDeadLettered != rep.SentBad || rep.SentBad == 0 || rep.Overwrites == 0 {
		t.Errorf("indexed %d of %d good images, %d of %d bad files dead-lettered, %d overwrites", f.Indexed, rep.SentGood,
			f.BadDeadLettered, rep.SentBad, rep.Overwrites)
	}
}
