// Command indexer writes analysis records from a Pub/Sub subscription into the Firestore
// index, and answers lookups and tag searches on it.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"cloud.google.com/go/firestore"
	"cloud.google.com/go/pubsub/v2"
	"go.uber.org/zap"

	"imgpipe/pkg/config"
	"imgpipe/pkg/gcpauth"
	"imgpipe/pkg/gcpclient"
	"imgpipe/pkg/indexer"
	"imgpipe/pkg/indexstore"
	"imgpipe/pkg/obs"
	"imgpipe/pkg/queue"
	"imgpipe/pkg/queue/pubsubqueue"
)

const header = `indexer: writes analysis records from Pub/Sub into Firestore, one document per object.

Usage:
  indexer [run] [settings]            pull the subscription and index until SIGINT/SIGTERM
  indexer get [settings] BUCKET KEY   print the indexed analysis of one object
  indexer search [settings] TAG       print objects carrying TAG, newest first

Google credentials come from Application Default Credentials (including external_account
files for workload identity federation); when GOOGLE_APPLICATION_CREDENTIALS names an AWS
external_account file, its AWS credentials come from the AWS SDK's default chain (IRSA web
identity, ECS, SSO, EC2; AWS_REGION required). PUBSUB_EMULATOR_HOST and FIRESTORE_EMULATOR_HOST
point the clients at the emulators.

The first SIGINT/SIGTERM stops pulling and lets the writes in flight finish and ack or nack;
later ones are logged and ignored until exit (SIGKILL stops at once, leaving the messages in
hand to come back once their lease, --ack-extension, ends).` + obs.TracingHelp

type settings struct {
	project, database, subscription, collection, logLevel string
	metricsAddr, deadLetterTopic                          string
	maxMessages, maxBytes, receivers, limit, batchSize    int
	batchWait, retryFor, ackExtension                     time.Duration
	noDeadLetterCopy, json                                bool
}

func newSet(cmd string, s *settings) *config.Set {
	set := config.NewSet("indexer "+cmd, header)
	set.String(&s.project, "project", "GOOGLE_CLOUD_PROJECT", "", "Google Cloud project of the subscription and Firestore", config.Required())
	set.String(&s.database, "database", "IMGPIPE_FIRESTORE_DATABASE", firestore.DefaultDatabaseID, "Firestore database ID")
	set.String(&s.collection, "collection", "IMGPIPE_COLLECTION", "images", "Firestore collection of the index")
	set.String(&s.logLevel, "log-level", "IMGPIPE_LOG_LEVEL", "info", "log level: debug, info, warn, error")
	switch cmd {
	case "run":
		set.String(&s.subscription, "subscription", "IMGPIPE_SUBSCRIPTION", "", "Pub/Sub subscription to pull analysis records from (ID or full name)", config.Required())
		set.Int(&s.maxMessages, "max-outstanding-messages", "IMGPIPE_MAX_OUTSTANDING_MESSAGES", 256, "flow control: messages held unacknowledged at most", config.Validate(config.Positive(&s.maxMessages)))
		set.Int(&s.maxBytes, "max-outstanding-bytes", "IMGPIPE_MAX_OUTSTANDING_BYTES", 64<<20, "flow control: bytes held unacknowledged at most", config.Validate(config.Positive(&s.maxBytes)))
		set.Int(&s.receivers, "receivers", "IMGPIPE_RECEIVERS", 2, "receive loops, each with one Pull at a time", config.Validate(config.Between(&s.receivers, 1, 64)))
		set.Int(&s.batchSize, "batch-size", "IMGPIPE_BATCH_SIZE", 100, "most records written in one Firestore transaction (1: one transaction per record)", config.Validate(config.Between(&s.batchSize, 1, 250)))
		set.Duration(&s.batchWait, "batch-wait", "IMGPIPE_BATCH_WAIT", 10*time.Millisecond, "how long a record waits for others to share its transaction", config.Validate(config.PositiveDuration(&s.batchWait)))
		set.Duration(&s.retryFor, "retry-for", "IMGPIPE_RETRY_FOR", 90*time.Second, "how long a message whose write failed transiently is held, the write retried, before it is nacked (0: nack at once)", config.Validate(func() error {
			if s.retryFor < 0 {
				return fmt.Errorf("must not be negative, got %s", s.retryFor)
			}
			return nil
		}))
		set.Duration(&s.ackExtension, "ack-extension", "IMGPIPE_ACK_EXTENSION", 10*time.Second, "lease of a received message and of each extension while it is held: a dead indexer's messages return within about this long (10s-600s)", config.Validate(func() error {
			if s.ackExtension < 10*time.Second || s.ackExtension > 600*time.Second {
				return fmt.Errorf("must be between 10s and 600s, got %s", s.ackExtension)
			}
			return nil
		}))
		set.String(&s.deadLetterTopic, "dead-letter-topic", "IMGPIPE_DEAD_LETTER_TOPIC", "", "topic for copies of messages that can never be indexed (default: the subscription's dead-letter policy)")
		set.Bool(&s.noDeadLetterCopy, "no-dead-letter-copy", "IMGPIPE_NO_DEAD_LETTER_COPY", false, "nack messages that can never be indexed and leave them to the subscription's dead-letter policy")
		set.String(&s.metricsAddr, "metrics-addr", "IMGPIPE_METRICS_ADDR", ":9090", "address serving /metrics, /healthz and /readyz (empty: none)")
	case "search":
		set.Int(&s.limit, "limit", "", 20, "most results to print", config.Validate(config.Between(&s.limit, 1, 1000)))
		fallthrough
	case "get":
		set.Bool(&s.json, "json", "", false, "print JSON instead of a table")
	}
	return set
}

