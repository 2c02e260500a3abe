// Package obs sets up what the binaries share for observability: JSON logs with zap, and the
// HTTP endpoints for metrics, health and readiness.
package obs

import (
	"fmt"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// NewLogger returns a JSON logger at level (debug, info, warn, error) naming the component.
func NewLogger(component, level string) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	cfg := zap.NewProductionConfig()
	cfg.Level = zap.NewAtomicLevelAt(lvl)
	cfg.EncoderConfig.TimeKey = "time"
	cfg.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	cfg.Sampling = nil // every failure line matters to an operator
	log, err := cfg.Build()
	if err != nil {
		return nil, err
	}
	return log.With(zap.String("component", component)), nil
}

// Settings is a zap field for a binary's effective settings, logged once at start.
func Settings(m map[string]string) zap.Field { return zap.Any("settings", m) }
