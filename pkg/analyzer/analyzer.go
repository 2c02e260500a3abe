// Package analyzer is the pipeline's analysis stage: it consumes S3 event notifications from
// a queue, analyses each new image with Azure AI Vision, and publishes the result (or a
// removal) downstream. It is portable: it takes its queue, its dead-letter queue and its
// object store as drivers (pkg/queue, pkg/objects; SQS and S3 as deployed), and imports no
// cloud SDK.
//
// Guarantees: a message is deleted only after every record in it is published; a permanent
// failure goes to the dead-letter queue at once with its reason and is then deleted; a
// transient failure leaves the message on the queue for a backoff that grows with its receive
// count, so the queue's redrive policy moves it to the DLQ after maxReceiveCount without
// hammering Vision. While a message is in work its lease (visibility timeout) is kept. On
// shutdown no new receive is made (a long poll already waiting runs to its end, and what it
// brings back is released at once), in-flight work gets a deadline, and what did not finish
// is released for another worker.
//
// A circuit breaker on the health of the analyzer's dependencies stops receiving while they
// fail: a run of messages that failed because S3, Vision or Pub/Sub was down, or because of a
// setup fault (access denied, a refused key, a URL Vision cannot fetch: see
// failure.SetupFault), opens it. An outage or a broken setup thus leaves messages on the queue
// instead of pushing them toward the DLQ. Every S3 read is bounded (Options.S3Timeout), so a
// stalled connection cannot hold a message, or receiving, for ever. The worker pool can be
// sized from the queue's depth by an autoscaler. Counters, the queue depth and the Vision
// latency are exported to Prometheus (Options.Registerer) and Ready is the /readyz check.
//
// How a message moves (receive, prepare, analyze, publish, settle) and the order of the
// concerns around its stages are in process (message.go); who may receive, and how many, is
// capacity (capacity.go); what becomes of a message once its work ended is verdict
// (settle.go).
package analyzer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"imgpipe/pkg/autoscale"
	"imgpipe/pkg/breaker"
	"imgpipe/pkg/failure"
	"imgpipe/pkg/objects"
	"imgpipe/pkg/queue"
	"imgpipe/pkg/record"
	"imgpipe/pkg/retry"
	"imgpipe/pkg/thumbnail"
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

// DeadLetters is the dead-letter queue: where permanent failures are sent, and whose depth is
// exported.
type DeadLetters interface {
	queue.Sink
	Depth(ctx context.Context) (queue.Depth, error)
}

// Deps are the analyzer's edges. All are required.
type Deps struct {
	Queue     queue.Source  // the queue of S3 event notifications (sqsqueue)
	DLQ       DeadLetters   // the dead-letter queue of permanent failures (sqsqueue)
	Objects   objects.Store // the bucket the events are about (s3objects)
	Vision    Vision        // Azure AI Vision (pkg/vision)
	Publisher Publisher     // the Pub/Sub topic of analysis records (pkg/publish)
	// Thumbnails writes and removes thumbnails in the bucket (s3objects); required with
	// Options.ThumbnailPrefix, else unused.
	Thumbnails objects.Writer
}

