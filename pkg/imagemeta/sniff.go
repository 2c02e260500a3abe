// Package imagemeta identifies image files from their first bytes and reads their size,
// format and EXIF fields without decoding the pixels.
//
// Sniff looks only at a prefix (SniffLen bytes are always enough). Inspect reads from a
// stream only as far as the header it needs, never more than a caller-given limit, and
// classifies every failure with imgpipe/pkg/failure: an input that is not an image, a
// corrupt or truncated header and a format the pipeline cannot analyse are permanent
// failures with a stable reason. Nothing here panics on malformed input.
package imagemeta

import (
	"bytes"
	"encoding/binary"
)

// SniffLen is the number of leading bytes Sniff needs at most.
const SniffLen = 512

// Format names an image file format. Its value is the short lower-case name used in
// analysis records, logs and metrics ("jpeg", "png", ...).
type Format string

// The formats Sniff recognises. Unknown means "not an image we know".
const (
	Unknown Format = "unknown"
	JPEG    Format = "jpeg"
	PNG     Format = "png"
	GIF     Format = "gif"
	BMP     Format = "bmp"
	WEBP    Format = "webp"
	TIFF    Format = "tiff"
	ICO     Format = "ico"
	HEIC    Format = "heic"
	AVIF    Format = "avif"
)

// octetStream is the MIME type of anything that is not a recognised image.
const octetStream = "application/octet-stream"

// MIME returns the media type of the format, "application/octet-stream" for Unknown and
// for any value that is not one of the constants above.
func (f Format) MIME() string {
	switch f {
	case JPEG:
		return "image/jpeg"
	case PNG:
		return "image/png"
	case GIF:
		return "image/gif"
	case BMP:
		return "image/bmp"
	case WEBP:
		return "image/webp"
	case TIFF:
		return "image/tiff"
	case ICO:
		return "image/x-icon"
	case HEIC:
		return "image/heic"
	case AVIF:
		return "image/avif"
	}
	return octetStream
}

// String returns the format's name.
func (f Format) String() string {
	if f == "" {
		return string(Unknown)
	}
	return string(f)
}

// ContentType returns the MIME type of the image whose first bytes are head:
// Sniff(head).MIME().
func ContentType(head []byte) string { return Sniff(head).MIME() }

var (
	sigPNG    = []byte("\x89PNG\r\n\x1a\n")
	sigGIF87  = []byte("GIF87a")
	sigGIF89  = []byte("GIF89a")
	sigTIFFLE = []byte("II*\x00")
	sigTIFFBE = []byte("MM\x00*")
	// BigTIFF: recognised as TIFF so that Inspect can say it is unsupported.
	sigBigTIFFLE = []byte("II+\x00")
	sigBigTIFFBE = []byte("MM\x00+")
)

// Sniff identifies the image format from the first bytes of a file. It needs at most
// SniffLen bytes and returns Unknown when head is not the start of an image it knows.
// Weak signatures (BMP's "BM", ICO's four bytes) are only accepted when the header fields
// that follow are plausible, so text that happens to start with "BM" is not an image.
func Sniff(head []byte) Format {
	if len(head) > SniffLen {
		head = head[:SniffLen]
	}
	switch {
	case len(head) >= 3 && head[0] == 0xFF && head[1] == 0xD8 && head[2] == 0xFF:
		return JPEG
	case bytes.HasPrefix(head, sigPNG):
		return PNG
	case bytes.HasPrefix(head, sigGIF87), bytes.HasPrefix(head, sigGIF89):
		return GIF
	case len(head) >= 12 && string(head[0:4]) == "RIFF" && string(head[8:12]) == "WEBP":
		return WEBP
	case bytes.HasPrefix(head, sigTIFFLE), bytes.HasPrefix(head, sigTIFFBE),
		bytes.HasPrefix(head, sigBigTIFFLE), bytes.HasPrefix(head, sigBigTIFFBE):
		return TIFF
	case isBMP(head):
		return BMP
	case isICO(head):
		return ICO
	}
	if f, ok := sniffFtyp(head); ok {
		return f
	}
	return Unknown
}

// validDIBSize reports whether n is the size of a known BMP info header.
func validDIBSize(n uint32) bool {
	switch n {
	case 12, 16, 40, 52, 56, 64, 108, 124:
		return true
	}
	return false
}

// isBMP accepts "BM" followed by a known info-header size.
func isBMP(head []byte) bool {
	return len(head) >= 18 && head[0] == 'B' && head[1] == 'M' &&
		validDIBSize(binary.LittleEndian.Uint32(head[14:18]))
}

// isICO accepts the ICONDIR header (reserved 0, type 1, at least one image) when the first
// directory entry looks like one: reserved byte 0 and image data after the directory.
func isICO(head []byte) bool {
	if len(head) < 6+16 || head[0] != 0 || head[1] != 0 || head[2] != 1 || head[3] != 0 {
		return false
	}
	count := int(binary.LittleEndian.Uint16(head[4:6]))
	if count == 0 {
		return false
	}
	e := head[6:22]
	if e[3] != 0 {
		return false
	}
	size := binary.LittleEndian.Uint32(e[8:12])
	offset := binary.LittleEndian.Uint32(e[12:16])
	return size > 0 && uint64(offset) >= uint64(6+16*count)
}

// HEIF brands (ISO/IEC 23008-12) and AVIF brands.
var (
	heicBrands = map[string]bool{
		"heic": true, "heix": true, "heim": true, "heis": true,
		"hevc": true, "hevx": true, "hevm": true, "hevs": true,
	}
	avifBrands = map[string]bool{"avif": true, "avis": true}
	// Generic HEIF brands: an image, but the codec is named by another brand.
	heifBrands = map[string]bool{"mif1": true, "msf1": true, "mif2": true}
)

// sniffFtyp reads an ISO-BMFF "ftyp" box and decides between AVIF and HEIC by its major and
// compatible brands. Video files (isom, mp42, qt ...) are not images.
func sniffFtyp(head []byte) (Format, bool) {
	if len(head) < 16 || string(head[4:8]) != "ftyp" {
		return Unknown, false
	}
	size := int(binary.BigEndian.Uint32(head[0:4]))
	if size < 16 || size > len(head) {
		size = len(head) // the box may extend past what we were given
	}
	brands := []string{string(head[8:12])}
	for i := 16; i+4 <= size; i += 4 {
		brands = append(brands, string(head[i:i+4]))
	}
	generic := false
	for _, b := range brands {
		if avifBrands[b] {
			return AVIF, true
		}
	}
	for _, b := range brands {
		if heicBrands[b] {
			return HEIC, true
		}
		if heifBrands[b] {
			generic = true
		}
	}
	if generic {
		return HEIC, true
	}
	return Unknown, false
}
