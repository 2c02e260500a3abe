package replay

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"time"

	"imgpipe/pkg/queue"
	"imgpipe/pkg/ratelimit"
)

// Source is a dead-letter queue or subscription: a pkg/queue source (sqsdlq: SQS; pubsubdlq:
// Pub/Sub) as the replay uses it, with the attribute limit of its messages. Every method that
// takes messages answers one error per message.
type Source interface {
	// Receive leases up to max messages (1..10) for hold, so that no other receive sees them
	// until they are released, deleted or the hold ends. It returns no messages, and no
	// error, when the source looks empty. A hold the service cannot grant as asked is a
	// permanent error.
	Receive(ctx context.Context, max int, hold time.Duration) ([]*Message, error)
	// Extend renews the leases of msgs for hold from now.
	Extend(ctx context.Context, msgs []*Message, hold time.Duration) []error
	// Release makes leased messages receivable again at once (SQS visibility 0, Pub/Sub nack).
	// Releasing a message whose lease already ran out is not an error.
	Release(ctx context.Context, msgs []*Message) []error
	// Delete removes leased messages.
	Delete(ctx context.Context, msgs []*Message) []error
	// MaxAttributes is how many attributes one message may carry (0: no limit that matters).
	MaxAttributes() int
}

// Sink is where messages are sent: the pipeline's queue or topic (pkg/queue's Sink).
type Sink = queue.Sink

// DefaultHold is how long received messages stay leased by default.
const DefaultHold = 10 * time.Minute

// Options configures Run. A nil *Options replays everything with the defaults.
type Options struct {
	Filter     Filter
	MaxReplays int     // leave messages already replayed this many times; 0 means 5, <0 no limit
	Max        int     // move at most this many messages; 0: all
	Batch      int     // messages per receive, send and delete (1..10); 0 means 10
	Rate       float64 // messages sent per second; 0: unlimited
	DryRun     bool    // decide and report, change nothing
	// Hold is how long received messages stay leased (renewed while a batch waits for the
	// rate limit); 0 means DefaultHold.
	Hold time.Duration
	// Window is how many messages the run keeps leased at most (see Pass); 0 means
	// DefaultWindow.
	Window int
	// Now is the clock of decisions (message ages) and replay stamps; nil means time.Now.
	Now func() time.Time
	// OnDecision, when set, is called for each message seen with what the run does with it.
	OnDecision func(m *Message, d Decision)
	// OnFailure, when set, is called for each message whose send (left in the DLQ) or delete
	// (sent, so it will be a duplicate: the error wraps ErrSentNotDeleted) failed.
	OnFailure func(m *Message, err error)
	// OnProgress, when set, is called after each batch with the summary so far.
	OnProgress func(Summary)
}

// ErrSentNotDeleted marks a message that was sent but could not be deleted from the DLQ.
var ErrSentNotDeleted = errors.New("sent but not deleted (it will be a duplicate)")

// ErrNotReleased marks a pass's error when held messages could not be released: nothing is
// lost, they become receivable again when their hold ends.
var ErrNotReleased = errors.New("release")

// DefaultMaxReplays is how many times a message may be replayed before it is left in the DLQ.
const DefaultMaxReplays = 5

// Summary is the outcome of a replay. Of the messages seen, each is counted once in one of
// Moved, SkippedFilter, TooManyReplays, Failed, DeleteFailed, CameBack or Arrived (an
// interrupted run may also leave selected messages it did not get to send).
type Summary struct {
	Pass
	Moved          int  `json:"moved"`            // sent and deleted (in a dry run: would move)
	SkippedFilter  int  `json:"skipped_filter"`   // not selected by the filter or past --max
	TooManyReplays int  `json:"too_many_replays"` // left: replayed MaxReplays times already
	Failed         int  `json:"failed"`           // send failed: left in the DLQ
	DeleteFailed   int  `json:"delete_failed"`    // sent but not deleted: will be a duplicate
	DryRun         bool `json:"dry_run"`
	Interrupted    bool `json:"interrupted"`
	// Trimmed counts messages that had attributes left out to fit the attribute limit.
	Trimmed int `json:"trimmed_attributes,omitempty"`
}

