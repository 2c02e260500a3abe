// Package bench measures the pipeline's binaries as deployed: each one runs as its own
// process, built from ./cmd, against the local stand-ins started by `devstack up` in
// other processes, so that the CPU time and peak memory the kernel reports for the process
// are the binary's alone.
package bench

import (
	"context"
	"flag"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"imgpipe/internal/otlprecv"
	"imgpipe/internal/proctest"
	"imgpipe/internal/stacktest"
	"imgpipe/pkg/samples"
)

func TestMain(m *testing.M) { proctest.Main(m, "sqs,s3,pubsub,vision") }

// Settings of the analyzer runs that must not be bounded by the client-side Vision limiter.
var unlimited = analyzerConfig{workers: 64, visionRate: 100000, visionBurst: 1000}

// probe reports whether this call is the testing package's first, one-iteration call of a
// benchmark that -benchtime=Nx (N > 1) will call again with b.N = N. The scenarios are too
// costly to run for that probe, whose figures are never printed.
func probe(b *testing.B) bool {
	if b.N != 1 {
		return false
	}
	f := flag.Lookup("test.benchtime")
	if f == nil {
		return false
	}
	s, ok := strings.CutSuffix(f.Value.String(), "x")
	if !ok {
		return false
	}
	n, err := strconv.Atoi(s)
	return err == nil && n > 1
}

// pngs returns a body maker for seed: distinct 64x64 PNGs.
func pngs(base int64) func(i int) ([]byte, error) {
	return func(i int) ([]byte, error) { return samples.Image(base+int64(i), 64, 64, "png") }
}

// assertClean fails tb when the analyzer failed or dead-lettered any message, or when the
// queue still holds messages after the run.
func assertClean(tb testing.TB, st *proctest.Stack, r *analyzerRun) {
	tb.Helper()
	if f, d := r.metric("messages_failed_total"), r.metric("messages_dead_lettered_total"); f != 0 || d != 0 {
		tb.Fatalf("analyzer failed %v and dead-lettered %v messages, want 0 and 0 (metrics %v)", f, d, r.metrics)
	}
	if v, fl, err := st.QueueDepth(context.Background()); err != nil || v+fl != 0 {
		tb.Fatalf("queue after the run: visible=%d in flight=%d err=%v, want empty", v, fl, err)
	}
}

// BenchmarkAnalyzerProcess measures the analyzer binary (built from ./cmd/analyzer) as a
// process of its own, with SQS, S3, Pub/Sub and the Vision stand-in in other processes
// (`devstack up --parts sqs,s3,pubsub,vision`, one stack for all scenarios, which run one
// after another on its one queue, each draining it). CPU time (user + system) and peak RSS
// are the analyzer's own: CPU from the kernel's rusage of the exited process, peak RSS from its
// VmHWM (see proctest.Proc.SamplePeak for why not rusage's Maxrss). Run:
//
//	go test ./bench -run '^$' -bench AnalyzerProcess -benchtime 2000x -timeout 30m
//
// With BENCH_OUT=docs/bench-analyzer.md (relative to the module root) every scenario also
// appends a markdown table row to that file. See each scenario for what it reports.
func BenchmarkAnalyzerProcess(b *testing.B) {
	b.Run("ReceiveDelete", benchReceiveDelete)
	for _, sc := range []struct {
		latency time.Duration
		flags   []string
	}{
		{0, nil},
		{100 * time.Millisecond, nil},
		{100 * time.Millisecond, []string{"--receive-ahead", "0"}},
		{0, []string{"--ordering-keys"}},
		{0, []string{"--thumbnail-prefix", ""}}, // without thumbnails, for the ratio
	} {
		name := fmt.Sprintf("Analyzer/latency=%v", sc.latency)
		if len(sc.flags) > 0 {
			name += "/" + strings.Join(sc.flags, "=")
		}
		b.Run(name, func(b *testing.B) {
			benchBuilds(b, name, func(b *testing.B, name, build string) { benchAnalyzer(b, name, build, sc.latency, sc.flags) })
		})
	}
	b.Run("Tracing", benchTracing)
	for _, sc := range []struct {
		name  string
		flags []string
	}{
		{"Memory15MB", nil},
		{"Memory15MB/thumbnail-decodes=2", []string{"--thumbnail-decodes", "2"}},
		{"Memory15MB/thumbnails=off", []string{"--thumbnail-prefix", ""}},
	} {
		b.Run(sc.name, func(b *testing.B) {
			benchBuilds(b, sc.name, func(b *testing.B, name, build string) { benchMemory(b, name, build, sc.flags) })
		})
	}
	b.Run("Quota", benchQuota)
}

