// Package tracing carries one trace per image across the pipeline's edges: the W3C trace
// context in S3 object metadata (x-amz-meta-traceparent), SQS message attributes and Pub/Sub
// message attributes, the spans' shared helpers, and the trace_id and span_id fields of the
// per-message logs. It imports the OpenTelemetry API only: with no SDK set up (obs.SetupTracing
// off, the default) every tracer is a no-op, the propagator injects and extracts nothing and
// Enabled reports false, so the callers skip even building the carriers.
package tracing

import (
	"context"
	"net/http"
	"sync/atomic"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"imgpipe/pkg/failure"
)

// The carrier keys of the W3C trace context (lower case: S3 returns metadata keys in lower
// case, and Pub/Sub and SQS attribute names are case-sensitive).
const (
	KeyTraceparent = "traceparent"
	KeyTracestate  = "tracestate"
)

var enabled atomic.Bool

// SetEnabled records that a tracer provider and a propagator are installed (obs.SetupTracing).
func SetEnabled(on bool) { enabled.Store(on) }

// Enabled reports whether traces are exported. When false, Inject and Extract do nothing and
// callers need not build a carrier.
func Enabled() bool { return enabled.Load() }

// Tracer returns the named tracer of the global provider (a no-op one unless set up).
func Tracer(name string) trace.Tracer { return otel.Tracer(name) }

// Inject writes ctx's trace context into m (object metadata or message attributes). Nothing
// is written when tracing is off or ctx carries no valid span.
func Inject(ctx context.Context, m map[string]string) {
	if !Enabled() || m == nil {
		return
	}
	otel.GetTextMapPropagator().Inject(ctx, propagation.MapCarrier(m))
}

// InjectHTTP writes ctx's trace context into an outgoing request's headers.
func InjectHTTP(ctx context.Context, h http.Header) {
	if Enabled() {
		otel.GetTextMapPropagator().Inject(ctx, propagation.HeaderCarrier(h))
	}
}

// Extract returns ctx with the remote trace context found in m, and whether there was a
// valid one. A malformed traceparent is ignored (W3C: the receiver starts a new trace).
func Extract(ctx context.Context, m map[string]string) (context.Context, bool) {
	if !Enabled() || len(m) == 0 || m[KeyTraceparent] == "" {
		return ctx, false
	}
	out := otel.GetTextMapPropagator().Extract(ctx, propagation.MapCarrier(m))
	return out, trace.SpanContextFromContext(out).IsValid()
}

// LogFields returns the zap fields trace_id and span_id of ctx's span, or none when it has no
// valid span (tracing off, or not sampled and not propagated).
func LogFields(ctx context.Context) []zap.Field {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return nil
	}
	return []zap.Field{zap.String("trace_id", sc.TraceID().String()), zap.String("span_id", sc.SpanID().String())}
}

// Logger returns log with ctx's trace_id and span_id (log itself when there are none): the
// one way every binary's per-message logger gets them.
func Logger(ctx context.Context, log *zap.Logger) *zap.Logger {
	f := LogFields(ctx)
	if f == nil {
		return log
	}
	return log.With(f...)
}

// Fail marks span failed with err (nil: nothing): an error status with the failure's class
// and reason.
func Fail(span trace.Span, err error) {
	if err != nil && span.IsRecording() {
		span.RecordError(err)
		span.SetAttributes(attribute.String("imgpipe.failure.class", failure.ClassOf(err).String()),
			attribute.String("imgpipe.failure.reason", failure.ReasonOf(err)))
		span.SetStatus(codes.Error, failure.ReasonOf(err))
	}
}

// End ends span with err's outcome (Fail).
func End(span trace.Span, err error) {
	Fail(span, err)
	span.End()
}
