package awsclient_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/smithy-go/logging"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"imgpipe/internal/devstack"
	"imgpipe/internal/stacktest"
	"imgpipe/pkg/awsclient"
)

func TestMain(m *testing.M) { stacktest.Main(m, devstack.SQS|devstack.S3) }

// sdkEnv points the SDK's own variables at the stack: region, test credentials, endpoints.
func sdkEnv(t *testing.T, st *devstack.Stack) {
	t.Setenv("AWS_REGION", st.Region)
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_ENDPOINT_URL_S3", st.S3Endpoint)
	t.Setenv("AWS_ENDPOINT_URL_SQS", st.SQSEndpoint)
}

// The binaries reach the stand-ins (or any endpoint) through the SDK's own variables only.
func TestEndpointsFromSDKEnvironment(t *testing.T) {
	st := stacktest.Get(t)
	sdkEnv(t, st)
	ctx := context.Background()
	opts := &awsclient.Options{S3PathStyle: true}
	cfg, err := awsclient.Config(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	bucket := stacktest.Unique("envbucket")
	if _, err := awsclient.S3(cfg, opts).CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatalf("S3 through AWS_ENDPOINT_URL_S3: %v", err)
	}
	if _, err := awsclient.SQS(cfg).CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(stacktest.Unique("envq"))}); err != nil {
		t.Fatalf("SQS through AWS_ENDPOINT_URL_SQS: %v", err)
	}
}

func TestMissingRegionIsOneClearLine(t *testing.T) {
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")
	t.Setenv("AWS_CONFIG_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_PROFILE", "")
	_, err := awsclient.Config(context.Background(), nil)
	if err == nil || !strings.Contains(err.Error(), "AWS_REGION") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("error %v: want one line naming AWS_REGION", err)
	}
}

// TestSDKLogsThroughZap: the SDK's log lines reach the binary's zap logger, and a ranged GET
// (the analyzer's head read) logs no checksum note.
func TestSDKLogsThroughZap(t *testing.T) {
	st := stacktest.Get(t)
	sdkEnv(t, st)
	ctx := context.Background()
	core, logs := observer.New(zap.DebugLevel)
	opts := &awsclient.Options{S3PathStyle: true, Logger: zap.New(core)}
	cfg, err := awsclient.Config(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	c := awsclient.S3(cfg, opts)
	bucket := stacktest.Unique("logbucket")
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String("k"), Body: strings.NewReader(strings.Repeat("x", 1000))}); err != nil {
		t.Fatal(err)
	}
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String("k"), Range: aws.String("bytes=0-99")})
	if err != nil {
		t.Fatal(err)
	}
	out.Body.Close()
	for _, e := range logs.All() {
		if strings.Contains(e.Message, "checksum") {
			t.Errorf("checksum note logged on a ranged GET: %q", e.Message)
		}
	}
	cfg.Logger.Logf(logging.Warn, "clock skew of %s", "2m")
	got := logs.FilterMessage("clock skew of 2m").All()
	if len(got) != 1 || got[0].Level != zap.WarnLevel || got[0].LoggerName != "aws-sdk" {
		t.Errorf("an SDK warning reached zap as %+v, want one warn line from aws-sdk", got)
	}
	cfg, err = awsclient.Config(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := cfg.Logger.(logging.Nop); !ok {
		t.Errorf("without a logger the SDK logs to %T, want nowhere", cfg.Logger)
	}
}

