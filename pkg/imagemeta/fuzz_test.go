package imagemeta

import (
	"bytes"
	"encoding/binary"
	"testing"
	"unicode/utf8"

	"imgpipe/pkg/failure"
)

// FuzzInspect checks that Inspect never panics, never reads past its limit, fails only
// with a known permanent reason on an in-memory input, and agrees with Sniff.
func FuzzInspect(f *testing.F) {
	jpg := encJPEG(f, 16, 16)
	seeds := [][]byte{
		nil,
		[]byte("hello"),
		jpg,
		withEXIF(jpg, camEXIF(order(binary.LittleEndian), 6)),
		withEXIF(jpg, camEXIF(order(binary.BigEndian), 3)),
		withEXIF(jpg, literalEXIF),
		encPNG(f, 9, 7),
		encPalettedPNG(f, 5, 5),
		encGIF(f, 3, 4),
		bmpHeader(40, 10, -10),
		bmpHeader(12, 10, 10),
		webpVP8(10, 20),
		webpVP8L(30, 40),
		webpVP8X(50, 60),
		tiffFile(order(binary.LittleEndian), 7, 8, true, 3),
		tiffFile(order(binary.BigEndian), 7, 8, false, 0),
		icoFile([2]int{16, 16}, [2]int{0, 0}),
		ftyp("heic", "mif1"),
	}
	for _, s := range seeds {
		f.Add(s, uint16(0))
		f.Add(s, uint16(len(s)/2+1))
	}
	reasons := map[string]bool{
		ReasonNotAnImage: true, ReasonCorruptImage: true,
		ReasonUnsupportedFormat: true, ReasonHeaderBeyondLimit: true,
	}
	f.Fuzz(func(t *testing.T, data []byte, lim uint16) {
		limit := int64(lim)
		effective := limit
		if limit <= 0 {
			effective = DefaultLimit
		}
		cr := &countingReader{r: bytes.NewReader(data)}
		m, err := Inspect(cr, limit)
		if cr.n > effective {
			t.Fatalf("read %d bytes past limit %d", cr.n, effective)
		}
		if err != nil {
			if m != nil {
				t.Fatalf("Meta %+v with error %v", m, err)
			}
			if !failure.IsPermanent(err) || !reasons[failure.ReasonOf(err)] {
				t.Fatalf("error %v: class %v reason %q", err, failure.ClassOf(err), failure.ReasonOf(err))
			}
			return
		}
		if m.Width <= 0 || m.Height <= 0 {
			t.Fatalf("dimensions %dx%d", m.Width, m.Height)
		}
		if m.Format == Unknown || m.MIME != m.Format.MIME() {
			t.Fatalf("format %s mime %s", m.Format, m.MIME)
		}
		if got := Sniff(data); got != m.Format {
			t.Fatalf("Inspect says %s, Sniff says %s", m.Format, got)
		}
		if x := m.EXIF; x != nil {
			for _, s := range []string{x.Make, x.Model, x.DateTimeOriginal} {
				if !utf8.ValidString(s) || len(s) > maxEXIFString {
					t.Fatalf("EXIF string %q", s)
				}
			}
			if x.Orientation < 0 || x.Orientation > 8 {
				t.Fatalf("orientation %d", x.Orientation)
			}
		}
	})
}
