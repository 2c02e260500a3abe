package awsclient_test

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/smithy-go/logging"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"imgpipe/internal/devstack"
	"imgpipe/internal/stacktest"
	"imgpipe/pkg/awsclient"
)

func TestMain(m *testing.M) { stacktest.Main(m, devstack.SQS|devstack.S3) }

// The binaries reach the stand-ins (or any endpoint) through the SDK's own variables only.
func TestEndpointsFromSDKEnvironment(t *testing.T) {
	st := stacktest.Get(t)
	t.Setenv("AWS_REGION", st.Region)
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_ENDPOINT_URL_S3", st.S3Endpoint)
	t.Setenv("AWS_ENDPOINT_URL_SQS", st.SQSEndpoint)
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
	t.Setenv("AWS_REGION", st.Region)
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_ENDPOINT_URL_S3", st.S3Endpoint)
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
