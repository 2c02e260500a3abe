package visionserver

import (
	"encoding/json"
	"net/http"
	"reflect"
	"slices"
	"sort"
	"testing"
)

func TestAnalyze32Colours(t *testing.T) {
	h := newHarness(t, nil)
	feats := "Categories,Tags,Description,Color,ImageType,Objects,Adult,Faces,Brands"

	res := decode32(t, h.analyze32(feats, solidPNG(t, 100, 100, red)))
	wantColor := Color32{DominantColorForeground: "Red", DominantColorBackground: "Red",
		DominantColors: []string{"Red"}, AccentColor: "FF0000"}
	if !reflect.DeepEqual(*res.Color, wantColor) {
		t.Errorf("color %+v, want %+v", *res.Color, wantColor)
	}
	if res.Metadata != (Metadata32{Width: 100, Height: 100, Format: "Png"}) {
		t.Errorf("metadata %+v", res.Metadata)
	}
	if res.ModelVersion != ModelVersion32 || res.RequestID == "" {
		t.Errorf("modelVersion %q requestId %q", res.ModelVersion, res.RequestID)
	}
	if !hasTag(res.Tags, "red") || res.Description == nil || !slices.Contains(res.Description.Tags, "red") {
		t.Errorf("tags %v description %+v", tagNames(res.Tags), res.Description)
	}
	if len(res.Description.Captions) != 1 || res.Description.Captions[0].Text != "a solid red square image" {
		t.Errorf("captions %+v", res.Description.Captions)
	}
	if res.Categories[0].Name != "abstract_" {
		t.Errorf("categories %+v", res.Categories)
	}
	if *res.ImageType != (ImageType32{ClipArtType: 3}) {
		t.Errorf("imageType %+v", *res.ImageType)
	}
	if *res.Adult != (Adult32{}) || res.Objects == nil || len(res.Objects) != 0 || res.Faces == nil || res.Brands == nil {
		t.Errorf("adult %+v objects %v faces %v brands %v", *res.Adult, res.Objects, res.Faces, res.Brands)
	}

	// Foreground and background come from the centre and the border.
	res = decode32(t, h.analyze32("Color", encPNG(t, framed(120, 80, yellow, darkBlue))))
	if res.Color.DominantColorForeground != "Yellow" || res.Color.DominantColorBackground != "Blue" {
		t.Errorf("color %+v", *res.Color)
	}
	if want := []string{"Blue", "Yellow"}; !reflect.DeepEqual(res.Color.DominantColors, want) {
		t.Errorf("dominant colours %v, want %v", res.Color.DominantColors, want)
	}

	// A grey JPEG is black-and-white, under both spellings of the flag.
	r := h.analyze32("Color,Categories", encJPEG(t, solid(80, 80, midGray)))
	var raw struct {
		Color    map[string]any `json:"color"`
		Metadata map[string]any `json:"metadata"`
	}
	if err := json.Unmarshal(r.body, &raw); err != nil {
		t.Fatal(err)
	}
	if raw.Color["isBwImg"] != true || raw.Color["isBWImg"] != true {
		t.Errorf("color %v: want isBwImg and isBWImg true", raw.Color)
	}
	if raw.Metadata["format"] != "Jpeg" {
		t.Errorf("metadata %v", raw.Metadata)
	}

	res = decode32(t, h.analyze32("Categories,Tags", solidPNG(t, 80, 80, black)))
	if res.Categories[0].Name != "dark_" || !hasTag(res.Tags, "dark") {
		t.Errorf("categories %+v tags %v", res.Categories, tagNames(res.Tags))
	}
}

