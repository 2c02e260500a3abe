// Command analyzer consumes S3 event notifications from SQS, analyses each new image with Azure
// AI Vision and publishes the result to Pub/Sub; permanent failures go to the dead-letter
// queue with their reason.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"imgpipe/pkg/analyzer"
	"imgpipe/pkg/autoscale"
	"imgpipe/pkg/awsclient"
	"imgpipe/pkg/breaker"
	"imgpipe/pkg/config"
	"imgpipe/pkg/gcpauth"
	"imgpipe/pkg/objects/s3objects"
	"imgpipe/pkg/obs"
	"imgpipe/pkg/publish"
	"imgpipe/pkg/queue/sqsqueue"
	"imgpipe/pkg/ratelimit"
	"imgpipe/pkg/retry"
	"imgpipe/pkg/thumbnail"
	"imgpipe/pkg/vision"
)

const header = `analyzer: analyses images dropped into S3 with Azure AI Vision and publishes the results.

Usage:
  analyzer [settings]

It long-polls the SQS queue that receives the bucket's event notifications, reads each new
object, calls Azure AI Vision (Image Analysis 4.0 or 3.2), publishes an analysis record to the
Pub/Sub topic (a removal record for a deleted object) and then deletes the SQS message.
Permanent failures (not an image, too large, malformed event) go to the dead-letter queue at
once with their reason; transient ones are retried with backoff through the queue's visibility
timeout until its redrive policy moves them to the DLQ. A run of failures of S3, Vision or
Pub/Sub, or of setup faults (access denied, a refused key, a URL Vision cannot fetch), opens
the circuit: receiving stops and the messages wait on the queue instead of reaching the DLQ.
The first SIGINT/SIGTERM drains gracefully (bounded by --drain-timeout and the closes' own
timeouts); later ones are logged and ignored until exit (SIGKILL stops at once, leaving the
messages in work to come back after their visibility timeout). Logs are JSON lines on stderr.

AWS settings come from the SDK's own chain: AWS_REGION, the default credential chain,
AWS_ENDPOINT_URL_S3 and AWS_ENDPOINT_URL_SQS. Google settings: GOOGLE_CLOUD_PROJECT,
Application Default Credentials (external_account files for workload identity federation),
PUBSUB_EMULATOR_HOST; when GOOGLE_APPLICATION_CREDENTIALS names an AWS external_account file,
its AWS credentials come from the AWS SDK's default chain (IRSA web identity, ECS, SSO, EC2).
Give exactly one Vision credential: a key, a key file, an access token file, or a federated
token file for Entra ID workload identity federation (with the tenant and client IDs; on AKS
the workload identity webhook sets AZURE_FEDERATED_TOKEN_FILE, AZURE_CLIENT_ID,
AZURE_TENANT_ID and AZURE_AUTHORITY_HOST).

The garbage collector: unless GOMEMLIMIT is set, the memory limit is 90% of the container's
(cgroup) memory limit; then, unless GOGC is set, GOGC is 400 while a memory limit holds the
heap (with neither, Go's defaults). GODEBUG=gcshrinkstackoff=1 (the deployment's) cuts CPU
further. The values in effect are logged at start.` + obs.TracingHelp

type settings struct {
	queueURL, dlqURL, topic, project                    string
	visionEndpoint, visionKey, visionKeyFile, tokenFile string
	azureTenant, azureClient, federatedFile, authority  string
	visionAPI, mode, logLevel                           string
	visionFeatures, smartCrops, thumbnailPrefix         string
	thumbnailDecodes, thumbnailMaxPixels                int
	visionRate                                          float64
	visionBurst, visionRetries, workers                 int
	visionTimeout, attemptTimeout                       time.Duration
	visibility, wait, drain, s3Timeout                  time.Duration
	maxImageBytes                                       int
	pathStyle, orderingKeys, adaptiveRate               bool

	metricsAddr, profileDir                       string
	minWorkers, maxWorkers, breakerFailures       int
	receiveAhead                                  int
	targetPerWorker                               float64
	scaleCooldown, depthInterval, breakerCooldown time.Duration
}