// Partial reports whether something did not go as asked (an exit status of 1).
func (s Summary) Partial() bool { return s.Failed > 0 || s.DeleteFailed > 0 }

func (o *Options) withDefaults() Options {
	var r Options
	if o != nil {
		r = *o
	}
	if r.MaxReplays == 0 {
		r.MaxReplays = DefaultMaxReplays
	}
	if r.Batch <= 0 || r.Batch > 10 {
		r.Batch = 10
	}
	if r.Hold <= 0 {
		r.Hold = DefaultHold
	}
	if r.Window <= 0 {
		r.Window = DefaultWindow
	}
	if r.Now == nil {
		r.Now = time.Now
	}
	return r
}

// releaseTimeout bounds the release of held messages at the end of a run.
const releaseTimeout = 30 * time.Second

// Run moves messages from src to dst as opts says, in one pass over the DLQ as it was when
// the run started (see Pass): messages that come back during the run, or arrive, are counted
// and left. It stops when the pass ends, Max messages were moved, or ctx is done; a cancelled
// ctx stops it after the current batch (whose send and delete complete), with
// Summary.Interrupted set. A message is deleted from src only after dst confirmed its send,
// and while its lease is alive; a failure between the two leaves a duplicate, never a loss.
// Messages left in src are released before Run returns.
func Run(ctx context.Context, src Source, dst Sink, opts *Options) (sum Summary, err error) {
	o := opts.withDefaults()
	if err := o.Filter.Validate(); err != nil {
		return sum, err
	}
	sum.DryRun = o.DryRun
	io := context.WithoutCancel(ctx) // a started batch finishes even after Ctrl-C
	var bucket *ratelimit.Bucket
	if o.Rate > 0 {
		bucket = ratelimit.NewBucket(o.Rate, o.Batch, nil)
	}
	w := newPass(io, src, o.Hold, o.Window, o.Now())
	w.stop = ctx.Done()
	defer func() {
		w.close(io, &err)
		sum.Pass = w.p
	}()
	selected := 0
	for {
		sum.Pass = w.p
		if ctx.Err() != nil {
			sum.Interrupted = true
			w.p.Ended = EndInterrupted
			return sum, nil
		}
		if o.Max > 0 && selected >= o.Max {
			w.p.Ended = EndMax
			return sum, nil
		}
		rs, err := w.receive(io, o.Batch)
		if err != nil {
			return sum, err
		}
		if len(rs) == 0 {
			return sum, nil
		}
		leased := time.Now() // leases run on the real clock, whatever o.Now says
		var move []*Message
		for _, r := range rs {
			m, d := r.m, r.d
			if d == Move {
				d = Decide(m, &o.Filter, o.MaxReplays, o.Now())
				if d == Move && o.Max > 0 && selected >= o.Max {
					d = SkipMax
				}
			}
			switch d {
			case Move:
				selected++
				move = append(move, m)
			case SkipReplays:
				sum.TooManyReplays++
			case SkipFilter, SkipMax:
				sum.SkippedFilter++
			}
			if d != Move {
				w.keep(m)
			}
			if o.OnDecision != nil {
				o.OnDecision(m, d)
			}
		}
		sum.Pass = w.p
		if o.DryRun {
			sum.Moved += len(move)
			w.keep(move...)
			o.progress(sum)
			continue
		}
		// The rate limit applies per message; Ctrl-C during the wait sends what was cleared.
		n, err := clearRate(ctx, io, w, bucket, move, &leased)
		if n < len(move) {
			sum.Interrupted = err == nil
			w.keep(move[n:]...)
			move = move[:n]
		}
		if err != nil {
			return sum, err
		}
		if len(move) == 0 {
			continue
		}
		out := make([]*Message, len(move))
		for i, m := range move {
			var dropped []string
			out[i], dropped = Marked(m, o.Now(), src.MaxAttributes())
			if len(dropped) > 0 {
				sum.Trimmed++
			}
		}
		var sent []*Message
		for i, e := range dst.Send(io, out) {
			if e != nil {
				sum.Failed++
				w.keep(move[i])
				o.failed(move[i], e)
				continue
			}
			sent = append(sent, move[i])
		}
		if len(sent) > 0 {
			for i, e := range src.Delete(io, sent) {
				if e != nil {
					sum.DeleteFailed++
					o.failed(sent[i], fmt.Errorf("%w: %w", ErrSentNotDeleted, e))
				} else {
					sum.Moved++
				}
			}
		}
		sum.Pass = w.p
		o.progress(sum)
	}
}