func TestAnalyze32ReturnsOnlyRequestedFeatures(t *testing.T) {
	h := newHarness(t, nil)
	img := solidPNG(t, 100, 80, red)
	tests := []struct {
		features string
		want     []string
	}{
		{"", []string{"categories"}}, // the documented default
		{"Tags", []string{"tags"}},
		{"color,IMAGETYPE", []string{"color", "imageType"}},
		{"Description,Objects,Faces,Brands,Adult", []string{"description", "objects", "faces", "brands", "adult"}},
	}
	for _, tc := range tests {
		t.Run(tc.features, func(t *testing.T) {
			r := h.analyze32(tc.features, img)
			if r.status != http.StatusOK {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			var m map[string]json.RawMessage
			if err := json.Unmarshal(r.body, &m); err != nil {
				t.Fatal(err)
			}
			var got []string
			for k := range m {
				got = append(got, k)
			}
			want := append([]string{"requestId", "metadata", "modelVersion"}, tc.want...)
			sort.Strings(got)
			sort.Strings(want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("members %v, want %v", got, want)
			}
			if id := r.header.Get("apim-request-id"); id == "" || string(m["requestId"]) != `"`+id+`"` {
				t.Errorf("requestId %s, header %q", m["requestId"], id)
			}
		})
	}
}

func TestAnalyze32Limits(t *testing.T) {
	h := newHarness(t, nil)
	red64 := solid(64, 64, red)
	tests := []struct {
		name        string
		query       string
		body        []byte
		status      int
		code, inner string
	}{
		{"4 MB is too large", "Tags", make([]byte, 4<<20), 400, CodeInvalidRequest, CodeInvalidImageSize},
		{"empty", "Tags", []byte{}, 400, CodeInvalidRequest, CodeInvalidImageSize},
		{"just under 4 MB passes the size check", "Tags", make([]byte, 4<<20-1), 400, CodeInvalidRequest, CodeInvalidImageFormat},
		{"webp is 4.0 only", "Tags", solidWebP(64, 64, 255, 0, 0), 400, CodeInvalidRequest, CodeInvalidImageFormat},
		{"tiff is 4.0 only", "Tags", encTIFF(t, red64), 400, CodeInvalidRequest, CodeInvalidImageFormat},
		{"ico is 4.0 only", "Tags", icoOf(t, encPNG(t, red64), 64, 64), 400, CodeInvalidRequest, CodeInvalidImageFormat},
		{"too small", "Tags", solidPNG(t, 40, 400, red), 400, CodeInvalidRequest, CodeInvalidImageSize},
		{"too large", "Tags", pngHeaderOnly(100, 20000), 400, CodeInvalidRequest, CodeInvalidImageSize},
		{"unknown feature", "Tags,Celebrities", encPNG(t, red64), 400, CodeInvalidRequest, CodeNotSupportedVisualFeature},
		{"unsupported language", "Tags&language=fr", encPNG(t, red64), 400, CodeInvalidRequest, CodeNotSupportedLanguage},
		{"bad details", "Categories&details=Cars", encPNG(t, red64), 400, CodeInvalidRequest, "InvalidDetails"},
		{"bad model version", "Tags&model-version=soon", encPNG(t, red64), 400, CodeInvalidRequest, CodeBadArgument},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := h.analyze32(tc.query, tc.body)
			e := wantError(t, r, tc.status, tc.code, tc.inner)
			if e.RequestID == "" || e.RequestID != r.header.Get("apim-request-id") {
				t.Errorf("v3.2 error requestId %q, header %q", e.RequestID, r.header.Get("apim-request-id"))
			}
		})
	}
	// The formats v3.2 does take.
	for name, img := range map[string][]byte{
		"jpeg": encJPEG(t, red64), "png": encPNG(t, red64), "gif": encGIF(t, red64),
		"bmp": encBMP(t, red64), "mpo": mpoOf(encJPEG(t, red64)),
	} {
		res := decode32(t, h.analyze32("Color&language=es&model-version=2021-04-01&details=Landmarks", img))
		if res.Color.DominantColors[0] != "Red" {
			t.Errorf("%s: colours %v", name, res.Color.DominantColors)
		}
	}
}
