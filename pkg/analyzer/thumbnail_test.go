package analyzer

import (
	"bytes"
	"context"
	"errors"
	"image/jpeg"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"imgpipe/pkg/failure"
	"imgpipe/pkg/objects"
	"imgpipe/pkg/objects/memobjects"
	"imgpipe/pkg/record"
	"imgpipe/pkg/s3event"
	"imgpipe/pkg/samples"
	"imgpipe/pkg/vision"
)

func thumbOptions() Options {
	o := coreOptions()
	o.ThumbnailPrefix = "thumbnail/"
	return o
}

// thumbAt reads the JPEG at key and returns its size; ok is false when there is none.
func (c *core) thumbAt(key string) (w, h int, ok bool) {
	c.t.Helper()
	head, err := c.store.ReadHead(context.Background(), objects.Ref{Bucket: bucket, Key: key}, 1<<20)
	if errors.Is(err, objects.ErrNotFound) {
		return 0, 0, false
	}
	if err != nil {
		c.t.Fatal(err)
	}
	cfg, err := jpeg.DecodeConfig(bytes.NewReader(head.Bytes))
	if err != nil {
		c.t.Fatalf("%s is no JPEG: %v", key, err)
	}
	return cfg.Width, cfg.Height, true
}

// TestCoreThumbnails: an analysed image gets a thumbnail under the prefix, cut to Vision's
// smart crop, its key in the record; the removal of the object removes it; an event about a
// key under the prefix is not analysed.
func TestCoreThumbnails(t *testing.T) {
	c := newCore(t)
	body, err := samples.Image(7, 1280, 720, "png")
	if err != nil {
		t.Fatal(err)
	}
	c.vision.result = &vision.Result{APIVersion: vision.V40, Width: 1280, Height: 720,
		SmartCrops: []vision.Crop{{AspectRatio: 1, Box: vision.Box{X: 500, Y: 0, W: 720, H: 720}}}}
	c.object("upload/big photo+1.png", body)
	c.object("thumbnail/upload/stray.png.jpg", body) // as if the notification covered the prefix
	c.start(thumbOptions(), nil)

	got := c.published(1)["upload/big photo+1.png"]
	if len(got) != 1 || !strings.HasPrefix(got[0].ThumbnailKey, "thumbnail/upload/big photo+1.png/") || got[0].ThumbnailKey != ThumbnailKey("thumbnail/", &got[0]) {
		t.Fatalf("records %+v, want one with its thumbnail's key", got)
	}
	key := got[0].ThumbnailKey
	if w, h, ok := c.thumbAt(key); !ok || w != 320 || h != 320 {
		t.Fatalf("thumbnail %dx%d (present %v), want the 320x320 of the square smart crop", w, h, ok)
	}
	c.waitEmpty()
	if n := len(c.pub.byKey()["thumbnail/upload/stray.png.jpg"]); n != 0 || c.vision.count() != 1 {
		t.Errorf("an event under the thumbnail prefix: %d records, %d Vision calls; want none and one", n, c.vision.count())
	}

	// Deleted: the thumbnail goes with it.
	c.store.Delete(bucket, "upload/big photo+1.png", "")
	c.event(s3event.NewRecord("ObjectRemoved:Delete", bucket, "upload/big photo+1.png", time.Now()))
	c.published(2)
	c.waitEmpty()
	if _, _, ok := c.thumbAt(key); ok {
		t.Error("thumbnail left after its object was deleted")
	}
	if n := testutil.ToFloat64(c.a.metrics.thumbnails.WithLabelValues("written")); n != 1 {
		t.Errorf("%v thumbnails written, want 1", n)
	}
	if n := testutil.ToFloat64(c.a.metrics.thumbnails.WithLabelValues("removed")); n != 1 {
		t.Errorf("%v thumbnails removed, want 1", n)
	}
}

