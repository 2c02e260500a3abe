package indexstore_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"imgpipe/internal/devstack"
	"imgpipe/internal/stacktest"
	"imgpipe/pkg/failure"
	"imgpipe/pkg/indexstore"
	"imgpipe/pkg/record"
	"imgpipe/pkg/s3event"
)

// TestRefusedTransactionIsNotPermanent restarts Firestore between a transaction's read and its
// commit, in a single and in a batched write: Firestore refuses the commit (InvalidArgument,
// "Transaction is invalid or closed"), and the error must not be permanent, or the indexer
// would dead-letter a valid record. A new transaction then takes the record.
func TestRefusedTransactionIsNotPermanent(t *testing.T) {
	st := stacktest.Require(t, devstack.Firestore)
	ctx := context.Background()
	s := indexstore.New(newClient(t), stacktest.Unique("images"), nil)
	restartOnce := func() {
		indexstore.SetOnRead(s, nil)
		if err := st.RestartFirestore(ctx, nil); err != nil {
			t.Fatalf("restart: %v", err)
		}
	}
	r := &record.Analysis{SchemaVersion: record.SchemaVersion, Event: record.Created, Bucket: "b", Key: "upload/a.jpg",
		Sequencer: s3event.FormatSequencer(1), EventTime: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}
	indexstore.SetOnRead(s, restartOnce)
	_, err := s.Apply(ctx, r)
	if err == nil {
		t.Fatal("the transaction survived the restart: nothing was tested")
	}
	if failure.IsPermanent(err) || failure.ReasonOf(err) != indexstore.ReasonRejected {
		t.Fatalf("Apply: %v classed %s (%s), want transient %s", err, failure.ClassOf(err), failure.ReasonOf(err), indexstore.ReasonRejected)
	}
	if out, err := s.Apply(ctx, r); err != nil || out != indexstore.Written {
		t.Fatalf("Apply in a new transaction: %v, %v", out, err)
	}

	// A batch whose commit is refused falls back to one transaction per record; the
	// restarts break the batch's transaction and the first of those (and may cut the other's
	// calls: Unavailable). None of it may be permanent.
	r2 := *r
	r2.Key, r2.Sequencer = "upload/b.jpg", s3event.FormatSequencer(2)
	restarts := 0
	indexstore.SetOnRead(s, func() {
		if restarts++; restarts <= 2 {
			if err := st.RestartFirestore(ctx, nil); err != nil {
				t.Fatalf("restart: %v", err)
			}
		}
	})
	res := s.ApplyBatch(ctx, []*record.Analysis{r, &r2})
	indexstore.SetOnRead(s, nil)
	refused := 0
	for i, x := range res {
		if x.Err != nil {
			if failure.IsPermanent(x.Err) {
				t.Fatalf("ApplyBatch record %d: %v classed permanent", i, x.Err)
			}
			refused++
		} else if want := []indexstore.Outcome{indexstore.Stale, indexstore.Written}[i]; x.Outcome != want {
			t.Errorf("ApplyBatch record %d: %s, want %s", i, x.Outcome, want)
		}
	}
	if refused == 0 {
		t.Fatal("no record of the batch was refused: nothing was tested")
	}
}

// TestOversizeRecordIsRefusedEveryTime: a record Firestore can never store is refused with
// the same reason in every transaction (the indexer dead-letters it once its retries are
// over).
func TestOversizeRecordIsRefusedEveryTime(t *testing.T) {
	stacktest.Require(t, devstack.Firestore)
	ctx := context.Background()
	s := indexstore.New(newClient(t), stacktest.Unique("images"), nil)
	r := &record.Analysis{SchemaVersion: record.SchemaVersion, Event: record.Created, Bucket: "b", Key: "upload/huge.jpg",
		Caption: strings.Repeat("x", 1100000), EventTime: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}
	for i := range 2 {
		_, err := s.Apply(ctx, r)
		if err == nil || failure.ReasonOf(err) != indexstore.ReasonRejected || failure.IsPermanent(err) {
			t.Fatalf("attempt %d: %v (%s, %s), want a transient %s", i, err, failure.ClassOf(err), failure.ReasonOf(err), indexstore.ReasonRejected)
		}
	}
}

// TestBatcherRetriesARefusedRecordAlone: a record Firestore refuses fails its first batch
// (its batch-mate is still written); retried, it is written alone, so it fails no batch of
// others again, and it is still refused with the same reason.
func TestBatcherRetriesARefusedRecordAlone(t *testing.T) {
	stacktest.Require(t, devstack.Firestore)
	ctx := context.Background()
	s := indexstore.New(newClient(t), stacktest.Unique("images"), nil)
	var mu sync.Mutex
	var batches []int
	b := s.NewBatcher(&indexstore.BatchOptions{MaxWait: 500 * time.Millisecond, OnBatch: func(n int, _ time.Duration) {
		mu.Lock()
		batches = append(batches, n)
		mu.Unlock()
	}})
	defer b.Close()
	at := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	huge := &record.Analysis{SchemaVersion: record.SchemaVersion, Event: record.Created, Bucket: "b", Key: "upload/huge.jpg",
		Caption: strings.Repeat("x", 1100000), EventTime: at}
	round := func(mate string) []int {
		t.Helper()
		mu.Lock()
		batches = nil
		mu.Unlock()
		good := &record.Analysis{SchemaVersion: record.SchemaVersion, Event: record.Created, Bucket: "b", Key: mate, Caption: "fine", EventTime: at}
		var wg sync.WaitGroup
		var hugeErr, goodErr error
		wg.Go(func() { _, hugeErr = b.Apply(ctx, huge) })
		wg.Go(func() { _, goodErr = b.Apply(ctx, good) })
		wg.Wait()
		if failure.ReasonOf(hugeErr) != indexstore.ReasonRejected || goodErr != nil {
			t.Fatalf("huge: %v; %s: %v; want the huge one refused (%s) and the other written", hugeErr, mate, goodErr, indexstore.ReasonRejected)
		}
		mu.Lock()
		defer mu.Unlock()
		return append([]int(nil), batches...)
	}
	sum := func(ns []int) (n int) {
		for _, x := range ns {
			n += x
		}
		return n
	}
	if got := round("upload/first.jpg"); sum(got) != 2 {
		t.Fatalf("first round batches %v, want both records batched", got)
	}
	if got := round("upload/second.jpg"); sum(got) != 1 {
		t.Errorf("second round batches %v, want the other record only (the refused one written by itself)", got)
	}
}
