package imagemeta

import (
	"bytes"
	"net/http"
	"testing"
)

func TestSniff(t *testing.T) {
	tests := []struct {
		name string
		head []byte
		want Format
		mime string
	}{
		{"jpeg", []byte{0xFF, 0xD8, 0xFF, 0xE0}, JPEG, "image/jpeg"},
		{"png", []byte("\x89PNG\r\n\x1a\n"), PNG, "image/png"},
		{"gif87a", []byte("GIF87a"), GIF, "image/gif"},
		{"gif89a", []byte("GIF89a\x01\x00"), GIF, "image/gif"},
		{"bmp", bmpHeader(40, 1, 1), BMP, "image/bmp"},
		{"bmp v5", bmpHeader(124, 1, 1), BMP, "image/bmp"},
		{"webp", webpVP8(1, 1), WEBP, "image/webp"},
		{"tiff little endian", []byte("II*\x00\x08\x00\x00\x00"), TIFF, "image/tiff"},
		{"tiff big endian", []byte("MM\x00*\x00\x00\x00\x08"), TIFF, "image/tiff"},
		{"bigtiff", []byte("II+\x00\x08\x00\x00\x00"), TIFF, "image/tiff"},
		{"ico", icoFile([2]int{16, 16}), ICO, "image/x-icon"},
		{"heic", ftyp("heic", "mif1", "heic"), HEIC, "image/heic"},
		{"heic by compatible brand", ftyp("mif1", "heic"), HEIC, "image/heic"},
		{"heif generic", ftyp("mif1", "miaf"), HEIC, "image/heic"},
		{"avif", ftyp("avif", "mif1", "miaf"), AVIF, "image/avif"},
		{"avif by compatible brand", ftyp("mif1", "avif"), AVIF, "image/avif"},
		{"avif sequence", ftyp("avis", "msf1"), AVIF, "image/avif"},

		{"empty", nil, Unknown, "application/octet-stream"},
		{"jpeg prefix too short", []byte{0xFF, 0xD8}, Unknown, "application/octet-stream"},
		{"png prefix too short", []byte("\x89PNG\r\n"), Unknown, "application/octet-stream"},
		{"riff but wave", []byte("RIFF\x00\x00\x00\x00WAVEfmt "), Unknown, "application/octet-stream"},
		{"text", []byte("hello world"), Unknown, "application/octet-stream"},
		{"text starting with BM", []byte("BMX is a bicycle sport, popular since 1970"), Unknown, "application/octet-stream"},
		{"BM with odd info header", append(bmpHeader(40, 1, 1)[:14], 41, 0, 0, 0), Unknown, "application/octet-stream"},
		{"ico directory without images", cat(le16(0), le16(1), le16(0), make([]byte, 16)), Unknown, "application/octet-stream"},
		{"cursor is not an icon", cat(le16(0), le16(2), icoFile([2]int{16, 16})[4:]), Unknown, "application/octet-stream"},
		{"ico entry with data inside directory", cat(icoFile([2]int{16, 16})[:18], le32(4)), Unknown, "application/octet-stream"},
		{"mp4", ftyp("isom", "iso2", "avc1", "mp41"), Unknown, "application/octet-stream"},
		{"quicktime", ftyp("qt  "), Unknown, "application/octet-stream"},
		{"pdf", []byte("%PDF-1.7\n"), Unknown, "application/octet-stream"},
		{"zip", []byte("PK\x03\x04"), Unknown, "application/octet-stream"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Sniff(tt.head); got != tt.want {
				t.Errorf("Sniff = %s, want %s", got, tt.want)
			}
			if got := ContentType(tt.head); got != tt.mime {
				t.Errorf("ContentType = %s, want %s", got, tt.mime)
			}
		})
	}
}

// TestSniffBeatsDetectContentType pins the formats net/http gets wrong, which is why this
// package exists.
func TestSniffBeatsDetectContentType(t *testing.T) {
	for _, head := range [][]byte{
		[]byte("II*\x00\x08\x00\x00\x00"),
		ftyp("heic", "mif1"),
		ftyp("avif", "mif1"),
	} {
		if http.DetectContentType(head) == ContentType(head) {
			t.Errorf("%q: net/http now agrees (%s); revisit", head[:8], ContentType(head))
		}
		if Sniff(head) == Unknown {
			t.Errorf("%q: Sniff = Unknown", head[:8])
		}
	}
}

func TestSniffLooksOnlyAtThePrefix(t *testing.T) {
	// An image signature after SniffLen bytes does not count.
	head := append(bytes.Repeat([]byte{' '}, SniffLen), 0xFF, 0xD8, 0xFF)
	if got := Sniff(head); got != Unknown {
		t.Errorf("Sniff = %s, want unknown", got)
	}
	// An ftyp box longer than the prefix is read up to the prefix.
	long := ftyp("mif1", "miaf")
	long[3] = 0xFF
	if got := Sniff(long); got != HEIC {
		t.Errorf("Sniff(long ftyp) = %s, want heic", got)
	}
}

func TestFormatStrings(t *testing.T) {
	tests := []struct {
		f    Format
		name string
		mime string
	}{
		{JPEG, "jpeg", "image/jpeg"},
		{Unknown, "unknown", "application/octet-stream"},
		{"", "unknown", "application/octet-stream"},
		{"svg", "svg", "application/octet-stream"},
	}
	for _, tt := range tests {
		if tt.f.String() != tt.name || tt.f.MIME() != tt.mime {
			t.Errorf("%q: String %q MIME %q, want %q %q", string(tt.f), tt.f.String(), tt.f.MIME(), tt.name, tt.mime)
		}
	}
}