// benchReceiveDelete measures the queue's ceiling: b.N messages (one per small PNG put into
// the bucket) are received by the benchmark process itself, 10 per long poll, each batch
// deleted with one DeleteMessageBatch in the background. Reports msgs/s (first receive to the
// last delete answered) and SQS calls per message. No analyzer runs.
//
//	go test ./bench -run '^$' -bench 'AnalyzerProcess/ReceiveDelete' -benchtime 2000x
func benchReceiveDelete(b *testing.B) {
	if probe(b) {
		return
	}
	st := proctest.Get(b)
	st.Seed(b, "bench", b.N, "png", pngs(1_000_000))
	ctx := context.Background()
	b.ResetTimer()
	start := time.Now()
	got, calls, delErr := stacktest.ReceiveDelete(ctx, st.SQS, st.Env["IMGPIPE_QUEUE_URL"], b.N, func(err error) { b.Fatalf("receive: %v", err) })
	elapsed := time.Since(start)
	b.StopTimer()
	if delErr != nil {
		b.Fatalf("delete: %v", delErr)
	}
	if got != b.N {
		b.Fatalf("received %d messages, want %d", got, b.N)
	}
	if v, f, err := st.QueueDepth(ctx); err != nil || v+f != 0 {
		b.Fatalf("queue after the run: visible=%d in flight=%d err=%v, want empty", v, f, err)
	}
	st.Report(b, "ReceiveDelete", b.N, []proctest.Figure{
		proctest.Fig(float64(b.N)/elapsed.Seconds(), "msgs/s"),
		proctest.Fig(float64(calls)/float64(b.N), "sqs-calls/msg"),
	}, fmt.Sprintf("bench process receives 10/poll, batch delete; %v", elapsed.Round(time.Millisecond)))
}

// benchBuilds runs a scenario (benchAnalyzer, benchMemory) with the default analyzer build,
// or, with BENCH_ANALYZERS set, once per entry there, in its order, as sub-benchmarks
// build=NAME: builds measured alternately on one stack (-count N would run each build N times
// in a row instead):
//
//	BENCH_ANALYZERS=before=/tmp/analyzer-before,after=/tmp/analyzer-after,before=/tmp/analyzer-before,after=/tmp/analyzer-after \
//	  go test ./bench -run '^$' -bench 'AnalyzerProcess/Analyzer/latency=0s$/build' -benchtime 4000x
func benchBuilds(b *testing.B, name string, run func(b *testing.B, name, build string)) {
	builds, err := proctest.Builds()
	if err != nil {
		b.Fatal(err)
	}
	if len(builds) == 0 {
		run(b, name, "")
		return
	}
	for _, bd := range builds {
		b.Run("build="+bd.Name, func(b *testing.B) { run(b, name+"/build="+bd.Name, bd.Name) })
	}
}

