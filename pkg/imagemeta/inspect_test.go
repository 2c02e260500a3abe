package imagemeta

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"

	"imgpipe/pkg/failure"
)

var (
	le = order(binary.LittleEndian)
	be = order(binary.BigEndian)
)

// camEXIF is the TIFF structure of an EXIF block with every field Inspect reports.
func camEXIF(o order, orientation uint16) []byte {
	return buildTIFF(o,
		[]tfield{ascii(tagMake, "Canon"), ascii(tagModel, "EOS 5D Mark IV"), short(o, tagOrientation, orientation)},
		[]tfield{ascii(0x829A, "x"), ascii(tagDateTimeOriginal, "2024:06:01 18:30:05")},
		[]tfield{ascii(0x0001, "N"), rationals(o, tagGPSLatitude, 3), ascii(0x0003, "E"), rationals(o, tagGPSLongitude, 3)},
	)
}

// literalEXIF is a big-endian TIFF structure written out byte by byte, independent of
// buildTIFF: Orientation 6 and Make "Nik" inline.
var literalEXIF = []byte("MM\x00\x2a\x00\x00\x00\x08" +
	"\x00\x02" +
	"\x01\x12\x00\x03\x00\x00\x00\x01\x00\x06\x00\x00" +
	"\x01\x0f\x00\x02\x00\x00\x00\x04Nik\x00" +
	"\x00\x00\x00\x00")

