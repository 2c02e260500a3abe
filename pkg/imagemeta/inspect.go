package imagemeta

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/gif"
	"image/png"
	"io"
	"math"
	"net/http"
	"sync"

	"imgpipe/pkg/failure"
)

// Reasons of the permanent errors Inspect returns (see pkg/failure).
const (
	// ReasonNotAnImage: the input is empty or its first bytes are not an image format.
	ReasonNotAnImage = "NotAnImage"
	// ReasonCorruptImage: the format is recognised but its header is truncated or invalid.
	ReasonCorruptImage = "CorruptImage"
	// ReasonUnsupportedFormat: an image the pipeline cannot analyse (HEIC, AVIF, BigTIFF).
	ReasonUnsupportedFormat = "UnsupportedFormat"
	// ReasonHeaderBeyondLimit: the header did not end within the limit given to Inspect.
	// The image may be fine; a caller may retry with a larger limit or proceed without
	// metadata.
	ReasonHeaderBeyondLimit = "HeaderBeyondLimit"
)

// DefaultLimit is the read limit Inspect uses when given a limit <= 0. JPEG headers
// (with EXIF, ICC profiles and thumbnails before the frame header) fit in it in practice.
const DefaultLimit = 1 << 20

// Meta is what Inspect learns from an image header.
type Meta struct {
	Format Format
	MIME   string
	// Width and Height are the stored pixel dimensions (for ICO, of the largest entry),
	// before any EXIF orientation is applied; see DisplaySize.
	Width, Height int
	// EXIF holds the EXIF fields of a JPEG's APP1 segment; nil when there is none or it
	// could not be read (a broken EXIF block does not make the image fail).
	EXIF *EXIF
}

// DisplaySize returns the dimensions as displayed: Width and Height swapped when the EXIF
// orientation rotates the image by 90 degrees (orientations 5 to 8).
func (m *Meta) DisplaySize() (w, h int) {
	if m.EXIF != nil && m.EXIF.Orientation >= 5 && m.EXIF.Orientation <= 8 {
		return m.Height, m.Width
	}
	return m.Width, m.Height
}

// Inspect reads the header of the image in r and returns its format, dimensions and EXIF
// fields. It reads no more than limit bytes (DefaultLimit when limit <= 0) and, beyond a
// small read-ahead buffer, no more than the header needs; it never decodes pixels.
//
// Errors are classified with pkg/failure: permanent with reason ReasonNotAnImage,
// ReasonCorruptImage, ReasonUnsupportedFormat or ReasonHeaderBeyondLimit. An error from r
// itself is returned wrapped and keeps its own class (transient when unclassified).
// Because Inspect cannot tell "the input ends at limit" from "the input goes on", a header
// cut exactly at limit is reported as ReasonHeaderBeyondLimit, not ReasonCorruptImage.
func Inspect(r io.Reader, limit int64) (*Meta, error) {
	if limit <= 0 {
		limit = DefaultLimit
	}
	src := &source{r: r, limit: limit}
	head := make([]byte, min(int64(SniffLen), limit))
	n, err := io.ReadFull(src, head)
	head = head[:n]
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, fmt.Errorf("read image header: %w", err)
	}
	if src.err != nil {
		return nil, fmt.Errorf("read image header: %w", src.err)
	}
	if n == 0 {
		return nil, failure.Permanentf(ReasonNotAnImage, "empty input")
	}
	f := Sniff(head)
	switch f {
	case Unknown:
		return nil, failure.Permanentf(ReasonNotAnImage, "not an image: content looks like %s", http.DetectContentType(head))
	case HEIC, AVIF:
		return nil, failure.Permanentf(ReasonUnsupportedFormat, "%s images are not supported", f)
	}

	br := readers.Get().(*bufio.Reader)
	br.Reset(io.MultiReader(bytes.NewReader(head), src))
	defer func() {
		br.Reset(nil) // keep no reference to the caller's reader
		readers.Put(br)
	}()
	m := &Meta{Format: f, MIME: f.MIME()}
	switch f {
	case JPEG:
		err = readJPEG(br, m)
	case PNG:
		err = readConfig(br, m, png.DecodeConfig)
	case GIF:
		err = readConfig(br, m, gif.DecodeConfig)
	case BMP:
		err = readBMP(br, m)
	case WEBP:
		err = readWEBP(br, m)
	case TIFF:
		err = readTIFF(br, m)
	case ICO:
		err = readICO(br, m)
	}
	if err == nil && (m.Width <= 0 || m.Height <= 0) {
		err = fmt.Errorf("non-positive dimensions %dx%d", m.Width, m.Height)
	}
	if err != nil {
		return nil, src.classify(f, err)
	}
	return m, nil
}

// readers keeps the 4 KiB buffered readers Inspect reads the headers through: one per call
// in progress, not one allocated per image.
var readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4096) }}

// errUnsupported marks a recognised variant of a format that Inspect does not read.
var errUnsupported = errors.New("unsupported variant")

// source caps reads from the caller's reader at limit and remembers why reading stopped.
type source struct {
	r        io.Reader
	limit    int64
	n        int64
	hitLimit bool  // a read was attempted at the limit
	err      error // the first error from r other than io.EOF
}

func (s *source) Read(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	if s.n >= s.limit {
		s.hitLimit = true
		return 0, io.EOF
	}
	if int64(len(p)) > s.limit-s.n {
		p = p[:s.limit-s.n]
	}
	n, err := s.r.Read(p)
	if n < 0 || n > len(p) {
		n = 0 // a broken reader must not make us believe we read what we did not
		err = io.ErrNoProgress
	}
	s.n += int64(n)
	if err != nil && !errors.Is(err, io.EOF) {
		s.err = err
	}
	return n, err
}

// classify turns an error met while reading a format's header into a classified error.
func (s *source) classify(f Format, err error) error {
	switch {
	case s.err != nil:
		return fmt.Errorf("read %s header: %w", f, s.err)
	case errors.Is(err, errUnsupported):
		return failure.New(failure.Permanent, ReasonUnsupportedFormat, fmt.Errorf("%s: %w", f, err))
	case s.hitLimit:
		// The header needed more than limit bytes. Some decoders (image/gif) do not wrap
		// io.ErrUnexpectedEOF, so this does not look at err.
		return failure.Permanentf(ReasonHeaderBeyondLimit, "%s header does not end within the first %d bytes", f, s.limit)
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return failure.New(failure.Permanent, ReasonCorruptImage, fmt.Errorf("%s header truncated: %w", f, err))
	}
	return failure.New(failure.Permanent, ReasonCorruptImage, fmt.Errorf("%s header: %w", f, err))
}

// readConfig reads dimensions with a standard-library DecodeConfig.
func readConfig(r io.Reader, m *Meta, decode func(io.Reader) (image.Config, error)) error {
	cfg, err := decode(r)
	if err != nil {
		return err
	}
	m.Width, m.Height = cfg.Width, cfg.Height
	return nil
}

// dim converts a header field to a dimension, rejecting values an int cannot hold on
// every platform.
func dim(v uint64) (int, error) {
	if v == 0 || v > math.MaxInt32 {
		return 0, fmt.Errorf("dimension %d out of range", v)
	}
	return int(v), nil
}
