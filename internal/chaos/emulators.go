package chaos

import (
	"context"
	"errors"
	"time"

	"imgpipe/internal/devstack"
)

// errNoEmulatorRestart: the local stack cannot restart the Google emulators with their data.
var errNoEmulatorRestart = errors.New("not run: this local stack cannot restart the Google emulators with their data (no gRPC front before them)")

// emulatorRestarts reports whether restartEmulator can inject the emulators' restarts.
const emulatorRestarts = false

// restartEmulator restarts the Firestore emulator, or cuts the Pub/Sub emulator off, for down.
func restartEmulator(ctx context.Context, st *devstack.Stack, kind string, down time.Duration) error {
	return errNoEmulatorRestart
}