func main() {
	args := os.Args[1:]
	cmd := "run"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	if err := run(cmd, args); err != nil {
		if errors.Is(err, config.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintf(os.Stderr, "indexer: %v\n", err)
		os.Exit(1)
	}
}

func run(cmd string, args []string) error {
	switch cmd {
	case "run", "get", "search":
	case "help":
		newSet("run", &settings{}).Usage(os.Stdout)
		return nil
	default:
		return fmt.Errorf("unknown command %q (want run, get or search; see --help)", cmd)
	}
	s := &settings{}
	set := newSet(cmd, s)
	if err := set.Parse(args); err != nil {
		if errors.Is(err, config.ErrHelp) {
			set.Usage(os.Stdout)
		}
		return err
	}
	want := map[string]int{"run": 0, "get": 2, "search": 1}[cmd]
	if len(set.Args()) != want {
		return fmt.Errorf("%s takes %d arguments, got %d (see --help)", cmd, want, len(set.Args()))
	}
	log, err := obs.NewLogger("indexer", s.logLevel)
	if err != nil {
		return err
	}
	defer log.Sync()

	ctx, stop := obs.ShutdownSignals(log)
	defer stop()
	stopTracing, err := obs.StartTracing(ctx, "imgpipe-indexer", log)
	if err != nil {
		return err
	}
	defer stopTracing()
	gcreds, err := gcpauth.Load(ctx, nil)
	if err != nil {
		return err
	}
	log.Info("google credentials", zap.Stringer("credential", gcreds))
	fs, err := firestore.NewClientWithDatabase(ctx, s.project, s.database, append(gcreds.ClientOptions("FIRESTORE_EMULATOR_HOST"), gcpclient.Options()...)...)
	if err != nil {
		return fmt.Errorf("firestore client: %w", err)
	}
	defer fs.Close()
	store := indexstore.New(fs, s.collection, nil)

	switch cmd {
	case "get":
		doc, err := store.Get(ctx, set.Args()[0], set.Args()[1])
		if err != nil {
			return err
		}
		return printDocs(os.Stdout, []indexstore.Document{*doc}, s.json)
	case "search":
		docs, err := store.SearchTag(ctx, set.Args()[0], s.limit)
		if err != nil {
			return err
		}
		return printDocs(os.Stdout, docs, s.json)
	}

	ps, err := pubsub.NewClient(ctx, s.project, append(gcreds.ClientOptions("PUBSUB_EMULATOR_HOST"), gcpclient.Options()...)...)
	if err != nil {
		return fmt.Errorf("pubsub client: %w", err)
	}
	defer ps.Close()
	src := pubsubqueue.NewSubscription(ps.SubscriptionAdminClient, pubsubqueue.FullName(s.project, "subscriptions", s.subscription), nil)
	var deadLetter queue.Sink
	if !s.noDeadLetterCopy {
		// Without the topic (no policy, or no permission to read it) invalid messages are nacked
		// and the subscription's dead-letter policy takes them after its delivery attempts.
		topic, err := deadLetterTopic(ctx, s, src)
		if err != nil {
			log.Warn("invalid messages will be nacked, not copied to a dead-letter topic", zap.Error(err))
		}
		if topic != "" {
			deadLetter = pubsubqueue.NewTopic(ps.TopicAdminClient, topic)
			log.Info("invalid messages are copied to the dead-letter topic", zap.String("topic", topic))
		}
	}
	reg := obs.NewRegistry()
	retryFor := s.retryFor
	if retryFor == 0 {
		retryFor = -1 // the option's zero is its default; the flag's zero is "never hold"
	}
	ix, err := indexer.New(src, deadLetter, store, &indexer.Options{
		MaxOutstandingMessages: s.maxMessages, MaxOutstandingBytes: s.maxBytes, Receivers: s.receivers,
		BatchSize: s.batchSize, BatchWait: s.batchWait, RetryFor: retryFor, AckExtension: s.ackExtension,
		Registerer: reg, Logger: log,
	})
	if err != nil {
		return err
	}
	if s.metricsAddr != "" {
		// Ready while the subscription answers its receives and the index its reads.
		srv, err := obs.Serve(s.metricsAddr, reg, func(ctx context.Context) error {
			if err := ix.Ready(ctx); err != nil {
				return err
			}
			return store.Ping(ctx)
		})
		if err != nil {
			return err
		}
		defer func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(ctx)
		}()
		log.Info("metrics listening", zap.String("addr", srv.Addr()))
	}
	log.Info("indexer starting", obs.Settings(set.Describe()))
	if err := ix.Run(ctx); err != nil {
		return err
	}
	log.Info("indexer stopped")
	return nil
}

