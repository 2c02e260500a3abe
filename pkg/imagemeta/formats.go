package imagemeta

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// JPEG markers used by readJPEG.
const (
	mSOI  = 0xD8
	mEOI  = 0xD9
	mSOS  = 0xDA
	mAPP1 = 0xE1
	mTEM  = 0x01
)

// exifPrefix starts the payload of an APP1 segment that holds EXIF.
var exifPrefix = []byte("Exif\x00")

// readJPEG walks the marker segments up to the first frame header (SOFn), skipping every
// segment except an APP1 EXIF block, which it reads (at most 64 KiB) and parses.
func readJPEG(r *bufio.Reader, m *Meta) error {
	var soi [2]byte
	if _, err := io.ReadFull(r, soi[:]); err != nil {
		return err
	}
	if soi[0] != 0xFF || soi[1] != mSOI {
		return errors.New("missing SOI marker")
	}
	for {
		// Find the next marker: skip stray bytes and 0xFF fill bytes, as decoders do.
		c, err := r.ReadByte()
		if err != nil {
			return err
		}
		if c != 0xFF {
			continue
		}
		marker := byte(0xFF)
		for marker == 0xFF {
			if marker, err = r.ReadByte(); err != nil {
				return err
			}
		}
		switch {
		case marker == 0x00: // a stuffed zero: not a marker
			continue
		case marker == mTEM, marker >= 0xD0 && marker <= mSOI: // RSTn, SOI, TEM: no length
			continue
		case marker == mEOI:
			return errors.New("end of image before the frame header")
		case marker == mSOS:
			return errors.New("scan before the frame header")
		}
		var lb [2]byte
		if _, err := io.ReadFull(r, lb[:]); err != nil {
			return err
		}
		length := int(binary.BigEndian.Uint16(lb[:]))
		if length < 2 {
			return fmt.Errorf("segment 0xFF%02X: length %d", marker, length)
		}
		payload := length - 2
		switch {
		case isSOF(marker):
			if payload < 6 {
				return fmt.Errorf("frame header of %d bytes", payload)
			}
			var sof [6]byte
			if _, err := io.ReadFull(r, sof[:]); err != nil {
				return err
			}
			// precision, height, width, components
			h := binary.BigEndian.Uint16(sof[1:3])
			w := binary.BigEndian.Uint16(sof[3:5])
			var err error
			if m.Width, err = dim(uint64(w)); err != nil {
				return fmt.Errorf("frame width: %w", err)
			}
			if m.Height, err = dim(uint64(h)); err != nil {
				return fmt.Errorf("frame height: %w", err)
			}
			return nil
		case marker == mAPP1 && m.EXIF == nil:
			peek, err := r.Peek(min(payload, len(exifPrefix)))
			if err != nil {
				return err
			}
			if payload < len(exifPrefix)+1 || !bytes.Equal(peek, exifPrefix) {
				break
			}
			seg := make([]byte, payload)
			if _, err := io.ReadFull(r, seg); err != nil {
				return err
			}
			// "Exif\0" and one pad byte, then a TIFF structure. A broken block is ignored.
			m.EXIF = parseEXIF(seg[len(exifPrefix)+1:])
			continue
		}
		if _, err := r.Discard(payload); err != nil {
			return err
		}
	}
}

// isSOF reports whether marker starts a frame header: SOF0-SOF15 except DHT (C4),
// JPG (C8) and DAC (CC).
func isSOF(marker byte) bool {
	return marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC
}

// readBMP reads BITMAPFILEHEADER and the size fields of the info header. BITMAPCOREHEADER
// (12 bytes) has 16-bit unsigned sizes; the later headers have 32-bit signed ones, with a
// negative height meaning a top-down bitmap.
func readBMP(r io.Reader, m *Meta) error {
	var h [26]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return err
	}
	le := binary.LittleEndian
	dibSize := le.Uint32(h[14:18])
	if !validDIBSize(dibSize) {
		return fmt.Errorf("info header size %d", dibSize)
	}
	var w, ht int64
	if dibSize == 12 {
		w, ht = int64(le.Uint16(h[18:20])), int64(le.Uint16(h[20:22]))
	} else {
		w, ht = int64(int32(le.Uint32(h[18:22]))), int64(int32(le.Uint32(h[22:26])))
		if ht < 0 {
			ht = -ht
		}
	}
	if w <= 0 || ht <= 0 {
		return fmt.Errorf("non-positive dimensions %dx%d", w, ht)
	}
	var err error
	if m.Width, err = dim(uint64(w)); err != nil {
		return err
	}
	m.Height, err = dim(uint64(ht))
	return err
}

