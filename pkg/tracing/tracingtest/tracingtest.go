// Package tracingtest turns tracing on for a test: an SDK tracer provider recording every
// ended span in memory, the W3C propagator, and tracing.Enabled; all put back to off (the
// no-op provider, no propagator) when the test ends.
package tracingtest

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace/noop"

	"imgpipe/pkg/tracing"
)

// Record turns tracing on with the span processor sp (nil: a recorder of ended spans, which
// it returns) until tb ends. Tests that use it must not run in parallel with others.
func Record(tb testing.TB, sp sdktrace.SpanProcessor) (*tracetest.SpanRecorder, *sdktrace.TracerProvider) {
	var rec *tracetest.SpanRecorder
	if sp == nil {
		rec = tracetest.NewSpanRecorder()
		sp = rec
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sp))
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.TraceContext{})
	tracing.SetEnabled(true)
	tb.Cleanup(func() {
		Off()
		_ = tp.Shutdown(context.Background())
	})
	return rec, tp
}

// Off puts tracing back to its default: off, the no-op provider, no propagator.
func Off() {
	tracing.SetEnabled(false)
	otel.SetTracerProvider(noop.NewTracerProvider())
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator())
}
