// Command console serves the pipeline's web console: the HTTP API of imgpipe/pkg/console and
// the page over it. This file reads settings, builds the clients and runs the server.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"cloud.google.com/go/firestore"
	"cloud.google.com/go/pubsub/v2"
	"go.uber.org/zap"

	"imgpipe/pkg/awsclient"
	"imgpipe/pkg/config"
	"imgpipe/pkg/console"
	"imgpipe/pkg/gcpauth"
	"imgpipe/pkg/indexstore"
	"imgpipe/pkg/obs"
	"imgpipe/pkg/queue/pubsubqueue"
	"imgpipe/pkg/uploader"
)

const header = `console: the pipeline's web console - a JSON API and a page to drop images into the
bucket from a browser, watch them through the pipeline, browse and search what was recognised,
and see the queues and the dead letters.

Usage:
  console [settings]      serve until SIGINT/SIGTERM

It binds to loopback by default. To serve any other address it needs authentication: bearer
tokens (--token-file) or a reverse proxy that signs users in (an OIDC proxy such as
oauth2-proxy) and whose identity header it believes from --trusted-proxies only. Put a
TLS-terminating proxy in front of anything beyond loopback.

Browsers upload straight to S3 with presigned PUTs and load images with presigned GETs: the
bucket needs a CORS rule allowing PUT from the console's origin with the headers Content-Type
and x-amz-meta-* (see docs/console.md). The API is described in pkg/console/openapi.yaml,
served at /api/v1/openapi.yaml.

AWS settings come from the SDK's own chain: AWS_REGION, the default credentials, and
AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL_SQS for other endpoints. Google settings: Application
Default Credentials, FIRESTORE_EMULATOR_HOST and PUBSUB_EMULATOR_HOST for the emulators. When
GOOGLE_APPLICATION_CREDENTIALS names an AWS external_account file (workload identity
federation), the AWS side comes from the AWS SDK's default chain (IRSA web identity, ECS,
SSO, EC2) and AWS_REGION is required.` + obs.TracingHelp

type settings struct {
	addr, bucket, prefix, project, database, collection    string
	queueURL, dlqURL, deadLetterSub                        string
	tokenFile, trustedProxies, identityHeader, corsOrigins string
	bucketCORS                                             string
	logLevel                                               string
	maxUpload                                              int
	rate                                                   float64
	burst, dlqScan                                         int
	presignTTL, dlqRefresh                                 time.Duration
	pathStyle                                              bool
}

