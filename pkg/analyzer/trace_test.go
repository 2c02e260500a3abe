package analyzer

import (
	"context"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"imgpipe/pkg/failure"
	"imgpipe/pkg/objects/memobjects"
	"imgpipe/pkg/queue"
	"imgpipe/pkg/queue/memqueue"
	"imgpipe/pkg/s3event"
	"imgpipe/pkg/samples"
	"imgpipe/pkg/tracing"
	"imgpipe/pkg/tracing/tracingtest"
)

// recordSpans turns tracing on with an in-memory span recorder for the test.
func recordSpans(t *testing.T) (*tracetest.SpanRecorder, trace.Tracer) {
	rec, tp := tracingtest.Record(t, nil)
	return rec, tp.Tracer("test")
}

// remote returns the W3C carrier of a new span of tracer, ended, and its context.
func remote(tracer trace.Tracer) (map[string]string, trace.SpanContext) {
	ctx, span := tracer.Start(context.Background(), "producer")
	span.End()
	m := map[string]string{}
	tracing.Inject(ctx, m)
	return m, span.SpanContext()
}

func spansNamed(rec *tracetest.SpanRecorder, name string, trace trace.TraceID) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.Name() == name && s.SpanContext().TraceID() == trace {
			out = append(out, s)
		}
	}
	return out
}

// TestCoreTraceParents: the message's span continues the producer's context from the SQS
// attributes when there is one, else the uploader's from the object's metadata, else starts
// a trace; the first read is its child, and a dead-lettered message's span fails, with the
// DLQ send its child and the send's context in the DLQ message's attributes.
func TestCoreTraceParents(t *testing.T) {
	rec, tracer := recordSpans(t)
	c := newCore(t)
	c.start(coreOptions(), nil)

	// The object's metadata.
	meta, upload := remote(tracer)
	c.image("upload/plain.png", 1) // an object without a trace context: a new trace
	body, err := samples.Image(2, 80, 60, "png")
	if err != nil {
		t.Fatal(err)
	}
	_, etag := c.store.PutMeta(bucket, "upload/meta.png", body, meta)
	r := s3event.NewRecord("ObjectCreated:Put", bucket, "upload/meta.png", time.Now())
	r.ETag, r.Size = etag, int64(len(body))
	c.event(r)

	// The SQS attributes win over the metadata.
	attrs, producer := remote(tracer)
	_, etag = c.store.PutMeta(bucket, "upload/attrs.png", body, meta)
	r = s3event.NewRecord("ObjectCreated:Put", bucket, "upload/attrs.png", time.Now())
	r.ETag, r.Size = etag, int64(len(body))
	ev, err := s3event.MarshalEvent([]s3event.Record{r})
	if err != nil {
		t.Fatal(err)
	}
	qa := map[string]queue.Attr{}
	for k, v := range attrs {
		qa[k] = queue.StringAttr(v)
	}
	if errs := c.q.Send(context.Background(), []*queue.Message{{Body: ev, Attributes: qa}}); errs[0] != nil {
		t.Fatal(errs[0])
	}

	// A non-image with the uploader's context: dead-lettered.
	poisonMeta, poisonUpload := remote(tracer)
	_, etag = c.store.PutMeta(bucket, "upload/notes.png", []byte("plain text, not an image"), poisonMeta)
	r = s3event.NewRecord("ObjectCreated:Put", bucket, "upload/notes.png", time.Now())
	r.ETag, r.Size = etag, 24
	c.event(r)

	// Three images and the non-image's removal of its key (docs/analyzer.md, "Content that
	// can never be indexed").
	c.waitFor("four published, one dead-lettered", func() (bool, string) {
		return c.pub.count() == 4 && len(c.dlq.Messages()) == 1, "waiting"
	})
	c.waitEmpty()

	messageOf := func(tid trace.TraceID) sdktrace.ReadOnlySpan {
		t.Helper()
		var got sdktrace.ReadOnlySpan
		c.waitFor("the analyzer.message span of trace "+tid.String(), func() (bool, string) {
			ms := spansNamed(rec, "analyzer.message", tid)
			if len(ms) == 1 {
				got = ms[0]
			}
			return len(ms) == 1, "not ended yet"
		})
		return got
	}
	origin := func(s sdktrace.ReadOnlySpan) string {
		for _, kv := range s.Attributes() {
			if kv.Key == "imgpipe.trace_origin" {
				return kv.Value.AsString()
			}
		}
		return ""
	}
	childOf := func(name string, parent sdktrace.ReadOnlySpan) sdktrace.ReadOnlySpan {
		t.Helper()
		ks := spansNamed(rec, name, parent.SpanContext().TraceID())
		if len(ks) != 1 || ks[0].Parent().SpanID() != parent.SpanContext().SpanID() {
			t.Fatalf("want one %s under %s, got %d", name, parent.Name(), len(ks))
		}
		if ks[0].StartTime().Before(parent.StartTime()) || ks[0].EndTime().After(parent.EndTime()) {
			t.Errorf("%s [%v, %v] not within its parent [%v, %v]", name, ks[0].StartTime(), ks[0].EndTime(), parent.StartTime(), parent.EndTime())
		}
		return ks[0]
	}

	m := messageOf(upload.TraceID())
	if m.Parent().SpanID() != upload.SpanID() || origin(m) != "object-metadata" || m.Status().Code == codes.Error {
		t.Errorf("metadata: parent %v origin %q status %v; want the upload's span, object-metadata, ok", m.Parent().SpanID(), origin(m), m.Status())
	}
	childOf("s3.read_head", m)

	m = messageOf(producer.TraceID())
	if m.Parent().SpanID() != producer.SpanID() || origin(m) != "sqs-attributes" {
		t.Errorf("attributes: parent %v origin %q; want the producer's span, sqs-attributes", m.Parent().SpanID(), origin(m))
	}
	childOf("s3.read_head", m)

	m = messageOf(poisonUpload.TraceID())
	if m.Parent().SpanID() != poisonUpload.SpanID() || m.Status().Code != codes.Error {
		t.Errorf("dead-lettered: parent %v status %v; want the upload's span and an error", m.Parent().SpanID(), m.Status())
	}
	send := childOf("sqs.dead_letter", m)
	dl := c.dlq.Messages()[0].StringAttributes()
	if want := "00-" + send.SpanContext().TraceID().String() + "-" + send.SpanContext().SpanID().String() + "-01"; dl[tracing.KeyTraceparent] != want {
		t.Errorf("DLQ message traceparent %q, want the send's %q", dl[tracing.KeyTraceparent], want)
	}

	// The untraced image started a trace of its own: a root span.
	var roots int
	for _, s := range rec.Ended() {
		if s.Name() == "analyzer.message" && !s.Parent().IsValid() && origin(s) == "new" {
			roots++
		}
	}
	if roots != 1 {
		t.Errorf("%d new traces started, want 1 (the object without context)", roots)
	}
}