func TestInspect(t *testing.T) {
	jpg := encJPEG(t, 640, 480)
	bigICC := withSegment(jpg, 0xE2, append([]byte("ICC_PROFILE\x00"), make([]byte, 60000)...))
	progressive := bytes.Replace(jpg, []byte{0xFF, 0xC0}, []byte{0xFF, 0xC2}, 1)
	pngBytes := encPNG(t, 300, 200)
	badCRC := append([]byte{}, pngBytes...)
	badCRC[29] ^= 0xFF // last byte of the IHDR CRC

	tests := []struct {
		name   string
		data   []byte
		limit  int64
		format Format
		w, h   int
		exif   *EXIF
		reason string // non-empty: want a permanent failure with this reason
	}{
		// Standard-library encoders.
		{name: "png", data: pngBytes, format: PNG, w: 300, h: 200},
		{name: "paletted png", data: encPalettedPNG(t, 33, 17), format: PNG, w: 33, h: 17},
		{name: "jpeg", data: jpg, format: JPEG, w: 640, h: 480},
		{name: "gif", data: encGIF(t, 50, 70), format: GIF, w: 50, h: 70},
		{name: "jpeg progressive SOF2", data: progressive, format: JPEG, w: 640, h: 480},
		{name: "jpeg fill bytes before marker", data: append([]byte{0xFF, 0xD8, 0xFF, 0xFF, 0xFF}, jpg[3:]...), format: JPEG, w: 640, h: 480},
		{name: "jpeg large APP2 within limit", data: bigICC, format: JPEG, w: 640, h: 480},

		// EXIF.
		{name: "jpeg exif little endian", data: withEXIF(jpg, camEXIF(le, 1)), format: JPEG, w: 640, h: 480,
			exif: &EXIF{Make: "Canon", Model: "EOS 5D Mark IV", DateTimeOriginal: "2024:06:01 18:30:05", Orientation: 1, HasGPS: true, Latitude: 3723.0 / 3600, Longitude: 3723.0 / 3600}},
		{name: "jpeg exif big endian", data: withEXIF(jpg, camEXIF(be, 8)), format: JPEG, w: 640, h: 480,
			exif: &EXIF{Make: "Canon", Model: "EOS 5D Mark IV", DateTimeOriginal: "2024:06:01 18:30:05", Orientation: 8, HasGPS: true, Latitude: 3723.0 / 3600, Longitude: 3723.0 / 3600}},
		{name: "jpeg literal exif", data: withEXIF(jpg, literalEXIF), format: JPEG, w: 640, h: 480,
			exif: &EXIF{Make: "Nik", Orientation: 6}},
		{name: "jpeg exif after xmp app1", data: withSegment(withEXIF(jpg, literalEXIF), 0xE1, []byte("http://ns.adobe.com/xap/1.0/\x00<x/>")),
			format: JPEG, w: 640, h: 480, exif: &EXIF{Make: "Nik", Orientation: 6}},
		{name: "jpeg exif gps without position", data: withEXIF(jpg, buildTIFF(le, []tfield{ascii(tagModel, "X1")}, nil, []tfield{ascii(0x0000, "v")})),
			format: JPEG, w: 640, h: 480, exif: &EXIF{Model: "X1"}},
		{name: "jpeg exif gps latitude only", data: withEXIF(jpg, buildTIFF(be, []tfield{ascii(tagModel, "X2")}, nil, []tfield{rationals(be, tagGPSLatitude, 3)})),
			format: JPEG, w: 640, h: 480, exif: &EXIF{Model: "X2"}},
		{name: "jpeg exif gps south west", data: withEXIF(jpg, buildTIFF(le, []tfield{ascii(tagModel, "X3")}, nil,
			[]tfield{ascii(0x0001, "S"), rationals(le, tagGPSLatitude, 3), ascii(0x0003, "W"), rationals(le, tagGPSLongitude, 3)})),
			format: JPEG, w: 640, h: 480, exif: &EXIF{Model: "X3", HasGPS: true, Latitude: -3723.0 / 3600, Longitude: -3723.0 / 3600}},
		{name: "jpeg exif gps without references", data: withEXIF(jpg, buildTIFF(le, []tfield{ascii(tagModel, "X4")}, nil,
			[]tfield{rationals(le, tagGPSLatitude, 3), rationals(le, tagGPSLongitude, 3)})),
			format: JPEG, w: 640, h: 480, exif: &EXIF{Model: "X4"}},
		{name: "jpeg exif gps zero denominator", data: withEXIF(jpg, buildTIFF(le, []tfield{ascii(tagModel, "X5")}, nil,
			[]tfield{ascii(0x0001, "N"), {tagGPSLatitude, 5, 3, make([]byte, 24)}, ascii(0x0003, "E"), rationals(le, tagGPSLongitude, 3)})),
			format: JPEG, w: 640, h: 480, exif: &EXIF{Model: "X5"}},
		{name: "jpeg exif bad date and orientation ignored", data: withEXIF(jpg, buildTIFF(le,
			[]tfield{ascii(tagMake, "  Fuji\x01  "), short(le, tagOrientation, 9)}, []tfield{ascii(tagDateTimeOriginal, "    :  :     :  :  ")}, nil)),
			format: JPEG, w: 640, h: 480, exif: &EXIF{Make: "Fuji"}},
		{name: "jpeg exif invalid utf8 cleaned", data: withEXIF(jpg, buildTIFF(be, []tfield{ascii(tagMake, "Ca\xffnon")}, nil, nil)),
			format: JPEG, w: 640, h: 480, exif: &EXIF{Make: "Canon"}},
		{name: "jpeg exif value offset out of range", data: withEXIF(jpg, func() []byte {
			b := buildTIFF(le, []tfield{ascii(tagMake, "LongMakeName"), short(le, tagOrientation, 3)}, nil, nil)
			binary.LittleEndian.PutUint32(b[8+2+8:], 0xFFFFFFF0) // Make's value offset
			return b
		}()), format: JPEG, w: 640, h: 480, exif: &EXIF{Orientation: 3}},
		{name: "jpeg exif garbage tiff", data: withEXIF(jpg, []byte("XX\x00*garbage")), format: JPEG, w: 640, h: 480},
		{name: "jpeg exif huge entry count", data: withEXIF(jpg, []byte("II*\x00\x08\x00\x00\x00\xff\xff\x12\x01\x03\x00\x01\x00\x00\x00\x02\x00\x00\x00")),
			format: JPEG, w: 640, h: 480, exif: &EXIF{Orientation: 2}},
		{name: "jpeg exif ifd offset loops to header", data: withEXIF(jpg, []byte("II*\x00\x00\x00\x00\x00")), format: JPEG, w: 640, h: 480},

		// Hand-built headers.
		{name: "bmp info header", data: bmpHeader(40, 123, 45), format: BMP, w: 123, h: 45},
		{name: "bmp top-down", data: bmpHeader(124, 77, -66), format: BMP, w: 77, h: 66},
		{name: "bmp core header", data: bmpHeader(12, 640, 400), format: BMP, w: 640, h: 400},
		{name: "bmp zero width", data: bmpHeader(40, 0, 45), reason: ReasonCorruptImage},
		{name: "bmp negative width", data: bmpHeader(40, -5, 45), reason: ReasonCorruptImage},
		{name: "webp lossy", data: webpVP8(1920, 1080), format: WEBP, w: 1920, h: 1080},
		{name: "webp lossless", data: webpVP8L(16383, 1), format: WEBP, w: 16383, h: 1},
		{name: "webp extended", data: webpVP8X(20000, 300), format: WEBP, w: 20000, h: 300},
		{name: "webp unknown chunk", data: riff("ABCD", make([]byte, 20)), reason: ReasonCorruptImage},
		{name: "webp lossy without start code", data: riff("VP8 ", make([]byte, 20)), reason: ReasonCorruptImage},
		{name: "webp lossless bad signature", data: riff("VP8L", make([]byte, 20)), reason: ReasonCorruptImage},
		{name: "webp truncated", data: webpVP8(10, 10)[:24], reason: ReasonCorruptImage},
		{name: "tiff little endian long", data: tiffFile(le, 4000, 3000, false, 0), format: TIFF, w: 4000, h: 3000},
		{name: "tiff big endian short", data: tiffFile(be, 640, 480, true, 0), format: TIFF, w: 640, h: 480},
		{name: "tiff ifd after image data", data: tiffFile(be, 51, 52, true, 100000), format: TIFF, w: 51, h: 52},
		{name: "tiff ifd beyond limit", data: tiffFile(le, 51, 52, true, 100000), limit: 50000, reason: ReasonHeaderBeyondLimit},
		{name: "tiff ifd offset past end", data: tiffFile(le, 51, 52, true, 10)[:12], reason: ReasonCorruptImage},
		{name: "tiff without dimensions", data: []byte("II*\x00\x08\x00\x00\x00\x01\x00\xfe\x00\x04\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"), reason: ReasonCorruptImage},
		{name: "tiff ifd offset inside header", data: []byte("II*\x00\x03\x00\x00\x00"), reason: ReasonCorruptImage},
		{name: "bigtiff", data: []byte("II+\x00\x08\x00\x00\x00\x10\x00\x00\x00\x00\x00\x00\x00"), reason: ReasonUnsupportedFormat},
		{name: "ico", data: icoFile([2]int{16, 16}, [2]int{0, 0}, [2]int{32, 32}), format: ICO, w: 256, h: 256},
		{name: "ico single", data: icoFile([2]int{48, 24}), format: ICO, w: 48, h: 24},
		{name: "heic", data: ftyp("heic", "mif1", "heic"), reason: ReasonUnsupportedFormat},
		{name: "avif", data: ftyp("avif", "mif1", "miaf"), reason: ReasonUnsupportedFormat},

		// Not images.
		{name: "empty", data: nil, reason: ReasonNotAnImage},
		{name: "text", data: []byte("hello, this is not an image\n"), reason: ReasonNotAnImage},
		{name: "html", data: []byte("<!DOCTYPE html><html><body>x</body></html>"), reason: ReasonNotAnImage},
		{name: "text starting with BM", data: []byte("BMW cars are made in Munich, Germany."), reason: ReasonNotAnImage},
		{name: "mp4 video", data: ftyp("isom", "iso2", "mp41"), reason: ReasonNotAnImage},
		{name: "zeros", data: make([]byte, 100), reason: ReasonNotAnImage},

		// Truncated and corrupt.
		{name: "png signature only", data: pngBytes[:8], reason: ReasonCorruptImage},
		{name: "png cut in IHDR", data: pngBytes[:20], reason: ReasonCorruptImage},
		{name: "png bad IHDR crc", data: badCRC, reason: ReasonCorruptImage},
		{name: "jpeg soi only", data: jpg[:3], reason: ReasonCorruptImage},
		{name: "jpeg cut before frame header", data: jpg[:100], reason: ReasonCorruptImage},
		{name: "jpeg eoi before frame", data: []byte{0xFF, 0xD8, 0xFF, 0xD9}, reason: ReasonCorruptImage},
		{name: "jpeg scan before frame", data: []byte{0xFF, 0xD8, 0xFF, 0xDA, 0x00, 0x02}, reason: ReasonCorruptImage},
		{name: "jpeg segment length 1", data: []byte{0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x01}, reason: ReasonCorruptImage},
		{name: "jpeg zero height", data: []byte{0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x08, 8, 0, 0, 0, 10, 3}, reason: ReasonCorruptImage},
		{name: "jpeg exif segment cut", data: withEXIF(jpg, camEXIF(le, 1))[:40], reason: ReasonCorruptImage},
		{name: "gif header only", data: []byte("GIF89a"), reason: ReasonCorruptImage},
		{name: "bmp cut", data: bmpHeader(40, 10, 10)[:20], reason: ReasonCorruptImage},
		{name: "ico directory cut", data: icoFile([2]int{16, 16}, [2]int{32, 32})[:30], reason: ReasonCorruptImage},

		// Limits.
		{name: "jpeg large APP2 beyond limit", data: bigICC, limit: 30000, reason: ReasonHeaderBeyondLimit},
		{name: "png within tiny limit", data: pngBytes, limit: 33, format: PNG, w: 300, h: 200},
		{name: "png beyond tiny limit", data: pngBytes, limit: 20, reason: ReasonHeaderBeyondLimit},
		{name: "gif beyond tiny limit", data: encGIF(t, 5, 5), limit: 8, reason: ReasonHeaderBeyondLimit},
		{name: "gif within limit", data: encGIF(t, 5, 5), limit: 13 + 3*256, // screen descriptor and global colour table
			format: GIF, w: 5, h: 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			limit := tt.limit
			if limit == 0 {
				limit = DefaultLimit
			}
			cr := &countingReader{r: bytes.NewReader(tt.data)}
			m, err := Inspect(cr, tt.limit)
			if cr.n > limit {
				t.Errorf("read %d bytes, limit %d", cr.n, limit)
			}
			if tt.reason != "" {
				if err == nil {
					t.Fatalf("Inspect = %+v, want error %s", m, tt.reason)
				}
				if m != nil {
					t.Errorf("Meta = %+v with error", m)
				}
				if !failure.IsPermanent(err) || failure.ReasonOf(err) != tt.reason {
					t.Fatalf("error %v: class %v reason %q, want permanent %q", err, failure.ClassOf(err), failure.ReasonOf(err), tt.reason)
				}
				return
			}
			if err != nil {
				t.Fatalf("Inspect: %v", err)
			}
			if m.Format != tt.format || m.MIME != tt.format.MIME() || m.Width != tt.w || m.Height != tt.h {
				t.Errorf("got %s %s %dx%d, want %s %s %dx%d", m.Format, m.MIME, m.Width, m.Height, tt.format, tt.format.MIME(), tt.w, tt.h)
			}
			switch {
			case tt.exif == nil && m.EXIF != nil:
				t.Errorf("EXIF = %+v, want none", *m.EXIF)
			case tt.exif != nil && m.EXIF == nil:
				t.Errorf("EXIF = nil, want %+v", *tt.exif)
			case tt.exif != nil && *m.EXIF != *tt.exif:
				t.Errorf("EXIF = %+v, want %+v", *m.EXIF, *tt.exif)
			}
		})
	}
}

