package s3server_test

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// A ranged GET of an object stored with a checksum must pass the SDK's response validation:
// S3 sends no whole-object checksum with a partial body (gofakes3 did, and the SDK then
// rejected every ranged read of such an object).
func TestRangedGetOfChecksummedObject(t *testing.T) {
	e := newEnv(t, "")
	ctx := testCtx(t)
	// A client built like the pipeline's (from an aws.Config, the SDK's default checksum
	// behaviour: calculate and validate when supported).
	e.s3 = s3.NewFromConfig(aws.Config{Region: region, Credentials: credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", ""),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenSupported,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenSupported},
		func(o *s3.Options) { o.BaseEndpoint = aws.String(e.run.URL()); o.UsePathStyle = true })
	body := make([]byte, 300<<10)
	_, _ = rand.Read(body)
	// As the uploader sends it: a seekable body with its length, the SDK adding its default
	// CRC32 checksum.
	if _, err := e.s3.PutObject(ctx, &s3.PutObjectInput{
		Bucket: &e.bucket, Key: aws.String("big.bin"),
		Body: io.NewSectionReader(bytes.NewReader(body), 0, int64(len(body))), ContentLength: aws.Int64(int64(len(body))),
	}); err != nil {
		t.Fatal(err)
	}
	for _, rng := range []struct{ from, to int }{{0, 1023}, {4096, 200000}} {
		out, err := e.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: &e.bucket, Key: aws.String("big.bin"),
			Range: aws.String(fmt.Sprintf("bytes=%d-%d", rng.from, rng.to))})
		if err != nil {
			t.Fatalf("range %v: %v", rng, err)
		}
		got, err := io.ReadAll(out.Body)
		out.Body.Close()
		if err != nil {
			t.Fatalf("range %v: read: %v", rng, err)
		}
		if !bytes.Equal(got, body[rng.from:rng.to+1]) {
			t.Fatalf("range %v: got %d bytes, not the requested slice", rng, len(got))
		}
	}
	// The whole object still carries (and passes) its checksum.
	out, err := e.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: &e.bucket, Key: aws.String("big.bin"), ChecksumMode: s3types.ChecksumModeEnabled})
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(out.Body)
	out.Body.Close()
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("full read: %v, %d bytes", err, len(got))
	}
}
