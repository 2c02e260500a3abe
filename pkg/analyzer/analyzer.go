// Package analyzer consumes S3 event notifications from SQS, analyses each new image with Azure
// AI Vision, and publishes the result (or a removal) to Pub/Sub.
//
// Guarantees: a message is deleted from SQS only after every record in it is published; a
// permanent failure goes to the dead-letter queue at once with its reason and is then deleted;
// a transient failure leaves the message on the queue with a visibility timeout that grows with
// its receive count, so the queue's redrive policy moves it to the DLQ after maxReceiveCount
// without hammering Vision. While a message is in work its visibility is extended by a
// heartbeat. On shutdown receiving stops at once, in-flight work gets a deadline, and what did
// not finish is released for another worker.
package analyzer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"go.uber.org/zap"

	"imgpipe/pkg/analysis"
	"imgpipe/pkg/dlq"
	"imgpipe/pkg/failure"
	"imgpipe/pkg/retry"
	"imgpipe/pkg/vision"
)

// Mode is how Vision gets the image.
type Mode string

const (
	// ModeStream streams the object's bytes from S3 through the analyzer to Vision. It works
	// with private buckets and needs no network path from Azure to S3.
	ModeStream Mode = "stream"
	// ModeURL hands Vision a presigned GET URL; the bytes go from S3 to Azure directly.
	ModeURL Mode = "url"
)

// Vision is what the analyzer needs of the Vision client.
type Vision interface {
	AnalyzeStream(ctx context.Context, open func() (io.ReadCloser, int64, error)) (*vision.Result, error)
	AnalyzeURL(ctx context.Context, url string) (*vision.Result, error)
}

// Publisher sends a record downstream and returns its message ID once it is durable.
type Publisher interface {
	Publish(ctx context.Context, rec *analysis.Record) (string, error)
}

// Deps are the analyzer's clients. All are required.
type Deps struct {
	SQS       *sqs.Client
	S3        *s3.Client
	Vision    Vision
	Publisher Publisher
}

// Options configures the analyzer. QueueURL and DLQURL are required.
type Options struct {
	QueueURL string
	DLQURL   string

	Workers     int           // concurrent messages in work; default 16
	WaitTime    time.Duration // long-poll wait; default 20s (the SQS maximum)
	MaxMessages int           // per receive, 1..10; default 10

	// VisibilityTimeout is set on each received message and renewed by the heartbeat while
	// it is in work; default 30s. A crash costs at most this much delay.
	VisibilityTimeout time.Duration
	// Backoff spaces the retries of transiently failed messages, by receive count, through
	// their visibility timeout; default base 5s doubling to 15 min.
	Backoff retry.Policy
	// DrainTimeout bounds graceful shutdown: in-flight work that has not finished by then is
	// released to the queue (visibility 0); default 25s.
	DrainTimeout time.Duration

	Mode          Mode          // default ModeStream
	PresignTTL    time.Duration // lifetime of presigned URLs in ModeURL; default 15 min
	MaxImageBytes int64         // larger objects fail permanently; default 20 MB (Vision 4.0's limit)

	Logger *zap.Logger
}

func (o *Options) withDefaults() (Options, error) {
	out := *o
	if out.QueueURL == "" {
		return out, errors.New("analyzer: QueueURL is required")
	}
	if out.DLQURL == "" {
		return out, errors.New("analyzer: DLQURL is required")
	}
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	if out.Workers <= 0 {
		out.Workers = 16
	}
	if out.MaxMessages <= 0 || out.MaxMessages > 10 {
		out.MaxMessages = 10
	}
	def(&out.WaitTime, 20*time.Second)
	def(&out.VisibilityTimeout, 30*time.Second)
	def(&out.DrainTimeout, 25*time.Second)
	def(&out.PresignTTL, 15*time.Minute)
	if out.Backoff == (retry.Policy{}) {
		out.Backoff = retry.Policy{BaseDelay: 5 * time.Second, MaxDelay: 15 * time.Minute}
	}
	if out.Mode == "" {
		out.Mode = ModeStream
	}
	if out.Mode != ModeStream && out.Mode != ModeURL {
		return out, fmt.Errorf("analyzer: unknown mode %q", out.Mode)
	}
	if out.MaxImageBytes <= 0 {
		out.MaxImageBytes = 20_000_000
	}
	if out.Logger == nil {
		out.Logger = zap.NewNop()
	}
	return out, nil
}

// Analyzer is one analyzer process's consumer.
type Analyzer struct {
	deps      Deps
	opts      Options
	log       *zap.Logger
	presigner *s3.PresignClient
	deleter   *deleter
	metrics   *Metrics
	now       func() time.Time
	ran       atomic.Bool
}

