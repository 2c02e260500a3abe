package replay

import (
	"context"
	"errors"
	"fmt"
	"time"

	"imgpipe/pkg/ratelimit"
)

// Source is a dead-letter queue or subscription. Implementations: sqsdlq, pubsubdlq.
type Source interface {
	// Receive leases up to max messages (1..10) for hold, so that no other receive sees them
	// until they are released, deleted or the hold ends. It returns no messages, and no
	// error, when the source looks empty.
	Receive(ctx context.Context, max int, hold time.Duration) ([]*Message, error)
	// Release makes leased messages receivable again at once (SQS visibility 0, Pub/Sub nack).
	Release(ctx context.Context, msgs []*Message) error
	// Delete removes leased messages. The result has one entry per message: nil when it was
	// deleted.
	Delete(ctx context.Context, msgs []*Message) []error
	// MaxAttributes is how many attributes one message may carry (0: no limit that matters).
	MaxAttributes() int
}

// Sink is where messages are sent: the pipeline's queue or topic.
type Sink interface {
	// Send sends msgs. The result has one entry per message: nil when the service confirmed
	// it stored the message.
	Send(ctx context.Context, msgs []*Message) []error
}

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
	// Hold is how long received messages stay leased; skipped messages stay leased until the
	// end of the run so that the run sees each message once. 0 means DefaultHold.
	Hold time.Duration
	Now  func() time.Time
	// OnDecision, when set, is called for each message seen with what the run does with it.
	OnDecision func(m *Message, d Decision)
	// OnFailure, when set, is called for each message whose send (left in the DLQ) or delete
	// (sent, so it will be a duplicate) failed, with the error.
	OnFailure func(m *Message, err error)
	// OnProgress, when set, is called after each batch with the summary so far.
	OnProgress func(Summary)
	// AfterSend is a failure-injection hook for tests, called between the send of a batch and
	// its delete with the messages whose send succeeded. A non-nil error ends the run at once,
	// as a crash would: nothing is deleted or released.
	AfterSend func(sent []*Message) error
}

// DefaultMaxReplays is how many times a message may be replayed before it is left in the DLQ.
const DefaultMaxReplays = 5

// Summary is the outcome of a replay.
type Summary struct {
	Seen           int  `json:"seen"`
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
	if r.Now == nil {
		r.Now = time.Now
	}
	return r
}

// releaseTimeout bounds the release of held messages at the end of a run.
const releaseTimeout = 30 * time.Second

// Run moves messages from src to dst as opts says. It stops when src is empty, Max messages
// were moved, or ctx is done; a cancelled ctx stops it after the current batch (whose send and
// delete complete), with Summary.Interrupted set. A message is deleted from src only after dst
// confirmed its send; a failure between the two leaves a duplicate, never a loss. Messages left
// in src are released before Run returns.
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
	var held leases
	crashed := false
	defer func() {
		if crashed || len(held.order) == 0 {
			return
		}
		held.release(io, src, &err)
	}()
	seen := map[string]bool{}
	selected := 0
	for {
		if ctx.Err() != nil {
			sum.Interrupted = true
			return sum, nil
		}
		if o.Max > 0 && selected >= o.Max {
			return sum, nil
		}
		msgs, err := src.Receive(io, o.Batch, o.Hold)
		if err != nil {
			return sum, err
		}
		if len(msgs) == 0 {
			return sum, nil
		}
		var move []*Message
		for _, m := range msgs {
			if seen[m.ID] { // a lease ran out and the message came back: keep it once
				held.add(m)
				continue
			}
			seen[m.ID] = true
			sum.Seen++
			d := Decide(m, &o.Filter, o.MaxReplays, o.Now())
			if d == Move && o.Max > 0 && selected >= o.Max {
				d = SkipMax
			}
			switch d {
			case Move:
				selected++
				move = append(move, m)
			case SkipReplays:
				sum.TooManyReplays++
				held.add(m)
			default:
				sum.SkippedFilter++
				held.add(m)
			}
			if o.OnDecision != nil {
				o.OnDecision(m, d)
			}
		}
		if o.DryRun {
			sum.Moved += len(move)
			held.add(move...)
			o.progress(sum)
			continue
		}
		// The rate limit applies per message; Ctrl-C during the wait sends what was cleared.
		n := len(move)
		if bucket != nil {
			for i := range move {
				if bucket.Wait(ctx) != nil {
					n = i
					sum.Interrupted = true
					break
				}
			}
		}
		held.add(move[n:]...)
		move = move[:n]
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
				held.add(move[i])
				o.failed(move[i], e)
				continue
			}
			sent = append(sent, move[i])
		}
		if o.AfterSend != nil {
			if err := o.AfterSend(sent); err != nil {
				crashed = true
				return sum, fmt.Errorf("after send: %w", err)
			}
		}
		if len(sent) > 0 {
			for i, e := range src.Delete(io, sent) {
				if e != nil {
					sum.DeleteFailed++
					o.failed(sent[i], e)
				} else {
					sum.Moved++
				}
			}
		}
		o.progress(sum)
	}
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

