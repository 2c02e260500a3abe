package console_test

import (
	"context"
	"maps"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"imgpipe/pkg/console"
	"imgpipe/pkg/tracing/tracingtest"
)

// With tracing on, a browser upload starts its image's trace: the signed PUT carries the
// console.upload span's context as x-amz-meta-traceparent, S3 refuses the PUT without it (it is
// signed), and the stored object has it in its metadata for the analyzer.
func TestPresignedUploadTraced(t *testing.T) {
	rec, _ := tracingtest.Record(t, nil)
	e := newEnv(t, nil)
	body := []byte("\x89PNG\r\n\x1a\n not really")
	var up console.Upload
	e.do(t, "POST", "/api/v1/uploads", console.UploadRequest{Name: "traced.png", Size: int64(len(body)), Type: "image/png"}).decode(t, &up)
	spans := rec.Ended()
	if len(spans) != 1 || spans[0].Name() != "console.upload" {
		t.Fatalf("want one console.upload span, got %d", len(spans))
	}
	sc := spans[0].SpanContext()
	want := "00-" + sc.TraceID().String() + "-" + sc.SpanID().String() + "-01"
	if up.Headers["X-Amz-Meta-Traceparent"] != want {
		t.Fatalf("signed headers %v: want X-Amz-Meta-Traceparent %s", up.Headers, want)
	}
	without := maps.Clone(up.Headers)
	delete(without, "X-Amz-Meta-Traceparent")
	if code := putSigned(t, up, body, without); code != 403 {
		t.Fatalf("PUT without the signed traceparent: %d, want 403", code)
	}
	if code := putSigned(t, up, body, up.Headers); code != 200 {
		t.Fatalf("PUT as signed: %d", code)
	}
	head, err := e.s3.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: &e.res.Bucket, Key: &up.Key})
	if err != nil {
		t.Fatal(err)
	}
	if head.Metadata["traceparent"] != want {
		t.Fatalf("stored metadata %v: want traceparent %s", head.Metadata, want)
	}
}
