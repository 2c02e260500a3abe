package samples

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"

	"imgpipe/pkg/imagemeta"
)

// encode writes img in format. comment, when not empty, is stored in the file's own
// comment field (JPEG COM, PNG tEXt, GIF comment extension, TIFF ImageDescription); BMP
// has none and ignores it. GIF colours are reduced to 3-3-2 bits.
func encode(img *image.RGBA, format string, comment string) ([]byte, error) {
	var b bytes.Buffer
	switch format {
	case string(imagemeta.JPEG):
		if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 85}); err != nil {
			return nil, fmt.Errorf("encode jpeg: %w", err)
		}
		if comment == "" {
			return b.Bytes(), nil
		}
		return insertJPEGSegment(b.Bytes(), 0xFE, []byte(comment)), nil
	case string(imagemeta.PNG):
		enc := png.Encoder{CompressionLevel: png.BestSpeed}
		if err := enc.Encode(&b, img); err != nil {
			return nil, fmt.Errorf("encode png: %w", err)
		}
		if comment == "" {
			return b.Bytes(), nil
		}
		return insertPNGText(b.Bytes(), "Comment", comment), nil
	case string(imagemeta.GIF):
		if err := gif.Encode(&b, quantize(img), nil); err != nil {
			return nil, fmt.Errorf("encode gif: %w", err)
		}
		if comment == "" {
			return b.Bytes(), nil
		}
		return insertGIFComment(b.Bytes(), comment)
	case string(imagemeta.BMP):
		return encodeBMP(img), nil
	case string(imagemeta.TIFF):
		return encodeTIFF(img, comment), nil
	}
	return nil, fmt.Errorf("format %q: want jpeg, png, gif, bmp or tiff", format)
}

// insertJPEGSegment puts a marker segment right after SOI.
func insertJPEGSegment(jpg []byte, marker byte, payload []byte) []byte {
	out := make([]byte, 0, len(jpg)+4+len(payload))
	out = append(out, jpg[:2]...)
	out = append(out, 0xFF, marker)
	out = binary.BigEndian.AppendUint16(out, uint16(len(payload)+2))
	out = append(out, payload...)
	return append(out, jpg[2:]...)
}

// insertPNGText puts a tEXt chunk right after IHDR (8-byte signature, 25-byte IHDR chunk).
func insertPNGText(p []byte, key, text string) []byte {
	const afterIHDR = 8 + 25
	data := append(append([]byte(key), 0), text...)
	chunk := binary.BigEndian.AppendUint32(nil, uint32(len(data)))
	chunk = append(chunk, "tEXt"...)
	chunk = append(chunk, data...)
	chunk = binary.BigEndian.AppendUint32(chunk, crc32.ChecksumIEEE(chunk[4:]))
	out := make([]byte, 0, len(p)+len(chunk))
	out = append(out, p[:afterIHDR]...)
	out = append(out, chunk...)
	return append(out, p[afterIHDR:]...)
}

// insertGIFComment puts a comment extension after the header, the logical screen
// descriptor and the global colour table.
func insertGIFComment(g []byte, text string) ([]byte, error) {
	if len(g) < 13 {
		return nil, fmt.Errorf("gif of %d bytes", len(g))
	}
	at := 13
	if flags := g[10]; flags&0x80 != 0 {
		at += 3 << (flags&7 + 1)
	}
	if at > len(g) {
		return nil, fmt.Errorf("gif colour table past the end")
	}
	ext := []byte{0x21, 0xFE}
	for s := []byte(text); len(s) > 0; {
		n := min(len(s), 255)
		ext = append(ext, byte(n))
		ext = append(ext, s[:n]...)
		s = s[n:]
	}
	ext = append(ext, 0)
	out := make([]byte, 0, len(g)+len(ext))
	out = append(out, g[:at]...)
	out = append(out, ext...)
	return append(out, g[at:]...), nil
}

