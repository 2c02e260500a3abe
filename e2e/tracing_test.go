package e2e_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"imgpipe/internal/devstack"
	"imgpipe/internal/otlprecv"
	"imgpipe/internal/stacktest"
	"imgpipe/pkg/s3event"
	"imgpipe/pkg/samples"
)

// TestTracesAcrossTheClouds: the real uploader, analyzer and indexer binaries on the local
// stack export their spans to a real OTLP receiver (otlpReceiver: the uploader over
// http/protobuf, the others over gRPC), configured by the OTEL_* variables alone. For a good
// image, one Vision fails until the test lets it answer (retried) and a file that is not an
// image (dead-lettered), one trace ID spans every part with the right parent links, and the
// binaries' log lines about the image carry that trace's ID.
func TestTracesAcrossTheClouds(t *testing.T) {
	st := stacktest.Get(t)
	res := stacktest.Bootstrap(t, st, devstack.Resources{VisibilityTimeout: 10 * time.Second, MaxReceiveCount: 20})
	setVisionFaults(t, st, `{}`)
	t.Cleanup(func() { setVisionFaults(t, st, `{}`) })
	recv, err := otlprecv.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(recv.Close)

	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", bin, "./cmd/uploader", "./cmd/analyzer", "./cmd/indexer", "./dlq-replay")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	env := append(stacktest.ChildEnv(st.Env(res)), "IMGPIPE_METRICS_ADDR=127.0.0.1:0", "IMGPIPE_LOG_LEVEL=info",
		"OTEL_BSP_SCHEDULE_DELAY=100")
	grpcEnv := append(env[:len(env):len(env)], "OTEL_EXPORTER_OTLP_PROTOCOL=grpc", "OTEL_EXPORTER_OTLP_ENDPOINT=http://"+recv.GRPCAddr)
	analyzer := startBinary(t, filepath.Join(bin, "analyzer"), grpcEnv,
		"--workers", "2", "--wait-time", "1s", "--visibility-timeout", "10s", "--vision-retries", "1",
		"--breaker-failures", "20", "--drain-timeout", "10s")
	indexer := startBinary(t, filepath.Join(bin, "indexer"), grpcEnv, "run")
	analyzer.metricsAddr(t)
	indexer.metricsAddr(t)

	dir := t.TempDir()
	// upload runs the uploader binary on one file and returns its trace ID and object key, read
	// from its uploader.upload span; the uploader's log line about the file carries the ID.
	upload := func(name string, body []byte, args ...string) (traceID, key string) {
		t.Helper()
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, body, 0o644); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, filepath.Join(bin, "uploader"), append(append([]string{"put", "--quiet"}, args...), path)...)
		cmd.Env = append(env[:len(env):len(env)], "OTEL_TRACES_EXPORTER=otlp", "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
			"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://"+recv.HTTPAddr+"/v1/traces")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if out, err := cmd.Output(); err != nil {
			t.Fatalf("uploader put %s: %v\n%s\n%s", name, err, out, stderr.String())
		}
		// The uploader flushes its spans before it exits.
		ups := recv.Where(func(s otlprecv.Span) bool { return s.Name == "uploader.upload" && s.Attrs["imgpipe.path"] == path })
		if len(ups) != 1 || ups[0].Service != "imgpipe-uploader" || ups[0].Parent != "" || ups[0].Attrs["imgpipe.status"] != "uploaded" {
			t.Fatalf("want one root uploader.upload span of imgpipe-uploader for %s, got %+v", path, ups)
		}
		traceID, key = ups[0].TraceID, ups[0].Attrs["imgpipe.key"]
		checkLogTrace(t, "uploader", stderr.Bytes(), traceID, 1, key)
		return traceID, key
	}
	waitSpan := func(what, traceID string, ok func([]otlprecv.Span) bool) []otlprecv.Span {
		t.Helper()
		var spans []otlprecv.Span
		stacktest.WaitFor(t, what, 2*time.Minute, func() (bool, string) {
			spans = recv.Trace(traceID)
			return ok(spans), otlprecv.Describe(spans)
		})
		return spans
	}
	// verdicts counts a trace's analyzer.message spans with verdict v.
	verdicts := func(spans []otlprecv.Span, v string) int {
		n := 0
		for _, s := range otlprecv.Named(spans, "analyzer.message") {
			if s.Attrs["imgpipe.verdict"] == v {
				n++
			}
		}
		return n
	}
	// Each binary exports on its own schedule (the indexer may send its spans before the
	// analyzer has settled the message): wait for every part of an indexed image's trace.
	firestoreCommitted := func(spans []otlprecv.Span) bool {
		return verdicts(spans, "delete") > 0 && len(otlprecv.Named(spans, "pubsub.publish")) > 0 &&
			len(otlprecv.Named(spans, "cloud.google.com/go/firestore.Client.RunTransaction")) > 0 && len(otlprecv.Named(spans, "indexer.message")) > 0
	}

	t.Run("good", func(t *testing.T) {
		img, err := samples.Image(9101, 160, 120, "png")
		if err != nil {
			t.Fatal(err)
		}
		id, key := upload("good.png", img)
		spans := waitSpan("the good image's trace down to Firestore", id, firestoreCommitted)
		ms := otlprecv.Named(spans, "analyzer.message")
		if len(ms) != 1 || ms[0].Attrs["imgpipe.verdict"] != "delete" || ms[0].Attrs["imgpipe.trace_origin"] != "object-metadata" || ms[0].Error {
			t.Fatalf("want one successful analyzer.message continued from the object's metadata:%s", otlprecv.Describe(spans))
		}
		checkIndexedTree(t, spans)
		checkLogTrace(t, "analyzer", readFile(t, analyzer.log), id, 1, append(messageIDs(spans), key)...)
		checkLogTrace(t, "indexer", readFile(t, indexer.log), id, 1, key)
	})

	t.Run("retried", func(t *testing.T) {
		// Every Vision call fails (500/503) until the first delivery has been retried; then
		// Vision answers and the redelivery is indexed, in the same trace.
		setVisionFaults(t, st, `{"transient":{"rate":1}}`)
		img, err := samples.Image(9102, 160, 120, "png")
		if err != nil {
			t.Fatal(err)
		}
		id, key := upload("retried.png", img)
		waitSpan("the first delivery retried", id, func(spans []otlprecv.Span) bool { return verdicts(spans, "retry") > 0 })
		setVisionFaults(t, st, `{}`)
		spans := waitSpan("the retried image's trace down to Firestore", id, firestoreCommitted)
		ms := otlprecv.Named(spans, "analyzer.message")
		if len(ms) < 2 || ms[0].Attrs["imgpipe.verdict"] != "retry" || !ms[0].Error || ms[len(ms)-1].Attrs["imgpipe.verdict"] != "delete" {
			t.Fatalf("want a retried analyzer.message, then a successful one:%s", otlprecv.Describe(spans))
		}
		if ms[len(ms)-1].Attrs["imgpipe.receive_count"] == "1" {
			t.Fatalf("the successful delivery has receive count 1:%s", otlprecv.Describe(spans))
		}
		// The first delivery's Vision call retried once inside the call (--vision-retries 1),
		// an event with the retry's number, status and wait, and failed.
		var first *otlprecv.Span
		for i, v := range otlprecv.Named(spans, "vision.analyze") {
			if v.Parent == ms[0].SpanID {
				first = &otlprecv.Named(spans, "vision.analyze")[i]
			}
		}
		if first == nil || !first.Error {
			t.Fatalf("no failed vision.analyze under the first delivery:%s", otlprecv.Describe(spans))
		}
		retries := 0
		for _, e := range first.Events {
			if e.Name == "vision.retry" {
				retries++
				if e.Attrs["imgpipe.retry"] != "1" || e.Attrs["imgpipe.wait_ms"] == "" || !strings.HasPrefix(e.Attrs["http.response.status_code"], "5") {
					t.Errorf("vision.retry event %v: want retry 1 with its 5xx status and wait", e.Attrs)
				}
			}
		}
		if retries != 1 {
			t.Errorf("first delivery's Vision call has %d vision.retry events, want 1: %+v", retries, first.Events)
		}
		if !hasEvent(ms[0], "retry") {
			t.Errorf("the retried analyzer.message has no retry event: %+v", ms[0].Events)
		}
		checkIndexedTree(t, spans)
		checkLogTrace(t, "analyzer", readFile(t, analyzer.log), id, 2, append(messageIDs(spans), key)...)
		checkLogTrace(t, "indexer", readFile(t, indexer.log), id, 1, key)
	})

	t.Run("dead-lettered", func(t *testing.T) {
		id, key := upload("notes.txt", []byte("not an image at all\n"), "--include-non-images")
		spans := waitSpan("the dead-letter send", id, func(spans []otlprecv.Span) bool {
			return len(otlprecv.Named(spans, "sqs.dead_letter")) > 0 && verdicts(spans, "dead-letter") > 0
		})
		ms := otlprecv.Named(spans, "analyzer.message")
		up := otlprecv.Named(spans, "uploader.upload")
		if len(ms) != 1 || !ms[0].Error || ms[0].Attrs["imgpipe.verdict"] != "dead-letter" || ms[0].Parent != up[0].SpanID ||
			ms[0].Attrs["imgpipe.failure.reason"] != "NotAnImage" {
			t.Fatalf("want one failed analyzer.message (NotAnImage, dead-letter) under the upload:%s", otlprecv.Describe(spans))
		}
		expectChild(t, spans, "s3.read_head", "analyzer.message", "imgpipe-analyzer")
		expectChild(t, spans, "sqs.dead_letter", "analyzer.message", "imgpipe-analyzer")
		if n := len(otlprecv.Named(spans, "vision.analyze")); n != 0 {
			t.Fatalf("a non-image reached Vision:%s", otlprecv.Describe(spans))
		}
		// What reaches the indexer is the key's removal (docs/analyzer.md, "Content that can
		// never be indexed"), never a document.
		for _, s := range otlprecv.Named(spans, "indexer.message") {
			if s.Attrs["imgpipe.outcome"] == "written" {
				t.Fatalf("a non-image was written to the index:%s", otlprecv.Describe(spans))
			}
		}
		// dlq-replay moves it back to the queue with its attributes: the analyzer continues the
		// trace from the message's traceparent (the DLQ send's span), and dead-letters it again.
		first := otlprecv.Named(spans, "sqs.dead_letter")[0]
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		replay := exec.CommandContext(ctx, filepath.Join(bin, "dlq-replay"), "replay", "--source", "sqs")
		replay.Env = env
		if out, err := replay.CombinedOutput(); err != nil {
			t.Fatalf("dlq-replay replay: %v\n%s", err, out)
		}
		spans = waitSpan("the replayed message dead-lettered again", id, func(spans []otlprecv.Span) bool {
			return len(otlprecv.Named(spans, "sqs.dead_letter")) == 2 && verdicts(spans, "dead-letter") == 2
		})
		ms = otlprecv.Named(spans, "analyzer.message")
		if len(ms) != 2 || ms[1].Parent != first.SpanID || ms[1].Attrs["imgpipe.trace_origin"] != "sqs-attributes" || ms[1].Attrs["imgpipe.verdict"] != "dead-letter" {
			t.Fatalf("want the replayed delivery under the first DLQ send, continued from the SQS attributes:%s", otlprecv.Describe(spans))
		}
		// The message on the DLQ carries the last dead-letter send's context, for the next
		// replay to continue the trace.
		dl := otlprecv.Named(spans, "sqs.dead_letter")[1]
		var found bool
		for _, d := range stacktest.DrainDLQ(t, st.NewSQSClient(), res.DLQURL) {
			msg, err := s3event.Parse([]byte(d.Body))
			if err != nil {
				t.Fatalf("DLQ body does not parse: %v", err)
			}
			if len(msg.Records) == 1 && msg.Records[0].Key == key {
				found = true
				if want := "00-" + id + "-" + dl.SpanID + "-01"; d.Attributes["traceparent"] != want {
					t.Errorf("DLQ message traceparent %q, want %q", d.Attributes["traceparent"], want)
				}
			}
		}
		if !found {
			t.Fatalf("the dead-lettered message for %s is not on the DLQ", key)
		}
		checkLogTrace(t, "analyzer", readFile(t, analyzer.log), id, 1, append(messageIDs(spans), key)...)
	})
}

