package analyzer

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"imgpipe/pkg/failure"
	"imgpipe/pkg/imagemeta"
	"imgpipe/pkg/record"
	"imgpipe/pkg/s3event"
	"imgpipe/pkg/samples"
	"imgpipe/pkg/vision"
)

// putEvent stores body under key and sends its creation event with the sequencer seq; it
// returns the record sent.
func (c *core) putEvent(key string, body []byte, seq string) s3event.Record {
	c.t.Helper()
	version, etag := c.store.Put(bucket, key, body)
	rec := s3event.NewRecord("ObjectCreated:Put", bucket, key, time.Now())
	rec.ETag, rec.Size, rec.VersionID, rec.Sequencer = etag, int64(len(body)), version, seq
	c.event(rec)
	return rec
}

// TestCoreOverwriteByUnindexable: an image overwritten by content that can never be indexed
// (not an image; an image Vision rejects for good; the current version left by deleting the
// image's version, on a versioned bucket) goes to the DLQ with its reason, and the key's
// document goes too: a removal at the newer event's sequencer, and the old thumbnail is
// removed. The index then shows what the bucket holds: nothing for the key.
func TestCoreOverwriteByUnindexable(t *testing.T) {
	rejected := []byte("image Vision rejects") // marker in the PNG's bytes below
	for _, tc := range []struct {
		name      string
		versioned bool
		reason    string
		// overwrite replaces the image at key after it was indexed; it returns the sequencer
		// the removal must carry.
		overwrite func(c *core, key string, img s3event.Record) string
	}{
		{"non-image", false, imagemeta.ReasonNotAnImage, func(c *core, key string, _ s3event.Record) string {
			c.putEvent(key, []byte("plain text, not an image"), "0000000000000000B0")
			return "0000000000000000B0"
		}},
		{"empty", true, imagemeta.ReasonNotAnImage, func(c *core, key string, _ s3event.Record) string {
			c.putEvent(key, nil, "0000000000000000B0")
			return "0000000000000000B0"
		}},
		{"Vision verdict", false, "InvalidImageFormat", func(c *core, key string, _ s3event.Record) string {
			body, err := samples.Image(77, 40, 30, "png")
			if err != nil {
				c.t.Fatal(err)
			}
			c.putEvent(key, append(body, rejected...), "0000000000000000B0")
			return "0000000000000000B0"
		}},
		{"versioned: deleting the image's version leaves a non-image current", true, "", func(c *core, key string, img s3event.Record) string {
			// The non-image, written before the image, is current again once the image's
			// version is deleted for good: the removal's reading finds it unindexable.
			c.store.Delete(bucket, key, img.VersionID)
			rm := s3event.NewRecord("ObjectRemoved:Delete", bucket, key, time.Now())
			rm.VersionID, rm.Sequencer = img.VersionID, "0000000000000000C0"
			c.event(rm)
			return "0000000000000000C0"
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCore(t)
			c.vision.setFail(func(_ context.Context, body []byte) error {
				if bytes.HasSuffix(body, rejected) {
					return failure.New(failure.Permanent, "InvalidImageFormat", &vision.APIError{StatusCode: 400, InnerCode: "InvalidImageFormat"})
				}
				return nil
			})
			c.store.SetVersioning(bucket, tc.versioned)
			const key = "upload/photo.png"
			viaRemoval := tc.reason == ""
			if viaRemoval {
				// The first version, without its event: only its content matters here.
				c.store.Put(bucket, key, []byte("plain text, not an image"))
			}
			body, err := samples.Image(5, 80, 60, "png")
			if err != nil {
				t.Fatal(err)
			}
			c.start(thumbOptions(), nil)
			img := c.putEvent(key, body, "0000000000000000A0")
			got := c.published(1)[key]
			if len(got) != 1 || got[0].Event != record.Created || got[0].ThumbnailKey == "" {
				t.Fatalf("records %+v, want the image indexed with a thumbnail", got)
			}
			thumb := got[0].ThumbnailKey
			if _, _, ok := c.thumbAt(thumb); !ok {
				t.Fatal("no thumbnail of the image")
			}
			c.waitEmpty()
			deadBefore := len(c.dlq.Messages())

			seq := tc.overwrite(c, key, img)
			got = c.published(2)[key]
			c.waitEmpty()
			if last := got[len(got)-1]; len(got) != 2 || last.Event != record.Removed || last.Sequencer != seq {
				t.Fatalf("records %+v, want the creation then a removal at sequencer %s", got, seq)
			}
			if _, _, ok := c.thumbAt(thumb); ok {
				t.Error("the old image's thumbnail is left though the key holds no image")
			}
			dead := c.dlq.Messages()
			switch {
			case viaRemoval && len(dead) != deadBefore:
				t.Errorf("%d dead letters after the removal, want %d: a removal is not a bad message", len(dead), deadBefore)
			case !viaRemoval && len(dead) != deadBefore+1:
				t.Fatalf("%d dead letters, want %d", len(dead), deadBefore+1)
			case !viaRemoval:
				if d := failure.ParseDetails(dead[len(dead)-1].StringAttributes()); d.Reason != tc.reason || d.Class != failure.Permanent {
					t.Errorf("dead letter %+v, want reason %s", d, tc.reason)
				}
			}
		})
	}
}

// TestCoreUnindexableRemovalRetried: when the removal of the key's document cannot be
// published (Pub/Sub down), the message is not dead-lettered yet: it is retried, and
// dead-lettered once the removal went out.
func TestCoreUnindexableRemovalRetried(t *testing.T) {
	c := newCore(t)
	fails := 2
	c.pub.fail = func(_ context.Context, rec *record.Analysis) error {
		if rec.Event == record.Removed && fails > 0 {
			fails--
			return fmt.Errorf("pubsub down")
		}
		return nil
	}
	c.putEvent("upload/x.png", []byte("not an image"), "0000000000000000B0")
	c.start(coreOptions(), nil)
	got := c.published(1)["upload/x.png"]
	c.waitEmpty()
	if len(got) != 1 || got[0].Event != record.Removed {
		t.Fatalf("records %+v, want one removal", got)
	}
	if s := snap(c.a); s.Retried != 2 || s.DeadLettered != 1 || len(c.dlq.Messages()) != 1 {
		t.Errorf("%+v, %d dead letters: want two retries, then one dead letter", s, len(c.dlq.Messages()))
	}
}