// quantize maps the image to a palette of at most 256 colours: its colours reduced to
// 3-3-2 bits (red, green, blue), in code order. It is exact and linear in the pixels.
func quantize(img *image.RGBA) *image.Paletted {
	code := func(r, g, b uint8) uint8 { return r&0xE0 | g>>3&0x1C | b>>6 }
	var used [256]bool
	w, h := img.Rect.Dx(), img.Rect.Dy()
	for y := 0; y < h; y++ {
		pix := img.Pix[y*img.Stride:]
		for x := 0; x < w; x++ {
			used[code(pix[4*x], pix[4*x+1], pix[4*x+2])] = true
		}
	}
	var index [256]uint8
	pal := make(color.Palette, 0, 256)
	for c, ok := range used {
		if !ok {
			continue
		}
		index[c] = uint8(len(pal))
		r, g, b := uint8(c&0xE0), uint8(c<<3&0xE0), uint8(c<<6)
		pal = append(pal, color.RGBA{r | r>>3 | r>>6, g | g>>3 | g>>6, b | b>>2 | b>>4 | b>>6, 255})
	}
	p := image.NewPaletted(image.Rect(0, 0, w, h), pal)
	for y := 0; y < h; y++ {
		pix, dst := img.Pix[y*img.Stride:], p.Pix[y*p.Stride:]
		for x := 0; x < w; x++ {
			dst[x] = index[code(pix[4*x], pix[4*x+1], pix[4*x+2])]
		}
	}
	return p
}

// encodeBMP writes a 24-bit bottom-up BMP with a BITMAPINFOHEADER.
func encodeBMP(img *image.RGBA) []byte {
	w, h := img.Rect.Dx(), img.Rect.Dy()
	stride := (3*w + 3) &^ 3
	const headers = 14 + 40
	le := binary.LittleEndian
	out := make([]byte, headers, headers+stride*h)
	copy(out, "BM")
	le.PutUint32(out[2:], uint32(headers+stride*h))
	le.PutUint32(out[10:], headers)
	le.PutUint32(out[14:], 40)
	le.PutUint32(out[18:], uint32(w))
	le.PutUint32(out[22:], uint32(h))
	le.PutUint16(out[26:], 1)  // planes
	le.PutUint16(out[28:], 24) // bits per pixel
	le.PutUint32(out[34:], uint32(stride*h))
	le.PutUint32(out[38:], 2835) // 72 dpi
	le.PutUint32(out[42:], 2835)
	row := make([]byte, stride)
	for y := h - 1; y >= 0; y-- {
		pix := img.Pix[y*img.Stride:]
		for x := 0; x < w; x++ {
			row[3*x], row[3*x+1], row[3*x+2] = pix[4*x+2], pix[4*x+1], pix[4*x]
		}
		out = append(out, row...)
	}
	return out
}

// tiffField is one IFD entry; data is little-endian and padded by the writer.
type tiffField struct {
	tag, typ uint16
	count    uint32
	data     []byte
}

const (
	tShort    = 3
	tLong     = 4
	tASCII    = 2
	tByte     = 1
	tRational = 5
)

func fShort(tag uint16, vs ...uint16) tiffField {
	var d []byte
	for _, v := range vs {
		d = binary.LittleEndian.AppendUint16(d, v)
	}
	return tiffField{tag, tShort, uint32(len(vs)), d}
}

func fLong(tag uint16, v uint32) tiffField {
	return tiffField{tag, tLong, 1, binary.LittleEndian.AppendUint32(nil, v)}
}

func fASCII(tag uint16, s string) tiffField {
	return tiffField{tag, tASCII, uint32(len(s) + 1), append([]byte(s), 0)}
}

func fRational(tag uint16, pairs ...uint32) tiffField {
	var d []byte
	for _, v := range pairs {
		d = binary.LittleEndian.AppendUint32(d, v)
	}
	return tiffField{tag, tRational, uint32(len(pairs) / 2), d}
}

// ifdSize is the size of an IFD written by appendIFD: entries, next-IFD offset and the
// values that do not fit in an entry.
func ifdSize(fields []tiffField) int {
	n := 2 + 12*len(fields) + 4
	for _, f := range fields {
		if len(f.data) > 4 {
			n += (len(f.data) + 1) &^ 1
		}
	}
	return n
}

// appendIFD appends an IFD that starts at file offset off (fields in ascending tag
// order), followed by its out-of-line values.
func appendIFD(out []byte, off int, fields []tiffField) []byte {
	le := binary.LittleEndian
	out = le.AppendUint16(out, uint16(len(fields)))
	extra := off + 2 + 12*len(fields) + 4
	var values []byte
	for _, f := range fields {
		out = le.AppendUint16(out, f.tag)
		out = le.AppendUint16(out, f.typ)
		out = le.AppendUint32(out, f.count)
		if len(f.data) <= 4 {
			out = append(out, f.data...)
			out = append(out, make([]byte, 4-len(f.data))...)
			continue
		}
		out = le.AppendUint32(out, uint32(extra+len(values)))
		values = append(values, f.data...)
		if len(values)%2 == 1 {
			values = append(values, 0)
		}
	}
	out = le.AppendUint32(out, 0)
	return append(out, values...)
}

