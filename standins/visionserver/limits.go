package visionserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"imgpipe/internal/visionstandin"
)

// Azure's image limits: more than 50x50 and less than 16000x16000 pixels; under 20 MB for
// 4.0 and under 4 MB for v3.2.
const (
	minDimension = 50
	maxDimension = 16000
	// MaxBytes40 is the largest body 4.0 accepts ("zero or larger than 20971520 bytes" is refused).
	MaxBytes40 = 20 << 20
	// MaxBytes32 is the largest body v3.2 accepts (it must be less than 4 MB).
	MaxBytes32 = 4<<20 - 1
	// maxJSONBody bounds a {"url": ...} body.
	maxJSONBody = 64 << 10
)

// apiSpec is what differs between the two API versions on input.
type apiSpec struct {
	maxBytes int64
	formats  map[string]bool
	sizeErr  func() *apiError
}

var spec40 = apiSpec{
	maxBytes: MaxBytes40,
	formats: map[string]bool{FormatJPEG: true, FormatMPO: true, FormatPNG: true, FormatGIF: true,
		FormatBMP: true, FormatWEBP: true, FormatTIFF: true, FormatICO: true},
	// Seen from the real service: this one has no inner error.
	sizeErr: func() *apiError {
		return &apiError{status: http.StatusBadRequest, code: CodeInvalidRequest,
			message: "The image size is not allowed to be zero or larger than 20971520 bytes."}
	},
}

var spec32 = apiSpec{
	maxBytes: MaxBytes32,
	formats:  map[string]bool{FormatJPEG: true, FormatMPO: true, FormatPNG: true, FormatGIF: true, FormatBMP: true},
	sizeErr: func() *apiError {
		return invalid(CodeInvalidImageSize, "The image size is not allowed to be zero or larger than 4194304 bytes.")
	},
}

// image reads and inspects the image of an analysis request. With the EchoURL fault, an
// error about an image given by URL quotes the URL.
func (s *Server) image(r *http.Request, spec apiSpec) ([]byte, description, *apiError) {
	b, imageURL, aerr := s.readImage(r, spec)
	var d description
	if aerr == nil {
		d, aerr = s.inspect(r.Context(), b, spec)
	}
	if aerr != nil && imageURL != "" && s.Faults().EchoURL {
		aerr.message += " Image URL: " + imageURL
		if aerr.innerMsg != "" {
			aerr.innerMsg += " Image URL: " + imageURL
		}
	}
	return b, d, aerr
}

// readImage returns the image bytes of a request: the body itself, or what its
// {"url": ...} points at (and that URL). Nothing larger than spec.maxBytes+1 bytes is ever
// read.
func (s *Server) readImage(r *http.Request, spec apiSpec) ([]byte, string, *apiError) {
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return nil, "", unsupportedMediaType(ct)
	}
	switch {
	case mt == "application/json":
		raw, tooBig, err := readAtMost(r.Body, maxJSONBody)
		if err != nil {
			return nil, "", badArgument("Read the request body: %v", err)
		}
		if tooBig {
			return nil, "", badArgument("The JSON body is larger than %d bytes.", maxJSONBody)
		}
		var body struct {
			URL string `json:"url"`
		}
		if err := json.Unmarshal(raw, &body); err != nil {
			return nil, "", badArgument("The JSON body is not valid: %v", err)
		}
		b, aerr := s.fetchURL(r.Context(), body.URL, spec)
		return b, body.URL, aerr
	case mt == "application/octet-stream", strings.HasPrefix(mt, "image/"):
		if r.ContentLength > spec.maxBytes {
			return nil, "", spec.sizeErr()
		}
		b, tooBig, err := readAtMost(r.Body, spec.maxBytes)
		if err != nil {
			return nil, "", badArgument("Read the request body: %v", err)
		}
		if tooBig || len(b) == 0 {
			return nil, "", spec.sizeErr()
		}
		return b, "", nil
	}
	return nil, "", unsupportedMediaType(ct)
}

// readAtMost reads up to limit bytes and reports whether there was more.
func readAtMost(r io.Reader, limit int64) ([]byte, bool, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, false, err
	}
	if int64(len(b)) > limit {
		return nil, true, nil
	}
	return b, false, nil
}

// fetchURL downloads an image with a GET, as the service does for {"url": ...} bodies.
func (s *Server) fetchURL(ctx context.Context, raw string, spec apiSpec) ([]byte, *apiError) {
	u, err := url.Parse(raw)
	if raw == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, invalidURL("Image URL is badly formatted.")
	}
	ctx, cancel := context.WithTimeout(ctx, s.fetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, invalidURL("Image URL is badly formatted.")
	}
	resp, err := s.fetch.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, invalidURL("Failed to download the image from the input URL: the download timed out.")
		}
		return nil, invalidURL("Failed to download the image from the input URL.")
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, invalidURL(fmt.Sprintf(
			"Failed to download the image from the input URL. The response status code was %d.", resp.StatusCode))
	}
	if resp.ContentLength > spec.maxBytes {
		return nil, spec.sizeErr()
	}
	b, tooBig, err := readAtMost(resp.Body, spec.maxBytes)
	if err != nil {
		return nil, invalidURL("Failed to download the image from the input URL.")
	}
	if tooBig || len(b) == 0 {
		return nil, spec.sizeErr()
	}
	return b, nil
}

// inspect applies the format and dimension limits, then decodes and describes the image.
// Dimensions are checked from the header before any pixel is decoded, so a small file that
// claims a huge image costs nothing.
func (s *Server) inspect(ctx context.Context, b []byte, spec apiSpec) (description, *apiError) {
	p, err := probe(b)
	if err != nil || !spec.formats[p.format] {
		return description{}, invalidFormat()
	}
	if p.width <= minDimension || p.height <= minDimension || p.width >= maxDimension || p.height >= maxDimension {
		return description{}, invalidDimensions()
	}
	if !p.decodable || p.width*p.height > s.maxDecodePixels {
		return describe(p, nil), nil
	}
	select {
	case s.decodeSlots <- struct{}{}:
	case <-ctx.Done():
		return description{}, transientError(visionstandin.KindTimeout)
	}
	img, err := decode(p, b)
	<-s.decodeSlots
	switch {
	case errors.Is(err, errUndecodable):
		return describe(p, nil), nil
	case err != nil:
		return description{}, invalidFormat()
	}
	return describe(p, analysePixels(img)), nil
}
