// Package analyzer consumes S3 event notifications from SQS, analyses each new image with Azure
// AI Vision, and publishes the result (or a removal) to Pub/Sub.
//
// Guarantees: a message is deleted from SQS only after every record in it is published; a
// permanent failure goes to the dead-letter queue at once with its reason and is then deleted;
// a transient failure leaves the message on the queue with a visibility timeout that grows with
// its receive count, so the queue's redrive policy moves it to the DLQ after maxReceiveCount
// without hammering Vision. While a message is in work its visibility is extended by a
// heartbeat. On shutdown no new receive is made (a long poll already waiting runs to its end,
// and what it brings back is released at once), in-flight work gets a deadline, and what did
// not finish is released for another worker.
//
// A circuit breaker on the health of the analyzer's dependencies stops receiving while they
// fail: a run of messages that failed because S3, Vision or Pub/Sub was down, or because of a
// setup fault (access denied, a refused key, a URL Vision cannot fetch: see
// failure.SetupFault), opens it. An outage or a broken setup thus leaves messages on the queue
// instead of pushing them toward the DLQ. Every S3 read is bounded (Options.S3Timeout), so a
// stalled connection cannot hold a message, or receiving, for ever. The worker pool can be
// sized from the queue's depth by an autoscaler. Counters, the queue depth and the Vision
// latency are exported to Prometheus (Options.Registerer) and Ready is the /readyz check.
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
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"imgpipe/pkg/autoscale"
	"imgpipe/pkg/breaker"
	"imgpipe/pkg/config"
	"imgpipe/pkg/failure"
	"imgpipe/pkg/record"
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
	Publish(ctx context.Context, rec *record.Analysis) (string, error)
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

	// Workers bounds the messages in their Vision call at once (with the rest of a larger
	// object streamed from S3); default 16. A message's first S3 read happens before it
	// takes a worker, and publishing and deleting after it leaves, for up to as many
	// messages again.
	Workers     int
	WaitTime    time.Duration // long-poll wait, whole seconds; default 20s (the SQS maximum), negative 0 (short polling)
	MaxMessages int           // per receive, 1..10; default 10
	// ReceiveLinger is how long the receive loop, holding a ticket for a free worker, waits
	// for more tickets to free so that it receives a fuller batch; default 25ms, negative
	// none. With ReceiveAhead of a batch or more it rarely waits.
	ReceiveLinger time.Duration
	// ReceiveAhead is how many messages may wait for a worker, their visibility heartbeat
	// running, so that a worker that frees up finds its next message already received.
	// Receiving is paused while every worker is busy or already has a received message
	// waiting for it; when a worker is idle, one receive fetches up to MaxMessages (bounded
	// by the free workers plus ReceiveAhead). Default MaxMessages; negative none (each
	// receive asks only for the free workers). Messages still waiting at shutdown are
	// released at once.
	ReceiveAhead int

	// VisibilityTimeout is set on each received message and renewed by the heartbeat while
	// it is in work; default 30s, whole seconds from 1s to 12h (what SQS takes). A crash
	// costs at most this much delay.
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
	// S3Timeout bounds each S3 read: the first ranged GET with its body, the check after a
	// URL-mode analysis, and, for the rest of a larger object streamed to Vision, the wait for
	// the headers and for each read of the body (cut within a quarter of it more). A read cut
	// off fails with the transient reason S3Stalled. Default DefaultS3Timeout.
	S3Timeout time.Duration

	// Breaker configures the circuit breaker on the analyzer's dependencies (S3 reads, Vision,
	// Pub/Sub, and setup faults of any of them): while it is open the analyzer receives
	// nothing, and messages that failed for a dependency go back to the queue after a cooldown
	// instead of a backoff. Nil means the breaker's defaults; its Cooldown, which becomes
	// those messages' visibility timeout, may not exceed 12h.
	Breaker *breaker.Options
	// Autoscale sizes the worker pool from the queue's depth between its Min and Max; the pool
	// starts at Workers clamped to them. Nil keeps the pool at Workers.
	Autoscale *autoscale.Options
	// DepthInterval is how often the queue's depth is read for the metrics and the
	// autoscaler; default 10s.
	DepthInterval time.Duration
	// Registerer receives the analyzer's Prometheus collectors; nil registers none.
	Registerer prometheus.Registerer
	// VisionObserver, when set, is registered with Registerer too (give the same observer to
	// vision.Options.Observer).
	VisionObserver *VisionObserver

	Logger *zap.Logger
}

