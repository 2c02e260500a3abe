package samples

import (
	"bytes"
	"crypto/sha256"
	"image"
	"testing"

	"imgpipe/pkg/imagemeta"
)

var imageFormats = []string{"jpeg", "png", "gif", "bmp", "tiff"}

func TestImageIsDeterministicAndDistinct(t *testing.T) {
	for _, format := range imageFormats {
		t.Run(format, func(t *testing.T) {
			seen := map[[32]byte]int64{}
			for seed := int64(-3); seed < 60; seed++ {
				a, err := Image(seed, 64, 48, format)
				if err != nil {
					t.Fatal(err)
				}
				b, err := Image(seed, 64, 48, format)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(a, b) {
					t.Fatalf("seed %d: two calls differ", seed)
				}
				h := sha256.Sum256(a)
				if other, dup := seen[h]; dup {
					t.Fatalf("seeds %d and %d give the same bytes", other, seed)
				}
				seen[h] = seed
			}
		})
	}
}

// TestImageTinyIsDistinct covers images too small for the picture to tell seeds apart:
// the comment (or BMP resolution fields) still does.
func TestImageTinyIsDistinct(t *testing.T) {
	for _, format := range imageFormats {
		seen := map[string]bool{}
		for _, seed := range []int64{0, 1, 2, 1 << 32, -1, 1<<63 - 1} {
			b, err := Image(seed, 1, 1, format)
			if err != nil {
				t.Fatalf("%s: %v", format, err)
			}
			if seen[string(b)] {
				t.Fatalf("%s seed %d: bytes repeat", format, seed)
			}
			seen[string(b)] = true
		}
	}
}

// TestImagePicturesDiffer decodes images of different seeds and compares their pixels
// and mean colours, so that distinctness is not only in the metadata.
func TestImagePicturesDiffer(t *testing.T) {
	var pics []image.Image
	hueBuckets := map[int]bool{}
	for seed := int64(0); seed < 12; seed++ {
		b, err := Image(seed, 80, 60, "png")
		if err != nil {
			t.Fatal(err)
		}
		img, err := decode("png", b)
		if err != nil {
			t.Fatal(err)
		}
		for i, p := range pics {
			if samePixels(p, img) {
				t.Errorf("seeds %d and %d have the same pixels", i, seed)
			}
		}
		pics = append(pics, img)
		r, g, bl := mean(img)
		hueBuckets[dominant(r, g, bl)] = true
	}
	if len(hueBuckets) < 3 {
		t.Errorf("12 seeds gave %d dominant channels, want all three", len(hueBuckets))
	}
}

func dominant(r, g, b float64) int {
	switch {
	case r >= g && r >= b:
		return 0
	case g >= b:
		return 1
	}
	return 2
}

func samePixels(a, b image.Image) bool {
	if a.Bounds() != b.Bounds() {
		return false
	}
	for y := a.Bounds().Min.Y; y < a.Bounds().Max.Y; y++ {
		for x := a.Bounds().Min.X; x < a.Bounds().Max.X; x++ {
			if a.At(x, y) != b.At(x, y) {
				return false
			}
		}
	}
	return true
}

func TestImageFormatsAndSizes(t *testing.T) {
	tests := []struct {
		format string
		want   imagemeta.Format
		w, h   int
	}{
		{"jpeg", imagemeta.JPEG, 640, 480},
		{"jpg", imagemeta.JPEG, 51, 51},
		{"JPEG", imagemeta.JPEG, 17, 300},
		{"png", imagemeta.PNG, 300, 17},
		{"gif", imagemeta.GIF, 100, 100},
		{"bmp", imagemeta.BMP, 33, 21},
		{"tiff", imagemeta.TIFF, 45, 30},
		{"png", imagemeta.PNG, 16001, 2}, // too wide for Vision, cheap to make
	}
	for _, tt := range tests {
		b, err := Image(7, tt.w, tt.h, tt.format)
		if err != nil {
			t.Fatalf("%s %dx%d: %v", tt.format, tt.w, tt.h, err)
		}
		m, err := imagemeta.Inspect(bytes.NewReader(b), 0)
		if err != nil {
			t.Fatalf("%s %dx%d: Inspect: %v", tt.format, tt.w, tt.h, err)
		}
		if m.Format != tt.want || m.Width != tt.w || m.Height != tt.h {
			t.Errorf("%s %dx%d: Inspect says %s %dx%d", tt.format, tt.w, tt.h, m.Format, m.Width, m.Height)
		}
		img, err := decode(string(tt.want), b)
		if err != nil {
			t.Fatalf("%s %dx%d: decode: %v", tt.format, tt.w, tt.h, err)
		}
		if img.Bounds().Dx() != tt.w || img.Bounds().Dy() != tt.h {
			t.Errorf("%s: decoded %v", tt.format, img.Bounds())
		}
	}
}

func TestImageRejects(t *testing.T) {
	tests := []struct {
		name   string
		w, h   int
		format string
	}{
		{"zero width", 0, 10, "png"},
		{"negative height", 10, -1, "png"},
		{"too wide", maxSide + 1, 1, "png"},
		{"too many pixels", maxSide, maxSide, "png"},
		{"unknown format", 10, 10, "webp"},
		{"empty format", 10, 10, ""},
	}
	for _, tt := range tests {
		if _, err := Image(1, tt.w, tt.h, tt.format); err == nil {
			t.Errorf("%s: want an error", tt.name)
		}
	}
}

func BenchmarkImage(b *testing.B) {
	for _, format := range imageFormats {
		b.Run(format, func(b *testing.B) {
			var seed int64
			for b.Loop() {
				if _, err := Image(seed, 512, 512, format); err != nil {
					b.Fatal(err)
				}
				seed++
			}
		})
	}
}
