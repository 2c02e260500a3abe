package indexstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"cloud.google.com/go/firestore"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"imgpipe/pkg/failure"
	"imgpipe/pkg/record"
	"imgpipe/pkg/s3event"
	"imgpipe/pkg/tracing"
)

// Result is what applying one record of a batch did.
type Result struct {
	Outcome Outcome
	Err     error
}

// ApplyBatch applies recs as one transaction: it reads the document and tombstone of every
// object with one GetAll, and writes, for each object, the newest of its records when that is
// newer than what the index holds. The guard is the same as Apply's; results[i] is recs[i]'s.
//
// Records of one object in the batch are reduced to the newest: the others are Stale once the
// batch has committed. An invalid record, or an object whose stored document cannot be read,
// fails alone. If the commit fails, every record is retried in its own transaction, so that
// one record's failure fails only that record.
func (s *Store) ApplyBatch(ctx context.Context, recs []*record.Analysis) []Result {
	results := make([]Result, len(recs))
	winner := map[string]int{} // document ID -> index of its newest record
	var ids []string
	for i, r := range recs {
		if err := check(r); err != nil {
			results[i].Err = err
			continue
		}
		id := record.DocumentID(r.Bucket, r.Key)
		j, seen := winner[id]
		if !seen {
			winner[id] = i
			ids = append(ids, id)
			continue
		}
		// Sequencers were checked, so the comparison cannot fail.
		if c, _ := s3event.ComparePosition(position(r), position(recs[j])); c > 0 {
			winner[id] = i
		}
	}
	if len(ids) == 0 {
		return results
	}
	refs := make([]*firestore.DocumentRef, 0, 2*len(ids))
	for _, id := range ids {
		refs = append(refs, s.docs.Doc(id), s.tombstones.Doc(id))
	}
	outcomes := make([]Result, len(ids))
	unlock := s.locks.lock(ids...)
	err := s.client.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		snaps, err := tx.GetAll(refs)
		if err != nil {
			return err
		}
		s.inTransaction()
		now := s.now().UTC()
		for k, id := range ids {
			o, err := s.decide(tx, recs[winner[id]], snaps[2*k], snaps[2*k+1], now)
			if err != nil && !failure.IsPermanent(err) {
				return err
			}
			outcomes[k] = Result{Outcome: o, Err: err}
		}
		return nil
	})
	unlock()
	if err != nil {
		s.applyEach(ctx, recs, results)
		return results
	}
	for k, id := range ids {
		i := winner[id]
		results[i] = outcomes[k]
		if err := results[i].Err; err != nil {
			results[i].Err = classifyWrite(fmt.Errorf("index %s/%s: %w", recs[i].Bucket, recs[i].Key, err))
		}
	}
	for i, r := range recs {
		if results[i].Err != nil {
			continue
		}
		if j := winner[record.DocumentID(r.Bucket, r.Key)]; j != i {
			if results[j].Err != nil {
				// The newest record of the object failed alone; this one must not be
				// acknowledged on its behalf.
				results[i].Err = results[j].Err
				continue
			}
			results[i].Outcome = Stale
		}
	}
	return results
}

// applyEach applies every valid record of a failed batch in its own transaction, a few at a
// time.
func (s *Store) applyEach(ctx context.Context, recs []*record.Analysis, results []Result) {
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for i, r := range recs {
		if results[i].Err != nil {
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			o, err := s.Apply(ctx, r)
			results[i] = Result{Outcome: o, Err: err}
		})
	}
	wg.Wait()
}

// BatchOptions tunes a Batcher. A nil *BatchOptions takes the defaults.
type BatchOptions struct {
	// MaxRecords is the most records one transaction applies; default 100 (each record may
	// take two writes, and a commit holds at most 500).
	MaxRecords int
	// MaxWait is how long the first record of a batch waits for others; default 10ms.
	MaxWait time.Duration
	// MaxConcurrent is how many batches commit at once; default 4.
	MaxConcurrent int
	// Timeout bounds one batch, its fallback included; default 60s.
	Timeout time.Duration
	// OnBatch, when set, is called after each batch with its size and how long it took.
	OnBatch func(records int, took time.Duration)
}

// ErrClosed is returned by Batcher.Apply after Close.
var ErrClosed = errors.New("index batcher closed")

// Batcher groups records applied concurrently into ApplyBatch transactions. Its Apply returns
// once the record's batch has committed, so a caller acknowledges a message only after its
// write is durable.
type Batcher struct {
	s    *Store
	o    BatchOptions
	in   chan *pending
	done chan struct{}

	mu     sync.RWMutex
	closed bool

	// refused holds the records whose last write Firestore refused (ReasonRejected), by
	// refusedKey: a record Firestore can never take (over 1 MiB) would fail every batch it
	// joins, forcing each batch-mate into a transaction of its own, on every retry. Such a
	// record is retried alone (Store.Apply) instead. Bounded by maxRefused.
	refusedMu sync.Mutex
	refused   map[string]struct{}
}

// maxRefused bounds Batcher.refused; past it an arbitrary entry makes room (that record then
// joins one batch again).
const maxRefused = 1024

// refusedKey names one record: its document, its event position and its content.
func refusedKey(rec *record.Analysis) string {
	return record.DocumentID(rec.Bucket, rec.Key) + "\x00" + rec.Sequencer + "\x00" + rec.EventTime.String() + "\x00" + rec.ETag + "\x00" + string(rec.Event)
}

