package awserr

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"imgpipe/internal/devstack"
	"imgpipe/internal/stacktest"
	"imgpipe/pkg/failure"
)

func TestMain(m *testing.M) { stacktest.Main(m, devstack.SQS|devstack.S3) }

// apiError is what the SDK returns for an error answer: an API error inside an HTTP
// response error inside an operation error.
func apiError(status int, code string) error {
	return &smithy.OperationError{ServiceID: "S3", OperationName: "GetObject", Err: &smithyhttp.ResponseError{
		Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}},
		Err:      &smithy.GenericAPIError{Code: code, Message: "m"},
	}}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		name   string
		err    error
		class  failure.Class
		setup  bool
		reason string
	}{
		{"missing object", apiError(404, "NoSuchKey"), failure.Permanent, false, "NoSuchKey"},
		{"changed object", apiError(412, "PreconditionFailed"), failure.Permanent, false, "PreconditionFailed"},
		{"archived object", apiError(403, "InvalidObjectState"), failure.Permanent, false, "InvalidObjectState"},
		{"missing bucket", apiError(404, "NoSuchBucket"), failure.Transient, true, "NoSuchBucket"},
		{"access denied", apiError(403, "AccessDenied"), failure.Transient, true, "AccessDenied"},
		{"clock skew", apiError(403, "RequestTimeTooSkewed"), failure.Transient, true, "RequestTimeTooSkewed"},
		{"wrong region", apiError(301, "PermanentRedirect"), failure.Transient, true, "PermanentRedirect"},
		{"slow down", apiError(503, "SlowDown"), failure.Throttled, false, "SlowDown"},
		{"internal", apiError(500, "InternalError"), failure.Transient, false, "InternalError"},
		{"torn body", apiError(400, "BadDigest"), failure.Transient, false, "BadDigest"},
		{"bad argument", apiError(400, "InvalidArgument"), failure.Permanent, false, "InvalidArgument"},
		{"sqs missing queue", apiError(400, "AWS.SimpleQueueService.NonExistentQueue"), failure.Transient, true, "AWS.SimpleQueueService.NonExistentQueue"},
		{"sqs expired handle", apiError(400, "ReceiptHandleIsInvalid"), failure.Permanent, false, "ReceiptHandleIsInvalid"},
		{"sqs kms denied", apiError(400, "KmsAccessDenied"), failure.Transient, true, "KmsAccessDenied"},
		{"sqs over limit", apiError(403, "OverLimit"), failure.Throttled, false, "OverLimit"},
		// Unknown codes fall back on the status.
		{"unknown 403", apiError(403, "SomethingNew"), failure.Transient, true, "SomethingNew"},
		{"unknown 401 without code", apiError(401, ""), failure.Transient, true, "HTTP401"},
		{"unknown 429", apiError(429, "X"), failure.Throttled, false, "X"},
		{"unknown 503", apiError(503, ""), failure.Throttled, false, "HTTP503"},
		{"unknown 501", apiError(501, "Y"), failure.Transient, true, "Y"},
		{"unknown 400 is not proof of a bad message", apiError(400, "Z"), failure.Transient, false, "Z"},
		{"unknown 500", apiError(500, "W"), failure.Transient, false, "W"},
		// No answer.
		{"no credentials", &smithy.OperationError{Err: &v4.SigningError{Err: errors.New("failed to retrieve credentials")}}, failure.Transient, true, ReasonNoCredentials},
		{"no region", fmt.Errorf("x: %w", &aws.MissingRegionError{}), failure.Transient, true, ReasonNoEndpoint},
		{"refused", fmt.Errorf("dial: %w", syscall.ECONNREFUSED), failure.Transient, false, ReasonConnectionRefused},
		{"reset", fmt.Errorf("read: %w", syscall.ECONNRESET), failure.Transient, false, ReasonConnectionReset},
		{"cut short", fmt.Errorf("read: %w", io.ErrUnexpectedEOF), failure.Transient, false, ReasonConnectionReset},
		{"deadline", fmt.Errorf("x: %w", context.DeadlineExceeded), failure.Transient, false, ReasonTimeout},
		{"dns", &net.DNSError{Err: "no such host", Name: "h"}, failure.Transient, false, ReasonNetwork},
		{"other", errors.New("odd"), failure.Transient, false, ReasonRequestFailed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Classify(tc.err)
			if c := failure.ClassOf(err); c != tc.class {
				t.Errorf("class %v, want %v", c, tc.class)
			}
			if s := failure.IsSetup(err); s != tc.setup {
				t.Errorf("setup %v, want %v", s, tc.setup)
			}
			if r := failure.ReasonOf(err); r != tc.reason {
				t.Errorf("reason %q, want %q", r, tc.reason)
			}
			if !errors.Is(err, tc.err) {
				t.Errorf("the classified error does not wrap the original")
			}
		})
	}
	if Classify(nil) != nil {
		t.Error("Classify(nil) != nil")
	}
	canceled := fmt.Errorf("get: %w", context.Canceled)
	if err := Classify(canceled); err != canceled || failure.ReasonOf(err) != "Canceled" {
		t.Errorf("a cancelled call: %v (reason %q), want it unchanged", err, failure.ReasonOf(err))
	}
	pre := failure.Permanentf("Mine", "already classified")
	if err := Classify(fmt.Errorf("x: %w", pre)); failure.ReasonOf(err) != "Mine" {
		t.Errorf("an error already classified was reclassified: %v", err)
	}
}