// benchAnalyzer measures the analyzer binary on b.N messages (distinct 64x64 PNGs, the queue
// loaded before the process starts) with the Vision stand-in answering after latency:
// --workers 64, --vision-rate 100000 --vision-burst 1000 (the client limiter does not bound
// it), --visibility-timeout 30s, --log-level warn, plus the scenario's flags. Reports:
//   - msgs/s: (N - n0) / (t1 - t0), where the queue's depth (visible + in flight) is polled
//     every 20 ms, a message counts as done once deleted, t0 is the first poll with at least
//     5% of N done, n0 the count then, t1 the poll that sees the queue empty; start-up and
//     the first messages are thus left out;
//   - cpu-ms/msg: user + system CPU time of the whole analyzer process (start-up, the 20 ms
//     scrapes and the SIGTERM drain included) divided by N;
//   - peak-MB: the process's peak RSS (VmHWM, KiB / 1024);
//   - sqs-calls/msg: imgpipe_analyzer_sqs_calls_total over all ops just after t1, divided by
//     N (the analyzer's /metrics is read once, after the run, so scrapes add no CPU);
//   - for latency > 0, bound-msgs/s = 64 / latency and %-of-bound = msgs/s / bound;
//   - in the log line, how busy the machine's CPUs were during the window (all processes).
//
// It fails if the analyzer failed or dead-lettered any message or does not exit 0.
//
//	go test ./bench -run '^$' -bench 'AnalyzerProcess/Analyzer' -benchtime 2000x
func benchAnalyzer(b *testing.B, name, build string, latency time.Duration, flags []string) {
	if probe(b) {
		return
	}
	st := proctest.Get(b)
	if err := st.SetVisionFaults(proctest.LatencyQuota(latency, 0, 0)); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = st.SetVisionFaults(proctest.LatencyQuota(0, 0, 0)) }()
	st.Seed(b, "bench", b.N, "png", pngs(2_000_000+int64(latency/time.Millisecond)*10_000))
	b.ResetTimer()
	c := unlimited
	c.flags, c.build = flags, build
	r := runAnalyzer(b, st, b.N, c)
	b.StopTimer()
	assertClean(b, st, r)
	n := float64(b.N)
	figs := []proctest.Figure{
		proctest.Fig(r.Throughput, "msgs/s"),
		proctest.Fig(float64(r.cpu.Microseconds())/1000/n, "cpu-ms/msg"),
		proctest.Fig(float64(r.maxRSSKiB)/1024, "peak-MB"),
		proctest.Fig(r.metric("sqs_calls_total")/n, "sqs-calls/msg"),
	}
	if latency > 0 {
		bound := float64(unlimited.workers) / latency.Seconds()
		figs = append(figs, proctest.Fig(bound, "bound-msgs/s"), proctest.Fig(r.Throughput/bound*100, "%-of-bound"))
	}
	note := fmt.Sprintf("64 workers, Vision latency %v %s; window %v of %v; machine CPU busy %.0f%%", latency, strings.Join(flags, " "),
		r.Window.Round(time.Millisecond), r.FromStart.Round(time.Millisecond), r.MachineBusy*100)
	b.Logf("N=%d %s; cpu %v; peak RSS %d KiB; succeeded %v; receive errors %v", b.N, note, r.cpu, r.maxRSSKiB,
		r.metric("messages_succeeded_total"), r.metric("receive_errors_total"))
	st.Report(b, name, b.N, figs, note)
}

// benchTracing measures what traces cost the analyzer: four runs of b.N messages each (as in
// benchAnalyzer, Vision latency 0), alternated off, on, off, on. Off is the default (no OTEL_*
// variable); on exports every span over OTLP/gRPC to a receiver in the benchmark process
// (otlptest: its CPU is not the analyzer's), the uploader's context in every object's
// metadata, so each message continues a trace as in production. Reports the analyzer's
// cpu-ms/msg off and on (mean of two runs each), on/off (the cost on, as a ratio) and
// off2/off1 (the two off runs' ratio: the noise floor the off cost must be measured against),
// and msgs/s off and on. It fails unless the on runs exported an analyzer.message span per
// message continuing its object's trace, and the off runs none.
//
//	go test ./bench -run '^$' -bench 'AnalyzerProcess/Tracing' -benchtime 2000x
func benchTracing(b *testing.B) {
	if probe(b) {
		return
	}
	st := proctest.Get(b)
	if err := st.SetVisionFaults(proctest.LatencyQuota(0, 0, 0)); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	recv, err := otlprecv.New()
	if err != nil {
		b.Fatal(err)
	}
	defer recv.Close()
	on := []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://" + recv.GRPCAddr, "OTEL_EXPORTER_OTLP_PROTOCOL=grpc"}
	var cpu, rate [2][]float64 // [off, on] per run
	for round := range 4 {
		traced := round % 2
		base := 6_000_000 + int64(round)*100_000
		// The uploader's trace context in each object's metadata, in every round (off ignores it).
		st.SeedMeta(b, "bench", b.N, "png", pngs(base), func(i int) map[string]string {
			return map[string]string{"traceparent": fmt.Sprintf("00-%032x-%016x-01", base+int64(i)+1, base+int64(i)+1)}
		})
		before := len(recv.Where(func(s otlprecv.Span) bool { return s.Name == "analyzer.message" }))
		c := unlimited
		if traced == 1 {
			c.env = on
		}
		b.StartTimer()
		r := runAnalyzer(b, st, b.N, c)
		b.StopTimer()
		assertClean(b, st, r)
		// The process flushed its spans before it exited.
		got := recv.Where(func(s otlprecv.Span) bool {
			return s.Name == "analyzer.message" && s.Attrs["imgpipe.trace_origin"] == "object-metadata"
		})
		if n := len(got) - before; (traced == 1 && n < b.N) || (traced == 0 && n != 0) {
			b.Fatalf("round %d (traced %v): %d analyzer.message spans continuing the object's trace, want %d", round, traced == 1, n, traced*b.N)
		}
		cpu[traced] = append(cpu[traced], float64(r.cpu.Microseconds())/1000/float64(b.N))
		rate[traced] = append(rate[traced], r.Throughput)
		b.Logf("round %d traced=%v: cpu %v (%.3f ms/msg), %.0f msgs/s", round, traced == 1, r.cpu, cpu[traced][len(cpu[traced])-1], r.Throughput)
	}
	mean := func(v []float64) float64 { return (v[0] + v[1]) / 2 }
	figs := []proctest.Figure{
		proctest.Fig(mean(cpu[0]), "off-cpu-ms/msg"),
		proctest.Fig(mean(cpu[1]), "on-cpu-ms/msg"),
		proctest.Fig(mean(cpu[1])/mean(cpu[0]), "on/off"),
		proctest.Fig(cpu[0][1]/cpu[0][0], "off2/off1"),
		proctest.Fig(mean(rate[0]), "off-msgs/s"),
		proctest.Fig(mean(rate[1]), "on-msgs/s"),
	}
	st.Report(b, "Tracing", b.N, figs, "4 runs alternated off, on, off, on; on: OTLP/gRPC to a receiver in the bench process, every message traced; 64 workers, Vision latency 0")
}

