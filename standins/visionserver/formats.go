package visionserver

import (
	"bytes"
	"encoding/binary"
	"errors"
	"image"
	"image/gif"
	"image/jpeg"
	"image/png"

	"golang.org/x/image/bmp"
	"golang.org/x/image/tiff"
	"golang.org/x/image/webp"
)

// Image formats, as the stand-in names them in tags. Azure's 4.0 API accepts all of them;
// v3.2 accepts JPEG (and so MPO, which is a JPEG file with more pictures after the first),
// PNG, GIF and BMP.
const (
	FormatJPEG = "jpeg"
	FormatMPO  = "mpo"
	FormatPNG  = "png"
	FormatGIF  = "gif"
	FormatBMP  = "bmp"
	FormatWEBP = "webp"
	FormatTIFF = "tiff"
	FormatICO  = "ico"
)

// probed is what the stand-in learns about an image before decoding its pixels.
type probed struct {
	format        string
	width, height int
	// decodable is false for a well-formed image in a format Azure accepts but whose
	// variant this package cannot decode (see undecodable below); such images get an
	// answer built from their format and dimensions only.
	decodable bool
}

// What this package cannot decode, though Azure accepts it:
//   - BMP with RLE or bit-field compression, or an OS/2 header (golang.org/x/image/bmp);
//   - TIFF with compressions or sample layouts golang.org/x/image/tiff lacks (JPEG-in-TIFF...);
//   - animated WebP (golang.org/x/image/webp decodes still images only);
//   - ICO entries that are such BMPs;
//   - JPEG and PNG features the standard library reports as unsupported (12-bit JPEG...).
//
// MPO is decoded as the JPEG it starts with: its first picture.

// sniff names the format from the leading bytes, or returns "".
func sniff(b []byte) string {
	switch {
	case len(b) >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF:
		if isMPO(b) {
			return FormatMPO
		}
		return FormatJPEG
	case bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")):
		return FormatPNG
	case bytes.HasPrefix(b, []byte("GIF87a")), bytes.HasPrefix(b, []byte("GIF89a")):
		return FormatGIF
	case bytes.HasPrefix(b, []byte("BM")):
		return FormatBMP
	case len(b) >= 12 && string(b[:4]) == "RIFF" && string(b[8:12]) == "WEBP":
		return FormatWEBP
	case bytes.HasPrefix(b, []byte("II*\x00")), bytes.HasPrefix(b, []byte("MM\x00*")):
		return FormatTIFF
	case len(b) >= 6 && bytes.HasPrefix(b, []byte{0, 0, 1, 0}) && binary.LittleEndian.Uint16(b[4:6]) > 0:
		return FormatICO
	}
	return ""
}

// isMPO reports whether a JPEG carries an APP2 "MPF" segment (CIPA DC-007 multi-picture).
func isMPO(b []byte) bool {
	i := 2
	for i+4 <= len(b) {
		if b[i] != 0xFF {
			return false
		}
		marker := b[i+1]
		if marker == 0xD8 || (marker >= 0xD0 && marker <= 0xD7) || marker == 0x01 || marker == 0xFF {
			i++ // fill bytes and markers without a length
			continue
		}
		if marker == 0xDA || marker == 0xD9 { // start of scan or end: no more headers
			return false
		}
		n := int(binary.BigEndian.Uint16(b[i+2 : i+4]))
		if n < 2 || i+2+n > len(b) {
			return false
		}
		if marker == 0xE2 && n >= 6 && string(b[i+4:i+8]) == "MPF\x00" {
			return true
		}
		i += 2 + n
	}
	return false
}

var errNotImage = errors.New("not an image in a known format")

