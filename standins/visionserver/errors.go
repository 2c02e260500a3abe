package visionserver

import (
	"encoding/json"
	"fmt"
	"net/http"

	"imgpipe/internal/visionstandin"
)

// Error codes the stand-in answers with. CodeInvalidRequest is the outer code of every 400;
// the others appear as the inner error code.
const (
	CodeInvalidRequest            = "InvalidRequest"
	CodeInvalidImageFormat        = "InvalidImageFormat"
	CodeInvalidImageSize          = "InvalidImageSize"
	CodeInvalidImageURL           = "InvalidImageUrl"
	CodeNotSupportedImage         = "NotSupportedImage"
	CodeBadArgument               = "BadArgument"
	CodeUnsupportedMediaType      = "UnsupportedMediaType"
	CodeNotSupportedVisualFeature = "NotSupportedVisualFeature"
	CodeNotSupportedLanguage      = "NotSupportedLanguage"
	CodeInvalidModel              = "InvalidModel"
)

// ErrorResponse is the JSON body of every error answer:
// {"error":{"code":...,"message":...,"innererror":{"code":...,"message":...}}}.
// v3.2 answers also carry a top-level requestId.
type ErrorResponse struct {
	Error     ErrorDetail `json:"error"`
	RequestID string      `json:"requestId,omitempty"`
}

// ErrorDetail is the "error" member of an ErrorResponse.
type ErrorDetail struct {
	Code       string      `json:"code"`
	Message    string      `json:"message"`
	InnerError *InnerError `json:"innererror,omitempty"`
}

// InnerError is the optional "innererror" member of an ErrorDetail.
type InnerError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// apiError is an error answer before it is written.
type apiError struct {
	status    int
	code      string
	message   string
	innerCode string
	innerMsg  string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("%d %s/%s: %s", e.status, e.code, e.innerCode, e.message)
}

func invalid(inner, msg string) *apiError {
	return &apiError{status: http.StatusBadRequest, code: CodeInvalidRequest, message: msg, innerCode: inner, innerMsg: msg}
}

func badArgument(format string, args ...any) *apiError {
	return invalid(CodeBadArgument, fmt.Sprintf(format, args...))
}

func invalidFormat() *apiError {
	e := invalid(CodeInvalidImageFormat, "Input data is not a valid image.")
	e.message = "Image format is not valid."
	return e
}

func invalidDimensions() *apiError {
	return invalid(CodeInvalidImageSize, fmt.Sprintf(
		"The image dimension is not allowed to be smaller than %d and larger than %d.", minDimension, maxDimension))
}

func invalidURL(msg string) *apiError { return invalid(CodeInvalidImageURL, msg) }

func unsupportedMediaType(ct string) *apiError {
	return &apiError{
		status: http.StatusUnsupportedMediaType, code: CodeInvalidRequest,
		message:   fmt.Sprintf("Content type %q is not supported; send application/json with a url, or the image bytes as application/octet-stream.", ct),
		innerCode: CodeUnsupportedMediaType, innerMsg: "Unsupported media type.",
	}
}

// gatewayError is the shape Azure's API gateway uses for 401, 403, 404 and 429: a numeric
// string code and no inner error.
func gatewayError(status int, msg string) *apiError {
	return &apiError{status: status, code: fmt.Sprint(status), message: msg}
}

func notFound() *apiError { return gatewayError(http.StatusNotFound, "Resource not found") }

func accessDenied() *apiError {
	return gatewayError(http.StatusUnauthorized, "Access denied due to invalid subscription key or wrong API endpoint. "+
		"Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource.")
}

func quotaExceeded() *apiError {
	return gatewayError(http.StatusForbidden, "Out of call volume quota for ComputerVision pricing tier. "+
		"Please retry after the quota period ends or upgrade your pricing tier.")
}

func throttled(op string, secs int64) *apiError {
	unit := "seconds"
	if secs == 1 {
		unit = "second"
	}
	return gatewayError(http.StatusTooManyRequests, fmt.Sprintf(
		"Requests to the %s Operation under Computer Vision API have exceeded rate limit of your current pricing tier. "+
			"Please retry after %d %s.", op, secs, unit))
}

func transientError(kind string) *apiError {
	switch kind {
	case visionstandin.KindServiceUnavailable:
		return &apiError{status: http.StatusServiceUnavailable, code: "ServiceUnavailable",
			message: "The service is temporarily unavailable. Please try again later."}
	case visionstandin.KindTimeout:
		return &apiError{status: http.StatusInternalServerError, code: "InternalServerError",
			message: "The operation timed out.", innerCode: visionstandin.KindTimeout, innerMsg: "The operation timed out."}
	case visionstandin.KindFailedToProcess:
		return &apiError{status: http.StatusInternalServerError, code: "InternalServerError",
			message: "Failed to process the image.", innerCode: visionstandin.KindFailedToProcess, innerMsg: "Failed to process the image."}
	default:
		return &apiError{status: http.StatusInternalServerError, code: "InternalServerError",
			message: "An internal server error occurred.", innerCode: visionstandin.KindInternalServerError, innerMsg: "An internal server error occurred."}
	}
}

// writeError writes e. requestID is put in the body too when bodyRequestID is set (v3.2).
func writeError(w http.ResponseWriter, e *apiError, requestID string, bodyRequestID bool) {
	body := ErrorResponse{Error: ErrorDetail{Code: e.code, Message: e.message}}
	if e.innerCode != "" {
		body.Error.InnerError = &InnerError{Code: e.innerCode, Message: e.innerMsg}
	}
	if bodyRequestID {
		body.RequestID = requestID
	}
	w.Header().Set("x-ms-error-code", e.code)
	writeJSON(w, e.status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only our own types reach here; a failure is a bug in this package.
		http.Error(w, "encode response: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
