package visionserver

import (
	"bytes"
	"encoding/json"
	"image/color"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"imgpipe/internal/visionstandin"
)

var (
	red      = color.RGBA{255, 0, 0, 255}
	darkBlue = color.RGBA{0, 0, 60, 255}
	midGray  = color.RGBA{128, 128, 128, 255}
	white    = color.RGBA{255, 255, 255, 255}
	black    = color.RGBA{0, 0, 0, 255}
	green    = color.RGBA{0, 160, 0, 255}
	yellow   = color.RGBA{255, 230, 0, 255}
)

func TestAnalyze40DescribesPixels(t *testing.T) {
	h := newHarness(t, nil)
	tests := []struct {
		name        string
		img         []byte
		w, h        int
		wantTags    []string
		notTags     []string
		wantCaption string
	}{
		{"solid red png", solidPNG(t, 100, 100, red), 100, 100,
			[]string{"red", "png", "square"}, []string{"dark", "grayscale", "blue"}, "a solid red square image"},
		{"dark blue landscape", solidPNG(t, 200, 120, darkBlue), 200, 120,
			[]string{"blue", "dark", "landscape"}, []string{"grayscale", "bright"}, "a dark, solid blue landscape image"},
		{"gray portrait jpeg", encJPEG(t, solid(80, 160, midGray)), 80, 160,
			[]string{"gray", "grayscale", "black and white", "portrait", "jpeg"}, []string{"red", "dark"}, "a grayscale portrait image"},
		{"white panorama gif", encGIF(t, solid(300, 100, white)), 300, 100,
			[]string{"white", "bright", "panorama", "gif", "grayscale"}, []string{"dark"}, "a bright, solid white panoramic image"},
		{"black", solidPNG(t, 64, 64, black), 64, 64,
			[]string{"black", "dark", "grayscale"}, []string{"bright"}, "a dark, solid black square image"},
		{"mostly green", encPNG(t, framed(100, 100, yellow, green)), 100, 100,
			[]string{"green", "yellow"}, []string{"grayscale"}, "a mostly green square image"},
		{"black and white", encPNG(t, split(120, 120, 0.4, black, white)), 120, 120,
			[]string{"white", "black", "grayscale", "black and white"}, nil, "a black and white square image"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := decode40(t, h.analyze40("tags,caption", tc.img))
			if res.Metadata.Width != tc.w || res.Metadata.Height != tc.h {
				t.Errorf("metadata %+v, want %dx%d", res.Metadata, tc.w, tc.h)
			}
			if res.TagsResult == nil || res.CaptionResult == nil {
				t.Fatalf("missing tags or caption: %+v", res)
			}
			names := tagNames(res.TagsResult.Values)
			for _, want := range tc.wantTags {
				if !slices.Contains(names, want) {
					t.Errorf("tags %v lack %q", names, want)
				}
			}
			for _, no := range tc.notTags {
				if slices.Contains(names, no) {
					t.Errorf("tags %v have %q", names, no)
				}
			}
			if res.CaptionResult.Text != tc.wantCaption {
				t.Errorf("caption %q, want %q", res.CaptionResult.Text, tc.wantCaption)
			}
			for _, tg := range res.TagsResult.Values {
				if tg.Confidence <= 0 || tg.Confidence > 1 {
					t.Errorf("tag %+v confidence outside (0,1]", tg)
				}
			}
			if !sort.SliceIsSorted(res.TagsResult.Values, func(i, j int) bool {
				return res.TagsResult.Values[i].Confidence > res.TagsResult.Values[j].Confidence
			}) {
				t.Errorf("tags not sorted by confidence: %+v", res.TagsResult.Values)
			}
		})
	}
}

