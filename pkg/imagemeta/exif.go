package imagemeta

import (
	"encoding/binary"
	"strings"
	"time"
	"unicode"
)

// EXIF holds the few EXIF fields the pipeline records. Strings are valid UTF-8, trimmed,
// and at most maxEXIFString bytes long.
type EXIF struct {
	Make  string
	Model string
	// DateTimeOriginal is the capture time as stored ("2006:01:02 15:04:05", no time
	// zone); empty when absent or not in that layout.
	DateTimeOriginal string
	// Orientation is the EXIF orientation, 1 to 8; 0 when absent or out of range.
	Orientation int
	// HasGPS reports whether the GPS IFD holds a readable position: a latitude and a
	// longitude (three rationals each, within range) with their N/S and E/W references.
	HasGPS bool
	// Latitude and Longitude are that position in decimal degrees (south and west
	// negative); zero when HasGPS is false.
	Latitude, Longitude float64
}

// Degrees returns degrees, minutes and seconds as decimal degrees, negative when neg (south
// of the equator, west of Greenwich). It divides once, so whole values give the nearest
// float64 to the exact sum.
func Degrees(d, m, s float64, neg bool) float64 {
	v := (d*3600 + m*60 + s) / 3600
	if neg {
		return -v
	}
	return v
}

// EXIFTimeLayout is the time layout of DateTimeOriginal, for time.Parse.
const EXIFTimeLayout = "2006:01:02 15:04:05"

const maxEXIFString = 256

// EXIF and TIFF tags read by parseEXIF.
const (
	tagMake             = 0x010F
	tagModel            = 0x0110
	tagOrientation      = 0x0112
	tagExifIFD          = 0x8769
	tagGPSIFD           = 0x8825
	tagDateTimeOriginal = 0x9003
	tagGPSLatitudeRef   = 0x0001
	tagGPSLatitude      = 0x0002
	tagGPSLongitudeRef  = 0x0003
	tagGPSLongitude     = 0x0004
)

// tiffData is a TIFF structure held in memory (an EXIF block). Every access is bounds
// checked; nothing follows IFD chains, so malformed offsets cannot loop.
type tiffData struct {
	b     []byte
	order binary.ByteOrder
}

// ifdEntry is one 12-byte IFD entry; value is the raw 4-byte value-or-offset field.
type ifdEntry struct {
	tag, typ uint16
	count    uint32
	value    []byte
}

// typeSize returns the byte size of one value of a TIFF field type, 0 when unknown.
func typeSize(typ uint16) uint64 {
	switch typ {
	case 1, 2, 6, 7: // BYTE, ASCII, SBYTE, UNDEFINED
		return 1
	case 3, 8: // SHORT, SSHORT
		return 2
	case 4, 9, 11: // LONG, SLONG, FLOAT
		return 4
	case 5, 10, 12: // RATIONAL, SRATIONAL, DOUBLE
		return 8
	}
	return 0
}

// ifd returns the entries of the IFD at off, as many as fit in the data.
func (t tiffData) ifd(off uint32) []ifdEntry {
	if uint64(off)+2 > uint64(len(t.b)) {
		return nil
	}
	n := int(t.order.Uint16(t.b[off:]))
	start := int(off) + 2
	if fit := (len(t.b) - start) / 12; n > fit {
		n = fit
	}
	entries := make([]ifdEntry, n)
	for i := range entries {
		e := t.b[start+12*i : start+12*i+12]
		entries[i] = ifdEntry{
			tag:   t.order.Uint16(e[0:2]),
			typ:   t.order.Uint16(e[2:4]),
			count: t.order.Uint32(e[4:8]),
			value: e[8:12],
		}
	}
	return entries
}

// data returns the bytes of an entry's values: inline when they fit in four bytes,
// otherwise at the offset the entry names. ok is false when they lie outside the data.
func (t tiffData) data(e ifdEntry) ([]byte, bool) {
	size := typeSize(e.typ) * uint64(e.count)
	if size == 0 {
		return nil, false
	}
	if size <= 4 {
		return e.value[:size], true
	}
	off := uint64(t.order.Uint32(e.value))
	if off+size > uint64(len(t.b)) {
		return nil, false
	}
	return t.b[off : off+size], true
}