// SQS's limits on the durations the analyzer gives it.
const (
	// MaxVisibilityTimeout is the longest visibility timeout SQS takes.
	MaxVisibilityTimeout = 12 * time.Hour
	// MaxWaitTime is the longest long-poll wait SQS takes.
	MaxWaitTime = 20 * time.Second
)

// DefaultS3Timeout is Options.S3Timeout's default.
const DefaultS3Timeout = 20 * time.Second

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
	if out.WaitTime == 0 {
		out.WaitTime = MaxWaitTime
	}
	out.WaitTime = max(out.WaitTime, 0) // negative: short polling
	if out.VisibilityTimeout == 0 {
		out.VisibilityTimeout = 30 * time.Second
	}
	if err := config.Seconds(out.VisibilityTimeout, time.Second, MaxVisibilityTimeout); err != nil {
		return out, fmt.Errorf("analyzer: VisibilityTimeout: %w", err)
	}
	if err := config.Seconds(out.WaitTime, 0, MaxWaitTime); err != nil {
		return out, fmt.Errorf("analyzer: WaitTime: %w", err)
	}
	if out.Breaker != nil && out.Breaker.Cooldown > MaxVisibilityTimeout {
		return out, fmt.Errorf("analyzer: Breaker.Cooldown %s: must be at most %s (it becomes a visibility timeout)", out.Breaker.Cooldown, MaxVisibilityTimeout)
	}
	def(&out.DrainTimeout, 25*time.Second)
	def(&out.S3Timeout, DefaultS3Timeout)
	def(&out.PresignTTL, 15*time.Minute)
	def(&out.DepthInterval, 10*time.Second)
	if out.ReceiveLinger == 0 {
		out.ReceiveLinger = 25 * time.Millisecond
	}
	out.ReceiveLinger = max(out.ReceiveLinger, 0)
	if out.ReceiveAhead == 0 {
		out.ReceiveAhead = out.MaxMessages
	}
	out.ReceiveAhead = max(out.ReceiveAhead, 0)
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
	breaker   *breaker.Breaker
	scaler    *autoscale.Scaler
	pool      *pool // workers: messages in their Vision call (with the rest of the object streamed)
	tickets   *pool // messages received and not yet out of the workers: workers plus ReceiveAhead
	finishing *pool // messages analysed and being published and deleted
	now       func() time.Time
	ran       atomic.Bool

	sqsErr atomic.Pointer[error] // last SQS receive or depth error; nil when the last call worked
	s3     s3Health              // the last S3 reads' failures
	// lastFault is the last dependency fault the circuit counted, for /readyz and the logs.
	lastFault atomic.Pointer[dependencyFault]

	// abandon, for tests, makes work cut off by the drain deadline end without settling its
	// message, as if the process had been killed.
	abandon bool
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
	a.deleter = newDeleter(deps.SQS, o.QueueURL, o.Logger, a.metrics)
	bo := breaker.Options{}
	if o.Breaker != nil {
		bo = *o.Breaker
	}
	userHook := bo.OnStateChange
	bo.OnStateChange = func(from, to breaker.State) {
		log := a.log.Info
		fields := []zap.Field{zap.String("from", from.String()), zap.String("to", to.String())}
		if to == breaker.Open {
			log = a.log.Warn
			if f := a.lastFault.Load(); f != nil {
				fields = append(fields, zap.String("dependency", f.dep), zap.String("reason", failure.ReasonOf(f.err)), zap.Bool("setup", failure.IsSetup(f.err)))
			}
		}
		log("circuit "+to.String(), fields...)
		if userHook != nil {
			userHook(from, to)
		}
	}
	a.breaker = breaker.New(&bo)
	workers := o.Workers
	if o.Autoscale != nil {
		s, err := autoscale.New(*o.Autoscale)
		if err != nil {
			return nil, err
		}
		a.scaler = s
		workers = min(max(workers, o.Autoscale.Min), o.Autoscale.Max)
	}
	a.pool = newPool(workers)
	a.tickets = newPool(workers + o.ReceiveAhead)
	maxWorkers := workers
	if o.Autoscale != nil {
		maxWorkers = o.Autoscale.Max
	}
	a.finishing = newPool(maxWorkers)
	if o.Registerer != nil {
		cs := a.collectors()
		if o.VisionObserver != nil {
			cs = append(cs, o.VisionObserver.collectors()...)
		}
		for _, c := range cs {
			if err := o.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("register metrics: %w", err)
			}
		}
	}
	return a, nil
}