func TestInspectNotAnImageSaysWhatItIs(t *testing.T) {
	_, err := Inspect(strings.NewReader("just some text"), 0)
	if err == nil || !strings.Contains(err.Error(), "text/plain") {
		t.Fatalf("error %v should name the detected content type", err)
	}
}

// countingReader counts the bytes handed out.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func TestInspectReadsOnlyTheHeader(t *testing.T) {
	// A header is a few hundred bytes; allow the sniff buffer and one read-ahead buffer.
	const most = SniffLen + 4096
	big := encPNG(t, 1500, 1500)
	jpg := withEXIF(encJPEG(t, 1500, 1500), camEXIF(le, 1))
	for name, data := range map[string][]byte{"png": big, "jpeg with exif": jpg, "tiff": tiffFile(le, 10, 10, false, 0)} {
		t.Run(name, func(t *testing.T) {
			cr := &countingReader{r: io.MultiReader(bytes.NewReader(data), infinite{})}
			if _, err := Inspect(cr, 1<<30); err != nil {
				t.Fatal(err)
			}
			if cr.n > most {
				t.Errorf("read %d bytes of %d, want at most %d", cr.n, len(data), most)
			}
		})
	}
}

// infinite is an endless stream of zeros, to show Inspect stops on its own.
type infinite struct{}