// encodeTIFF writes a little-endian, uncompressed, 8-bit RGB TIFF in one strip.
func encodeTIFF(img *image.RGBA, description string) []byte {
	w, h := img.Rect.Dx(), img.Rect.Dy()
	fields := []tiffField{
		fLong(256, uint32(w)),
		fLong(257, uint32(h)),
		fShort(258, 8, 8, 8),
		fShort(259, 1), // no compression
		fShort(262, 2), // RGB
	}
	if description != "" {
		fields = append(fields, fASCII(270, description))
	}
	fields = append(fields,
		fLong(273, 0), // strip offset, set below
		fShort(277, 3),
		fLong(278, uint32(h)),
		fLong(279, uint32(3*w*h)),
		fRational(282, 72, 1),
		fRational(283, 72, 1),
		fShort(284, 1),
		fShort(296, 2), // inches
	)
	dataOff := 8 + ifdSize(fields)
	for i := range fields {
		if fields[i].tag == 273 {
			fields[i] = fLong(273, uint32(dataOff))
		}
	}
	out := make([]byte, 0, dataOff+3*w*h)
	out = append(out, "II*\x00\x08\x00\x00\x00"...)
	out = appendIFD(out, 8, fields)
	for y := 0; y < h; y++ {
		pix := img.Pix[y*img.Stride:]
		for x := 0; x < w; x++ {
			out = append(out, pix[4*x], pix[4*x+1], pix[4*x+2])
		}
	}
	return out
}

// cameraInfo is the EXIF block written into some JPEG samples.
type cameraInfo struct {
	exif     imagemeta.EXIF
	lat, lon [3]uint32 // degrees, minutes, seconds; used when exif.HasGPS
	latRef   string    // "N" or "S"
	lonRef   string    // "E" or "W"
}

// exifTIFF builds the TIFF structure of an APP1 EXIF block: IFD0 with Make, Model,
// Orientation and the pointers, the Exif IFD with DateTimeOriginal, and a GPS IFD.
func exifTIFF(c cameraInfo) []byte {
	x := c.exif
	var ifd0 []tiffField
	if x.Make != "" {
		ifd0 = append(ifd0, fASCII(0x010F, x.Make))
	}
	if x.Model != "" {
		ifd0 = append(ifd0, fASCII(0x0110, x.Model))
	}
	if x.Orientation != 0 {
		ifd0 = append(ifd0, fShort(0x0112, uint16(x.Orientation)))
	}
	exifIFD := []tiffField{fASCII(0x9003, x.DateTimeOriginal)}
	var gps []tiffField
	if x.HasGPS {
		gps = []tiffField{
			{0x0000, tByte, 4, []byte{2, 3, 0, 0}}, // GPSVersionID
			fASCII(0x0001, c.latRef),
			fRational(0x0002, c.lat[0], 1, c.lat[1], 1, c.lat[2], 1),
			fASCII(0x0003, c.lonRef),
			fRational(0x0004, c.lon[0], 1, c.lon[1], 1, c.lon[2], 1),
		}
	}
	// Pointers are inline LONGs, so the sizes are known before their values.
	ifd0 = append(ifd0, fLong(0x8769, 0))
	if gps != nil {
		ifd0 = append(ifd0, fLong(0x8825, 0))
	}
	exifOff := 8 + ifdSize(ifd0)
	gpsOff := exifOff + ifdSize(exifIFD)
	for i := range ifd0 {
		switch ifd0[i].tag {
		case 0x8769:
			ifd0[i] = fLong(0x8769, uint32(exifOff))
		case 0x8825:
			ifd0[i] = fLong(0x8825, uint32(gpsOff))
		}
	}
	out := []byte("II*\x00\x08\x00\x00\x00")
	out = appendIFD(out, 8, ifd0)
	out = appendIFD(out, exifOff, exifIFD)
	if gps != nil {
		out = appendIFD(out, gpsOff, gps)
	}
	return out
}

// withEXIF adds an APP1 EXIF segment to a JPEG.
func withEXIF(jpg []byte, c cameraInfo) []byte {
	return insertJPEGSegment(jpg, 0xE1, append([]byte("Exif\x00\x00"), exifTIFF(c)...))
}