// deadLetterTopic is the topic that receives copies of invalid messages: the setting, or the
// one the subscription's dead-letter policy names ("" when it has none).
func deadLetterTopic(ctx context.Context, s *settings, src *pubsubqueue.Subscription) (string, error) {
	if s.deadLetterTopic != "" {
		return pubsubqueue.FullName(s.project, "topics", s.deadLetterTopic), nil
	}
	topic, err := src.DeadLetterTopic(ctx)
	if err != nil {
		return "", fmt.Errorf("%w (or set the dead-letter topic)", err)
	}
	return topic, nil
}

func printDocs(w io.Writer, docs []indexstore.Document, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(docs)
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "BUCKET\tKEY\tSIZE\tDIMENSIONS\tANALYZED\tTAGS\tCAPTION")
	for _, d := range docs {
		var tags []string
		for _, t := range d.Tags {
			tags = append(tags, fmt.Sprintf("%s(%.2f)", t.Name, t.Confidence))
		}
		analyzed := "-"
		if !d.AnalyzedAt.IsZero() {
			analyzed = d.AnalyzedAt.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%dx%d\t%s\t%s\t%s\n", d.Bucket, d.Key, d.Size, d.Width, d.Height, analyzed, strings.Join(tags, ","), d.Caption)
	}
	return tw.Flush()
}
