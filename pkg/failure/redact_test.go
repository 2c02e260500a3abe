package failure

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestRedactURLs(t *testing.T) {
	const presigned = "https://images.s3.us-east-1.amazonaws.com/upload/a%20b.jpg?X-Amz-Algorithm=AWS4-HMAC-SHA256" +
		"&X-Amz-Credential=AKIAEXAMPLE%2F20261201%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20261201T000000Z" +
		"&X-Amz-Expires=900&X-Amz-SignedHeaders=host&X-Amz-Security-Token=FQoGZXIvYXdz&X-Amz-Signature=0f1e2d3c4b5a"
	tests := []struct{ in, want string }{
		{"Failed to download " + presigned + ". Status 403.",
			"Failed to download https://images.s3.us-east-1.amazonaws.com/upload/a%20b.jpg?[redacted] Status 403."},
		{`{"url":"` + presigned + `"}`, `{"url":"https://images.s3.us-east-1.amazonaws.com/upload/a%20b.jpg?[redacted]"}`},
		{"http://127.0.0.1:9000/b/k?x-amz-signature=abc#frag", "http://127.0.0.1:9000/b/k?[redacted]"},
		{"https://acct.blob.core.windows.net/c/a.jpg?sv=2024-01-01&sp=r&sig=abc%3D", "https://acct.blob.core.windows.net/c/a.jpg?[redacted]"},
		{"https://storage.googleapis.com/b/a.jpg?X-Goog-Signature=ab12", "https://storage.googleapis.com/b/a.jpg?[redacted]"},
		// Signing parameters outside a URL, plain or encoded.
		{"query X-Amz-Signature=0f1e&X-Amz-Date=1 was refused", "query [redacted]&X-Amz-Date=1 was refused"},
		{"url=https%3A%2F%2Fh%2Fk%3FX-Amz-Credential%3DAKIA%2F1", "url=https%3A%2F%2Fh%2Fk%3F[redacted]"},
		// Nothing secret: unchanged.
		{"https://example.com/a.jpg?size=large&v=2", "https://example.com/a.jpg?size=large&v=2"},
		{"vision 400 InvalidImageSize: The image is too small.", "vision 400 InvalidImageSize: The image is too small."},
		{"", ""},
	}
	for _, tc := range tests {
		if got := RedactURLs(tc.in); got != tc.want {
			t.Errorf("RedactURLs(%q)\n = %q\nwant %q", tc.in, got, tc.want)
		}
		if got := RedactURLs(RedactURLs(tc.in)); got != tc.want {
			t.Errorf("RedactURLs is not idempotent on %q: %q", tc.in, got)
		}
	}
	if out := RedactURLs(presigned); strings.Contains(strings.ToLower(out), "signature") || strings.Contains(out, "AKIA") || strings.Contains(out, "FQoG") {
		t.Errorf("secret left in %q", out)
	}
}

func TestSetupFault(t *testing.T) {
	base := errors.New("403 Access Denied")
	err := SetupFault(Transient, "AccessDenied", base)
	if !IsSetup(err) || IsPermanent(err) || ClassOf(err) != Transient || ReasonOf(err) != "AccessDenied" || !errors.Is(err, base) {
		t.Errorf("SetupFault: setup %v, class %v, reason %q", IsSetup(err), ClassOf(err), ReasonOf(err))
	}
	if got := err.Error(); got != "AccessDenied (transient, setup): 403 Access Denied" {
		t.Errorf("Error() = %q", got)
	}
	if err := SetupFault(Permanent, "X", base); IsPermanent(err) || !IsSetup(err) {
		t.Errorf("a setup fault must never be permanent: %v", err)
	}
	if err := SetupFault(Throttled, "QuotaExceeded", base); ClassOf(err) != Throttled || !IsSetup(err) {
		t.Errorf("throttled setup fault: %v", err)
	}
	if SetupFault(Transient, "X", nil) != nil {
		t.Error("SetupFault(nil) must be nil")
	}
	if IsSetup(New(Transient, "Timeout", base)) || IsSetup(base) || IsSetup(nil) {
		t.Error("IsSetup true for an error not marked as a setup fault")
	}
}

func TestVerdictAndSettled(t *testing.T) {
	base := errors.New("x")
	if e := (Verdict{Class: Permanent, Reason: "R", Setup: true}).Wrap(base); e.Class != Transient || !e.Setup || e.Reason != "R" || e.Err != base {
		t.Errorf("Wrap of a permanent setup verdict: %+v", e)
	}
	if e := (Verdict{Class: Throttled, Reason: "S"}).Wrap(base); e.Class != Throttled || e.Setup {
		t.Errorf("Wrap: %+v", e)
	}
	for _, err := range []error{nil, context.Canceled, fmt.Errorf("get: %w", context.Canceled), fmt.Errorf("x: %w", New(Transient, "T", base))} {
		if !Settled(err) {
			t.Errorf("Settled(%v) = false", err)
		}
	}
	if Settled(base) || Settled(context.DeadlineExceeded) {
		t.Error("Settled true for an unclassified error")
	}
}