// probe finds the format and dimensions without decoding pixels, so an image that claims
// huge dimensions is refused before any large allocation.
func probe(b []byte) (probed, error) {
	p := probed{format: sniff(b), decodable: true}
	var cfg image.Config
	var err error
	r := bytes.NewReader(b)
	switch p.format {
	case FormatJPEG, FormatMPO:
		cfg, err = jpeg.DecodeConfig(r)
	case FormatPNG:
		cfg, err = png.DecodeConfig(r)
	case FormatGIF:
		cfg, err = gif.DecodeConfig(r)
	case FormatBMP:
		cfg, err = bmp.DecodeConfig(r)
		if errors.Is(err, bmp.ErrUnsupported) {
			if w, h, ok := bmpDims(b); ok {
				cfg, err, p.decodable = image.Config{Width: w, Height: h}, nil, false
			}
		}
	case FormatWEBP:
		cfg, err = webp.DecodeConfig(r)
		if err == nil && webpAnimated(b) {
			p.decodable = false
		}
	case FormatTIFF:
		cfg, err = tiff.DecodeConfig(r)
		var ue tiff.UnsupportedError
		if errors.As(err, &ue) {
			if w, h, ok := tiffDims(b); ok {
				cfg, err, p.decodable = image.Config{Width: w, Height: h}, nil, false
			}
		}
	case FormatICO:
		var sub []byte
		var ok bool
		sub, cfg.Width, cfg.Height, ok = icoLargest(b)
		if !ok {
			return p, errNotImage
		}
		inner, perr := probe(sub)
		if perr != nil || (inner.format != FormatPNG && inner.format != FormatBMP) {
			return p, errNotImage
		}
		// The directory's sizes wrap at 256; the embedded image knows better.
		cfg.Width, cfg.Height, p.decodable = inner.width, inner.height, inner.decodable
	default:
		return p, errNotImage
	}
	if err != nil {
		var je jpeg.UnsupportedError
		var pe png.UnsupportedError
		if errors.As(err, &je) || errors.As(err, &pe) {
			// Valid but unsupported here, and no dimensions: Azure would know better.
			return p, errNotImage
		}
		return p, err
	}
	p.width, p.height = cfg.Width, cfg.Height
	return p, nil
}

// errUndecodable marks a well-formed image this package cannot decode.
var errUndecodable = errors.New("image variant not decodable here")

// decode decodes the pixels of an image probe has accepted.
func decode(p probed, b []byte) (image.Image, error) {
	if !p.decodable {
		return nil, errUndecodable
	}
	r := bytes.NewReader(b)
	var m image.Image
	var err error
	switch p.format {
	case FormatJPEG, FormatMPO:
		m, err = jpeg.Decode(r)
	case FormatPNG:
		m, err = png.Decode(r)
	case FormatGIF:
		m, err = gif.Decode(r)
	case FormatBMP:
		m, err = bmp.Decode(r)
	case FormatWEBP:
		m, err = webp.Decode(r)
	case FormatTIFF:
		m, err = tiff.Decode(r)
	case FormatICO:
		sub, _, _, ok := icoLargest(b)
		if !ok {
			return nil, errNotImage
		}
		inner, perr := probe(sub)
		if perr != nil {
			return nil, perr
		}
		return decode(inner, sub)
	default:
		return nil, errNotImage
	}
	if err != nil {
		var je jpeg.UnsupportedError
		var pe png.UnsupportedError
		var te tiff.UnsupportedError
		if errors.Is(err, bmp.ErrUnsupported) || errors.As(err, &je) || errors.As(err, &pe) || errors.As(err, &te) {
			return nil, errUndecodable
		}
		return nil, err
	}
	return m, nil
}

// bmpDims reads the dimensions from a BMP header the x/image decoder does not support.
func bmpDims(b []byte) (w, h int, ok bool) {
	if len(b) < 26 {
		return 0, 0, false
	}
	switch binary.LittleEndian.Uint32(b[14:18]) {
	case 12: // OS/2 BITMAPCOREHEADER: 16-bit sizes
		return int(binary.LittleEndian.Uint16(b[18:20])), int(binary.LittleEndian.Uint16(b[20:22])), true
	case 40, 52, 56, 64, 108, 124:
		w := int(int32(binary.LittleEndian.Uint32(b[18:22])))
		h := int(int32(binary.LittleEndian.Uint32(b[22:26])))
		if h < 0 {
			h = -h
		}
		return w, h, w > 0 && h > 0
	}
	return 0, 0, false
}

