package console_test

import (
	"strings"
	"testing"
	"time"

	"imgpipe/pkg/console"
)

// TestDLQHoldValidated: Options.DLQHold takes what dlq-replay's --hold takes, whole seconds
// from 1s to 12h, at most 10m when a Pub/Sub dead-letter subscription is scanned too (zero:
// the default); anything else is refused with an error naming it, not replaced.
func TestDLQHoldValidated(t *testing.T) {
	for _, tc := range []struct {
		hold   time.Duration
		pubsub bool
		want   string // "" for accepted
	}{
		{0, false, ""}, {time.Second, false, ""}, {12 * time.Hour, false, ""}, {10 * time.Minute, true, ""},
		{-time.Second, false, "must be from"}, {500 * time.Millisecond, false, "must be from"},
		{1500 * time.Millisecond, false, "whole seconds"}, {12*time.Hour + time.Second, false, "must be from"},
		{11 * time.Minute, true, "must be from"},
	} {
		o := &console.Options{DLQHold: tc.hold}
		if tc.pubsub {
			o.DeadLetterSubscription = "projects/p/subscriptions/dead"
		}
		// No clients: an accepted hold gets as far as the missing clients' error.
		_, err := console.New("b", console.Deps{}, o)
		held := err != nil && strings.Contains(err.Error(), "DLQHold")
		switch {
		case tc.want == "" && held:
			t.Errorf("DLQHold %s (pubsub %v) refused: %v", tc.hold, tc.pubsub, err)
		case tc.want != "" && (!held || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("DLQHold %s (pubsub %v): error %v, want one naming DLQHold and saying %q", tc.hold, tc.pubsub, err, tc.want)
		}
	}
}