// leases holds the messages a run keeps leased until it ends, the latest lease per message: a
// message whose lease ran out and that was received again has a new handle, and only that one
// can release it.
type leases struct {
	order []string
	byID  map[string]*Message
}

func (l *leases) add(ms ...*Message) {
	if l.byID == nil {
		l.byID = map[string]*Message{}
	}
	for _, m := range ms {
		if _, ok := l.byID[m.ID]; !ok {
			l.order = append(l.order, m.ID)
		}
		l.byID[m.ID] = m
	}
}

// release gives every held message back to src (within releaseTimeout, even when ctx is
// done) and stores a release error in *err unless *err already holds one.
func (l *leases) release(ctx context.Context, src Source, err *error) {
	rctx, cancel := context.WithTimeout(ctx, releaseTimeout)
	defer cancel()
	if rerr := releaseAll(rctx, src, l.list()); rerr != nil && *err == nil {
		*err = rerr
	}
}

func (l *leases) list() []*Message {
	out := make([]*Message, 0, len(l.order))
	for _, id := range l.order {
		out = append(out, l.byID[id])
	}
	return out
}

func releaseAll(ctx context.Context, src Source, msgs []*Message) error {
	var errs []error
	for len(msgs) > 0 {
		n := min(10, len(msgs))
		if err := src.Release(ctx, msgs[:n]); err != nil {
			errs = append(errs, err)
		}
		msgs = msgs[n:]
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("release: %w", err)
	}
	return nil
}

// ScanOptions configures Scan. A nil *ScanOptions scans everything with the defaults.
type ScanOptions struct {
	Max  int           // look at most this many messages; 0: all
	Hold time.Duration // lease while scanning; 0 means DefaultHold
}

// Scan calls fn with each message of src, once, and releases them all before it returns,
// consuming nothing (each receive does count as a receive on SQS). It stops early when ctx is
// done or fn returns an error.
func Scan(ctx context.Context, src Source, opts *ScanOptions, fn func(*Message) error) (err error) {
	var o ScanOptions
	if opts != nil {
		o = *opts
	}
	if o.Hold <= 0 {
		o.Hold = DefaultHold
	}
	io := context.WithoutCancel(ctx)
	var held leases
	defer func() { held.release(io, src, &err) }()
	seen := map[string]bool{}
	n := 0
	for ctx.Err() == nil && (o.Max <= 0 || n < o.Max) {
		want := 10
		if o.Max > 0 {
			want = min(want, o.Max-n)
		}
		msgs, err := src.Receive(io, want, o.Hold)
		if err != nil {
			return err
		}
		if len(msgs) == 0 {
			return nil
		}
		held.add(msgs...)
		for _, m := range msgs {
			if seen[m.ID] {
				continue
			}
			seen[m.ID] = true
			n++
			if err := fn(m); err != nil {
				return err
			}
		}
	}
	return ctx.Err()
}

// Drain receives every message of src in batches, calls fn with each batch and then deletes
// the batch when fn succeeded (export with --delete writes and fsyncs in fn; purge passes a
// fn that only counts). keep=true releases instead of deleting. It returns how many messages
// were deleted; a failed delete is reported in the error and the message stays.
func Drain(ctx context.Context, src Source, keep bool, fn func([]*Message) error) (deleted int, err error) {
	io := context.WithoutCancel(ctx)
	var held leases
	defer func() { held.release(io, src, &err) }()
	seen := map[string]bool{}
	var errs []error
	for ctx.Err() == nil {
		msgs, err := src.Receive(io, 10, DefaultHold)
		if err != nil {
			return deleted, err
		}
		if len(msgs) == 0 {
			break
		}
		var fresh []*Message
		for _, m := range msgs {
			if seen[m.ID] {
				held.add(m)
				continue
			}
			seen[m.ID] = true
			fresh = append(fresh, m)
		}
		if len(fresh) == 0 {
			continue
		}
		if err := fn(fresh); err != nil {
			held.add(fresh...)
			return deleted, err
		}
		if keep {
			held.add(fresh...)
			continue
		}
		for i, e := range src.Delete(io, fresh) {
			if e != nil {
				errs = append(errs, fmt.Errorf("delete %s: %w", fresh[i].ID, e))
				continue
			}
			deleted++
		}
	}
	if err := errors.Join(errs...); err != nil {
		return deleted, err
	}
	return deleted, ctx.Err()
}

// Send sends msgs to dst in batches of batch (1..10) and returns how many were confirmed and
// the first error of those that were not (import).
func Send(ctx context.Context, dst Sink, msgs []*Message, batch int) (sent int, err error) {
	if batch <= 0 || batch > 10 {
		batch = 10
	}
	var errs []error
	for len(msgs) > 0 && ctx.Err() == nil {
		n := min(batch, len(msgs))
		for i, e := range dst.Send(ctx, msgs[:n]) {
			if e != nil {
				errs = append(errs, fmt.Errorf("send %s: %w", msgs[i].ID, e))
				continue
			}
			sent++
		}
		msgs = msgs[n:]
	}
	if len(errs) > 0 {
		return sent, fmt.Errorf("%d not sent: %w", len(errs), errs[0])
	}
	return sent, ctx.Err()
}