// tiffDims reads ImageWidth and ImageLength from the first IFD.
func tiffDims(b []byte) (w, h int, ok bool) {
	if len(b) < 8 {
		return 0, 0, false
	}
	var bo binary.ByteOrder = binary.LittleEndian
	if b[0] == 'M' {
		bo = binary.BigEndian
	}
	off := int64(bo.Uint32(b[4:8]))
	if off < 8 || off+2 > int64(len(b)) {
		return 0, 0, false
	}
	n := int64(bo.Uint16(b[off : off+2]))
	for i := int64(0); i < n; i++ {
		e := off + 2 + i*12
		if e+12 > int64(len(b)) {
			return 0, 0, false
		}
		tag, typ := bo.Uint16(b[e:e+2]), bo.Uint16(b[e+2:e+4])
		var v int
		switch typ {
		case 3: // SHORT
			v = int(bo.Uint16(b[e+8 : e+10]))
		case 4: // LONG
			v = int(bo.Uint32(b[e+8 : e+12]))
		default:
			continue
		}
		switch tag {
		case 256:
			w = v
		case 257:
			h = v
		}
	}
	return w, h, w > 0 && h > 0
}

// webpAnimated reports whether an extended (VP8X) WebP has its animation flag set.
func webpAnimated(b []byte) bool {
	return len(b) >= 21 && string(b[12:16]) == "VP8X" && b[20]&0x02 != 0
}

// icoLargest returns the largest picture of an ICO file as a stand-alone PNG or BMP file,
// with the size its directory entry claims (0 meaning 256).
func icoLargest(b []byte) (sub []byte, w, h int, ok bool) {
	if len(b) < 6 {
		return nil, 0, 0, false
	}
	n := int(binary.LittleEndian.Uint16(b[4:6]))
	best, bestArea, bestBPP := -1, -1, -1
	for i := 0; i < n; i++ {
		e := 6 + 16*i
		if e+16 > len(b) {
			return nil, 0, 0, false
		}
		ew, eh := int(b[e]), int(b[e+1])
		if ew == 0 {
			ew = 256
		}
		if eh == 0 {
			eh = 256
		}
		bpp := int(binary.LittleEndian.Uint16(b[e+6 : e+8]))
		if a := ew * eh; a > bestArea || (a == bestArea && bpp > bestBPP) {
			best, bestArea, bestBPP, w, h = i, a, bpp, ew, eh
		}
	}
	if best < 0 {
		return nil, 0, 0, false
	}
	e := 6 + 16*best
	size := int64(binary.LittleEndian.Uint32(b[e+8 : e+12]))
	off := int64(binary.LittleEndian.Uint32(b[e+12 : e+16]))
	if size <= 0 || off < 6 || off+size > int64(len(b)) {
		return nil, 0, 0, false
	}
	data := b[off : off+size]
	if bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n")) {
		return data, w, h, true
	}
	bmpFile, ok := dibToBMP(data)
	return bmpFile, w, h, ok
}

// dibToBMP turns an ICO entry's DIB (a BITMAPINFOHEADER whose height counts the colour
// bitmap and the AND mask) into a BMP file of the colour bitmap alone.
func dibToBMP(dib []byte) ([]byte, bool) {
	if len(dib) < 40 || binary.LittleEndian.Uint32(dib[0:4]) != 40 {
		return nil, false
	}
	height := int32(binary.LittleEndian.Uint32(dib[8:12]))
	bpp := binary.LittleEndian.Uint16(dib[14:16])
	colors := binary.LittleEndian.Uint32(dib[32:36])
	if bpp <= 8 && colors == 0 {
		colors = 1 << bpp
	}
	if bpp > 8 {
		colors = 0
	}
	if colors > 256 {
		return nil, false
	}
	const fileHeaderLen = 14
	pixelOffset := uint32(fileHeaderLen) + 40 + colors*4
	out := make([]byte, fileHeaderLen+len(dib))
	copy(out, "BM")
	binary.LittleEndian.PutUint32(out[2:6], uint32(len(out)))
	binary.LittleEndian.PutUint32(out[10:14], pixelOffset)
	copy(out[fileHeaderLen:], dib)
	binary.LittleEndian.PutUint32(out[fileHeaderLen+8:fileHeaderLen+12], uint32(height/2))
	return out, true
}
