package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"imgpipe/internal/devstack"
	"imgpipe/internal/proctest"
	"imgpipe/internal/visionstandin"
	"imgpipe/pkg/retry"
	"imgpipe/pkg/uploader"
)

// ErrMissing wraps a missing prerequisite of the local stack (node, Java, an emulator).
var ErrMissing = errors.New("local stack prerequisite missing")

// run is the state of one run.
type run struct {
	cfg    Config
	sched  Schedule
	dir    string
	bin    string
	st     *devstack.Stack
	res    *devstack.Bootstrapped
	envMap map[string]string
	env    []string
	corpus *Corpus
	fleet  *fleet
	audit  *audit
	t0     time.Time
	http   *http.Client

	mu      sync.Mutex
	faults  []FaultRecord
	batches []BatchRecord
}

// Run runs the suite and returns its report. An error means the run itself could not be
// made (a build, the stack, a binary that would not start); losses and duplicates are in
// the report (Report.Failed).
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.withDefaults(); err != nil {
		return nil, err
	}
	names := func(kind string, n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("%s-%d", kind, i+1)
		}
		return out
	}
	analyzers, indexers := names("analyzer", cfg.Analyzers), names("indexer", cfg.Indexers)
	sched, err := Plan(cfg.Seed, cfg.Timing, analyzers, indexers)
	if err != nil {
		return nil, err
	}
	r := &run{cfg: cfg, sched: sched, http: &http.Client{Timeout: 10 * time.Second}}
	r.dir = cfg.WorkDir
	if r.dir == "" {
		if r.dir, err = os.MkdirTemp("", "imgpipe-chaos-"); err != nil {
			return nil, err
		}
		if !cfg.Keep {
			defer os.RemoveAll(r.dir)
		}
	}
	r.logf("chaos: seed %d, %d files, work folder %s", cfg.Seed, cfg.N, r.dir)
	r.logf("chaos: schedule (fault window %v, last fault over at %v):", sched.Timing.Window, sched.LastEnd())
	for _, e := range sched.Events {
		r.logf("  %v", e)
	}
	if err := r.build(ctx); err != nil {
		return nil, err
	}
	r.logf("chaos: generating the corpus")
	r.corpus, err = Generate(filepath.Join(r.dir, "corpus"), CorpusSpec{
		N: cfg.N, BadRate: cfg.BadRate, Overwrite: cfg.Overwrite, Batches: cfg.Batches, Seed: cfg.Seed,
	})
	if err != nil {
		return nil, err
	}
	if err := r.startStack(ctx); err != nil {
		return nil, err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = r.st.Close(cctx)
	}()
	if r.audit, err = startAudit(ctx, r.envMap["GOOGLE_CLOUD_PROJECT"], r.res.TopicName); err != nil {
		return nil, err
	}
	defer r.audit.close()
	r.fleet = &fleet{bin: r.bin, logDir: filepath.Join(r.dir, "logs"), env: r.env,
		analyzer: []string{"--vision-rate", fmt.Sprint(cfg.Quota), "--vision-burst", fmt.Sprint(int(cfg.Quota))}}
	if err := os.MkdirAll(r.fleet.logDir, 0o755); err != nil {
		return nil, err
	}
	defer r.fleet.stop(30 * time.Second)
	for _, name := range analyzers {
		r.fleet.add(name, "analyzer")
	}
	for _, name := range indexers {
		r.fleet.add(name, "indexer", "run")
	}
	for _, name := range append(append([]string{}, analyzers...), indexers...) {
		if err := r.fleet.start(name); err != nil {
			return nil, err
		}
	}

	// The run's clock starts with Vision's faults, whose outage is an offset from then.
	r.t0 = time.Now()
	if err := r.setVisionFaults(); err != nil {
		return nil, err
	}
	var wg sync.WaitGroup
	wg.Go(func() { r.inject(ctx) })
	wg.Go(func() { r.upload(ctx) })
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	lastFault := r.lastFaultEnd()
	r.logf("chaos: faults over at %v; waiting for quiet", lastFault.Sub(r.t0).Round(time.Second))

	rep := &Report{Seed: cfg.Seed, N: cfg.N, Schedule: sched, WorkDir: r.dir, Window: cfg.Timing.Window,
		Quota: cfg.Quota, Transient: cfg.Transient}
	rep.Faults, rep.Batches = r.faults, r.batches
	q, err := r.waitQuiet(ctx, lastFault)
	if err != nil {
		return nil, err
	}
	rep.Quiet = q
	if err := r.check(ctx, rep, &rep.First); err != nil {
		return nil, err
	}
	if err := r.replay(ctx, rep); err != nil {
		return nil, err
	}
	if stats, err := proctest.VisionStats(r.http, r.envMap["AZURE_VISION_ENDPOINT"]); err == nil {
		rep.Vision = stats
		rep.Vision.ByImage = nil
	}
	rep.Exited = r.fleet.exited()
	rep.Published, rep.PublishedKeys = r.audit.count()
	if n, err := r.audit.receiveErrors(); n > 0 {
		rep.AuditErrors, rep.AuditLastError = n, err.Error()
	}
	rep.Elapsed = time.Since(r.t0)
	return rep, nil
}