// Options configures the analyzer. A nil *Options means the defaults.
type Options struct {
	// Workers bounds the messages in their Vision call at once (with the rest of a larger
	// object streamed from S3); default 16. A message's first S3 read happens before it
	// takes a worker, and publishing and deleting after it leaves, for up to as many
	// messages again.
	Workers     int
	MaxMessages int // per receive, 1..10; default 10
	// ReceiveLinger is how long the receive loop, with a worker idle, waits for more room to
	// free so that it receives a fuller batch; default 25ms, negative none. With ReceiveAhead
	// of a batch or more it rarely waits.
	ReceiveLinger time.Duration
	// ReceiveAhead is how many messages may wait for a worker, their leases kept, so that a
	// worker that frees up finds its next message already received. Receiving is paused
	// while every worker is busy or already has a received message waiting for it; when a
	// worker is idle, one receive fetches up to MaxMessages (bounded by the free workers plus
	// ReceiveAhead). Default MaxMessages; negative none (each receive asks only for the free
	// workers). Messages still waiting at shutdown are released at once.
	ReceiveAhead int

	// VisibilityTimeout is the lease of received messages, renewed while they are in work;
	// default 30s (the queue may take only some values: SQS whole seconds from 1s to 12h). A
	// crash costs at most this much delay.
	VisibilityTimeout time.Duration
	// Backoff spaces the retries of transiently failed messages, by receive count, through
	// their visibility; default base 5s doubling to 15 min. Full jitter, at least a second.
	Backoff retry.Policy
	// DrainTimeout bounds graceful shutdown: in-flight work that has not finished by then is
	// released to the queue; default 25s.
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
	// instead of a backoff. Nil means the breaker's defaults; its Cooldown becomes those
	// messages' visibility, so the queue must take it (SQS: at most 12h).
	Breaker *breaker.Options
	// Autoscale sizes the worker pool from the queue's depth between its Min and Max; the pool
	// starts at Workers clamped to them. Nil keeps the pool at Workers.
	Autoscale *autoscale.Options
	// ThumbnailPrefix, when set, turns thumbnails on: each analysed image gets one at
	// ThumbnailKey(ThumbnailPrefix, record) in its own bucket (Deps.Thumbnails), one per
	// version, the older ones removed when a newer one is written and with the object. The bucket's notification must not cover the prefix (events about keys
	// under it are skipped).
	ThumbnailPrefix string
	// ThumbnailDecodes bounds the images decoded for thumbnails at once; default
	// DefaultThumbnailDecodes.
	ThumbnailDecodes int
	// ThumbnailMaxPixels bounds the pixels of an image decoded for a thumbnail (larger ones
	// get none); default thumbnail.DefaultMaxPixels. With ThumbnailDecodes it bounds the
	// thumbnails' live memory: at most decodes x pixels x 8 bytes (16-bit images; 4 for 8-bit
	// PNG, 1.5 to 3 for JPEG), plus the garbage collector's headroom unless GOMEMLIMIT holds it.
	ThumbnailMaxPixels int64

	// DepthInterval is how often the queue's depth is read for the metrics and the
	// autoscaler; default 10s.
	DepthInterval time.Duration
	// Registerer receives the analyzer's Prometheus collectors; nil registers none.
	Registerer prometheus.Registerer
	// VisionObserver, when set, is registered with Registerer too (give the same observer to
	// vision.Options.Observer).
	VisionObserver *VisionObserver

	Logger *zap.Logger

	// deleteGrace replaces the package's deleteGrace in tests (zero: the constant).
	deleteGrace time.Duration
}

// DefaultS3Timeout is Options.S3Timeout's default.
const DefaultS3Timeout = 20 * time.Second

// minRetryDelay is the least visibility of a retried message, so that a failing message
// cannot spin.
const minRetryDelay = time.Second

