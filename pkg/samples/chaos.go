package samples

import (
	"fmt"
	"math/rand/v2"
	"path"
	"strings"
)

// File is a generated file and its bytes.
type File struct {
	Sample
	Body []byte
}

// BadFiles returns the bad samples of Generate with their bytes, in Generate's order: text
// named .jpg, a truncated PNG, a 40x40 PNG Vision rejects, an empty .jpg and a HEIC stub.
// Each Sample's WantReason is the reason the pipeline must dead-letter it with.
func BadFiles() ([]File, error) {
	var out []File
	for _, s := range specs() {
		if s.Good {
			continue
		}
		b, err := s.make()
		if err != nil {
			return nil, fmt.Errorf("bad sample %s: %w", s.Name, err)
		}
		f := File{Sample: s.Sample, Body: b}
		f.Size = int64(len(b))
		out = append(out, f)
	}
	return out, nil
}

// Segments that keys are made of: spaces, '+', '&', '=', accents (NFC), scripts other than
// Latin and characters outside the Basic Multilingual Plane. Each is a valid S3 key segment
// that a URL- or form-encoding step can get wrong.
var oddSegments = []string{
	"plain", "with space", "a+b", "a + b", "x&y=z", "été", "Ünïcødé", "日本語", "🌅 sunset",
	"100% real", "under_score", "dots.in.name", "(parens)", "[brackets]", "tilde~", "comma,semi;colon",
}

// OddPath returns a relative path, '/'-separated, for the file number i of a set, ending in
// ext: one to eight folders deep, with segments that carry spaces, '+', unicode and other
// characters a key may hold, and a name made unique by i. The same seed and i give the same
// path.
func OddPath(seed int64, i int, ext string) string {
	r := rand.New(rand.NewPCG(uint64(seed), uint64(i)))
	depth := 1 + r.IntN(8)
	segs := make([]string, 0, depth+1)
	for range depth {
		segs = append(segs, oddSegments[r.IntN(len(oddSegments))])
	}
	name := fmt.Sprintf("%s %06d+%s.%s", oddSegments[r.IntN(len(oddSegments))], i, []string{"é", "ü", "日", "+", " "}[r.IntN(5)], strings.TrimPrefix(ext, "."))
	segs = append(segs, name)
	return path.Join(segs...)
}
