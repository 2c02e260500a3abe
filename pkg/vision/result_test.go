package vision

import (
	"reflect"
	"testing"
)

// Shaped like the service's documented responses.
const body40 = `{
  "modelVersion": "2023-10-01",
  "captionResult": {"text": "a man pointing at a screen", "confidence": 0.4891590476036072},
  "denseCaptionsResult": {"values": [
    {"text": "a man pointing at a screen", "confidence": 0.4891590476036072, "boundingBox": {"x": 0, "y": 0, "w": 1038, "h": 692}},
    {"text": "a man in a blue shirt", "confidence": 0.7061178684234619, "boundingBox": {"x": 646, "y": 68, "w": 391, "h": 612}}
  ]},
  "metadata": {"width": 1038, "height": 692},
  "tagsResult": {"values": [
    {"name": "text", "confidence": 0.9625}, {"name": "person", "confidence": 0.9981}, {"name": "clothing", "confidence": 0.9812}
  ]},
  "objectsResult": {"values": [
    {"boundingBox": {"x": 656, "y": 0, "w": 372, "h": 676}, "tags": [{"name": "person", "confidence": 0.863}, {"name": "man", "confidence": 0.9}]}
  ]},
  "peopleResult": {"values": [{"boundingBox": {"x": 1, "y": 2, "w": 3, "h": 4}, "confidence": 0.4}, {"boundingBox": {"x": 5, "y": 6, "w": 7, "h": 8}, "confidence": 0.9}]},
  "readResult": {"blocks": [{"lines": [
    {"text": "Cats and Dogs", "boundingPolygon": [{"x": 10, "y": 12}, {"x": 100, "y": 10}, {"x": 102, "y": 30}, {"x": 11, "y": 31}], "words": []},
    {"text": "Open", "boundingPolygon": [{"x": 5, "y": 40}, {"x": 50, "y": 40}, {"x": 50, "y": 60}, {"x": 5, "y": 60}], "words": []}
  ]}]},
  "smartCropsResult": {"values": [{"aspectRatio": 1.09, "boundingBox": {"x": 303, "y": 0, "w": 692, "h": 634}}]}
}`

const body32 = `{
  "tags": [{"name": "grass", "confidence": 0.9999}, {"name": "outdoor", "confidence": 0.9994}, {"name": "sky", "confidence": 0.9998}],
  "description": {"tags": ["grass", "outdoor"], "captions": [
    {"text": "a house in a field", "confidence": 0.31},
    {"text": "a large green field with a house", "confidence": 0.56}
  ]},
  "color": {"dominantColorForeground": "Green", "dominantColorBackground": "White", "dominantColors": ["Green", "White"], "accentColor": "7E8A33", "isBwImg": false, "isBWImg": false},
  "objects": [{"rectangle": {"x": 10, "y": 20, "w": 30, "h": 40}, "object": "house", "confidence": 0.7, "parent": {"object": "building", "confidence": 0.8}}],
  "requestId": "0c3b0a8c-2f1b-4c55-a0b3-3a8f0f8d2a3e",
  "metadata": {"height": 480, "width": 640, "format": "Jpeg"},
  "modelVersion": "2021-05-01"
}`

func TestDecode40(t *testing.T) {
	got, err := decode40([]byte(body40))
	if err != nil {
		t.Fatal(err)
	}
	want := &Result{
		ModelVersion: "2023-10-01",
		Width:        1038, Height: 692,
		Tags:              []Tag{{"person", 0.9981}, {"clothing", 0.9812}, {"text", 0.9625}},
		Caption:           "a man pointing at a screen",
		CaptionConfidence: 0.4891590476036072,
		DenseCaptions: []Region{
			{"a man in a blue shirt", 0.7061178684234619, Box{646, 68, 391, 612}},
			{"a man pointing at a screen", 0.4891590476036072, Box{0, 0, 1038, 692}},
		},
		Objects:    []Region{{"man", 0.9, Box{656, 0, 372, 676}}},
		People:     []Region{{"", 0.9, Box{5, 6, 7, 8}}, {"", 0.4, Box{1, 2, 3, 4}}},
		Text:       []TextLine{{"Cats and Dogs", Box{10, 10, 92, 21}}, {"Open", Box{5, 40, 45, 20}}},
		SmartCrops: []Crop{{1.09, Box{303, 0, 692, 634}}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("decode40 =\n%+v\nwant\n%+v", got, want)
	}
}

func TestDecode32(t *testing.T) {
	got, err := decode32([]byte(body32))
	if err != nil {
		t.Fatal(err)
	}
	want := &Result{
		ModelVersion: "2021-05-01",
		RequestID:    "0c3b0a8c-2f1b-4c55-a0b3-3a8f0f8d2a3e",
		Width:        640, Height: 480,
		Tags:              []Tag{{"grass", 0.9999}, {"sky", 0.9998}, {"outdoor", 0.9994}},
		Caption:           "a large green field with a house",
		CaptionConfidence: 0.56,
		Objects:           []Region{{"house", 0.7, Box{10, 20, 30, 40}}},
		Color:             &Color{Dominant: []string{"Green", "White"}, Foreground: "Green", Background: "White", Accent: "7E8A33"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("decode32 =\n%+v\nwant\n%+v", got, want)
	}
}

func TestDecodeOnlyRequestedFeatures(t *testing.T) {
	got, err := decode40([]byte(`{"modelVersion":"2023-10-01","metadata":{"width":5,"height":6},"tagsResult":{"values":[]}}`))
	if err != nil {
		t.Fatal(err)
	}
	if got.Caption != "" || got.Tags != nil || got.DenseCaptions != nil || got.Objects != nil || got.Color != nil ||
		got.Text != nil || got.People != nil || got.SmartCrops != nil {
		t.Fatalf("unexpected content: %+v", got)
	}
	// Asked for and nothing found: an empty list, not none.
	empty, err := decode40([]byte(`{"readResult":{"blocks":[]},"peopleResult":{"values":[]},"smartCropsResult":{"values":[]}}`))
	if err != nil {
		t.Fatal(err)
	}
	if empty.Text == nil || len(empty.Text) != 0 || empty.People == nil || len(empty.People) != 0 || empty.SmartCrops == nil || len(empty.SmartCrops) != 0 {
		t.Fatalf("empty results: %+v", empty)
	}
	if got.Width != 5 || got.Height != 6 {
		t.Fatalf("dimensions %dx%d", got.Width, got.Height)
	}
}

func TestDecodeErrors(t *testing.T) {
	for _, body := range []string{``, `{`, `[]`, `{"metadata":{"width":"wide"}}`} {
		if _, err := decode40([]byte(body)); err == nil {
			t.Errorf("decode40(%q) succeeded", body)
		}
		if _, err := decode32([]byte(body)); err == nil {
			t.Errorf("decode32(%q) succeeded", body)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(body40)
	f.Add(body32)
	f.Add(`{"tagsResult":{"values":[{"name":"x","confidence":"NaN"}]}}`)
	f.Fuzz(func(t *testing.T, body string) {
		for _, decode := range []func([]byte) (*Result, error){decode40, decode32} {
			r, err := decode([]byte(body))
			if err != nil {
				continue
			}
			for i := 1; i < len(r.Tags); i++ {
				if r.Tags[i].Confidence > r.Tags[i-1].Confidence {
					t.Fatalf("tags not sorted: %+v", r.Tags)
				}
			}
		}
	})
}
