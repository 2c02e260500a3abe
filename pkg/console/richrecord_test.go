package console_test

import (
	"context"
	"io"
	"net/http"
	"reflect"
	"testing"
	"time"

	"imgpipe/pkg/console"
	"imgpipe/pkg/record"
	"imgpipe/pkg/s3event"
)

// TestVersionTwoFields: what a schema version 2 record adds (thumbnail, EXIF, Vision
// features) comes out of the API, with a presigned URL that fetches the thumbnail itself;
// a version 1 document answers as before, without them.
func TestVersionTwoFields(t *testing.T) {
	e := newEnv(t, nil)
	at := time.Now().UTC().Add(-time.Minute).Truncate(time.Millisecond)
	key, thumb := e.res.Prefix+"rich/photo.jpg", "thumbnail/"+e.res.Prefix+"rich/photo.jpg.jpg"
	e.putObject(t, key, []byte("jpeg bytes"))
	e.putObject(t, thumb, []byte("thumbnail bytes"))
	rec := &record.Analysis{
		SchemaVersion: 2, Event: record.Created, Bucket: e.res.Bucket, Key: key,
		Sequencer: s3event.FormatSequencer(uint64(at.UnixNano())), EventTime: at, AnalyzedAt: at,
		Size: 10, ContentType: "image/jpeg", Format: "jpeg", Width: 640, Height: 480,
		ThumbnailKey:  thumb,
		EXIF:          &record.EXIF{Make: "imgpipe", Model: "S1", TakenAt: "2024-07-14T21:42:07", Orientation: 1, GPS: &record.GPS{Latitude: 43.5, Longitude: -1.5}},
		Features:      []string{"tags", "objects", "read", "people", "denseCaptions"},
		Objects:       []record.Object{{Name: "red region", Confidence: 0.6, Box: record.Box{X: 1, Y: 2, W: 3, H: 4}}},
		Text:          []record.TextLine{{Text: "HELLO"}},
		People:        []record.Person{{Confidence: 0.5, Box: record.Box{W: 5, H: 6}}},
		DenseCaptions: []record.DenseCaption{{Text: "a red region", Confidence: 0.7, Box: record.Box{W: 640, H: 480}}},
	}
	if _, err := e.store.Apply(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	var img console.Image
	r := e.do(t, "GET", "/api/v1/analysis"+q("bucket", e.res.Bucket, "key", key), nil)
	r.decode(t, &img)
	if r.StatusCode != 200 || img.SchemaVersion != 2 || img.ThumbnailKey != thumb || !reflect.DeepEqual(img.EXIF, rec.EXIF) ||
		!reflect.DeepEqual(img.Objects, rec.Objects) || !reflect.DeepEqual(img.Text, rec.Text) ||
		!reflect.DeepEqual(img.People, rec.People) || !reflect.DeepEqual(img.DenseCaptions, rec.DenseCaptions) {
		t.Fatalf("analysis: %d %+v", r.StatusCode, img)
	}
	resp, err := http.Get(img.ThumbnailURL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "thumbnail bytes" {
		t.Fatalf("GET thumbnailUrl: %d %q", resp.StatusCode, body)
	}

	old := e.res.Prefix + "rich/old.png"
	e.putObject(t, old, []byte("png bytes"))
	e.indexed(t, old, at, "cat")
	var v1 console.Image
	e.do(t, "GET", "/api/v1/analysis"+q("bucket", e.res.Bucket, "key", old), nil).decode(t, &v1)
	if v1.ThumbnailKey != "" || v1.ThumbnailURL != "" || v1.EXIF != nil || v1.Objects != nil || len(v1.Tags) != 1 {
		t.Fatalf("a document without the v2 fields: %+v", v1)
	}
}
