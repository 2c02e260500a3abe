// Package objectstest is the suite every pkg/objects driver runs: the same head reads,
// pinned reads, versions and presigned URLs against S3 (on the local stand-in) and the
// in-memory store.
package objectstest

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"imgpipe/pkg/failure"
	"imgpipe/pkg/objects"
)

// Bucket is one fresh bucket of the store under test.
type Bucket struct {
	Store objects.Store
	Name  string
	// Put writes data under key and returns its version ID ("" unversioned) and ETag.
	Put func(t *testing.T, key string, data []byte) (version, etag string)
	// Delete deletes key (a version of it when version is set).
	Delete func(t *testing.T, key, version string)
	// Fetch GETs a presigned URL as the remote service would, with no header of ours.
	Fetch func(t *testing.T, url string) ([]byte, error)
}

// Harness makes fresh buckets.
type Harness interface {
	NewBucket(t *testing.T, versioned bool) Bucket
}

// Run runs the suite.
func Run(t *testing.T, h Harness) {
	t.Run("HeadOfSmallObject", func(t *testing.T) { testSmall(t, h.NewBucket(t, false)) })
	t.Run("HeadOfLargeObject", func(t *testing.T) { testLarge(t, h.NewBucket(t, false)) })
	t.Run("MissingAndEmpty", func(t *testing.T) { testMissing(t, h.NewBucket(t, false)) })
	t.Run("PinnedToContent", func(t *testing.T) { testPinned(t, h.NewBucket(t, false)) })
	t.Run("Versions", func(t *testing.T) { testVersions(t, h.NewBucket(t, true)) })
	t.Run("PresignedGet", func(t *testing.T) { testPresign(t, h.NewBucket(t, true)) })
	t.Run("WriteAndRemove", func(t *testing.T) { testWrite(t, h.NewBucket(t, false)) })
	t.Run("WriteAndRemoveVersioned", func(t *testing.T) { testWrite(t, h.NewBucket(t, true)) })
	t.Run("List", func(t *testing.T) { testList(t, h.NewBucket(t, false)) })
	t.Run("ListVersioned", func(t *testing.T) { testList(t, h.NewBucket(t, true)) })
}

// testList: List gives the current keys directly in the folder in key order, not a removed
// one (a delete marker in a versioned bucket), nor one outside the folder or in a deeper
// folder (upload/a's folder beside upload/a/b's), and nothing for a folder nothing lies in.
func testList(t *testing.T, b Bucket) {
	w, ok := b.Store.(objects.Writer)
	if !ok {
		t.Fatalf("%T is no objects.Writer", b.Store)
	}
	for _, k := range []string{"thumbnail/a b+c.jpg/2.jpg", "thumbnail/a b+c.jpg/1.jpg", "thumbnail/a b+c.jpg/gone.jpg", "thumbnail/a b+c.jpg.jpg", "thumbnail/other/1.jpg", "upload/a b+c.jpg/1.jpg"} {
		if err := w.Write(ctx(t), b.Name, k, data(10, 1), "image/jpeg"); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Remove(ctx(t), b.Name, "thumbnail/a b+c.jpg/gone.jpg"); err != nil {
		t.Fatal(err)
	}
	got, err := w.List(ctx(t), b.Name, "thumbnail/a b+c.jpg/")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"thumbnail/a b+c.jpg/1.jpg", "thumbnail/a b+c.jpg/2.jpg"}; !slices.Equal(got, want) {
		t.Errorf("List = %q, want %q", got, want)
	}
	for _, k := range []string{"thumbnail/upload/a/2.jpg", "thumbnail/upload/a/b.png/1.jpg", "thumbnail/upload/a/b/c.png/1.jpg", "thumbnail/upload/a/1.jpg"} {
		if err := w.Write(ctx(t), b.Name, k, data(10, 1), "image/jpeg"); err != nil {
			t.Fatal(err)
		}
	}
	got, err = w.List(ctx(t), b.Name, "thumbnail/upload/a/")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"thumbnail/upload/a/1.jpg", "thumbnail/upload/a/2.jpg"}; !slices.Equal(got, want) {
		t.Errorf("List of a folder with deeper folders = %q, want %q", got, want)
	}
	got, err = w.List(ctx(t), b.Name, "thumbnail/none/")
	if err != nil || len(got) != 0 {
		t.Errorf("List of an empty prefix = %q, %v; want nothing", got, err)
	}
}

