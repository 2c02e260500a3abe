package indexstore

import (
	"context"
	"errors"
	"testing"

	"cloud.google.com/go/firestore"
	"go.uber.org/goleak"

	"imgpipe/pkg/record"
)

// TestBatcherCloseLeavesNothing checks that Close stops the batcher's goroutine, is safe to
// call twice, and that Apply after Close fails instead of hanging.
func TestBatcherCloseLeavesNothing(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	s := &Store{docs: &firestore.CollectionRef{}, tombstones: &firestore.CollectionRef{}}
	b := s.NewBatcher(nil)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	_, err := b.Apply(context.Background(), &record.Analysis{SchemaVersion: record.SchemaVersion, Event: record.Created, Bucket: "b", Key: "k"})
	if !errors.Is(err, ErrClosed) {
		t.Fatalf("Apply after Close: %v", err)
	}
}
