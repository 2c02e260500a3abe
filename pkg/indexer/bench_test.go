package indexer_test

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"imgpipe/pkg/indexer"
	"imgpipe/pkg/publish"
	"imgpipe/pkg/record"
)

// BenchmarkIndexer measures the indexer end to end on the emulators: b.N records wait in the
// subscription, then one indexer applies them all, with one transaction per record or batched.
// docs/s is the throughput; cpu-ns/msg the CPU time (user and system) of this process (the
// indexer; the emulators are processes of their own) per message.
//
//	go test -run '^$' -bench Indexer -benchtime 3000x ./pkg/indexer/
func BenchmarkIndexer(b *testing.B) {
	for _, size := range []int{1, 100} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			st, res := bootstrap(b, 5)
			recs := make([]*record.Analysis, b.N)
			for i := range recs {
				recs[i] = rec(record.Created, res.Bucket, fmt.Sprintf("bench/%d.jpg", i), 1)
			}
			pub := publish.New(pubsubClient(b, st.ProjectID), res.TopicName, nil)
			publishAll(b, pub, recs)
			pub.Close()
			b.ResetTimer()
			start, cpu := time.Now(), cpuTime()
			r := startIndexer(b, st.ProjectID, res, &indexer.Options{BatchSize: size})
			eventually(b, "every record applied", func() bool { return settled(r) >= int64(b.N) })
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "docs/s")
			b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/msg")
			b.StopTimer()
			r.stop()
		})
	}
}

// cpuTime is the CPU time this process used so far, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
