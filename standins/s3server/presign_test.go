package s3server

import (
	"bytes"
	"context"
	"encoding/xml"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// presignServer is a stand-in that knows the credentials AKID/secret, with a bucket.
func presignServer(t *testing.T, creds map[string]string) (*httptest.Server, *s3.Client, string) {
	t.Helper()
	srv, err := New(&Options{Credentials: creds})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	c, tr := s3For(ts)
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		ts.Close()
		_ = srv.Close(context.Background())
	})
	bucket := "presign"
	if _, err := c.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: &bucket}); err != nil {
		t.Fatal(err)
	}
	return ts, c, bucket
}

// s3Error is the code and message of an S3 error answer.
func s3Error(t *testing.T, resp *http.Response) (code, msg string) {
	t.Helper()
	var e struct {
		Code    string `xml:"Code"`
		Message string `xml:"Message"`
	}
	b, _ := io.ReadAll(resp.Body)
	if err := xml.Unmarshal(b, &e); err != nil {
		t.Fatalf("answer %d is not an S3 error document: %q", resp.StatusCode, b)
	}
	return e.Code, e.Message
}

func send(t *testing.T, method, u string, header http.Header, body []byte) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if body == nil {
		req.Body, req.ContentLength = http.NoBody, 0
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// presignPut signs a PUT of key with the given type, length and metadata, as a browser upload
// gets it.
func presignPut(t *testing.T, c *s3.Client, bucket, key, contentType string, length int64, expires time.Duration) (string, http.Header) {
	t.Helper()
	req, err := s3.NewPresignClient(c).PresignPutObject(context.Background(), &s3.PutObjectInput{
		Bucket: &bucket, Key: &key, ContentType: &contentType, ContentLength: &length,
		Metadata: map[string]string{"original-name": "a%20b.png"},
	}, s3.WithPresignExpires(expires))
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	for k, v := range req.SignedHeader {
		if !strings.EqualFold(k, "Host") && !strings.EqualFold(k, "Content-Length") {
			h[k] = v
		}
	}
	return req.URL, h
}

// A presigned PUT is accepted only as it was signed: any change to the signed headers (the
// size and type limits of a browser upload), the key, the method or the signature, an
// unsigned x-amz-* header, an unknown key or an expired URL is refused as S3 refuses it, and
// stores nothing.
func TestPresignedPutIsVerified(t *testing.T) {
	ts, c, bucket := presignServer(t, map[string]string{"AKID": "secret"})
	body := []byte("\x89PNG\r\n\x1a\nnot really, but 24 bytes")
	key := "upload/0192f1a2-7b3c-7d4e-8f00-112233445566/été à+b&c=d.png"
	u, h := presignPut(t, c, bucket, key, "image/png", int64(len(body)), 15*time.Minute)

	with := func(name, value string) http.Header {
		out := h.Clone()
		out.Set(name, value)
		return out
	}
	otherKey := strings.Replace(u, "b%26c", "x%26c", 1)
	if otherKey == u {
		t.Fatalf("test setup: key not found in %s", u)
	}
	badSig := u[:len(u)-1] + map[bool]string{true: "0", false: "1"}[!strings.HasSuffix(u, "0")]
	stranger := s3.New(s3.Options{Region: "us-east-1", BaseEndpoint: aws.String(ts.URL), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider("NOBODY", "secret", "")})
	strangerURL, _ := presignPut(t, stranger, bucket, key, "image/png", int64(len(body)), time.Minute)
	noDate := strings.Replace(u, "X-Amz-Date=", "X-Amz-Datum=", 1)

	for _, tc := range []struct {
		name, method, url string
		header            http.Header
		body              []byte
		status            int
		code              string
	}{
		{"larger body than signed", "PUT", u, h, append(body, 'x'), 403, "SignatureDoesNotMatch"},
		{"other content type", "PUT", u, with("Content-Type", "text/html"), body, 403, "SignatureDoesNotMatch"},
		{"no content type", "PUT", u, func() http.Header { x := h.Clone(); x.Del("Content-Type"); return x }(), body, 403, "SignatureDoesNotMatch"},
		{"changed metadata", "PUT", u, with("X-Amz-Meta-Original-Name", "evil.png"), body, 403, "SignatureDoesNotMatch"},
		{"unsigned x-amz header", "PUT", u, with("X-Amz-Meta-Extra", "1"), body, 403, "AccessDenied"},
		{"other key", "PUT", otherKey, h, body, 403, "SignatureDoesNotMatch"},
		{"other method", "POST", u, h, body, 403, "SignatureDoesNotMatch"},
		{"bad signature", "PUT", badSig, h, body, 403, "SignatureDoesNotMatch"},
		{"unknown access key", "PUT", strangerURL, h, body, 403, "InvalidAccessKeyId"},
		{"missing X-Amz-Date", "PUT", noDate, h, body, 400, "AuthorizationQueryParametersError"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := send(t, tc.method, tc.url, tc.header, tc.body)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if code, msg := s3Error(t, resp); code != tc.code {
				t.Fatalf("error %s (%s), want %s", code, msg, tc.code)
			}
			if _, err := c.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: &bucket, Key: &key}); err == nil {
				t.Fatal("the refused request stored the object")
			}
		})
	}

	resp := send(t, "PUT", u, h, body)
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("the request as signed: status %d: %s", resp.StatusCode, b)
	}
	head, err := c.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: &bucket, Key: &key})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(head.ContentType) != "image/png" || aws.ToInt64(head.ContentLength) != int64(len(body)) || head.Metadata["original-name"] != "a%20b.png" {
		t.Fatalf("stored %s, %d bytes, metadata %v", aws.ToString(head.ContentType), aws.ToInt64(head.ContentLength), head.Metadata)
	}

	// A presigned GET of the stored object works, and only for that object.
	get, err := s3.NewPresignClient(c).PresignGetObject(context.Background(), &s3.GetObjectInput{Bucket: &bucket, Key: &key})
	if err != nil {
		t.Fatal(err)
	}
	if resp := send(t, "GET", get.URL, nil, nil); resp.StatusCode != 200 {
		t.Fatalf("presigned GET: %d", resp.StatusCode)
	}
	if resp := send(t, "GET", strings.Replace(get.URL, "b%26c", "x%26c", 1), nil, nil); resp.StatusCode != 403 {
		t.Fatalf("presigned GET of another key: %d, want 403", resp.StatusCode)
	}
}

