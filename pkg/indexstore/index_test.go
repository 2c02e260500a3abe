package indexstore_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/firestore"

	"imgpipe/internal/devstack"
	"imgpipe/internal/stacktest"
	"imgpipe/pkg/indexstore"
	"imgpipe/pkg/record"
	"imgpipe/pkg/s3event"
)

func TestMain(m *testing.M) { stacktest.Main(m, devstack.Firestore) }

// newClient returns a Firestore client on the shared emulator, closed when the test ends.
func newClient(t testing.TB) *firestore.Client {
	t.Helper()
	st := stacktest.Get(t)
	c, err := firestore.NewClient(context.Background(), st.ProjectID)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// applier is one way of applying a record: one transaction per record, or through a Batcher.
type applier func(ctx context.Context, rec *record.Analysis) (indexstore.Outcome, error)

// modes runs f once per way of applying records, each on a fresh collection.
func modes(t *testing.T, f func(t *testing.T, s *indexstore.Store, apply applier)) {
	t.Run("single", func(t *testing.T) {
		s := indexstore.New(newClient(t), stacktest.Unique("images"), nil)
		f(t, s, s.Apply)
	})
	t.Run("batched", func(t *testing.T) {
		s := indexstore.New(newClient(t), stacktest.Unique("images"), nil)
		b := s.NewBatcher(&indexstore.BatchOptions{MaxRecords: 50, MaxWait: 5 * time.Millisecond})
		t.Cleanup(func() { b.Close() })
		f(t, s, b.Apply)
	})
}

func rec(event record.Event, key string, seq uint64, tags ...string) *record.Analysis {
	r := &record.Analysis{
		SchemaVersion: record.SchemaVersion, Event: event, Bucket: "images", Key: key,
		Sequencer: s3event.FormatSequencer(seq),
		EventTime: time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC).Add(time.Duration(seq) * time.Millisecond),
	}
	if event == record.Created {
		r.Size, r.Width, r.Height = int64(seq), 640, 480
		r.Caption = fmt.Sprintf("version %d", seq)
		r.AnalyzedAt = time.Date(2026, 11, 22, 11, 0, 0, 0, time.UTC).Add(time.Duration(seq) * time.Second)
		for _, tg := range tags {
			r.Tags = append(r.Tags, record.Tag{Name: tg, Confidence: 0.9})
		}
	}
	return r
}

func mustApply(t *testing.T, apply applier, r *record.Analysis, want indexstore.Outcome) {
	t.Helper()
	got, err := apply(context.Background(), r)
	if err != nil {
		t.Fatalf("apply %s %s seq %s: %v", r.Event, r.Key, r.Sequencer, err)
	}
	if got != want {
		t.Fatalf("apply %s %s seq %s: outcome %s, want %s", r.Event, r.Key, r.Sequencer, got, want)
	}
}

// wantDoc checks that key's document holds version seq (0: no document).
func wantDoc(t *testing.T, s *indexstore.Store, key string, seq uint64) {
	t.Helper()
	d, err := s.Get(context.Background(), "images", key)
	if seq == 0 {
		if err == nil {
			t.Fatalf("%q: want no document, got version %s", key, d.Sequencer)
		}
		if !strings.Contains(err.Error(), indexstore.ErrNotFound.Error()) {
			t.Fatalf("%q: %v", key, err)
		}
		return
	}
	if err != nil {
		t.Fatalf("%q: %v", key, err)
	}
	if d.Sequencer != s3event.FormatSequencer(seq) || d.Caption != fmt.Sprintf("version %d", seq) || d.Key != key || d.Bucket != "images" {
		t.Fatalf("%q: document holds %s %q (key %q), want version %d", key, d.Sequencer, d.Caption, d.Key, seq)
	}
}

