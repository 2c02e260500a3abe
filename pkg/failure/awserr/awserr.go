// Package awserr is the one table that classifies the errors of the AWS SDK's S3 and SQS
// clients: every error code and HTTP status they answer with, and the transport errors met on
// the way, mapped to a pkg/failure class, a reason and, for a fault of the deployment rather
// than of the request, the setup mark. The analyzer, the uploader and any other caller of S3
// or SQS classify through Classify, so one error means the same everywhere; docs/errors.md
// explains each decision.
//
// The rules, in order:
//   - A cancelled call (context.Canceled) is returned as is: the caller ended it, and
//     failure.ReasonOf reads "Canceled".
//   - An error code in Codes decides (the object's or request's own faults are Permanent; the
//     deployment's are setup faults; the service's slow-downs are Throttled).
//   - An unknown code falls back on its HTTP status: 401 and 403 are setup faults, 429 and 503
//     are Throttled, 501 is a setup fault (the store does not implement what is asked), and
//     every other status is Transient: an unknown answer is never taken as proof that the
//     message is bad.
//   - Without an API answer: a signing failure (no credentials) or a missing region or
//     endpoint is a setup fault; a timeout, a refused, reset or closed connection and any
//     other network error are Transient; anything else is Transient "RequestFailed".
package awserr

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"syscall"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"imgpipe/pkg/failure"
)

// The table's verdicts; Lookup fills in the reason. Setup marks a fault of the deployment
// (credentials, permissions, a missing bucket or queue, the wrong region): every request fails
// alike until an operator mends it.
var (
	permanent = failure.Verdict{Class: failure.Permanent}
	transient = failure.Verdict{Class: failure.Transient}
	throttled = failure.Verdict{Class: failure.Throttled}
	setup     = failure.Verdict{Class: failure.Transient, Setup: true}
)

// Codes is the table of the S3 and SQS error codes the pipeline can meet. SQS codes appear in
// both of their spellings (the JSON protocol's and the query protocol's
// AWS.SimpleQueueService.* names).
var Codes = map[string]failure.Verdict{
	// S3: the object or the request itself is at fault; retrying it cannot help.
	"NoSuchKey":           permanent, // the object is gone (callers of a read handle it first)
	"NotFound":            permanent, // HEAD of a missing object
	"NoSuchVersion":       permanent,
	"NoSuchUpload":        permanent, // a multipart upload that was aborted or completed
	"InvalidRange":        permanent, // a range past the end: the object is empty
	"PreconditionFailed":  permanent, // If-Match: the object changed since it was read
	"InvalidObjectState":  permanent, // archived (Glacier): not readable without a restore
	"MethodNotAllowed":    permanent, // e.g. GET of a delete marker
	"EntityTooLarge":      permanent,
	"EntityTooSmall":      permanent,
	"KeyTooLongError":     permanent,
	"MetadataTooLarge":    permanent,
	"InvalidArgument":     permanent,
	"InvalidRequest":      permanent,
	"InvalidDigest":       permanent, // a Content-MD5 that is not an MD5
	"InvalidPart":         permanent,
	"InvalidPartOrder":    permanent,
	"InvalidStorageClass": permanent,
	// S3: the body arrived different from its checksum (torn in transit, or the file changed
	// while it was read): sending it again can succeed.
	"BadDigest":                 transient,
	"XAmzContentSHA256Mismatch": transient,
	"IncompleteBody":            transient,
	"RequestTimeout":            transient, // S3's 400 for a connection idle too long
	"InternalError":             transient,
	"OperationAborted":          transient, // a conflicting operation on the bucket
	// S3: the deployment is at fault. A missing bucket or a denied read fails every object of
	// the bucket alike: an operator mends it, the message must not be dead-lettered as bad.
	"NoSuchBucket":                       setup,
	"AccessDenied":                       setup,
	"AllAccessDisabled":                  setup,
	"AccountProblem":                     setup,
	"InvalidAccessKeyId":                 setup,
	"SignatureDoesNotMatch":              setup,
	"ExpiredToken":                       setup,
	"TokenRefreshRequired":               setup,
	"InvalidToken":                       setup,
	"InvalidSecurity":                    setup,
	"RequestTimeTooSkewed":               setup, // the clock is wrong
	"PermanentRedirect":                  setup, // the bucket is in another region
	"AuthorizationHeaderMalformed":       setup, // signed for the wrong region
	"IllegalLocationConstraintException": setup,
	"InvalidBucketName":                  setup,
	"NotSignedUp":                        setup,
	"NotImplemented":                     setup, // the store does not implement a header or operation used
	"InvalidPayer":                       setup,
	"MissingSecurityHeader":              setup,
	"UnauthorizedAccess":                 setup,
	// S3 and SQS asking for less traffic.
	"SlowDown":                  throttled,
	"ServiceUnavailable":        throttled, // S3's 503 "reduce your request rate"
	"Throttling":                throttled,
	"ThrottlingException":       throttled,
	"RequestLimitExceeded":      throttled,
	"RequestThrottled":          throttled,
	"RequestThrottledException": throttled,
	"TooManyRequestsException":  throttled,
	"OverLimit":                 throttled, // SQS: too many messages in flight
	"KmsThrottled":              throttled,
	// SQS: the request itself is malformed.
	"InvalidAttributeName":                                permanent,
	"InvalidAttributeValue":                               permanent,
	"InvalidParameterValue":                               permanent,
	"InvalidParameterCombination":                         permanent,
	"MissingParameter":                                    permanent,
	"InvalidMessageContents":                              permanent, // characters SQS does not take
	"BatchRequestTooLong":                                 permanent,
	"TooManyEntriesInBatchRequest":                        permanent,
	"BatchEntryIdsNotDistinct":                            permanent,
	"EmptyBatchRequest":                                   permanent,
	"InvalidBatchEntryId":                                 permanent,
	"InvalidIdFormat":                                     permanent,
	"ReceiptHandleIsInvalid":                              permanent, // a handle of another receive, or expired
	"MessageNotInflight":                                  permanent, // visibility change of a message not in flight
	"QueueNameExists":                                     permanent,
	"AWS.SimpleQueueService.BatchEntryIdsNotDistinct":     permanent,
	"AWS.SimpleQueueService.BatchRequestTooLong":          permanent,
	"AWS.SimpleQueueService.EmptyBatchRequest":            permanent,
	"AWS.SimpleQueueService.InvalidBatchEntryId":          permanent,
	"AWS.SimpleQueueService.TooManyEntriesInBatchRequest": permanent,
	"AWS.SimpleQueueService.MessageNotInflight":           permanent,
	// SQS: transient.
	"InternalFailure":                             transient,
	"PurgeQueueInProgress":                        transient, // one purge a minute
	"AWS.SimpleQueueService.PurgeQueueInProgress": transient,
	// SQS: the deployment is at fault.
	"QueueDoesNotExist":                           setup,
	"AWS.SimpleQueueService.NonExistentQueue":     setup,
	"QueueDeletedRecently":                        setup,
	"AWS.SimpleQueueService.QueueDeletedRecently": setup,
	"InvalidAddress":                              setup, // a queue URL that names no queue
	"UnsupportedOperation":                        setup,
	"AWS.SimpleQueueService.UnsupportedOperation": setup,
	"ResourceNotFoundException":                   setup, // StartMessageMoveTask of an unknown queue
	"AccessDeniedException":                       setup,
	"InvalidClientTokenId":                        setup,
	"UnrecognizedClientException":                 setup,
	"MissingAuthenticationToken":                  setup,
	"IncompleteSignature":                         setup,
	"OptInRequired":                               setup,
	"KmsAccessDenied":                             setup,
	"KmsDisabled":                                 setup,
	"KmsInvalidKeyUsage":                          setup,
	"KmsInvalidState":                             setup,
	"KmsNotFound":                                 setup,
	"KmsOptInRequired":                            setup,
}