// clearRate waits until the rate limit lets each message of move go, renewing the leases of the
// whole batch whenever half the hold has passed since *leased, so that no lease runs out
// before the batch is deleted (a delete with a lapsed lease may leave the message in the DLQ
// after its send: a duplicate). It returns how many may go: all, fewer when ctx is done
// (Ctrl-C during the wait), none when a renewal failed (with its error: the leases are in
// doubt, so nothing is sent).
func clearRate(ctx, io context.Context, w *pass, bucket *ratelimit.Bucket, move []*Message, leased *time.Time) (int, error) {
	renew := func() error {
		if time.Since(*leased) < w.hold/2 {
			return nil
		}
		if err := w.extend(io, move); err != nil {
			return err
		}
		*leased = time.Now()
		return nil
	}
	for i := range move {
		if bucket == nil {
			break
		}
		r := bucket.Reserve()
		ready := time.Now().Add(r.Delay)
		for {
			if err := renew(); err != nil {
				r.Cancel()
				return 0, err
			}
			now := time.Now()
			if !now.Before(ready) {
				break
			}
			t := time.NewTimer(min(ready.Sub(now), leased.Add(w.hold/2).Sub(now)))
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				r.Cancel()
				return i, nil
			}
		}
	}
	if err := renew(); err != nil {
		return 0, err
	}
	return len(move), nil
}

func (o *Options) failed(m *Message, err error) {
	if o.OnFailure != nil {
		o.OnFailure(m, err)
	}
}

func (o *Options) progress(s Summary) {
	if o.OnProgress != nil {
		o.OnProgress(s)
	}
}

// ScanOptions configures Scan and Drain. A nil *ScanOptions means the defaults.
type ScanOptions struct {
	Max    int           // Scan: look at most this many messages; 0: all
	Hold   time.Duration // lease while scanning; 0 means DefaultHold
	Window int           // messages kept leased at most; 0 means DefaultWindow
	// Now is the clock the pass's start is read from; nil means time.Now.
	Now func() time.Time
}

func (o *ScanOptions) start(ctx context.Context, src Source) *pass {
	var r ScanOptions
	if o != nil {
		r = *o
	}
	if r.Now == nil {
		r.Now = time.Now
	}
	return newPass(ctx, src, r.Hold, r.Window, r.Now())
}

// Scan calls fn with each message of src as it was when the scan started, once, in one pass
// (see Pass), and releases them as it goes, consuming nothing (each receive does count as a
// receive on SQS). It stops early when ctx is done or fn returns an error.
func Scan(ctx context.Context, src Source, opts *ScanOptions, fn func(*Message) error) (p Pass, err error) {
	io := context.WithoutCancel(ctx)
	w := opts.start(io, src)
	w.stop = ctx.Done()
	defer func() {
		w.close(io, &err)
		p = w.p
	}()
	limit := 0
	if opts != nil {
		limit = opts.Max
	}
	n := 0
	for {
		if ctx.Err() != nil {
			w.p.Ended = EndInterrupted
			return w.p, ctx.Err()
		}
		if limit > 0 && n >= limit {
			w.p.Ended = EndMax
			return w.p, nil
		}
		want := 10
		if limit > 0 {
			want = min(want, limit-n)
		}
		rs, err := w.receive(io, want)
		if err != nil || len(rs) == 0 {
			return w.p, err
		}
		for _, r := range rs {
			w.keep(r.m)
			if r.d != Move {
				continue
			}
			n++
			if err := fn(r.m); err != nil {
				return w.p, err
			}
		}
	}
}

