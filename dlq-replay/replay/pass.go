package replay

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"time"

	"imgpipe/pkg/failure"
	"imgpipe/pkg/queue"
	"imgpipe/pkg/retry"
)

// A pass walks a source once, as it was when the pass began, with a bounded lease window:
//
//   - Each message is received, decided and then moved (sent and deleted) or kept. Kept
//     messages stay leased, so that the pass does not receive them again at once, but at most
//     Window of them: when the window is full the oldest are released (made receivable
//     again), in batches before each receive, as new ones come in. What the pass holds in memory is one batch in full plus the
//     window's message IDs and lease handles.
//   - A message received again is recognised by a 64-bit fingerprint of its ID (about 16
//     bytes a message seen: 1.6 MB per 100,000) and neither counted nor decided twice.
//   - A receive that fails for a reason a retry can fix is retried (receivePolicy) and
//     counted in Pass.FailedReceives: its answer may have been lost on the way after the
//     service handed out a batch, whose messages then stay invisible until their hold ends,
//     out of this pass.
//   - Messages that entered the DLQ after the pass began are not part of it: those stamped by
//     a replay at or after the start (they came back) and those sent after the start (they
//     arrived). They are counted and left alone.
//   - The pass ends when a receive finds nothing, when quietMessages messages in a row are
//     none of the DLQ as it was that it has not seen yet (the pass went round: what comes
//     back now is what it released, or came in since the start), at its limit, or when ctx
//     is done. Counting messages rather than receives keeps the rule the same for any batch
//     size, and messages that keep arriving cannot keep a pass going.
//
// The trade-off: a queue that hands released messages straight back (rather than after the
// others) lets one pass see the messages it moves plus about Window others; the pass then ends
// as "went-round" with fewer seen than the DLQ held. Both stand-ins here (fauxqs and Google's
// emulator) hand released messages back after the others; SQS documents no order.

// DefaultWindow is how many messages a pass keeps leased at most by default: a tenth of the
// roughly 120,000 messages SQS lets be in flight on a queue.
const DefaultWindow = 10000

// quietMessages is how many messages in a row that are nothing new of the DLQ as it was end
// a pass: three full receives.
const quietMessages = 30

// Why a pass ended (Pass.Ended).
const (
	EndEmpty       = "empty"       // a receive found nothing
	EndRound       = "went-round"  // receives brought back only messages already seen
	EndMax         = "max"         // the pass reached its limit
	EndInterrupted = "interrupted" // ctx was done
	EndError       = "error"       // a call failed
)

// Sizer is a Source that can tell cheaply about how many messages it holds that a receive can
// get (SQS: ApproximateNumberOfMessages). Pub/Sub has no such count.
type Sizer interface {
	ApproximateSize(ctx context.Context) (int, error)
}

// Pass is what one pass over a source saw.
type Pass struct {
	Seen      int    `json:"seen"`               // distinct messages received
	CameBack  int    `json:"came_back"`          // of those, stamped by a replay at or after the start: left
	Arrived   int    `json:"arrived"`            // of those, sent to the DLQ after the start: left
	AtStart   int    `json:"at_start,omitempty"` // the source's approximate size at the start (0: unknown)
	MaxLeased int    `json:"max_leased"`         // most messages this pass held leased at once
	Ended     string `json:"ended"`              // why the pass stopped (End*)
	// FailedReceives counts receives that failed and were retried: each may have hidden up
	// to a batch until the hold ends (an answer lost after the service handed it out).
	FailedReceives int `json:"failed_receives"`
}

// receivePolicy retries a receive that failed for a reason retrying can fix.
var receivePolicy = retry.Policy{MaxRetries: 4, BaseDelay: 200 * time.Millisecond, MaxDelay: 2 * time.Second}

// Entered says whether m is part of the DLQ as it was at start: Move when it is (whatever the
// filter then says), SkipCameBack when a replay stamped it (AttrReplayedAt) at or after start,
// SkipArrived when it was sent to the DLQ after start. The replay stamp is written with the
// replaying process's clock, so a run recognises its own stamps exactly; SentAt is the
// service's clock, so a message sent within the clocks' skew of start may be taken either way.
func Entered(m *Message, start time.Time) Decision {
	if a, ok := m.Attributes[AttrReplayedAt]; ok {
		if at, err := time.Parse(time.RFC3339Nano, a.String); err == nil && !at.Before(start) {
			return SkipCameBack
		}
	}
	if m.SentAt.After(start) {
		return SkipArrived
	}
	return Move
}

// received is a message new to the pass, with whether it is part of the DLQ as it was (Move)
// or came in later (SkipCameBack, SkipArrived).
type received struct {
	m *Message
	d Decision
}

type pass struct {
	src    Source
	hold   time.Duration
	window int
	start  time.Time

	seed  maphash.Seed
	seen  map[uint64]struct{}
	held  window
	quiet int
	over  bool
	p     Pass
}

func newPass(ctx context.Context, src Source, hold time.Duration, window int, start time.Time) *pass {
	if hold <= 0 {
		hold = DefaultHold
	}
	if window <= 0 {
		window = DefaultWindow
	}
	w := &pass{src: src, hold: hold, window: window, start: start, seed: maphash.MakeSeed(), seen: map[uint64]struct{}{}}
	if s, ok := src.(Sizer); ok {
		if n, err := s.ApproximateSize(ctx); err == nil {
			w.p.AtStart = n
		}
	}
	return w
}

func (w *pass) fingerprint(m *Message) uint64 { return maphash.String(w.seed, m.ID) }