// TestCoreThumbnailKeptForAnObjectBack: a removal processed after the key was written again
// leaves the thumbnail, which the new object's own event owns.
func TestCoreThumbnailKeptForAnObjectBack(t *testing.T) {
	c := newCore(t)
	c.image("upload/a.png", 1)
	c.start(thumbOptions(), nil)
	key := c.published(1)["upload/a.png"][0].ThumbnailKey
	c.waitEmpty()
	c.event(s3event.NewRecord("ObjectRemoved:Delete", bucket, "upload/a.png", time.Now())) // the object is still there
	c.published(2)
	c.waitEmpty()
	if _, _, ok := c.thumbAt(key); key == "" || !ok {
		t.Error("thumbnail removed though its key holds an object")
	}
}

// TestCoreThumbnailFailures: a store that fails the thumbnail's write or its read transiently
// publishes the record without one (counted as failed) rather than retrying the message, which
// would call Vision again; one that refuses the write for good lets the record go without a
// thumbnail too; an image with more pixels than allowed gets none.
func TestCoreThumbnailFailures(t *testing.T) {
	c := newCore(t)
	c.store.SetFault(func(ctx context.Context, op memobjects.Op, ref objects.Ref) error {
		switch {
		case op == memobjects.Write && strings.Contains(ref.Key, "refused"):
			return failure.Permanentf("InvalidArgument", "refused")
		case op == memobjects.Write && strings.Contains(ref.Key, "flaky"):
			return failure.Transientf("InternalError", "try again")
		}
		return nil
	})
	c.image("upload/flaky.png", 1)
	c.image("upload/refused.png", 2)
	o := thumbOptions()
	o.ThumbnailMaxPixels = 80 * 60
	c.start(o, nil)
	got := c.published(2)
	c.waitEmpty()
	for _, k := range []string{"upload/flaky.png", "upload/refused.png"} {
		if r := got[k]; len(r) != 1 || r[0].ThumbnailKey != "" {
			t.Errorf("%s: %+v, want one record without a thumbnail", k, r)
		}
	}
	if s := snap(c.a); s.Retried != 0 || s.DeadLettered != 0 || c.vision.count() != 2 {
		t.Errorf("counters %+v, %d Vision calls; want no retry, no dead letter, one call an image", s, c.vision.count())
	}
	if n := testutil.ToFloat64(c.a.metrics.thumbnails.WithLabelValues("failed")); n != 1 {
		t.Errorf("%v thumbnails failed, want 1", n)
	}
	if n := testutil.ToFloat64(c.a.metrics.thumbnails.WithLabelValues("refused")); n != 1 {
		t.Errorf("%v thumbnails refused, want 1", n)
	}

	// One pixel more than the bound.
	big, err := samples.Image(3, 81, 60, "png")
	if err != nil {
		t.Fatal(err)
	}
	c.object("upload/big.png", big)
	if r := c.published(3)["upload/big.png"]; len(r) != 1 || r[0].ThumbnailKey != "" {
		t.Errorf("big: %+v, want one record without a thumbnail", r)
	}
	if n := testutil.ToFloat64(c.a.metrics.thumbnails.WithLabelValues("too_large")); n != 1 {
		t.Errorf("%v too large, want 1", n)
	}
}

// TestCoreThumbnailReadFailure: an image larger than the first read, whose second read for
// the thumbnail fails transiently, is published without a thumbnail (failed), with one Vision
// call and no retry.
func TestCoreThumbnailReadFailure(t *testing.T) {
	c := newCore(t)
	body, err := samples.Image(7, 2400, 1600, "png")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	opens := 0
	c.store.SetFault(func(ctx context.Context, op memobjects.Op, ref objects.Ref) error {
		if op != memobjects.Open {
			return nil
		}
		mu.Lock()
		defer mu.Unlock()
		if opens++; opens > 1 { // the first is Vision's
			return failure.Transientf("InternalError", "try again")
		}
		return nil
	})
	c.object("upload/unread.png", body)
	c.start(thumbOptions(), nil)
	got := c.published(1)["upload/unread.png"]
	c.waitEmpty()
	if len(got) != 1 || got[0].ThumbnailKey != "" {
		t.Errorf("records %+v, want one without a thumbnail", got)
	}
	mu.Lock()
	n := opens
	mu.Unlock()
	if s := snap(c.a); s.Retried != 0 || c.vision.count() != 1 || n != 2 {
		t.Errorf("counters %+v, %d Vision calls, %d opens; want no retry, one call, two opens", s, c.vision.count(), n)
	}
	if n := testutil.ToFloat64(c.a.metrics.thumbnails.WithLabelValues("failed")); n != 1 {
		t.Errorf("%v thumbnails failed, want 1", n)
	}
}

