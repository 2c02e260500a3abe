// Package indexstore keeps the Firestore index of analysed objects: one document per live object,
// written so that duplicates and out-of-order events cannot regress it.
//
// Each live object has a document in the collection, with the ID record.DocumentID(bucket,
// key). A removal deletes that document and leaves a tombstone in the sibling collection
// "<collection>-tombstones" with the removal's S3 sequencer, so that a late, older "created"
// event cannot resurrect the object. Every write runs in a transaction that reads both
// documents first, so two indexers racing on one key end in the newest state. ApplyBatch and
// Batcher apply many records in one transaction under the same guard.
package indexstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"cloud.google.com/go/firestore"
	"google.golang.org/api/iterator"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"imgpipe/pkg/failure"
	"imgpipe/pkg/failure/grpcerr"
	"imgpipe/pkg/record"
	"imgpipe/pkg/s3event"
)

// Document is what the index stores for one live object.
type Document struct {
	record.Analysis
	// TagNames repeats the tag names for array-contains queries.
	TagNames  []string  `firestore:"tagNames,omitempty" json:"-"`
	IndexedAt time.Time `firestore:"indexedAt" json:"indexedAt"`
}

// tombstone records a removal so that older events for the key are recognised as stale.
type tombstone struct {
	Bucket    string    `firestore:"bucket"`
	Key       string    `firestore:"key"`
	Sequencer string    `firestore:"sequencer,omitempty"`
	EventTime time.Time `firestore:"eventTime"`
	DeletedAt time.Time `firestore:"deletedAt"`
	// ExpireAt is for a Firestore TTL policy that prunes old tombstones (see deploy/).
	ExpireAt time.Time `firestore:"expireAt"`
}

// Outcome says what Apply did.
type Outcome int

const (
	Written Outcome = iota // a created event was stored
	Deleted                // a removed event deleted the document (and left a tombstone)
	Stale                  // the event is not newer than what the index holds: nothing changed
)

func (o Outcome) String() string {
	return [...]string{"written", "deleted", "stale"}[o]
}

// Store is the index over one Firestore collection.
type Store struct {
	client     *firestore.Client
	docs       *firestore.CollectionRef
	tombstones *firestore.CollectionRef
	ttl        time.Duration
	now        func() time.Time
	locks      keyLocks
	// onRead, set by tests, runs inside each transaction between its read and its writes.
	onRead func()
}

func (s *Store) inTransaction() {
	if s.onRead != nil {
		s.onRead()
	}
}

// Options tunes the store. A nil *Options takes the defaults.
type Options struct {
	// TombstoneTTL is how long a tombstone must be kept at least (its expireAt). An event older
	// than a pruned tombstone could resurrect an object, so keep it longer than the queues can
	// hold a message (SQS 14 days, Pub/Sub 7 days). Default 30 days.
	TombstoneTTL time.Duration
	// Now replaces the clock, for tests.
	Now func() time.Time
}

// New returns a store over collection.
func New(client *firestore.Client, collection string, opts *Options) *Store {
	s := &Store{
		client:     client,
		docs:       client.Collection(collection),
		tombstones: client.Collection(collection + "-tombstones"),
		ttl:        30 * 24 * time.Hour,
		now:        time.Now,
	}
	if opts != nil {
		if opts.TombstoneTTL > 0 {
			s.ttl = opts.TombstoneTTL
		}
		if opts.Now != nil {
			s.now = opts.Now
		}
	}
	return s
}

// Apply writes rec if it is newer than what the index holds for its object, inside a
// transaction. A stale event returns Stale and no error: the caller acknowledges it.
func (s *Store) Apply(ctx context.Context, rec *record.Analysis) (Outcome, error) {
	if err := check(rec); err != nil {
		return 0, err
	}
	id := record.DocumentID(rec.Bucket, rec.Key)
	docRef, tombRef := s.docs.Doc(id), s.tombstones.Doc(id)
	defer s.locks.lock(id)()
	var outcome Outcome
	err := s.client.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		snaps, err := tx.GetAll([]*firestore.DocumentRef{docRef, tombRef})
		if err != nil {
			return err
		}
		s.inTransaction()
		outcome, err = s.decide(tx, rec, snaps[0], snaps[1], s.now().UTC())
		return err
	})
	if err != nil {
		return 0, classifyWrite(fmt.Errorf("index %s/%s: %w", rec.Bucket, rec.Key, err))
	}
	return outcome, nil
}

// check validates rec, including its sequencer, so that comparisons on it cannot fail later.
func check(rec *record.Analysis) error {
	if err := rec.Validate(); err != nil {
		return err
	}
	if rec.Sequencer != "" {
		if _, err := s3event.CompareSequencer(rec.Sequencer, rec.Sequencer); err != nil {
			return fmt.Errorf("%s/%s: %w", rec.Bucket, rec.Key, err)
		}
	}
	return nil
}

func position(rec *record.Analysis) s3event.Position {
	return s3event.Position{Sequencer: rec.Sequencer, EventTime: rec.EventTime}
}