// New checks the options and returns an analyzer ready to Run.
func New(deps Deps, opts *Options) (*Analyzer, error) {
	if deps.SQS == nil || deps.S3 == nil || deps.Vision == nil || deps.Publisher == nil {
		return nil, errors.New("analyzer: SQS, S3, Vision and Publisher are all required")
	}
	if opts == nil {
		opts = &Options{}
	}
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	a := &Analyzer{
		deps: deps, opts: o, log: o.Logger,
		presigner: s3.NewPresignClient(deps.S3),
		metrics:   newMetrics(),
		now:       time.Now,
	}
	a.deleter = newDeleter(deps.SQS, o.QueueURL, o.Logger)
	return a, nil
}

// Metrics returns the analyzer's counters.
func (a *Analyzer) Metrics() *Metrics { return a.metrics }

// Run receives and processes messages until ctx is cancelled, then drains: it stops receiving
// at once, waits up to DrainTimeout for in-flight messages, releases the rest, flushes pending
// deletes and returns nil. It can be called once.
func (a *Analyzer) Run(ctx context.Context) error {
	if a.ran.Swap(true) {
		return errors.New("analyzer: Run called twice")
	}
	// Work outlives ctx by up to DrainTimeout; it is cancelled when the drain deadline passes.
	workCtx, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	deleterDone := make(chan struct{})
	go func() {
		defer close(deleterDone)
		a.deleter.run(workCtx)
	}()

	slots := make(chan struct{}, a.opts.Workers)
	var inflight sync.WaitGroup
	backoff := retry.Policy{BaseDelay: 200 * time.Millisecond, MaxDelay: 20 * time.Second, MaxRetries: -1}
	failures := 0
	for ctx.Err() == nil {
		// Take one slot (blocking), then as many more as are free, up to a batch.
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			continue
		}
		n := 1
		for n < a.opts.MaxMessages {
			select {
			case slots <- struct{}{}:
				n++
				continue
			default:
			}
			break
		}
		msgs, err := a.receive(ctx, n)
		for i := len(msgs); i < n; i++ {
			<-slots
		}
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			failures++
			wait := backoff.Ceiling(failures)
			a.log.Warn("receive failed", zap.Error(err), zap.Duration("retry_in", wait))
			a.metrics.receiveErrors.Add(1)
			select {
			case <-time.After(wait):
			case <-ctx.Done():
			}
			continue
		}
		failures = 0
		for _, m := range msgs {
			inflight.Add(1)
			go func() {
				defer inflight.Done()
				defer func() { <-slots }()
				a.handle(workCtx, m)
			}()
		}
	}

	a.log.Info("draining", zap.Duration("deadline", a.opts.DrainTimeout))
	drained := make(chan struct{})
	go func() {
		inflight.Wait()
		close(drained)
	}()
	select {
	case <-drained:
	case <-time.After(a.opts.DrainTimeout):
		a.log.Warn("drain deadline passed; releasing unfinished messages")
		cancelWork() // handlers see ctx cancelled and release their messages
		<-drained
	}
	a.deleter.close()
	<-deleterDone
	a.log.Info("drained")
	return nil
}

func (a *Analyzer) receive(ctx context.Context, n int) ([]sqstypes.Message, error) {
	out, err := a.deps.SQS.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
		QueueUrl:                    aws.String(a.opts.QueueURL),
		MaxNumberOfMessages:         int32(n),
		WaitTimeSeconds:             int32(a.opts.WaitTime / time.Second),
		VisibilityTimeout:           int32(a.opts.VisibilityTimeout / time.Second),
		MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameAll},
		MessageAttributeNames:       []string{"All"},
	})
	if err != nil {
		return nil, err
	}
	a.metrics.received.Add(int64(len(out.Messages)))
	return out.Messages, nil
}

// handle processes one message and settles it: delete, DLQ then delete, backoff, or release.
func (a *Analyzer) handle(ctx context.Context, m sqstypes.Message) {
	id := aws.ToString(m.MessageId)
	receives, _ := strconv.Atoi(m.Attributes[string(sqstypes.MessageSystemAttributeNameApproximateReceiveCount)])
	log := a.log.With(zap.String("sqs_message_id", id), zap.Int("receive_count", receives))
	a.metrics.inflight.Add(1)
	defer a.metrics.inflight.Add(-1)

	hbCtx, stopHeartbeat := context.WithCancel(ctx)
	hbDone := make(chan struct{})
	go func() {
		defer close(hbDone)
		a.heartbeat(hbCtx, log, m.ReceiptHandle)
	}()
	err := a.safeProcess(ctx, log, aws.ToString(m.Body))
	stopHeartbeat()
	<-hbDone

	switch {
	case err == nil:
		a.metrics.succeeded.Add(1)
		a.deleter.delete(m.ReceiptHandle, id)
	case ctx.Err() != nil:
		// Shutdown passed its deadline mid-work: give the message back at once.
		a.metrics.released.Add(1)
		a.setVisibility(log, m.ReceiptHandle, 0)
		log.Info("released unfinished message", zap.Error(err))
	case failure.IsPermanent(err):
		a.metrics.failed(failure.Permanent)
		a.deadLetter(ctx, log, m, receives, err)
	default:
		class := failure.ClassOf(err)
		a.metrics.failed(class)
		a.metrics.retried.Add(1)
		wait := a.retryDelay(receives, failure.RetryAfterOf(err))
		log.Warn("transient failure; message retried later", zap.Error(err),
			zap.String("class", class.String()), zap.String("reason", failure.ReasonOf(err)), zap.Duration("retry_in", wait))
		a.setVisibility(log, m.ReceiptHandle, wait)
	}
}

