package samples

import (
	"bytes"
	"crypto/sha256"
	"image"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/image/bmp"
	"golang.org/x/image/tiff"

	"imgpipe/pkg/failure"
	"imgpipe/pkg/imagemeta"
)

// generated caches one Generate run per test binary: several tests read the same set.
var generated struct {
	dir     string
	samples []Sample
}

func generate(t *testing.T) (string, []Sample) {
	t.Helper()
	if generated.samples == nil {
		dir, err := os.MkdirTemp("", "samples-")
		if err != nil {
			t.Fatal(err)
		}
		s, err := Generate(dir)
		if err != nil {
			os.RemoveAll(dir)
			t.Fatal(err)
		}
		generated.dir, generated.samples = dir, s
	}
	return generated.dir, generated.samples
}

func TestMain(m *testing.M) {
	code := m.Run()
	if generated.dir != "" {
		os.RemoveAll(generated.dir)
	}
	os.Exit(code)
}

// tree returns every regular file under dir by its slash-separated relative path.
func tree(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		rel, _ := filepath.Rel(dir, path)
		files[filepath.ToSlash(rel)] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func TestGenerateIsDeterministic(t *testing.T) {
	dir1, s1 := generate(t)
	dir2 := t.TempDir()
	s2, err := Generate(dir2)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(s1, s2) {
		t.Fatalf("descriptions differ:\n%+v\n%+v", s1, s2)
	}
	f1, f2 := tree(t, dir1), tree(t, dir2)
	if len(f1) != len(s1) || len(f2) != len(s1) {
		t.Fatalf("%d and %d files written, %d samples", len(f1), len(f2), len(s1))
	}
	for _, s := range s1 {
		b1, ok := f1[s.Name]
		if !ok {
			t.Errorf("%s: not written", s.Name)
			continue
		}
		if !bytes.Equal(b1, f2[s.Name]) {
			t.Errorf("%s: bytes differ between runs", s.Name)
		}
		if int64(len(b1)) != s.Size {
			t.Errorf("%s: %d bytes, Size says %d", s.Name, len(b1), s.Size)
		}
	}
}

func TestGenerateReplacesExistingFiles(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "empty.jpg"), []byte("stale"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Generate(dir); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "empty.jpg")); err != nil || len(b) != 0 {
		t.Fatalf("empty.jpg = %q, %v; want it emptied", b, err)
	}
}

func TestGenerateIntoAFileFails(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Generate(file); err == nil {
		t.Fatal("want an error when dir is a file")
	}
}

// TestSamplesAsInspectSeesThem checks every sample's declared format, dimensions, EXIF
// and, for bad ones, the reason imagemeta gives where it can tell.
func TestSamplesAsInspectSeesThem(t *testing.T) {
	dir, all := generate(t)
	for _, s := range all {
		t.Run(s.Name, func(t *testing.T) {
			b, err := os.ReadFile(s.Path(dir))
			if err != nil {
				t.Fatal(err)
			}
			if got := imagemeta.Sniff(b).String(); got != s.Format {
				t.Errorf("Sniff = %s, declared %s", got, s.Format)
			}
			m, err := imagemeta.Inspect(bytes.NewReader(b), 0)
			inspectable := s.Good || s.WantReason == ReasonInvalidImageSize
			if !inspectable {
				if err == nil {
					t.Fatalf("Inspect = %+v, want %s", m, s.WantReason)
				}
				if !failure.IsPermanent(err) || failure.ReasonOf(err) != s.WantReason {
					t.Fatalf("Inspect error %v: reason %q, want permanent %q", err, failure.ReasonOf(err), s.WantReason)
				}
				return
			}
			if err != nil {
				t.Fatalf("Inspect: %v", err)
			}
			if string(m.Format) != s.Format || m.Width != s.Width || m.Height != s.Height {
				t.Errorf("Inspect = %s %dx%d, declared %s %dx%d", m.Format, m.Width, m.Height, s.Format, s.Width, s.Height)
			}
			if !reflect.DeepEqual(m.EXIF, s.EXIF) {
				t.Errorf("EXIF = %+v, declared %+v", m.EXIF, s.EXIF)
			}
			if s.WantReason == ReasonInvalidImageSize && (s.Width > 50 && s.Height > 50) {
				t.Errorf("%dx%d is not too small for Vision", s.Width, s.Height)
			}
		})
	}
}