func (r *run) logf(format string, args ...any) {
	fmt.Fprintf(r.cfg.Out, format+"\n", args...)
}

// build compiles the binaries from the tree into the work folder.
func (r *run) build(ctx context.Context) error {
	root, err := devstack.RepoRoot()
	if err != nil {
		return err
	}
	r.bin = filepath.Join(r.dir, "bin")
	if err := os.MkdirAll(r.bin, 0o755); err != nil {
		return err
	}
	r.logf("chaos: building analyzer, indexer, uploader and dlq-replay")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", r.bin+string(filepath.Separator),
		"./cmd/analyzer", "./cmd/indexer", "./cmd/uploader", "./dlq-replay")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %w\n%s", err, out)
	}
	return nil
}

func (r *run) startStack(ctx context.Context) error {
	sctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	st, err := devstack.Start(sctx, &devstack.Options{LogDir: filepath.Join(r.dir, "stack")})
	if err != nil {
		if devstack.IsMissing(err) {
			return fmt.Errorf("%w: %v", ErrMissing, err)
		}
		return err
	}
	r.st = st
	r.res, err = st.Bootstrap(sctx, devstack.Resources{MaxReceiveCount: r.cfg.MaxReceiveCount})
	if err != nil {
		_ = st.Close(context.Background())
		return err
	}
	r.envMap = map[string]string{}
	for _, e := range st.Env(r.res) {
		r.envMap[e.Name] = e.Value
	}
	r.env = proctest.ChildEnv(r.envMap)
	st.SetEmulatorEnv() // this process's own Firestore and Pub/Sub clients
	return nil
}

// setVisionFaults puts Vision's faults for the whole run through the stand-in's admin
// endpoint: the transient errors, the quota and the scheduled outage.
func (r *run) setVisionFaults() error {
	f := visionstandin.Faults{
		Transient: visionstandin.Transient{Rate: r.cfg.Transient},
		RateLimit: visionstandin.RateLimit{PerSecond: r.cfg.Quota, Burst: int(r.cfg.Quota)},
		Seed:      r.cfg.Seed,
	}
	for _, e := range r.sched.Events {
		if e.Kind == VisionOutage {
			f.Outages = append(f.Outages, visionstandin.Outage{From: visionstandin.Duration(e.At), Until: visionstandin.Duration(e.End())})
		}
	}
	return proctest.SetVisionFaults(r.http, r.envMap["AZURE_VISION_ENDPOINT"], f)
}

// FaultRecord is a fault as it happened.
type FaultRecord struct {
	Event
	Start, End time.Duration // from the run's start
	Err        string        // why it did not happen as planned
}

