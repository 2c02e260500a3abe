// Package obs sets up what the binaries share for observability: JSON logs with zap, and the
// HTTP endpoints for metrics, health and readiness.
package obs

import (
	"fmt"
	"os"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zapgrpc"
	"google.golang.org/grpc/grpclog"
)

// NewLogger returns a JSON logger on stderr at level (debug, info, warn, error) naming the
// component. A binary's logs are JSON only: NewLogger also routes what libraries print on
// their own through it, the standard library's log package (used by Google's Pub/Sub and
// Firestore clients) at warn level and gRPC's logger at error level (what gRPC prints by
// default). The AWS SDK's logger is given the same logger through awsclient.Options. Call it
// once, at start, before any client is made.
func NewLogger(component, level string) (*zap.Logger, error) {
	return newLogger(component, level, zapcore.Lock(os.Stderr))
}

func newLogger(component, level string, out zapcore.WriteSyncer) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	enc := zap.NewProductionEncoderConfig()
	enc.TimeKey = "time"
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	// No sampling: every failure line matters to an operator.
	core := zapcore.NewCore(zapcore.NewJSONEncoder(enc), out, zap.NewAtomicLevelAt(lvl))
	log := zap.New(core, zap.AddCaller(), zap.AddStacktrace(zap.ErrorLevel), zap.ErrorOutput(out)).
		With(zap.String("component", component))
	if _, err := zap.RedirectStdLogAt(log.Named("stdlog"), zap.WarnLevel); err != nil {
		return nil, err
	}
	grpclog.SetLoggerV2(zapgrpc.NewLogger(log.Named("grpc").WithOptions(zap.IncreaseLevel(zap.ErrorLevel))))
	return log, nil
}

// Settings is a zap field for a binary's effective settings, logged once at start.
func Settings(m map[string]string) zap.Field { return zap.Any("settings", m) }