// checkIndexedTree checks the parent links of an indexed image's trace: the upload is the
// root; each analyzer.message is its child, with the S3 read, the Vision call and the publish
// under it; the indexer continues under the publish, its write under its message, the batch
// under the write and Firestore's transaction under the batch.
func checkIndexedTree(t *testing.T, spans []otlprecv.Span) {
	t.Helper()
	expectChild(t, spans, "analyzer.message", "uploader.upload", "imgpipe-analyzer")
	expectChild(t, spans, "s3.read_head", "analyzer.message", "imgpipe-analyzer")
	expectChild(t, spans, "vision.analyze", "analyzer.message", "imgpipe-analyzer")
	expectChild(t, spans, "pubsub.publish", "analyzer.message", "imgpipe-analyzer")
	expectChild(t, spans, "indexer.message", "pubsub.publish", "imgpipe-indexer")
	expectChild(t, spans, "indexer.write", "indexer.message", "imgpipe-indexer")
	expectChild(t, spans, "indexstore.batch", "indexer.write", "imgpipe-indexer")
	expectChild(t, spans, "cloud.google.com/go/firestore.Client.RunTransaction", "indexstore.batch", "imgpipe-indexer")
	for _, m := range otlprecv.Named(spans, "indexer.message") {
		if m.Error || m.Attrs["imgpipe.outcome"] != "written" || !hasEvent(m, "ack") {
			t.Errorf("indexer.message %v %+v: want written and acked", m.Attrs, m.Events)
		}
	}
}