// benchMemory measures the analyzer's peak memory on large images: 128 objects (b.N is
// ignored) that are each an uncompressed 2560x1960 BMP of about 15 MB
// (samples.Image(seed, 2560, 1960, "bmp"), a different seed per object), 64 workers, Vision
// latency 100 ms, the default --mode stream (the analyzer streams the bytes from S3 to
// Vision). Reports peak-MB (VmHWM), cpu-ms/image (whole process / 128), images/s
// (measured as msgs/s in benchAnalyzer) and the image size. The analyzer makes a thumbnail
// of every image (the default --thumbnail-prefix: every one must be written), with the
// default one decode at once or two (thumbnail-decodes=2), and the thumbnails=off scenario
// runs it without (--thumbnail-prefix ""), for the ratio.
//
//	go test ./bench -run '^$' -bench 'AnalyzerProcess/Memory15MB' -benchtime 2000x
func benchMemory(b *testing.B, name, build string, flags []string) {
	if probe(b) {
		return
	}
	const m = 128
	st := proctest.Get(b)
	first, err := samples.Image(3_000_000, 2560, 1960, "bmp")
	if err != nil {
		b.Fatal(err)
	}
	if len(first) < 14_000_000 || len(first) > 20_000_000 {
		b.Fatalf("2560x1960 BMP is %d bytes, want about 15 MB and under Vision's 20 MB", len(first))
	}
	if err := st.SetVisionFaults(proctest.LatencyQuota(100*time.Millisecond, 0, 0)); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = st.SetVisionFaults(proctest.LatencyQuota(0, 0, 0)) }()
	genStart := time.Now()
	st.Seed(b, "bench", m, "bmp", func(i int) ([]byte, error) {
		if i == 0 {
			return first, nil
		}
		return samples.Image(3_000_000+int64(i), 2560, 1960, "bmp")
	})
	b.Logf("generated and put %d BMPs of %d bytes in %v", m, len(first), time.Since(genStart).Round(time.Millisecond))
	b.ResetTimer()
	c := unlimited
	c.flags, c.build = flags, build
	r := runAnalyzer(b, st, m, c)
	b.StopTimer()
	assertClean(b, st, r)
	thumbs := r.metric("thumbnails_total")
	want := float64(m)
	if slices.Contains(flags, "--thumbnail-prefix") {
		want = 0
	}
	if thumbs != want {
		b.Fatalf("%v thumbnail steps (metrics %v), want %v", thumbs, r.metrics, want)
	}
	figs := []proctest.Figure{
		proctest.Fig(float64(r.maxRSSKiB)/1024, "peak-MB"),
		proctest.Fig(float64(r.cpu.Microseconds())/1000/m, "cpu-ms/image"),
		proctest.Fig(r.Throughput, "images/s"),
		proctest.Fig(float64(len(first))/1e6, "image-MB"),
	}
	note := fmt.Sprintf("%d distinct BMPs 2560x1960, 64 workers, Vision latency 100ms, --mode stream, %v thumbnails; window %v of %v",
		m, thumbs, r.Window.Round(time.Millisecond), r.FromStart.Round(time.Millisecond))
	b.Logf("%s; cpu %v; peak RSS %d KiB", note, r.cpu, r.maxRSSKiB)
	st.Report(b, name, m, figs, note)
}

