package visionserver

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/image/bmp"
	"golang.org/x/image/tiff"

	"imgpipe/internal/visionstandin"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// ---- generated images ----

func solid(w, h int, c color.Color) *image.RGBA {
	m := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			m.Set(x, y, c)
		}
	}
	return m
}

// framed is an image of colour fg in its centre half and bg around it.
func framed(w, h int, fg, bg color.Color) *image.RGBA {
	m := solid(w, h, bg)
	for y := h / 4; y < h-h/4; y++ {
		for x := w / 4; x < w-w/4; x++ {
			m.Set(x, y, fg)
		}
	}
	return m
}

// split is colour left in the leftmost frac of the columns and right elsewhere.
func split(w, h int, frac float64, left, right color.Color) *image.RGBA {
	m := solid(w, h, right)
	for y := 0; y < h; y++ {
		for x := 0; x < int(frac*float64(w)); x++ {
			m.Set(x, y, left)
		}
	}
	return m
}

func encPNG(t testing.TB, m image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, m); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func encJPEG(t testing.TB, m image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := jpeg.Encode(&b, m, &jpeg.Options{Quality: 95}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func encGIF(t testing.TB, m image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := gif.Encode(&b, m, nil); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func encBMP(t testing.TB, m image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := bmp.Encode(&b, m); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func encTIFF(t testing.TB, m image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := tiff.Encode(&b, m, nil); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func solidPNG(t testing.TB, w, h int, c color.Color) []byte { return encPNG(t, solid(w, h, c)) }

// pngHeaderOnly is a PNG signature and IHDR claiming w x h, and nothing else: enough for
// DecodeConfig, useless for Decode, and tiny whatever it claims.
func pngHeaderOnly(w, h uint32) []byte {
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:4], w)
	binary.BigEndian.PutUint32(ihdr[4:8], h)
	ihdr[8], ihdr[9] = 8, 2 // 8-bit RGB
	_ = binary.Write(&b, binary.BigEndian, uint32(len(ihdr)))
	chunk := append([]byte("IHDR"), ihdr...)
	b.Write(chunk)
	_ = binary.Write(&b, binary.BigEndian, crc32.ChecksumIEEE(chunk))
	return b.Bytes()
}

// bitWriter writes bits least-significant first, as VP8L does.
type bitWriter struct {
	buf   []byte
	acc   uint64
	nbits uint
}

func (w *bitWriter) write(v uint64, n uint) {
	w.acc |= v << w.nbits
	w.nbits += n
	for w.nbits >= 8 {
		w.buf = append(w.buf, byte(w.acc))
		w.acc >>= 8
		w.nbits -= 8
	}
}

func (w *bitWriter) bytes() []byte {
	if w.nbits > 0 {
		w.buf = append(w.buf, byte(w.acc))
		w.acc, w.nbits = 0, 0
	}
	return w.buf
}

// solidWebP is a lossless WebP of one colour: every prefix code has a single symbol, so the
// pixels take no bits at all.
func solidWebP(w, h int, r, g, b uint8) []byte {
	var bw bitWriter
	bw.write(0x2f, 8)
	bw.write(uint64(w-1), 14)
	bw.write(uint64(h-1), 14)
	bw.write(0, 1) // alpha unused
	bw.write(0, 3) // version
	bw.write(0, 1) // no transform
	bw.write(0, 1) // no colour cache
	bw.write(0, 1) // no meta prefix codes
	for _, sym := range []uint8{g, r, b, 255} {
		bw.write(1, 1) // simple code
		bw.write(0, 1) // one symbol
		bw.write(1, 1) // 8-bit symbol
		bw.write(uint64(sym), 8)
	}
	bw.write(1, 1) // distance code: simple
	bw.write(0, 1) // one symbol
	bw.write(0, 1) // 1-bit symbol
	bw.write(0, 1) // symbol 0
	data := bw.bytes()
	var out bytes.Buffer
	pad := len(data) % 2
	out.WriteString("RIFF")
	_ = binary.Write(&out, binary.LittleEndian, uint32(4+8+len(data)+pad))
	out.WriteString("WEBPVP8L")
	_ = binary.Write(&out, binary.LittleEndian, uint32(len(data)))
	out.Write(data)
	if pad == 1 {
		out.WriteByte(0)
	}
	return out.Bytes()
}

// icoOf wraps one picture (a PNG file, or a BMP file turned into a DIB) in an ICO file.
func icoOf(t testing.TB, pic []byte, w, h int) []byte {
	t.Helper()
	data := pic
	if bytes.HasPrefix(pic, []byte("BM")) {
		dib := append([]byte(nil), pic[14:]...)
		binary.LittleEndian.PutUint32(dib[8:12], uint32(2*h)) // colour rows + AND mask rows
		maskRow := ((w + 31) / 32) * 4
		data = append(dib, make([]byte, maskRow*h)...)
	}
	var b bytes.Buffer
	_ = binary.Write(&b, binary.LittleEndian, []uint16{0, 1, 1})
	b.WriteByte(byte(w % 256))
	b.WriteByte(byte(h % 256))
	b.Write([]byte{0, 0})
	_ = binary.Write(&b, binary.LittleEndian, []uint16{1, 32})
	_ = binary.Write(&b, binary.LittleEndian, []uint32{uint32(len(data)), 6 + 16})
	b.Write(data)
	return b.Bytes()
}

// mpoOf inserts an APP2 "MPF" segment after a JPEG's SOI marker.
func mpoOf(jpg []byte) []byte {
	payload := append([]byte("MPF\x00"), []byte("II*\x00\x08\x00\x00\x00")...)
	seg := []byte{0xFF, 0xE2, 0, 0}
	binary.BigEndian.PutUint16(seg[2:], uint16(2+len(payload)))
	out := append([]byte{}, jpg[:2]...)
	out = append(out, seg...)
	out = append(out, payload...)
	return append(out, jpg[2:]...)
}

// ---- a server under test ----

type fakeClock struct{ manualClock } // the server's own manual clock, advanced by the test

func newFakeClock() *fakeClock {
	return &fakeClock{manualClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}}
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type harness struct {
	t      *testing.T
	srv    *Server
	http   *httptest.Server
	client *http.Client
}

func newHarness(t *testing.T, opts *Options) *harness {
	t.Helper()
	s := New(opts)
	hs := httptest.NewServer(s)
	t.Cleanup(hs.Close)
	return &harness{t: t, srv: s, http: hs, client: hs.Client()}
}

// reply is an answer, read whole.
type reply struct {
	status int
	header http.Header
	body   []byte
}

func (r reply) errorBody(t *testing.T) ErrorResponse {
	t.Helper()
	var e ErrorResponse
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatalf("error body %q: %v", r.body, err)
	}
	return e
}

// do sends a request; body may be nil, a []byte, a string or an io.Reader.
func (h *harness) do(method, path string, header map[string]string, body any) reply {
	h.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case string:
		rd = strings.NewReader(b)
	case io.Reader:
		rd = b
	}
	req, err := http.NewRequest(method, h.http.URL+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: b}
}

var keyHeader = map[string]string{"Ocp-Apim-Subscription-Key": visionstandin.DefaultKey, "Content-Type": "application/octet-stream"}

func path40(features string) string {
	return Path40 + "?api-version=2024-02-01&features=" + features
}

// analyze40 posts image bytes to 4.0 with the default key.
func (h *harness) analyze40(features string, img []byte) reply {
	h.t.Helper()
	return h.do(http.MethodPost, path40(features), keyHeader, img)
}

func (h *harness) analyze32(features string, img []byte) reply {
	h.t.Helper()
	return h.do(http.MethodPost, Path32+"?visualFeatures="+features, keyHeader, img)
}

func decode40(t *testing.T, r reply) Result40 {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("status %d, body %s", r.status, r.body)
	}
	var res Result40
	if err := json.Unmarshal(r.body, &res); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
	return res
}

