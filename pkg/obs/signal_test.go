package obs

import (
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// TestShutdownSignals: the first SIGTERM ends the context; later ones are logged and ignored
// (the test process, which would die of an uncaught SIGTERM, lives on), after stop too.
func TestShutdownSignals(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	ctx, stop := ShutdownSignals(zap.New(core))
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ctx.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("the first SIGTERM did not end the context")
	}
	for range 3 {
		if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for logs.FilterMessageSnippet("ignored").Len() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no line says a later SIGTERM was ignored: %v", logs.All())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if n := logs.FilterMessage("signal received; shutting down").Len(); n != 1 {
		t.Errorf("%d lines say shutting down, want 1", n)
	}
	stop()
	// After stop the signals stay caught: this one must not kill the test process.
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
}