func TestExpiredPresignedURLIsRefused(t *testing.T) {
	_, c, bucket := presignServer(t, map[string]string{"AKID": "secret"})
	body := []byte("GIF89a-------")
	u, h := presignPut(t, c, bucket, "upload/late.gif", "image/gif", int64(len(body)), time.Second)
	time.Sleep(2100 * time.Millisecond)
	resp := send(t, "PUT", u, h, body)
	if code, msg := s3Error(t, resp); resp.StatusCode != 403 || code != "AccessDenied" || msg != "Request has expired" {
		t.Fatalf("expired URL: %d %s %q, want 403 AccessDenied \"Request has expired\"", resp.StatusCode, code, msg)
	}
}

// A URL signed for one moment is not valid long before it.
func TestPresignedURLFromTheFutureIsRefused(t *testing.T) {
	ts, _, bucket := presignServer(t, map[string]string{"AKID": "secret"})
	signer := v4.NewSigner()
	req, _ := http.NewRequest("GET", ts.URL+"/"+bucket+"/upload/x.jpg?X-Amz-Expires=60", nil)
	u, _, err := signer.PresignHTTP(context.Background(), aws.Credentials{AccessKeyID: "AKID", SecretAccessKey: "secret"},
		req, "UNSIGNED-PAYLOAD", "s3", "us-east-1", time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	resp := send(t, "GET", u, nil, nil)
	if code, msg := s3Error(t, resp); resp.StatusCode != 403 || msg != "Request is not valid yet" {
		t.Fatalf("URL signed an hour ahead: %d %s %q", resp.StatusCode, code, msg)
	}
}

// Without credentials the stand-in serves presigned requests unchecked, as before.
func TestPresignedWithoutCredentialsIsServed(t *testing.T) {
	_, c, bucket := presignServer(t, nil)
	body := []byte("BMP?")
	u, h := presignPut(t, c, bucket, "upload/a.bmp", "image/bmp", int64(len(body)), time.Minute)
	u = strings.Replace(u, "X-Amz-Signature=", "X-Amz-Signature=0", 1)
	if resp := send(t, "PUT", u, h, body); resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
}

func TestURIEncode(t *testing.T) {
	for in, want := range map[string]string{
		"AZaz09-_.~": "AZaz09-_.~", "a b": "a%20b", "a+b": "a%2Bb", "é": "%C3%A9", "a/b": "a%2Fb", "=&": "%3D%26",
	} {
		if got := uriEncode(in); got != want {
			t.Errorf("uriEncode(%q) = %q, want %q", in, got, want)
		}
	}
	if _, err := url.Parse("http://x/?" + uriEncode("k v") + "=" + uriEncode("ü")); err != nil {
		t.Fatal(err)
	}
}
