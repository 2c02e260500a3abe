package visionserver

import (
	"image"
	"testing"
)

func TestColourName(t *testing.T) {
	tests := []struct {
		r, g, b uint8
		want    string
	}{
		{255, 0, 0, colRed},
		{200, 30, 30, colRed},
		{0, 0, 0, colBlack},
		{30, 30, 30, colBlack},
		{40, 0, 0, colBlack},
		{255, 255, 255, colWhite},
		{240, 240, 235, colWhite},
		{128, 128, 128, colGrey},
		{0, 0, 255, colBlue},
		{0, 0, 128, colBlue},
		{30, 144, 255, colBlue},
		{0, 128, 0, colGreen},
		{0, 255, 0, colGreen},
		{255, 255, 0, colYellow},
		{255, 165, 0, colOrange},
		{139, 69, 19, colBrown},
		{0, 128, 128, colTeal},
		{64, 224, 208, colTeal},
		{128, 0, 128, colPurple},
		{138, 43, 226, colPurple},
		{255, 192, 203, colPink},
		{255, 20, 147, colPink},
	}
	for _, tc := range tests {
		if got := colourName(tc.r, tc.g, tc.b); got != tc.want {
			t.Errorf("colourName(%d,%d,%d) = %s, want %s", tc.r, tc.g, tc.b, got, tc.want)
		}
	}
}

func TestAspectNameAndArticles(t *testing.T) {
	for _, tc := range []struct {
		w, h int
		want string
	}{
		{100, 100, "square"}, {104, 100, "square"}, {110, 100, "landscape"}, {199, 100, "landscape"},
		{200, 100, "panorama"}, {1000, 51, "panorama"}, {90, 100, "portrait"}, {51, 1000, "portrait"},
	} {
		if got := aspectName(tc.w, tc.h); got != tc.want {
			t.Errorf("aspectName(%d, %d) = %s, want %s", tc.w, tc.h, got, tc.want)
		}
	}
	for in, want := range map[string]string{
		"orange square image": "an orange square image", "red image": "a red image", "ICO image": "an ICO image",
	} {
		if got := withArticle(in); got != want {
			t.Errorf("withArticle(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestTransparentPixelsCountAsWhite(t *testing.T) {
	m := image.NewNRGBA(image.Rect(0, 0, 60, 60)) // all transparent
	f := analysePixels(m)
	if f.dominant[0] != colWhite || !f.grayscale {
		t.Errorf("facts %+v", f)
	}
}

func TestCentredCrop(t *testing.T) {
	for _, tc := range []struct {
		w, h int
		r    float64
		want BoundingBox
	}{
		{200, 100, 1, BoundingBox{X: 50, W: 100, H: 100}},
		{100, 200, 1, BoundingBox{Y: 50, W: 100, H: 100}},
		{100, 100, 1.8, BoundingBox{Y: 22, W: 100, H: 56}},
		{100, 100, 0.75, BoundingBox{X: 12, W: 75, H: 100}},
		{51, 15999, 2, BoundingBox{Y: 7986, W: 51, H: 26}},
	} {
		if got := centredCrop(tc.w, tc.h, tc.r); got != tc.want {
			t.Errorf("centredCrop(%d, %d, %v) = %+v, want %+v", tc.w, tc.h, tc.r, got, tc.want)
		}
	}
}

func TestSniff(t *testing.T) {
	red64 := solid(64, 64, red)
	for want, b := range map[string][]byte{
		FormatJPEG: encJPEG(t, red64), FormatMPO: mpoOf(encJPEG(t, red64)), FormatPNG: encPNG(t, red64),
		FormatGIF: encGIF(t, red64), FormatBMP: encBMP(t, red64), FormatTIFF: encTIFF(t, red64),
		FormatWEBP: solidWebP(64, 64, 1, 2, 3), FormatICO: icoOf(t, encPNG(t, red64), 64, 64),
		"": []byte("<svg/>"),
	} {
		if got := sniff(b); got != want {
			t.Errorf("sniff = %q, want %q", got, want)
		}
	}
}

// FuzzProbe feeds arbitrary bytes through the header parsers and, for small images, the
// decoders: nothing may panic.
func FuzzProbe(f *testing.F) {
	red64 := solid(64, 64, red)
	for _, b := range [][]byte{
		encPNG(f, red64), encJPEG(f, red64), mpoOf(encJPEG(f, red64)), encGIF(f, red64), encBMP(f, red64),
		encTIFF(f, red64), solidWebP(64, 64, 9, 8, 7), icoOf(f, encPNG(f, red64), 64, 64),
		icoOf(f, encBMP(f, red64), 64, 64), pngHeaderOnly(16000, 1),
	} {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := probe(b)
		if err != nil {
			return
		}
		if p.width <= 0 || p.height <= 0 {
			return // refused later by the dimension check
		}
		if p.width*p.height > 1<<20 || p.width > 1<<12 || p.height > 1<<12 {
			return
		}
		if m, err := decode(p, b); err == nil && m != nil {
			analysePixels(m)
		}
	})
}