func newSet(s *settings) *config.Set {
	set := config.NewSet("analyzer", header)
	set.String(&s.queueURL, "queue-url", "IMGPIPE_QUEUE_URL", "", "SQS queue receiving the bucket's event notifications", config.Required(), config.Validate(config.HTTPURL(&s.queueURL)))
	set.String(&s.dlqURL, "dlq-url", "IMGPIPE_DLQ_URL", "", "SQS dead-letter queue for permanent failures (the queue's redrive target)", config.Required(), config.Validate(config.HTTPURL(&s.dlqURL)))
	set.String(&s.project, "project", "GOOGLE_CLOUD_PROJECT", "", "Google Cloud project of the Pub/Sub topic", config.Required())
	set.String(&s.topic, "topic", "IMGPIPE_TOPIC", "", "Pub/Sub topic for analysis records (ID or full name)", config.Required())
	set.Bool(&s.orderingKeys, "ordering-keys", "IMGPIPE_ORDERING_KEYS", false, "publish each record with its object's ordering key, for subscriptions with message ordering enabled (one publish request per record: slower)")
	set.String(&s.visionEndpoint, "vision-endpoint", "AZURE_VISION_ENDPOINT", "", "Azure AI Vision endpoint, https://NAME.cognitiveservices.azure.com", config.Required(), config.Validate(config.HTTPURL(&s.visionEndpoint)))
	set.String(&s.visionKey, "vision-key", "AZURE_VISION_KEY", "", "Azure AI Vision subscription key (prefer --vision-key-file)", config.Secret())
	set.String(&s.visionKeyFile, "vision-key-file", "AZURE_VISION_KEY_FILE", "", "file holding the subscription key; re-read when it changes (a mounted secret)")
	set.String(&s.tokenFile, "vision-token-file", "AZURE_VISION_TOKEN_FILE", "", "file holding an Entra ID access token for https://cognitiveservices.azure.com/.default; re-read when it changes")
	set.String(&s.federatedFile, "azure-federated-token-file", "AZURE_FEDERATED_TOKEN_FILE", "", "Entra ID workload identity federation: file holding the federated token (a projected service account token) exchanged for Vision access tokens; re-read as it rotates")
	set.String(&s.azureTenant, "azure-tenant-id", "AZURE_TENANT_ID", "", "Entra ID tenant of the workload identity (with --azure-federated-token-file)")
	set.String(&s.azureClient, "azure-client-id", "AZURE_CLIENT_ID", "", "client ID of the managed identity or app registration trusting the federated token (with --azure-federated-token-file)")
	set.String(&s.authority, "azure-authority-host", "AZURE_AUTHORITY_HOST", "", "Entra ID authority, https (empty: the public cloud's https://login.microsoftonline.com/)", config.Validate(config.HTTPURL(&s.authority)))
	set.String(&s.visionAPI, "vision-api", "IMGPIPE_VISION_API", "4.0", "Image Analysis API: 4.0 or 3.2", config.Validate(config.OneOf(&s.visionAPI, "4.0", "3.2")))
	set.String(&s.visionFeatures, "vision-features", "IMGPIPE_VISION_FEATURES", "tags,caption", "Vision features to request, comma-separated: tags, caption, objects; 4.0 only: read (text), people, denseCaptions, smartCrops (with 3.2 the analyzer refuses to start when one is asked); 3.2 only: color (not recorded)", config.Validate(func() error {
		_, err := vision.ParseFeatures(s.visionFeatures)
		return err
	}))
	set.String(&s.smartCrops, "vision-smart-crops", "IMGPIPE_VISION_SMART_CROPS", "", "aspect ratios (width/height, 0.75-1.8, comma-separated) of the smart crops requested with the smartCrops feature, the first of which frames the thumbnail; empty: one at a ratio Vision picks", config.Validate(func() error {
		_, err := vision.ParseAspectRatios(s.smartCrops)
		return err
	}))
	set.Float(&s.visionRate, "vision-rate", "IMGPIPE_VISION_RATE", vision.DefaultRatePerSecond, "client-side limit on Vision calls per second, shared by all workers: the Vision resource's quota (free tier: 0.33); the ceiling of the adaptive rate")
	set.Int(&s.visionBurst, "vision-burst", "IMGPIPE_VISION_BURST", vision.DefaultBurst, "token-bucket burst of Vision calls", config.Validate(config.Positive(&s.visionBurst)))
	set.Bool(&s.adaptiveRate, "vision-rate-adaptive", "IMGPIPE_VISION_RATE_ADAPTIVE", true, "let the Vision call rate adapt to 429s below --vision-rate, starting at a sixteenth of it (replicas sharing one quota, each given the whole quota, settle on their shares); false: a fixed rate")
	set.Int(&s.visionRetries, "vision-retries", "IMGPIPE_VISION_RETRIES", retry.DefaultMaxRetries, "retries of one Vision call before the message is rescheduled", config.Validate(config.Between(&s.visionRetries, 0, 20)))
	set.Duration(&s.visionTimeout, "vision-timeout", "IMGPIPE_VISION_TIMEOUT", vision.DefaultTimeout, "bound on one analysis, retries and waits included", config.Validate(config.PositiveDuration(&s.visionTimeout)))
	set.Duration(&s.attemptTimeout, "vision-attempt-timeout", "IMGPIPE_VISION_ATTEMPT_TIMEOUT", vision.DefaultAttemptTimeout, "bound on one Vision HTTP attempt", config.Validate(config.PositiveDuration(&s.attemptTimeout)))
	set.String(&s.mode, "mode", "IMGPIPE_MODE", "stream", "how Vision gets the image: stream (bytes through the analyzer) or url (presigned S3 URL)", config.Validate(config.OneOf(&s.mode, "stream", "url")))
	set.Int(&s.workers, "workers", "IMGPIPE_WORKERS", 16, "messages in their Vision call at once (the first S3 read comes before, publishing and deleting after, outside the pool)", config.Validate(config.Between(&s.workers, 1, 1024)))
	set.Duration(&s.visibility, "visibility-timeout", "IMGPIPE_VISIBILITY_TIMEOUT", 30*time.Second, "visibility timeout of received messages (whole seconds, 1s-12h), renewed by a heartbeat while in work", config.Validate(config.SecondsBetween(&s.visibility, time.Second, sqsqueue.MaxHold)))
	set.Duration(&s.wait, "wait-time", "IMGPIPE_WAIT_TIME", sqsqueue.MaxWait, "SQS long-poll wait (whole seconds, 0-20s); on SIGTERM the last poll runs to its end, so an idle analyzer stops within this", config.Validate(config.SecondsBetween(&s.wait, 0, sqsqueue.MaxWait)))
	set.Duration(&s.drain, "drain-timeout", "IMGPIPE_DRAIN_TIMEOUT", 25*time.Second, "on SIGTERM, how long in-flight messages may finish before they are released", config.Validate(config.PositiveDuration(&s.drain)))
	set.Int(&s.maxImageBytes, "max-image-bytes", "IMGPIPE_MAX_IMAGE_BYTES", 20_000_000, "larger objects fail permanently (Vision 4.0 takes up to 20 MB, 3.2 up to 4 MB)", config.Validate(config.Positive(&s.maxImageBytes)))
	set.String(&s.thumbnailPrefix, "thumbnail-prefix", "IMGPIPE_THUMBNAIL_PREFIX", "thumbnail/", "key prefix of the thumbnails written beside the images (a JPEG of at most 320 pixels a side, cut to the first smart crop when smartCrops is requested, one per version in a folder named after the key, the older ones removed when a newer one is written and all with the image); must lie outside the bucket notification's prefix; empty: no thumbnails")
	set.Int(&s.thumbnailDecodes, "thumbnail-decodes", "IMGPIPE_THUMBNAIL_DECODES", analyzer.DefaultThumbnailDecodes, "images decoded for thumbnails at once (each holds its decoded pixels: 1.5 to 3 bytes a pixel for JPEG, 4 for 8-bit PNG, up to 8 for 16-bit images)", config.Validate(config.Between(&s.thumbnailDecodes, 1, 64)))
	set.Int(&s.thumbnailMaxPixels, "thumbnail-max-pixels", "IMGPIPE_THUMBNAIL_MAX_PIXELS", thumbnail.DefaultMaxPixels, "images with more pixels get no thumbnail (bounds the memory of each decode)", config.Validate(config.Positive(&s.thumbnailMaxPixels)))
	set.Bool(&s.pathStyle, "s3-path-style", "IMGPIPE_S3_PATH_STYLE", false, "address S3 path-style (stand-ins and some S3-compatible stores)")
	set.Duration(&s.s3Timeout, "s3-timeout", "IMGPIPE_S3_TIMEOUT", analyzer.DefaultS3Timeout, "bound on each S3 read: the first ranged GET, and for the rest of a larger image the wait for headers and each pause between bytes; a stalled read is retried later", config.Validate(config.PositiveDuration(&s.s3Timeout)))
	set.Int(&s.receiveAhead, "receive-ahead", "IMGPIPE_RECEIVE_AHEAD", 10, "messages that may wait, visibility extended, for a worker to free (receiving pauses while every worker is busy or has one waiting; 0: receive only for free workers)", config.Validate(config.Between(&s.receiveAhead, 0, 100)))
	set.String(&s.metricsAddr, "metrics-addr", "IMGPIPE_METRICS_ADDR", ":9090", "address of /metrics, /healthz and /readyz; empty disables them")
	set.Int(&s.maxWorkers, "max-workers", "IMGPIPE_MAX_WORKERS", 0, "autoscale the worker pool up to this size from the queue depth (0: a fixed pool of --workers)", config.Validate(config.Between(&s.maxWorkers, 0, 1024)))
	set.Int(&s.minWorkers, "min-workers", "IMGPIPE_MIN_WORKERS", 1, "smallest autoscaled worker pool", config.Validate(config.Between(&s.minWorkers, 1, 1024)))
	set.Float(&s.targetPerWorker, "target-backlog-per-worker", "IMGPIPE_TARGET_BACKLOG_PER_WORKER", 10, "autoscaler target: messages waiting or in work per worker")
	set.Duration(&s.scaleCooldown, "scale-cooldown", "IMGPIPE_SCALE_COOLDOWN", 30*time.Second, "least time between two resizes of the worker pool", config.Validate(config.PositiveDuration(&s.scaleCooldown)))
	set.Duration(&s.depthInterval, "depth-interval", "IMGPIPE_DEPTH_INTERVAL", 10*time.Second, "how often the queue and dead-letter queue depths are read (metrics and autoscaler)", config.Validate(config.PositiveDuration(&s.depthInterval)))
	set.Int(&s.breakerFailures, "breaker-failures", "IMGPIPE_BREAKER_FAILURES", 5, "consecutive messages failed by S3, Vision or Pub/Sub being down or by a setup fault (access denied, bad key, a URL Vision cannot fetch) that open the circuit (receiving stops)", config.Validate(config.Positive(&s.breakerFailures)))
	set.Duration(&s.breakerCooldown, "breaker-cooldown", "IMGPIPE_BREAKER_COOLDOWN", 10*time.Second, "how long the circuit stays open before a probe (up to 12h: messages given back wait as long)", config.Validate(func() error {
		if s.breakerCooldown <= 0 || s.breakerCooldown > sqsqueue.MaxHold {
			return fmt.Errorf("must be above 0 and at most %s, got %s", sqsqueue.MaxHold, s.breakerCooldown)
		}
		return nil
	}))
	set.String(&s.logLevel, "log-level", "IMGPIPE_LOG_LEVEL", "info", "log level: debug, info, warn, error")
	set.String(&s.profileDir, "profile-dir", "IMGPIPE_PROFILE_DIR", "", "write a CPU profile of the whole run and, at exit, an allocation profile (pprof files) into this folder; empty: none")
	return set
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		if errors.Is(err, config.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintf(os.Stderr, "analyzer: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	s := &settings{}
	set := newSet(s)
	if err := set.Parse(args); err != nil {
		if errors.Is(err, config.ErrHelp) {
			set.Usage(os.Stdout)
		}
		return err
	}
	if len(set.Args()) > 0 {
		return fmt.Errorf("unexpected arguments %q (see --help)", set.Args())
	}
	if s.maxWorkers > 0 && s.minWorkers > s.maxWorkers {
		return fmt.Errorf("invalid setting --min-workers (IMGPIPE_MIN_WORKERS): %d is above --max-workers %d", s.minWorkers, s.maxWorkers)
	}
	if !(s.targetPerWorker > 0) {
		return fmt.Errorf("invalid setting --target-backlog-per-worker (IMGPIPE_TARGET_BACKLOG_PER_WORKER): must be positive, got %g", s.targetPerWorker)
	}
	if !(s.visionRate > 0) {
		return fmt.Errorf("invalid setting --vision-rate (IMGPIPE_VISION_RATE): must be positive, got %g", s.visionRate)
	}
	cred, err := credential(s)
	if err != nil {
		return err
	}
	log, err := obs.NewLogger("analyzer", s.logLevel)
	if err != nil {
		return err
	}
	defer log.Sync()
	gc := obs.TuneGC(nil)
	log.Info("garbage collector", zap.Int("gogc", gc.Percent), zap.String("gogc_from", gc.PercentFrom),
		zap.Int64("memory_limit_bytes", gc.MemoryLimit), zap.String("memory_limit_from", gc.MemoryLimitOf))
	log.Info("vision credential", zap.String("credential", fmt.Sprint(cred)))
	if s.profileDir != "" {
		stopProfiles, err := obs.StartProfiles(s.profileDir)
		if err != nil {
			return err
		}
		defer func() {
			if err := stopProfiles(); err != nil {
				log.Error("profiles not written", zap.Error(err))
			}
		}()
	}

	ctx, stop := obs.ShutdownSignals(log)
	defer stop()
	stopTracing, err := obs.StartTracing(ctx, "imgpipe-analyzer", log)
	if err != nil {
		return err
	}
	defer stopTracing()

	awsOpts := &awsclient.Options{S3PathStyle: s.pathStyle, Logger: log, S3RangedReads: true}
	cfg, err := awsclient.Config(ctx, awsOpts)
	if err != nil {
		return err
	}
	reg := obs.NewRegistry()
	vobs := analyzer.NewVisionObserver()
	api := vision.V40
	if s.visionAPI == "3.2" {
		api = vision.V32
	}
	bucketOpts := &ratelimit.BucketOptions{}
	if s.adaptiveRate {
		bucketOpts.Adaptive = &ratelimit.Adaptive{}
	}
	rate := ratelimit.NewBucket(s.visionRate, s.visionBurst, bucketOpts)
	conc := ratelimit.NewAIMD(&ratelimit.AIMDOptions{Max: max(s.workers, s.maxWorkers), Initial: min(8, s.workers), SlowStart: true, Rate: rate})
	feats, _ := vision.ParseFeatures(s.visionFeatures) // validated with the settings
	ratios, _ := vision.ParseAspectRatios(s.smartCrops)
	vc, err := vision.New(s.visionEndpoint, cred, &vision.Options{
		APIVersion:             api,
		Features:               feats,
		SmartCropsAspectRatios: ratios,
		Timeout:                s.visionTimeout,
		AttemptTimeout:         s.attemptTimeout,
		Retry:                  retry.Policy{MaxRetries: retriesSetting(s.visionRetries)},
		RateLimit:              rate,
		Concurrency:            conc,
		Observer:               vobs,
	})
	if err != nil {
		return fmt.Errorf("vision client: %w", err)
	}
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "imgpipe_analyzer_vision_rate", Help: "Client-side limit on Vision calls per second now (adapted to 429s unless --vision-rate-adaptive=false)."}, rate.Rate),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "imgpipe_analyzer_vision_concurrency_limit", Help: "Adaptive limit on Vision calls in flight now."}, func() float64 { return float64(conc.Limit()) }),
	)
	defer vc.Close()

	gcreds, err := gcpauth.Load(ctx, nil)
	if err != nil {
		return err
	}
	log.Info("google credentials", zap.Stringer("credential", gcreds))
	ps, err := pubsub.NewClient(ctx, s.project, gcreds.ClientOptions("PUBSUB_EMULATOR_HOST")...)
	if err != nil {
		return fmt.Errorf("pubsub client: %w", err)
	}
	defer ps.Close()
	pub := publish.New(ps, s.topic, &publish.Options{OrderingKeys: s.orderingKeys})
	defer pub.Close()

	calls := analyzer.NewSQSCalls()
	reg.MustRegister(calls)
	sqsClient := awsclient.SQS(cfg, func(o *sqs.Options) { o.APIOptions = append(o.APIOptions, awsclient.CountCalls(calls)) })
	events, err := sqsqueue.New(sqsClient, s.queueURL, &sqsqueue.Options{Wait: zeroMeansNone(s.wait)})
	if err != nil {
		return err
	}
	dlq, err := sqsqueue.New(sqsClient, s.dlqURL, nil)
	if err != nil {
		return err
	}
	store := s3objects.New(awsclient.S3(cfg, awsOpts))
	a, err := analyzer.New(analyzer.Deps{
		Queue: events, DLQ: dlq, Objects: store, Vision: vc, Publisher: pub, Thumbnails: store,
	}, &analyzer.Options{
		ThumbnailPrefix: s.thumbnailPrefix, ThumbnailDecodes: s.thumbnailDecodes, ThumbnailMaxPixels: int64(s.thumbnailMaxPixels),
		Workers: s.workers, VisibilityTimeout: s.visibility, DrainTimeout: s.drain, Mode: analyzer.Mode(s.mode), S3Timeout: s.s3Timeout,
		MaxImageBytes: int64(s.maxImageBytes), Logger: log,
		Breaker:       &breaker.Options{ConsecutiveFailures: s.breakerFailures, Cooldown: s.breakerCooldown},
		Autoscale:     autoscaleOptions(s),
		DepthInterval: s.depthInterval, Registerer: reg, VisionObserver: vobs, ReceiveAhead: zeroMeansNone(s.receiveAhead),
	})
	if err != nil {
		return err
	}
	if s.metricsAddr != "" {
		srv, err := obs.Serve(s.metricsAddr, reg, a.Ready)
		if err != nil {
			return err
		}
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), analyzer.MetricsShutdownTimeout)
			defer cancel()
			_ = srv.Shutdown(sctx)
		}()
		log.Info("metrics listening", zap.String("addr", srv.Addr()))
	}
	log.Info("analyzer starting", obs.Settings(set.Describe()))
	return a.Run(ctx)
}

