package uploader

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"os"
	"path/filepath"
	"testing"
)

// TestDigestFile: one pass gives the whole file's SHA-256 and, for multipart, each part's, for
// sizes around the part boundaries.
func TestDigestFile(t *testing.T) {
	const part = 1000
	for _, size := range []int{0, 1, part - 1, part, part + 1, 3 * part, 3*part + 7} {
		data := bytes.Repeat([]byte{byte(size)}, size)
		for i := range data {
			data[i] += byte(i)
		}
		p := filepath.Join(t.TempDir(), "f")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		d, err := digestFile(context.Background(), f, int64(size), part)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if d.sum != sha256.Sum256(data) {
			t.Errorf("size %d: whole-file digest differs", size)
		}
		var want [][sha256.Size]byte
		for off := 0; off < size; off += part {
			want = append(want, sha256.Sum256(data[off:min(off+part, size)]))
		}
		if len(d.parts) != len(want) {
			t.Fatalf("size %d: %d part digests, want %d", size, len(d.parts), len(want))
		}
		for i := range want {
			if d.parts[i] != want[i] {
				t.Errorf("size %d: part %d digest differs", size, i+1)
			}
		}
	}
}

// TestCompositeSHA256: S3's COMPOSITE checksum, the SHA-256 of the parts' digests with the
// part count, for two parts computed by hand.
func TestCompositeSHA256(t *testing.T) {
	a, b := sha256.Sum256([]byte("part one")), sha256.Sum256([]byte("part two"))
	whole := sha256.Sum256(append(a[:], b[:]...))
	want := base64.StdEncoding.EncodeToString(whole[:]) + "-2"
	if got := compositeSHA256([][sha256.Size]byte{a, b}); got != want {
		t.Errorf("composite %s, want %s", got, want)
	}
}

// BenchmarkDigestFile: the cost of the per-part SHA-256 digests a multipart upload sends as
// its checksums, against hashing the whole file alone (what the key needs), on a 64 MiB file
// in the page cache.
func BenchmarkDigestFile(b *testing.B) {
	const size = 64 << 20
	p := filepath.Join(b.TempDir(), "f")
	if err := os.WriteFile(p, bytes.Repeat([]byte("0123456789abcdef"), size/16), 0o644); err != nil {
		b.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	for _, bc := range []struct {
		name string
		part int64
	}{{"whole", 0}, {"whole+parts8MiB", 8 << 20}} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(size)
			for b.Loop() {
				if _, err := digestFile(context.Background(), f, size, bc.part); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
