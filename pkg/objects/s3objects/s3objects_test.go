package s3objects

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"imgpipe/internal/devstack"
	"imgpipe/internal/stacktest"
	"imgpipe/pkg/objects"
	"imgpipe/pkg/objects/objectstest"
)

func TestMain(m *testing.M) { stacktest.Main(m, devstack.S3) }

// harness makes a fresh bucket on the stack's S3 stand-in for each test.
type harness struct{}

func (harness) NewBucket(t *testing.T, versioned bool) objectstest.Bucket {
	st := stacktest.Get(t)
	client := st.NewS3Client()
	ctx := context.Background()
	name := stacktest.Unique("objtest")
	if _, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatal(err)
	}
	if versioned {
		if _, err := client.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: aws.String(name),
			VersioningConfiguration: &s3types.VersioningConfiguration{Status: s3types.BucketVersioningStatusEnabled}}); err != nil {
			t.Fatal(err)
		}
	}
	return objectstest.Bucket{
		Store: New(client), Name: name,
		Put: func(t *testing.T, key string, data []byte) (string, string) {
			out, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(name), Key: aws.String(key), Body: bytes.NewReader(data)})
			if err != nil {
				t.Fatal(err)
			}
			return aws.ToString(out.VersionId), trimETag(aws.ToString(out.ETag))
		},
		Delete: func(t *testing.T, key, version string) {
			in := &s3.DeleteObjectInput{Bucket: aws.String(name), Key: aws.String(key)}
			if version != "" {
				in.VersionId = aws.String(version)
			}
			if _, err := client.DeleteObject(ctx, in); err != nil {
				t.Fatal(err)
			}
		},
		Fetch: func(t *testing.T, url string) ([]byte, error) {
			resp, err := http.Get(url)
			if err != nil {
				return nil, err
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return nil, &httpError{resp.Status}
			}
			return io.ReadAll(resp.Body)
		},
	}
}

type httpError struct{ status string }

func (e *httpError) Error() string { return "GET: " + e.status }

func TestConformance(t *testing.T) { objectstest.Run(t, harness{}) }

// TestPresignSignsHostOnly: the presigned URL a remote service fetches must work as a bare
// GET: it may sign no header but Host, and names the version when asked. An If-Match, which
// pins the streamed reads, would be a signed header the service never sends (so S3 would
// refuse every fetch): this is why PresignGet cannot pin the content, and the analyzer checks
// the ETag after the analysis instead.
func TestPresignSignsHostOnly(t *testing.T) {
	c := s3.New(s3.Options{Region: "us-east-1", Credentials: aws.NewCredentialsCache(staticCreds{}), UsePathStyle: true, BaseEndpoint: aws.String("http://127.0.0.1:9")})
	s := New(c)
	for _, ref := range []objects.Ref{{Bucket: "b", Key: "upload/a.jpg"}, {Bucket: "b", Key: "upload/a.jpg", Version: "v1"}} {
		url, err := s.PresignGet(context.Background(), ref, 0)
		if err != nil {
			t.Fatalf("presign %+v: %v", ref, err)
		}
		if ref.Version != "" && !strings.Contains(url, "versionId=v1") {
			t.Errorf("presigned GET of a version does not name it: %s", url)
		}
	}
	in := input(objects.Ref{Bucket: "b", Key: "k"})
	in.IfMatch = aws.String(`"0123"`)
	req, err := s.presigner.PresignGetObject(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := req.SignedHeader["If-Match"]; !ok {
		t.Errorf("If-Match is not a signed header (%v): the reason PresignGet does not send it has gone", req.SignedHeader)
	}
}

type staticCreds struct{}

func (staticCreds) Retrieve(context.Context) (aws.Credentials, error) {
	return aws.Credentials{AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "secret"}, nil
}

// TestReadHeadMetadata: the first read brings the object's user metadata, keys in lower case
// whatever case they were written in (the trace context the uploader stores there).
func TestReadHeadMetadata(t *testing.T) {
	b := harness{}.NewBucket(t, false)
	st := stacktest.Get(t)
	client := st.NewS3Client()
	tp := "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	if _, err := client.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(b.Name), Key: aws.String("upload/m.png"),
		Body: strings.NewReader("0123456789"), Metadata: map[string]string{"Traceparent": tp, "sha256": "abc"}}); err != nil {
		t.Fatal(err)
	}
	h, err := b.Store.ReadHead(context.Background(), objects.Ref{Bucket: b.Name, Key: "upload/m.png"}, 4)
	if err != nil {
		t.Fatal(err)
	}
	if h.Metadata["traceparent"] != tp || h.Metadata["sha256"] != "abc" || string(h.Bytes) != "0123" {
		t.Fatalf("head %q metadata %v: want the bytes and both metadata entries, keys in lower case", h.Bytes, h.Metadata)
	}
}

// countingClient counts the ListObjectsV2 requests it sends.
type countingClient struct {
	mu    sync.Mutex
	lists int
}

func (c *countingClient) Do(r *http.Request) (*http.Response, error) {
	if r.URL.Query().Has("list-type") {
		c.mu.Lock()
		c.lists++
		c.mu.Unlock()
	}
	return http.DefaultClient.Do(r)
}

// TestListSkipsDeeperFolders: listing upload/a's folder, beside upload/a/b.png's holding more
// objects than one page, reads one page and gives only upload/a's own.
func TestListSkipsDeeperFolders(t *testing.T) {
	st := stacktest.Get(t)
	counter := &countingClient{}
	client := s3.NewFromConfig(st.AWSConfig(), func(o *s3.Options) {
		o.BaseEndpoint = aws.String(st.S3Endpoint)
		o.UsePathStyle = true
		o.HTTPClient = counter
	})
	ctx := context.Background()
	bucket := stacktest.Unique("objlist")
	if _, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatal(err)
	}
	s := New(client)
	const deeper = 1001 // one more than a page holds
	for i := range deeper {
		if err := s.Write(ctx, bucket, fmt.Sprintf("thumbnail/upload/a/b.png/%04d.jpg", i), []byte("x"), "image/jpeg"); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Write(ctx, bucket, "thumbnail/upload/a/1.jpg", []byte("x"), "image/jpeg"); err != nil {
		t.Fatal(err)
	}
	keys, err := s.List(ctx, bucket, "thumbnail/upload/a/")
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || keys[0] != "thumbnail/upload/a/1.jpg" {
		t.Errorf("List = %d keys (first %q), want only thumbnail/upload/a/1.jpg", len(keys), keys[:min(1, len(keys))])
	}
	if counter.lists != 1 {
		t.Errorf("List read %d pages, want 1 (the %d deeper objects are one common prefix)", counter.lists, deeper)
	}
}