// Drain receives every message of src as it was when the drain started, in batches, calls fn
// with each batch and then deletes the batch when fn succeeded (export with --delete writes
// and fsyncs in fn; purge passes a fn that only counts). leave=true releases instead of
// deleting (export without --delete). Messages that came in after the start are left. It
// returns how many messages were deleted; a failed delete is reported in the error and the
// message stays.
func Drain(ctx context.Context, src Source, opts *ScanOptions, leave bool, fn func([]*Message) error) (deleted int, p Pass, err error) {
	io := context.WithoutCancel(ctx)
	w := opts.start(io, src)
	w.stop = ctx.Done()
	defer func() {
		w.close(io, &err)
		p = w.p
	}()
	var errs []error
	for ctx.Err() == nil {
		rs, err := w.receive(io, 10)
		if err != nil {
			return deleted, w.p, err
		}
		if len(rs) == 0 {
			break
		}
		var batch []*Message
		for _, r := range rs {
			if r.d != Move {
				w.keep(r.m)
				continue
			}
			batch = append(batch, r.m)
		}
		if len(batch) == 0 {
			continue
		}
		if err := fn(batch); err != nil {
			w.keep(batch...)
			return deleted, w.p, err
		}
		if leave {
			w.keep(batch...)
			continue
		}
		for i, e := range src.Delete(io, batch) {
			if e != nil {
				errs = append(errs, fmt.Errorf("delete %s: %w", batch[i].ID, e))
				continue
			}
			deleted++
		}
	}
	if ctx.Err() != nil {
		w.p.Ended = EndInterrupted
	}
	if err := errors.Join(errs...); err != nil {
		return deleted, w.p, err
	}
	return deleted, w.p, ctx.Err()
}

// Send sends msgs to dst in batches of batch (1..10) and returns how many were confirmed and
// the first error of those that were not.
func Send(ctx context.Context, dst Sink, msgs []*Message, batch int) (sent int, err error) {
	return SendAll(ctx, dst, func(yield func(*Message, error) bool) {
		for _, m := range msgs {
			if !yield(m, nil) {
				return
			}
		}
	}, batch)
}

// SendAll sends the messages of seq to dst in batches of batch (1..10), reading the next batch
// only once the previous one is sent, so that it holds one batch at a time (import streams a
// file through it). It stops at the first error seq yields, after sending what it had read. It
// returns how many sends were confirmed and the first error of those that were not.
func SendAll(ctx context.Context, dst Sink, seq iter.Seq2[*Message, error], batch int) (sent int, err error) {
	if batch <= 0 || batch > 10 {
		batch = 10
	}
	var errs []error
	pending := make([]*Message, 0, batch)
	flush := func() {
		for i, e := range dst.Send(ctx, pending) {
			if e != nil {
				errs = append(errs, fmt.Errorf("send %s: %w", pending[i].ID, e))
				continue
			}
			sent++
		}
		clear(pending)
		pending = pending[:0]
	}
	var readErr error
	for m, err := range seq {
		if err != nil {
			readErr = err
			break
		}
		if ctx.Err() != nil {
			break
		}
		if pending = append(pending, m); len(pending) == batch {
			flush()
		}
	}
	if len(pending) > 0 && ctx.Err() == nil {
		flush()
	}
	var sendErr error
	if len(errs) > 0 {
		sendErr = fmt.Errorf("%d not sent: %w", len(errs), errs[0])
	}
	if err := errors.Join(readErr, sendErr); err != nil {
		return sent, err
	}
	return sent, ctx.Err()
}
