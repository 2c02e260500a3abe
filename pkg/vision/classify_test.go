package vision

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"

	"imgpipe/pkg/failure"
)

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

var _ net.Error = timeoutErr{}

func TestClassify(t *testing.T) {
	const (
		P = failure.Permanent
		T = failure.Transient
		H = failure.Throttled
	)
	tests := []struct {
		status      int
		code, inner string
		transport   error
		class       failure.Class
		reason      string
		setup       bool
	}{
		// 400 with each inner code the service documents.
		{400, "InvalidRequest", "InvalidImageFormat", nil, P, "InvalidImageFormat", false},
		{400, "InvalidRequest", "InvalidImageSize", nil, P, "InvalidImageSize", false},
		{400, "InvalidRequest", "InvalidImageUrl", nil, T, "InvalidImageUrl", true},
		{400, "InvalidRequest", "NotSupportedImage", nil, P, "NotSupportedImage", false},
		{400, "InvalidRequest", "BadArgument", nil, P, "BadArgument", false},
		{400, "InvalidRequest", "UnsupportedMediaType", nil, P, "UnsupportedMediaType", false},
		{400, "InvalidRequest", "InvalidDetails", nil, P, "InvalidDetails", false},
		{400, "InvalidRequest", "InvalidThumbnailSize", nil, P, "InvalidThumbnailSize", false},
		{400, "InvalidRequest", "Unspecified", nil, P, "Unspecified", false},
		// v3.2-style: the specific code is the outer code.
		{400, "InvalidImageUrl", "", nil, T, "InvalidImageUrl", true},
		{400, "InvalidRequest", "", nil, P, "InvalidRequest", false},
		{400, "", "", nil, P, "BadRequest", false},
		{400, "400", "", nil, P, "BadRequest", false},
		{400, "bad code with spaces", "", nil, P, "BadRequest", false},
		{422, "InvalidRequest", "InvalidImageSize", nil, P, "InvalidImageSize", false},
		// Configuration, not the image: every image would fail alike.
		{400, "InvalidRequest", "NotSupportedFeature", nil, T, "NotSupportedFeature", true},
		{400, "InvalidRequest", "NotSupportedVisualFeature", nil, T, "NotSupportedVisualFeature", true},
		{400, "InvalidRequest", "NotSupportedLanguage", nil, T, "NotSupportedLanguage", true},
		{400, "InvalidRequest", "InvalidModel", nil, T, "InvalidModel", true},
		{400, "InvalidRequest", "InvalidModelVersion", nil, T, "InvalidModelVersion", true},
		{400, "NotSupportedLanguage", "", nil, T, "NotSupportedLanguage", true},
		// Auth, quota, endpoint.
		{401, "401", "", nil, T, "Unauthorized", true},
		{401, "PermissionDenied", "", nil, T, "Unauthorized", true},
		{403, "403", "", nil, H, "QuotaExceeded", true},
		{404, "404", "", nil, T, "NotFound", true},
		{408, "", "", nil, T, "Timeout", false},
		{413, "", "", nil, P, "InvalidImageSize", false},
		{415, "InvalidRequest", "UnsupportedMediaType", nil, P, "UnsupportedMediaType", false},
		{429, "429", "", nil, H, "TooManyRequests", false},
		// Server side.
		{500, "InternalServerError", "FailedToProcess", nil, T, "FailedToProcess", false},
		{500, "InternalServerError", "Timeout", nil, T, "Timeout", false},
		{500, "InternalServerError", "InternalServerError", nil, T, "InternalServerError", false},
		{500, "FailedToProcess", "", nil, T, "FailedToProcess", false},
		{500, "", "", nil, T, "InternalServerError", false},
		{500, "500", "", nil, T, "InternalServerError", false},
		{502, "", "", nil, T, "BadGateway", false},
		{503, "ServiceUnavailable", "", nil, T, "ServiceUnavailable", false},
		{504, "", "", nil, T, "GatewayTimeout", false},
		{507, "", "", nil, T, "ServerError", false},
		// Unexpected client errors say more about us than the image.
		{405, "", "", nil, T, "Status405", false},
		{409, "Conflict", "", nil, T, "Status409", false},
		{307, "", "", nil, T, "Status307", false},
		// Transport errors: the status is ignored.
		{0, "", "", errors.New("connection refused"), T, "Network", false},
		{0, "", "", fmt.Errorf("post: %w", context.DeadlineExceeded), T, "Timeout", false},
		{0, "", "", &net.OpError{Op: "read", Err: timeoutErr{}}, T, "Timeout", false},
		{0, "", "", os.ErrDeadlineExceeded, T, "Timeout", false},
		{500, "", "", errors.New("reset"), T, "Network", false},
	}
	for _, tt := range tests {
		name := fmt.Sprintf("%d/%s/%s/%v", tt.status, tt.code, tt.inner, tt.transport)
		t.Run(name, func(t *testing.T) {
			v := Classify(tt.status, tt.code, tt.inner, tt.transport)
			if v.Class != tt.class || v.Reason != tt.reason || v.Setup != tt.setup {
				t.Errorf("Classify = %+v, want %v %q setup %v", v, tt.class, tt.reason, tt.setup)
			}
			if v.Setup && v.Class == failure.Permanent {
				t.Errorf("a setup fault marked permanent")
			}
		})
	}
}

func TestRetryable(t *testing.T) {
	for status := 100; status < 600; status++ {
		want := false
		switch status {
		case 408, 429, 500, 502, 503, 504:
			want = true
		}
		if got := retryable(status, nil); got != want {
			t.Errorf("retryable(%d) = %v, want %v", status, got, want)
		}
	}
	if !retryable(0, errors.New("reset")) {
		t.Error("transport errors must be retryable")
	}
}