// Reasons given to errors that carry no S3 or SQS error code.
const (
	ReasonConnectionRefused = "ConnectionRefused"
	ReasonConnectionReset   = "ConnectionReset"
	ReasonNetwork           = "NetworkError"
	ReasonTimeout           = "Timeout"
	ReasonRequestFailed     = "RequestFailed"
	ReasonNoCredentials     = "NoCredentials"
	ReasonNoEndpoint        = "NoEndpoint"
)

// Lookup is the table's verdict on an error code and HTTP status (0 when unknown); its reason
// is the code, or "HTTP<status>" when there is none.
func Lookup(code string, status int) failure.Verdict {
	reason := code
	if reason == "" {
		reason = fmt.Sprintf("HTTP%d", status)
	}
	v, ok := Codes[code]
	switch {
	case ok:
	case status == http.StatusUnauthorized || status == http.StatusForbidden || status == http.StatusNotImplemented:
		v = setup
	case status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable:
		v = throttled
	default:
		v = transient
	}
	v.Reason = reason
	return v
}

// Code returns the error code of the S3 or SQS answer in err's chain, or "".
func Code(err error) string {
	var api smithy.APIError
	if errors.As(err, &api) {
		return api.ErrorCode()
	}
	return ""
}

// Classify returns err classified by the table (nil for nil). An error already classified
// with pkg/failure, and a cancelled call, are returned unchanged.
func Classify(err error) error {
	if failure.Settled(err) {
		return err
	}
	var api smithy.APIError
	if errors.As(err, &api) {
		status := 0
		var re *smithyhttp.ResponseError
		if errors.As(err, &re) {
			status = re.HTTPStatusCode()
		}
		return Lookup(api.ErrorCode(), status).Wrap(err)
	}
	return transportVerdict(err).Wrap(err)
}

// transportVerdict classifies an error that carries no S3 or SQS answer.
func transportVerdict(err error) failure.Verdict {
	var (
		signing  *v4.SigningError
		region   *aws.MissingRegionError
		endpoint *aws.EndpointNotFoundError
		netErr   net.Error
		opErr    *net.OpError
		dnsErr   *net.DNSError
	)
	switch {
	case errors.As(err, &signing):
		return failure.Verdict{Class: failure.Transient, Reason: ReasonNoCredentials, Setup: true}
	case errors.As(err, &region), errors.As(err, &endpoint):
		return failure.Verdict{Class: failure.Transient, Reason: ReasonNoEndpoint, Setup: true}
	case errors.Is(err, syscall.ECONNREFUSED):
		return failure.Verdict{Class: failure.Transient, Reason: ReasonConnectionRefused}
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		return failure.Verdict{Class: failure.Transient, Reason: ReasonConnectionReset}
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return failure.Verdict{Class: failure.Transient, Reason: ReasonTimeout}
	case errors.As(err, &opErr), errors.As(err, &dnsErr):
		return failure.Verdict{Class: failure.Transient, Reason: ReasonNetwork}
	}
	return failure.Verdict{Class: failure.Transient, Reason: ReasonRequestFailed}
}