func TestAnalyze40ReturnsOnlyRequestedFeatures(t *testing.T) {
	h := newHarness(t, nil)
	img := solidPNG(t, 100, 80, red)
	tests := []struct {
		features string
		want     []string
	}{
		{"tags", []string{"tagsResult"}},
		{"caption", []string{"captionResult"}},
		{"Tags,CAPTION", []string{"tagsResult", "captionResult"}},
		{"objects,read,people", []string{"objectsResult", "readResult", "peopleResult"}},
		{"smartCrops,denseCaptions", []string{"smartCropsResult", "denseCaptionsResult"}},
		{"tags,caption,objects,read,people,smartCrops,denseCaptions", []string{"tagsResult", "captionResult",
			"objectsResult", "readResult", "peopleResult", "smartCropsResult", "denseCaptionsResult"}},
	}
	for _, tc := range tests {
		t.Run(tc.features, func(t *testing.T) {
			r := h.analyze40(tc.features, img)
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
			want := append([]string{"modelVersion", "metadata"}, tc.want...)
			sort.Strings(got)
			sort.Strings(want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("members %v, want %v", got, want)
			}
		})
	}

	// The features that find nothing say so with empty arrays, not nulls.
	r := h.analyze40("objects,read,people", img)
	for _, frag := range []string{`"objectsResult":{"values":[]}`, `"readResult":{"blocks":[]}`, `"peopleResult":{"values":[]}`} {
		if !bytes.Contains(r.body, []byte(frag)) {
			t.Errorf("body %s lacks %s", r.body, frag)
		}
	}
}

func TestAnalyze40SmartCropsAndDenseCaptions(t *testing.T) {
	h := newHarness(t, nil)
	img := solidPNG(t, 200, 100, red)

	res := decode40(t, h.do(http.MethodPost, path40("smartCrops")+"&smartcrops-aspect-ratios=1.0,0.75,1.8", keyHeader, img))
	want := []CropRegion{
		{AspectRatio: 1, BoundingBox: BoundingBox{X: 50, Y: 0, W: 100, H: 100}},
		{AspectRatio: 0.75, BoundingBox: BoundingBox{X: 62, Y: 0, W: 75, H: 100}},
		{AspectRatio: 1.8, BoundingBox: BoundingBox{X: 10, Y: 0, W: 180, H: 100}},
	}
	if !reflect.DeepEqual(res.SmartCropsResult.Values, want) {
		t.Errorf("crops %+v, want %+v", res.SmartCropsResult.Values, want)
	}

	res = decode40(t, h.analyze40("smartCrops,denseCaptions", solidPNG(t, 100, 300, red)))
	auto := []CropRegion{{AspectRatio: 0.5, BoundingBox: BoundingBox{X: 0, Y: 50, W: 100, H: 200}}}
	if !reflect.DeepEqual(res.SmartCropsResult.Values, auto) {
		t.Errorf("automatic crop %+v, want %+v", res.SmartCropsResult.Values, auto)
	}
	dc := res.DenseCaptionsResult.Values
	if len(dc) != 1 || dc[0].BoundingBox != (BoundingBox{W: 100, H: 300}) || !strings.Contains(dc[0].Text, "red") {
		t.Errorf("dense captions %+v, want one whole-image caption", dc)
	}
}

func TestAnalyze40BodyModes(t *testing.T) {
	img := solidPNG(t, 90, 90, red)
	images := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Path != "/bucket/red.png" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "image/png")
		_, _ = w.Write(img)
	}))
	defer images.Close()
	h := newHarness(t, nil)

	byURL := h.do(http.MethodPost, path40("tags"),
		map[string]string{"Ocp-Apim-Subscription-Key": visionstandin.DefaultKey, "Content-Type": "application/json"},
		`{"url":"`+images.URL+`/bucket/red.png?X-Amz-Signature=abc"}`)
	byBytes := h.analyze40("tags", img)
	byImageType := h.do(http.MethodPost, path40("tags"),
		map[string]string{"Ocp-Apim-Subscription-Key": visionstandin.DefaultKey, "Content-Type": "image/png"}, img)
	for name, r := range map[string]reply{"url": byURL, "octet-stream": byBytes, "image/png": byImageType} {
		res := decode40(t, r)
		if !hasTag(res.TagsResult.Values, "red") {
			t.Errorf("%s: tags %v lack red", name, tagNames(res.TagsResult.Values))
		}
	}
	if !bytes.Equal(byURL.body, byBytes.body) {
		t.Errorf("URL and byte answers differ:\n%s\n%s", byURL.body, byBytes.body)
	}
	if got := h.srv.Stats().AnalysedCount(img); got != 3 {
		t.Errorf("AnalysedCount %d, want 3 (URL mode counts the fetched bytes)", got)
	}
}