func newSet(s *settings) *config.Set {
	set := config.NewSet("console", header)
	set.String(&s.addr, "addr", "IMGPIPE_CONSOLE_ADDR", "127.0.0.1:8080", "address to serve the page and the API on (beyond loopback only with --token-file or --trusted-proxies)")
	set.String(&s.bucket, "bucket", "IMGPIPE_BUCKET", "", "S3 bucket of the drop folder", config.Required())
	set.String(&s.prefix, "prefix", "IMGPIPE_PREFIX", "upload/", "key prefix browser uploads go under (the one the pipeline watches)",
		config.Validate(func() error { return uploader.CheckPrefix(s.prefix) }))
	set.Bool(&s.pathStyle, "s3-path-style", "IMGPIPE_S3_PATH_STYLE", false, "address S3 path-style (stand-ins, some S3-compatible stores)")
	set.String(&s.project, "project", "GOOGLE_CLOUD_PROJECT", "", "Google Cloud project of the Firestore index (and the Pub/Sub dead letters)", config.Required())
	set.String(&s.database, "database", "IMGPIPE_FIRESTORE_DATABASE", firestore.DefaultDatabaseID, "Firestore database ID")
	set.String(&s.collection, "collection", "IMGPIPE_COLLECTION", "images", "Firestore collection of the index")
	set.String(&s.queueURL, "queue-url", "IMGPIPE_QUEUE_URL", "", "SQS queue of the bucket's notifications, whose depth the pipeline panel shows (empty: not shown)",
		config.Validate(config.HTTPURL(&s.queueURL)))
	set.String(&s.dlqURL, "dlq-url", "IMGPIPE_DLQ_URL", "", "the analyzer's SQS dead-letter queue, scanned (never consumed) for failures (empty: not scanned)",
		config.Validate(config.HTTPURL(&s.dlqURL)))
	set.String(&s.deadLetterSub, "dead-letter-subscription", "IMGPIPE_DEAD_LETTER_SUBSCRIPTION", "", "subscription on the indexer's Pub/Sub dead-letter topic, ID or full name, scanned for failures (empty: not scanned)")
	set.Int(&s.maxUpload, "max-upload-bytes", "IMGPIPE_CONSOLE_MAX_UPLOAD_BYTES", 20_000_000, "largest browser upload, enforced by the presigned PUT's signature",
		config.Validate(config.Between(&s.maxUpload, 1, 5<<30)))
	set.Duration(&s.presignTTL, "presign-ttl", "IMGPIPE_CONSOLE_PRESIGN_TTL", 15*time.Minute, "lifetime of presigned upload and image URLs (at most 7 days)",
		config.Validate(func() error {
			if s.presignTTL < time.Second || s.presignTTL > 7*24*time.Hour {
				return fmt.Errorf("must be between 1s and 168h, got %s", s.presignTTL)
			}
			return nil
		}))
	set.String(&s.tokenFile, "token-file", "IMGPIPE_CONSOLE_TOKEN_FILE", "", "file of bearer tokens the API accepts, one per line (read at start)")
	set.String(&s.trustedProxies, "trusted-proxies", "IMGPIPE_CONSOLE_TRUSTED_PROXIES", "", "comma-separated addresses or CIDR prefixes of reverse proxies whose identity header is believed",
		config.Validate(func() error { _, err := console.ParsePrefixes(s.trustedProxies); return err }))
	set.String(&s.identityHeader, "identity-header", "IMGPIPE_CONSOLE_IDENTITY_HEADER", console.DefaultIdentityHeader, "header in which a trusted proxy names the signed-in user")
	set.String(&s.corsOrigins, "cors-origins", "IMGPIPE_CONSOLE_CORS_ORIGINS", "", "comma-separated origins (scheme://host[:port]) other pages may call the API from (empty: none)")
	set.String(&s.bucketCORS, "bucket-cors", "IMGPIPE_CONSOLE_BUCKET_CORS", "", "comma-separated origins the console's page is served from: at start, give the bucket the CORS rule for browser uploads from them (needs s3:PutBucketCORS; for local stacks; empty: leave the bucket alone)")
	set.Float(&s.rate, "rate", "IMGPIPE_CONSOLE_RATE", 20, "API requests per second allowed to each client (a proxy's user, else an address)",
		config.Validate(func() error {
			if s.rate <= 0 {
				return fmt.Errorf("must be positive, got %g", s.rate)
			}
			return nil
		}))
	set.Int(&s.burst, "burst", "IMGPIPE_CONSOLE_BURST", 60, "API requests a client may make at once", config.Validate(config.Positive(&s.burst)))
	set.Duration(&s.dlqRefresh, "dlq-refresh", "IMGPIPE_CONSOLE_DLQ_REFRESH", 10*time.Second, "how long one scan of the dead-letter queues is reused (each scan receives and releases every message)",
		config.Validate(config.PositiveDuration(&s.dlqRefresh)))
	set.Int(&s.dlqScan, "dlq-scan", "IMGPIPE_CONSOLE_DLQ_SCAN", 1000, "most messages one scan looks at per dead-letter queue", config.Validate(config.Between(&s.dlqScan, 1, 100000)))
	set.String(&s.logLevel, "log-level", "IMGPIPE_LOG_LEVEL", "info", "log level of the JSON logs on stderr: debug, info (a line per request), warn, error")
	return set
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	switch {
	case errors.Is(err, config.ErrHelp):
	case err != nil:
		fmt.Fprintf(os.Stderr, "console: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	s := &settings{}
	set := newSet(s)
	if len(args) > 0 && args[0] == "help" {
		set.Usage(stdout)
		return nil
	}
	if err := set.Parse(args); err != nil {
		if errors.Is(err, config.ErrHelp) {
			set.Usage(stdout)
		}
		return err
	}
	if len(set.Args()) > 0 {
		return fmt.Errorf("console takes no arguments, got %q (see --help)", strings.Join(set.Args(), " "))
	}
	auth, err := s.auth()
	if err != nil {
		return err
	}
	if err := console.CheckExposure(s.addr, &auth); err != nil {
		return fmt.Errorf("invalid setting --addr (IMGPIPE_CONSOLE_ADDR): %w", err)
	}
	origins := config.List(s.corsOrigins)
	log, err := obs.NewLogger("console", s.logLevel)
	if err != nil {
		return err
	}
	defer log.Sync()
	stopTracing, err := obs.StartTracing(ctx, "imgpipe-console", log)
	if err != nil {
		return err
	}
	defer stopTracing()
	log.Info("console starting", obs.Settings(set.Describe()))

	awsOpts := &awsclient.Options{S3PathStyle: s.pathStyle}
	cfg, err := awsclient.Config(ctx, awsOpts)
	if err != nil {
		return err
	}
	gcreds, err := gcpauth.Load(ctx, nil)
	if err != nil {
		return err
	}
	log.Info("google credentials", zap.Stringer("credential", gcreds))
	fs, err := firestore.NewClientWithDatabase(ctx, s.project, s.database, gcreds.ClientOptions("FIRESTORE_EMULATOR_HOST")...)
	if err != nil {
		return fmt.Errorf("firestore client: %w", err)
	}
	defer fs.Close()
	deps := console.Deps{S3: awsclient.S3(cfg, awsOpts), Index: indexstore.New(fs, s.collection, nil)}
	if s.queueURL != "" || s.dlqURL != "" {
		deps.SQS = awsclient.SQS(cfg)
	}
	deadLetterSub := ""
	if s.deadLetterSub != "" {
		ps, err := pubsub.NewClient(ctx, s.project, gcreds.ClientOptions("PUBSUB_EMULATOR_HOST")...)
		if err != nil {
			return fmt.Errorf("pubsub client: %w", err)
		}
		defer ps.Close()
		deps.PubSub = ps.SubscriptionAdminClient
		deadLetterSub = pubsubqueue.FullName(s.project, "subscriptions", s.deadLetterSub)
	}
	srv, err := console.New(s.bucket, deps, &console.Options{
		Prefix: s.prefix, QueueURL: s.queueURL, DLQURL: s.dlqURL, DeadLetterSubscription: deadLetterSub,
		MaxUploadBytes: int64(s.maxUpload), PresignTTL: s.presignTTL, Auth: auth, CORSOrigins: origins,
		RatePerSecond: s.rate, RateBurst: s.burst, DLQRefresh: s.dlqRefresh, DLQScan: s.dlqScan, Logger: log,
	})
	if err != nil {
		return fmt.Errorf("invalid settings: %w", err)
	}

	if bucketOrigins := config.List(s.bucketCORS); len(bucketOrigins) > 0 {
		if err := console.AllowUploads(ctx, deps.S3, s.bucket, bucketOrigins...); err != nil {
			return err
		}
		log.Info("bucket CORS rule set for browser uploads", zap.Strings("origins", bucketOrigins))
	}

	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", s.addr, err)
	}
	hs := &http.Server{
		Handler: srv, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 60 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10,
	}
	url := "http://" + ln.Addr().String() + "/"
	log.Info("console serving", zap.String("url", url), zap.String("auth", auth.Mode()), zap.String("s3_origin", srv.S3Origin()))
	fmt.Fprintf(stdout, "console: serving %s\n", url)
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = hs.Shutdown(sctx)
	<-served
	if err != nil {
		return fmt.Errorf("shut down: %w", err)
	}
	log.Info("console stopped")
	return nil
}

// auth reads the authentication settings.
func (s *settings) auth() (console.Auth, error) {
	a := console.Auth{IdentityHeader: s.identityHeader}
	var err error
	if a.TrustedProxies, err = console.ParsePrefixes(s.trustedProxies); err != nil {
		return a, fmt.Errorf("invalid setting --trusted-proxies (IMGPIPE_CONSOLE_TRUSTED_PROXIES): %w", err)
	}
	if s.tokenFile == "" {
		return a, nil
	}
	b, err := os.ReadFile(s.tokenFile)
	if err != nil {
		return a, fmt.Errorf("invalid setting --token-file (IMGPIPE_CONSOLE_TOKEN_FILE): %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if t := strings.TrimSpace(line); t != "" && !strings.HasPrefix(t, "#") {
			if len(t) < 16 {
				return a, fmt.Errorf("invalid setting --token-file (IMGPIPE_CONSOLE_TOKEN_FILE): a token of %d characters; use at least 16", len(t))
			}
			a.Tokens = append(a.Tokens, t)
		}
	}
	if len(a.Tokens) == 0 {
		return a, fmt.Errorf("invalid setting --token-file (IMGPIPE_CONSOLE_TOKEN_FILE): %s holds no token", s.tokenFile)
	}
	return a, nil
}
