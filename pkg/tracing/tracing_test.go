package tracing

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

func TestCarriersAndLogFields(t *testing.T) {
	const tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	// Off (the default): nothing is read or written, and logs get no fields.
	if _, ok := Extract(context.Background(), map[string]string{KeyTraceparent: tp}); ok {
		t.Fatal("Extract found a context with tracing off")
	}
	m := map[string]string{}
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: [16]byte{1}, SpanID: [8]byte{2}, TraceFlags: trace.FlagsSampled})
	Inject(trace.ContextWithSpanContext(context.Background(), sc), m)
	if len(m) != 0 {
		t.Fatalf("Inject wrote %v with tracing off", m)
	}

	otel.SetTextMapPropagator(propagation.TraceContext{})
	SetEnabled(true)
	t.Cleanup(func() {
		SetEnabled(false)
		otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator())
	})
	ctx, ok := Extract(context.Background(), map[string]string{KeyTraceparent: tp, "other": "x"})
	if !ok || trace.SpanContextFromContext(ctx).TraceID().String() != "0af7651916cd43dd8448eb211c80319c" {
		t.Fatalf("Extract: ok %v, %v", ok, trace.SpanContextFromContext(ctx))
	}
	for _, bad := range []map[string]string{nil, {}, {KeyTraceparent: "00-zz-01"}, {KeyTraceparent: "00-00000000000000000000000000000000-b7ad6b7169203331-01"}} {
		if _, ok := Extract(context.Background(), bad); ok {
			t.Errorf("Extract(%v) found a context: a malformed or missing traceparent must start a new trace", bad)
		}
	}
	Inject(ctx, m)
	if m[KeyTraceparent] != tp {
		t.Fatalf("Inject: %v, want %s", m, tp)
	}

	core, logs := observer.New(zap.InfoLevel)
	log := zap.New(core)
	Logger(context.Background(), log).Info("no span")
	Logger(ctx, log).Info("with span")
	all := logs.All()
	if f := all[0].ContextMap(); f["trace_id"] != nil || f["span_id"] != nil {
		t.Errorf("a line without a span has trace fields: %v", f)
	}
	if f := all[1].ContextMap(); f["trace_id"] != "0af7651916cd43dd8448eb211c80319c" || f["span_id"] != "b7ad6b7169203331" {
		t.Errorf("trace fields %v", f)
	}
}