// decide compares rec with the object's document and tombstone as the transaction read them,
// and stages the writes that make the index hold rec when it is newer than both.
func (s *Store) decide(tx *firestore.Transaction, rec *record.Analysis, doc, tomb *firestore.DocumentSnapshot, now time.Time) (Outcome, error) {
	for _, snap := range []*firestore.DocumentSnapshot{doc, tomb} {
		if !snap.Exists() {
			continue
		}
		var held struct {
			Sequencer string    `firestore:"sequencer"`
			EventTime time.Time `firestore:"eventTime"`
		}
		if err := snap.DataTo(&held); err != nil {
			return 0, failure.New(failure.Permanent, "CorruptIndexDocument", fmt.Errorf("read %s: %w", snap.Ref.Path, err))
		}
		newer, err := s3event.IsNewer(position(rec), s3event.Position{Sequencer: held.Sequencer, EventTime: held.EventTime})
		if err != nil {
			return 0, failure.New(failure.Permanent, "CorruptIndexDocument", fmt.Errorf("read %s: %w", snap.Ref.Path, err))
		}
		if !newer {
			return Stale, nil
		}
	}
	if rec.Event == record.Removed {
		if err := tx.Delete(doc.Ref); err != nil {
			return 0, err
		}
		return Deleted, tx.Set(tomb.Ref, tombstone{
			Bucket: rec.Bucket, Key: rec.Key, Sequencer: rec.Sequencer, EventTime: rec.EventTime,
			DeletedAt: now, ExpireAt: now.Add(s.ttl),
		})
	}
	d := Document{Analysis: *rec, IndexedAt: now}
	for _, t := range rec.Tags {
		d.TagNames = append(d.TagNames, t.Name)
	}
	if err := tx.Set(doc.Ref, d); err != nil {
		return 0, err
	}
	// The document now carries the newest position; the tombstone has done its work.
	return Written, tx.Delete(tomb.Ref)
}

// Ping checks cheaply that Firestore answers: one read of a document that does not exist.
func (s *Store) Ping(ctx context.Context) error {
	_, err := s.tombstones.Doc("readyz-probe").Get(ctx)
	if err == nil || status.Code(err) == codes.NotFound {
		return nil
	}
	return classify(fmt.Errorf("ping firestore: %w", err))
}

// ErrNotFound is returned by Get for an object the index does not hold.
var ErrNotFound = errors.New("not in the index")

// Get returns the document of one object.
func (s *Store) Get(ctx context.Context, bucket, key string) (*Document, error) {
	snap, err := s.docs.Doc(record.DocumentID(bucket, key)).Get(ctx)
	if status.Code(err) == codes.NotFound {
		return nil, fmt.Errorf("%s/%s: %w", bucket, key, ErrNotFound)
	}
	if err != nil {
		return nil, classify(fmt.Errorf("get %s/%s: %w", bucket, key, err))
	}
	var d Document
	if err := snap.DataTo(&d); err != nil {
		return nil, fmt.Errorf("decode %s/%s: %w", bucket, key, err)
	}
	return &d, nil
}

// SearchTag returns up to limit documents carrying tag, newest analysis first (the first page
// of Newest). It needs the composite index declared in deploy/firestore/firestore.indexes.json.
func (s *Store) SearchTag(ctx context.Context, tag string, limit int) ([]Document, error) {
	p, err := s.Newest(ctx, limit, &PageOptions{Tag: tag})
	if err != nil {
		return nil, err
	}
	return p.Documents, nil
}

// List returns up to limit documents of a bucket, in key order. It needs the composite index
// (bucket, key) declared in deploy/firestore/firestore.indexes.json.
func (s *Store) List(ctx context.Context, bucket string, limit int) ([]Document, error) {
	q := s.docs.Where("bucket", "==", bucket).OrderBy("key", firestore.Asc).Limit(limit)
	return s.collect(ctx, q)
}

func (s *Store) collect(ctx context.Context, q firestore.Query) ([]Document, error) {
	docs, _, err := s.collectIDs(ctx, q)
	return docs, err
}

// collectIDs runs q and returns its documents and their IDs.
func (s *Store) collectIDs(ctx context.Context, q firestore.Query) ([]Document, []string, error) {
	it := q.Documents(ctx)
	defer it.Stop()
	var out []Document
	var ids []string
	for {
		snap, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return out, ids, nil
		}
		if err != nil {
			return nil, nil, classify(fmt.Errorf("query: %w", err))
		}
		var d Document
		if err := snap.DataTo(&d); err != nil {
			return nil, nil, fmt.Errorf("decode %s: %w", snap.Ref.ID, err)
		}
		out = append(out, d)
		ids = append(ids, snap.Ref.ID)
	}
}

// ReasonRejected is the reason of a write Firestore refused as invalid (InvalidArgument,
// OutOfRange). A write is classed transient, unlike grpcerr's verdict on the code: Firestore
// refuses a valid write this way when its transaction expired or was invalidated ("The
// referenced transaction has expired or is no longer valid" under load; "Transaction is
// invalid or closed" after a restart of the emulator), which a new transaction mends. A write
// Firestore can never take (a value over 1 MiB) is refused again in every new transaction; the
// indexer dead-letters a record whose writes are refused throughout its retries.
const ReasonRejected = "FirestoreRejected"

// classifyWrite classifies the error of a write (Apply, ApplyBatch): see ReasonRejected.
// Anything else goes by the Google table.
func classifyWrite(err error) error {
	if !failure.Settled(err) {
		switch status.Code(err) {
		case codes.InvalidArgument, codes.OutOfRange:
			return failure.New(failure.Transient, ReasonRejected, err)
		}
	}
	return classify(err)
}

// classify keeps errors already classified and sorts gRPC codes with the Google table
// (grpcerr).
func classify(err error) error { return grpcerr.Classify(err) }