// decode decodes a whole file as the Vision stand-in would.
func decode(format string, b []byte) (image.Image, error) {
	r := bytes.NewReader(b)
	switch format {
	case "jpeg":
		return jpeg.Decode(r)
	case "png":
		return png.Decode(r)
	case "gif":
		return gif.Decode(r)
	case "bmp":
		return bmp.Decode(r)
	case "tiff":
		return tiff.Decode(r)
	}
	return nil, os.ErrInvalid
}

// mean returns the average 8-bit channels of an image.
func mean(img image.Image) (r, g, b float64) {
	bounds := img.Bounds()
	n := 0
	for y := bounds.Min.Y; y < bounds.Max.Y; y += 3 {
		for x := bounds.Min.X; x < bounds.Max.X; x += 3 {
			cr, cg, cb, _ := img.At(x, y).RGBA()
			r, g, b = r+float64(cr>>8), g+float64(cg>>8), b+float64(cb>>8)
			n++
		}
	}
	return r / float64(n), g / float64(n), b / float64(n)
}

// TestGoodSamplesDecodeWithTheirColours decodes every good sample whole and checks the
// dominant colour its name promises, since the Vision stand-in tags images by colour.
func TestGoodSamplesDecodeWithTheirColours(t *testing.T) {
	dir, all := generate(t)
	type check func(r, g, b float64) bool
	colours := map[string]check{
		"sunset-gradient.jpg":        func(r, g, b float64) bool { return r > g+40 && r > b+40 },
		"ocean.png":                  func(r, g, b float64) bool { return b > r+80 && b > g+30 },
		"forest.gif":                 func(r, g, b float64) bool { return g > r+30 && g > b+30 },
		"night-sky.jpg":              func(r, g, b float64) bool { return r+g+b < 3*50 },
		"grayscale-portrait.png":     func(r, g, b float64) bool { return r == g && g == b },
		"subfolder/nested-image.png": func(r, g, b float64) bool { return r > g+60 && b > g+60 },
		"desert.bmp":                 func(r, g, b float64) bool { return r > g && g > b+30 },
		"phone-rotated.jpg":          func(r, g, b float64) bool { return r > b+40 && g > b+60 },
	}
	for _, s := range all {
		if !s.Good {
			continue
		}
		t.Run(s.Name, func(t *testing.T) {
			b, err := os.ReadFile(s.Path(dir))
			if err != nil {
				t.Fatal(err)
			}
			img, err := decode(s.Format, b)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if got := img.Bounds().Size(); got != image.Pt(s.Width, s.Height) {
				t.Errorf("decoded size %v, declared %dx%d", got, s.Width, s.Height)
			}
			if c, ok := colours[s.Name]; ok {
				if r, g, b := mean(img); !c(r, g, b) {
					t.Errorf("mean colour (%.0f, %.0f, %.0f) does not match the name", r, g, b)
				}
			}
		})
	}
}

