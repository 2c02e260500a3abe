package queue

import (
	"context"
	"sync"
	"time"

	"go.uber.org/zap"

	"imgpipe/pkg/failure"
	"imgpipe/pkg/retry"
)

// DeleterOptions tunes a Deleter. A nil *DeleterOptions means the defaults.
type DeleterOptions struct {
	// FlushInterval is how long a delete waits for others to share its batch; default 100ms.
	FlushInterval time.Duration
	// Attempts bounds the tries of one message's delete; default 5. A message whose delete
	// never succeeds comes back when its lease ends and is processed again, which the
	// pipeline's idempotency absorbs.
	Attempts int
	// CallTimeout bounds one Delete call; default 15s.
	CallTimeout time.Duration
	// Backoff spaces the calls after a whole batch failed; default base FlushInterval,
	// doubling to 2s.
	Backoff retry.Policy
	Logger  *zap.Logger
}

// Deleter batches deletes: a batch goes out when it holds BatchSize(src) messages or FlushInterval
// after the first was queued. Messages whose delete failed transiently are tried again in a
// later batch, up to Attempts; permanent failures are logged and dropped. Run sends the
// batches; Close makes Run flush what is queued and return.
type Deleter struct {
	src  Source
	opts DeleterOptions
	size int // messages per Delete call: BatchSize(src)

	mu      sync.Mutex
	pending []deletion
	wake    chan struct{}
	closed  chan struct{}
	once    sync.Once
}

type deletion struct {
	m        *Message
	attempts int
}

// NewDeleter returns a deleter of src's messages.
func NewDeleter(src Source, opts *DeleterOptions) *Deleter {
	o := DeleterOptions{}
	if opts != nil {
		o = *opts
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = 100 * time.Millisecond
	}
	if o.Attempts <= 0 {
		o.Attempts = 5
	}
	if o.CallTimeout <= 0 {
		o.CallTimeout = 15 * time.Second
	}
	if o.Backoff == (retry.Policy{}) {
		o.Backoff = retry.Policy{BaseDelay: o.FlushInterval, MaxDelay: 2 * time.Second}
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	return &Deleter{src: src, opts: o, size: BatchSize(src), wake: make(chan struct{}, 1), closed: make(chan struct{})}
}

// Delete queues m for deletion.
func (d *Deleter) Delete(m *Message) {
	d.mu.Lock()
	d.pending = append(d.pending, deletion{m: m})
	full := len(d.pending) >= d.size
	d.mu.Unlock()
	if full {
		select {
		case d.wake <- struct{}{}:
		default:
		}
	}
}

// Close asks Run to flush everything queued and return. Safe to call twice.
func (d *Deleter) Close() { d.once.Do(func() { close(d.closed) }) }

// Run sends batches until Close, then flushes what is left and returns. It returns too when
// ctx ends, which also ends its calls: what is still queued then is given up (those messages
// come back when their leases end).
func (d *Deleter) Run(ctx context.Context) {
	t := time.NewTicker(d.opts.FlushInterval)
	defer t.Stop()
	failures := 0
	for {
		all := false
		select {
		case <-d.closed:
			all = true
		case <-d.wake:
		case <-t.C:
		case <-ctx.Done():
			return
		}
		for {
			more, failed := d.flush(ctx, all)
			if failed {
				failures++
				_ = retry.Sleep(ctx, d.opts.Backoff.Backoff(failures, nil)) // a cancelled ctx cuts the wait short
			} else {
				failures = 0
			}
			if !more {
				break
			}
		}
		if all {
			return
		}
	}
}

// flush sends one batch. more reports whether another batch is waiting (a full one, or
// anything at all with all); failed whether the whole call failed.
func (d *Deleter) flush(ctx context.Context, all bool) (more, failed bool) {
	d.mu.Lock()
	n := min(len(d.pending), d.size)
	batch := make([]deletion, n)
	copy(batch, d.pending)
	d.pending = d.pending[n:]
	d.mu.Unlock()
	if n == 0 {
		return false, false
	}
	msgs := make([]*Message, n)
	for i, e := range batch {
		msgs[i] = e.m
	}
	cctx, cancel := context.WithTimeout(ctx, d.opts.CallTimeout)
	res := d.src.Delete(cctx, msgs)
	cancel()
	var again []deletion
	bad := 0
	for i, e := range batch {
		err := res[i]
		if err == nil {
			continue
		}
		bad++
		e.attempts++
		switch {
		case failure.IsPermanent(err):
			d.opts.Logger.Warn("delete failed", zap.String("message_id", e.m.ID), zap.Error(err))
		case e.attempts >= d.opts.Attempts || ctx.Err() != nil:
			d.opts.Logger.Error("giving up deleting message; it will be redelivered", zap.String("message_id", e.m.ID), zap.Error(err))
		default:
			again = append(again, e)
		}
	}
	d.mu.Lock()
	d.pending = append(d.pending, again...)
	more = len(d.pending) >= d.size || (all && len(d.pending) > 0)
	d.mu.Unlock()
	return more, bad == n && len(again) > 0
}