// readWEBP reads the RIFF header and the first chunk: VP8 (lossy), VP8L (lossless) or
// VP8X (extended, with the canvas size).
func readWEBP(r io.Reader, m *Meta) error {
	var h [30]byte
	// The shortest valid header (VP8L) is 25 bytes; read what is there up to 30.
	n, err := io.ReadFull(r, h[:])
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return err
	}
	if n < 20 {
		return io.ErrUnexpectedEOF
	}
	le := binary.LittleEndian
	var w, ht uint64
	switch chunk := string(h[12:16]); chunk {
	case "VP8 ":
		if n < 30 {
			return io.ErrUnexpectedEOF
		}
		d := h[20:30]
		if d[0]&1 != 0 {
			return errors.New("VP8: first frame is not a key frame")
		}
		if d[3] != 0x9D || d[4] != 0x01 || d[5] != 0x2A {
			return errors.New("VP8: missing start code")
		}
		w, ht = uint64(le.Uint16(d[6:8])&0x3FFF), uint64(le.Uint16(d[8:10])&0x3FFF)
	case "VP8L":
		if n < 25 {
			return io.ErrUnexpectedEOF
		}
		d := h[20:25]
		if d[0] != 0x2F {
			return errors.New("VP8L: bad signature")
		}
		bits := le.Uint32(d[1:5])
		if bits>>29 != 0 {
			return errors.New("VP8L: unknown version")
		}
		w, ht = uint64(bits&0x3FFF)+1, uint64((bits>>14)&0x3FFF)+1
	case "VP8X":
		if n < 30 {
			return io.ErrUnexpectedEOF
		}
		d := h[20:30]
		w = (uint64(d[4]) | uint64(d[5])<<8 | uint64(d[6])<<16) + 1
		ht = (uint64(d[7]) | uint64(d[8])<<8 | uint64(d[9])<<16) + 1
	default:
		return fmt.Errorf("unknown first chunk %q", chunk)
	}
	if m.Width, err = dim(w); err != nil {
		return err
	}
	m.Height, err = dim(ht)
	return err
}

// TIFF tags and field types used here and by the EXIF reader.
const (
	tagImageWidth  = 0x0100
	tagImageLength = 0x0101
	typeByte       = 1
	typeASCII      = 2
	typeShort      = 3
	typeLong       = 4
	typeRational   = 5
	typeUndefined  = 7
)

// readTIFF reads the header and the first IFD (skipping forward to it) for ImageWidth and
// ImageLength. Only the bytes up to the end of IFD0 are read.
func readTIFF(r *bufio.Reader, m *Meta) error {
	var h [8]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return err
	}
	order, ok := byteOrder(h[0:2])
	if !ok {
		return errors.New("bad byte order mark")
	}
	switch order.Uint16(h[2:4]) {
	case 42:
	case 43:
		return fmt.Errorf("BigTIFF: %w", errUnsupported)
	default:
		return errors.New("bad magic number")
	}
	off := int64(order.Uint32(h[4:8]))
	if off < 8 {
		return fmt.Errorf("first IFD at offset %d", off)
	}
	if _, err := io.CopyN(io.Discard, r, off-8); err != nil {
		return err
	}
	var cb [2]byte
	if _, err := io.ReadFull(r, cb[:]); err != nil {
		return err
	}
	count := int(order.Uint16(cb[:]))
	if count == 0 {
		return errors.New("empty first IFD")
	}
	entries := make([]byte, 12*count)
	if _, err := io.ReadFull(r, entries); err != nil {
		return err
	}
	var w, ht uint64
	for i := 0; i < count; i++ {
		e := entries[12*i : 12*i+12]
		tag, typ, n := order.Uint16(e[0:2]), order.Uint16(e[2:4]), order.Uint32(e[4:8])
		if tag != tagImageWidth && tag != tagImageLength || n != 1 {
			continue
		}
		var v uint64
		switch typ {
		case typeShort:
			v = uint64(order.Uint16(e[8:10]))
		case typeLong:
			v = uint64(order.Uint32(e[8:12]))
		default:
			return fmt.Errorf("tag %d has type %d", tag, typ)
		}
		if tag == tagImageWidth {
			w = v
		} else {
			ht = v
		}
	}
	var err error
	if m.Width, err = dim(w); err != nil {
		return fmt.Errorf("ImageWidth: %w", err)
	}
	if m.Height, err = dim(ht); err != nil {
		return fmt.Errorf("ImageLength: %w", err)
	}
	return nil
}

// byteOrder decodes a TIFF byte order mark.
func byteOrder(b []byte) (binary.ByteOrder, bool) {
	switch string(b) {
	case "II":
		return binary.LittleEndian, true
	case "MM":
		return binary.BigEndian, true
	}
	return nil, false
}

// readICO reads the icon directory and reports the largest entry (a size byte of 0 means
// 256 pixels).
func readICO(r io.Reader, m *Meta) error {
	var h [6]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return err
	}
	count := int(binary.LittleEndian.Uint16(h[4:6]))
	if count == 0 {
		return errors.New("no images")
	}
	dir := make([]byte, 16*count)
	if _, err := io.ReadFull(r, dir); err != nil {
		return err
	}
	for i := 0; i < count; i++ {
		e := dir[16*i : 16*i+16]
		w, ht := int(e[0]), int(e[1])
		if w == 0 {
			w = 256
		}
		if ht == 0 {
			ht = 256
		}
		if w*ht > m.Width*m.Height {
			m.Width, m.Height = w, ht
		}
	}
	return nil
}