func TestDuplicatesWriteOnce(t *testing.T) {
	modes(t, func(t *testing.T, s *indexstore.Store, apply applier) {
		mustApply(t, apply, rec(record.Created, "upload/a.jpg", 5), indexstore.Written)
		for range 3 {
			mustApply(t, apply, rec(record.Created, "upload/a.jpg", 5), indexstore.Stale)
		}
		wantDoc(t, s, "upload/a.jpg", 5)
		docs, err := s.List(context.Background(), "images", 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(docs) != 1 {
			t.Fatalf("%d documents, want 1", len(docs))
		}
	})
}

func TestOlderAfterNewerChangesNothing(t *testing.T) {
	modes(t, func(t *testing.T, s *indexstore.Store, apply applier) {
		mustApply(t, apply, rec(record.Created, "k", 9), indexstore.Written)
		mustApply(t, apply, rec(record.Created, "k", 3), indexstore.Stale)
		mustApply(t, apply, rec(record.Removed, "k", 4), indexstore.Stale)
		wantDoc(t, s, "k", 9)
		mustApply(t, apply, rec(record.Created, "k", 12), indexstore.Written)
		wantDoc(t, s, "k", 12)
	})
}

func TestDeleteThenLateCreate(t *testing.T) {
	modes(t, func(t *testing.T, s *indexstore.Store, apply applier) {
		mustApply(t, apply, rec(record.Created, "k", 1), indexstore.Written)
		mustApply(t, apply, rec(record.Removed, "k", 7), indexstore.Deleted)
		wantDoc(t, s, "k", 0)
		// The late, older create must not resurrect the object.
		mustApply(t, apply, rec(record.Created, "k", 5), indexstore.Stale)
		wantDoc(t, s, "k", 0)
		// A removal with no document before it still leaves a tombstone.
		mustApply(t, apply, rec(record.Removed, "never-created", 7), indexstore.Deleted)
		mustApply(t, apply, rec(record.Created, "never-created", 6), indexstore.Stale)
		wantDoc(t, s, "never-created", 0)
		// A newer create after the removal brings it back.
		mustApply(t, apply, rec(record.Created, "k", 8), indexstore.Written)
		wantDoc(t, s, "k", 8)
		mustApply(t, apply, rec(record.Removed, "k", 7), indexstore.Stale)
		wantDoc(t, s, "k", 8)
	})
}

func TestTombstoneKept(t *testing.T) {
	c := newClient(t)
	coll := stacktest.Unique("images")
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	s := indexstore.New(c, coll, &indexstore.Options{TombstoneTTL: time.Hour, Now: func() time.Time { return now }})
	mustApply(t, s.Apply, rec(record.Removed, "gone.jpg", 7), indexstore.Deleted)
	snap, err := c.Collection(coll + "-tombstones").Doc(record.DocumentID("images", "gone.jpg")).Get(context.Background())
	if err != nil {
		t.Fatalf("tombstone: %v", err)
	}
	d := snap.Data()
	if d["key"] != "gone.jpg" || d["sequencer"] != s3event.FormatSequencer(7) || !d["expireAt"].(time.Time).Equal(now.Add(time.Hour)) {
		t.Fatalf("tombstone holds %v", d)
	}
	// A newer create removes the tombstone: the document carries the position now.
	mustApply(t, s.Apply, rec(record.Created, "gone.jpg", 8), indexstore.Written)
	if _, err := snap.Ref.Get(context.Background()); err == nil {
		t.Fatal("tombstone kept after a newer create")
	}
}

func TestKeyShapes(t *testing.T) {
	keys := []string{
		"plain.jpg", "upload/a/b/c.jpg", ".", "..", "/", "//", "a/../b", "__name__", "ünïcødé/日本語.png",
		"with space+plus&amp=eq.jpg", strings.Repeat("k", 1000), strings.Repeat("é", 500), "upload/.hidden",
	}
	modes(t, func(t *testing.T, s *indexstore.Store, apply applier) {
		for i, k := range keys {
			mustApply(t, apply, rec(record.Created, k, uint64(i+1)), indexstore.Written)
		}
		for i, k := range keys {
			wantDoc(t, s, k, uint64(i+1))
		}
		docs, err := s.List(context.Background(), "images", 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(docs) != len(keys) {
			t.Fatalf("%d documents, want %d", len(docs), len(keys))
		}
		for i := 1; i < len(docs); i++ {
			if docs[i-1].Key >= docs[i].Key {
				t.Fatalf("List not in key order: %q before %q", docs[i-1].Key, docs[i].Key)
			}
		}
	})
}

func TestInvalidRecordRejected(t *testing.T) {
	modes(t, func(t *testing.T, s *indexstore.Store, apply applier) {
		bad := rec(record.Created, "k", 1)
		bad.Sequencer = "not-hex"
		if _, err := apply(context.Background(), bad); err == nil {
			t.Fatal("want an error for a non-hex sequencer")
		}
		noKey := rec(record.Created, "", 1)
		if _, err := apply(context.Background(), noKey); err == nil {
			t.Fatal("want an error for a record without a key")
		}
		wantDoc(t, s, "k", 0)
	})
}

// TestRacingIndexers applies many interleaved versions of a few keys from two stores on
// separate clients, concurrently and in shuffled order, and checks that each key ends in its
// newest state.
func TestRacingIndexers(t *testing.T) {
	coll := stacktest.Unique("images")
	const keys, versions = 3, 40
	type store struct {
		s     *indexstore.Store
		apply applier
	}
	var stores []store
	for i := range 2 {
		s := indexstore.New(newClient(t), coll, nil)
		if i == 0 {
			stores = append(stores, store{s, s.Apply})
			continue
		}
		b := s.NewBatcher(&indexstore.BatchOptions{MaxRecords: 8, MaxWait: 2 * time.Millisecond})
		t.Cleanup(func() { b.Close() })
		stores = append(stores, store{s, b.Apply})
	}
	var work []*record.Analysis
	for v := 1; v <= versions; v++ {
		for k := range keys {
			ev := record.Created
			if v%7 == 0 {
				ev = record.Removed
			}
			work = append(work, rec(ev, fmt.Sprintf("race/%d.jpg", k), uint64(v)))
		}
	}
	// Each store gets every record (a duplicate delivery to each indexer), in a different
	// interleaving: one forwards, one backwards, with 8 workers each.
	var wg sync.WaitGroup
	errs := make(chan error, 2*len(work))
	for i, st := range stores {
		order := make(chan *record.Analysis, len(work))
		for j := range work {
			if i == 0 {
				order <- work[j]
			} else {
				order <- work[len(work)-1-j]
			}
		}
		close(order)
		for range 8 {
			wg.Go(func() {
				for r := range order {
					if _, err := st.apply(context.Background(), r); err != nil {
						errs <- err
					}
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("apply: %v", err)
	}
	for k := range keys {
		wantDoc(t, stores[0].s, fmt.Sprintf("race/%d.jpg", k), versions)
	}
}

func TestSearchTagAndGet(t *testing.T) {
	s := indexstore.New(newClient(t), stacktest.Unique("images"), nil)
	ctx := context.Background()
	mustApply(t, s.Apply, rec(record.Created, "a.jpg", 1, "cat", "sofa"), indexstore.Written)
	mustApply(t, s.Apply, rec(record.Created, "b.jpg", 3, "cat"), indexstore.Written)
	mustApply(t, s.Apply, rec(record.Created, "c.jpg", 2, "dog", "cat"), indexstore.Written)
	mustApply(t, s.Apply, rec(record.Created, "d.jpg", 4, "dog"), indexstore.Written)
	mustApply(t, s.Apply, rec(record.Created, "e.jpg", 5, "cat"), indexstore.Written)
	mustApply(t, s.Apply, rec(record.Removed, "e.jpg", 6), indexstore.Deleted)

	tests := []struct {
		tag   string
		limit int
		want  []string
	}{
		{"cat", 10, []string{"b.jpg", "c.jpg", "a.jpg"}},
		{"cat", 2, []string{"b.jpg", "c.jpg"}},
		{"dog", 10, []string{"d.jpg", "c.jpg"}},
		{"sofa", 10, []string{"a.jpg"}},
		{"bird", 10, nil},
	}
	for _, tt := range tests {
		docs, err := s.SearchTag(ctx, tt.tag, tt.limit)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, d := range docs {
			got = append(got, d.Key)
		}
		if strings.Join(got, ",") != strings.Join(tt.want, ",") {
			t.Errorf("SearchTag(%q, %d) = %v, want %v", tt.tag, tt.limit, got, tt.want)
		}
	}
	d, err := s.Get(ctx, "images", "c.jpg")
	if err != nil {
		t.Fatal(err)
	}
	if d.Width != 640 || len(d.Tags) != 2 || d.Tags[0].Name != "dog" || d.IndexedAt.IsZero() || strings.Join(d.TagNames, ",") != "dog,cat" {
		t.Fatalf("Get: %+v", d)
	}
	if _, err := s.Get(ctx, "other-bucket", "c.jpg"); err == nil {
		t.Fatal("Get in another bucket found a document")
	}
	docs, err := s.List(ctx, "images", 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) != 2 || docs[0].Key != "a.jpg" || docs[1].Key != "b.jpg" {
		t.Fatalf("List limit 2: %v", docs)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

// TestApplyBatch checks the reduction of one batch: per object only the newest record is
// written, the others are Stale; a bad record and an object with a corrupt stored document
// fail alone.
func TestApplyBatch(t *testing.T) {
	c := newClient(t)
	coll := stacktest.Unique("images")
	s := indexstore.New(c, coll, nil)
	ctx := context.Background()
	mustApply(t, s.Apply, rec(record.Created, "held-newer", 10), indexstore.Written)
	// A document whose stored sequencer is not hex cannot be compared with anything.
	if _, err := c.Collection(coll).Doc(record.DocumentID("images", "corrupt")).Set(ctx, map[string]any{"sequencer": "zz", "key": "corrupt", "bucket": "images"}); err != nil {
		t.Fatal(err)
	}
	bad := rec(record.Created, "bad", 1)
	bad.Sequencer = "xyz"
	recs := []*record.Analysis{
		rec(record.Created, "a", 3),
		rec(record.Created, "a", 5),
		rec(record.Removed, "a", 4),
		rec(record.Created, "a", 5),
		bad,
		rec(record.Created, "b", 1),
		rec(record.Created, "held-newer", 9),
		rec(record.Created, "corrupt", 2),
		rec(record.Removed, "c", 2),
		rec(record.Created, "c", 1),
	}
	want := []struct {
		outcome indexstore.Outcome
		fails   bool
	}{
		{indexstore.Stale, false}, {indexstore.Written, false}, {indexstore.Stale, false}, {indexstore.Stale, false},
		{0, true}, {indexstore.Written, false}, {indexstore.Stale, false}, {0, true}, {indexstore.Deleted, false}, {indexstore.Stale, false},
	}
	got := s.ApplyBatch(ctx, recs)
	for i, w := range want {
		if (got[i].Err != nil) != w.fails || (!w.fails && got[i].Outcome != w.outcome) {
			t.Errorf("record %d (%s %s %s): got %s, %v; want %s, fails %v", i, recs[i].Event, recs[i].Key, recs[i].Sequencer, got[i].Outcome, got[i].Err, w.outcome, w.fails)
		}
	}
	wantDoc(t, s, "a", 5)
	wantDoc(t, s, "b", 1)
	wantDoc(t, s, "held-newer", 10)
	wantDoc(t, s, "c", 0)
}
