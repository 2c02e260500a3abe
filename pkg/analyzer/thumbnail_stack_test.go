package analyzer

import (
	"context"
	"errors"
	"fmt"
	"image/jpeg"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"imgpipe/internal/devstack"
	"imgpipe/internal/stacktest"
	"imgpipe/pkg/imagemeta"
	"imgpipe/pkg/record"
	"imgpipe/pkg/vision"
)

// TestThumbnailsOnTheStack: on the S3 stand-in (with its bucket notification filtered on the
// drop prefix) and the Vision stand-in, a JPEG with EXIF gets a version 2 record with its
// EXIF, Vision's smart crop and its thumbnail's key; the thumbnail is a JPEG of the square
// crop; writing it sends no event (no loop); deleting the image removes it.
func TestThumbnailsOnTheStack(t *testing.T) {
	r := newRig(t, devstack.Resources{VisibilityTimeout: 10 * time.Second})
	body := sample(t, "sunset-gradient.jpg")
	vc := r.visionClient(t, &vision.Options{
		Features:               []vision.Feature{vision.FeatureTags, vision.FeatureCaption, vision.FeatureSmartCrops, vision.FeaturePeople},
		SmartCropsAspectRatios: []float64{1},
	})
	x := r.start(t, vc, Options{Workers: 2, VisibilityTimeout: 10 * time.Second, ThumbnailPrefix: "thumbnail/"}, nil)
	key := r.res.Prefix + "camera/sunset one.jpg"
	var enqueued0 uint64
	if r.st.S3Server != nil {
		enqueued0 = r.st.S3Server.Stats().Enqueued
	}
	r.put(t, key, body)
	r.waitPublished(t, map[string][]byte{key: body}, 2*time.Minute)

	rec, _ := r.pub.lastRecord(key)
	thumbKey := ThumbnailKey("thumbnail/", &rec)
	wantEXIF := &record.EXIF{Make: "imgpipe", Model: "SampleCam S1", TakenAt: "2024-07-14T21:42:07", Orientation: 1,
		GPS: &record.GPS{Latitude: imagemeta.Degrees(43, 29, 2, false), Longitude: imagemeta.Degrees(1, 33, 30, true)}}
	if rec.SchemaVersion != record.SchemaVersion || rec.ThumbnailKey != thumbKey || !strings.HasPrefix(thumbKey, "thumbnail/"+key+"/"+rec.Sequencer+"-") || !reflect.DeepEqual(rec.EXIF, wantEXIF) ||
		len(rec.SmartCrops) != 1 || rec.SmartCrops[0].AspectRatio != 1 || rec.SmartCrops[0].Box.W != 720 || rec.People != nil ||
		!reflect.DeepEqual(rec.Features, []string{"tags", "caption", "smartCrops", "people"}) {
		t.Fatalf("record %+v", rec)
	}
	obj, err := r.s3.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(r.res.Bucket), Key: aws.String(thumbKey)})
	if err != nil {
		t.Fatalf("get thumbnail: %v", err)
	}
	cfg, err := jpeg.DecodeConfig(obj.Body)
	obj.Body.Close()
	if err != nil || cfg.Width != 320 || cfg.Height != 320 || aws.ToString(obj.ContentType) != "image/jpeg" {
		t.Fatalf("thumbnail %dx%d %q (%v), want a 320x320 JPEG", cfg.Width, cfg.Height, aws.ToString(obj.ContentType), err)
	}
	// The S3 stand-in counts the events it accepts for delivery as the write happens: the
	// image's put made one, the thumbnail's none.
	if r.st.S3Server != nil {
		if n := r.st.S3Server.Stats().Enqueued - enqueued0; n != 1 {
			t.Errorf("%d events since the image's put, want 1 (the thumbnail's write raised one)", n)
		}
	}

	if _, err := r.s3.DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: aws.String(r.res.Bucket), Key: aws.String(key)}); err != nil {
		t.Fatal(err)
	}
	stacktest.WaitFor(t, "thumbnail removed with its image", time.Minute, func() (bool, string) {
		_, err := r.s3.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(r.res.Bucket), Key: aws.String(thumbKey)})
		var nf *s3types.NotFound
		return errors.As(err, &nf), "thumbnail still there"
	})
	stacktest.WaitFor(t, "the removal published and its message settled", time.Minute, func() (bool, string) {
		s := snap(x.a)
		return r.pub.counts()[key] == 2 && s.Succeeded >= 2, fmt.Sprintf("published %v, counters %+v", r.pub.counts(), s)
	})
	if c := r.pub.counts(); c[key] != 2 || len(c) != 1 {
		t.Errorf("published %v, want the image's record and its removal", c)
	}
	// And the analyzer received the image's creation and removal only.
	if s := snap(x.a); s.Received != 2 || s.Skipped != 0 {
		t.Errorf("counters %+v: the thumbnail's write came back as an event", s)
	}
}
