// Package failure classifies errors once, where they are born, so that a single retry policy
// elsewhere can decide what to do with them.
//
// Every error that crosses a stage boundary in the pipeline carries one of three classes:
//
//   - Permanent: retrying can never succeed (an invalid image, a malformed event, a bad key).
//     The message goes to a dead-letter queue with its reason at once.
//   - Transient: a retry may succeed (a 500, a timeout, a refused connection).
//   - Throttled: the service asked us to slow down, optionally saying for how long.
//
// An unclassified error is treated as Transient: losing a message because of an unexpected
// error is worse than retrying it until the queue's redrive policy gives up.
//
// Independently of its class, an error can be a setup fault: it says more about the
// deployment than about the message (access denied, a missing bucket, topic or queue, a
// refused key, a URL the far side cannot fetch). Every message would fail alike until an
// operator mends the setup, so a consumer must not dead-letter such a message as bad input: a
// run of setup faults opens the analyzer's circuit and stops its intake, and a command-line
// run stops retrying. Setup faults are Transient or Throttled, never Permanent. The tables
// that decide each cloud error's class and setup mark live next to their SDK: awserr (S3 and
// SQS), grpcerr (Pub/Sub and Firestore) and pkg/vision (Azure AI Vision); docs/errors.md
// lists them.
package failure

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Class is the retry class of an error.
type Class int

const (
	// Transient errors may succeed on retry. It is the zero value on purpose.
	Transient Class = iota
	// Throttled errors are transient errors where the far side asked for less traffic.
	Throttled
	// Permanent errors can never succeed on retry.
	Permanent
)

// String returns the lower-case name used in logs, metrics and DLQ attributes.
func (c Class) String() string {
	switch c {
	case Transient:
		return "transient"
	case Throttled:
		return "throttled"
	case Permanent:
		return "permanent"
	default:
		return fmt.Sprintf("class(%d)", int(c))
	}
}

// ParseClass is the inverse of Class.String.
func ParseClass(s string) (Class, error) {
	switch s {
	case "transient":
		return Transient, nil
	case "throttled":
		return Throttled, nil
	case "permanent":
		return Permanent, nil
	}
	return 0, fmt.Errorf("unknown failure class %q", s)
}

// Error is a classified error. Reason is a short stable machine-readable code
// (for example "InvalidImageFormat" or "MalformedEvent") used in DLQ attributes and metrics;
// the wrapped error carries the human detail.
type Error struct {
	Class      Class
	Reason     string
	RetryAfter time.Duration // set only for Throttled errors that said how long to wait
	// Setup marks a setup fault (see the package documentation); never set on a Permanent
	// error.
	Setup bool
	Err   error
}

func (e *Error) Error() string {
	kind := e.Class.String()
	if e.Setup {
		kind += ", setup"
	}
	if e.Err == nil {
		return fmt.Sprintf("%s (%s)", e.Reason, kind)
	}
	return fmt.Sprintf("%s (%s): %v", e.Reason, kind, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// New wraps err with a class and a reason. A nil err yields nil.
func New(class Class, reason string, err error) error {
	if err == nil {
		return nil
	}
	return &Error{Class: class, Reason: reason, Err: err}
}

// SetupFault marks err as a setup fault of the given class (Transient or Throttled; a
// Permanent class is taken as Transient, since a mended setup makes the message work). A nil
// err yields nil.
func SetupFault(class Class, reason string, err error) error {
	if err == nil {
		return nil
	}
	return Verdict{Class: class, Reason: reason, Setup: true}.Wrap(err)
}

// Verdict is what a classification table decides of an error: its class, its reason and
// whether it is a setup fault.
type Verdict struct {
	Class  Class
	Reason string
	Setup  bool // never with Permanent (see SetupFault)
}

// Wrap returns err classified by v; err must not be nil.
func (v Verdict) Wrap(err error) *Error {
	class := v.Class
	if v.Setup && class == Permanent {
		class = Transient
	}
	return &Error{Class: class, Reason: v.Reason, Setup: v.Setup, Err: err}
}

// Settled reports whether err needs no classification: nil, a call its caller cancelled
// (context.Canceled in its chain; ReasonOf reads "Canceled"), or an error already classified.
// The tables classify only the rest.
func Settled(err error) bool {
	var fe *Error
	return err == nil || errors.Is(err, context.Canceled) || errors.As(err, &fe)
}

// Permanentf returns a permanent error with a formatted message.
func Permanentf(reason, format string, args ...any) error {
	return &Error{Class: Permanent, Reason: reason, Err: fmt.Errorf(format, args...)}
}

// Transientf returns a transient error with a formatted message.
func Transientf(reason, format string, args ...any) error {
	return &Error{Class: Transient, Reason: reason, Err: fmt.Errorf(format, args...)}
}

// ThrottledAfter returns a throttled error that asks the caller to wait at least d
// (zero when the far side did not say).
func ThrottledAfter(reason string, d time.Duration, err error) error {
	return &Error{Class: Throttled, Reason: reason, RetryAfter: d, Err: err}
}

// ClassOf returns the class of err: the class of the outermost *Error in its chain,
// Transient for context deadline errors and anything unclassified.
// A nil error has no class; ClassOf(nil) returns Transient and callers must not ask.
func ClassOf(err error) Class {
	var fe *Error
	if errors.As(err, &fe) {
		return fe.Class
	}
	return Transient
}

// ReasonOf returns the reason of the outermost *Error in err's chain, or a generic reason
// derived from the error kind.
func ReasonOf(err error) string {
	var fe *Error
	if errors.As(err, &fe) && fe.Reason != "" {
		return fe.Reason
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "Timeout"
	case errors.Is(err, context.Canceled):
		return "Canceled"
	}
	return "Unclassified"
}

// RetryAfterOf returns the wait the far side asked for, or zero.
func RetryAfterOf(err error) time.Duration {
	var fe *Error
	if errors.As(err, &fe) {
		return fe.RetryAfter
	}
	return 0
}

// IsPermanent reports whether err can never succeed on retry.
func IsPermanent(err error) bool { return err != nil && ClassOf(err) == Permanent }

// IsSetup reports whether the outermost *Error in err's chain is a setup fault.
func IsSetup(err error) bool {
	var fe *Error
	return errors.As(err, &fe) && fe.Setup
}