func TestSampleSet(t *testing.T) {
	_, all := generate(t)
	var total int64
	names := map[string]bool{}
	hashes := map[[32]byte]string{}
	formats := map[string]bool{}
	reasons := map[string]bool{}
	var spaced, unicode, nested, large bool
	for _, s := range all {
		if names[s.Name] {
			t.Errorf("%s: duplicate name", s.Name)
		}
		names[s.Name] = true
		total += s.Size
		spaced = spaced || strings.Contains(s.Name, " ")
		unicode = unicode || hasNonASCII(s.Name)
		nested = nested || strings.Contains(s.Name, "/")
		if s.Description == "" {
			t.Errorf("%s: no description", s.Name)
		}
		if s.Good {
			formats[s.Format] = true
			large = large || s.Size > 5<<20
			if s.WantReason != "" {
				t.Errorf("%s: good with reason %s", s.Name, s.WantReason)
			}
		} else {
			reasons[s.WantReason] = true
		}
	}
	dir, _ := generate(t)
	for name, b := range tree(t, dir) {
		h := sha256.Sum256(b)
		if other, dup := hashes[h]; dup {
			t.Errorf("%s and %s have the same content", name, other)
		}
		hashes[h] = name
	}
	for _, f := range []string{"jpeg", "png", "gif", "bmp", "tiff"} {
		if !formats[f] {
			t.Errorf("no good %s sample", f)
		}
	}
	for _, r := range []string{imagemeta.ReasonNotAnImage, imagemeta.ReasonCorruptImage, imagemeta.ReasonUnsupportedFormat, ReasonInvalidImageSize} {
		if !reasons[r] {
			t.Errorf("no bad sample for %s", r)
		}
	}
	if !spaced || !unicode || !nested || !large {
		t.Errorf("missing a name with spaces (%v), a non-ASCII name (%v), a nested file (%v) or a file over 5 MiB (%v)", spaced, unicode, nested, large)
	}
	if total > 15<<20 {
		t.Errorf("the set is %d bytes, want at most 15 MiB", total)
	}
	if !names["\u00e9t\u00e9 \u00e0 la plage.jpg"] {
		t.Error("the accented name must be NFC")
	}
}

func hasNonASCII(s string) bool {
	for _, r := range s {
		if r > 127 {
			return true
		}
	}
	return false
}

func BenchmarkGenerate(b *testing.B) {
	dir := b.TempDir()
	for b.Loop() {
		if _, err := Generate(dir); err != nil {
			b.Fatal(err)
		}
	}
}

func TestBadFiles(t *testing.T) {
	files, err := BadFiles()
	if err != nil {
		t.Fatal(err)
	}
	reasons := map[string]bool{}
	for _, f := range files {
		if f.Good || f.WantReason == "" {
			t.Errorf("%s: a bad file must carry its reason: %+v", f.Name, f.Sample)
		}
		if int64(len(f.Body)) != f.Size {
			t.Errorf("%s: size %d, body %d bytes", f.Name, f.Size, len(f.Body))
		}
		if got := imagemeta.Sniff(f.Body); string(got) != f.Format {
			t.Errorf("%s: sniffed %q, want %q", f.Name, got, f.Format)
		}
		reasons[f.WantReason] = true
	}
	for _, want := range []string{imagemeta.ReasonNotAnImage, imagemeta.ReasonCorruptImage, ReasonInvalidImageSize} {
		if !reasons[want] {
			t.Errorf("no bad file with reason %s", want)
		}
	}
}

func TestOddPath(t *testing.T) {
	seen := map[string]bool{}
	var space, plus, nonASCII, deep bool
	for i := range 500 {
		p := OddPath(7, i, "jpg")
		if p != OddPath(7, i, "jpg") {
			t.Fatalf("OddPath(7, %d) is not deterministic", i)
		}
		if seen[p] {
			t.Fatalf("OddPath(7, %d) = %q repeats an earlier path", i, p)
		}
		seen[p] = true
		if !utf8.ValidString(p) || !strings.HasSuffix(p, ".jpg") || strings.HasPrefix(p, "/") || strings.Contains(p, "//") {
			t.Fatalf("OddPath(7, %d) = %q: want a clean relative UTF-8 path ending in .jpg", i, p)
		}
		space = space || strings.Contains(p, " ")
		plus = plus || strings.Contains(p, "+")
		deep = deep || strings.Count(p, "/") >= 6
		for _, r := range p {
			nonASCII = nonASCII || r > 127
		}
	}
	if !space || !plus || !nonASCII || !deep {
		t.Errorf("500 paths: space %v, plus %v, non-ASCII %v, deep %v; want all", space, plus, nonASCII, deep)
	}
}
