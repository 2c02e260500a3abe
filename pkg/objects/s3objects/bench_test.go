package s3objects

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"imgpipe/internal/devstack"
	"imgpipe/internal/stacktest"
	"imgpipe/pkg/awsclient"
	"imgpipe/pkg/objects"
)

// BenchmarkMessageCalls measures the S3 calls the analyzer makes for one small image with a
// thumbnail, on the stack's S3 stand-in: the head read (the whole 2.5 KB object), the
// thumbnail's PutObject and the listing of its folder. Once with an S3 client as the SDK makes
// it (checksums wherever an operation supports them, the endpoint rules evaluated on every
// call), once as the analyzer makes it (awsclient.S3 with S3RangedReads: response checksums
// only where required, endpoints resolved once per bucket). Compare ns/op and allocs/op
// within one run (the S3 stand-in's own work included):
//
//	go test ./pkg/objects/s3objects -run '^$' -bench MessageCalls -benchmem -count 3
func BenchmarkMessageCalls(b *testing.B) {
	for _, sc := range []struct {
		name   string
		client func(st *devstack.Stack) *s3.Client
	}{
		{"client=sdk", func(st *devstack.Stack) *s3.Client { return st.NewS3Client() }},
		{"client=analyzer", func(st *devstack.Stack) *s3.Client {
			c := awsclient.S3(st.AWSConfig(), &awsclient.Options{S3PathStyle: true, S3RangedReads: true})
			return s3.New(c.Options(), func(o *s3.Options) { o.BaseEndpoint = aws.String(st.S3Endpoint) })
		}},
	} {
		b.Run(sc.name, func(b *testing.B) {
			st := stacktest.Get(b)
			client := sc.client(st)
			ctx := context.Background()
			bucket := stacktest.Unique("objbench")
			if _, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
				b.Fatal(err)
			}
			img, thumb := bytes.Repeat([]byte{0x89, 'P', 'N', 'G'}, 640), bytes.Repeat([]byte{0xff, 0xd8}, 650)
			if _, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String("img/a.png"), Body: bytes.NewReader(img)}); err != nil {
				b.Fatal(err)
			}
			s := New(client)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				h, err := s.ReadHead(ctx, objects.Ref{Bucket: bucket, Key: "img/a.png"}, 128<<10)
				if err != nil || len(h.Bytes) != len(img) {
					b.Fatalf("read head: %v", err)
				}
				dir := fmt.Sprintf("thumbnail/%d/", i)
				if err := s.Write(ctx, bucket, dir+"t.jpg", thumb, "image/jpeg"); err != nil {
					b.Fatal(err)
				}
				if keys, err := s.List(ctx, bucket, dir); err != nil || len(keys) != 1 {
					b.Fatalf("list: %v %v", keys, err)
				}
			}
		})
	}
}
