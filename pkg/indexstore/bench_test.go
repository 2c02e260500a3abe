package indexstore_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"imgpipe/internal/stacktest"
	"imgpipe/pkg/indexstore"
	"imgpipe/pkg/record"
)

// BenchmarkApply measures documents written per second on the Firestore emulator with one
// transaction per record against batched transactions, both fed by the same number of
// concurrent callers (as the indexer's callbacks are, one per outstanding message).
//
//	go test -run '^$' -bench Apply -benchtime 2000x ./pkg/index/
func BenchmarkApply(b *testing.B) {
	const callers = 64
	run := func(b *testing.B, apply applier) {
		var next atomic.Int64
		var wg sync.WaitGroup
		errs := make(chan error, callers)
		b.ResetTimer()
		start := time.Now()
		for range callers {
			wg.Go(func() {
				for {
					i := next.Add(1)
					if i > int64(b.N) {
						return
					}
					r := rec(record.Created, fmt.Sprintf("bench/%d.jpg", i), uint64(i), "tag")
					if _, err := apply(context.Background(), r); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "docs/s")
		close(errs)
		for err := range errs {
			b.Fatal(err)
		}
	}
	b.Run("one-per-transaction", func(b *testing.B) {
		s := indexstore.New(newClient(b), stacktest.Unique("bench"), nil)
		run(b, s.Apply)
	})
	b.Run("batched", func(b *testing.B) {
		s := indexstore.New(newClient(b), stacktest.Unique("bench"), nil)
		bt := s.NewBatcher(nil)
		defer bt.Close()
		run(b, bt.Apply)
	})
}