// testWrite: what Write stores reads back whole; Write replaces it; Remove makes the key
// read as missing (a delete marker in a versioned bucket), and removing it again is no error.
func testWrite(t *testing.T, b Bucket) {
	w, ok := b.Store.(objects.Writer)
	if !ok {
		t.Fatalf("%T is no objects.Writer", b.Store)
	}
	ref := objects.Ref{Bucket: b.Name, Key: "thumbnail/dir/a b+c.jpg.jpg"}
	for _, body := range [][]byte{data(500, 3), data(200, 4)} {
		if err := w.Write(ctx(t), b.Name, ref.Key, body, "image/jpeg"); err != nil {
			t.Fatal(err)
		}
		h, err := b.Store.ReadHead(ctx(t), ref, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if h.Size != int64(len(body)) || !bytes.Equal(h.Bytes, body) {
			t.Fatalf("read back %d bytes (equal %v), want the %d written", h.Size, bytes.Equal(h.Bytes, body), len(body))
		}
	}
	for range 2 {
		if err := w.Remove(ctx(t), b.Name, ref.Key); err != nil {
			t.Fatal(err)
		}
		_, err := b.Store.ReadHead(ctx(t), ref, 10)
		is(t, "head after remove", err, objects.ErrNotFound)
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return c
}

func data(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i) ^ seed
	}
	return b
}