// Ready reports whether the analyzer can do its work: the circuit is not open, SQS answered
// its last call and the last S3 reads did not all fail. It is the /readyz check.
func (a *Analyzer) Ready(context.Context) error {
	if a.breaker.State() == breaker.Open {
		if f := a.lastFault.Load(); f != nil {
			return fmt.Errorf("circuit open after failures of %s, the last: %w", f.dep, f.err)
		}
		return errors.New("circuit open")
	}
	if p := a.sqsErr.Load(); p != nil {
		return fmt.Errorf("sqs: %w", *p)
	}
	if err := a.s3.err(); err != nil {
		return fmt.Errorf("s3: %w", err)
	}
	return nil
}

// CircuitState is the state of the circuit breaker now.
func (a *Analyzer) CircuitState() breaker.State { return a.breaker.State() }

// Workers is the size of the worker pool now.
func (a *Analyzer) Workers() int { return a.pool.size() }

// Metrics returns the analyzer's counters.
func (a *Analyzer) Metrics() *Metrics { return a.metrics }

// Run receives and processes messages until ctx is cancelled, then drains: it stops receiving
// at once, waits up to DrainTimeout for in-flight messages, releases the rest, flushes pending
// deletes and returns nil. It can be called once.
func (a *Analyzer) Run(ctx context.Context) error {
	if a.ran.Swap(true) {
		return errors.New("analyzer: Run called twice")
	}
	// Work outlives ctx by up to DrainTimeout: it is cancelled when the drain deadline,
	// DrainTimeout after ctx ends, passes.
	workCtx, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	// Deletes of work that finished just before the deadline still go out: the deleter's
	// calls are cut off only deleteGrace after it.
	delCtx, cancelDeletes := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelDeletes()
	var deadline atomic.Pointer[time.Time]
	stopDeadline := context.AfterFunc(ctx, func() {
		d := time.Now().Add(a.opts.DrainTimeout)
		deadline.Store(&d)
		time.AfterFunc(a.opts.DrainTimeout, cancelWork)
		time.AfterFunc(a.opts.DrainTimeout+deleteGrace, cancelDeletes)
	})
	defer stopDeadline()
	deleterDone := make(chan struct{})
	go func() {
		defer close(deleterDone)
		a.deleter.run(delCtx)
	}()

	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		a.watchQueue(ctx)
	}()

	var inflight sync.WaitGroup
	backoff := retry.Policy{BaseDelay: 200 * time.Millisecond, MaxDelay: 20 * time.Second, MaxRetries: -1}
	failures := 0
	for ctx.Err() == nil {
		probe := false // this receive fetches the half-open circuit's probe
		// While Vision is down, receive nothing: messages wait on the queue, not in memory,
		// and do not burn receive counts. Half-open, one message goes out as the probe.
		n := a.opts.MaxMessages
		switch a.breaker.State() {
		case breaker.Open:
			sleepCtx(ctx, min(a.breaker.Remaining(), time.Second))
			continue
		case breaker.HalfOpen:
			if !a.breaker.Allow() {
				sleepCtx(ctx, 100*time.Millisecond)
				continue
			}
			n = 1
			probe = true
		}
		// Receive only for an idle worker that no received message is already waiting for.
		// Then take one ticket (blocking), and up to a batch more, waiting a moment for
		// tickets that are about to free: full batches halve the receives per message.
		if !a.pool.waitIdle(ctx) {
			continue
		}
		if !a.tickets.acquire(ctx) {
			continue
		}
		n = min(n, a.tickets.size())
		got := 1
		lctx, cancelLinger := context.WithTimeout(ctx, a.opts.ReceiveLinger)
		for got < n && (a.tickets.tryAcquire() || a.tickets.acquire(lctx)) {
			got++
		}
		cancelLinger()
		if ctx.Err() != nil {
			// Shutdown began while tickets were gathered: make no new receive.
			for range got {
				a.tickets.release()
			}
			break
		}
		// The receive is not cancelled when ctx ends, only at the drain deadline: SQS does
		// not notice a long poll whose caller hung up and hands it the next messages, which
		// would then stay invisible for their whole visibility timeout. What a receive
		// brings back after ctx ended is released at once instead.
		msgs, err := a.receive(workCtx, got)
		for i := len(msgs); i < got; i++ {
			a.tickets.release()
		}
		if ctx.Err() != nil {
			a.releaseUnstarted(msgs)
			for range msgs {
				a.tickets.release()
			}
			break
		}
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			failures++
			if failures >= 2 {
				a.sqsErr.Store(&err)
			}
			wait := backoff.Ceiling(failures)
			a.log.Warn("receive failed", zap.Error(err), zap.Duration("retry_in", wait))
			a.metrics.receiveErrors.Add(1)
			sleepCtx(ctx, wait)
			continue
		}
		failures = 0
		a.sqsErr.Store(nil)
		a.pool.expect(len(msgs))
		for _, m := range msgs {
			inflight.Add(1)
			go func() {
				defer inflight.Done()
				a.handle(ctx, workCtx, m, probe, a.tickets.release)
			}()
		}
	}
	<-watchDone

	left := a.opts.DrainTimeout
	if d := deadline.Load(); d != nil {
		left = time.Until(*d)
	}
	a.log.Info("draining", zap.Duration("deadline_in", left))
	drained := make(chan struct{})
	go func() {
		inflight.Wait()
		close(drained)
	}()
	select {
	case <-drained:
	case <-workCtx.Done():
		// Handlers see their context cancelled and release their messages.
		a.log.Warn("drain deadline passed; releasing unfinished messages")
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
	}, func(o *sqs.Options) {
		// No silent SDK retry: a receive whose answer was lost (the connection closed under
		// it) leaves its messages invisible until their visibility timeout ends, and that
		// must show in the receive errors, not vanish in a retry. The loop retries itself.
		o.RetryMaxAttempts = 1
	})
	a.metrics.sqsCall("ReceiveMessage")
	if err != nil {
		return nil, err
	}
	a.metrics.received.Add(int64(len(out.Messages)))
	return out.Messages, nil
}