// inject runs the schedule: each event at its time, in its own goroutine.
func (r *run) inject(ctx context.Context) {
	var wg sync.WaitGroup
	for _, e := range r.sched.Events {
		wg.Go(func() {
			if !sleepUntil(ctx, r.t0.Add(e.At)) {
				return
			}
			start := time.Since(r.t0)
			var err error
			switch e.Kind {
			case KillAnalyzer, KillIndexer:
				if err = r.fleet.kill(e.Target); err == nil {
					sleepUntil(ctx, r.t0.Add(e.End()))
					err = r.fleet.start(e.Target)
				}
			case VisionOutage:
				// Set with the run's faults: the stand-in keeps the window itself.
				sleepUntil(ctx, r.t0.Add(e.End()))
			case FirestoreRestart, PubSubRestart:
				err = restartEmulator(ctx, r.st, e.Kind, e.Down)
			}
			rec := FaultRecord{Event: e, Start: start, End: time.Since(r.t0)}
			if err != nil {
				rec.Err = err.Error()
			}
			r.logf("chaos: %8v  %s %s: %s", rec.Start.Round(100*time.Millisecond), e.Kind, e.Target, orOK(rec.Err))
			r.mu.Lock()
			r.faults = append(r.faults, rec)
			r.mu.Unlock()
		})
	}
	wg.Wait()
	sort.Slice(r.faults, func(i, j int) bool { return r.faults[i].Start < r.faults[j].Start })
}

func orOK(s string) string {
	if s == "" {
		return "done"
	}
	return s
}

// lastFaultEnd is when the last fault that happened was over.
func (r *run) lastFaultEnd() time.Time {
	var end time.Duration
	for _, f := range r.faults {
		if f.Err == "" {
			end = max(end, f.End)
		}
	}
	return r.t0.Add(end)
}

func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	return retry.Sleep(ctx, d) == nil
}

// BatchRecord is one run of `uploader put`.
type BatchRecord struct {
	Batch            int
	Start            time.Duration
	Took             time.Duration
	Uploaded, Failed int
	Skipped          int
	Err              string
	FailedFiles      []string
	keys             map[string]string // relative path -> key
}

// upload sends batch b at b/Batches of the window with the uploader binary (keys from the
// relative paths, non-images included), one batch after the other.
func (r *run) upload(ctx context.Context) {
	for b := range r.corpus.Batches {
		if !sleepUntil(ctx, r.t0.Add(time.Duration(b)*r.cfg.Timing.Window/time.Duration(r.corpus.Batches))) {
			return
		}
		rec := BatchRecord{Batch: b, Start: time.Since(r.t0), keys: map[string]string{}}
		cmd := exec.CommandContext(ctx, filepath.Join(r.bin, "uploader"), "put", "--keys", "path", "--include-non-images",
			"--json", "--log-level", "error", r.corpus.BatchDir(b))
		cmd.Env = r.env
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		runErr := cmd.Run()
		rec.Took = time.Since(r.t0) - rec.Start
		var sum struct {
			Uploaded, Skipped, Failed int
			Files                     []uploader.FileResult
		}
		if err := json.Unmarshal(stdout.Bytes(), &sum); err != nil {
			rec.Err = fmt.Sprintf("uploader output: %v (exit %v): %s", err, runErr, bytes.TrimSpace(stderr.Bytes()))
		} else {
			rec.Uploaded, rec.Skipped, rec.Failed = sum.Uploaded, sum.Skipped, sum.Failed
			for _, f := range sum.Files {
				rel, _ := filepath.Rel(r.corpus.BatchDir(b), f.Path)
				if f.Status == uploader.StatusUploaded {
					rec.keys[filepath.ToSlash(rel)] = f.Key
				} else {
					rec.FailedFiles = append(rec.FailedFiles, fmt.Sprintf("%s: %s %s %s", rel, f.Status, f.Reason, f.Detail))
				}
			}
			if runErr != nil && sum.Failed == 0 {
				rec.Err = fmt.Sprintf("uploader: %v: %s", runErr, bytes.TrimSpace(stderr.Bytes()))
			}
		}
		r.logf("chaos: %8v  batch %d: %d uploaded, %d skipped, %d failed %s", rec.Start.Round(100*time.Millisecond), b,
			rec.Uploaded, rec.Skipped, rec.Failed, rec.Err)
		r.mu.Lock()
		r.batches = append(r.batches, rec)
		r.mu.Unlock()
	}
}