// receive returns the next messages new to the pass; none (and Ended set) when the pass is
// over. Messages received again are released at once, or, when the window still holds them,
// kept there with their new lease.
func (w *pass) receive(ctx context.Context, n int) ([]received, error) {
	if w.over {
		return nil, nil
	}
	for {
		if err := w.trim(ctx); err != nil {
			return nil, err
		}
		msgs, err := w.get(ctx, n)
		if err != nil {
			w.p.Ended = EndError
			return nil, err
		}
		if len(msgs) == 0 {
			w.p.Ended = EndEmpty
			return nil, nil
		}
		w.p.MaxLeased = max(w.p.MaxLeased, w.held.len()+len(msgs))
		var out []received
		var again []*Message
		news := false
		for _, m := range msgs {
			fp := w.fingerprint(m)
			if _, ok := w.seen[fp]; ok {
				if !w.held.renew(fp, m.Handle) {
					again = append(again, m)
				}
				continue
			}
			w.seen[fp] = struct{}{}
			w.p.Seen++
			d := Entered(m, w.start)
			switch d {
			case SkipCameBack:
				w.p.CameBack++
			case SkipArrived:
				w.p.Arrived++
			default:
				news = true
			}
			out = append(out, received{m, d})
		}
		if err := releaseAll(ctx, w.src, again); err != nil {
			w.p.Ended = EndError
			return nil, err
		}
		if news {
			w.quiet = 0
		} else if w.quiet += len(msgs); w.quiet >= quietMessages {
			// Nothing of the DLQ as it was is left that this pass has not seen: what it got
			// now (messages that came in since the start) is handed out, then the pass ends.
			w.p.Ended = EndRound
			w.over = true
		}
		if len(out) > 0 || w.over {
			return out, nil
		}
	}
}

// get receives up to n messages, retrying a receive that failed for a reason retrying can fix
// as receivePolicy says, and counting each failure. A permanent failure, or a setup fault (a
// queue or subscription that does not exist, a permission missing: nothing a pass can wait
// out), ends the pass at once.
func (w *pass) get(ctx context.Context, n int) ([]*Message, error) {
	for attempt := 1; ; attempt++ {
		msgs, err := w.src.Receive(ctx, n, w.hold)
		if err == nil {
			return msgs, nil
		}
		if failure.IsPermanent(err) || failure.IsSetup(err) {
			return nil, err
		}
		w.p.FailedReceives++
		if attempt > receivePolicy.Retries() {
			return nil, fmt.Errorf("receive failed %d times: %w", attempt, err)
		}
		time.Sleep(receivePolicy.Delay(attempt, failure.RetryAfterOf(err), nil))
	}
}

// keep holds ms leased in the window; only each message's ID and lease handle are kept. What
// overflows the window is released by trim, in batches, before the next receive.
func (w *pass) keep(ms ...*Message) {
	for _, m := range ms {
		w.held.push(w.fingerprint(m), &Message{ID: m.ID, Handle: m.Handle})
	}
}

// trim releases the oldest held messages beyond the window.
func (w *pass) trim(ctx context.Context) error {
	if over := w.held.len() - w.window; over > 0 {
		if err := releaseAll(ctx, w.src, w.held.pop(over)); err != nil {
			w.p.Ended = EndError
			return err
		}
	}
	return nil
}

// extend renews the leases of msgs for the pass's hold.
func (w *pass) extend(ctx context.Context, msgs []*Message) error {
	if err := errors.Join(w.src.Extend(ctx, msgs, w.hold)...); err != nil {
		w.p.Ended = EndError
		return fmt.Errorf("extend leases: %w", err)
	}
	return nil
}

// close releases everything the window holds (within releaseTimeout, even when ctx is done)
// and stores a release error in *err unless *err already holds one.
func (w *pass) close(ctx context.Context, err *error) {
	rctx, cancel := context.WithTimeout(ctx, releaseTimeout)
	defer cancel()
	if rerr := releaseAll(rctx, w.src, w.held.pop(w.held.len())); rerr != nil && *err == nil {
		*err = rerr
	}
}

// window is the FIFO of messages a pass keeps leased, by fingerprint.
type window struct {
	order []uint64 // oldest first, from head
	head  int
	byFP  map[uint64]*Message
}

func (q *window) len() int { return len(q.byFP) }

func (q *window) push(fp uint64, m *Message) {
	if q.byFP == nil {
		q.byFP = map[uint64]*Message{}
	}
	if _, ok := q.byFP[fp]; !ok {
		q.order = append(q.order, fp)
	}
	q.byFP[fp] = m
}

// renew replaces the lease handle of a held message received again; false when it is not held.
func (q *window) renew(fp uint64, handle string) bool {
	m, ok := q.byFP[fp]
	if ok {
		m.Handle = handle
	}
	return ok
}

// pop removes and returns the n oldest held messages.
func (q *window) pop(n int) []*Message {
	out := make([]*Message, 0, min(n, q.len()))
	for len(out) < n && q.head < len(q.order) {
		fp := q.order[q.head]
		q.head++
		if m, ok := q.byFP[fp]; ok {
			delete(q.byFP, fp)
			out = append(out, m)
		}
	}
	if q.head > len(q.order)/2 { // reuse the slice's front
		q.order = append(q.order[:0], q.order[q.head:]...)
		q.head = 0
	}
	return out
}

func releaseAll(ctx context.Context, src Source, msgs []*Message) error {
	if err := errors.Join(queue.Batches(msgs, func(b []*Message) []error { return src.Release(ctx, b) })...); err != nil {
		return fmt.Errorf("release: %w", err)
	}
	return nil
}
