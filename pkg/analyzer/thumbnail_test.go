package analyzer

import (
	"bytes"
	"context"
	"errors"
	"image/jpeg"
	"strings"
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
	const key = "thumbnail/upload/big photo+1.png.jpg"
	if len(got) != 1 || got[0].ThumbnailKey != key {
		t.Fatalf("records %+v, want one with thumbnail key %q", got, key)
	}
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
	c.published(1)
	c.waitEmpty()
	c.event(s3event.NewRecord("ObjectRemoved:Delete", bucket, "upload/a.png", time.Now())) // the object is still there
	c.published(2)
	c.waitEmpty()
	if _, _, ok := c.thumbAt("thumbnail/upload/a.png.jpg"); !ok {
		t.Error("thumbnail removed though its key holds an object")
	}
}

// TestCoreThumbnailFailures: a store that fails writes transiently retries the message (and
// publishes nothing before the thumbnail is written); one that refuses them for good lets the
// record go without a thumbnail; an image with more pixels than allowed gets none.
func TestCoreThumbnailFailures(t *testing.T) {
	c := newCore(t)
	fails := 1
	c.store.SetFault(func(ctx context.Context, op memobjects.Op, ref objects.Ref) error {
		switch {
		case op != memobjects.Write:
			return nil
		case strings.Contains(ref.Key, "refused"):
			return failure.Permanentf("InvalidArgument", "refused")
		case strings.Contains(ref.Key, "flaky") && fails > 0:
			fails--
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
	if r := got["upload/flaky.png"]; len(r) != 1 || r[0].ThumbnailKey != "thumbnail/upload/flaky.png.jpg" {
		t.Errorf("flaky: %+v, want one record with its thumbnail", r)
	}
	if r := got["upload/refused.png"]; len(r) != 1 || r[0].ThumbnailKey != "" {
		t.Errorf("refused: %+v, want one record without a thumbnail", r)
	}
	if s := snap(c.a); s.Retried != 1 || s.DeadLettered != 0 {
		t.Errorf("counters %+v, want one retry and no dead letter", s)
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

func TestThumbnailKey(t *testing.T) {
	if k := ThumbnailKey("thumbnail/", "b", "upload/a b.jpg"); k != "thumbnail/upload/a b.jpg.jpg" {
		t.Errorf("key %q", k)
	}
	long := "upload/" + strings.Repeat("x", 1010)
	k := ThumbnailKey("thumbnail/", "b", long)
	if k != "thumbnail/long/"+record.DocumentID("b", long)+".jpg" || len(k) > 1024 {
		t.Errorf("long key %q", k)
	}
}