// TestCountCalls: every API call of a client is counted once by operation, failed ones too,
// and an SDK retry of a call is not another call.
func TestCountCalls(t *testing.T) {
	st := stacktest.Get(t)
	calls := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "calls_total"}, []string{"op"})
	client := st.NewSQSClient(func(o *sqs.Options) { o.APIOptions = append(o.APIOptions, awsclient.CountCalls(calls)) })
	ctx := context.Background()
	out, err := client.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(stacktest.Unique("count"))})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: out.QueueUrl}); err != nil {
			t.Fatal(err)
		}
	}
	// A queue that does not exist: the call fails, and is counted.
	_, err = client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(st.SQSEndpoint + "/000000000000/none")})
	if err == nil {
		t.Fatal("attributes of a missing queue")
	}
	if got := testutil.ToFloat64(calls.WithLabelValues("GetQueueAttributes")); got != 4 {
		t.Errorf("GetQueueAttributes counted %v times, want 4", got)
	}
	if got := testutil.ToFloat64(calls.WithLabelValues("CreateQueue")); got != 1 {
		t.Errorf("CreateQueue counted %v times, want 1", got)
	}
	// Calls, not attempts: a throttled or failed attempt the SDK retries is still one call.
	retried := sqs.NewFromConfig(st.AWSConfig(), func(o *sqs.Options) {
		o.BaseEndpoint = aws.String("http://127.0.0.1:1") // nothing listens: every attempt fails
		o.APIOptions = append(o.APIOptions, awsclient.CountCalls(calls))
		o.RetryMaxAttempts = 3
	})
	if _, err := retried.ListQueues(ctx, &sqs.ListQueuesInput{}); err == nil {
		t.Fatal("a call to a closed port worked")
	}
	if got := testutil.ToFloat64(calls.WithLabelValues("ListQueues")); got != 1 {
		t.Errorf("a call retried 3 times counted %v times, want 1", got)
	}
}

// TestS3RangedReadsChecksums: a client that reads only ranges asks for no response checksum
// (S3 sends none with a part), unless the SDK's own setting asks for one; its PutObject still
// carries a CRC32. Seen in the requests the SDK signs and sends to the S3 stand-in.
func TestS3RangedReadsChecksums(t *testing.T) {
	st := stacktest.Get(t)
	sdkEnv(t, st)
	ctx := context.Background()
	bucket := stacktest.Unique("cksum")
	if _, err := st.NewS3Client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name         string
		ranged       bool
		env          string // AWS_RESPONSE_CHECKSUM_VALIDATION
		wantGetCkSum bool
	}{
		{"default", false, "", true},
		{"ranged reads", true, "", false},
		{"ranged reads, the SDK's setting when_supported", true, "when_supported", true},
		{"default, the SDK's setting when_required", false, "when_required", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("AWS_RESPONSE_CHECKSUM_VALIDATION", c.env)
			opts := &awsclient.Options{S3PathStyle: true, S3RangedReads: c.ranged}
			cfg, err := awsclient.Config(ctx, opts)
			if err != nil {
				t.Fatal(err)
			}
			client := awsclient.S3(cfg, opts)
			var sent http.Header
			record := func(o *s3.Options) {
				o.APIOptions = append(o.APIOptions, func(stack *middleware.Stack) error {
					return stack.Finalize.Add(middleware.FinalizeMiddlewareFunc("recordHeaders",
						func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
							if req, ok := in.Request.(*smithyhttp.Request); ok {
								sent = req.Header.Clone()
							}
							return next.HandleFinalize(ctx, in)
						}), middleware.After)
				})
			}
			if _, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String("k"),
				Body: strings.NewReader("some bytes")}, record); err != nil {
				t.Fatal(err)
			}
			if sent.Get("X-Amz-Checksum-Crc32") == "" && sent.Get("X-Amz-Trailer") == "" {
				t.Errorf("PutObject sent no CRC32 (headers %v)", sent)
			}
			out, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String("k"), Range: aws.String("bytes=0-3")}, record)
			if err != nil {
				t.Fatal(err)
			}
			out.Body.Close()
			if got := sent.Get("X-Amz-Checksum-Mode") == "ENABLED"; got != c.wantGetCkSum {
				t.Errorf("ranged GetObject asked for a checksum: %v, want %v (headers %v)", got, c.wantGetCkSum, sent)
			}
		})
	}
}
