package imagemeta

import (
	"bytes"
	"encoding/binary"
	"image"
	"image/color"
	"image/color/palette"
	"image/gif"
	"image/jpeg"
	"image/png"
	"testing"
)

// Test inputs, built in memory: real encoders for JPEG, PNG and GIF, hand-built headers for
// the rest.

func testImage(w, h int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.SetRGBA(x, y, color.RGBA{uint8(x), uint8(y), uint8(x + y), 255})
		}
	}
	return img
}

func encPNG(t testing.TB, w, h int) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, testImage(w, h)); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func encPalettedPNG(t testing.TB, w, h int) []byte {
	t.Helper()
	img := image.NewPaletted(image.Rect(0, 0, w, h), palette.Plan9)
	for i := range img.Pix {
		img.Pix[i] = uint8(i)
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func encJPEG(t testing.TB, w, h int) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := jpeg.Encode(&b, testImage(w, h), &jpeg.Options{Quality: 75}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func encGIF(t testing.TB, w, h int) []byte {
	t.Helper()
	img := image.NewPaletted(image.Rect(0, 0, w, h), palette.WebSafe)
	var b bytes.Buffer
	if err := gif.Encode(&b, img, nil); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// withSegment inserts a JPEG marker segment right after SOI.
func withSegment(jpg []byte, marker byte, payload []byte) []byte {
	seg := []byte{0xFF, marker, 0, 0}
	binary.BigEndian.PutUint16(seg[2:], uint16(len(payload)+2))
	out := append([]byte{}, jpg[:2]...)
	out = append(out, seg...)
	out = append(out, payload...)
	return append(out, jpg[2:]...)
}

// withEXIF inserts an APP1 EXIF segment holding the TIFF structure tiff.
func withEXIF(jpg, tiff []byte) []byte {
	return withSegment(jpg, 0xE1, append([]byte("Exif\x00\x00"), tiff...))
}

func le16(v int) []byte { return binary.LittleEndian.AppendUint16(nil, uint16(v)) }
func le32(v int) []byte { return binary.LittleEndian.AppendUint32(nil, uint32(v)) }

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// bmpHeader builds BITMAPFILEHEADER plus an info header of dibSize bytes.
func bmpHeader(dibSize, w, h int) []byte {
	fh := cat([]byte("BM"), le32(14+dibSize), le32(0), le32(14+dibSize))
	var ih []byte
	if dibSize == 12 {
		ih = cat(le32(12), le16(w), le16(h), le16(1), le16(24))
	} else {
		ih = cat(le32(dibSize), le32(w), le32(h), le16(1), le16(24), make([]byte, dibSize-16))
	}
	return cat(fh, ih, make([]byte, 16))
}

func riff(chunk string, data []byte) []byte {
	body := cat([]byte("WEBP"), []byte(chunk), le32(len(data)), data)
	return cat([]byte("RIFF"), le32(len(body)), body)
}

func webpVP8(w, h int) []byte {
	return riff("VP8 ", cat([]byte{0x10, 0x02, 0x00, 0x9D, 0x01, 0x2A}, le16(w), le16(h), make([]byte, 20)))
}

func webpVP8L(w, h int) []byte {
	bits := uint32(w-1) | uint32(h-1)<<14
	return riff("VP8L", cat([]byte{0x2F}, binary.LittleEndian.AppendUint32(nil, bits), make([]byte, 10)))
}

func webpVP8X(w, h int) []byte {
	w, h = w-1, h-1
	return riff("VP8X", []byte{0x10, 0, 0, 0, byte(w), byte(w >> 8), byte(w >> 16), byte(h), byte(h >> 8), byte(h >> 16)})
}

func icoFile(sizes ...[2]int) []byte {
	out := cat(le16(0), le16(1), le16(len(sizes)))
	off := 6 + 16*len(sizes)
	for _, s := range sizes {
		out = cat(out, []byte{byte(s[0]), byte(s[1]), 0, 0}, le16(1), le16(32), le32(40), le32(off))
		off += 40
	}
	return cat(out, make([]byte, 40*len(sizes)))
}

// order is a byte order that can also append.
type order interface {
	binary.ByteOrder
	binary.AppendByteOrder
}

// tfield is one TIFF field for buildTIFF; data is already in the file's byte order.
type tfield struct {
	tag, typ uint16
	count    uint32
	data     []byte
}

func ascii(tag uint16, s string) tfield {
	return tfield{tag, typeASCII, uint32(len(s) + 1), append([]byte(s), 0)}
}

func short(o order, tag uint16, v uint16) tfield {
	return tfield{tag, typeShort, 1, o.AppendUint16(nil, v)}
}

func long(o order, tag uint16, v uint32) tfield {
	return tfield{tag, typeLong, 1, o.AppendUint32(nil, v)}
}

func rationals(o order, tag uint16, n int) tfield {
	var d []byte
	for i := 0; i < n; i++ {
		d = o.AppendUint32(d, uint32(i+1))
		d = o.AppendUint32(d, 1)
	}
	return tfield{tag, 5, uint32(n), d}
}

// buildTIFF lays out header, IFD0, the Exif IFD and the GPS IFD (each when non-nil, with
// their pointers added to IFD0), then the values that do not fit inline.
func buildTIFF(o order, ifd0, exif, gps []tfield) []byte {
	ifdLen := func(n int) int { return 2 + 12*n + 4 }
	n0 := len(ifd0)
	if exif != nil {
		n0++
	}
	if gps != nil {
		n0++
	}
	exifOff := 8 + ifdLen(n0)
	gpsOff := exifOff
	if exif != nil {
		gpsOff += ifdLen(len(exif))
	}
	dataOff := gpsOff
	if gps != nil {
		dataOff += ifdLen(len(gps))
	}
	if exif != nil {
		ifd0 = append(ifd0, long(o, tagExifIFD, uint32(exifOff)))
	}
	if gps != nil {
		ifd0 = append(ifd0, long(o, tagGPSIFD, uint32(gpsOff)))
	}
	var head, data []byte
	if o == order(binary.LittleEndian) {
		head = []byte("II")
	} else {
		head = []byte("MM")
	}
	head = o.AppendUint16(head, 42)
	head = o.AppendUint32(head, 8)
	for _, ifd := range [][]tfield{ifd0, exif, gps} {
		if ifd == nil {
			continue
		}
		head = o.AppendUint16(head, uint16(len(ifd)))
		for _, f := range ifd {
			head = o.AppendUint16(head, f.tag)
			head = o.AppendUint16(head, f.typ)
			head = o.AppendUint32(head, f.count)
			if len(f.data) <= 4 {
				head = append(head, f.data...)
				head = append(head, make([]byte, 4-len(f.data))...)
			} else {
				head = o.AppendUint32(head, uint32(dataOff+len(data)))
				data = append(data, f.data...)
			}
		}
		head = o.AppendUint32(head, 0)
	}
	return append(head, data...)
}

// tiffFile builds a TIFF file whose IFD0 (width and height only) sits after gap bytes of
// filler.
func tiffFile(o order, w, h uint32, useShort bool, gap int) []byte {
	var out []byte
	if o == order(binary.LittleEndian) {
		out = []byte("II")
	} else {
		out = []byte("MM")
	}
	out = o.AppendUint16(out, 42)
	out = o.AppendUint32(out, uint32(8+gap))
	out = append(out, bytes.Repeat([]byte{0xAB}, gap)...)
	out = o.AppendUint16(out, 3)
	entry := func(tag uint16, v uint32) {
		out = o.AppendUint16(out, tag)
		if useShort {
			out = o.AppendUint16(out, typeShort)
			out = o.AppendUint32(out, 1)
			out = o.AppendUint16(out, uint16(v))
			out = o.AppendUint16(out, 0)
		} else {
			out = o.AppendUint16(out, typeLong)
			out = o.AppendUint32(out, 1)
			out = o.AppendUint32(out, v)
		}
	}
	entry(0x00FE, 0) // NewSubfileType
	entry(tagImageWidth, w)
	entry(tagImageLength, h)
	out = o.AppendUint32(out, 0)
	return out
}

// ftyp builds an ISO-BMFF file type box.
func ftyp(major string, compatible ...string) []byte {
	body := cat([]byte("ftyp"), []byte(major), []byte{0, 0, 0, 0})
	for _, c := range compatible {
		body = append(body, c...)
	}
	return cat(binary.BigEndian.AppendUint32(nil, uint32(len(body)+4)), body, make([]byte, 32))
}