func TestParseAPIError(t *testing.T) {
	noScrub := func(s string) string { return s }
	tests := []struct {
		name   string
		status int
		header http.Header
		body   string
		want   APIError
		text   string
	}{
		{
			"4.0 with inner error", 400, http.Header{"Apim-Request-Id": {"r-1"}},
			`{"error":{"code":"InvalidRequest","message":"Image format is not valid.","innererror":{"code":"InvalidImageFormat","message":"Input data is not a valid image."}}}`,
			APIError{400, "InvalidRequest", "InvalidImageFormat", "Image format is not valid.", "r-1"},
			"vision 400 InvalidRequest/InvalidImageFormat: Image format is not valid. (request r-1)",
		},
		{
			"v3.2 with body request id", 400, http.Header{},
			`{"error":{"code":"InvalidImageUrl","message":"Image URL is badly formatted."},"requestId":"r-2"}`,
			APIError{400, "InvalidImageUrl", "", "Image URL is badly formatted.", "r-2"},
			"vision 400 InvalidImageUrl: Image URL is badly formatted. (request r-2)",
		},
		{
			"gateway numeric code", 429, http.Header{},
			`{"error":{"code":"429","message":"Rate limit is exceeded. Try again in 2 seconds."}}`,
			APIError{429, "429", "", "Rate limit is exceeded. Try again in 2 seconds.", ""},
			"vision 429: Rate limit is exceeded. Try again in 2 seconds.",
		},
		{
			"inner message when outer is empty", 500, http.Header{},
			`{"error":{"code":"InternalServerError","innererror":{"code":"Timeout","message":"timed out"}}}`,
			APIError{500, "InternalServerError", "Timeout", "timed out", ""},
			"vision 500 InternalServerError/Timeout: timed out",
		},
		{
			"not JSON, code from header", 503, http.Header{"X-Ms-Error-Code": {"ServiceUnavailable"}},
			`<html>busy</html>`,
			APIError{503, "ServiceUnavailable", "", "", ""},
			"vision 503 ServiceUnavailable",
		},
		{
			"empty body", 502, http.Header{}, ``,
			APIError{502, "", "", "", ""},
			"vision 502",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := parseAPIError(tt.status, tt.header, []byte(tt.body), noScrub)
			if *got != tt.want {
				t.Errorf("parseAPIError = %+v, want %+v", *got, tt.want)
			}
			if got.Error() != tt.text {
				t.Errorf("Error() = %q, want %q", got.Error(), tt.text)
			}
		})
	}
}

func TestParseAPIErrorScrubsAndTruncates(t *testing.T) {
	body := `{"error":{"code":"401","message":"key s3cret is wrong ` + strings.Repeat("x", 2000) + `"}}`
	e := parseAPIError(401, http.Header{}, []byte(body), func(s string) string { return scrubSecret(s, "s3cret") })
	if strings.Contains(e.Error(), "s3cret") {
		t.Fatalf("secret in error: %q", e.Error())
	}
	if !strings.Contains(e.Message, redacted) {
		t.Fatalf("secret not replaced: %q", e.Message[:40])
	}
	if len(e.Message) > maxMessage+3 {
		t.Fatalf("message is %d bytes, want at most %d", len(e.Message), maxMessage+3)
	}
}

func FuzzParseAPIError(f *testing.F) {
	f.Add(400, `{"error":{"code":"InvalidRequest","innererror":{"code":"InvalidImageFormat"}}}`)
	f.Add(429, `{"error":{"code":"429","message":"slow down"}}`)
	f.Add(500, `not json`)
	f.Fuzz(func(t *testing.T, status int, body string) {
		e := parseAPIError(status, http.Header{}, []byte(body), func(s string) string { return scrubSecret(s, "KEY") })
		if strings.Contains(e.Message, "KEY") {
			t.Fatalf("secret kept: %q", e.Message)
		}
		if len(e.Message) > maxMessage+3 {
			t.Fatalf("message too long: %d", len(e.Message))
		}
		v := Classify(status, e.Code, e.InnerCode, nil)
		if v.Reason == "" {
			t.Fatalf("empty reason for %d %q/%q", status, e.Code, e.InnerCode)
		}
		if v.Setup && v.Class == failure.Permanent {
			t.Fatalf("setup fault marked permanent for %d %q/%q", status, e.Code, e.InnerCode)
		}
		if v.Class == failure.Permanent && status != 400 && status != 413 && status != 415 && status != 422 {
			t.Fatalf("status %d classified permanent", status)
		}
	})
}

// TestParseAPIErrorRedactsSignedURLs: a presigned URL quoted by the service keeps its path
// but loses its query (signature, credential, token) before it reaches any error text.
func TestParseAPIErrorRedactsSignedURLs(t *testing.T) {
	const url = "https://b.s3.amazonaws.com/upload/a.jpg?X-Amz-Credential=AKIAEXAMPLE%2F1&X-Amz-Signature=abcdef0123"
	body := `{"error":{"code":"InvalidRequest","message":"Failed to download ` + url + `","innererror":{"code":"InvalidImageUrl"}}}`
	e := parseAPIError(400, http.Header{}, []byte(body), func(s string) string { return s })
	if strings.Contains(e.Error(), "X-Amz-") || strings.Contains(e.Error(), "AKIAEXAMPLE") || strings.Contains(e.Error(), "abcdef0123") {
		t.Fatalf("signed URL kept: %q", e.Error())
	}
	if !strings.Contains(e.Message, "https://b.s3.amazonaws.com/upload/a.jpg?"+failure.Redacted) {
		t.Fatalf("the URL's path should stay: %q", e.Message)
	}
}
