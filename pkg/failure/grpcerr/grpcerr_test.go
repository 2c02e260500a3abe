package grpcerr

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"imgpipe/pkg/failure"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		err    error
		class  failure.Class
		setup  bool
		reason string
	}{
		{status.Error(codes.InvalidArgument, "attribute too long"), failure.Permanent, false, "InvalidArgument"},
		{status.Error(codes.OutOfRange, "x"), failure.Permanent, false, "OutOfRange"},
		{status.Error(codes.NotFound, "topic"), failure.Transient, true, "NotFound"},
		{status.Error(codes.PermissionDenied, "x"), failure.Transient, true, "PermissionDenied"},
		{status.Error(codes.Unauthenticated, "x"), failure.Transient, true, "Unauthenticated"},
		{status.Error(codes.FailedPrecondition, "the query requires an index"), failure.Transient, true, "FailedPrecondition"},
		{status.Error(codes.ResourceExhausted, "quota"), failure.Throttled, false, "ResourceExhausted"},
		{status.Error(codes.Aborted, "contention"), failure.Transient, false, "Aborted"},
		{status.Error(codes.Unavailable, "x"), failure.Transient, false, "Unavailable"},
		{status.Error(codes.DeadlineExceeded, "x"), failure.Transient, false, "DeadlineExceeded"},
		{fmt.Errorf("publish a/b: %w", status.Error(codes.PermissionDenied, "x")), failure.Transient, true, "PermissionDenied"},
		{fmt.Errorf("x: %w", context.DeadlineExceeded), failure.Transient, false, "DeadlineExceeded"},
		{errors.New("no status"), failure.Transient, false, "Unknown"},
	}
	for _, tc := range tests {
		err := Classify(tc.err)
		if failure.ClassOf(err) != tc.class || failure.IsSetup(err) != tc.setup || failure.ReasonOf(err) != tc.reason || !errors.Is(err, tc.err) {
			t.Errorf("%v: class %v setup %v reason %q, want %v %v %q", tc.err, failure.ClassOf(err), failure.IsSetup(err), failure.ReasonOf(err), tc.class, tc.setup, tc.reason)
		}
	}
	if Classify(nil) != nil {
		t.Error("Classify(nil) != nil")
	}
	canceled := fmt.Errorf("x: %w", context.Canceled)
	if Classify(canceled) != canceled {
		t.Error("a cancelled call was classified")
	}
	pre := failure.Permanentf("Mine", "x")
	if failure.ReasonOf(Classify(pre)) != "Mine" {
		t.Error("an error already classified was reclassified")
	}
}

// TestEveryCode: the table decides every code but OK, and no setup fault is permanent.
func TestEveryCode(t *testing.T) {
	for c := codes.Canceled; c <= codes.Unauthenticated; c++ {
		e, ok := Codes[c]
		if !ok {
			t.Errorf("%s is not in the table", c)
		}
		if e.Setup && e.Class == failure.Permanent {
			t.Errorf("%s: a setup fault marked permanent", c)
		}
	}
}