// releaseUnstarted gives messages received after shutdown began straight back to the queue.
func (a *Analyzer) releaseUnstarted(msgs []sqstypes.Message) {
	if len(msgs) == 0 {
		return
	}
	entries := make([]sqstypes.ChangeMessageVisibilityBatchRequestEntry, len(msgs))
	for i, m := range msgs {
		entries[i] = sqstypes.ChangeMessageVisibilityBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: 0}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := a.deps.SQS.ChangeMessageVisibilityBatch(ctx, &sqs.ChangeMessageVisibilityBatchInput{QueueUrl: aws.String(a.opts.QueueURL), Entries: entries})
	a.metrics.sqsCall("ChangeMessageVisibilityBatch")
	failed := len(msgs)
	if err == nil {
		failed = len(out.Failed)
	}
	a.metrics.released.Add(int64(len(msgs) - failed))
	if err != nil || failed > 0 {
		// Those come back when their visibility timeout ends anyway.
		a.log.Warn("release of messages received during shutdown failed", zap.Error(err), zap.Int("failed", failed))
		return
	}
	a.log.Info("released messages received during shutdown", zap.Int("count", len(msgs)))
}

// handle processes one message and settles it: delete, DLQ then delete, backoff, or
// release. runCtx is Run's: once it ends, a message that has no worker yet is released
// instead of started; ctx is the work's, cancelled at the drain deadline. ticket is the
// message's receive ticket, given back once the message leaves the worker stage (its
// publish and delete do not hold up the next receive); handle calls it exactly once.
//
// The work is in three stages. Preparing (parse the event, read the object's first bytes,
// identify the image) needs no worker, so a message waiting for one is ready when it gets
// it, and a message with nothing for Vision (a removal, a non-image, a stale event) never
// takes one. A worker does the part whose concurrency the pool bounds: the Vision call,
// with the rest of the object streamed to it. The records are then published outside the
// pool, in a finishing stage bounded to as many messages as the pool's maximum size, so a
// worker is free as soon as Vision answers.
func (a *Analyzer) handle(runCtx, ctx context.Context, m sqstypes.Message, probe bool, ticket func()) {
	ticket = sync.OnceFunc(ticket)
	defer ticket()
	id := aws.ToString(m.MessageId)
	receives, _ := strconv.Atoi(m.Attributes[string(sqstypes.MessageSystemAttributeNameApproximateReceiveCount)])
	log := a.log.With(zap.String("sqs_message_id", id), zap.Int("receive_count", receives))

	hbCtx, stopHeartbeat := context.WithCancel(ctx)
	hbDone := make(chan struct{})
	go func() {
		defer close(hbDone)
		a.heartbeat(hbCtx, log, m.ReceiptHandle)
	}()
	items, err := safely(a, func() ([]item, error) { return a.prepareMessage(ctx, log, aws.ToString(m.Body)) })
	var recs []pending
	finishing := false // holding a place in the finishing stage
	defer func() {
		if finishing {
			a.finishing.release()
		}
	}()
	// toFinishing takes a place in the finishing stage for records to publish; while the
	// stage is full it waits, which holds back the worker (if any) and receiving.
	toFinishing := func() {
		if err == nil && len(recs) > 0 {
			if finishing = a.finishing.acquire(ctx); !finishing {
				err = ctx.Err()
			}
		}
	}
	if err == nil && needsWorker(items) {
		started := a.pool.acquire(runCtx)
		a.pool.done()
		if started && runCtx.Err() != nil {
			// A slot freed as shutdown began: release the message rather than start it.
			a.pool.release()
			started = false
		}
		if !started {
			stopHeartbeat()
			<-hbDone
			if !a.abandon {
				a.metrics.released.Add(1)
				a.setVisibility(log, m.ReceiptHandle, 0)
				log.Info("released message not started before shutdown")
			}
			return
		}
		if st := a.breaker.State(); st == breaker.Open || (st == breaker.HalfOpen && !probe) {
			// Received before the circuit opened (or not as its probe): a dependency is known
			// to be failing, so give the message back for after the cooldown without calling
			// Vision.
			a.pool.release()
			stopHeartbeat()
			<-hbDone
			a.metrics.deferred.Add(1)
			wait := max(a.breaker.Cooldown(), time.Second)
			log.Info("circuit not closed; message deferred unstarted", zap.Duration("retry_in", wait))
			a.setVisibility(log, m.ReceiptHandle, wait)
			return
		}
		a.metrics.inflight.Add(1)
		defer a.metrics.inflight.Add(-1)
		start := time.Now()
		recs, err = safely(a, func() ([]pending, error) { return a.analyzeItems(ctx, items) })
		a.metrics.observeHandle(time.Since(start))
		toFinishing()
		a.pool.release()
	} else {
		a.pool.done()
		if err == nil {
			recs, err = a.analyzeItems(ctx, items) // nothing for Vision: removals at most
		}
		toFinishing()
	}
	ticket()
	if err == nil {
		_, err = safely(a, func() (struct{}, error) { return struct{}{}, a.publishRecords(ctx, recs) })
	}
	stopHeartbeat()
	<-hbDone

	var dep *dependencyFault
	isDep := errors.As(err, &dep)
	switch {
	case ctx.Err() != nil:
		// Shutdown: says nothing of the dependencies.
	case isDep:
		a.lastFault.Store(dep)
		a.breaker.Failure()
	case err == nil && len(recs) > 0, failure.IsPermanent(err) && visionAnswered(err):
		// Everything the message needed answered: a published record, or Vision's verdict
		// on a bad image.
		a.breaker.Success()
	}
	switch {
	case err == nil:
		a.metrics.succeeded.Add(1)
		a.deleter.delete(m.ReceiptHandle, id)
	case ctx.Err() != nil && a.abandon:
		log.Info("abandoned unfinished message", zap.Error(err))
	case ctx.Err() != nil:
		// Shutdown passed its deadline mid-work: give the message back at once.
		a.metrics.released.Add(1)
		a.setVisibility(log, m.ReceiptHandle, 0)
		log.Info("released unfinished message", zap.Error(err))
	case failure.IsPermanent(err):
		a.metrics.failed(failure.Permanent)
		a.deadLetter(ctx, log, m, receives, err)
	case isDep && a.breaker.State() != breaker.Closed:
		// A dependency is down or the setup is broken, not this message: give it back for
		// when the circuit half-opens, without the backoff meant for messages that fail on
		// their own.
		a.metrics.failed(failure.ClassOf(err))
		a.metrics.deferred.Add(1)
		wait := max(a.breaker.Cooldown(), time.Second)
		log.Info("dependency unavailable; message deferred", zap.String("dependency", dep.dep), zap.Error(err), zap.Duration("retry_in", wait))
		a.setVisibility(log, m.ReceiptHandle, wait)
	default:
		class := failure.ClassOf(err)
		a.metrics.failed(class)
		a.metrics.retried.Add(1)
		wait := a.retryDelay(receives, failure.RetryAfterOf(err))
		log.Warn("transient failure; message retried later", zap.Error(err),
			zap.String("class", class.String()), zap.String("reason", failure.ReasonOf(err)),
			zap.Bool("setup", failure.IsSetup(err)), zap.Duration("retry_in", wait))
		a.setVisibility(log, m.ReceiptHandle, wait)
	}
}

