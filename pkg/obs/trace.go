package obs

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.uber.org/zap"

	"imgpipe/pkg/tracing"
)

// Tracing is the trace export a binary set up from the standard OTEL_* variables. Its zero
// state (tracing off) exports nothing and costs nothing.
type Tracing struct {
	tp       *sdktrace.TracerProvider
	desc     string
	once     sync.Once
	closeErr error
}

// TracingHelp is the paragraph of the binaries' --help texts about traces.
const TracingHelp = `

Traces (OpenTelemetry, OTLP) are off unless OTEL_TRACES_EXPORTER=otlp or an OTLP endpoint is
set: OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT),
OTEL_EXPORTER_OTLP_PROTOCOL grpc or http/protobuf (the default), OTEL_EXPORTER_OTLP_HEADERS,
OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES, OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG,
OTEL_PROPAGATORS (tracecontext, baggage, none); OTEL_SDK_DISABLED=true or
OTEL_TRACES_EXPORTER=none turn them off. Log lines about a traced image carry trace_id and
span_id.`

// SetupTracing sets up trace export from the standard OpenTelemetry variables (TracingHelp).
// Tracing is off unless OTEL_TRACES_EXPORTER is otlp or an OTLP endpoint is set, and off
// whenever OTEL_SDK_DISABLED is true or OTEL_TRACES_EXPORTER is none: then nothing is
// installed, the global tracer stays OpenTelemetry's no-op one and the propagator carries
// nothing. service is the service name unless OTEL_SERVICE_NAME (or service.name in
// OTEL_RESOURCE_ATTRIBUTES) names another. An invalid setting is an error naming it. Call
// Shutdown before the program exits to flush the spans still buffered.
func SetupTracing(ctx context.Context, service string) (*Tracing, error) {
	env := os.Getenv // the exporters and the SDK read the same variables themselves
	on, err := tracingOn(env)
	if err != nil || !on {
		return &Tracing{desc: "off"}, err
	}
	prop, err := propagators(env("OTEL_PROPAGATORS"))
	if err != nil {
		return nil, err
	}
	if err := checkSampler(env("OTEL_TRACES_SAMPLER"), env("OTEL_TRACES_SAMPLER_ARG")); err != nil {
		return nil, err
	}
	protocol := strings.TrimSpace(env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"))
	if protocol == "" {
		protocol = strings.TrimSpace(env("OTEL_EXPORTER_OTLP_PROTOCOL"))
	}
	var exp sdktrace.SpanExporter
	switch protocol {
	case "grpc":
		exp, err = otlptracegrpc.New(ctx)
	case "", "http/protobuf": // the specification's default
		protocol = "http/protobuf"
		exp, err = otlptracehttp.New(ctx)
	default:
		return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL %q: want grpc or http/protobuf", protocol)
	}
	if err != nil {
		return nil, fmt.Errorf("OTLP trace exporter (%s): %w", protocol, err)
	}
	// The service name given is the default; OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win.
	fromEnv, err := resource.New(ctx, resource.WithFromEnv())
	if err == nil {
		fromEnv, err = resource.Merge(resource.NewSchemaless(attribute.String("service.name", service)), fromEnv)
	}
	res := fromEnv
	if err != nil {
		return nil, fmt.Errorf("OTEL_RESOURCE_ATTRIBUTES: %w", err)
	}
	// The provider reads OTEL_TRACES_SAMPLER(_ARG) itself (checked above) and the batch
	// processor OTEL_BSP_*.
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(prop)
	tracing.SetEnabled(true)
	endpoint := env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
	if endpoint == "" {
		endpoint = env("OTEL_EXPORTER_OTLP_ENDPOINT")
	}
	return &Tracing{tp: tp, desc: "otlp " + protocol + " " + loggable(endpoint)}, nil
}

// loggable is an endpoint as the start line may show it: without userinfo, query or fragment
// (where credentials may ride); "default" when unset, and a placeholder when it does not
// parse (what it holds is not shown).
func loggable(endpoint string) string {
	if endpoint == "" {
		return "default"
	}
	u, err := url.Parse(endpoint)
	if err != nil {
		return "(an endpoint that is no URL)"
	}
	if u.Host == "" && u.Opaque != "" {
		// host:port without a scheme (gRPC's form) parses as scheme and opaque: no userinfo or
		// query to strip beyond what follows the first '?' or '#'.
		return strings.SplitN(strings.SplitN(endpoint, "?", 2)[0], "#", 2)[0]
	}
	u.User, u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = nil, "", false, "", ""
	return u.String()
}

// tracingOn decides from the variables whether traces are exported.
func tracingOn(env func(string) string) (bool, error) {
	if v := strings.TrimSpace(env("OTEL_SDK_DISABLED")); v != "" {
		off, err := strconv.ParseBool(v)
		if err != nil {
			return false, fmt.Errorf("OTEL_SDK_DISABLED %q: want true or false", v)
		}
		if off {
			return false, nil
		}
	}
	switch v := strings.TrimSpace(env("OTEL_TRACES_EXPORTER")); v {
	case "none":
		return false, nil
	case "otlp":
		return true, nil
	case "":
		return env("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "", nil
	default:
		return false, fmt.Errorf("OTEL_TRACES_EXPORTER %q: want otlp or none", v)
	}
}

// propagators builds OTEL_PROPAGATORS's list (default tracecontext,baggage).
func propagators(v string) (propagation.TextMapPropagator, error) {
	if strings.TrimSpace(v) == "" {
		v = "tracecontext,baggage"
	}
	var out []propagation.TextMapPropagator
	for _, name := range strings.Split(v, ",") {
		switch strings.TrimSpace(name) {
		case "tracecontext":
			out = append(out, propagation.TraceContext{})
		case "baggage":
			out = append(out, propagation.Baggage{})
		case "none":
		default:
			return nil, fmt.Errorf("OTEL_PROPAGATORS %q: %q is not supported (want tracecontext, baggage or none)", v, name)
		}
	}
	return propagation.NewCompositeTextMapPropagator(out...), nil
}

// checkSampler checks OTEL_TRACES_SAMPLER and its argument, which the SDK would otherwise
// replace by its default with only a line on its error handler.
func checkSampler(name, arg string) error {
	switch strings.ToLower(strings.TrimSpace(name)) {
	case "", "always_on", "always_off", "parentbased_always_on", "parentbased_always_off":
		return nil
	case "traceidratio", "parentbased_traceidratio":
		if strings.TrimSpace(arg) == "" {
			return nil
		}
		r, err := strconv.ParseFloat(strings.TrimSpace(arg), 64)
		if err != nil || r < 0 || r > 1 {
			return fmt.Errorf("OTEL_TRACES_SAMPLER_ARG %q: want a ratio from 0 to 1", arg)
		}
		return nil
	}
	return fmt.Errorf("OTEL_TRACES_SAMPLER %q: want always_on, always_off, traceidratio or their parentbased_ forms", name)
}

// On reports whether traces are exported.
func (t *Tracing) On() bool { return t.tp != nil }

// Field is a zap field describing the trace export, for the start line.
func (t *Tracing) Field() zap.Field { return zap.String("tracing", t.desc) }

// Shutdown flushes the spans still buffered and stops the exporter, within ctx (give it a few
// seconds). Safe to call twice, and on a Tracing that is off.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if t == nil || t.tp == nil {
		return nil
	}
	t.once.Do(func() {
		t.closeErr = t.tp.Shutdown(ctx)
		if errors.Is(t.closeErr, context.DeadlineExceeded) {
			t.closeErr = fmt.Errorf("flush traces: %w", t.closeErr)
		}
	})
	return t.closeErr
}

// TracingShutdownTimeout bounds the flush of the buffered spans at exit.
const TracingShutdownTimeout = 5 * time.Second

// StartTracing is what every binary calls after NewLogger: SetupTracing, the setting logged,
// and a stop that flushes the spans (within TracingShutdownTimeout, a failure logged) for the
// binary to defer.
func StartTracing(ctx context.Context, service string, log *zap.Logger) (stop func(), err error) {
	t, err := SetupTracing(ctx, service)
	if err != nil {
		return nil, err
	}
	log.Info("tracing", t.Field())
	return func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), TracingShutdownTimeout)
		defer cancel()
		if err := t.Shutdown(sctx); err != nil {
			log.Warn("traces not flushed", zap.Error(err))
		}
	}, nil
}