// safeProcess turns a panic into a failure of this message only.
func (a *Analyzer) safeProcess(ctx context.Context, log *zap.Logger, body string) (err error) {
	defer func() {
		if r := recover(); r != nil {
			a.metrics.panics.Add(1)
			err = failure.Transientf("Panic", "panic while processing: %v", r)
		}
	}()
	return a.processMessage(ctx, log, body)
}

// retryDelay is the visibility timeout of a transiently failed message: equal-jitter backoff
// by receive count (never zero, so a failing message cannot spin), or the server's wait if
// longer; capped at the SQS maximum of 12 hours.
func (a *Analyzer) retryDelay(receives int, serverWait time.Duration) time.Duration {
	ceiling := a.opts.Backoff.Ceiling(receives)
	d := ceiling/2 + a.opts.Backoff.Backoff(receives, nil)/2
	d = max(d, serverWait, time.Second)
	return min(d, 12*time.Hour)
}

// heartbeat extends the message's visibility while it is in work, a third of the timeout
// before it would expire, until ctx ends.
func (a *Analyzer) heartbeat(ctx context.Context, log *zap.Logger, handle *string) {
	every := a.opts.VisibilityTimeout / 3
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		_, err := a.deps.SQS.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{
			QueueUrl: aws.String(a.opts.QueueURL), ReceiptHandle: handle,
			VisibilityTimeout: int32(a.opts.VisibilityTimeout / time.Second),
		})
		if err != nil && ctx.Err() == nil {
			log.Warn("heartbeat failed", zap.Error(err))
			continue
		}
		a.metrics.heartbeats.Add(1)
	}
}

func (a *Analyzer) setVisibility(log *zap.Logger, handle *string, d time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := a.deps.SQS.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{
		QueueUrl: aws.String(a.opts.QueueURL), ReceiptHandle: handle,
		VisibilityTimeout: int32(d / time.Second),
	})
	if err != nil {
		// The message comes back when its current visibility ends anyway.
		log.Warn("change visibility failed", zap.Error(err))
	}
}

// deadLetter sends the message to the DLQ with its failure and, once that is confirmed,
// deletes it from the source. If the send fails the message stays on the source queue and is
// retried like a transient failure.
func (a *Analyzer) deadLetter(ctx context.Context, log *zap.Logger, m sqstypes.Message, receives int, cause error) {
	now := a.now()
	first := time.Time{}
	if prev := dlq.Parse(stringAttrs(m.MessageAttributes)); !prev.FirstFailure.IsZero() {
		first = prev.FirstFailure
	} else if sent, err := strconv.ParseInt(m.Attributes[string(sqstypes.MessageSystemAttributeNameApproximateFirstReceiveTimestamp)], 10, 64); err == nil {
		first = time.UnixMilli(sent)
	}
	f := dlq.FromError(cause, receives, a.opts.QueueURL, first, now)
	attrs := map[string]sqstypes.MessageAttributeValue{}
	for k, v := range m.MessageAttributes {
		attrs[k] = v
	}
	for k, v := range f.Attributes() {
		attrs[k] = sqstypes.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(v)}
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	_, err := a.deps.SQS.SendMessage(sctx, &sqs.SendMessageInput{
		QueueUrl: aws.String(a.opts.DLQURL), MessageBody: m.Body, MessageAttributes: attrs,
	})
	if err != nil {
		log.Error("dead-letter send failed; message stays on the queue", zap.Error(err), zap.NamedError("cause", cause))
		a.setVisibility(log, m.ReceiptHandle, a.retryDelay(receives, 0))
		return
	}
	a.metrics.deadLettered.Add(1)
	log.Warn("permanent failure; sent to the dead-letter queue", zap.Error(cause),
		zap.String("reason", f.Reason), zap.String("class", f.Class.String()))
	a.deleter.delete(m.ReceiptHandle, aws.ToString(m.MessageId))
}

func stringAttrs(in map[string]sqstypes.MessageAttributeValue) map[string]string {
	out := make(map[string]string, len(in))
	for k, v := range in {
		if v.StringValue != nil {
			out[k] = *v.StringValue
		}
	}
	return out
}