// wasRefused reports whether rec's last write was refused (ReasonRejected).
func (b *Batcher) wasRefused(rec *record.Analysis) bool {
	b.refusedMu.Lock()
	defer b.refusedMu.Unlock()
	_, ok := b.refused[refusedKey(rec)]
	return ok
}

// noteResult remembers rec as refused when err is ReasonRejected, and forgets it otherwise.
func (b *Batcher) noteResult(rec *record.Analysis, err error) {
	k := refusedKey(rec)
	b.refusedMu.Lock()
	defer b.refusedMu.Unlock()
	if failure.ReasonOf(err) != ReasonRejected {
		delete(b.refused, k)
		return
	}
	if len(b.refused) >= maxRefused {
		for old := range b.refused {
			delete(b.refused, old)
			break
		}
	}
	b.refused[k] = struct{}{}
}

type pending struct {
	rec  *record.Analysis
	res  chan Result       // buffered: the batch never waits for a caller that gave up
	span trace.SpanContext // the caller's span (invalid when tracing is off)
}

// NewBatcher starts a batcher over s. Close stops it.
func (s *Store) NewBatcher(opts *BatchOptions) *Batcher {
	o := BatchOptions{MaxRecords: 100, MaxWait: 10 * time.Millisecond, MaxConcurrent: 4, Timeout: 60 * time.Second}
	if opts != nil {
		if opts.MaxRecords > 0 {
			o.MaxRecords = min(opts.MaxRecords, 250)
		}
		if opts.MaxWait > 0 {
			o.MaxWait = opts.MaxWait
		}
		if opts.MaxConcurrent > 0 {
			o.MaxConcurrent = opts.MaxConcurrent
		}
		if opts.Timeout > 0 {
			o.Timeout = opts.Timeout
		}
		o.OnBatch = opts.OnBatch
	}
	b := &Batcher{s: s, o: o, in: make(chan *pending), done: make(chan struct{}), refused: map[string]struct{}{}}
	go b.loop()
	return b
}

// Apply adds rec to the next batch and waits until that batch has committed. If ctx ends
// first, Apply returns its error; the write may still happen, which a redelivery of the same
// record then finds Stale. A record whose last write Firestore refused (ReasonRejected) is
// written alone (Store.Apply, bounded by BatchOptions.Timeout), so that a record Firestore
// never takes fails no batch of others on its retries.
func (b *Batcher) Apply(ctx context.Context, rec *record.Analysis) (Outcome, error) {
	p := &pending{rec: rec, res: make(chan Result, 1), span: trace.SpanContextFromContext(ctx)}
	b.mu.RLock()
	if b.closed {
		b.mu.RUnlock()
		return 0, ErrClosed
	}
	if b.wasRefused(rec) {
		b.mu.RUnlock()
		actx, cancel := context.WithTimeout(ctx, b.o.Timeout)
		defer cancel()
		o, err := b.s.Apply(actx, rec)
		if ctx.Err() == nil {
			b.noteResult(rec, err)
		}
		return o, err
	}
	select {
	case b.in <- p:
	case <-ctx.Done():
		b.mu.RUnlock()
		return 0, ctx.Err()
	}
	b.mu.RUnlock()
	select {
	case r := <-p.res:
		b.noteResult(rec, r.Err)
		return r.Outcome, r.Err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// Close stops accepting records and waits for the batches in flight to commit. Safe to call
// twice.
func (b *Batcher) Close() error {
	b.mu.Lock()
	if !b.closed {
		b.closed = true
		close(b.in)
	}
	b.mu.Unlock()
	<-b.done
	return nil
}

func (b *Batcher) loop() {
	defer close(b.done)
	var wg sync.WaitGroup
	defer wg.Wait()
	sem := make(chan struct{}, b.o.MaxConcurrent)
	timer := time.NewTimer(0)
	<-timer.C
	for first := range b.in {
		batch := []*pending{first}
		timer.Reset(b.o.MaxWait)
		open := true
	collect:
		for len(batch) < b.o.MaxRecords {
			select {
			case p, ok := <-b.in:
				if !ok {
					open = false
					break collect
				}
				batch = append(batch, p)
			case <-timer.C:
				break collect
			}
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			b.commit(batch)
		})
		if !open {
			return
		}
	}
}

// commit writes one batch. Its transaction is the span indexstore.batch, in the trace of the
// batch's first record and linked to every record's span, so the Firestore client's own spans
// (RunTransaction, Commit) sit under it.
func (b *Batcher) commit(batch []*pending) {
	ctx, cancel := context.WithTimeout(trace.ContextWithSpanContext(context.Background(), batch[0].span), b.o.Timeout)
	defer cancel()
	recs := make([]*record.Analysis, len(batch))
	links := make([]trace.Link, 0, len(batch))
	for i, p := range batch {
		recs[i] = p.rec
		if p.span.IsValid() {
			links = append(links, trace.Link{SpanContext: p.span})
		}
	}
	ctx, span := tracing.Tracer("imgpipe/pkg/indexstore").Start(ctx, "indexstore.batch", trace.WithLinks(links...),
		trace.WithAttributes(attribute.Int("imgpipe.batch_records", len(batch))))
	start := time.Now()
	results := b.s.ApplyBatch(ctx, recs)
	span.End() // before the callers go on: the batch is within their write spans
	if b.o.OnBatch != nil {
		b.o.OnBatch(len(batch), time.Since(start))
	}
	for i, p := range batch {
		p.res <- results[i]
	}
}
