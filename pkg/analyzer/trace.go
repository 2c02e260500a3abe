package analyzer

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"imgpipe/pkg/objects"
	"imgpipe/pkg/queue"
	"imgpipe/pkg/s3event"
	"imgpipe/pkg/tracing"
)

// Traces: a message's work is one span, analyzer.message, in the trace of the image it is
// about. Its parent is, in this order: the trace context a producer put in the SQS message's
// attributes (traceparent: a replayed message, or any producer that sets it; S3
// notifications never do), the one the uploader put in the object's metadata (read in the
// first ranged GET), or none: a new trace (browser uploads, objects from other tools). Since the
// object's metadata comes with the first read, the span begins when that read returns, with
// the message's start as its start time, and the read is recorded under it as s3.read_head.
// With tracing off none of this runs: begin only returns the work context.

const tracerName = "imgpipe/pkg/analyzer"

// msgTrace is one message's span, begun once its parent is known.
type msgTrace struct {
	start     time.Time
	parent    context.Context // the work context, with the SQS attributes' trace context if any
	fromAttrs bool
	m         *queue.Message
	ctx       context.Context // the parent with the span, once begun
	span      trace.Span
}

func newMsgTrace(work context.Context, m *queue.Message) *msgTrace {
	t := &msgTrace{parent: work, m: m}
	if tracing.Enabled() {
		t.start = time.Now()
		t.parent, t.fromAttrs = tracing.Extract(work, m.StringAttributes())
	}
	return t
}

// begin starts the message's span (once) under the SQS attributes' trace context, else under
// the one in meta (an object's metadata; nil: none), else as a new trace's root, and returns
// the context the message's work continues with.
func (t *msgTrace) begin(meta map[string]string) context.Context {
	if t.ctx != nil {
		return t.ctx
	}
	if !tracing.Enabled() {
		t.ctx, t.span = t.parent, trace.SpanFromContext(t.parent)
		return t.ctx
	}
	parent, origin := t.parent, "sqs-attributes"
	if !t.fromAttrs {
		origin = "new"
		if p, ok := tracing.Extract(t.parent, meta); ok {
			parent, origin = p, "object-metadata"
		}
	}
	t.ctx, t.span = tracing.Tracer(tracerName).Start(parent, "analyzer.message",
		trace.WithSpanKind(trace.SpanKindConsumer), trace.WithTimestamp(t.start),
		trace.WithAttributes(attribute.String("messaging.system", "aws_sqs"),
			attribute.String("messaging.message.id", t.m.ID),
			attribute.Int("imgpipe.receive_count", t.m.ReceiveCount),
			attribute.String("imgpipe.trace_origin", origin)))
	if !t.m.SentAt.IsZero() {
		t.span.SetAttributes(attribute.String("imgpipe.sqs.sent_at", t.m.SentAt.UTC().Format(time.RFC3339Nano)))
	}
	return t.ctx
}

// end ends the message's span with its verdict: an error status for a failure that was not
// cut off by shutdown.
func (t *msgTrace) end(err error, act action) {
	t.begin(nil)
	if !t.span.IsRecording() {
		return
	}
	t.span.SetAttributes(attribute.String("imgpipe.verdict", act.String()))
	if err != nil && act != actRelease {
		tracing.End(t.span, err)
		return
	}
	if act == actDefer {
		t.span.SetStatus(codes.Error, "deferred")
	}
	t.span.End()
}

// readHeadTraced is readHead recorded as the span s3.read_head under the message's span; with
// adopt, the object's metadata may give that span its parent (begin).
func (a *Analyzer) readHeadTraced(ctx context.Context, tr *msgTrace, rec *s3event.Record, adopt bool) (*objects.Head, error) {
	if !tracing.Enabled() {
		return a.readHead(ctx, rec)
	}
	if !adopt {
		ctx = tr.begin(nil)
	}
	start := time.Now()
	h, err := a.readHead(ctx, rec)
	var meta map[string]string
	if h != nil && adopt {
		meta = h.Metadata
	}
	_, span := tracing.Tracer(tracerName).Start(tr.begin(meta), "s3.read_head", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithTimestamp(start), trace.WithAttributes(attribute.String("aws.s3.bucket", rec.Bucket),
			attribute.String("aws.s3.key", rec.Key), attribute.String("imgpipe.version_id", rec.VersionID),
			attribute.String("imgpipe.s3.event_time", rec.EventTime.UTC().Format(time.RFC3339Nano))))
	spanErr := err
	if errors.Is(err, objects.ErrNotFound) || errors.Is(err, objects.ErrEmpty) {
		span.SetAttributes(attribute.String("imgpipe.answer", err.Error()))
		spanErr = nil // an answer about the object, not a failure
	}
	tracing.End(span, spanErr)
	return h, err
}
