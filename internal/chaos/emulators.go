package chaos

import (
	"context"
	"fmt"
	"time"

	"imgpipe/internal/devstack"
)

// restartEmulator restarts the Firestore emulator with its data (devstack's RestartFirestore:
// clients cut off, export, stop, down for down, start with the export), or cuts the Pub/Sub
// emulator's clients off for down, keeping its data (devstack's Outage: the emulator keeps
// nothing across a real restart, so this is its stand-in for one).
func restartEmulator(ctx context.Context, st *devstack.Stack, kind string, down time.Duration) error {
	switch kind {
	case FirestoreRestart:
		return st.RestartFirestore(ctx, &devstack.RestartOptions{Down: down})
	case PubSubRestart:
		return st.Outage(ctx, devstack.PubSub, down)
	}
	return fmt.Errorf("no emulator fault %q", kind)
}
