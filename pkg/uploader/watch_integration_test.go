package uploader_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"imgpipe/internal/devstack"
	"imgpipe/internal/stacktest"
	"imgpipe/pkg/uploader"
)

// fakeClock is a settable clock for the watcher's settle times.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// filesUnder lists the regular files under dir, relative, with '/' separators.
func filesUnder(t testing.TB, dir string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out[filepath.ToSlash(rel)] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestWatchBurstExactlyOnceAcrossACrash(t *testing.T) {
	st := stacktest.Get(t)
	b := stacktest.Bootstrap(t, st, devstack.Resources{})
	ctx := testCtx(t)
	s3c, sqsc := st.NewS3Client(), st.NewSQSClient()
	drainCreatedKeys(t, ctx, st, sqsc, b.QueueURL, b.Bucket)

	dir := t.TempDir()
	const n = 300
	files := map[string][]byte{
		"readme.txt":         []byte("not an image"),
		"sub/notes.md":       []byte("# nor this"),
		"still-copying.part": mustImage(t, 9, 60, 60, "png"),
		".hidden.jpg":        mustImage(t, 8, 60, 60, "jpeg"),
	}
	for i := range n {
		name := fmt.Sprintf("burst/img-%03d.png", i)
		if i%3 == 0 {
			name = fmt.Sprintf("sub/dir %d/img é %03d.png", i%5, i)
		}
		files[name] = mustImage(t, int64(2000+i), 52, 52, "png")
	}
	writeTree(t, dir, files)

	// uuid keys: only the state file can keep a restarted watcher from sending a file twice.
	up, err := uploader.New(s3c, b.Bucket, b.Prefix, &uploader.Options{Keys: uploader.KeysUUID, Concurrency: 8})
	if err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	opts := &uploader.WatchOptions{Settle: 2 * time.Second, Batch: 120, Now: clock.Now}

	// The first watcher sends one batch and "dies" before recording or moving anything.
	w1, err := uploader.NewWatcher(up, dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	uploader.CrashAfterSend(w1)
	if got, err := w1.Scan(ctx); err != nil || got != 0 {
		t.Fatalf("first scan: %d, %v; nothing has settled yet", got, err)
	}
	clock.Add(3 * time.Second)
	if _, err := w1.Scan(ctx); !errors.Is(err, uploader.ErrCrashed) {
		t.Fatalf("crashing scan: %v", err)
	}

	// A new watcher finishes the job.
	var mu sync.Mutex
	var results []uploader.WatchResult
	opts.OnResult = func(r uploader.WatchResult) { mu.Lock(); results = append(results, r); mu.Unlock() }
	w2, err := uploader.NewWatcher(up, dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	for range 10 {
		if _, err := w2.Scan(ctx); err != nil {
			t.Fatal(err)
		}
		clock.Add(3 * time.Second)
	}

	// Every image was sent exactly once: one ObjectCreated event per key, n keys.
	keys := drainCreatedKeys(t, ctx, st, sqsc, b.QueueURL, b.Bucket)
	distinct := map[string]bool{}
	for _, k := range keys {
		distinct[k] = true
	}
	if len(keys) != n || len(distinct) != n {
		t.Errorf("%d events for %d distinct keys; want %d and %d", len(keys), len(distinct), n, n)
	}
	if objs := listKeys(t, ctx, s3c, b.Bucket); len(objs) != n {
		t.Errorf("bucket holds %d objects, want %d", len(objs), n)
	}

	// The folder: images in done/ (subfolders kept), non-images in failed/ with reasons,
	// ignored names untouched, nothing left to do in the state file.
	left := filesUnder(t, dir)
	for name := range files {
		switch {
		case name == "still-copying.part" || name == ".hidden.jpg":
			if !left[name] {
				t.Errorf("%s was touched", name)
			}
		case strings.HasSuffix(name, ".png"):
			if !left["done/"+name] || left[name] {
				t.Errorf("%s not moved to done/", name)
			}
		default:
			if !left["failed/"+name] || !left["failed/"+name+".reason"] {
				t.Errorf("%s not in failed/ with a reason file", name)
				continue
			}
			reason, _ := os.ReadFile(filepath.Join(dir, "failed", filepath.FromSlash(name)+".reason"))
			if !strings.Contains(string(reason), "reason: non-image") {
				t.Errorf("%s.reason: %q", name, reason)
			}
		}
	}
	var state struct{ Files map[string]any }
	raw, err := os.ReadFile(filepath.Join(dir, uploader.DefaultStateFile))
	if err != nil || json.Unmarshal(raw, &state) != nil || len(state.Files) != 0 {
		t.Errorf("state file after the run: %s (%v)", raw, err)
	}
	// The second watcher reported every file once; the ones the first watcher sent came back as
	// duplicates of their recorded keys and were moved without a second upload.
	if len(results) != n+2 {
		t.Errorf("%d results reported, want %d", len(results), n+2)
	}
	for _, r := range results {
		if r.Status == uploader.StatusUploaded && !distinct[r.Key] {
			t.Errorf("%s reported as %s, which has no event", r.Path, r.Key)
		}
	}
}

func TestWatchWaitsForFilesToSettle(t *testing.T) {
	st := stacktest.Get(t)
	b := stacktest.Bootstrap(t, st, devstack.Resources{})
	ctx := testCtx(t)
	dir := t.TempDir()
	up, err := uploader.New(st.NewS3Client(), b.Bucket, b.Prefix, nil)
	if err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	w, err := uploader.NewWatcher(up, dir, &uploader.WatchOptions{Settle: 2 * time.Second, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	img := mustImage(t, 77, 200, 200, "png")
	p := filepath.Join(dir, "growing.png")
	if err := os.WriteFile(p, img[:len(img)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	scan := func(want int) {
		t.Helper()
		got, err := w.Scan(ctx)
		if err != nil || got != want {
			t.Fatalf("scan: %d, %v; want %d", got, err, want)
		}
	}
	scan(0) // first seen
	clock.Add(3 * time.Second)
	f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(img[len(img)/2:])
	f.Close()
	scan(0) // it grew: settling starts over
	clock.Add(time.Second)
	scan(0) // not settled for 2s yet
	clock.Add(2 * time.Second)
	scan(1)
	done, err := os.ReadFile(filepath.Join(dir, "done", "growing.png"))
	if err != nil || sha(done) != sha(img) {
		t.Fatalf("done/growing.png: %v", err)
	}
	key := uploader.KeyFor(uploader.KeysHash, b.Prefix, "growing.png", sha(img))
	if got := listKeys(t, ctx, st.NewS3Client(), b.Bucket); len(got) != 1 || got[0] != key {
		t.Errorf("bucket holds %q, want the whole file as %q", got, key)
	}
	// Dropping the same file again: recognised as already uploaded, moved to done/ under a free name.
	if err := os.WriteFile(p, img, 0o644); err != nil {
		t.Fatal(err)
	}
	scan(0)
	clock.Add(3 * time.Second)
	scan(1)
	if left := filesUnder(t, dir); !left["done/growing~1.png"] {
		t.Errorf("second copy not in done/ as growing~1.png: %v", left)
	}
}
