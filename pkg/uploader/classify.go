package uploader

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"

	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"imgpipe/pkg/failure"
)

// Reasons of the failures the uploader gives to errors that are not S3 error codes.
const (
	ReasonConnectionRefused = "ConnectionRefused"
	ReasonConnectionReset   = "ConnectionReset"
	ReasonNetwork           = "NetworkError"
	ReasonTimeout           = "Timeout"
	ReasonRequestFailed     = "RequestFailed"
)

// permanentCodes are S3 error codes that no retry can fix.
var permanentCodes = map[string]bool{
	"NoSuchBucket": true, "AccessDenied": true, "InvalidAccessKeyId": true,
	"SignatureDoesNotMatch": true, "InvalidBucketName": true, "KeyTooLongError": true,
	"EntityTooLarge": true, "EntityTooSmall": true, "MetadataTooLarge": true,
	"InvalidArgument": true, "InvalidRequest": true, "AccountProblem": true,
	"AllAccessDisabled": true, "InvalidObjectState": true, "MethodNotAllowed": true,
}

// throttledCodes are S3's ways of asking for less traffic.
var throttledCodes = map[string]bool{"SlowDown": true, "ServiceUnavailable": true, "Throttling": true, "RequestLimitExceeded": true}

// classifyS3 classifies an error of one S3 call, with op as its context ("put upload/a.jpg").
// A cancelled call keeps context.Canceled unclassified, so its reason reads "Canceled".
func classifyS3(op string, err error) error {
	if err == nil {
		return nil
	}
	wrapped := fmt.Errorf("%s: %w", op, err)
	if errors.Is(err, context.Canceled) {
		return wrapped
	}
	var api smithy.APIError
	if errors.As(err, &api) {
		code := api.ErrorCode()
		status := 0
		var re *smithyhttp.ResponseError
		if errors.As(err, &re) {
			status = re.HTTPStatusCode()
		}
		if code == "" {
			code = fmt.Sprintf("HTTP%d", status)
		}
		switch {
		case throttledCodes[code] || status == 503 || status == 429:
			return failure.ThrottledAfter(code, 0, wrapped)
		case permanentCodes[code]:
			return failure.New(failure.Permanent, code, wrapped)
		case status >= 500 || status == 408 || status == 0:
			return failure.New(failure.Transient, code, wrapped)
		case status >= 400:
			return failure.New(failure.Permanent, code, wrapped)
		}
		return failure.New(failure.Transient, code, wrapped)
	}
	var netErr net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return failure.New(failure.Transient, ReasonConnectionRefused, wrapped)
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		return failure.New(failure.Transient, ReasonConnectionReset, wrapped)
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return failure.New(failure.Transient, ReasonTimeout, wrapped)
	}
	var opErr *net.OpError
	var dnsErr *net.DNSError
	if errors.As(err, &opErr) || errors.As(err, &dnsErr) {
		return failure.New(failure.Transient, ReasonNetwork, wrapped)
	}
	// Anything else (a response that did not parse, a signing problem) is unclassified:
	// transient, as pkg/failure prescribes.
	return failure.New(failure.Transient, ReasonRequestFailed, wrapped)
}