func (infinite) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// failingReader returns data, then err.
type failingReader struct {
	data []byte
	err  error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if len(f.data) == 0 {
		return 0, f.err
	}
	n := copy(p, f.data)
	f.data = f.data[n:]
	return n, nil
}

func TestInspectReaderErrorsKeepTheirClass(t *testing.T) {
	reset := errors.New("connection reset by peer")
	jpg := encJPEG(t, 64, 64)
	tests := []struct {
		name   string
		r      io.Reader
		class  failure.Class
		reason string
	}{
		{"error before any byte", &failingReader{err: reset}, failure.Transient, "Unclassified"},
		{"error in the sniff window", &failingReader{data: jpg[:100], err: reset}, failure.Transient, "Unclassified"},
		{"error after the sniff window", &failingReader{data: bigPrefix(jpg), err: reset}, failure.Transient, "Unclassified"},
		{"classified error kept", &failingReader{data: jpg[:10], err: failure.ThrottledAfter("SlowDown", 0, reset)}, failure.Throttled, "SlowDown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Inspect(tt.r, 0)
			if err == nil {
				t.Fatal("want an error")
			}
			if !errors.Is(err, reset) {
				t.Errorf("error %v lost its cause", err)
			}
			if failure.ClassOf(err) != tt.class || failure.ReasonOf(err) != tt.reason {
				t.Errorf("error %v: %v %q, want %v %q", err, failure.ClassOf(err), failure.ReasonOf(err), tt.class, tt.reason)
			}
		})
	}
}

