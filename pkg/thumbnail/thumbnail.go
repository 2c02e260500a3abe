// Package thumbnail makes the small JPEG preview of an image: decoded from a stream, cut to
// a crop when one is given (Vision's smart crop), scaled so that its longer side is at most
// MaxSide, turned upright by its EXIF orientation, and encoded as JPEG. It is pure logic: it
// reads what it is given and imports no cloud SDK.
//
// Memory: Go's decoders hold the whole decoded image (JPEG 1.5 to 3 bytes a pixel, others 4,
// 16-bit PNG and TIFF 8), so the caller bounds the pixels it hands in (Fits) and how many decodes run at once.
package thumbnail

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"io"
	"sync"

	// The decoders of the formats a thumbnail is made of.
	_ "image/gif"
	_ "image/png"

	_ "golang.org/x/image/bmp"
	"golang.org/x/image/draw"
	_ "golang.org/x/image/tiff"
	_ "golang.org/x/image/webp"
)

// Defaults of Options.
const (
	DefaultMaxSide = 320
	DefaultQuality = 80
	// DefaultMaxPixels bounds the images decoded for a thumbnail: 24 megapixels, 36 MB
	// decoded for a JPEG (4:2:0), 96 MB for an 8-bit PNG, 192 MB in the worst case (a 16-bit
	// PNG or TIFF: 8 bytes a pixel).
	DefaultMaxPixels = 24_000_000
)

// Options tune a thumbnail. A nil *Options means the defaults.
type Options struct {
	MaxSide int // longer side in pixels; default DefaultMaxSide
	Quality int // JPEG quality 1..100; default DefaultQuality
	// Orientation is the image's EXIF orientation (1 to 8; 0 or 1: upright as stored).
	Orientation int
	// Crop, when not empty, is the part of the image (in its stored pixels) the thumbnail
	// shows; it is clipped to the image.
	Crop image.Rectangle
}

// ErrUndecodable: the bytes are not an image this package can decode (a format without a Go
// decoder, such as HEIC or ICO, or a variant the decoder refuses). No thumbnail can be made.
var ErrUndecodable = errors.New("image cannot be decoded for a thumbnail")

// Fits reports whether an image of w x h pixels may be decoded under maxPixels
// (DefaultMaxPixels when maxPixels <= 0).
func Fits(w, h int, maxPixels int64) bool {
	if maxPixels <= 0 {
		maxPixels = DefaultMaxPixels
	}
	return w > 0 && h > 0 && int64(w)*int64(h) <= maxPixels
}

// Make decodes the image in r and returns its thumbnail as JPEG with its size. An error of
// r itself is returned as it came (wrapped); bytes that do not decode give ErrUndecodable.
func Make(r io.Reader, opts *Options) ([]byte, image.Point, error) {
	o := Options{}
	if opts != nil {
		o = *opts
	}
	if o.MaxSide <= 0 {
		o.MaxSide = DefaultMaxSide
	}
	if o.Quality <= 0 || o.Quality > 100 {
		o.Quality = DefaultQuality
	}
	src := &errReader{r: r}
	br := readers.Get().(*bufio.Reader)
	br.Reset(src)
	img, _, err := image.Decode(br)
	br.Reset(nil) // drops what it had buffered and its hold on r
	readers.Put(br)
	if err != nil {
		if src.err != nil {
			return nil, image.Point{}, fmt.Errorf("read image: %w", src.err)
		}
		return nil, image.Point{}, fmt.Errorf("%w: %v", ErrUndecodable, err)
	}
	b := img.Bounds()
	if c := o.Crop.Add(b.Min).Intersect(b); !c.Empty() {
		b = c
	}
	w, h := fit(b.Dx(), b.Dy(), o.MaxSide)
	small := resize(img, b, w, h)
	img = nil // the decoded image is garbage from here on, unless small is the image itself
	out := upright(small, o.Orientation)
	var buf flushBuffer
	buf.Grow(out.Bounds().Dx()*out.Bounds().Dy()/4 + 512) // about 2 bits a pixel at quality 80
	if err := jpeg.Encode(&buf, out, &jpeg.Options{Quality: o.Quality}); err != nil {
		return nil, image.Point{}, fmt.Errorf("encode thumbnail: %w", err)
	}
	return buf.Bytes(), out.Bounds().Size(), nil
}

// readers are the buffered readers the decoders read through, kept across images:
// image.Decode wraps any reader that cannot Peek in a new 4 KiB bufio.Reader of this size.
var readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4096) }}

// flushBuffer is a bytes.Buffer that image/jpeg writes into directly: its encoder wraps a
// writer without Flush and WriteByte in a new 4 KiB bufio.Writer.
type flushBuffer struct{ bytes.Buffer }

func (*flushBuffer) Flush() error { return nil }

// resize scales the part b of img to w x h. At the same size it only copies the pixels (the
// scaler would give the same ones, TestResizeSameSizeAsScaler, at several times the cost), or
// returns img itself when it is already the whole RGBA image asked for.
func resize(img image.Image, b image.Rectangle, w, h int) *image.RGBA {
	if w == b.Dx() && h == b.Dy() {
		if rgba, ok := img.(*image.RGBA); ok && b == rgba.Bounds() && b.Min == (image.Point{}) {
			return rgba
		}
		out := image.NewRGBA(image.Rect(0, 0, w, h))
		draw.Draw(out, out.Bounds(), img, b.Min, draw.Src)
		return out
	}
	out := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.BiLinear.Scale(out, out.Bounds(), img, b, draw.Src, nil)
	return out
}

// fit scales w x h down (never up) so that its longer side is at most side, keeping at least
// one pixel on each axis.
func fit(w, h, side int) (int, int) {
	if w <= side && h <= side {
		return w, h
	}
	if w >= h {
		return side, max(1, (h*side+w/2)/w)
	}
	return max(1, (w*side+h/2)/h), side
}

// upright returns img as displayed under EXIF orientation o (1: as stored; 2 to 8 mirror
// and/or rotate it).
func upright(img *image.RGBA, o int) *image.RGBA {
	if o < 2 || o > 8 {
		return img
	}
	w, h := img.Bounds().Dx(), img.Bounds().Dy()
	ow, oh := w, h
	if o >= 5 {
		ow, oh = h, w
	}
	out := image.NewRGBA(image.Rect(0, 0, ow, oh))
	for y := range oh {
		for x := range ow {
			// (sx, sy): the stored pixel shown at (x, y).
			var sx, sy int
			switch o {
			case 2:
				sx, sy = w-1-x, y
			case 3:
				sx, sy = w-1-x, h-1-y
			case 4:
				sx, sy = x, h-1-y
			case 5:
				sx, sy = y, x
			case 6:
				sx, sy = y, h-1-x
			case 7:
				sx, sy = w-1-y, h-1-x
			case 8:
				sx, sy = w-1-y, x
			}
			out.SetRGBA(x, y, img.RGBAAt(sx, sy))
		}
	}
	return out
}

// errReader remembers the first error of r other than io.EOF, so that a failed read is told
// apart from bytes that do not decode.
type errReader struct {
	r   io.Reader
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF && e.err == nil {
		e.err = err
	}
	return n, err
}
