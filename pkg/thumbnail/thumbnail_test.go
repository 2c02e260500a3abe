package thumbnail

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"math/rand/v2"
	"sync"
	"testing"

	"golang.org/x/image/draw"

	"imgpipe/pkg/samples"
)

// quadrants is a w x h PNG: red top-left, green top-right, blue bottom-left, white
// bottom-right.
func quadrants(t *testing.T, w, h int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			c := color.RGBA{255, 0, 0, 255}
			switch {
			case x >= w/2 && y < h/2:
				c = color.RGBA{0, 255, 0, 255}
			case x < w/2 && y >= h/2:
				c = color.RGBA{0, 0, 255, 255}
			case x >= w/2 && y >= h/2:
				c = color.RGBA{255, 255, 255, 255}
			}
			img.SetRGBA(x, y, c)
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// at decodes a JPEG thumbnail and names the colour at (x, y): "red", "green", "blue",
// "white" or "other".
func at(t *testing.T, b []byte, x, y int) string {
	t.Helper()
	img, err := jpeg.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	r, g, bl, _ := img.At(x, y).RGBA()
	hi := func(v uint32) bool { return v > 0xc000 }
	lo := func(v uint32) bool { return v < 0x4000 }
	switch {
	case hi(r) && lo(g) && lo(bl):
		return "red"
	case lo(r) && hi(g) && lo(bl):
		return "green"
	case lo(r) && lo(g) && hi(bl):
		return "blue"
	case hi(r) && hi(g) && hi(bl):
		return "white"
	}
	return "other"
}

func TestMakeScalesCropsAndTurnsUpright(t *testing.T) {
	src := quadrants(t, 1280, 720)
	for _, tc := range []struct {
		name    string
		opts    *Options
		size    image.Point
		corners [4]string // top-left, top-right, bottom-left, bottom-right
	}{
		{"scaled", nil, image.Pt(320, 180), [4]string{"red", "green", "blue", "white"}},
		{"smaller side", &Options{MaxSide: 64}, image.Pt(64, 36), [4]string{"red", "green", "blue", "white"}},
		{"cropped to the right half", &Options{Crop: image.Rect(640, 0, 1280, 720)}, image.Pt(284, 320), [4]string{"green", "green", "white", "white"}},
		{"crop clipped to the image", &Options{Crop: image.Rect(640, 360, 5000, 5000)}, image.Pt(320, 180), [4]string{"white", "white", "white", "white"}},
		{"orientation 6 (rotate clockwise)", &Options{Orientation: 6}, image.Pt(180, 320), [4]string{"blue", "red", "white", "green"}},
		{"orientation 8 (rotate counter-clockwise)", &Options{Orientation: 8}, image.Pt(180, 320), [4]string{"green", "white", "red", "blue"}},
		{"orientation 3 (rotate half a turn)", &Options{Orientation: 3}, image.Pt(320, 180), [4]string{"white", "blue", "green", "red"}},
		{"orientation 2 (mirror)", &Options{Orientation: 2}, image.Pt(320, 180), [4]string{"green", "red", "white", "blue"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, size, err := Make(bytes.NewReader(src), tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := jpeg.DecodeConfig(bytes.NewReader(b))
			if err != nil || size != tc.size || cfg.Width != tc.size.X || cfg.Height != tc.size.Y {
				t.Fatalf("size %v, JPEG %dx%d (%v); want %v", size, cfg.Width, cfg.Height, err, tc.size)
			}
			w, h := size.X, size.Y
			got := [4]string{at(t, b, 4, 4), at(t, b, w-5, 4), at(t, b, 4, h-5), at(t, b, w-5, h-5)}
			if got != tc.corners {
				t.Errorf("corners %v, want %v", got, tc.corners)
			}
		})
	}
}

func TestMakeNeverScalesUp(t *testing.T) {
	_, size, err := Make(bytes.NewReader(quadrants(t, 60, 40)), nil)
	if err != nil || size != image.Pt(60, 40) {
		t.Fatalf("size %v, %v; want 60x40", size, err)
	}
}

type failingReader struct{ after []byte }

var errStalled = errors.New("connection reset")

func (f *failingReader) Read(p []byte) (int, error) {
	if len(f.after) == 0 {
		return 0, errStalled
	}
	n := copy(p, f.after)
	f.after = f.after[n:]
	return n, nil
}

func TestMakeErrors(t *testing.T) {
	whole := quadrants(t, 640, 640)
	for _, bad := range [][]byte{nil, []byte("not an image at all"), whole[:len(whole)/2]} {
		if _, _, err := Make(bytes.NewReader(bad), nil); !errors.Is(err, ErrUndecodable) {
			t.Errorf("%d bytes: %v, want ErrUndecodable", len(bad), err)
		}
	}
	// A read that fails is the reader's error, not a verdict on the image.
	_, _, err := Make(&failingReader{after: whole[:len(whole)/2]}, nil)
	if !errors.Is(err, errStalled) || errors.Is(err, ErrUndecodable) {
		t.Errorf("failed read: %v, want the reader's error", err)
	}
	var _ io.Reader = (*failingReader)(nil)
}

func TestFits(t *testing.T) {
	for _, tc := range []struct {
		w, h int
		max  int64
		want bool
	}{
		{1000, 1000, 1_000_000, true}, {1001, 1000, 1_000_000, false}, {0, 10, 0, false},
		{6000, 4000, 0, true}, {6001, 4000, 0, false}, {8000, 6000, 0, false}, {100000, 100000, 0, false},
	} {
		if got := Fits(tc.w, tc.h, tc.max); got != tc.want {
			t.Errorf("Fits(%d, %d, %d) = %v, want %v", tc.w, tc.h, tc.max, got, tc.want)
		}
	}
}

// TestResizeSameSizeAsScaler checks that an image kept at its size (or a part of it, a crop)
// gets the pixels the scaler would give it, for every kind of image the decoders return.
func TestResizeSameSizeAsScaler(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	full := image.Rect(3, 5, 40, 28) // not at the origin, as a decoded sub-image may be
	nrgba := image.NewNRGBA(full)
	rgba := image.NewRGBA(full)
	rgba0 := image.NewRGBA(image.Rect(0, 0, full.Dx(), full.Dy())) // returned as it is
	gray := image.NewGray(full)
	gray16 := image.NewGray16(full)
	nrgba64 := image.NewNRGBA64(full)
	cmyk := image.NewCMYK(full)
	ycc := image.NewYCbCr(full, image.YCbCrSubsampleRatio420)
	pal := image.NewPaletted(full, color.Palette{color.NRGBA{1, 2, 3, 100}, color.RGBA{200, 100, 0, 255}, color.Transparent})
	for y := full.Min.Y; y < full.Max.Y; y++ {
		for x := full.Min.X; x < full.Max.X; x++ {
			c := color.NRGBA{uint8(rng.IntN(256)), uint8(rng.IntN(256)), uint8(rng.IntN(256)), uint8(rng.IntN(256))}
			nrgba.Set(x, y, c)
			rgba.Set(x, y, c)
			rgba0.Set(x-full.Min.X, y-full.Min.Y, c)
			gray.Set(x, y, c)
			gray16.Set(x, y, color.Gray16{uint16(rng.IntN(1 << 16))})
			nrgba64.Set(x, y, color.NRGBA64{uint16(rng.IntN(1 << 16)), uint16(rng.IntN(1 << 16)), uint16(rng.IntN(1 << 16)), uint16(rng.IntN(1 << 16))})
			cmyk.Set(x, y, c)
			pal.SetColorIndex(x, y, uint8(rng.IntN(3)))
		}
	}
	for i := range ycc.Y {
		ycc.Y[i] = uint8(rng.IntN(256))
	}
	for i := range ycc.Cb {
		ycc.Cb[i], ycc.Cr[i] = uint8(rng.IntN(256)), uint8(rng.IntN(256))
	}
	for _, src := range []image.Image{nrgba, rgba, rgba0, gray, gray16, nrgba64, cmyk, ycc, pal} {
		for _, b := range []image.Rectangle{src.Bounds(), image.Rect(10, 7, 30, 20)} {
			got := resize(src, b, b.Dx(), b.Dy())
			want := image.NewRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
			draw.BiLinear.Scale(want, want.Bounds(), src, b, draw.Src, nil)
			if got.Bounds() != want.Bounds() || !bytes.Equal(got.Pix, want.Pix) {
				t.Errorf("%T, part %v: the pixels differ from the scaler's", src, b)
			}
		}
	}
}

// reference is Make done with nothing kept across calls: the decoders' own buffered reader
// and the JPEG encoder's own buffered writer.
func reference(t *testing.T, data []byte, o *Options) []byte {
	t.Helper()
	img, _, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	b := img.Bounds()
	if c := o.Crop.Add(b.Min).Intersect(b); !c.Empty() {
		b = c
	}
	w, h := fit(b.Dx(), b.Dy(), DefaultMaxSide)
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, upright(resize(img, b, w, h), o.Orientation), &jpeg.Options{Quality: DefaultQuality}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestMakeKeepsNothingAcrossImages: the readers and buffers Make reuses give every image
// the same bytes as a fresh decode and encode, whatever image or failed read came before,
// interleaved over several goroutines.
func TestMakeKeepsNothingAcrossImages(t *testing.T) {
	var inputs [][]byte
	var opts []*Options
	for i, f := range []string{"png", "jpeg", "gif", "bmp", "tiff", "png", "jpeg"} {
		w, h := 64+37*i, 48+91*i // sizes at, below and above MaxSide
		data, err := samples.Image(int64(900+i), w, h, f)
		if err != nil {
			t.Fatal(err)
		}
		inputs = append(inputs, data)
		opts = append(opts, &Options{Orientation: 1 + i%8, Crop: image.Rect(0, 0, w-i, h)})
	}
	want := make([][]byte, len(inputs))
	for i := range inputs {
		want[i] = reference(t, inputs[i], opts[i])
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for round := range 6 {
				for k := range inputs {
					i := (k + g + round) % len(inputs)
					// A read that fails half way leaves bytes in the buffered reader.
					if _, _, err := Make(&failingReader{after: inputs[i][:len(inputs[i])/2]}, opts[i]); !errors.Is(err, errStalled) {
						t.Errorf("failed read of image %d: %v, want the reader's error", i, err)
					}
					got, _, err := Make(bytes.NewReader(inputs[i]), opts[i])
					if err != nil || !bytes.Equal(got, want[i]) {
						t.Errorf("image %d, round %d: %d bytes, err %v; want the %d bytes of a fresh decode and encode", i, round, len(got), err, len(want[i]))
					}
				}
			}
		})
	}
	wg.Wait()
}

// BenchmarkMake makes the thumbnail of a 64x64 PNG (kept at its size, as in the analyzer's
// process benchmark) and of a 640x480 one (scaled):
//
//	go test ./pkg/thumbnail -run '^$' -bench Make -benchmem
func BenchmarkMake(b *testing.B) {
	for _, size := range []image.Point{{64, 64}, {640, 480}} {
		b.Run(fmt.Sprintf("png=%dx%d", size.X, size.Y), func(b *testing.B) {
			data, err := samples.Image(7, size.X, size.Y, "png")
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := Make(bytes.NewReader(data), nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