func TestAnalyzeIsDeterministic(t *testing.T) {
	h := newHarness(t, nil)
	img := encJPEG(t, framed(160, 90, yellow, darkBlue))
	all := "tags,caption,objects,read,people,smartCrops,denseCaptions"
	a, b := h.analyze40(all, img), h.analyze40(all, img)
	if a.status != http.StatusOK || !bytes.Equal(a.body, b.body) {
		t.Errorf("4.0 answers differ or failed (%d):\n%s\n%s", a.status, a.body, b.body)
	}
	// A second server gives the same answer too.
	h2 := newHarness(t, nil)
	if c := h2.analyze40(all, img); !bytes.Equal(a.body, c.body) {
		t.Errorf("answers differ between servers:\n%s\n%s", a.body, c.body)
	}

	feats := "Categories,Tags,Description,Color,ImageType,Objects,Adult"
	x, y := decode32(t, h.analyze32(feats, img)), decode32(t, h.analyze32(feats, img))
	if x.RequestID == y.RequestID {
		t.Errorf("request IDs repeat: %s", x.RequestID)
	}
	x.RequestID, y.RequestID = "", ""
	if !reflect.DeepEqual(x, y) {
		t.Errorf("v3.2 answers differ:\n%+v\n%+v", x, y)
	}
}

func TestAnalyze40Formats(t *testing.T) {
	h := newHarness(t, nil)
	redImg := solid(64, 64, red)
	tests := []struct {
		name, format string
		img          []byte
	}{
		{"jpeg", FormatJPEG, encJPEG(t, redImg)},
		{"mpo", FormatMPO, mpoOf(encJPEG(t, redImg))},
		{"png", FormatPNG, encPNG(t, redImg)},
		{"gif", FormatGIF, encGIF(t, redImg)},
		{"bmp", FormatBMP, encBMP(t, redImg)},
		{"tiff", FormatTIFF, encTIFF(t, redImg)},
		{"webp", FormatWEBP, solidWebP(64, 64, 255, 0, 0)},
		{"ico with png", FormatICO, icoOf(t, encPNG(t, redImg), 64, 64)},
		{"ico with bmp", FormatICO, icoOf(t, encBMP(t, redImg), 64, 64)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := decode40(t, h.analyze40("tags,caption", tc.img))
			names := tagNames(res.TagsResult.Values)
			if !slices.Contains(names, tc.format) || !slices.Contains(names, "red") {
				t.Errorf("tags %v, want %q and red", names, tc.format)
			}
			if res.Metadata != (Metadata40{Width: 64, Height: 64}) {
				t.Errorf("metadata %+v", res.Metadata)
			}
		})
	}
}

func TestAnalyze40UndecodableVariantGetsMetadataAnswer(t *testing.T) {
	// A BMP with RLE8 compression: valid, accepted by Azure, not decodable by x/image/bmp.
	img := encBMP(t, solid(64, 64, red))
	img[30] = 1 // biCompression = BI_RLE8
	h := newHarness(t, nil)
	res := decode40(t, h.analyze40("tags,caption", img))
	names := tagNames(res.TagsResult.Values)
	if !slices.Contains(names, FormatBMP) || slices.Contains(names, "red") {
		t.Errorf("tags %v: want the format and no colour", names)
	}
	if res.CaptionResult.Text != "a square BMP image" {
		t.Errorf("caption %q", res.CaptionResult.Text)
	}
}

func TestLargeImagesAreNotDecodedBeyondTheLimit(t *testing.T) {
	h := newHarness(t, &Options{MaxDecodePixels: 100 * 100})
	res := decode40(t, h.analyze40("tags", solidPNG(t, 120, 120, red)))
	if hasTag(res.TagsResult.Values, "red") {
		t.Errorf("tags %v: pixels were decoded above MaxDecodePixels", tagNames(res.TagsResult.Values))
	}
	res = decode40(t, h.analyze40("tags", solidPNG(t, 100, 100, red)))
	if !hasTag(res.TagsResult.Values, "red") {
		t.Errorf("tags %v: pixels not decoded at the limit", tagNames(res.TagsResult.Values))
	}
}
