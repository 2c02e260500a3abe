package analyzer

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"imgpipe/pkg/imagemeta"
	"imgpipe/pkg/record"
	"imgpipe/pkg/samples"
	"imgpipe/pkg/vision"
)

// sample returns the bytes of one of pkg/samples' files.
func sample(t testing.TB, name string) []byte {
	t.Helper()
	dir := t.TempDir()
	if _, err := samples.Generate(dir); err != nil {
		t.Fatal(err)
	}
	body, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// TestCoreRecordCarriesEXIFAndFeatures: a schema version 2 record carries the image's EXIF
// (as Inspect read it from the first bytes) and every Vision feature of the answer, with the
// features that were asked for.
func TestCoreRecordCarriesEXIFAndFeatures(t *testing.T) {
	body := sample(t, "sunset-gradient.jpg")
	c := newCore(t)
	c.vision.result = &vision.Result{
		APIVersion: vision.V40, ModelVersion: "2023-10-01", Width: 1280, Height: 720,
		Features:      []vision.Feature{vision.FeatureTags, vision.FeatureObjects, vision.FeatureRead, vision.FeaturePeople, vision.FeatureDenseCaptions, vision.FeatureSmartCrops},
		Tags:          []vision.Tag{{Name: "orange", Confidence: 0.8}},
		Objects:       []vision.Region{{Text: "orange region", Confidence: 0.6, Box: vision.Box{X: 1, Y: 2, W: 3, H: 4}}},
		Text:          []vision.TextLine{{Text: "SUNSET", Box: vision.Box{X: 5, Y: 6, W: 7, H: 8}}},
		People:        []vision.Region{},
		DenseCaptions: []vision.Region{{Text: "an orange gradient", Confidence: 0.7, Box: vision.Box{W: 1280, H: 720}}},
		SmartCrops:    []vision.Crop{{AspectRatio: 1, Box: vision.Box{X: 280, W: 720, H: 720}}},
	}
	c.object("upload/sunset.jpg", body)
	c.start(coreOptions(), nil)
	got := c.published(1)["upload/sunset.jpg"]
	if len(got) != 1 {
		t.Fatalf("records %+v", got)
	}
	r := got[0]
	wantEXIF := &record.EXIF{Make: "imgpipe", Model: "SampleCam S1", TakenAt: "2024-07-14T21:42:07", Orientation: 1,
		GPS: &record.GPS{Latitude: imagemeta.Degrees(43, 29, 2, false), Longitude: imagemeta.Degrees(1, 33, 30, true)}}
	if r.SchemaVersion != 2 || !reflect.DeepEqual(r.EXIF, wantEXIF) {
		t.Errorf("version %d, EXIF %+v; want 2, %+v", r.SchemaVersion, r.EXIF, wantEXIF)
	}
	want := record.Analysis{
		Features:      []string{"tags", "objects", "read", "people", "denseCaptions", "smartCrops"},
		Objects:       []record.Object{{Name: "orange region", Confidence: 0.6, Box: record.Box{X: 1, Y: 2, W: 3, H: 4}}},
		Text:          []record.TextLine{{Text: "SUNSET", Box: &record.Box{X: 5, Y: 6, W: 7, H: 8}}},
		DenseCaptions: []record.DenseCaption{{Text: "an orange gradient", Confidence: 0.7, Box: record.Box{W: 1280, H: 720}}},
		SmartCrops:    []record.SmartCrop{{AspectRatio: 1, Box: record.Box{X: 280, W: 720, H: 720}}},
	}
	if !reflect.DeepEqual(r.Features, want.Features) || !reflect.DeepEqual(r.Objects, want.Objects) || !reflect.DeepEqual(r.Text, want.Text) ||
		r.People != nil || !reflect.DeepEqual(r.DenseCaptions, want.DenseCaptions) || !reflect.DeepEqual(r.SmartCrops, want.SmartCrops) {
		t.Errorf("features:\n got %+v\nwant %+v", r, want)
	}
}
