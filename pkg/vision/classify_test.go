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
	}{
		// 400 with each inner code the service documents.
		{400, "InvalidRequest", "InvalidImageFormat", nil, P, "InvalidImageFormat"},
		{400, "InvalidRequest", "InvalidImageSize", nil, P, "InvalidImageSize"},
		{400, "InvalidRequest", "InvalidImageUrl", nil, P, "InvalidImageUrl"},
		{400, "InvalidRequest", "NotSupportedImage", nil, P, "NotSupportedImage"},
		{400, "InvalidRequest", "BadArgument", nil, P, "BadArgument"},
		{400, "InvalidRequest", "UnsupportedMediaType", nil, P, "UnsupportedMediaType"},
		{400, "InvalidRequest", "InvalidDetails", nil, P, "InvalidDetails"},
		{400, "InvalidRequest", "InvalidThumbnailSize", nil, P, "InvalidThumbnailSize"},
		{400, "InvalidRequest", "Unspecified", nil, P, "Unspecified"},
		// v3.2-style: the specific code is the outer code.
		{400, "InvalidImageUrl", "", nil, P, "InvalidImageUrl"},
		{400, "InvalidRequest", "", nil, P, "InvalidRequest"},
		{400, "", "", nil, P, "BadRequest"},
		{400, "400", "", nil, P, "BadRequest"},
		{400, "bad code with spaces", "", nil, P, "BadRequest"},
		{422, "InvalidRequest", "InvalidImageSize", nil, P, "InvalidImageSize"},
		// Configuration, not the image: every image would fail alike.
		{400, "InvalidRequest", "NotSupportedFeature", nil, T, "NotSupportedFeature"},
		{400, "InvalidRequest", "NotSupportedVisualFeature", nil, T, "NotSupportedVisualFeature"},
		{400, "InvalidRequest", "NotSupportedLanguage", nil, T, "NotSupportedLanguage"},
		{400, "InvalidRequest", "InvalidModel", nil, T, "InvalidModel"},
		{400, "InvalidRequest", "InvalidModelVersion", nil, T, "InvalidModelVersion"},
		{400, "NotSupportedLanguage", "", nil, T, "NotSupportedLanguage"},
		// Auth, quota, endpoint.
		{401, "401", "", nil, T, "Unauthorized"},
		{401, "PermissionDenied", "", nil, T, "Unauthorized"},
		{403, "403", "", nil, H, "QuotaExceeded"},
		{404, "404", "", nil, T, "NotFound"},
		{408, "", "", nil, T, "Timeout"},
		{413, "", "", nil, P, "InvalidImageSize"},
		{415, "InvalidRequest", "UnsupportedMediaType", nil, P, "UnsupportedMediaType"},
		{429, "429", "", nil, H, "TooManyRequests"},
		// Server side.
		{500, "InternalServerError", "FailedToProcess", nil, T, "FailedToProcess"},
		{500, "InternalServerError", "Timeout", nil, T, "Timeout"},
		{500, "InternalServerError", "InternalServerError", nil, T, "InternalServerError"},
		{500, "FailedToProcess", "", nil, T, "FailedToProcess"},
		{500, "", "", nil, T, "InternalServerError"},
		{500, "500", "", nil, T, "InternalServerError"},
		{502, "", "", nil, T, "BadGateway"},
		{503, "ServiceUnavailable", "", nil, T, "ServiceUnavailable"},
		{504, "", "", nil, T, "GatewayTimeout"},
		{507, "", "", nil, T, "ServerError"},
		// Unexpected client errors say more about us than the image.
		{405, "", "", nil, T, "Status405"},
		{409, "Conflict", "", nil, T, "Status409"},
		{307, "", "", nil, T, "Status307"},
		// Transport errors: the status is ignored.
		{0, "", "", errors.New("connection refused"), T, "Network"},
		{0, "", "", fmt.Errorf("post: %w", context.DeadlineExceeded), T, "Timeout"},
		{0, "", "", &net.OpError{Op: "read", Err: timeoutErr{}}, T, "Timeout"},
		{0, "", "", os.ErrDeadlineExceeded, T, "Timeout"},
		{500, "", "", errors.New("reset"), T, "Network"},
	}
	for _, tt := range tests {
		name := fmt.Sprintf("%d/%s/%s/%v", tt.status, tt.code, tt.inner, tt.transport)
		t.Run(name, func(t *testing.T) {
			class, reason := Classify(tt.status, tt.code, tt.inner, tt.transport)
			if class != tt.class || reason != tt.reason {
				t.Errorf("Classify = %v %q, want %v %q", class, reason, tt.class, tt.reason)
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
		class, reason := Classify(status, e.Code, e.InnerCode, nil)
		if reason == "" {
			t.Fatalf("empty reason for %d %q/%q", status, e.Code, e.InnerCode)
		}
		if class == failure.Permanent && status != 400 && status != 413 && status != 415 && status != 422 {
			t.Fatalf("status %d classified permanent", status)
		}
	})
}