// bigPrefix returns the SOI of jpg followed by a 10 KB comment segment, so that the frame
// header lies well past the sniff window.
func bigPrefix(jpg []byte) []byte {
	return withSegment(jpg, 0xFE, make([]byte, 10000))[:8000]
}

func TestDisplaySize(t *testing.T) {
	tests := []struct {
		exif         *EXIF
		wantW, wantH int
	}{
		{nil, 40, 30},
		{&EXIF{Orientation: 1}, 40, 30},
		{&EXIF{Orientation: 4}, 40, 30},
		{&EXIF{Orientation: 5}, 30, 40},
		{&EXIF{Orientation: 6}, 30, 40},
		{&EXIF{Orientation: 8}, 30, 40},
	}
	for _, tt := range tests {
		m := &Meta{Width: 40, Height: 30, EXIF: tt.exif}
		if w, h := m.DisplaySize(); w != tt.wantW || h != tt.wantH {
			t.Errorf("DisplaySize(%+v) = %dx%d, want %dx%d", tt.exif, w, h, tt.wantW, tt.wantH)
		}
	}
}

// Inspect reads through pooled buffers: calls at once on different images each get their
// own image's answer, and a reader whose Inspect failed leaves nothing behind for the next.
func TestInspectConcurrent(t *testing.T) {
	inputs := [][]byte{
		encPNG(t, 300, 200), encJPEG(t, 640, 480), encGIF(t, 33, 44), withEXIF(encJPEG(t, 64, 48), camEXIF(le, 6)),
		[]byte("not an image at all, just text that is long enough to sniff"), encJPEG(t, 17, 9)[:40],
	}
	type answer struct {
		w, h   int
		reason string
	}
	inspect := func(b []byte) answer {
		m, err := Inspect(bytes.NewReader(b), 0)
		if err != nil {
			return answer{reason: failure.ReasonOf(err)}
		}
		return answer{w: m.Width, h: m.Height}
	}
	want := make([]answer, len(inputs))
	for i, b := range inputs {
		want[i] = inspect(b)
	}
	if want[0] != (answer{w: 300, h: 200}) || want[4].reason != ReasonNotAnImage || want[5].reason == "" {
		t.Fatalf("sequential answers %+v", want)
	}
	var wg sync.WaitGroup
	errs := make(chan string, 8*200)
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				k := (g + i) % len(inputs)
				if got := inspect(inputs[k]); got != want[k] {
					errs <- fmt.Sprintf("input %d: %+v, want %+v", k, got, want[k])
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}
