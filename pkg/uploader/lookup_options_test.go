package uploader_test

import (
	"strings"
	"testing"
	"time"

	"imgpipe/pkg/uploader"
)

// TestLookupDLQHoldValidated: LookupOptions.DLQHold takes what dlq-replay's --hold takes,
// whole seconds from 1s to 12h (zero: the default); anything else is refused, not rounded or
// replaced.
func TestLookupDLQHoldValidated(t *testing.T) {
	for _, tc := range []struct {
		hold time.Duration
		want string // "" for accepted
	}{
		{0, ""}, {time.Second, ""}, {15 * time.Second, ""}, {12 * time.Hour, ""},
		{-time.Second, "must be from"}, {500 * time.Millisecond, "must be from"},
		{1500 * time.Millisecond, "whole seconds"}, {12*time.Hour + time.Second, "must be from"},
	} {
		_, err := uploader.NewLookup(nil, "b", &uploader.LookupOptions{DLQHold: tc.hold})
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("DLQHold %s refused: %v", tc.hold, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "DLQHold")):
			t.Errorf("DLQHold %s: error %v, want one naming DLQHold and saying %q", tc.hold, err, tc.want)
		}
	}
	if _, err := uploader.NewLookup(nil, "b", nil); err != nil {
		t.Errorf("nil options: %v", err)
	}
}