func testSmall(t *testing.T, b Bucket) {
	body := data(100, 1)
	_, etag := b.Put(t, "dir/small one+.bin", body)
	h, err := b.Store.ReadHead(ctx(t), objects.Ref{Bucket: b.Name, Key: "dir/small one+.bin"}, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if h.Size != 100 || !bytes.Equal(h.Bytes, body) || h.ETag != etag || h.ETag == "" {
		t.Fatalf("head: size %d, %d bytes (equal %v), ETag %q (put's %q)", h.Size, len(h.Bytes), bytes.Equal(h.Bytes, body), h.ETag, etag)
	}
}

func testLarge(t *testing.T, b Bucket) {
	body := data(3000, 2)
	_, etag := b.Put(t, "large.bin", body)
	ref := objects.Ref{Bucket: b.Name, Key: "large.bin"}
	h, err := b.Store.ReadHead(ctx(t), ref, 1024)
	if err != nil {
		t.Fatal(err)
	}
	if h.Size != 3000 || !bytes.Equal(h.Bytes, body[:1024]) || h.ETag != etag {
		t.Fatalf("head: size %d (want 3000), %d bytes (want the first 1024), ETag %q (want %q)", h.Size, len(h.Bytes), h.ETag, etag)
	}
	rest := read(t, b, ref, etag, 1024, -1)
	if !bytes.Equal(rest, body[1024:]) {
		t.Fatalf("rest: %d bytes, want the %d after the head", len(rest), len(body)-1024)
	}
	if one := read(t, b, ref, etag, 0, 1); !bytes.Equal(one, body[:1]) {
		t.Fatalf("first byte: %v", one)
	}
}

func read(t *testing.T, b Bucket, ref objects.Ref, etag string, offset, length int64) []byte {
	t.Helper()
	rc, err := b.Store.Open(ctx(t), ref, etag, offset, length)
	if err != nil {
		t.Fatalf("open %+v at %d: %v", ref, offset, err)
	}
	defer rc.Close()
	out := new(bytes.Buffer)
	if _, err := out.ReadFrom(rc); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func is(t *testing.T, what string, err, kind error) {
	t.Helper()
	if !errors.Is(err, kind) || !failure.IsPermanent(err) {
		t.Errorf("%s: error %v (class %s), want %v, classified permanent", what, err, failure.ClassOf(err), kind)
	}
}

func testMissing(t *testing.T, b Bucket) {
	_, err := b.Store.ReadHead(ctx(t), objects.Ref{Bucket: b.Name, Key: "never-written"}, 10)
	is(t, "head of a missing key", err, objects.ErrNotFound)
	b.Put(t, "empty", nil)
	_, err = b.Store.ReadHead(ctx(t), objects.Ref{Bucket: b.Name, Key: "empty"}, 10)
	is(t, "head of an empty object", err, objects.ErrEmpty)
}

func testPinned(t *testing.T, b Bucket) {
	ref := objects.Ref{Bucket: b.Name, Key: "changing"}
	_, etag := b.Put(t, ref.Key, data(500, 3))
	b.Put(t, ref.Key, data(500, 4))
	_, err := b.Store.Open(ctx(t), ref, etag, 100, -1)
	is(t, "read of an overwritten object", err, objects.ErrChanged)
	_, etag = b.Put(t, ref.Key, data(500, 5))
	b.Delete(t, ref.Key, "")
	_, err = b.Store.Open(ctx(t), ref, etag, 100, -1)
	if !errors.Is(err, objects.ErrNotFound) && !errors.Is(err, objects.ErrChanged) {
		t.Errorf("read of a deleted object: %v, want ErrNotFound or ErrChanged", err)
	}
}

func testVersions(t *testing.T, b Bucket) {
	v1, _ := b.Put(t, "k", data(200, 6))
	v2, etag2 := b.Put(t, "k", data(300, 7))
	if v1 == "" || v2 == "" || v1 == v2 {
		t.Fatalf("versions %q and %q", v1, v2)
	}
	h, err := b.Store.ReadHead(ctx(t), objects.Ref{Bucket: b.Name, Key: "k", Version: v1}, 1000)
	if err != nil || h.Size != 200 || h.Version != v1 {
		t.Fatalf("head of version 1: %+v, %v", h, err)
	}
	h, err = b.Store.ReadHead(ctx(t), objects.Ref{Bucket: b.Name, Key: "k"}, 1000)
	if err != nil || h.Size != 300 || h.Version != v2 || h.ETag != etag2 {
		t.Fatalf("head of the current version: %+v, %v (want version %s)", h, err, v2)
	}
	b.Delete(t, "k", "") // a delete marker
	_, err = b.Store.ReadHead(ctx(t), objects.Ref{Bucket: b.Name, Key: "k"}, 1000)
	is(t, "head behind a delete marker", err, objects.ErrNotFound)
	if h, err := b.Store.ReadHead(ctx(t), objects.Ref{Bucket: b.Name, Key: "k", Version: v1}, 1000); err != nil || h.Size != 200 {
		t.Fatalf("head of version 1 behind a delete marker: %+v, %v", h, err)
	}
	b.Delete(t, "k", v1)
	_, err = b.Store.ReadHead(ctx(t), objects.Ref{Bucket: b.Name, Key: "k", Version: v1}, 1000)
	is(t, "head of a deleted version", err, objects.ErrNotFound)
}

func testPresign(t *testing.T, b Bucket) {
	v1, _ := b.Put(t, "p q.bin", data(64, 8))
	b.Put(t, "p q.bin", data(80, 9))
	for _, tc := range []struct {
		version string
		want    []byte
	}{{"", data(80, 9)}, {v1, data(64, 8)}} {
		url, err := b.Store.PresignGet(ctx(t), objects.Ref{Bucket: b.Name, Key: "p q.bin", Version: tc.version}, 5*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		got, err := b.Fetch(t, url)
		if err != nil || !bytes.Equal(got, tc.want) {
			t.Errorf("GET of the presigned URL of version %q: %d bytes (want %d), %v", tc.version, len(got), len(tc.want), err)
		}
	}
}