// expectChild checks that spans has spans called child, of service, and that each one's parent
// is a span called parent in the same trace.
func expectChild(t *testing.T, spans []otlprecv.Span, child, parent, service string) {
	t.Helper()
	byID := map[string]otlprecv.Span{}
	for _, s := range spans {
		byID[s.SpanID] = s
	}
	kids := otlprecv.Named(spans, child)
	if len(kids) == 0 {
		t.Errorf("no %s span in the trace:%s", child, otlprecv.Describe(spans))
		return
	}
	for _, k := range kids {
		p, ok := byID[k.Parent]
		if !ok || p.Name != parent || k.Service != service {
			t.Errorf("%s (%s) has parent %q (%s), want %s in %s:%s", child, k.Service, p.Name, k.Parent, parent, service, otlprecv.Describe(spans))
		}
	}
}

func hasEvent(s otlprecv.Span, name string) bool {
	for _, e := range s.Events {
		if e.Name == name {
			return true
		}
	}
	return false
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// checkLogTrace checks that at least least of a binary's JSON log lines are about the image
// (they contain one of about: its key, its SQS message IDs), and that every one of them
// carries traceID as trace_id and a span_id.
func checkLogTrace(t *testing.T, who string, logs []byte, traceID string, least int, about ...string) {
	t.Helper()
	n := 0
	sc := bufio.NewScanner(bytes.NewReader(logs))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var line map[string]any
		if json.Unmarshal(sc.Bytes(), &line) != nil || !slices.ContainsFunc(about, func(a string) bool { return strings.Contains(sc.Text(), a) }) {
			continue
		}
		n++
		if line["trace_id"] != traceID || line["span_id"] == nil || line["span_id"] == "" {
			t.Errorf("%s log line about %v without its trace (want trace_id %s): %s", who, about, traceID, sc.Text())
		}
	}
	if n < least {
		t.Errorf("%s: %d log lines about %v, want at least %d", who, n, about, least)
	}
}

// messageIDs are the SQS message IDs of a trace's analyzer.message spans.
func messageIDs(spans []otlprecv.Span) []string {
	var out []string
	for _, s := range otlprecv.Named(spans, "analyzer.message") {
		out = append(out, s.Attrs["messaging.message.id"])
	}
	return out
}
