package obs

import (
	"context"
	"strings"
	"testing"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"imgpipe/pkg/tracing"
	"imgpipe/pkg/tracing/tracingtest"
)

// tracingEnv sets the OTEL_* variables SetupTracing and the SDK read to env's (the others
// empty), and puts OpenTelemetry's globals and tracing's switch back to off afterwards.
func tracingEnv(t *testing.T, env map[string]string) {
	for _, k := range []string{"OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT",
		"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
		"OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES", "OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG", "OTEL_PROPAGATORS"} {
		t.Setenv(k, env[k])
	}
	t.Cleanup(tracingtest.Off)
	tracingtest.Off()
}

func TestTracingSettings(t *testing.T) {
	for _, tc := range []struct {
		name    string
		env     map[string]string
		on      bool
		errWith string
	}{
		{name: "no variables: off", env: nil},
		{name: "endpoint turns it on", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, on: true},
		{name: "traces endpoint turns it on", env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, on: true},
		{name: "exporter otlp", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, on: true},
		{name: "grpc", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, on: true},
		{name: "traces protocol wins", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "bogus", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"}, on: true},
		{name: "exporter none", env: map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}},
		{name: "sdk disabled", env: map[string]string{"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}},
		{name: "sdk not disabled", env: map[string]string{"OTEL_SDK_DISABLED": "false", "OTEL_TRACES_EXPORTER": "otlp"}, on: true},
		{name: "sampler ratio", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.25"}, on: true},
		{name: "bad disabled", env: map[string]string{"OTEL_SDK_DISABLED": "maybe"}, errWith: "OTEL_SDK_DISABLED"},
		{name: "unknown exporter", env: map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, errWith: "OTEL_TRACES_EXPORTER"},
		{name: "http/json", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, errWith: "OTEL_EXPORTER_OTLP_PROTOCOL"},
		{name: "unknown sampler", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_TRACES_SAMPLER": "sometimes"}, errWith: "OTEL_TRACES_SAMPLER"},
		{name: "ratio out of range", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "2"}, errWith: "OTEL_TRACES_SAMPLER_ARG"},
		{name: "unknown propagator", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_PROPAGATORS": "tracecontext,b3"}, errWith: "OTEL_PROPAGATORS"},
		{name: "bad resource attributes", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_RESOURCE_ATTRIBUTES": "novalue"}, errWith: "OTEL_RESOURCE_ATTRIBUTES"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tracingEnv(t, tc.env)
			tr, err := SetupTracing(context.Background(), "imgpipe-test")
			if tc.errWith != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errWith) {
					t.Fatalf("err %v, want one naming %s", err, tc.errWith)
				}
				if tracing.Enabled() {
					t.Fatal("tracing enabled after a bad setting")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Shutdown(context.Background())
			if tr.On() != tc.on || tracing.Enabled() != tc.on {
				t.Fatalf("on %v, tracing.Enabled %v; want %v", tr.On(), tracing.Enabled(), tc.on)
			}
			_, isNoop := otel.GetTracerProvider().(noop.TracerProvider)
			if isNoop == tc.on {
				t.Fatalf("global provider %T with tracing on=%v", otel.GetTracerProvider(), tc.on)
			}
			if err := tr.Shutdown(context.Background()); err != nil {
				t.Fatalf("shutdown: %v", err)
			}
			if err := tr.Shutdown(context.Background()); err != nil {
				t.Fatalf("second shutdown: %v", err)
			}
		})
	}
}

// With tracing on, the configured propagators carry the W3C context and the service name
// defaults to the binary's and yields to OTEL_SERVICE_NAME.
func TestTracingPropagatesAndNames(t *testing.T) {
	tracingEnv(t, map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SERVICE_NAME": "renamed", "OTEL_PROPAGATORS": "tracecontext",
		"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"})
	tr, err := SetupTracing(context.Background(), "imgpipe-test")
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Shutdown(context.Background())
	ctx, span := otel.Tracer("t").Start(context.Background(), "s")
	defer span.End()
	m := map[string]string{}
	tracing.Inject(ctx, m)
	want := "00-" + span.SpanContext().TraceID().String() + "-" + span.SpanContext().SpanID().String() + "-01"
	if m["traceparent"] != want {
		t.Fatalf("traceparent %q, want %q", m["traceparent"], want)
	}
	if fields := otel.GetTextMapPropagator().Fields(); len(fields) != 2 { // traceparent, tracestate
		t.Fatalf("propagator fields %v, want tracecontext's only", fields)
	}
	if s := serviceName(tr); s != "renamed" {
		t.Fatalf("service.name %q, want OTEL_SERVICE_NAME's", s)
	}
	t.Setenv("OTEL_SERVICE_NAME", "")
	tr2, err := SetupTracing(context.Background(), "imgpipe-test")
	if err != nil {
		t.Fatal(err)
	}
	defer tr2.Shutdown(context.Background())
	if s := serviceName(tr2); s != "imgpipe-test" {
		t.Fatalf("service.name %q, want the binary's", s)
	}
}

// serviceName is the service.name of tr's spans.
func serviceName(tr *Tracing) string {
	_, span := tr.tp.Tracer("t").Start(context.Background(), "s")
	defer span.End()
	v, _ := span.(sdktrace.ReadOnlySpan).Resource().Set().Value("service.name")
	return v.AsString()
}

// TestLoggableEndpoint: the endpoint on the start line keeps scheme, host, port and path and
// loses userinfo, query and fragment.
func TestLoggableEndpoint(t *testing.T) {
	for in, want := range map[string]string{
		"":                      "default",
		"http://127.0.0.1:4318": "http://127.0.0.1:4318",
		"https://user:secret@otel.example:4318/v1/traces?token=abc#frag": "https://otel.example:4318/v1/traces",
		"https://otel.example/v1/traces?":                                "https://otel.example/v1/traces",
		"collector:4317?api-key=abc":                                     "collector:4317",
		"http://[::1:4318":                                               "(an endpoint that is no URL)",
	} {
		if got := loggable(in); got != want {
			t.Errorf("loggable(%q) = %q, want %q", in, got, want)
		}
		if got := loggable(in); strings.Contains(got, "secret") || strings.Contains(got, "abc") {
			t.Errorf("loggable(%q) = %q shows a credential", in, got)
		}
	}
	tracingEnv(t, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://user:secret@127.0.0.1:4318/?key=abc"})
	tr, err := SetupTracing(context.Background(), "imgpipe-test")
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Shutdown(context.Background())
	if f := tr.Field(); f.String != "otlp http/protobuf http://127.0.0.1:4318/" {
		t.Errorf("start line field %q", f.String)
	}
}
