package uploader

import (
	"fmt"

	"imgpipe/pkg/failure"
	"imgpipe/pkg/failure/awserr"
)

// Reasons of the failures the uploader gives to errors that are not S3 error codes (the
// table's, in awserr).
const (
	ReasonConnectionRefused = awserr.ReasonConnectionRefused
	ReasonConnectionReset   = awserr.ReasonConnectionReset
	ReasonNetwork           = awserr.ReasonNetwork
	ReasonTimeout           = awserr.ReasonTimeout
	ReasonRequestFailed     = awserr.ReasonRequestFailed
)

// classifyS3 classifies an error of one S3 call with the AWS table (awserr), with op as its
// context ("put upload/a.jpg"). A cancelled call keeps context.Canceled unclassified, so its
// reason reads "Canceled". A setup fault (a missing bucket, access denied) is transient for
// the pipeline, which waits for an operator to mend it; the uploader does not retry it (see
// retryable).
func classifyS3(op string, err error) error {
	if err == nil {
		return nil
	}
	return awserr.Classify(fmt.Errorf("%s: %w", op, err))
}

// retryable reports whether the uploader tries a failed file again: not after a permanent
// failure, nor after a setup fault, which fails every file alike until an operator mends it.
func retryable(err error) bool {
	return !failure.IsPermanent(err) && !failure.IsSetup(err)
}
