package failure

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestRoundTrip(t *testing.T) {
	first := time.Date(2026, 11, 22, 1, 2, 3, 4000, time.UTC)
	now := first.Add(time.Minute)
	err := fmt.Errorf("analyze upload/a.jpg: %w", Permanentf("InvalidImageFormat", "not an image"))
	f := DetailsOf(err, 3, "https://sqs/q", first, now)
	f.ReplayCount = 2
	got := ParseDetails(f.Attributes())
	if got != f {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, f)
	}
	if got.Reason != "InvalidImageFormat" || got.Class != Permanent || got.Attempts != 3 {
		t.Fatalf("fields: %+v", got)
	}
}

func TestBoundsAndDefaults(t *testing.T) {
	now := time.Now()
	f := DetailsOf(errors.New(strings.Repeat("x", 5000)), 1, "", time.Time{}, now)
	if len(f.Error) != MaxErrorLen {
		t.Fatalf("error text %d bytes", len(f.Error))
	}
	if !f.FirstFailure.Equal(f.LastFailure) {
		t.Fatal("zero first failure should default to now")
	}
	a := f.Attributes()
	if _, ok := a[AttrSourceQueue]; ok {
		t.Fatal("empty attribute kept: SQS rejects it")
	}
	if len(a) > 10 {
		t.Fatalf("%d attributes, SQS allows 10", len(a))
	}
	if f.Reason != "Unclassified" || f.Class != Transient {
		t.Fatalf("unclassified error described as %+v", f)
	}
}

func TestParseForeignMessage(t *testing.T) {
	f := ParseDetails(map[string]string{"other": "x", AttrAttempts: "many"})
	if f != (Details{}) {
		t.Fatalf("want zero Details for a message without our attributes, got %+v", f)
	}
}