func (o *Options) withDefaults() (Options, error) {
	var out Options
	if o != nil {
		out = *o
	}
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	if out.Workers <= 0 {
		out.Workers = 16
	}
	if out.MaxMessages <= 0 || out.MaxMessages > queue.MaxBatch {
		out.MaxMessages = queue.MaxBatch
	}
	if out.VisibilityTimeout == 0 {
		out.VisibilityTimeout = 30 * time.Second
	}
	def(&out.DrainTimeout, 25*time.Second)
	def(&out.deleteGrace, deleteGrace)
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
	if out.ThumbnailDecodes <= 0 {
		out.ThumbnailDecodes = DefaultThumbnailDecodes
	}
	if out.ThumbnailMaxPixels <= 0 {
		out.ThumbnailMaxPixels = thumbnail.DefaultMaxPixels
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
	metrics   *metrics
	breaker   *breaker.Breaker
	scaler    *autoscale.Scaler
	capacity  *capacity   // who may receive and take a worker
	finishing stage       // messages analysed and being published and settled
	thumbs    *thumbnails // nil: no thumbnails
	keeper    *queue.Keeper
	deleter   *queue.Deleter
	now       func() time.Time
	ran       atomic.Bool

	// receiveErr and depthErr are the queue's last receive and depth errors; nil when that
	// call last worked. Kept apart: a working depth call must not hide a failing receive
	// (a policy without sqs:ReceiveMessage), nor the other way round.
	receiveErr, depthErr atomic.Pointer[error]
	s3                   s3Health // the last S3 reads' failures
	// lastFault is the last dependency fault the circuit counted, for /readyz and the logs.
	lastFault atomic.Pointer[dependencyFault]
}

// New checks the options and returns an analyzer ready to Run.
func New(deps Deps, opts *Options) (*Analyzer, error) {
	if deps.Queue == nil || deps.DLQ == nil || deps.Objects == nil || deps.Vision == nil || deps.Publisher == nil {
		return nil, errors.New("analyzer: Queue, DLQ, Objects, Vision and Publisher are all required")
	}
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if o.ThumbnailPrefix != "" && deps.Thumbnails == nil {
		return nil, errors.New("analyzer: Thumbnails is required with a ThumbnailPrefix")
	}
	if err := queue.CheckHold(deps.Queue, o.VisibilityTimeout); err != nil {
		return nil, fmt.Errorf("analyzer: VisibilityTimeout %s: %w", o.VisibilityTimeout, err)
	}
	a := &Analyzer{deps: deps, opts: o, log: o.Logger, metrics: newMetrics(), now: time.Now, thumbs: newThumbnails(deps.Thumbnails, &o)}
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
	if err := queue.CheckHold(deps.Queue, deferral(a.breaker.Cooldown())); err != nil {
		return nil, fmt.Errorf("analyzer: Breaker.Cooldown %s (it becomes the visibility of deferred messages): %w", a.breaker.Cooldown(), err)
	}
	workers, maxWorkers := o.Workers, o.Workers
	if o.Autoscale != nil {
		s, err := autoscale.New(*o.Autoscale)
		if err != nil {
			return nil, err
		}
		a.scaler = s
		workers = min(max(workers, o.Autoscale.Min), o.Autoscale.Max)
		maxWorkers = o.Autoscale.Max
	}
	a.capacity = newCapacity(workers, o.ReceiveAhead)
	a.finishing = make(stage, maxWorkers)
	a.keeper = queue.NewKeeper(deps.Queue, o.VisibilityTimeout, &queue.KeeperOptions{
		Extended: func(n int) { a.metrics.heartbeats.Add(float64(n)) },
		Failed:   func(*queue.Message, error) { a.metrics.heartbeatErrors.Inc() },
		Logger:   o.Logger,
	})
	a.deleter = queue.NewDeleter(deps.Queue, &queue.DeleterOptions{Logger: o.Logger})
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

// deferral is the visibility of a message deferred for the circuit's cooldown: whole seconds,
// at least one.
func deferral(cooldown time.Duration) time.Duration {
	return max((cooldown + time.Second - 1).Truncate(time.Second), time.Second)
}

// Ready reports whether the analyzer can do its work: the circuit is not open, the queue
// answered its last call and the last S3 reads did not all fail. It is the /readyz check.
func (a *Analyzer) Ready(context.Context) error {
	if a.breaker.State() == breaker.Open {
		if f := a.lastFault.Load(); f != nil {
			return fmt.Errorf("circuit open after failures of %s, the last: %w", f.dep, f.err)
		}
		return errors.New("circuit open")
	}
	if p := a.receiveErr.Load(); p != nil {
		return fmt.Errorf("queue receive: %w", *p)
	}
	if p := a.depthErr.Load(); p != nil {
		return fmt.Errorf("queue depth: %w", *p)
	}
	if err := a.s3.err(); err != nil {
		return fmt.Errorf("s3: %w", err)
	}
	return nil
}

// CircuitState is the state of the circuit breaker now.
func (a *Analyzer) CircuitState() breaker.State { return a.breaker.State() }

// Workers is the size of the worker pool now.
func (a *Analyzer) Workers() int { return a.capacity.size() }

// deleteGrace is how long after the drain deadline the last deletes may still run.
const deleteGrace = 15 * time.Second

// receiveBackoff spaces the receives after a failed one.
var receiveBackoff = retry.Policy{BaseDelay: 200 * time.Millisecond, MaxDelay: 20 * time.Second}

// Run receives and processes messages until ctx is cancelled, then drains: it stops receiving
// at once, waits up to DrainTimeout for in-flight messages, releases the rest, flushes pending
// deletes and returns nil. It can be called once.
func (a *Analyzer) Run(ctx context.Context) error {
	if a.ran.Swap(true) {
		return errors.New("analyzer: Run called twice")
	}
	// Work outlives ctx by up to DrainTimeout: it is cancelled when the drain deadline,
	// DrainTimeout after ctx ends, passes. Deletes of work that finished just before the
	// deadline still go out: the deleter's calls are cut off only deleteGrace after it.
	workCtx, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	delCtx, cancelDeletes := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelDeletes()
	var deadline atomic.Pointer[time.Time]
	stopDeadline := context.AfterFunc(ctx, func() {
		d := time.Now().Add(a.opts.DrainTimeout)
		deadline.Store(&d)
		time.AfterFunc(a.opts.DrainTimeout, cancelWork)
		time.AfterFunc(a.opts.DrainTimeout+a.opts.deleteGrace, cancelDeletes)
	})
	defer stopDeadline()

	var bg sync.WaitGroup // the keeper, the deleter, the depth watcher
	keepCtx, stopKeeping := context.WithCancel(workCtx)
	bg.Go(func() { a.keeper.Run(keepCtx) })
	bg.Go(func() { a.deleter.Run(delCtx) })
	bg.Go(func() { a.watchQueue(ctx) })

	st := &runState{intake: ctx, work: workCtx, runner: newRunner()}
	a.receiveLoop(st)

	left := a.opts.DrainTimeout
	if d := deadline.Load(); d != nil {
		left = time.Until(*d)
	}
	a.log.Info("draining", zap.Duration("deadline_in", left))
	drained := make(chan struct{})
	go func() {
		st.inflight.Wait()
		close(drained)
	}()
	select {
	case <-drained:
	case <-workCtx.Done():
		// Work sees its context cancelled and releases its messages.
		a.log.Warn("drain deadline passed; releasing unfinished messages")
		<-drained
	}
	st.runner.close()
	st.runner.wait()
	stopKeeping()
	a.deleter.Close()
	bg.Wait()
	a.log.Info("drained")
	return nil
}

// runState is what one Run shares with the messages it received.
type runState struct {
	intake   context.Context // Run's: ends at shutdown, when nothing new may start
	work     context.Context // ends at the drain deadline
	runner   *runner
	inflight sync.WaitGroup // messages received and not yet settled
}

// receiveLoop is the receive stage: while the circuit and the capacity allow, it receives a
// batch and hands each message to process, until st.intake ends.
func (a *Analyzer) receiveLoop(st *runState) {
	ctx := st.intake
	failures := 0
	for ctx.Err() == nil {
		n, probe := a.intake(ctx)
		if n == 0 {
			continue
		}
		n = a.capacity.admit(ctx, n, a.opts.ReceiveLinger)
		if n == 0 {
			continue // shutdown began
		}
		// The receive is not cancelled when ctx ends, only at the drain deadline: a long poll
		// whose caller hung up still takes the next messages (see queue.Source.Receive),
		// which would then stay invisible for their whole lease. What a receive brings back
		// after ctx ended is released at once instead.
		msgs, err := a.deps.Queue.Receive(st.work, n, a.opts.VisibilityTimeout)
		a.capacity.unadmit(n - len(msgs))
		if ctx.Err() != nil {
			a.metrics.received.Add(float64(len(msgs)))
			a.releaseUnstarted(msgs)
			a.capacity.unadmit(len(msgs))
			return
		}
		if err != nil {
			failures++
			if failures >= 2 {
				a.receiveErr.Store(&err)
			}
			wait := receiveBackoff.Backoff(failures, nil)
			a.log.Warn("receive failed", zap.Error(err), zap.Duration("retry_in", wait))
			a.metrics.receiveErrors.Inc()
			_ = retry.Sleep(ctx, wait) // the loop ends once ctx has
			continue
		}
		failures = 0
		a.receiveErr.Store(nil)
		a.metrics.received.Add(float64(len(msgs)))
		a.metrics.observeReceive(msgs, a.now())
		a.keeper.Keep(msgs...)
		st.inflight.Add(len(msgs))
		for _, m := range msgs {
			st.runner.run(func() {
				defer st.inflight.Done()
				a.process(st, m, probe)
			})
		}
	}
}

// intake says how many messages the next receive may ask for: none while the circuit is open
// (it waits a moment first), one as the half-open circuit's probe, else a full batch. While
// a dependency is down, messages wait on the queue, not in memory, and burn no receive counts.
func (a *Analyzer) intake(ctx context.Context) (n int, probe bool) {
	switch a.breaker.State() {
	case breaker.Open:
		_ = retry.Sleep(ctx, min(a.breaker.Remaining(), time.Second))
		return 0, false
	case breaker.HalfOpen:
		if !a.breaker.Allow() {
			_ = retry.Sleep(ctx, 100*time.Millisecond)
			return 0, false
		}
		return 1, true
	}
	return a.opts.MaxMessages, false
}