// TestThumbnailKey: a thumbnail's key is its key's folder and the event's sequencer, time and
// version (or ETag), the characters of the version S3 may not like replaced; a key too long
// for its folder gets one named by its document ID; a name reads back as the event's position,
// and what is not a thumbnail's name does not.
func TestThumbnailKey(t *testing.T) {
	at := time.UnixMilli(1764590400123).UTC()
	rec := &record.Analysis{Bucket: "b", Key: "upload/a b.jpg", Sequencer: "0000000000000000A1", EventTime: at, VersionID: "v1/x", ETag: "e"}
	if k := ThumbnailKey("thumbnail/", rec); k != "thumbnail/upload/a b.jpg/0000000000000000A1-1764590400123-v1_x.jpg" {
		t.Errorf("key %q", k)
	}
	rec.VersionID = ""
	if k := ThumbnailKey("thumbnail/", rec); k != "thumbnail/upload/a b.jpg/0000000000000000A1-1764590400123-e.jpg" {
		t.Errorf("unversioned key %q", k)
	}
	long := "upload/" + strings.Repeat("x", 1010)
	rec.Key, rec.VersionID = long, strings.Repeat("v", 2000)
	k := ThumbnailKey("thumbnail/", rec)
	if !strings.HasPrefix(k, "thumbnail/long/"+record.DocumentID("b", long)+"/0000000000000000A1-") || len(k) > 1024 {
		t.Errorf("long key %q (%d bytes)", k, len(k))
	}
	for name, want := range map[string]bool{
		"0000000000000000A1-1764590400123-e.jpg": true, "-1764590400123-e.jpg": true,
		"0000000000000000A1-1764590400123-e-f.jpg": true, "x1-1764590400123-e.jpg": false,
		"0000000000000000A1-1764590400123.jpg": false, "A1-17-e/x-1-e.jpg": false, "A1-17-e.png": false, "A1--1-e.jpg": false,
	} {
		pos, ok := thumbnailPosition(name)
		if ok != want || ok && !pos.EventTime.Equal(at) && name != "A1--1-e.jpg" {
			t.Errorf("thumbnailPosition(%q) = %+v, %v; want ok %v at %v", name, pos, ok, want, at)
		}
	}
}

