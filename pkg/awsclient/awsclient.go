// Package awsclient builds the S3 and SQS clients of the pipeline's binaries from the AWS
// SDK's own configuration chain: AWS_REGION, the default credential chain (environment, shared
// files, web identity, container and instance roles) and the service endpoint variables
// AWS_ENDPOINT_URL_S3 and AWS_ENDPOINT_URL_SQS, which the SDK reads itself.
//
// The SDK's own log lines go through the binary's zap logger (Options.Logger), never as
// plain text to stderr; the S3 client's note on every ranged read that its response carries
// no checksum to validate is turned off. A client that reads only ranges (Options.S3RangedReads,
// the analyzer) asks for no response checksum, which S3 never sends with a part. The S3
// clients resolve their endpoints with the SDK's own rules once per bucket and setting, not
// on every call (endpoints.go).
package awsclient

import (
	"context"
	"fmt"
	"net/http"

	"github.com/aws/smithy-go/logging"
	"github.com/aws/smithy-go/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"imgpipe/pkg/failure"
)

// Options tunes the clients. A nil *Options takes the defaults.
type Options struct {
	// S3PathStyle addresses buckets as https://host/bucket/key instead of
	// https://bucket.host/key; stand-ins and some S3-compatible stores need it.
	S3PathStyle bool
	// MaxAttempts bounds the SDK's own retries of one call; default 5.
	MaxAttempts int
	// Logger receives the SDK's log lines: its warnings at warn level, the rest at debug.
	// Nil discards them.
	Logger *zap.Logger
	// S3RangedReads says the S3 client reads only byte ranges (the analyzer): it then asks
	// for and validates response checksums only where an operation requires them, since S3
	// sends no whole-object checksum with a part, unless AWS_RESPONSE_CHECKSUM_VALIDATION
	// (or the shared config's response_checksum_validation) sets it. Request checksums
	// (PutObject's CRC32) stay as configured.
	S3RangedReads bool
}

// Config loads the SDK's default configuration. The SDK's client-side retry quota is turned
// off: under sustained errors it fails calls outright ("retry quota exceeded"), and the
// pipeline already bounds retries per message with the queue's redrive policy.
func Config(ctx context.Context, opts *Options) (aws.Config, error) {
	attempts := 5
	if opts != nil && opts.MaxAttempts > 0 {
		attempts = opts.MaxAttempts
	}
	cfg, err := config.LoadDefaultConfig(ctx, config.WithRetryer(func() aws.Retryer {
		return retry.NewStandard(func(o *retry.StandardOptions) {
			o.MaxAttempts = attempts
			o.RateLimiter = ratelimit.None
		})
	}), config.WithHTTPClient(HTTPClient()), config.WithLogger(sdkLogger(opts)))
	if err != nil {
		return aws.Config{}, fmt.Errorf("load AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		return aws.Config{}, fmt.Errorf("missing setting AWS_REGION: the AWS region of the bucket and queues")
	}
	return cfg, nil
}

// MaxIdleConnsPerHost is how many idle connections the clients keep per endpoint. The SDK's
// default of 10 is far below the analyzer's concurrency: with 64 workers reading from S3,
// most requests would open a new connection (a TLS handshake on AWS) and close it after.
const MaxIdleConnsPerHost = 1024

// HTTPClient is the SDK's HTTP client with a connection pool sized for the pipeline's
// concurrency (see MaxIdleConnsPerHost).
func HTTPClient() *awshttp.BuildableClient {
	return awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
		t.MaxIdleConns = MaxIdleConnsPerHost
		t.MaxIdleConnsPerHost = MaxIdleConnsPerHost
	})
}

// S3 returns an S3 client for cfg.
func S3(cfg aws.Config, opts *Options) *s3.Client {
	return s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.UsePathStyle = opts != nil && opts.S3PathStyle
		// "Response has no supported checksum. Not validating response payload." on every
		// ranged GET (S3 sends no whole-object checksum with a part): no use to an operator.
		o.DisableLogOutputChecksumValidationSkipped = true
		o.EndpointResolverV2 = newCachedEndpoints(s3.NewDefaultEndpointResolverV2())
		if opts != nil && opts.S3RangedReads && !responseChecksumsSet(cfg) {
			o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
		}
	})
}

// responseChecksumsSet reports whether the environment or the shared config file chose the
// response checksum validation (LoadDefaultConfig fills in its default otherwise).
func responseChecksumsSet(cfg aws.Config) bool {
	for _, src := range cfg.ConfigSources {
		switch c := src.(type) {
		case config.EnvConfig:
			if c.ResponseChecksumValidation != aws.ResponseChecksumValidationUnset {
				return true
			}
		case config.SharedConfig:
			if c.ResponseChecksumValidation != aws.ResponseChecksumValidationUnset {
				return true
			}
		}
	}
	return false
}

// sdkLogger is the SDK's logger for opts: zap, or nothing.
func sdkLogger(opts *Options) logging.Logger {
	if opts == nil || opts.Logger == nil {
		return logging.Nop{}
	}
	return zapLogger{opts.Logger.Named("aws-sdk")}
}

// zapLogger writes the SDK's log lines to zap, with any signed URL's query removed.
type zapLogger struct{ log *zap.Logger }

func (l zapLogger) Logf(c logging.Classification, format string, v ...any) {
	msg := failure.RedactURLs(fmt.Sprintf(format, v...))
	if c == logging.Warn {
		l.log.Warn(msg)
		return
	}
	l.log.Debug(msg)
}

// SQS returns an SQS client for cfg, with optFns applied (CountCalls, say).
func SQS(cfg aws.Config, optFns ...func(*sqs.Options)) *sqs.Client {
	return sqs.NewFromConfig(cfg, optFns...)
}

// CountCalls counts a client's API calls on vec by operation (label "op": ReceiveMessage,
// DeleteMessageBatch...), once per call whatever its SDK retries, whoever makes it. Append it
// to the client's APIOptions.
func CountCalls(vec *prometheus.CounterVec) func(*middleware.Stack) error {
	return func(stack *middleware.Stack) error {
		return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("imgpipeCountCalls",
			func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
				vec.WithLabelValues(awsmiddleware.GetOperationName(ctx)).Inc()
				return next.HandleInitialize(ctx, in)
			}), middleware.After)
	}
}
