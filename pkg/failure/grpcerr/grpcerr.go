// Package grpcerr is the one table that classifies the gRPC status codes Google Cloud's
// clients (Pub/Sub, Firestore) answer with: each code mapped to a pkg/failure class, the code's
// name as reason and, for a fault of the deployment rather than of the request, the setup
// mark. pkg/publish, pkg/indexstore and dlq-replay's Pub/Sub edge classify through Classify;
// docs/errors.md explains each decision.
//
// What a caller handles before it asks the table: an expected NotFound (a document that does
// not exist) or AlreadyExists (a create precondition), and its own context's cancellation.
package grpcerr

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"imgpipe/pkg/failure"
)

// Codes is the table. Every gRPC code but OK is in it; Lookup fills in the reason. Setup marks
// a fault of the deployment (a missing topic or database, a denied identity, a missing index):
// every request fails alike until an operator mends it.
var Codes = map[codes.Code]failure.Verdict{
	// The request itself is wrong: a record Pub/Sub or Firestore refuses (too large, a bad
	// attribute or field) can never be accepted. One known exception is Firestore's answer to
	// the commit of an expired transaction ("The referenced transaction has expired or is no
	// longer valid"), also InvalidArgument: the transaction, not the record, must be retried,
	// and that is the transaction's owner's to do (Google's Node and Java clients retry it).
	codes.InvalidArgument: {Class: failure.Permanent},
	codes.OutOfRange:      {Class: failure.Permanent},
	codes.AlreadyExists:   {Class: failure.Permanent},
	// The deployment is at fault.
	codes.NotFound:         {Class: failure.Transient, Setup: true}, // the topic, subscription or database
	codes.PermissionDenied: {Class: failure.Transient, Setup: true},
	codes.Unauthenticated:  {Class: failure.Transient, Setup: true},
	codes.Unimplemented:    {Class: failure.Transient, Setup: true}, // an emulator or endpoint without the method
	// FailedPrecondition says the system is not in the state the call needs: a missing index,
	// a database in the wrong mode, or a transaction that can no longer commit. None is the
	// record's fault; retrying after the state changes works.
	codes.FailedPrecondition: {Class: failure.Transient, Setup: true},
	// Asking for less traffic.
	codes.ResourceExhausted: {Class: failure.Throttled},
	// Transient.
	codes.Canceled:         {Class: failure.Transient},
	codes.Unknown:          {Class: failure.Transient},
	codes.DeadlineExceeded: {Class: failure.Transient},
	codes.Aborted:          {Class: failure.Transient}, // contention: retry the transaction
	codes.Internal:         {Class: failure.Transient},
	codes.Unavailable:      {Class: failure.Transient},
	codes.DataLoss:         {Class: failure.Transient},
}

// Lookup is the table's verdict on a code; its reason is the code's name.
func Lookup(c codes.Code) failure.Verdict {
	v, ok := Codes[c]
	if !ok {
		v = failure.Verdict{Class: failure.Transient}
	}
	v.Reason = c.String()
	return v
}

// Classify returns err classified by the table (nil for nil). An error already classified
// with pkg/failure, and a call cancelled by its own context (context.Canceled in its chain),
// are returned unchanged; an error that carries no gRPC status is classified as Unknown.
func Classify(err error) error {
	if failure.Settled(err) {
		return err
	}
	c := status.Code(err)
	if c == codes.Unknown && errors.Is(err, context.DeadlineExceeded) {
		c = codes.DeadlineExceeded
	}
	return Lookup(c).Wrap(err)
}
