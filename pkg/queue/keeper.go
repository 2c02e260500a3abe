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
	// CallTimeout bounds one Extend call; default Every.
	CallTimeout time.Duration
	// Extended is told how many leases one call extended; Failed of each one that failed
	// (and is tried again at its next turn). Both are optional.
	Extended func(n int)
	Failed   func(m *Message, err error)
	Logger   *zap.Logger
}

// Keeper keeps the leases of messages in work: from Keep to Drop, each lease is extended to
// hold every Every, in batches of up to BatchSize(src), by one goroutine (Run) for all of them.
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
	extended bool      // an extension of it is under way
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
		o.CallTimeout = o.Every
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
	due := time.Now().Add(k.opts.Every)
	k.mu.Lock()
	for _, m := range msgs {
		k.leases[m] = &lease{due: due}
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
		if !l.extended && (next.IsZero() || l.due.Before(next)) {
			next = l.due
		}
	}
	return next, !next.IsZero()
}

// extendDue extends every lease due now, and those due within a quarter of Every (so that
// leases taken close together share a call).
func (k *Keeper) extendDue(ctx context.Context) {
	horizon := time.Now().Add(k.opts.Every / 4)
	k.mu.Lock()
	var due []*Message
	for m, l := range k.leases {
		if !l.extended && !l.due.After(horizon) {
			l.extended = true
			due = append(due, m)
		}
	}
	k.mu.Unlock()
	size := BatchSize(k.src)
	for start := 0; start < len(due); start += size {
		batch := due[start:min(start+size, len(due))]
		cctx, cancel := context.WithTimeout(ctx, k.opts.CallTimeout)
		res := k.src.Extend(cctx, batch, k.hold)
		cancel()
		next := time.Now().Add(k.opts.Every)
		k.mu.Lock()
		for _, m := range batch {
			if l := k.leases[m]; l != nil {
				l.extended, l.due = false, next
			}
		}
		k.done.Broadcast()
		k.mu.Unlock()
		ok := 0
		for i, m := range batch {
			var err error
			if i < len(res) {
				err = res[i]
			} else {
				err = failure.Transientf("NoAnswer", "extend %s: the source answered %d of %d", m.ID, len(res), len(batch))
			}
			switch {
			case err == nil:
				ok++
			case ctx.Err() != nil:
				// Cut off because the keeper stops: not an extension, not a failure.
			default:
				if k.opts.Failed != nil {
					k.opts.Failed(m, err)
				}
				k.opts.Logger.Warn("lease extension failed", zap.String("message_id", m.ID), zap.Error(err))
			}
		}
		if ok > 0 && k.opts.Extended != nil {
			k.opts.Extended(ok)
		}
	}
}
