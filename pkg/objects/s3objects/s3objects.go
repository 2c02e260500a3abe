// Package s3objects is the Amazon S3 driver of pkg/objects: ranged GETs (with the size from
// Content-Range and the ETag, so no HEAD request is made), reads pinned to an ETag with
// If-Match (and the answer's ETag checked again, for stores that ignore If-Match), and
// presigned GETs. Every error is classified with the AWS table (pkg/failure/awserr); the SDK's
// own retryer (awsclient: 5 attempts) retries each request, the caller what still fails.
// As an objects.Writer it puts, lists and deletes whole objects.
package s3objects

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"imgpipe/pkg/failure"
	"imgpipe/pkg/failure/awserr"
	"imgpipe/pkg/objects"
)

// Store reads objects from S3. It is safe for concurrent use.
type Store struct {
	client    *s3.Client
	presigner *s3.PresignClient
}

// New returns a store over client.
func New(client *s3.Client) *Store {
	return &Store{client: client, presigner: s3.NewPresignClient(client)}
}

func input(ref objects.Ref) *s3.GetObjectInput {
	in := &s3.GetObjectInput{Bucket: aws.String(ref.Bucket), Key: aws.String(ref.Key)}
	if ref.Version != "" {
		in.VersionId = aws.String(ref.Version)
	}
	return in
}

// answer classifies a GET's error, marking the ones that are answers about the object.
func answer(err error, what string, ref objects.Ref) error {
	c := awserr.Classify(fmt.Errorf("%s %s/%s: %w", what, ref.Bucket, ref.Key, err))
	switch awserr.Code(err) {
	case "NoSuchKey", "NotFound", "NoSuchVersion":
		return objects.Mark(objects.ErrNotFound, c)
	case "InvalidRange":
		return objects.Mark(objects.ErrEmpty, c)
	case "PreconditionFailed":
		return objects.Mark(objects.ErrChanged, c)
	}
	return c
}

// ReadHead implements objects.Store with one ranged GET.
func (s *Store) ReadHead(ctx context.Context, ref objects.Ref, n int) (*objects.Head, error) {
	in := input(ref)
	in.Range = aws.String("bytes=0-" + strconv.Itoa(n-1))
	obj, err := s.client.GetObject(ctx, in)
	if err != nil {
		return nil, answer(err, "read head of", ref)
	}
	defer obj.Body.Close()
	size, ok := rangeTotal(aws.ToString(obj.ContentRange))
	if !ok {
		// A 200 with the whole object (a store that ignores Range): its length is the size.
		size = aws.ToInt64(obj.ContentLength)
	}
	buf, err := readAtMost(obj.Body, aws.ToInt64(obj.ContentLength), obj.ContentLength != nil, n)
	if err != nil {
		return nil, awserr.Classify(fmt.Errorf("read head of %s/%s: %w", ref.Bucket, ref.Key, err))
	}
	return &objects.Head{Size: size, ETag: trimETag(aws.ToString(obj.ETag)), Version: aws.ToString(obj.VersionId), Bytes: buf, Metadata: obj.Metadata}, nil
}

// readAtMost reads up to n bytes of body. When the answer gave its length, one buffer of
// exactly that size (at most n) is read full; otherwise the body is read to its end, at most
// n bytes.
func readAtMost(body io.Reader, length int64, known bool, n int) ([]byte, error) {
	if !known || length < 0 {
		return io.ReadAll(io.LimitReader(body, int64(n)))
	}
	buf := make([]byte, min(length, int64(n)))
	if _, err := io.ReadFull(body, buf); err != nil {
		return nil, err
	}
	return buf, nil
}

// rangeTotal is the complete length in a Content-Range header ("bytes 0-99/1234").
func rangeTotal(cr string) (int64, bool) {
	i := strings.LastIndexByte(cr, '/')
	if i < 0 {
		return 0, false
	}
	n, err := strconv.ParseInt(cr[i+1:], 10, 64)
	return n, err == nil && n >= 0
}

// Open implements objects.Store: a ranged GET with If-Match on etag.
func (s *Store) Open(ctx context.Context, ref objects.Ref, etag string, offset, length int64) (io.ReadCloser, error) {
	in := input(ref)
	r := "bytes=" + strconv.FormatInt(offset, 10) + "-"
	if length >= 0 {
		r += strconv.FormatInt(offset+length-1, 10)
	}
	in.Range = aws.String(r)
	if etag != "" {
		in.IfMatch = aws.String(`"` + etag + `"`)
	}
	obj, err := s.client.GetObject(ctx, in)
	if err != nil {
		return nil, answer(err, "get", ref)
	}
	if got := trimETag(aws.ToString(obj.ETag)); etag != "" && got != etag {
		obj.Body.Close()
		return nil, objects.Mark(objects.ErrChanged, failure.Permanentf("PreconditionFailed", "get %s/%s: ETag %s, want %s", ref.Bucket, ref.Key, got, etag))
	}
	return classifiedBody{obj.Body}, nil
}

// classifiedBody classifies the errors of reading a GET's body by the AWS table.
type classifiedBody struct{ io.ReadCloser }

func (b classifiedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		err = awserr.Classify(err)
	}
	return n, err
}

// ReasonPresignNeedsHeader: the presigned GET signs a header besides Host, which the service
// fetching the URL does not send.
const ReasonPresignNeedsHeader = "PresignNeedsHeader"

// PresignGet implements objects.Store. It cannot pin the content with If-Match: SigV4 signs
// If-Match as a header, which the fetching service would not send, so S3 would refuse every
// fetch. A request that signs any header but Host is a setup fault.
func (s *Store) PresignGet(ctx context.Context, ref objects.Ref, ttl time.Duration) (string, error) {
	req, err := s.presigner.PresignGetObject(ctx, input(ref), s3.WithPresignExpires(ttl))
	if err != nil {
		return "", awserr.Classify(fmt.Errorf("presign %s/%s: %w", ref.Bucket, ref.Key, err))
	}
	for h := range req.SignedHeader {
		if !strings.EqualFold(h, "Host") {
			return "", failure.SetupFault(failure.Transient, ReasonPresignNeedsHeader,
				fmt.Errorf("presigned GET signs header %s, which Vision does not send", h))
		}
	}
	return req.URL, nil
}

// Write implements objects.Writer with one PutObject.
func (s *Store) Write(ctx context.Context, bucket, key string, body []byte, contentType string) error {
	_, err := s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(body),
		ContentLength: aws.Int64(int64(len(body))), ContentType: aws.String(contentType),
	})
	if err != nil {
		return awserr.Classify(fmt.Errorf("write %s/%s: %w", bucket, key, err))
	}
	return nil
}

// Remove implements objects.Writer with one DeleteObject (S3 answers a missing key with
// success).
func (s *Store) Remove(ctx context.Context, bucket, key string) error {
	if _, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)}); err != nil {
		return awserr.Classify(fmt.Errorf("remove %s/%s: %w", bucket, key, err))
	}
	return nil
}

// List implements objects.Writer with ListObjectsV2, page by page, delimited by "/": a deeper
// folder comes back as one common prefix, which is left out, not as its objects.
func (s *Store) List(ctx context.Context, bucket, prefix string) ([]string, error) {
	var keys []string
	pages := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix), Delimiter: aws.String("/")})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, awserr.Classify(fmt.Errorf("list %s/%s: %w", bucket, prefix, err))
		}
		for _, o := range page.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	return keys, nil
}

func trimETag(s string) string {
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		return s[1 : len(s)-1]
	}
	return s
}
