package vision

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"

	"imgpipe/pkg/failure"
)

// APIError is an error answer from the service, before classification. The errors the
// Client returns wrap it in a *failure.Error; find it with errors.As.
type APIError struct {
	StatusCode int
	Code       string // error.code, e.g. "InvalidRequest" or "429"
	InnerCode  string // error.innererror.code, e.g. "InvalidImageFormat"; may be empty
	Message    string // the service's message, with any credential scrubbed out
	RequestID  string
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "vision %d", e.StatusCode)
	var codes []string
	if e.Code != "" && e.Code != fmt.Sprint(e.StatusCode) {
		codes = append(codes, e.Code)
	}
	if e.InnerCode != "" {
		codes = append(codes, e.InnerCode)
	}
	if len(codes) > 0 {
		b.WriteString(" " + strings.Join(codes, "/"))
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	if e.RequestID != "" {
		b.WriteString(" (request " + e.RequestID + ")")
	}
	return b.String()
}

// maxMessage bounds how much of the service's message is kept in an error.
const maxMessage = 512

// parseAPIError reads an error body: {"error":{"code","message","innererror":{"code",
// "message"}},"requestId"}. An unreadable body still yields an APIError with the status,
// and with the code from the x-ms-error-code header when present.
func parseAPIError(status int, h http.Header, body []byte, scrub func(string) string) *APIError {
	var env struct {
		Error struct {
			Code       string `json:"code"`
			Message    string `json:"message"`
			InnerError *struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"innererror"`
		} `json:"error"`
		RequestID string `json:"requestId"`
	}
	e := &APIError{StatusCode: status, RequestID: requestID(h)}
	if err := json.Unmarshal(body, &env); err == nil {
		e.Code, e.Message = env.Error.Code, env.Error.Message
		if ie := env.Error.InnerError; ie != nil {
			e.InnerCode = ie.Code
			if e.Message == "" {
				e.Message = ie.Message
			}
		}
		if e.RequestID == "" {
			e.RequestID = env.RequestID
		}
	}
	if e.Code == "" {
		e.Code = h.Get("x-ms-error-code")
	}
	// The service may quote a presigned URL it was given: its signature must not reach logs
	// or DLQ attributes.
	msg := failure.RedactURLs(scrub(strings.TrimSpace(e.Message)))
	if len(msg) > maxMessage {
		msg = msg[:maxMessage] + "..."
	}
	e.Message = msg
	return e
}

// requestID returns the service's request id header.
func requestID(h http.Header) string {
	for _, k := range []string{"apim-request-id", "x-ms-request-id", "x-request-id"} {
		if v := h.Get(k); v != "" {
			return v
		}
	}
	return ""
}

// configCodes are 400 inner codes that say the request's settings are wrong for this
// resource (a feature or language the region lacks, an unknown model): every image would
// fail the same way until an operator fixes the configuration, so they are not the image's
// fault and must not send images to the DLQ.
var configCodes = map[string]bool{
	"NotSupportedFeature":       true,
	"NotSupportedVisualFeature": true,
	"NotSupportedLanguage":      true,
	"InvalidModel":              true,
	"InvalidModelVersion":       true,
}

// Verdict is what Classify decides of a failed call (Setup marks a fault of the deployment,
// not of the image: see failure.SetupFault).
type Verdict = failure.Verdict

// Classify is the one table of Vision's answers: it maps the HTTP status, the body's error
// code and inner error code, and the transport error (when no response came back; status is
// then ignored) to a failure class, a short stable reason and the setup mark:
//
//   - transport errors: Transient, "Timeout" for timeouts, otherwise "Network".
//   - 400 (and 422): Permanent with the inner code as reason (InvalidImageFormat,
//     InvalidImageSize, NotSupportedImage, BadArgument, ...), else the code, else
//     "BadRequest". Exceptions, Transient setup faults since every image would fail alike
//     until an operator mends the deployment: InvalidImageUrl (the service could not fetch
//     the URL it was given: the URL's host, its policy, its network path or its signature
//     refuse Azure; the URLs the pipeline gives are presigned for objects it has just read),
//     and inner codes that describe this resource's configuration (NotSupportedFeature,
//     NotSupportedVisualFeature, NotSupportedLanguage, InvalidModel, InvalidModelVersion).
//   - 401: Transient setup fault "Unauthorized". A bad or rotated key is not the image's
//     fault; the message must stay in the queue while an operator fixes the key.
//   - 403: Throttled setup fault "QuotaExceeded". Vision answers 403 when the call-volume
//     quota is spent; waiting (or a larger tier) is the only remedy.
//   - 404: Transient setup fault "NotFound". Vision reports a missing image as 400
//     InvalidImageUrl, so a 404 means a wrong endpoint or path.
//   - 408: Transient "Timeout".
//   - 413: Permanent "InvalidImageSize" (the body is too large).
//   - 415: Permanent "UnsupportedMediaType".
//   - 429: Throttled "TooManyRequests" (the caller attaches the retry-after).
//   - 500: Transient with the inner code or code (FailedToProcess, Timeout,
//     InternalServerError), else "InternalServerError".
//   - 502, 503, 504: Transient "BadGateway", "ServiceUnavailable", "GatewayTimeout".
//   - any other 5xx: Transient "ServerError"; any other 4xx: Transient "Status<n>", since an
//     unexpected client error says more about this client or its configuration than the image.
func Classify(status int, code, innerCode string, transportErr error) Verdict {
	if transportErr != nil {
		if isTimeout(transportErr) {
			return Verdict{Class: failure.Transient, Reason: "Timeout"}
		}
		return Verdict{Class: failure.Transient, Reason: "Network"}
	}
	detail := firstWord(innerCode, code)
	switch status {
	case http.StatusBadRequest, http.StatusUnprocessableEntity:
		if configCodes[innerCode] || (innerCode == "" && configCodes[code]) || detail == ReasonInvalidImageURL {
			return Verdict{Class: failure.Transient, Reason: detail, Setup: true}
		}
		return Verdict{Class: failure.Permanent, Reason: firstWord(detail, "BadRequest")}
	case http.StatusUnauthorized:
		return Verdict{Class: failure.Transient, Reason: "Unauthorized", Setup: true}
	case http.StatusForbidden:
		return Verdict{Class: failure.Throttled, Reason: "QuotaExceeded", Setup: true}
	case http.StatusNotFound:
		return Verdict{Class: failure.Transient, Reason: "NotFound", Setup: true}
	case http.StatusRequestTimeout:
		return Verdict{Class: failure.Transient, Reason: "Timeout"}
	case http.StatusRequestEntityTooLarge:
		return Verdict{Class: failure.Permanent, Reason: "InvalidImageSize"}
	case http.StatusUnsupportedMediaType:
		return Verdict{Class: failure.Permanent, Reason: "UnsupportedMediaType"}
	case http.StatusTooManyRequests:
		return Verdict{Class: failure.Throttled, Reason: "TooManyRequests"}
	case http.StatusInternalServerError:
		if isWord(detail) {
			return Verdict{Class: failure.Transient, Reason: detail}
		}
		return Verdict{Class: failure.Transient, Reason: "InternalServerError"}
	case http.StatusBadGateway:
		return Verdict{Class: failure.Transient, Reason: "BadGateway"}
	case http.StatusServiceUnavailable:
		return Verdict{Class: failure.Transient, Reason: "ServiceUnavailable"}
	case http.StatusGatewayTimeout:
		return Verdict{Class: failure.Transient, Reason: "GatewayTimeout"}
	}
	if status >= 500 {
		return Verdict{Class: failure.Transient, Reason: "ServerError"}
	}
	return Verdict{Class: failure.Transient, Reason: fmt.Sprintf("Status%d", status)}
}

// ReasonInvalidImageURL is the reason of a URL the service could not fetch, and of one the
// client refuses before sending (not an absolute http(s) URL: that one is Permanent).
const ReasonInvalidImageURL = "InvalidImageUrl"

// retryable reports whether the client itself tries a failed call again: network errors
// and timeouts, and the statuses the Azure SDK retries. Everything else goes back to the
// caller at once, classified.
func retryable(status int, transportErr error) bool {
	if transportErr != nil {
		return true
	}
	switch status {
	case http.StatusRequestTimeout, http.StatusTooManyRequests, http.StatusInternalServerError,
		http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// isWord reports whether s looks like an error code (letters and digits, not a number),
// so that a free-form or numeric code never becomes a reason.
func isWord(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	letter := false
	for _, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
			letter = true
		case c >= '0' && c <= '9':
		default:
			return false
		}
	}
	return letter
}

// firstWord returns the first of a, b that looks like an error code, or "".
func firstWord(a, b string) string {
	if isWord(a) {
		return a
	}
	if isWord(b) {
		return b
	}
	return ""
}