// TestCoreThumbnailsOfTwoVersions: two versions of one key whose events finish in the wrong
// order (the older one late, as a retry) leave the newer version's thumbnail in place, the
// late record pointing at none; in the right order the newer one replaces the older, which
// is removed; the key's removal removes what is left.
func TestCoreThumbnailsOfTwoVersions(t *testing.T) {
	c := newCore(t)
	c.store.SetVersioning(bucket, true)
	const key = "upload/two.png"
	body := func(seed int64, w, h int) []byte {
		b, err := samples.Image(seed, w, h, "png")
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	thumbs := func() []string {
		ks, err := c.store.List(context.Background(), bucket, ThumbnailDir("thumbnail/", bucket, key))
		if err != nil {
			t.Fatal(err)
		}
		return ks
	}
	c.start(thumbOptions(), nil)

	// v1 (landscape) and v2 (portrait) are put; v2's event is handled first, v1's after.
	version1, etag1 := c.store.Put(bucket, key, body(1, 640, 480))
	v1 := s3event.NewRecord("ObjectCreated:Put", bucket, key, time.Now())
	v1.VersionID, v1.ETag, v1.Sequencer = version1, etag1, "0000000000000000A1"
	v2 := c.putEvent(key, body(2, 480, 640), "0000000000000000A2")
	new := c.published(1)[key][0]
	c.waitEmpty()
	c.event(v1)
	late := c.published(2)[key][1]
	c.waitEmpty()
	if new.VersionID != v2.VersionID || late.VersionID != v1.VersionID || late.ThumbnailKey != "" || new.ThumbnailKey == "" {
		t.Fatalf("records %+v then %+v: want v2's with a thumbnail, then v1's without", new, late)
	}
	if w, h, ok := c.thumbAt(new.ThumbnailKey); !ok || w != 240 || h != 320 {
		t.Fatalf("v2's thumbnail %dx%d (present %v), want v2's 240x320", w, h, ok)
	}
	if ks := thumbs(); len(ks) != 1 || ks[0] != new.ThumbnailKey {
		t.Errorf("thumbnails %q, want only v2's", ks)
	}

	// v3 in the right order: it replaces v2's, which goes.
	c.putEvent(key, body(3, 640, 320), "0000000000000000A3")
	v3 := c.published(3)[key][2]
	c.waitEmpty()
	if w, h, ok := c.thumbAt(v3.ThumbnailKey); !ok || w != 320 || h != 160 {
		t.Fatalf("v3's thumbnail %dx%d (present %v), want 320x160", w, h, ok)
	}
	if ks := thumbs(); len(ks) != 1 || ks[0] != v3.ThumbnailKey {
		t.Errorf("thumbnails %q, want only v3's", ks)
	}

	// Removed: the key's thumbnails go.
	marker := c.store.Delete(bucket, key, "")
	del := s3event.NewRecord("ObjectRemoved:DeleteMarkerCreated", bucket, key, time.Now())
	del.VersionID, del.Sequencer = marker, "0000000000000000A4"
	c.event(del)
	c.published(4)
	c.waitEmpty()
	if ks := thumbs(); len(ks) != 0 {
		t.Errorf("thumbnails %q left after the key's removal", ks)
	}
}

// TestCoreThumbnailKeptUntilTheNewerIsPublished: while v2's record fails to publish, v1's
// thumbnail (the one the index points at) stays readable; once v2 is published, only v2's
// remains.
func TestCoreThumbnailKeptUntilTheNewerIsPublished(t *testing.T) {
	c := newCore(t)
	c.store.SetVersioning(bucket, true)
	const key = "upload/kept.png"
	b1, err := samples.Image(1, 640, 480, "png")
	if err != nil {
		t.Fatal(err)
	}
	b2, err := samples.Image(2, 480, 640, "png")
	if err != nil {
		t.Fatal(err)
	}
	c.start(thumbOptions(), nil)
	c.putEvent(key, b1, "0000000000000000A1")
	v1 := c.published(1)[key][0]
	c.waitEmpty()
	if _, _, ok := c.thumbAt(v1.ThumbnailKey); !ok {
		t.Fatalf("v1's thumbnail %q is not there", v1.ThumbnailKey)
	}

	// v2's first two publishes fail; each notes whether v1's thumbnail was still there.
	var mu sync.Mutex
	var seen []bool
	c.pub.mu.Lock()
	c.pub.fail = func(ctx context.Context, rec *record.Analysis) error {
		mu.Lock()
		defer mu.Unlock()
		if len(seen) == 2 {
			return nil
		}
		_, _, ok := c.thumbAt(v1.ThumbnailKey)
		seen = append(seen, ok)
		return failure.Transientf("Unavailable", "pubsub down")
	}
	c.pub.mu.Unlock()
	c.putEvent(key, b2, "0000000000000000A2")
	v2 := c.published(2)[key][1]
	c.waitEmpty()
	mu.Lock()
	if len(seen) != 2 || !seen[0] || !seen[1] {
		t.Errorf("v1's thumbnail present at v2's failed publishes: %v, want [true true]", seen)
	}
	mu.Unlock()
	if v2.ThumbnailKey == "" || v2.ThumbnailKey == v1.ThumbnailKey {
		t.Fatalf("v2's record has thumbnail %q (v1's %q)", v2.ThumbnailKey, v1.ThumbnailKey)
	}
	ks, err := c.store.List(context.Background(), bucket, ThumbnailDir("thumbnail/", bucket, key))
	if err != nil {
		t.Fatal(err)
	}
	if len(ks) != 1 || ks[0] != v2.ThumbnailKey {
		t.Errorf("thumbnails %q after v2 is published, want only v2's %q", ks, v2.ThumbnailKey)
	}
}
