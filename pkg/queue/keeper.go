package queue

import (
	"context"
	"sync"
	"time"

	"go.uber.org/zap"

	"imgpipe/pkg/failure"
)

// KeeperOptions tunes a Keeper. A nil *KeeperOptions means the defaults.
type KeeperOptions struct {
	// Every is how long after a message was received, and then after each extension, its
	// lease is extended again; default a third of the hold, so that a lease is renewed well
	// before it ends even when a call is slow.
	Every time.Duration
	// CallTimeout bounds one pass of Extend calls (the batches due together, called side by
	// side); default half of Every, so that a call that hangs leaves time to try again before
	// the lease ends.
	CallTimeout time.Duration
	// Extended is told how many leases one call extended; Failed of each one that failed.
	// A lease whose extension failed transiently is tried again soon: after a quarter of
	// Every, or half the time its lease has left if that is less (Every once it has none
	// left); one that failed permanently (the lease is lost) is no longer extended. Both
	// are optional, and may be called from several goroutines at once.
	Extended func(n int)
	Failed   func(m *Message, err error)
	Logger   *zap.Logger
}

// Keeper keeps the leases of messages in work: from Keep to Drop, each lease is extended to
// hold every Every, in batches of up to BatchSize(src), by one goroutine (Run) for all of them
// and the calls it makes side by side for one pass.
type Keeper struct {
	src  Source
	hold time.Duration
	opts KeeperOptions

	mu     sync.Mutex
	leases map[*Message]*lease
	done   *sync.Cond // broadcast when an extension call ends
	wake   chan struct{}
}

type lease struct {
	due      time.Time // when the lease is next extended
	ends     time.Time // when the lease ends, as far as the keeper knows
	extended bool      // an extension of it is under way
	lost     bool      // an extension failed permanently: no longer extended
}

// NewKeeper returns a keeper that extends leases of src's messages to hold.
func NewKeeper(src Source, hold time.Duration, opts *KeeperOptions) *Keeper {
	o := KeeperOptions{}
	if opts != nil {
		o = *opts
	}
	if o.Every <= 0 {
		o.Every = hold / 3
	}
	if o.CallTimeout <= 0 {
		o.CallTimeout = o.Every / 2
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	k := &Keeper{src: src, hold: hold, opts: o, leases: map[*Message]*lease{}, wake: make(chan struct{}, 1)}
	k.done = sync.NewCond(&k.mu)
	return k
}

// Keep starts keeping the leases of msgs, which were just received.
func (k *Keeper) Keep(msgs ...*Message) {
	now := time.Now()
	k.mu.Lock()
	for _, m := range msgs {
		k.leases[m] = &lease{due: now.Add(k.opts.Every), ends: now.Add(k.hold)}
	}
	k.mu.Unlock()
	select {
	case k.wake <- struct{}{}:
	default:
	}
}

// Drop stops keeping m's lease. If an extension of it is under way, Drop waits for that call
// to end, so that a release or a new lease set after Drop is not undone by it.
func (k *Keeper) Drop(m *Message) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for {
		l, ok := k.leases[m]
		if !ok {
			return
		}
		if !l.extended {
			delete(k.leases, m)
			return
		}
		k.done.Wait()
	}
}

// Run extends the leases kept, each when it is due, until ctx ends. An extension cut off by
// the end of ctx is neither counted as done nor as failed.
func (k *Keeper) Run(ctx context.Context) {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		next, ok := k.nextDue()
		if ok {
			t.Reset(max(time.Until(next), 0))
		} else {
			t.Stop()
		}
		select {
		case <-ctx.Done():
			return
		case <-k.wake:
			continue
		case <-t.C:
		}
		k.extendDue(ctx)
	}
}

func (k *Keeper) nextDue() (time.Time, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	var next time.Time
	for _, l := range k.leases {
		if !l.extended && !l.lost && (next.IsZero() || l.due.Before(next)) {
			next = l.due
		}
	}
	return next, !next.IsZero()
}

// extendDue extends every lease due now, and those due within a quarter of Every (so that
// leases taken close together share a call). A pass's batches are called side by side (at
// most maxExtendCalls at once) under one CallTimeout: a pass never outlasts CallTimeout,
// however many batches it has, so a hung call costs no lease its quick retry can still save,
// and Drop waits at most that long.
func (k *Keeper) extendDue(ctx context.Context) {
	horizon := time.Now().Add(k.opts.Every / 4)
	k.mu.Lock()
	var due []*Message
	for m, l := range k.leases {
		if !l.extended && !l.lost && !l.due.After(horizon) {
			l.extended = true
			due = append(due, m)
		}
	}
	k.mu.Unlock()
	cctx, cancel := context.WithTimeout(ctx, k.opts.CallTimeout)
	defer cancel()
	called := time.Now()
	slots := make(chan struct{}, maxExtendCalls)
	var wg sync.WaitGroup
	size := BatchSize(k.src)
	for start := 0; start < len(due); start += size {
		batch := due[start:min(start+size, len(due))]
		wg.Add(1)
		go func() {
			defer wg.Done()
			slots <- struct{}{}
			defer func() { <-slots }()
			k.extendBatch(ctx, cctx, batch, called)
		}()
	}
	wg.Wait()
}

// maxExtendCalls is how many Extend calls one pass makes at once.
const maxExtendCalls = 8

// extendBatch makes one Extend call for batch under cctx (the pass's deadline) and
// reschedules its leases; ctx is the keeper's.
func (k *Keeper) extendBatch(ctx, cctx context.Context, batch []*Message, called time.Time) {
	res := k.src.Extend(cctx, batch, k.hold)
	errs := make([]error, len(batch))
	for i, m := range batch {
		if i < len(res) {
			errs[i] = res[i]
		} else {
			errs[i] = failure.Transientf("NoAnswer", "extend %s: the source answered %d of %d", m.ID, len(res), len(batch))
		}
	}
	now := time.Now()
	k.mu.Lock()
	for i, m := range batch {
		if l := k.leases[m]; l != nil {
			l.extended = false
			k.reschedule(l, errs[i], called, now, ctx.Err() != nil)
		}
	}
	k.done.Broadcast()
	k.mu.Unlock()
	ok := 0
	for i, m := range batch {
		err := errs[i]
		switch {
		case err == nil:
			ok++
		case ctx.Err() != nil:
			// Cut off because the keeper stops: not an extension, not a failure.
		default:
			if k.opts.Failed != nil {
				k.opts.Failed(m, err)
			}
			k.opts.Logger.Warn("lease extension failed", zap.String("message_id", m.ID), zap.Error(err),
				zap.Bool("retried", !failure.IsPermanent(err)))
		}
	}
	if ok > 0 && k.opts.Extended != nil {
		k.opts.Extended(ok)
	}
}

// reschedule sets when l is next extended after a call made at called that ended at now with
// err; k.mu is held. A lease extended is due again Every later; one whose extension failed
// transiently is tried again soon, while it has time left, so that one hung or failed call
// does not cost it; one that failed permanently is lost.
func (k *Keeper) reschedule(l *lease, err error, called, now time.Time, stopping bool) {
	switch {
	case err == nil:
		l.due, l.ends = now.Add(k.opts.Every), called.Add(k.hold)
	case stopping:
		l.due = now.Add(k.opts.Every)
	case failure.IsPermanent(err):
		l.lost = true
	case now.Before(l.ends):
		l.due = now.Add(min(k.opts.Every/4, l.ends.Sub(now)/2))
	default:
		l.due = now.Add(k.opts.Every)
	}
}