// TestCoreDeadLetterFitsTheQueue: a replayed message (failure details, replay count and time)
// that carries a trace context with tracestate and baggage is dead-lettered again within SQS's
// 10 attributes: the baggage and tracestate give way (queue.Trim), the traceparent and the
// failure details stay.
func TestCoreDeadLetterFitsTheQueue(t *testing.T) {
	_, tracer := recordSpans(t)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	c := newCore(t)
	c.start(coreOptions(), nil)

	member, err := baggage.NewMember("tenant", "a")
	if err != nil {
		t.Fatal(err)
	}
	bag, err := baggage.New(member)
	if err != nil {
		t.Fatal(err)
	}
	state, err := trace.ParseTraceState("vendor=x")
	if err != nil {
		t.Fatal(err)
	}
	ctx, span := tracer.Start(baggage.ContextWithBaggage(context.Background(), bag), "producer")
	span.End()
	ctx = trace.ContextWithSpanContext(ctx, span.SpanContext().WithTraceState(state))
	carrier := map[string]string{}
	tracing.Inject(ctx, carrier)
	d := failure.Details{Reason: "NotAnImage", Class: failure.Permanent, Error: "not an image", Attempts: 1,
		FirstFailure: time.Now().Add(-time.Hour), LastFailure: time.Now().Add(-time.Minute), SourceQueue: "q", ReplayCount: 1}
	attrs := map[string]queue.Attr{failure.AttrReplayedAt: queue.StringAttr(time.Now().UTC().Format(time.RFC3339Nano))}
	for k, v := range d.Attributes() {
		attrs[k] = queue.StringAttr(v)
	}
	for k, v := range carrier {
		attrs[k] = queue.StringAttr(v)
	}
	if len(attrs) <= queue.MaxAttributes || attrs["baggage"].String == "" || attrs["tracestate"].String == "" {
		t.Fatalf("the replayed message has %d attributes %v; want more than %d, baggage and tracestate among them", len(attrs), attrs, queue.MaxAttributes)
	}

	_, etag := c.store.PutMeta(bucket, "upload/notes.png", []byte("plain text, not an image"), nil)
	r := s3event.NewRecord("ObjectCreated:Put", bucket, "upload/notes.png", time.Now())
	r.ETag, r.Size = etag, 24
	ev, err := s3event.MarshalEvent([]s3event.Record{r})
	if err != nil {
		t.Fatal(err)
	}
	if errs := c.q.Send(context.Background(), []*queue.Message{{Body: ev, Attributes: attrs}}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	c.waitFor("the message dead-lettered", func() (bool, string) { return len(c.dlq.Messages()) == 1, "waiting" })
	got := c.dlq.Messages()[0].StringAttributes()
	if len(got) > queue.MaxAttributes {
		t.Errorf("the dead letter has %d attributes, more than SQS takes: %v", len(got), got)
	}
	for _, k := range []string{tracing.KeyTraceparent, failure.AttrReason, failure.AttrReplayCount, failure.AttrReplayedAt, failure.AttrError} {
		if got[k] == "" {
			t.Errorf("the dead letter lost %s: %v", k, got)
		}
	}
	if _, ok := got["baggage"]; ok {
		t.Errorf("baggage kept over the limit: %v", got)
	}
}

// BenchmarkTraceHooks measures what the tracing code adds to one message's path, in process
// and on the in-memory drivers: the first read of a 64x64 PNG with the uploader's context in
// its metadata, and the message logger. "none" is that path without any tracing code (the
// read and the logger alone); "off" is the analyzer's path with tracing off (the default); "on"
// records every span (the SDK with a batch processor and an exporter that drops them).
// Compare off with none: the difference is the off cost per message.
//
//	go test ./pkg/analyzer -run '^$' -bench TraceHooks -benchmem
func BenchmarkTraceHooks(b *testing.B) {
	store := memobjects.New()
	body, err := samples.Image(1, 64, 64, "png")
	if err != nil {
		b.Fatal(err)
	}
	meta := map[string]string{tracing.KeyTraceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
	_, etag := store.PutMeta(bucket, "upload/b.png", body, meta)
	a, err := New(Deps{Queue: memqueue.New("q", nil), DLQ: memqueue.New("dlq", nil), Objects: store, Vision: &fakeVision{store: store},
		Publisher: &memPublisher{}}, &Options{Logger: zap.NewNop()})
	if err != nil {
		b.Fatal(err)
	}
	rec := s3event.NewRecord("ObjectCreated:Put", bucket, "upload/b.png", time.Now())
	rec.ETag = etag
	m := &queue.Message{ID: "m1", ReceiveCount: 1}
	ctx := context.Background()
	b.Run("none", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := a.readHead(ctx, &rec); err != nil {
				b.Fatal(err)
			}
			_ = a.log.With(zap.String("sqs_message_id", m.ID))
		}
	})
	hooks := func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			tr := newMsgTrace(ctx, m)
			if _, err := a.readHeadTraced(ctx, tr, &rec, true); err != nil {
				b.Fatal(err)
			}
			_ = tracing.Logger(tr.begin(nil), a.log.With(zap.String("sqs_message_id", m.ID)))
			tr.end(nil, actDelete)
		}
	}
	b.Run("off", hooks)
	b.Run("on", func(b *testing.B) {
		tracingtest.Record(b, sdktrace.NewBatchSpanProcessor(tracetest.NewNoopExporter()))
		hooks(b)
	})
}
