package uploader_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"go.uber.org/goleak"

	"imgpipe/internal/stacktest"
	"imgpipe/pkg/uploader"
)

// TestPutLeavesNoGoroutines runs a Put with progress reports and an interrupt, and checks that
// every goroutine it started has ended when it returns.
func TestPutLeavesNoGoroutines(t *testing.T) {
	st := stacktest.Get(t)
	fs := newFaultyS3(t)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	c := s3.NewFromConfig(st.AWSConfig(), func(o *s3.Options) {
		o.BaseEndpoint = aws.String(fs.url)
		o.UsePathStyle = true
		o.HTTPClient = &http.Client{Transport: tr}
	})
	ctx := testCtx(t)
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("leaks")}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	manyImages(t, dir, 30)
	big := append(mustImage(t, 5, 64, 64, "png"), make([]byte, 11<<20)...)
	writeTree(t, dir, map[string][]byte{"big.png": big})
	idle := tr.CloseIdleConnections
	idle()
	before := goleak.IgnoreCurrent()

	up, err := uploader.New(c, "leaks", "upload/", &uploader.Options{
		PartSize: 5 << 20, Concurrency: 4, ProgressEvery: time.Millisecond, Progress: func(uploader.Progress) {},
	})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	fs.delay.Store(int64(20 * time.Millisecond))
	go func() { time.Sleep(100 * time.Millisecond); cancel() }()
	if _, err := up.Put(runCtx, []string{dir}); err != nil {
		t.Fatal(err)
	}
	fs.delay.Store(0)
	if _, err := up.Put(ctx, []string{dir}); err != nil {
		t.Fatal(err)
	}
	idle()
	goleak.VerifyNone(t, before,
		goleak.IgnoreTopFunction("net/http.(*conn).serve"), // the test server's side
		goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	)
}