// str returns an ASCII (or UNDEFINED/BYTE) entry as a clean string.
func (t tiffData) str(e ifdEntry) string {
	if e.typ != typeASCII && e.typ != typeUndefined && e.typ != typeByte {
		return ""
	}
	b, ok := t.data(e)
	if !ok {
		return ""
	}
	if i := strings.IndexByte(string(b), 0); i >= 0 {
		b = b[:i]
	}
	if len(b) > maxEXIFString {
		b = b[:maxEXIFString]
	}
	s := strings.ToValidUTF8(string(b), "")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, s)
	return strings.TrimSpace(s)
}

// first returns the first value of a SHORT or LONG entry.
func (t tiffData) first(e ifdEntry) (uint32, bool) {
	if e.count == 0 {
		return 0, false
	}
	switch e.typ {
	case typeShort:
		return uint32(t.order.Uint16(e.value)), true
	case typeLong:
		return t.order.Uint32(e.value), true
	}
	return 0, false
}

// position reads the latitude and longitude of a GPS IFD; ok is false unless both, and
// their references, are readable and within range.
func (t tiffData) position(gps []ifdEntry) (lat, lon float64, ok bool) {
	var latRef, lonRef string
	var latOK, lonOK bool
	for _, e := range gps {
		switch e.tag {
		case tagGPSLatitudeRef:
			latRef = t.str(e)
		case tagGPSLongitudeRef:
			lonRef = t.str(e)
		case tagGPSLatitude:
			lat, latOK = t.dms(e)
		case tagGPSLongitude:
			lon, lonOK = t.dms(e)
		}
	}
	switch {
	case !latOK || !lonOK || lat > 90 || lon > 180:
		return 0, 0, false
	case latRef != "N" && latRef != "S", lonRef != "E" && lonRef != "W":
		return 0, 0, false
	}
	if latRef == "S" {
		lat = -lat
	}
	if lonRef == "W" {
		lon = -lon
	}
	return lat, lon, true
}

// dms reads three unsigned rationals (degrees, minutes, seconds) as decimal degrees.
func (t tiffData) dms(e ifdEntry) (float64, bool) {
	if e.typ != typeRational || e.count != 3 {
		return 0, false
	}
	b, ok := t.data(e)
	if !ok {
		return 0, false
	}
	var v [3]float64
	for i := range v {
		num, den := t.order.Uint32(b[8*i:]), t.order.Uint32(b[8*i+4:])
		if den == 0 {
			return 0, false
		}
		v[i] = float64(num) / float64(den)
	}
	if v[1] >= 60 || v[2] >= 60 {
		return 0, false
	}
	return Degrees(v[0], v[1], v[2], false), true
}

// parseEXIF reads the fields of EXIF from a TIFF structure (an APP1 payload after its
// "Exif\0\0" prefix). It returns nil when the structure is invalid or holds none of them.
func parseEXIF(b []byte) *EXIF {
	if len(b) < 8 {
		return nil
	}
	order, ok := byteOrder(b[0:2])
	if !ok || order.Uint16(b[2:4]) != 42 {
		return nil
	}
	t := tiffData{b: b, order: order}
	var x EXIF
	var exifOff, gpsOff uint32
	for _, e := range t.ifd(order.Uint32(b[4:8])) {
		switch e.tag {
		case tagMake:
			x.Make = t.str(e)
		case tagModel:
			x.Model = t.str(e)
		case tagOrientation:
			if v, ok := t.first(e); ok && v >= 1 && v <= 8 {
				x.Orientation = int(v)
			}
		case tagExifIFD:
			exifOff, _ = t.first(e)
		case tagGPSIFD:
			gpsOff, _ = t.first(e)
		}
	}
	if exifOff != 0 {
		for _, e := range t.ifd(exifOff) {
			if e.tag != tagDateTimeOriginal {
				continue
			}
			s := t.str(e)
			if _, err := time.Parse(EXIFTimeLayout, s); err == nil {
				x.DateTimeOriginal = s
			}
		}
	}
	if gpsOff != 0 {
		x.Latitude, x.Longitude, x.HasGPS = t.position(t.ifd(gpsOff))
	}
	if x == (EXIF{}) {
		return nil
	}
	return &x
}