// autoscaleOptions is nil (a fixed pool) unless --max-workers is set.
func autoscaleOptions(s *settings) *autoscale.Options {
	if s.maxWorkers <= 0 {
		return nil
	}
	return &autoscale.Options{
		Min: s.minWorkers, Max: s.maxWorkers, TargetPerWorker: s.targetPerWorker,
		Cooldown: s.scaleCooldown, RatePerSecond: s.visionRate,
	}
}

// retriesSetting maps the user's "0 retries" onto the policy's "negative means none".
func retriesSetting(n int) int {
	if n == 0 {
		return -1
	}
	return n
}

func credential(s *settings) (vision.Credential, error) {
	given := 0
	for _, v := range []string{s.visionKey, s.visionKeyFile, s.tokenFile, s.federatedFile} {
		if v != "" {
			given++
		}
	}
	if given != 1 {
		return nil, errors.New("setting Vision credential: give exactly one of --vision-key (AZURE_VISION_KEY), --vision-key-file (AZURE_VISION_KEY_FILE), --vision-token-file (AZURE_VISION_TOKEN_FILE), --azure-federated-token-file (AZURE_FEDERATED_TOKEN_FILE)")
	}
	switch {
	case s.federatedFile != "":
		if s.azureTenant == "" || s.azureClient == "" {
			return nil, errors.New("missing setting --azure-tenant-id (AZURE_TENANT_ID) or --azure-client-id (AZURE_CLIENT_ID): workload identity federation with --azure-federated-token-file needs both")
		}
		c, err := vision.NewWorkloadIdentityCredential(s.azureTenant, s.azureClient, s.federatedFile, &vision.WorkloadIdentityOptions{AuthorityHost: s.authority})
		if err != nil {
			return nil, fmt.Errorf("invalid setting --azure-federated-token-file (AZURE_FEDERATED_TOKEN_FILE): %w", err)
		}
		return c, nil
	case s.visionKey != "":
		return vision.NewKeyCredential(s.visionKey)
	case s.visionKeyFile != "":
		c, err := vision.NewKeyFileCredential(s.visionKeyFile)
		if err != nil {
			return nil, fmt.Errorf("invalid setting --vision-key-file (AZURE_VISION_KEY_FILE): %w", err)
		}
		return c, nil
	}
	return vision.NewTokenCredential(vision.NewFileTokenSource(s.tokenFile)), nil
}

// zeroMeansNone maps a flag whose 0 means "none" to the option whose 0 means "the default" and
// whose negative values mean "none" (analyzer.Options.ReceiveAhead, sqsqueue.Options.Wait).
func zeroMeansNone[T int | time.Duration](v T) T {
	if v == 0 {
		return -1
	}
	return v
}