// benchQuota measures the analyzer against a Vision quota: the stand-in answers 429 beyond
// 20 calls/s (burst 20) and after 50 ms otherwise; the analyzer runs with --workers 64
// --vision-rate 20 --vision-burst 20 (its adaptive rate's ceiling; it starts at a sixteenth
// of it) on 600 messages (b.N is ignored). Reports analyses/s from 20 s after the start (past
// the slow start) to 95% done (the last messages are too few to use the quota),
// %-of-quota (analyses/s / 20), %-429 (share of the Vision calls of the whole run answered
// 429, from the stand-in's /admin/stats), run-analyses/s (600 / process start to the last
// success, slow start and tail included) and cpu-ms/msg.
//
//	go test ./bench -run '^$' -bench 'AnalyzerProcess/Quota' -benchtime 2000x
func benchQuota(b *testing.B) {
	if probe(b) {
		return
	}
	const n = 600
	st := proctest.Get(b)
	if err := st.SetVisionFaults(proctest.LatencyQuota(50*time.Millisecond, 20, 20)); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = st.SetVisionFaults(proctest.LatencyQuota(0, 0, 0)) }()
	st.Seed(b, "bench", n, "png", pngs(4_000_000))
	s0, err := st.VisionStats()
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	r := runAnalyzer(b, st, n, analyzerConfig{workers: 64, visionRate: 20, visionBurst: 20, windowFrom: 20 * time.Second, windowTo: 0.95})
	b.StopTimer()
	s1, err := st.VisionStats()
	if err != nil {
		b.Fatal(err)
	}
	assertClean(b, st, r)
	calls, throttled := s1.Calls-s0.Calls, s1.Throttled-s0.Throttled
	if calls < n {
		b.Fatalf("the Vision stand-in counted %d calls for %d messages", calls, n)
	}
	figs := []proctest.Figure{
		proctest.Fig(r.Throughput, "analyses/s"),
		proctest.Fig(r.Throughput/20*100, "%-of-quota"),
		proctest.Fig(float64(throttled)/float64(calls)*100, "%-429"),
		proctest.Fig(n/r.FromStart.Seconds(), "run-analyses/s"),
		proctest.Fig(float64(r.cpu.Microseconds())/1000/n, "cpu-ms/msg"),
	}
	note := fmt.Sprintf("quota 20/s burst 20, latency 50ms, client 20/s burst 20; %d Vision calls, %d answered 429; window %v of %v",
		calls, throttled, r.Window.Round(time.Millisecond), r.FromStart.Round(time.Millisecond))
	b.Logf("%s", note)
	st.Report(b, "Quota", n, figs, note)
}

// TestAnalyzerProcess runs the analyzer binary through the benchmark's harness on 40 small
// PNGs with no Vision latency and checks what the process and its metrics report. Outside
// CI it is skipped when a stand-in's prerequisite (node, Java, the Pub/Sub emulator) is
// missing; with CI=true that is a failure.
//
//	go test ./bench -run TestAnalyzerProcess -count=1 -v
func TestAnalyzerProcess(t *testing.T) {
	const n = 40
	st := proctest.Get(t)
	if err := st.SetVisionFaults(proctest.LatencyQuota(0, 0, 0)); err != nil {
		t.Fatal(err)
	}
	st.Seed(t, "bench", n, "png", pngs(5_000_000))
	c := unlimited
	c.flags = []string{"--wait-time", "2s"} // a short last long poll: the test stops quickly
	r := runAnalyzer(t, st, n, c)
	if got := r.metric("messages_succeeded_total"); got != n {
		t.Errorf("succeeded = %v, want %d", got, n)
	}
	if got := r.metric("messages_failed_total"); got != 0 {
		t.Errorf("failed = %v, want 0", got)
	}
	if got := r.metric("messages_dead_lettered_total"); got != 0 {
		t.Errorf("dead-lettered = %v, want 0", got)
	}
	if r.exitCode != 0 {
		t.Errorf("exit code %d, want 0", r.exitCode)
	}
	if r.cpu <= 0 {
		t.Errorf("CPU time %v, want > 0", r.cpu)
	}
	if r.maxRSSKiB <= 0 {
		t.Errorf("peak RSS %d KiB, want > 0", r.maxRSSKiB)
	}
	if v, f, err := st.QueueDepth(context.Background()); err != nil || v+f != 0 {
		t.Errorf("queue after the run: visible=%d in flight=%d err=%v, want empty", v, f, err)
	}
	t.Logf("%d messages: %.1f msgs/s, cpu %v, peak RSS %d KiB, sqs calls %v", n, r.Throughput, r.cpu, r.maxRSSKiB, r.metric("sqs_calls_total"))
}
