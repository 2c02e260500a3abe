package replay_test

import (
	"context"
	"errors"
	"testing"

	"imgpipe/dlq-replay/replay"
	"imgpipe/dlq-replay/replaytest"
)

// A crash right after a send deletes and releases nothing: every message stays in the DLQ,
// leased until its hold ends, and the sent ones are also at the destination.
func TestRunCrashAfterSendLeavesEverything(t *testing.T) {
	src, dst := replay.Fill(t, 3), replay.Fill(t, 0)
	crash := replaytest.NewCrash(src, dst, nil)
	_, err := replay.Run(context.Background(), crash.Source(), crash.Sink(), nil)
	if !errors.Is(err, replaytest.ErrCrash) {
		t.Fatalf("err %v, want the crash", err)
	}
	if len(src.IDs()) != 3 || len(dst.IDs()) != 3 || src.Unleased() != 0 || crash.Sent() != 3 {
		t.Fatalf("after a crash: DLQ %v (unleased %d), destination %v, %d sent", src.IDs(), src.Unleased(), dst.IDs(), crash.Sent())
	}
}
