package failure

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestClassification(t *testing.T) {
	base := errors.New("boom")
	tests := []struct {
		name       string
		err        error
		class      Class
		reason     string
		retryAfter time.Duration
	}{
		{"unclassified is transient", base, Transient, "Unclassified", 0},
		{"permanent", New(Permanent, "InvalidImageFormat", base), Permanent, "InvalidImageFormat", 0},
		{"wrapped permanent", fmt.Errorf("analyze upload/a.jpg: %w", Permanentf("BadKey", "bad %s", "key")), Permanent, "BadKey", 0},
		{"throttled with wait", ThrottledAfter("TooManyRequests", 3*time.Second, base), Throttled, "TooManyRequests", 3 * time.Second},
		{"outermost wins", New(Permanent, "Outer", New(Transient, "Inner", base)), Permanent, "Outer", 0},
		{"deadline", fmt.Errorf("call: %w", context.DeadlineExceeded), Transient, "Timeout", 0},
		{"canceled", context.Canceled, Transient, "Canceled", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ClassOf(tt.err); got != tt.class {
				t.Errorf("ClassOf = %v, want %v", got, tt.class)
			}
			if got := ReasonOf(tt.err); got != tt.reason {
				t.Errorf("ReasonOf = %q, want %q", got, tt.reason)
			}
			if got := RetryAfterOf(tt.err); got != tt.retryAfter {
				t.Errorf("RetryAfterOf = %v, want %v", got, tt.retryAfter)
			}
			if !errors.Is(tt.err, tt.err) {
				t.Errorf("errors.Is self failed")
			}
		})
	}
}

func TestNewNil(t *testing.T) {
	if New(Permanent, "x", nil) != nil {
		t.Fatal("New(nil) must be nil")
	}
	if IsPermanent(nil) {
		t.Fatal("nil is not permanent")
	}
}

func TestUnwrapKeepsCause(t *testing.T) {
	cause := errors.New("cause")
	if !errors.Is(New(Transient, "r", cause), cause) {
		t.Fatal("cause lost")
	}
}

func TestParseClassRoundTrip(t *testing.T) {
	for _, c := range []Class{Transient, Throttled, Permanent} {
		got, err := ParseClass(c.String())
		if err != nil || got != c {
			t.Fatalf("ParseClass(%q) = %v, %v", c.String(), got, err)
		}
	}
	if _, err := ParseClass("nope"); err == nil {
		t.Fatal("want error for unknown class")
	}
}