func decode32(t *testing.T, r reply) Result32 {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("status %d, body %s", r.status, r.body)
	}
	var res Result32
	if err := json.Unmarshal(r.body, &res); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
	return res
}

func tagNames(tags []Tag) []string {
	out := make([]string, len(tags))
	for i, t := range tags {
		out[i] = t.Name
	}
	return out
}

func hasTag(tags []Tag, name string) bool {
	for _, t := range tags {
		if t.Name == name {
			return true
		}
	}
	return false
}

// wantError checks an error answer's status and codes; inner "" means no inner error.
func wantError(t *testing.T, r reply, status int, code, inner string) ErrorResponse {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.body)
	}
	e := r.errorBody(t)
	if e.Error.Code != code {
		t.Errorf("error code %q, want %q; body %s", e.Error.Code, code, r.body)
	}
	switch {
	case inner == "" && e.Error.InnerError != nil:
		t.Errorf("unexpected inner error %+v", *e.Error.InnerError)
	case inner != "" && (e.Error.InnerError == nil || e.Error.InnerError.Code != inner):
		t.Errorf("inner error %+v, want code %q; body %s", e.Error.InnerError, inner, r.body)
	}
	if e.Error.Message == "" {
		t.Errorf("empty error message; body %s", r.body)
	}
	if got := r.header.Get("x-ms-error-code"); got != code {
		t.Errorf("x-ms-error-code %q, want %q", got, code)
	}
	return e
}
