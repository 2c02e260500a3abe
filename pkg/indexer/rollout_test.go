package indexer_test

import (
	"context"
	"reflect"
	"testing"

	"cloud.google.com/go/pubsub/v2"

	"imgpipe/pkg/indexer"
	"imgpipe/pkg/publish"
	"imgpipe/pkg/record"
)

// TestRolloutReadsBothVersions: during a rollout an analyzer of schema version 1 and one of
// version 2 publish to the same topic. The indexer stores both: the v1 record as it came
// (no v2 fields), the v2 record with its thumbnail key, EXIF and Vision features.
func TestRolloutReadsBothVersions(t *testing.T) {
	st, b := bootstrap(t, 5)
	ps := pubsubClient(t, st.ProjectID)
	r := startIndexer(t, st.ProjectID, b, nil)
	raw := ps.Publisher(b.TopicName)
	defer raw.Stop()

	// Exactly what a version 1 analyzer wrote: its body and its attributes.
	v1 := `{"schemaVersion":1,"event":"created","bucket":"` + b.Bucket + `","key":"upload/old.jpg","sequencer":"0A",` +
		`"eventTime":"2026-11-22T10:00:00Z","size":12,"format":"jpeg","width":640,"height":480,` +
		`"tags":[{"name":"red","confidence":0.9}],"caption":"a red image","analyzedAt":"2026-11-22T10:00:01Z"}`
	if _, err := raw.Publish(context.Background(), &pubsub.Message{Data: []byte(v1), Attributes: map[string]string{
		record.AttrBucket: b.Bucket, record.AttrKey: "upload/old.jpg", record.AttrEvent: "created", record.AttrSchemaVersion: "1",
	}}).Get(context.Background()); err != nil {
		t.Fatal(err)
	}

	v2 := rec(record.Created, b.Bucket, "upload/new.jpg", 1)
	v2.ThumbnailKey = "thumbnail/upload/new.jpg.jpg"
	v2.EXIF = &record.EXIF{Make: "imgpipe", Model: "S1", TakenAt: "2024-07-14T21:42:07", Orientation: 6,
		GPS: &record.GPS{Latitude: 43.48388888888889, Longitude: -1.5583333333333333}}
	v2.Features = []string{"tags", "caption", "objects", "read", "people", "denseCaptions", "smartCrops"}
	v2.Objects = []record.Object{{Name: "red region", Confidence: 0.6, Box: record.Box{X: 1, Y: 2, W: 3, H: 4}}}
	v2.Text = []record.TextLine{{Text: "HELLO", Box: &record.Box{X: 5, Y: 6, W: 7, H: 8}}}
	v2.People = []record.Person{}
	v2.DenseCaptions = []record.DenseCaption{{Text: "a red image", Confidence: 0.8, Box: record.Box{W: 640, H: 480}}}
	v2.SmartCrops = []record.SmartCrop{{AspectRatio: 1, Box: record.Box{X: 80, W: 480, H: 480}}}
	pub := publish.New(ps, b.TopicName, nil)
	defer pub.Close()
	publishAll(t, pub, []*record.Analysis{v2})

	eventually(t, "both records applied", func() bool { return settled(r) >= 2 })
	old, err := r.store.Get(context.Background(), b.Bucket, "upload/old.jpg")
	if err != nil {
		t.Fatal(err)
	}
	if old.SchemaVersion != 1 || old.Caption != "a red image" || old.Width != 640 || old.EXIF != nil || old.ThumbnailKey != "" {
		t.Errorf("v1 document: %+v", old.Analysis)
	}
	got, err := r.store.Get(context.Background(), b.Bucket, "upload/new.jpg")
	if err != nil {
		t.Fatal(err)
	}
	want := *v2
	want.People = nil // an empty list is not stored; Features says people was asked for
	if got.SchemaVersion != 2 || got.ThumbnailKey != want.ThumbnailKey || !reflect.DeepEqual(got.EXIF, want.EXIF) ||
		!reflect.DeepEqual(got.Features, want.Features) || !reflect.DeepEqual(got.Objects, want.Objects) ||
		!reflect.DeepEqual(got.Text, want.Text) || len(got.People) != 0 || !reflect.DeepEqual(got.DenseCaptions, want.DenseCaptions) ||
		!reflect.DeepEqual(got.SmartCrops, want.SmartCrops) {
		t.Errorf("v2 document:\n got %+v\nwant %+v", got.Analysis, want)
	}
	if m := indexer.CountsOf(r.ix); m.Invalid != 0 || m.DeadLettered != 0 {
		t.Errorf("invalid %d, dead-lettered %d; want none", m.Invalid, m.DeadLettered)
	}
}
