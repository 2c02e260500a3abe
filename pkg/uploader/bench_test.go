package uploader_test

import (
	"crypto/rand"
	"fmt"
	"path/filepath"
	"testing"

	"imgpipe/internal/devstack"
	"imgpipe/internal/stacktest"
	"imgpipe/pkg/uploader"
)

// BenchmarkPut uploads 2,000 small images and 10 large ones (16 MiB, multipart with 8 MiB
// parts) to the local stack's S3 stand-in, which also sends an event notification to SQS for
// every object, at two concurrency settings. Run with -benchtime=1x (each iteration is a whole
// Put, with Force so that nothing is skipped as a duplicate).
func BenchmarkPut(b *testing.B) {
	st := stacktest.Get(b)
	bt := stacktest.Bootstrap(b, st, devstack.Resources{})
	root := b.TempDir()
	small := filepath.Join(root, "small")
	files := map[string][]byte{}
	for i := range 2000 {
		files[fmt.Sprintf("d%02d/img-%04d.png", i%20, i)] = mustImage(b, int64(1000+i), 64, 48, "png")
	}
	writeTree(b, small, files)
	large := filepath.Join(root, "large")
	header := mustImage(b, 7, 64, 64, "jpeg")
	for i := range 10 {
		data := make([]byte, 16<<20)
		_, _ = rand.Read(data)
		copy(data, header)
		writeTree(b, large, map[string][]byte{fmt.Sprintf("big-%02d.jpg", i): data})
	}
	for _, set := range []struct {
		name string
		dir  string
	}{{"small2000", small}, {"large10x16MiB", large}} {
		for _, conc := range []int{4, 16} {
			b.Run(fmt.Sprintf("%s/concurrency=%d", set.name, conc), func(b *testing.B) {
				up, err := uploader.New(st.NewS3Client(), bt.Bucket, bt.Prefix, &uploader.Options{Concurrency: conc, Force: true})
				if err != nil {
					b.Fatal(err)
				}
				var files, bytes int64
				b.ResetTimer()
				for b.Loop() {
					sum, err := up.Put(testCtx(b), []string{set.dir})
					if err != nil || sum.Failed > 0 {
						b.Fatalf("put: %v, %d failed", err, sum.Failed)
					}
					files += int64(sum.Uploaded)
					bytes += sum.Bytes
				}
				secs := b.Elapsed().Seconds()
				b.ReportMetric(float64(files)/secs, "files/s")
				b.ReportMetric(float64(bytes)/secs/1e6, "MB/s")
			})
		}
	}
}