// visionAnswered reports whether err carries an answer of the Vision service.
func visionAnswered(err error) bool {
	var api *vision.APIError
	return errors.As(err, &api)
}

// safely runs f, turning a panic into a transient failure of this message only.
func safely[T any](a *Analyzer, f func() (T, error)) (v T, err error) {
	defer func() {
		if r := recover(); r != nil {
			a.metrics.panics.Add(1)
			err = failure.Transientf("Panic", "panic while processing: %v", r)
		}
	}()
	return f()
}

// retryDelay is the visibility timeout of a transiently failed message: equal-jitter backoff
// by receive count (never zero, so a failing message cannot spin), or the server's wait if
// longer; capped at the SQS maximum of 12 hours.
func (a *Analyzer) retryDelay(receives int, serverWait time.Duration) time.Duration {
	ceiling := a.opts.Backoff.Ceiling(receives)
	d := ceiling/2 + a.opts.Backoff.Backoff(receives, nil)/2
	d = max(d, serverWait, time.Second)
	return min(d, MaxVisibilityTimeout)
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
		a.metrics.sqsCall("ChangeMessageVisibility")
		switch {
		case err != nil && ctx.Err() != nil:
			return // cut off because the message's work ended: not an extension
		case err != nil:
			a.metrics.heartbeatErrors.Add(1)
			log.Warn("heartbeat failed", zap.Error(err))
		default:
			a.metrics.heartbeats.Add(1)
		}
	}
}

func (a *Analyzer) setVisibility(log *zap.Logger, handle *string, d time.Duration) {
	d = min(d, MaxVisibilityTimeout)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := a.deps.SQS.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{
		QueueUrl: aws.String(a.opts.QueueURL), ReceiptHandle: handle,
		VisibilityTimeout: int32(d / time.Second),
	})
	a.metrics.sqsCall("ChangeMessageVisibility")
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
	if prev := failure.ParseDetails(stringAttrs(m.MessageAttributes)); !prev.FirstFailure.IsZero() {
		first = prev.FirstFailure
	} else if sent, err := strconv.ParseInt(m.Attributes[string(sqstypes.MessageSystemAttributeNameApproximateFirstReceiveTimestamp)], 10, 64); err == nil {
		first = time.UnixMilli(sent)
	}
	f := failure.DetailsOf(cause, receives, a.opts.QueueURL, first, now)
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
	a.metrics.sqsCall("SendMessage")
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

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