// TestTableIsConsistent: no setup fault is permanent (a mended setup makes the message work).
func TestTableIsConsistent(t *testing.T) {
	for code, e := range Codes {
		if e.Setup && e.Class == failure.Permanent {
			t.Errorf("%s: a setup fault marked permanent", code)
		}
	}
}

// TestRealAnswers: the codes the real SDK clients surface from the stand-ins get the classes
// the table promises.
func TestRealAnswers(t *testing.T) {
	st := stacktest.Get(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s3c, sqsc := st.NewS3Client(), st.NewSQSClient()
	bucket := stacktest.Unique("awserr")
	if _, err := s3c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatal(err)
	}
	if _, err := s3c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String("k"), Body: bytes.NewReader([]byte("x"))}); err != nil {
		t.Fatal(err)
	}
	st.S3Server.SetFault(func(w http.ResponseWriter, r *http.Request) (http.ResponseWriter, bool) {
		if r.URL.Path == "/"+bucket+"/denied" {
			st.S3Server.Refuse(w, r, http.StatusForbidden, "AccessDenied", "Access Denied")
			return w, true
		}
		return w, false
	})
	t.Cleanup(func() { st.S3Server.SetFault(nil) })
	get := func(b, k string) error {
		out, err := s3c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(b), Key: aws.String(k)})
		if err == nil {
			out.Body.Close()
		}
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	ln.Close()
	refused := s3.NewFromConfig(st.AWSConfig(), func(o *s3.Options) {
		o.BaseEndpoint = aws.String(closed)
		o.UsePathStyle = true
		o.RetryMaxAttempts = 1
	})
	tests := []struct {
		name   string
		err    error
		class  failure.Class
		setup  bool
		reason string
	}{
		{"missing key", get(bucket, "nope"), failure.Permanent, false, "NoSuchKey"},
		{"missing bucket", get(stacktest.Unique("nobucket"), "k"), failure.Transient, true, "NoSuchBucket"},
		{"denied", get(bucket, "denied"), failure.Transient, true, "AccessDenied"},
		{"refused connection", func() error {
			_, err := refused.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(bucket)})
			return err
		}(), failure.Transient, false, ReasonConnectionRefused},
		{"missing queue", func() error {
			_, err := sqsc.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(stacktest.Unique("noqueue"))})
			return err
		}(), failure.Transient, true, ""},
	}
	for _, tc := range tests {
		if tc.err == nil {
			t.Errorf("%s: no error", tc.name)
			continue
		}
		err := Classify(tc.err)
		if failure.ClassOf(err) != tc.class || failure.IsSetup(err) != tc.setup || (tc.reason != "" && failure.ReasonOf(err) != tc.reason) {
			t.Errorf("%s: %v: class %v setup %v reason %q, want %v %v %q", tc.name, tc.err, failure.ClassOf(err), failure.IsSetup(err), failure.ReasonOf(err), tc.class, tc.setup, tc.reason)
		}
	}
}
